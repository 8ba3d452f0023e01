"""Stages 14-15: pack a trained model, and publish it on the Hugging Face Hub.

Packing has ESPnet's semantics (`espnet2.bin.pack st`: a zip with `meta.yaml`, the
training config, the chosen checkpoint and the files the config refers to, whose
paths ESPnet's `unpack` rewrites): here the referenced files are found in the
config itself, so nothing is forgotten: the BPE models (or a Hugging Face
tokenizer directory), token lists given as files, the feature statistics
(`normalize_conf.stats_file`) and pretrained-model directories named under any
`*_conf` (ComSL's Whisper and mBART, HuBERT), plus `RESULTS.md` and `images/`.

Upload (`upload_to_hf`) stages a repository folder: the unpacked model, `meta.yaml`,
and a model card (`README.md`: how to load it, the RESULTS table, the config,
the method's citation), then calls `huggingface_hub.HfApi.upload_folder`; with
`dry_run` it only stages and lists, with `local_dir` it copies there instead of
the Hub (tests and air-gapped clusters).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

#: top-level config keys that name files the model needs
FILE_KEYS = ("bpemodel", "src_bpemodel", "token_list", "src_token_list")

#: what to cite, by what the config uses (titles as the seed documents give them)
CITATIONS = {
    "espnet": "ESPnet-ST: All-in-One Speech Translation Toolkit (Inaguma et al., ACL 2020 demos)",
    "mtl_st": "Optimal Multi-Task Learning at Regularization Horizon for Speech Translation "
              "(arXiv 2509.09701)",
    "imtl": "Rethinking and Improving Multi-task Learning for End-to-end Speech Translation "
            "(arXiv 2311.03810)",
    "modo": "Objective Soups: Multilingual Multi-Task Modeling for Speech Processing",
    "task_aware": "Learning without Forgetting: Task Aware Multi-Task Learning for "
                  "Multi-Modality Tasks",
    "comsl": "ComSL: A Composite Speech-Language Model for End-to-End Speech-to-Text "
             "Translation (NeurIPS 2023, arXiv 2305.14838)",
}


class PackingError(ValueError):
    """The experiment cannot be packed or published as asked."""


def _map_path_values(value, fn):
    # Only strings with a separator count as paths: a token list holds tokens such as
    # "." that name existing paths by accident (packing "." packs the recipe, the
    # archive being written included; resolving it turns the token into a directory).
    if isinstance(value, str):
        return fn(value) if os.sep in value.rstrip(os.sep) else value
    if isinstance(value, dict):
        return {k: _map_path_values(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_path_values(v, fn) for v in value]
    return value


def map_config_paths(config: dict, fn) -> dict:
    """A copy of `config` with `fn` applied to the values that may be paths: the
    FILE_KEYS given as a path (a token list given inline is tokens, not paths) and
    path-like strings under any `*_conf`. Packing, staging for the Hub and loading a
    model (`inference.pretrained`) all see the same paths through this."""
    out = dict(config)
    for key, value in config.items():
        if (key in FILE_KEYS and isinstance(value, str)) or key.endswith("_conf"):
            out[key] = _map_path_values(value, fn)
    return out


def referenced_paths(config: dict) -> list[str]:
    """Existing files and directories the config refers to (relative to the cwd)."""
    found: list[str] = []

    def keep(value: str) -> str:
        if os.path.exists(value):
            found.append(value)
        return value

    map_config_paths(config, keep)
    return list(dict.fromkeys(found))


def pack_experiment(st_exp: str | os.PathLike, model_file: str, outpath: str | os.PathLike
                    ) -> Path:
    """`<st_exp>/config.yaml` + `<st_exp>/<model_file>` + what they need -> a zip."""
    from espnet2.main_funcs.pack_funcs import pack

    st_exp = Path(st_exp)
    config_file, model = st_exp / "config.yaml", st_exp / model_file
    for path, what in ((config_file, "training config"), (model, "checkpoint")):
        if not path.is_file():
            raise PackingError(f"no {what} {path}: train first (stage 11), or name another "
                               f"checkpoint with --inference_st_model")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    options = referenced_paths(config)
    options += [str(p) for p in (st_exp / "RESULTS.md", st_exp / "images") if p.exists()]
    outpath = Path(outpath)
    out_abs = outpath.resolve()
    for option in options:  # an archive must not contain itself
        if out_abs.is_relative_to(Path(option).resolve()):
            raise PackingError(f"{config_file} refers to {option}, which holds the output "
                               f"{outpath}: write the package elsewhere (--outpath)")
    tmp = outpath.with_name(outpath.name + ".tmp.zip")
    try:
        pack(files={"st_model_file": str(model)},
             yaml_files={"st_train_config": str(config_file)}, option=options, outpath=str(tmp))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(outpath)  # complete or absent
    logger.info("packed %s: %s + %s", outpath, model_file, ", ".join(options) or "no extra files")
    return outpath


def citations(config: dict) -> list[str]:
    """The papers behind what the config uses."""
    model = config.get("model") or "espnet"
    conf = config.get("model_conf") or {}
    keys = ["espnet"]
    if model in ("mtl_st", "task_aware"):
        keys.append("mtl_st")
    if model in ("task_aware", "comsl"):
        keys.append(model)
    if conf.get("adapter") == "shrink_lbm" or conf.get("block_hooks") or \
            config.get("strategy") == "task_norm":
        keys.append("imtl")
    if config.get("strategy") == "modo" or "cpc" in (conf.get("objectives") or {}):
        keys.append("modo")
    return [CITATIONS[k] for k in dict.fromkeys(keys)]


CARD = """---
tags:
- espnet
- espnet_mtl
- audio
- speech-translation
language:
- {src}
- {tgt}
license: cc-by-4.0
---

# {name}

A speech translation model ({src} -> {tgt}) trained with espnet_mtl
(`model: {model}`) on ESPnet {espnet}.

```python
from espnet_mtl.inference.pretrained import load_pretrained

s2t = load_pretrained("{repo}")       # or the packed zip, or a local directory
text, *_ = s2t(waveform_16khz)[0]
```

```bash
python -m espnet_mtl.bin.translate --model {repo} talk.wav
```

## Results

{results}

## Training config

<details><summary>config.yaml</summary>

```yaml
{config}
```

</details>

## Citation

{citations}
"""


def model_card(config: dict, results: str, repo: str, name: str) -> str:
    import espnet

    return CARD.format(
        src=config.get("src_lang") or _lang(config, "src"), tgt=config.get("tgt_lang") or
        _lang(config, "tgt"), name=name, model=config.get("model") or "espnet",
        espnet=espnet.__version__, repo=repo, results=results.strip() or "(no RESULTS.md)",
        config=yaml.safe_dump(config, sort_keys=False, allow_unicode=True).strip(),
        citations="\n".join(f"- {c}" for c in citations(config)))


def _lang(config: dict, side: str) -> str:
    """The language of a side from the text file names of the training data."""
    key = "src_text" if side == "src" else "text"
    for path, name, _ in (tuple(x) for x in config.get("train_data_path_and_name_and_type", [])
                          if len(x) == 3):
        if name == key:
            return Path(path).name.rsplit(".", 1)[-1]
    return "unknown"


def upload_to_hf(packed: str | os.PathLike, repo: str, *, dry_run: bool = False,
                 local_dir: str | os.PathLike | None = None, private: bool = False) -> Path:
    """Stage the packed model as a Hub repository and upload it (see the module doc).

    Returns the staged folder (dry run), the local target, or the staging folder
    that was uploaded (then removed)."""
    from espnet2.main_funcs.pack_funcs import unpack

    packed = Path(packed)
    if not packed.is_file():
        raise PackingError(f"no packed model {packed}: run stage 14 first (or drop "
                           f"--skip_packing)")
    if "/" not in repo or repo.count("/") > 1:
        raise PackingError(f"--hf_repo {repo!r}: expected <user or organisation>/<name>")
    staging = Path(tempfile.mkdtemp(prefix=".hf_stage_", dir=packed.parent))
    try:
        files = unpack(str(packed), str(staging))
        config_file = Path(files["st_train_config"])
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        # unpack made the config's paths absolute on this machine; the repository keeps
        # them relative to its root, which `load_pretrained` resolves wherever it lands
        config = _relative_to(config, staging)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                               encoding="utf-8")
        results = next((p.read_text(encoding="utf-8") for p in staging.rglob("RESULTS.md")), "")
        (staging / "README.md").write_text(model_card(config, results, repo, repo.split("/")[1]),
                                           encoding="utf-8")
        if dry_run:
            listing = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
            logger.info("dry run: would upload %d files to %s: %s", len(listing), repo,
                        ", ".join(listing))
            return staging
        if local_dir is not None:
            target = Path(local_dir)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(staging, target)
            return target
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo, exist_ok=True, private=private)
        api.upload_folder(repo_id=repo, folder_path=str(staging),
                          commit_message=f"espnet_mtl: upload {packed.name}")
        return staging
    finally:
        if not dry_run:
            shutil.rmtree(staging, ignore_errors=True)


def _relative_to(config: dict, base: Path) -> dict:
    prefix = str(base) + os.sep
    return map_config_paths(
        config, lambda v: v[len(prefix):] if v.startswith(prefix) else v)
