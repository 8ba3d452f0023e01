"""Load a trained model from anywhere: an experiment dir, a packed zip, an unpacked or
downloaded folder, or a Hugging Face Hub repository.

    from espnet_mtl.inference.pretrained import load_pretrained
    s2t = load_pretrained("egs2/must_c/st1/exp/st_mtl")          # ST (default)
    s2t = load_pretrained("exp/st_mtl/st_mtl_valid.acc.ave.zip", beam_size=5)
    asr = load_pretrained("user/my-model", task="asr")           # a multi-task model's ASR path
    text, tokens, token_ids, hyp = s2t(waveform)[0]

`resolve` finds the training config and the checkpoint:
- an experiment dir (`config.yaml` + a checkpoint: `model_file`, else
  valid.acc.ave.pth, else another `*ave*.pth` / `*best*.pth`); relative paths in
  the config are the recipe's (`<exp>/../..`);
- a zip from stage 14 (ESPnet's pack format), unpacked next to it (or into
  `cache_dir`) once;
- a folder with `meta.yaml` (an unpacked zip, a stage-15 repository);
- otherwise a Hub repository id, downloaded with `huggingface_hub.snapshot_download`.
The config's relative paths are then made absolute (into a resolved copy), so the
model loads from any working directory. `task` picks what is decoded: `st`
(`Speech2Text`), `asr` (ESPnet's ASR Speech2Text on the model's ASR path) or
`mt` (ESPnet's Text2Text on its MT path), every model choice of ours registered.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

MODEL_FILES = ("valid.acc.ave.pth", "valid.bleu.ave.pth", "valid.loss.ave.pth")


class PretrainedError(ValueError):
    """No model where the caller pointed."""


def _absolute(config: dict, base: Path) -> dict:
    from espnet_mtl.runner.packing import map_config_paths

    return map_config_paths(config, lambda v: str(base / v) if not os.path.isabs(v)
                            and (base / v).exists() else v)


def _resolved_config(config_file: Path, base: Path) -> Path:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    out = Path(tempfile.mkdtemp(prefix="espnet_mtl_model_")) / "config.yaml"
    out.write_text(yaml.safe_dump(_absolute(config, base), sort_keys=False, allow_unicode=True),
                   encoding="utf-8")
    return out


def _pick_model(exp: Path, model_file: str | None) -> Path:
    if model_file is not None:
        if not (exp / model_file).is_file():
            raise PretrainedError(f"{exp}: no checkpoint {model_file}")
        return exp / model_file
    for name in MODEL_FILES:
        if (exp / name).is_file():
            return exp / name
    others = sorted(exp.glob("*ave*.pth")) + sorted(exp.glob("*best*.pth"))
    if others:
        return others[0]
    raise PretrainedError(f"{exp}: no averaged or best checkpoint (*ave*.pth, *best*.pth): "
                          f"finish training (stage 11), or pass model_file")


def _from_meta(folder: Path) -> dict:
    meta = yaml.safe_load((folder / "meta.yaml").read_text(encoding="utf-8"))
    config = folder / meta["yaml_files"]["st_train_config"]
    model = folder / meta["files"]["st_model_file"]
    return {"st_train_config": str(_resolved_config(config, folder)), "st_model_file": str(model)}


def resolve(path_or_repo: str | os.PathLike, model_file: str | None = None,
            cache_dir: str | os.PathLike | None = None) -> dict:
    """{"st_train_config", "st_model_file"} of a model (see the module doc)."""
    path = Path(path_or_repo)
    if path.is_file():
        import zipfile

        from espnet2.main_funcs.pack_funcs import unpack

        if not zipfile.is_zipfile(path):
            raise PretrainedError(f"{path}: not a packed model (a zip from stage 14)")
        out = Path(cache_dir) if cache_dir else path.with_suffix("")
        unpack(str(path), str(out))
        return _from_meta(out)
    if path.is_dir():
        if (path / "meta.yaml").is_file():
            return _from_meta(path)
        if (path / "config.yaml").is_file():
            model = _pick_model(path, model_file)
            recipe = path.resolve().parent.parent
            return {"st_train_config": str(_resolved_config(path / "config.yaml", recipe)),
                    "st_model_file": str(model)}
        raise PretrainedError(f"{path}: neither an experiment dir (config.yaml) nor a packed "
                              f"model folder (meta.yaml)")
    if str(path_or_repo).count("/") == 1 and not str(path_or_repo).startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(str(path_or_repo), cache_dir=cache_dir)
        except Exception as e:  # network, unknown repo, ...: say which
            raise PretrainedError(f"{path_or_repo}: no such path, and the Hub download failed "
                                  f"({type(e).__name__}: {e})") from None
        return _from_meta(Path(folder))
    raise PretrainedError(f"{path_or_repo}: no such file or directory (nor a Hub id user/name)")


def load_pretrained(path_or_repo: str | os.PathLike, task: str = "st",
                    model_file: str | None = None, cache_dir: str | os.PathLike | None = None,
                    **kwargs):
    """A decoder object for `task` (st | asr | mt) of the model at `path_or_repo`."""
    return load_resolved(resolve(path_or_repo, model_file, cache_dir), task, **kwargs)


def load_resolved(files: dict, task: str = "st", **kwargs):
    """`load_pretrained` for what `resolve` returned (resolve once, e.g. to read the config)."""
    config, model = files["st_train_config"], files["st_model_file"]
    if task == "st":
        from espnet_mtl.inference.speech2text import Speech2Text

        return Speech2Text(st_train_config=config, st_model_file=model, **kwargs)
    if task not in ("asr", "mt"):
        raise PretrainedError(f"task {task!r}: choose st, asr or mt")
    from espnet_mtl.inference.path_inference import ASRPathTask, MTPathTask, has_asr_decoder
    from espnet_mtl.inference.speech2text import bound_task

    if task == "mt":
        import espnet2.bin.mt_inference as mt_inference

        kwargs.setdefault("ctc_weight", 0.0)  # the MT path has no target CTC
        with bound_task(mt_inference, "MTTask", MTPathTask):
            return TextTranslator(mt_inference.Text2Text(mt_train_config=config,
                                                         mt_model_file=model, **kwargs), config)
    import espnet2.bin.asr_inference as asr_inference

    if not has_asr_decoder(config):
        kwargs.setdefault("ctc_weight", 1.0)  # no ASR attention decoder: CTC decoding
    with bound_task(asr_inference, "ASRTask", ASRPathTask):
        return asr_inference.Speech2Text(asr_train_config=config, asr_model_file=model, **kwargs)


class TextTranslator:
    """ESPnet's Text2Text on a model's MT path that also takes a transcript as text:
    it is tokenised as in training (the source tokenizer and token list of the config)."""

    def __init__(self, text2text, config_file: str):
        from espnet2.text.build_tokenizer import build_tokenizer
        from espnet2.text.token_id_converter import TokenIDConverter

        conf = yaml.safe_load(Path(config_file).read_text(encoding="utf-8")) or {}
        self.text2text = text2text
        self.tokenizer = build_tokenizer(token_type=conf["src_token_type"],
                                         bpemodel=conf.get("src_bpemodel"))
        self.converter = TokenIDConverter(token_list=conf["src_token_list"])

    def __call__(self, src_text):
        import numpy as np

        if isinstance(src_text, str):
            src_text = np.array(self.converter.tokens2ids(self.tokenizer.text2tokens(src_text)))
        return self.text2text(src_text)
