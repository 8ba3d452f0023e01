"""Our ESPnet Trainer: ESPnet's training loop, with a training strategy deciding the update.

ESPnet's `train_one_epoch` calls `model(**batch)`, back-propagates the
returned loss, clips, steps. We keep that loop as it is and hand it a thin
wrapper around the model (`StrategyStep`) whose forward asks the model for
each objective's loss with its graph, lets the strategy turn them into the
one scalar to back-propagate (a weighted sum, or a surrogate whose gradient
is a combination of per-objective gradients) and, every
`--grad_probe_interval` updates, records the gradient-conflict probe.
Under `--strategy static` without the probe the wrapper is not used at all:
the loop is exactly ESPnet's. A strategy that takes two independent batches
per update (`batches_per_step = 2`, MoDo) gets the batch's even and odd rows
as two half-batches, the second run only when the strategy asks for it.

Options (added to the task's parser):
    --strategy static|weight_schedule|gradient_sum|task_norm|modo   (espnet_mtl.registry.STRATEGIES)
    --strategy_conf {...}                             the strategy's options
    --grad_probe_interval N                           probe every N updates (0: off)
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from espnet2.train.trainer import Trainer, TrainerOptions
from espnet2.utils.build_dataclass import build_dataclass
from espnet2.utils.nested_dict_action import NestedDictAction

from espnet_mtl import registry
from espnet_mtl.training.probes.grad_conflict import GradientConflictProbe
from espnet_mtl.training.strategies.static import StaticWeights


@dataclasses.dataclass
class MTLTrainerOptions(TrainerOptions):
    strategy: str = "static"
    grad_probe_interval: int = 0


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP / DataParallel wrappers."""
    while hasattr(model, "module") and isinstance(
            model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    return model


def split_rows(batch: dict) -> tuple:
    """A batch -> (even rows, odd rows), each padded only to its own longest row;
    (batch, None) for a batch of one row."""
    size = next(v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor))
    if size < 2:
        return batch, None
    halves = []
    for start in (0, 1):
        rows = torch.arange(start, size, 2)
        half = {k: v.index_select(0, rows.to(v.device)) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}
        for key in list(half):
            lengths = half.get(f"{key}_lengths")
            if isinstance(lengths, torch.Tensor) and half[key].dim() > 1:
                half[key] = half[key][:, :max(int(lengths.max()), 1)]
        halves.append(half)
    return halves[0], halves[1]


def _merge_stats(a: dict, b: dict) -> dict:
    """The two halves' stats: their mean where both have a value."""
    out = dict(a)
    for key, value in b.items():
        if out.get(key) is None:
            out[key] = value
        elif value is not None:
            out[key] = (out[key] + value) / 2
    return out


class StrategyStep(torch.nn.Module):
    """What ESPnet's loop calls as `model(**batch)` when a strategy or probe is active."""

    def __init__(self, model: torch.nn.Module, probe: GradientConflictProbe | None, reporter):
        super().__init__()
        self.module = model  # the (possibly DDP-wrapped) model: parameters(), train()
        object.__setattr__(self, "core", unwrap(model))
        object.__setattr__(self, "probe", probe)
        object.__setattr__(self, "reporter", reporter)

    def forward(self, **batch):
        strategy = self.core.strategy
        if strategy.batches_per_step == 2:
            return self._two_halves(strategy, batch)
        out = self.module(**batch, return_objectives=True)
        losses, stats = out["objectives"], dict(out["stats"])
        if self.probe is not None:
            step = self.reporter.get_total_count() + 1
            if self.probe.due(step):
                self.probe.record(losses, self.core, self.reporter.get_epoch(), step)
        used = strategy.stats()  # the weights this update uses (combine may advance them)
        loss = strategy.combine(losses, self.core)
        if loss is None:  # no objective of this batch has a loss: the model's own zero
            loss = out["loss"]
        elif not strategy.needs_gradients:
            stats["loss"] = loss.detach()  # the weighted sum actually trained on
        for key, value in used.items():
            stats[key] = torch.tensor(float(value))
        return {"loss": loss, "stats": stats, "weight": out["weight"]}

    def _two_halves(self, strategy, batch):
        first, second = split_rows(batch)
        out = self.module(**first, return_objectives=True)
        if self.probe is not None:
            step = self.reporter.get_total_count() + 1
            if self.probe.due(step):
                self.probe.record(out["objectives"], self.core, self.reporter.get_epoch(), step)
        ran = {}

        def second_losses():
            if second is None:
                return None
            ran["out"] = self.module(**second, return_objectives=True)
            return ran["out"]["objectives"]

        loss = strategy.combine_two(out["objectives"], second_losses, self.core)
        stats, weight = dict(out["stats"]), out["weight"]
        if "out" in ran:
            stats = _merge_stats(stats, ran["out"]["stats"])
            weight = weight + ran["out"]["weight"]
        if loss is None:
            loss = out["loss"]
        for key, value in strategy.stats().items():  # the weights this update used
            stats[key] = torch.tensor(float(value))
        return {"loss": loss, "stats": stats, "weight": weight}


class MTLTrainer(Trainer):
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group("Training strategy (espnet_mtl)")
        group.add_argument("--strategy", default="static", choices=sorted(registry.STRATEGIES),
                           help="how per-objective losses become one update")
        group.add_argument("--strategy_conf", action=NestedDictAction, default={},
                           help="options of the strategy")
        group.add_argument("--grad_probe_interval", type=int, default=0,
                           help="record the gradient-conflict probe every N updates (0: off) "
                                "into <output_dir>/grad_conflict.csv")

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> TrainerOptions:
        options = build_dataclass(MTLTrainerOptions, args)
        if options.grad_probe_interval < 0:
            raise ValueError(f"--grad_probe_interval must be >= 0, got {options.grad_probe_interval}")
        strategy = registry.get("strategy", options.strategy, key="--strategy")
        strategy.check(options.accum_grad, options.use_amp, options.strategy)
        if (strategy.may_drop_objectives and getattr(args, "ngpu", 0) > 1
                and not getattr(args, "unused_parameters", False)):
            # a dropped objective's own parameters (e.g. the MT embedding) get no gradient
            raise ValueError(f"--strategy {options.strategy} may drop objectives during "
                             "training; with several GPUs set --unused_parameters true")
        if strategy.may_drop_objectives and getattr(args, "mixed_source_mode", None) == "round_robin":
            # a whole batch of one source whose objectives were dropped would feed no loss
            raise ValueError(f"--strategy {options.strategy} may drop objectives during "
                             "training, which --mixed_source_mode round_robin cannot follow "
                             "(a batch of only MT-only rows would then train nothing); use "
                             "--mixed_source_mode ratio")
        return options

    @classmethod
    def validate_one_epoch(cls, model, *args, **kwargs):
        core = unwrap(model)
        if not hasattr(core, "validating"):
            return super().validate_one_epoch(model, *args, **kwargs)
        core.validating = True  # skip the training-only objectives (MT path, R-drop)
        try:
            return super().validate_one_epoch(model, *args, **kwargs)
        finally:
            core.validating = False

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter,
                        summary_writer, options, distributed_option) -> bool:
        core = unwrap(model)
        if hasattr(core, "start_epoch"):  # per-epoch schedules of the model (ComSL's freezing)
            core.start_epoch(reporter.get_epoch())
        strategy = getattr(core, "strategy", None)
        interval = getattr(options, "grad_probe_interval", 0)
        probe = (GradientConflictProbe(options.output_dir, interval)
                 if interval > 0 and strategy is not None else None)
        if probe is not None and distributed_option.distributed:
            # every rank takes part in the gradients' all-reduce; one writes
            probe.write = distributed_option.dist_rank == 0
        if strategy is not None:
            strategy.start_epoch(reporter.get_epoch(), options.output_dir,
                                 not distributed_option.distributed
                                 or distributed_option.dist_rank == 0)
        if strategy is None or (isinstance(strategy, StaticWeights) and probe is None):
            return super().train_one_epoch(model, iterator, optimizers, schedulers, scaler,
                                           reporter, summary_writer, options, distributed_option)
        return super().train_one_epoch(StrategyStep(model, probe, reporter), iterator,
                                       optimizers, schedulers, scaler, reporter,
                                       summary_writer, options, distributed_option)
