"""The tables of our choices, one per slot: model, adapter, block hook, objective, strategy.

Each table maps a config name to "module:Class"; classes are imported only
when used, so reading a table (e.g. to list the choices in an error) is
cheap. A new method adds its lines here and its own files; nothing else
names it.

`register_all` adds our models to ESPnet's `--model` ClassChoices, our
encoders to its `encoder` ClassChoices and our schedulers to `--scheduler`. It is called when
`espnet_mtl.tasks.st` is imported and is idempotent, so every
process (including DDP workers started with spawn, which re-import the task
module) can call it.
"""

from __future__ import annotations

import importlib

#: `--model`: what the task builds (ESPnet's own ESPnetSTModel is `espnet`).
MODELS: dict[str, str] = {
    "mtl_st": "espnet_mtl.models.mtl_st:MTLSTModel",
    "task_aware": "espnet_mtl.models.task_aware:TaskAwareSTModel",
    "comsl": "espnet_mtl.models.comsl:ComSLModel",
}

#: `encoder`: acoustic encoders added to ESPnet's `encoder` choices (STTask's `encoder_choices`).
ENCODERS: dict[str, str] = {
    "hf_hubert": "espnet_mtl.modules.hf_hubert:HFHubertEncoder",
    "hf_wav2vec2": "espnet_mtl.modules.hf_wav2vec2:HFWav2Vec2Encoder",
}

#: `model_conf.adapter`: the join between acoustic and textual encoder.
ADAPTERS: dict[str, str] = {
    "linear": "espnet_mtl.modules.adapters:LinearAdapter",
    "shrink_lbm": "espnet_mtl.modules.shrinking:ShrinkLBMAdapter",
}

#: `model_conf.block_hooks`: modules acting between the textual encoder's blocks.
BLOCK_HOOKS: dict[str, str] = {
    "local_to_global": "espnet_mtl.modules.local_to_global:LocalToGlobal",
}

#: `model_conf.objectives`: named, weighted loss terms over a model's pass outputs.
OBJECTIVES: dict[str, str] = {  # (the order in which the weighted sum adds them)
    "st_ce": "espnet_mtl.objectives.cross_entropy:STCrossEntropy",
    "asr_ctc": "espnet_mtl.objectives.ctc:ASRCTC",
    "asr_att": "espnet_mtl.objectives.cross_entropy:ASRCrossEntropy",
    "mt_ce": "espnet_mtl.objectives.cross_entropy:MTCrossEntropy",
    "st_ctc": "espnet_mtl.objectives.ctc:STCTC",
    "consistency": "espnet_mtl.objectives.consistency:Consistency",
    "rdrop": "espnet_mtl.objectives.rdrop:RDrop",
    "contrastive": "espnet_mtl.objectives.contrastive:Contrastive",
    "cpc": "espnet_mtl.objectives.cpc:CPC",
    "guided_st": "espnet_mtl.objectives.comsl:GuidedST",
    "teacher_mt": "espnet_mtl.objectives.comsl:TeacherMT",
    "cml": "espnet_mtl.objectives.comsl:CrossModalityLearning",
}

#: `--strategy`: how the trainer turns per-objective losses into one update.
STRATEGIES: dict[str, str] = {
    "static": "espnet_mtl.training.strategies.static:StaticWeights",
    "weight_schedule": "espnet_mtl.training.strategies.weight_schedule:WeightSchedule",
    "gradient_sum": "espnet_mtl.training.strategies.gradient_sum:GradientSum",
    "task_norm": "espnet_mtl.training.strategies.task_norm:TaskNormWeights",
    "modo": "espnet_mtl.training.strategies.modo:MoDo",
}

#: `--scheduler`: learning-rate schedulers added to ESPnet's choices.
SCHEDULERS: dict[str, str] = {
    "warmuppolylr": "espnet_mtl.training.schedulers:WarmupPolynomialLR",
}

SLOTS = {"model": MODELS, "encoder": ENCODERS, "adapter": ADAPTERS, "block_hook": BLOCK_HOOKS,
         "objective": OBJECTIVES, "strategy": STRATEGIES, "scheduler": SCHEDULERS}


class UnknownChoice(ValueError):
    """A config names a choice that no table holds."""


def get(slot: str, name: str, key: str | None = None):
    """The class registered as `name` in `slot`; `key` names the config key in errors."""
    table = SLOTS[slot]
    if name not in table:
        raise UnknownChoice(
            f"{key or slot}: unknown {slot} '{name}'; choices: {', '.join(sorted(table))}")
    module, _, cls = table[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def register_all(model_choices) -> None:
    for name in MODELS:
        if name not in model_choices.classes:
            model_choices.classes[name] = get("model", name)
    from espnet2.tasks.st import encoder_choices  # ESPnet's own `encoder` slot

    for name in ENCODERS:
        if name not in encoder_choices.classes:
            encoder_choices.classes[name] = get("encoder", name)
    from espnet2.tasks.abs_task import scheduler_classes  # ESPnet's `--scheduler` table

    for name in SCHEDULERS:
        scheduler_classes.setdefault(name, get("scheduler", name))
