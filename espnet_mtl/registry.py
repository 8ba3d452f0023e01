"""One place that adds our classes to ESPnet's ClassChoices slots.

Called when `espnet_mtl.tasks.st` is imported. Idempotent, so every process
(including DDP workers started with spawn, which re-import the task module)
can call it. Later issues add their models, encoders and frontends here.
"""

from __future__ import annotations

# name -> "module:Class" for `--model` choices of our task.
MODEL_CLASSES: dict[str, str] = {
    "mtl_st": "espnet_mtl.models.mtl_st:MTLSTModel",
}


def _load(path: str):
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def register_all(model_choices) -> None:
    for name, path in MODEL_CLASSES.items():
        if name not in model_choices.classes:
            model_choices.classes[name] = _load(path)
