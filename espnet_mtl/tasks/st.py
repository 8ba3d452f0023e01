"""Our ESPnet task: ESPnet's STTask plus a `--model` choice and mixed-source data.

ESPnet's STTask hard-codes ESPnetSTModel in build_model. We extend it (as
ESPnet's own S2STTask does) with a `model` ClassChoices slot whose first
choice is ESPnet's own model (`espnet`, the baseline). Other choices are our
model classes; each builds itself from the parsed arguments through a
`build_from_task_args(args, task)` classmethod, so new models need no change
here beyond one registration line. Training data may add MT-only and
ASR-only sources (`espnet_mtl.iterators.mixed_source`, `--train_mt_*` / `--train_asr_*`).

Importing this module registers every class we add to ESPnet's choices
(`espnet_mtl.registry`), so any process that builds a model through this task
(collect stats, training, DDP workers, decoding, packing) sees them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from espnet2.st.espnet_model import ESPnetSTModel
from espnet2.tasks.st import STTask
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.class_choices import ClassChoices
from espnet2.utils.nested_dict_action import NestedDictAction

from espnet_mtl import registry
from espnet_mtl.iterators import mixed_source, mt_noise
from espnet_mtl.training.checkpoints import repair_interrupted_checkpoints
from espnet_mtl.training.experiment_guard import check_resumable, own_experiment
from espnet_mtl.training.probes import grad_conflict, layer_conflict
from espnet_mtl.training.strategies import build_strategy
from espnet_mtl.training.trainer import MTLTrainer
from espnet_mtl.training.curves import draw_training_curves

model_choices = ClassChoices(
    "model",
    classes=dict(espnet=ESPnetSTModel),
    type_check=AbsESPnetModel,
    default="espnet",
)


class MTLSTTask(STTask):
    """STTask with a model choice; everything else is inherited from ESPnet."""

    class_choices_list = STTask.class_choices_list + [model_choices]
    trainer = MTLTrainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        # STTask defines --model_conf itself (for ESPnetSTModel) and then adds
        # every ClassChoices; our `model` choice adds --model_conf again. Let
        # the later definition win, so its defaults follow the chosen model.
        saved = parser.conflict_handler
        parser.conflict_handler = "resolve"
        try:
            super().add_task_arguments(parser)
        finally:
            parser.conflict_handler = saved
        # ESPnet's STTask offers hugging_face for the target only; a model that brings one
        # tokenizer for both sides (ComSL's mBART-50) needs it for the source too, and
        # ESPnet's preprocessor builds either side's tokenizer the same way.
        for action in parser._actions:
            if "--src_token_type" in action.option_strings and action.choices \
                    and "hugging_face" not in action.choices:
                action.choices = [*action.choices, "hugging_face"]
        mixed_source.add_arguments(parser)
        group = parser.add_argument_group("Optimizer parameter groups (espnet_mtl)")
        group.add_argument("--lr_groups", action=NestedDictAction, default={},
                           help="parameter-name prefix -> learning rate, e.g. "
                                "'{encoder: 5.0e-5}' (Objective Soups: backbone and heads at "
                                "their own rates); the other parameters use optim_conf's lr")

    @classmethod
    def build_optimizers(cls, args, model):
        groups = dict(getattr(args, "lr_groups", None) or {})
        if not groups:
            return super().build_optimizers(args, model)
        if args.sharded_ddp or args.exclude_weight_decay:
            raise ValueError("--lr_groups cannot be combined with --sharded_ddp or "
                             "--exclude_weight_decay")
        from espnet2.tasks.abs_task import optim_classes

        members = {prefix: [] for prefix in groups}
        rest = []
        for name, param in model.named_parameters():
            # the longest matching prefix wins: {decoder: .., decoder.output_layer: ..}
            match = max((p for p in groups if name == p or name.startswith(p + ".")),
                        key=len, default=None)
            (rest if match is None else members[match]).append(param)
        empty = [p for p, params in members.items() if not params]
        if empty:
            raise ValueError(f"--lr_groups: no parameter of model {args.model} starts with "
                             f"{empty[0]!r}; top-level modules: "
                             f"{sorted({n.split('.')[0] for n, _ in model.named_parameters()})}")
        param_groups = [{"params": rest}] + [{"params": members[p], "lr": float(lr)}
                                             for p, lr in groups.items()]
        return [optim_classes[args.optim](param_groups, **args.optim_conf)]

    @classmethod
    def build_sequence_iter_factory(cls, args, iter_options, mode: str):
        # Training batches may mix ST with MT-only / ASR-only data; validation
        # and everything else are ESPnet's own iterators.
        if mode == "train" and mixed_source.configured_sources(args):
            return mixed_source.build_iter_factory(cls, args, iter_options, mode)
        if mode == "train":  # refuses MT-source noise options without MT-only data
            mt_noise.from_args(args, [])
        return super().build_sequence_iter_factory(args, iter_options, mode)

    @classmethod
    def main(cls, args: argparse.Namespace | None = None, cmd=None):
        if args is None:
            args = cls.get_parser().parse_args(cmd)
        # Only the first process of a (multi-node) job owns and checks the directory.
        first_process = os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0")) == "0"
        if args.collect_stats or not args.output_dir or not first_process:
            super().main(args=args)
            return
        if not args.dry_run:
            mixed_source.check_objectives_fed(args, model_choices.get_class(args.model or "espnet"))
        with own_experiment(args.output_dir):
            if args.resume:
                check_resumable(args, args.output_dir)
                # A run killed while ESPnet saved a checkpoint must still resume.
                repair_interrupted_checkpoints(args.output_dir)
            super().main(args=args)
            # The curves once, not after every epoch (training_curves.py says why).
            if not args.use_matplotlib and Path(args.output_dir, "checkpoint.pth").exists():
                draw_training_curves(args.output_dir)
            probe_csv = Path(args.output_dir, grad_conflict.CSV_NAME)
            if probe_csv.exists():
                grad_conflict.plot(probe_csv, Path(args.output_dir, "images"))
            layers_csv = Path(args.output_dir, layer_conflict.CSV_NAME)
            if layers_csv.exists():
                layer_conflict.plot(layers_csv, Path(args.output_dir, "images"))

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> AbsESPnetModel:
        name = getattr(args, "model", None) or "espnet"
        if name == "espnet":
            return super().build_model(args)
        model_class = model_choices.get_class(name)
        model = model_class.build_from_task_args(args, cls)
        # The strategy's state (weights that change in training) is checkpointed with
        # the model: it rides along as a submodule the model's forward never uses.
        weights = {n: w for n, w in model.objective_weights.items() if n in model.objectives}
        model.strategy = build_strategy(getattr(args, "strategy", "static"),
                                        getattr(args, "strategy_conf", None), weights)
        return model


registry.register_all(model_choices)
