"""Training strategies: how per-objective losses become one update (`--strategy`).

Table: `espnet_mtl.registry.STRATEGIES`. `build_strategy(args, model)` makes
the chosen one for a model whose objectives are on; the task attaches it to
the model as `model.strategy`, so its state (current weights, step counts)
is saved in every checkpoint and restored on resume with the model.
"""

from __future__ import annotations

from espnet_mtl import registry
from espnet_mtl.training.strategies.base import Strategy, StrategyError

__all__ = ["Strategy", "StrategyError", "build_strategy"]


def build_strategy(name: str, conf: dict | None, weights: dict) -> Strategy:
    cls = registry.get("strategy", name, key="--strategy")
    try:
        return cls(weights=weights, **(conf or {}))
    except TypeError as e:
        raise StrategyError(f"--strategy_conf for strategy {name}: {e}") from None
