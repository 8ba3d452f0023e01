"""Stage 1 for MuST-C: write `data/<split>.<src>-<tgt>/` for each split.

    python -m espnet_mtl.bin.prepare_must_c --root /corpora/MUSTC_v1.0 --tgt_lang de \\
        --splits train,dev,tst-COMMON --out data
"""

from __future__ import annotations

import argparse
import sys

from espnet_mtl.runner.cli import run_main
from espnet_mtl.corpora.must_c import TARGETS, MustCError, check_target, read_must_c_with_stats
from espnet_mtl.corpora.writer import prepare_splits

PROG = "prepare_must_c"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="MuST-C root holding en-<tgt>/ folders")
    parser.add_argument("--tgt_lang", required=True, help="target language, e.g. de")
    parser.add_argument("--src_lang", default="en", help="source language (default: en)")
    parser.add_argument("--version", choices=tuple(TARGETS), default=None,
                        help="release (v1, v1.2 or v2): refuse a target it does not have "
                             "before reading anything (default: no check)")
    parser.add_argument("--splits", default="train,dev,tst-COMMON",
                        help="comma-separated splits (default: train,dev,tst-COMMON)")
    parser.add_argument("--min_duration", type=float, default=0.2,
                        help="drop segments shorter than this many seconds (default: 0.2)")
    parser.add_argument("--out", default="data", help="parent of the data dirs (default: data)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> None:
    if args.version:
        check_target(args.version, args.tgt_lang, args.src_lang)
    prepare_splits(args.splits,
                   lambda split: read_must_c_with_stats(args.root, args.tgt_lang, split,
                                                        args.src_lang, args.min_duration),
                   args.out, args.src_lang, args.tgt_lang, workers=args.nj, error=MustCError)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (MustCError,), argv)


if __name__ == "__main__":
    sys.exit(main())
