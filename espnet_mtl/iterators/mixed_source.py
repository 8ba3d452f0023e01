"""Mixed-source training data: ST triples plus MT-only bitext and ASR-only pairs.

ESPnet's iterators expect every field in every example. We keep ESPnet's
parts and add two small ones around them:

* `MixedSourceDataset` (an ESPnet `AbsDataset`) reads each source with its
  own `ESPnetDataset` and the task's preprocessor, and gives a missing field
  an empty placeholder (length 0). After ESPnet's `CommonCollateFn`, a length
  of 0 marks "this example has no such field": MT-only examples have
  `speech_lengths == 0`, ASR-only examples `text_lengths == 0`. The model
  computes each objective on the examples that have its fields.
* `MixedSourceSampler` (an ESPnet `AbsSampler`) combines one ESPnet batch
  sampler per source, built by `build_batch_sampler` from the source's own
  shape files, into the batches of an epoch:

    ratio        every batch holds a sub-batch of each source, their sizes in
                 the ratio (`st=2,mt=1,asr=1` with batch_size 16 -> 8 + 4 + 4)
    round_robin  whole batches of one source in turn, `ratio` of each per
                 cycle (`st=2,mt=1` -> ST, ST, MT, ST, ST, MT, ...); ST batches
                 left over after the last whole cycle wait for the next epoch

  An epoch is one pass over the ST (primary) batches; the auxiliary sources
  are cycled, continuing where the previous epoch stopped, and reshuffled on
  every pass. Everything depends only on (seed + epoch), so resuming gives
  the same batches, as with ESPnet's own iterator.

The result is handed to ESPnet's `SequenceIterFactory` unchanged. Keys of
auxiliary examples are `<source>/<utt id>` (`mt/wmt-000001`), so ids from
different corpora never clash.

Options (train only; validation stays ST):
    --train_mt_data_path_and_name_and_type dump/mt/text.src,src_text,text
    --train_mt_data_path_and_name_and_type dump/mt/text.tgt,text,text
    --train_mt_shape_file <stats>/src_text_shape.bpe --train_mt_shape_file ...
    --train_asr_data_path_and_name_and_type dump/asr/wav.scp,speech,sound ...
    --train_asr_shape_file ...
    --mixed_source_mode ratio|round_robin  --mixed_source_ratio st=2,mt=1,asr=1
    --mt_source_noise_prob 0.1  (IMTL noise on the MT-only source: `mt_noise`)
"""

from __future__ import annotations

import argparse
import logging
import re
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet2.samplers.abs_sampler import AbsSampler
from espnet2.samplers.build_batch_sampler import build_batch_sampler
from espnet2.train.dataset import AbsDataset, ESPnetDataset
from espnet2.utils.types import str2triple_str, str_or_none

from espnet_mtl.iterators import mt_noise

PRIMARY = "st"
#: auxiliary source -> (fields it must provide, what it lacks)
AUX_SOURCES = {
    "mt": (("src_text", "text"), "speech"),
    "asr": (("speech", "src_text"), "text"),
}
MODES = ("ratio", "round_robin")


class MixedSourceError(ValueError):
    """A configuration error of the mixed-source options."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Mixed-source training data (espnet_mtl)")
    for source, (fields, lacks) in AUX_SOURCES.items():
        group.add_argument(
            f"--train_{source}_data_path_and_name_and_type", type=str2triple_str,
            action="append", default=[],
            help=f"{source.upper()}-only training data (fields {', '.join(fields)}; no "
                 f"{lacks}), as --train_data_path_and_name_and_type. Repeatable.")
        group.add_argument(
            f"--train_{source}_shape_file", type=str, action="append", default=[],
            help=f"Shape files of the {source.upper()}-only data, one per field; each "
                 "must have the basename of a --train_shape_file (for its fold length).")
    group.add_argument("--mixed_source_mode", choices=MODES, default="ratio",
                       help="ratio: every batch mixes the sources; round_robin: "
                            "whole batches of one source in turn.")
    group.add_argument("--mixed_source_ratio", type=str_or_none, default=None,
                       help="e.g. 'st=2,mt=1,asr=1' (default: 1 for each source given)")
    mt_noise.add_arguments(group)


def configured_sources(args: argparse.Namespace) -> List[str]:
    return [s for s in AUX_SOURCES
            if getattr(args, f"train_{s}_data_path_and_name_and_type", None)]


def parse_ratio(spec: Optional[str], sources: Sequence[str]) -> Dict[str, int]:
    """'st=2,mt=1' -> {'st': 2, 'mt': 1}; every source in `sources` must get one."""
    if not spec:
        return {s: 1 for s in sources}
    ratio: Dict[str, int] = {}
    for item in re.split(r"[,\s]+", spec.strip()):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit() or int(value) < 1:
            raise MixedSourceError(
                f"--mixed_source_ratio: bad item '{item}'; expected source=<positive integer>, "
                f"e.g. 'st=2,mt=1'")
        if name not in sources:
            raise MixedSourceError(
                f"--mixed_source_ratio names '{name}', but the training sources are "
                f"{', '.join(sources)}")
        ratio[name] = int(value)
    missing = [s for s in sources if s not in ratio]
    if missing:
        raise MixedSourceError(f"--mixed_source_ratio '{spec}' gives no ratio for "
                               f"{', '.join(missing)}")
    return ratio


def check_model_uses_sources(args: argparse.Namespace, sources: Sequence[str],
                             model_class=None) -> None:
    """Each auxiliary source must feed an objective of the configured model.

    The model class answers (`consumes(fields, model_conf)`); `model_class`
    defaults to the registered class of `args.model`.
    """
    from espnet_mtl import registry

    name = getattr(args, "model", None) or "espnet"
    if model_class is None and name in registry.MODELS:
        model_class = registry.get("model", name)
    if not hasattr(model_class, "consumes"):
        raise MixedSourceError(
            f"mixed-source training data (--train_{sources[0]}_data_path_and_name_and_type) "
            f"needs --model {' or '.join(registry.MODELS)} (got '{name}')")
    conf = getattr(args, "model_conf", None) or {}
    for source in sources:
        fields = AUX_SOURCES[source][0]
        if not model_class.consumes(fields, conf):
            readers = model_class.consumes(fields, None, every=True)
            raise MixedSourceError(
                f"{source.upper()}-only data is given but no loss can use it: turn on an "
                f"objective that reads it ({', '.join(readers)}: model_conf.objectives), "
                f"or drop --train_{source}_data_path_and_name_and_type")


def source_fields(args: argparse.Namespace) -> Dict[str, Tuple[str, ...]]:
    """Training source -> the fields its examples carry (the ST data: its data names)."""
    primary = tuple(name for _, name, _ in (args.train_data_path_and_name_and_type or []))
    return {PRIMARY: primary, **{s: AUX_SOURCES[s][0] for s in configured_sources(args)}}


def check_objectives_fed(args: argparse.Namespace, model_class) -> None:
    """Every objective on must have a training source whose examples carry its fields."""
    if not hasattr(model_class, "objectives_on"):
        return
    sources = source_fields(args)
    for name, fields in model_class.objectives_on(args.model_conf).items():
        if not any(set(fields) <= set(have) for have in sources.values()):
            given = "; ".join(f"{s}: {', '.join(f) or 'nothing'}" for s, f in sources.items())
            raise MixedSourceError(
                f"model_conf objective '{name}' reads {', '.join(fields)}, but no training "
                f"source provides them ({given}); add the missing field to the training data "
                f"(e.g. --train_data_path_and_name_and_type <dir>/text.<src>,src_text,text) "
                f"or turn the objective off")


class MixedSourceDataset(AbsDataset):
    """The primary ST dataset plus auxiliary ones; missing fields -> empty arrays."""

    def __init__(self, primary: AbsDataset, aux: Dict[str, AbsDataset]):
        self.primary = primary
        self.aux = dict(aux)
        self._names = tuple(primary.names())
        for source, dataset in self.aux.items():
            extra = set(dataset.names()) - set(self._names)
            if extra:
                raise MixedSourceError(
                    f"{source.upper()}-only data has field(s) {sorted(extra)} that the ST data "
                    f"lacks (ST fields: {list(self._names)})")
        # Placeholder shape/dtype per field: from one ST example after
        # preprocessing (fbank speech is (T, D), raw speech (T,), text (L,)).
        _, example = primary[0]
        self._empty = {name: np.zeros((0,) + np.asarray(value).shape[1:],
                                      dtype=np.asarray(value).dtype)
                       for name, value in example.items()}

    def has_name(self, name) -> bool:
        return name in self._names

    def names(self) -> Tuple[str, ...]:
        return self._names

    def __getitem__(self, key):
        source, sep, uid = key.partition("/") if isinstance(key, str) else ("", "", key)
        if sep and source in self.aux:
            _, data = self.aux[source][uid]
        else:
            _, data = self.primary[key]
        for name in self._names:
            if name not in data:
                data[name] = self._empty[name]
        return key, data

    def __len__(self):
        return len(self.primary) + sum(len(d) for d in self.aux.values())

    def __repr__(self):
        parts = [f"  {PRIMARY}: {self.primary}"]
        parts += [f"  {s}: {d}" for s, d in self.aux.items()]
        return f"{self.__class__.__name__}(\n" + "\n".join(parts) + "\n)"


class MixedSourceSampler(AbsSampler):
    """Combines per-source batch lists into the batches of an epoch (see module doc)."""

    def __init__(self, source_batches: Dict[str, List[Tuple[str, ...]]], ratio: Dict[str, int],
                 mode: str = "ratio", shuffle: bool = True, rank: int = 0,
                 world_size: int = 1):
        if mode not in MODES:
            raise MixedSourceError(f"mixed_source_mode must be one of {MODES}, got {mode!r}")
        if PRIMARY not in source_batches:
            raise MixedSourceError("the ST data is the primary source and must be present")
        for source, batches in source_batches.items():
            if not batches:
                raise MixedSourceError(f"the {source.upper()} training data gives no batches")
        self.source_batches = source_batches
        self.sources = list(source_batches)
        self.ratio = ratio
        self.mode = mode
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        if mode == "round_robin" and len(source_batches[PRIMARY]) < ratio[PRIMARY]:
            raise MixedSourceError(
                f"round_robin with st={ratio[PRIMARY]} needs at least {ratio[PRIMARY]} ST "
                f"batches; the ST data gives {len(source_batches[PRIMARY])}")
        if world_size > 1:
            for source, batches in source_batches.items():
                small = min(len(b) for b in batches)
                if small < world_size:
                    raise MixedSourceError(
                        f"a {source.upper()} batch has {small} example(s), fewer than the "
                        f"{world_size} processes: raise batch_size/batch_bins or its ratio")

    def __len__(self) -> int:
        if self.mode == "ratio":
            return len(self.source_batches[PRIMARY])
        groups = len(self.source_batches[PRIMARY]) // self.ratio[PRIMARY]
        return sum(self.ratio.values()) * groups

    def __iter__(self):
        return iter(self.generate(0))

    def _aux_stream(self, source: str, start: int, count: int):
        """Batches start..start+count-1 of the endless, pass-wise reshuffled stream."""
        batches = self.source_batches[source]
        n = len(batches)
        out = []
        order, order_pass = None, None
        for j in range(start, start + count):
            p, i = divmod(j, n)
            if p != order_pass:
                order = (np.random.RandomState(p).permutation(n) if self.shuffle
                         else np.arange(n))
                order_pass = p
            out.append(batches[order[i]])
        return out

    def _shard(self, batch: Sequence[str]) -> Tuple[str, ...]:
        return tuple(batch[self.rank::self.world_size])

    def generate(self, seed):
        primary = list(self.source_batches[PRIMARY])
        if self.shuffle:
            np.random.RandomState(seed).shuffle(primary)
        if self.mode == "ratio":
            n = len(primary)
            aux = {s: self._aux_stream(s, seed * n, n) for s in self.sources if s != PRIMARY}
            return [
                tuple(k for s in self.sources
                      for k in self._shard(primary[i] if s == PRIMARY else aux[s][i]))
                for i in range(n)
            ]
        # round robin: groups of ratio[s] consecutive batches of each source
        groups = len(primary) // self.ratio[PRIMARY]
        aux = {s: self._aux_stream(s, seed * groups * self.ratio[s],
                                   groups * self.ratio[s])
               for s in self.sources if s != PRIMARY}
        out = []
        for g in range(groups):
            for s in self.sources:
                r = self.ratio[s]
                chunk = (primary if s == PRIMARY else aux[s])[g * r:(g + 1) * r]
                out.extend(self._shard(b) for b in chunk)
        return out


def _fold_lengths_for(shape_files: Sequence[str], main_shape_files: Sequence[str],
                      main_fold_lengths: Sequence[int], option: str) -> List[int]:
    by_name = {Path(p).name: f for p, f in zip(main_shape_files, main_fold_lengths)}
    out = []
    for path in shape_files:
        name = Path(path).name
        if name not in by_name:
            raise MixedSourceError(
                f"{option} {path}: its basename '{name}' matches no --train_shape_file "
                f"({', '.join(sorted(by_name))}); name it like the ST shape file of the "
                "same field, which gives its fold length")
        out.append(by_name[name])
    return out


def _source_batch_args(ratio: Dict[str, int], mode: str, batch_size: int,
                       batch_bins: int) -> Dict[str, Tuple[int, int]]:
    """Per-source (batch_size, batch_bins): the ratio's share in ratio mode."""
    if mode == "round_robin":
        return {s: (batch_size, batch_bins) for s in ratio}
    total = sum(ratio.values())
    return {s: (max(1, round(batch_size * r / total)), max(1, round(batch_bins * r / total)))
            for s, r in ratio.items()}


def build_iter_factory(task, args: argparse.Namespace, iter_options, mode: str):
    """ESPnet's SequenceIterFactory over a MixedSourceDataset and MixedSourceSampler."""
    import torch
    from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

    sources = configured_sources(args)
    check_model_uses_sources(args, sources)
    noise = mt_noise.from_args(args, sources, iter_options.preprocess_fn)  # None: off
    ratio = parse_ratio(args.mixed_source_ratio, [PRIMARY, *sources])
    if getattr(args, "fold_length", None) and len(args.fold_length) != len(iter_options.shape_files):
        raise MixedSourceError(f"--fold_length has {len(args.fold_length)} values for "
                               f"{len(iter_options.shape_files)} --train_shape_file")
    sizes = _source_batch_args(ratio, args.mixed_source_mode, iter_options.batch_size,
                               iter_options.batch_bins)
    distributed = iter_options.distributed
    if distributed and args.mixed_source_mode == "round_robin" and not args.unused_parameters:
        # An MT-only batch never reaches the acoustic encoder: DDP must be told.
        raise MixedSourceError("--mixed_source_mode round_robin with several GPUs needs "
                               "--unused_parameters true")
    world_size = torch.distributed.get_world_size() if distributed else 1
    rank = torch.distributed.get_rank() if distributed else 0

    def batches_of(shape_files, fold_lengths, source):
        bs, bins = sizes[source]
        sampler = build_batch_sampler(
            type=iter_options.batch_type, shape_files=shape_files,
            fold_lengths=fold_lengths, batch_size=bs, batch_bins=bins,
            sort_in_batch=args.sort_in_batch, sort_batch=args.sort_batch,
            drop_last=args.drop_last_iter,
            min_batch_size=max(world_size, args.min_batch_size if not distributed else 1),
        )
        logging.info(f"[{mode}] {source} batch sampler: {sampler}")
        return list(sampler)

    source_batches = {PRIMARY: batches_of(iter_options.shape_files, args.fold_length, PRIMARY)}
    aux_datasets = {}
    for source in sources:
        fields, _ = AUX_SOURCES[source]
        triples = getattr(args, f"train_{source}_data_path_and_name_and_type")
        names = [name for _, name, _ in triples]
        if sorted(names) != sorted(fields):
            raise MixedSourceError(
                f"--train_{source}_data_path_and_name_and_type gives fields {names}; "
                f"{source.upper()}-only data needs exactly {list(fields)}")
        shape_files = getattr(args, f"train_{source}_shape_file")
        if not shape_files:
            raise MixedSourceError(f"--train_{source}_shape_file is missing (one per field "
                                   f"of --train_{source}_data_path_and_name_and_type)")
        fold = _fold_lengths_for(shape_files, iter_options.shape_files, args.fold_length,
                                 f"--train_{source}_shape_file")
        source_batches[source] = [tuple(f"{source}/{k}" for k in b)
                                  for b in batches_of(shape_files, fold, source)]
        noised = source == "mt" and noise is not None
        # (ESPnet's cache keeps preprocessed examples: it would freeze one noise draw.)
        aux_datasets[source] = ESPnetDataset(
            triples, float_dtype=args.train_dtype,
            preprocess=noise if noised else iter_options.preprocess_fn,
            max_cache_size=0.0 if noised else iter_options.max_cache_size,
            max_cache_fd=iter_options.max_cache_fd,
            allow_multi_rates=iter_options.allow_multi_rates,
        )
    sampler = MixedSourceSampler(source_batches, ratio, args.mixed_source_mode,
                                 shuffle=iter_options.train, rank=rank, world_size=world_size)
    primary = task.build_dataset(args, iter_options)
    dataset = MixedSourceDataset(primary, aux_datasets)
    logging.info(
        f"[{mode}] mixed-source batches ({args.mixed_source_mode}, ratio {ratio}): "
        + ", ".join(f"{s} {len(b)} batches" for s, b in source_batches.items())
        + f" -> {len(sampler)} batches per epoch")
    logging.info(f"[{mode}] dataset:\n{dataset}")
    # The sampler shuffles (and shards) itself: the factory must keep its order.
    # With MT-source noise, the factory also tells the noise each epoch.
    factory = SequenceIterFactory if noise is None else partial(mt_noise.EpochIterFactory, noise)
    return factory(
        dataset=dataset, batches=sampler, seed=args.seed,
        num_iters_per_epoch=iter_options.num_iters_per_epoch, shuffle=False,
        num_workers=args.num_workers, collate_fn=iter_options.collate_fn,
        pin_memory=args.ngpu > 0,
    )
