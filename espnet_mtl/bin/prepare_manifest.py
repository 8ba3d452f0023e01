"""Stage 1 from manifests: your own corpus, one TSV / JSON Lines manifest per split.

    python -m espnet_mtl.bin.prepare_manifest --src_lang en --tgt_lang de --out data \\
        --manifest train=/corpora/mine/train.tsv --manifest dev=/corpora/mine/dev.tsv \\
        --manifest test=/corpora/mine/test.jsonl

writes `data/<split>.<src>-<tgt>/` (rows with audio, transcript and translation),
and where a manifest has them `data/<split>_asr_only.<src>/` (audio + transcript:
auxiliary ASR data, `--aux_asr_sets dir:data/<split>_asr_only.<src>`) and
`data/<split>_mt_only.<src>-<tgt>/` (transcript + translation, no audio:
`--aux_mt_sets dir:data/<split>_mt_only.<src>-<tgt>`). The columns and the
checks are `espnet_mtl.corpora.manifest`'s. Every manifest is read (and so
checked) before anything is written.

lhotse manifests instead (`espnet_mtl.corpora.lhotse_import`), per split either
a CutSet or a RecordingSet + SupervisionSet, the translation in a supervision
custom field:

    python -m espnet_mtl.bin.prepare_manifest --src_lang en --tgt_lang de --out data \
        --lhotse_cuts train=manifests/cuts_train.jsonl.gz \
        --lhotse_recordings dev=manifests/recordings_dev.jsonl.gz \
        --lhotse_supervisions dev=manifests/supervisions_dev.jsonl.gz \
        --translation_field translation

A scaffolded recipe's stage 1 names a directory and the splits instead:
`--manifest_dir D --splits train,dev,test` takes `D/<split>.tsv` or `D/<split>.jsonl`
(`--input manifest`), or with `--input lhotse` lhotse's file names
`D/*cuts_<split>.jsonl.gz`, else `D/*recordings_<split>.jsonl.gz` +
`D/*supervisions_<split>.jsonl.gz`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_mtl.corpora.manifest import ManifestError, Rows, read_manifest
from espnet_mtl.corpora.writer import (
    check_dir_name,
    write_asr_data_dir,
    write_mt_data_dir,
    write_st_data_dir,
)
from espnet_mtl.runner.cli import run_main

PROG = "prepare_manifest"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", action="append", default=[], metavar="SPLIT=PATH",
                   help="a split's manifest (.tsv or .jsonl); repeat for each split")
    p.add_argument("--lhotse_cuts", action="append", default=[], metavar="SPLIT=PATH",
                   help="a split's lhotse CutSet")
    p.add_argument("--lhotse_recordings", action="append", default=[], metavar="SPLIT=PATH",
                   help="a split's lhotse RecordingSet (with --lhotse_supervisions)")
    p.add_argument("--lhotse_supervisions", action="append", default=[], metavar="SPLIT=PATH",
                   help="a split's lhotse SupervisionSet (with --lhotse_recordings)")
    p.add_argument("--manifest_dir", default=None,
                   help="find each split's input here (with --splits; see above)")
    p.add_argument("--splits", default="train,dev,test", help="with --manifest_dir")
    p.add_argument("--input", choices=("manifest", "lhotse"), default="manifest",
                   help="with --manifest_dir: what the directory holds")
    p.add_argument("--translation_field", default="translation",
                   help="lhotse: the supervision custom field holding the translation")
    p.add_argument("--src_lang", required=True)
    p.add_argument("--tgt_lang", required=True)
    p.add_argument("--columns", default=None,
                   help="map your header names onto ours: id=utt,audio=path,src_text=sentence")
    p.add_argument("--missing_audio", choices=("error", "drop"), default="error",
                   help="a row whose audio file is missing: stop (default) or drop and count it")
    p.add_argument("--out", default="data")
    p.add_argument("--nj", type=int, default=1, help="processes for text normalisation")
    return p


def split_paths(option: str, items: list[str]) -> dict[str, Path]:
    """`SPLIT=PATH` items -> {split: path}, in order."""
    splits: dict[str, Path] = {}
    for item in items:
        split, sep, path = item.partition("=")
        if not sep or not path:
            raise ManifestError(f"--{option} {item}: expected SPLIT=PATH, e.g. train=data/train.tsv")
        check_dir_name(split)
        if split in splits:
            raise ManifestError(f"--{option}: split {split} given twice")
        splits[split] = Path(path)
    return splits


def _one(directory: Path, patterns: list[str], what: str) -> Path | None:
    hits = sorted({p for pattern in patterns for p in directory.glob(pattern)})
    if len(hits) > 1:
        raise ManifestError(f"{directory}: {len(hits)} files could be the {what} "
                            f"({', '.join(h.name for h in hits)}); keep one")
    return hits[0] if hits else None


def find_inputs(args: argparse.Namespace) -> None:
    """--manifest_dir: fill the per-split options from the files in the directory."""
    directory = Path(args.manifest_dir)
    if not directory.is_dir():
        raise ManifestError(f"--manifest_dir {directory}: not a directory")
    for split in [s for s in args.splits.split(",") if s]:
        if args.input == "manifest":
            path = _one(directory, [f"{split}.tsv", f"{split}.jsonl"], f"{split} manifest")
            if path is None:
                raise ManifestError(f"{directory}: no manifest for split {split}: expected "
                                    f"{split}.tsv or {split}.jsonl")
            args.manifest.append(f"{split}={path}")
            continue
        cuts = _one(directory, [f"*cuts_{split}.jsonl.gz", f"*cuts_{split}.jsonl"],
                    f"{split} cuts")
        if cuts is not None:
            args.lhotse_cuts.append(f"{split}={cuts}")
            continue
        recs = _one(directory, [f"*recordings_{split}.jsonl.gz", f"*recordings_{split}.jsonl"],
                    f"{split} recordings")
        sups = _one(directory, [f"*supervisions_{split}.jsonl.gz",
                                f"*supervisions_{split}.jsonl"], f"{split} supervisions")
        if recs is None or sups is None:
            raise ManifestError(f"{directory}: no lhotse manifests for split {split}: expected "
                                f"*cuts_{split}.jsonl.gz, or *recordings_{split}.jsonl.gz and "
                                f"*supervisions_{split}.jsonl.gz")
        args.lhotse_recordings.append(f"{split}={recs}")
        args.lhotse_supervisions.append(f"{split}={sups}")


def read_splits(args: argparse.Namespace) -> list[tuple[str, Rows]]:
    """Every split's rows, from manifests or lhotse manifests."""
    if args.manifest_dir is not None:
        find_inputs(args)
    manifests = split_paths("manifest", args.manifest)
    cuts = split_paths("lhotse_cuts", args.lhotse_cuts)
    recordings = split_paths("lhotse_recordings", args.lhotse_recordings)
    supervisions = split_paths("lhotse_supervisions", args.lhotse_supervisions)
    if set(recordings) != set(supervisions):
        raise ManifestError(f"--lhotse_recordings and --lhotse_supervisions name different splits "
                            f"({', '.join(sorted(recordings))} vs {', '.join(sorted(supervisions))})")
    order = [*manifests, *cuts, *recordings]
    twice = sorted({s for s in order if order.count(s) > 1})
    if twice:
        raise ManifestError(f"split {twice[0]} has two inputs (a manifest and lhotse, or cuts and "
                            f"recordings); give one")
    if not order:
        raise ManifestError("no input: give --manifest SPLIT=PATH (or lhotse manifests)")
    loaded = []
    for split in order:
        if split in manifests:
            rows = read_manifest(manifests[split], columns=args.columns,
                                 missing_audio=args.missing_audio)
        else:
            from espnet_mtl.corpora.lhotse_import import read_lhotse

            rows = read_lhotse(cuts=cuts.get(split), recordings=recordings.get(split),
                               supervisions=supervisions.get(split),
                               translation_field=args.translation_field,
                               missing_audio=args.missing_audio)
        loaded.append((split, rows))
    return loaded


def run(args: argparse.Namespace) -> None:
    loaded = read_splits(args)
    for split, rows in loaded:
        if not rows.st:
            raise ManifestError(f"{rows.path}: no row with audio, transcript and translation "
                                f"({rows.summary()})")
    out, src, tgt = Path(args.out), args.src_lang, args.tgt_lang
    for split, rows in loaded:
        write_st_data_dir(out / f"{split}.{src}-{tgt}", rows.st, src, tgt, workers=args.nj)
        if rows.asr_only:
            write_asr_data_dir(out / f"{split}_asr_only.{src}", rows.asr_only, src, workers=args.nj)
        if rows.mt_only:
            write_mt_data_dir(out / f"{split}_mt_only.{src}-{tgt}",
                              ((r.utt_id, r.src_text, r.tgt_text) for r in rows.mt_only), src, tgt,
                              workers=args.nj)


def main(argv=None) -> int:
    return run_main(PROG, get_parser(), run, (ManifestError,), argv)


if __name__ == "__main__":
    sys.exit(main())
