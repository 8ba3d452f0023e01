"""ESPnet's `Speech2Text` for our models: decoding in a notebook or a script.

    from espnet_mtl.inference.speech2text import Speech2Text
    s2t = Speech2Text(st_train_config="exp/st_x/config.yaml",
                      st_model_file="exp/st_x/valid.acc.ave.pth", beam_size=5)
    text, tokens, token_ids, hyp = s2t(waveform)[0]

It is ESPnet's `espnet2.bin.st_inference.Speech2Text` (same arguments and
outputs), building the model through our task, so every `--model` choice of ours
(mtl_st, task_aware, comsl) loads. ESPnet's class looks its task up through the
module-level name `STTask`; `bound_task` binds it to our task for the build and
restores ESPnet's afterwards, so plain ESPnet decoding in the same process is
never affected.
"""

from __future__ import annotations

import contextlib

import espnet2.bin.st_inference as espnet_st_inference

from espnet_mtl.tasks.st import MTLSTTask


@contextlib.contextmanager
def bound_task(module=espnet_st_inference, name: str = "STTask", task=MTLSTTask):
    """`module.<name>` is `task` inside the block, and what it was afterwards."""
    saved = getattr(module, name)
    setattr(module, name, task)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _source_tokenizer_workaround(kwargs: dict) -> None:
    """ESPnet's Speech2Text builds the source tokenizer (which only multi-decoder models
    use) without its model file when the training config says `src_token_type:
    hugging_face` (ComSL's mBART-50 tokenizer), and fails; `char` needs no file and
    is never used by our models."""
    config = kwargs.get("st_train_config")
    if kwargs.get("src_token_type") is not None or config is None:
        return
    import yaml

    with open(config, encoding="utf-8") as f:
        train_args = yaml.safe_load(f) or {}
    if train_args.get("src_token_type") == "hugging_face":
        kwargs["src_token_type"] = "char"


class Speech2Text(espnet_st_inference.Speech2Text):
    """ESPnet's ST Speech2Text, for every model choice of our task."""

    def __init__(self, *args, **kwargs):
        _source_tokenizer_workaround(kwargs)
        with bound_task():
            super().__init__(*args, **kwargs)
        # ESPnet's ST Speech2Text hands `normalize_length` to the beam search of Hugging
        # Face decoders only (its ASR and MT programs hand it to every search), so
        # `--normalize_length true` did nothing for ST; the batched search honours it too.
        if getattr(self, "beam_search", None) is not None:
            self.beam_search.normalize_length = kwargs.get("normalize_length", False)

    @staticmethod
    def from_pretrained(model_tag=None, **kwargs):
        """ESPnet's signature; `model_tag` is an experiment dir, a packed zip, a packed
        folder or a Hub id (`espnet_mtl.inference.pretrained`), or None (the kwargs)."""
        if model_tag is None:
            return Speech2Text(**kwargs)
        from espnet_mtl.inference.pretrained import load_pretrained

        return load_pretrained(model_tag, "st", **kwargs)
