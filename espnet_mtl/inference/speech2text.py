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


class Speech2Text(espnet_st_inference.Speech2Text):
    """ESPnet's ST Speech2Text, for every model choice of our task."""

    def __init__(self, *args, **kwargs):
        with bound_task():
            super().__init__(*args, **kwargs)
