"""`weight_schedule`: objective weights that ramp linearly over updates.

    strategy: weight_schedule
    strategy_conf:
        schedule:
            consistency: {start: 0.0, warmup_steps: 2000}   # 0 -> model_conf weight

The weight of an objective with a schedule goes from `start` to its
model_conf weight over `warmup_steps` updates (after `delay_steps`, default
0), then stays; others keep their model_conf weight. Used for consistency
warm-up (beta 0 for the first epochs). The update count is a buffer: a
resumed run continues the ramp where the killed one stopped.
"""

from __future__ import annotations

from typing import Dict

import torch

from espnet_mtl.training.strategies.base import Strategy, StrategyError


class WeightSchedule(Strategy):
    def __init__(self, weights: Dict[str, float], schedule: Dict[str, dict] | None = None):
        super().__init__(weights)
        self.schedule = {}
        for name, spec in (schedule or {}).items():
            if name not in weights:
                raise StrategyError(
                    f"strategy_conf.schedule.{name}: not an objective that is on; choices: "
                    f"{', '.join(weights)}")
            unknown = set(spec) - {"start", "warmup_steps", "delay_steps"}
            if unknown or "warmup_steps" not in spec or int(spec["warmup_steps"]) < 1:
                raise StrategyError(
                    f"strategy_conf.schedule.{name}: expected {{start: <weight>, "
                    f"warmup_steps: <updates >= 1>, delay_steps: <updates>}}, got {spec}")
            self.schedule[name] = (float(spec.get("start", 0.0)), int(spec["warmup_steps"]),
                                   int(spec.get("delay_steps", 0)))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def current_weights(self) -> Dict[str, float]:
        weights = dict(self.configured)
        t = int(self.updates)
        for name, (start, warmup, delay) in self.schedule.items():
            progress = min(max(t - delay, 0) / warmup, 1.0)
            weights[name] = start + (self.configured[name] - start) * progress
        return weights

    def combine(self, losses, model):
        total = super().combine(losses, model)
        if self.training:
            self.updates += 1
        return total

    def stats(self):
        return {f"weight_{n}": w for n, w in self.current_weights().items()
                if n in self.schedule}
