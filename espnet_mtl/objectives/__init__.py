"""Named, weighted loss terms over a model's pass outputs.

The table of names is `espnet_mtl.registry.OBJECTIVES`. A model_conf lists
the objectives and their weights, with options where an objective has any:

    model_conf:
        objectives:
            st_ce: 1.0
            asr_ctc: 0.3
            mt_ce: 0.3
            consistency: {weight: 1.0, kind: softmax_kl, direction: mt_to_st}

An objective listed with weight 0 is off: its modules are not built and it
reads 0 in the logs; an objective not listed is not reported at all. The
seed-001 configs' flat keys (`asr_ctc_weight`, `consistency_type`, ...) are
the same table written the old way: each objective class names its keys
(`legacy_weight`, `legacy_options`); without `objectives` they list the
seven seed-001 objectives (st_ce at 1.0, asr_ctc at 0.3, the rest at 0).
"""

from __future__ import annotations

import functools
from typing import Dict, Optional, Tuple

from espnet_mtl import registry
from espnet_mtl.objectives.base import (
    Objective,
    ObjectiveContext,
    ObjectiveError,
    PassOutput,
)

__all__ = ["Objective", "ObjectiveContext", "ObjectiveError", "PassOutput",
           "resolve", "legacy_keys", "build"]

#: default weights of the flat seed-001 keys (the model's defaults before objectives)
LEGACY_DEFAULTS = {"st_ce": 1.0, "asr_ctc": 0.3}


@functools.lru_cache(maxsize=None)
def legacy_keys() -> Dict[str, Tuple[str, str]]:
    """Flat model_conf key -> (objective, "weight" or option name)."""
    keys = {}
    for name in registry.OBJECTIVES:
        cls = registry.get("objective", name)
        if cls.legacy_weight:
            keys[cls.legacy_weight] = (name, "weight")
        for option, key in cls.legacy_options.items():
            keys[key] = (name, option)
    return keys


def resolve(objectives: Optional[dict], legacy: Dict[str, object]) -> Dict[str, dict]:
    """Config -> {objective name: {"weight": w, **options}}, every listed objective."""
    given = {k: v for k, v in legacy.items() if v is not None}
    table = dict(legacy_keys())
    if objectives is not None:
        if given:
            raise ObjectiveError(
                f"model_conf: give the objectives either under 'objectives' or with the flat "
                f"keys {sorted(given)}, not both")
        listed = {}
        for name, spec in objectives.items():
            registry.get("objective", name, key=f"model_conf.objectives.{name}")
            spec = dict(spec) if isinstance(spec, dict) else {"weight": spec}
            if "weight" not in spec:
                raise ObjectiveError(f"model_conf.objectives.{name}: no weight given")
            listed[name] = spec
    else:
        listed = {name: {"weight": LEGACY_DEFAULTS.get(name, 0.0)}
                  for name in {o for o, _ in table.values()} | {"st_ce"}}
        for key, value in given.items():
            name, option = table[key]
            listed[name][option] = value
        listed = {n: listed[n] for n in registry.OBJECTIVES if n in listed}  # table order
    for name, spec in listed.items():
        try:
            spec["weight"] = float(spec["weight"])
        except (TypeError, ValueError):
            raise ObjectiveError(f"model_conf.objectives.{name}: weight must be a number, "
                                 f"got {spec['weight']!r}") from None
        if spec["weight"] < 0:
            key = registry.get("objective", name).legacy_weight if objectives is None else None
            raise ObjectiveError(f"{key or f'model_conf.objectives.{name}'} must be >= 0, "
                                 f"got {spec['weight']}")
    return listed


def build(listed: Dict[str, dict], ctx: ObjectiveContext) -> Dict[str, Objective]:
    """The objectives that are on (weight > 0), in table order."""
    built = {}
    for name in registry.OBJECTIVES:
        spec = listed.get(name)
        if spec is None or spec["weight"] <= 0:
            continue
        options = {k: v for k, v in spec.items() if k != "weight"}
        cls = registry.get("objective", name)
        try:
            built[name] = cls(ctx, **options)
        except TypeError as e:
            raise ObjectiveError(f"model_conf.objectives.{name}: {e}") from None
    return built
