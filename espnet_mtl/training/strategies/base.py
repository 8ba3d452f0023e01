"""The strategy contract.

A strategy receives, for each training batch, every objective's loss with
its graph (None when no example of the batch feeds it) and returns the one
scalar the trainer back-propagates. Plain weighting returns a weighted sum;
a strategy that needs per-objective gradients (`needs_gradients = True`)
takes them with `espnet_mtl.training.gradients` and returns the surrogate
loss whose gradient is its combined direction.

State that changes during training (current weights, counters) lives in
buffers, so it is checkpointed with the model and survives a kill and
resume. "On" (the objective's modules are built: weight > 0 in model_conf)
stays separate from "current weight" (the strategy's, which may reach 0).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch


class StrategyError(ValueError):
    """A strategy that cannot run with this configuration."""


class Strategy(torch.nn.Module):
    #: takes one backward per objective (refused with AMP; see `check`)
    needs_gradients: bool = False
    #: works with ESPnet's --accum_grad > 1
    supports_accum_grad: bool = True
    #: may stop computing objectives in training (`dropped`): DDP must allow unused parameters
    may_drop_objectives: bool = False
    #: 2: the trainer splits each batch into two independent halves (`combine_two`)
    batches_per_step: int = 1

    def __init__(self, weights: Dict[str, float]):
        super().__init__()
        if not weights:
            raise StrategyError("a training strategy needs at least one objective on")
        self.names = list(weights)
        self.configured = dict(weights)

    def current_weights(self) -> Dict[str, float]:
        return dict(self.configured)

    def combine(self, losses: Dict[str, Optional[torch.Tensor]], model) -> torch.Tensor:
        """The scalar to back-propagate for this batch."""
        weights = self.current_weights()
        total = None
        for name in self.names:
            loss = losses.get(name)
            if loss is not None:
                term = weights[name] * loss
                total = term if total is None else total + term
        return total

    def combine_two(self, first: Dict[str, Optional[torch.Tensor]],
                    second: Callable[[], Optional[Dict[str, Optional[torch.Tensor]]]],
                    model) -> torch.Tensor:
        """`batches_per_step = 2`: the losses of the first half and a function that runs the
        second half (None when the batch has one row); only called when needed."""
        raise NotImplementedError

    def start_epoch(self, epoch: int, output_dir=None, is_writer: bool = True) -> None:
        """Called by the trainer before each training epoch (per-epoch schedules, logs)."""

    def dropped(self) -> Tuple[str, ...]:
        """Objectives no longer computed (the model skips them and the passes only they read)."""
        return ()

    def stats(self) -> Dict[str, float]:
        """What to log each step (ESPnet's reporter averages it per epoch)."""
        return {}

    @classmethod
    def check(cls, accum_grad: int, use_amp: bool, name: str) -> None:
        """Refuse trainer options this strategy cannot honour, naming the key."""
        if accum_grad > 1 and not cls.supports_accum_grad:
            raise StrategyError(f"--strategy {name} does not support --accum_grad > 1 "
                                f"(got {accum_grad}); use a larger --batch_bins instead")
        if use_amp and cls.needs_gradients:
            raise StrategyError(f"--strategy {name} takes per-objective gradients, which "
                                "--use_amp's loss scaling does not cover; set --use_amp false")
