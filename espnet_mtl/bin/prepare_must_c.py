"""Stage 1 for MuST-C: write `data/<split>.<src>-<tgt>/` for each split.

    python -m espnet_mtl.bin.prepare_must_c --root /corpora/MUSTC_v1.0 --tgt_lang de \\
        --splits train,dev,tst-COMMON --out data
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet_mtl.corpora.must_c import MustCError, read_must_c_with_stats
from espnet_mtl.corpora.writer import DataDirError, write_st_data_dir
from espnet_mtl.fileio import TableError

PROG = "prepare_must_c"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="MuST-C root holding en-<tgt>/ folders")
    parser.add_argument("--tgt_lang", required=True, help="target language, e.g. de")
    parser.add_argument("--src_lang", default="en", help="source language (default: en)")
    parser.add_argument("--splits", default="train,dev,tst-COMMON",
                        help="comma-separated splits (default: train,dev,tst-COMMON)")
    parser.add_argument("--min_duration", type=float, default=0.2,
                        help="drop segments shorter than this many seconds (default: 0.2)")
    parser.add_argument("--out", default="data", help="parent of the data dirs (default: data)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> None:
    splits = [s for s in args.splits.split(",") if s]
    if not splits:
        raise MustCError("--splits is empty")
    # Read (and so validate) every split before writing any of them.
    loaded = []
    for split in splits:
        utts, stats = read_must_c_with_stats(args.root, args.tgt_lang, split,
                                             args.src_lang, args.min_duration)
        if not utts:
            raise MustCError(f"split {split}: no utterance left ({stats.summary()})")
        loaded.append((split, utts, stats))
    # The reader has logged each split's counts (kept, dropped per reason).
    for split, utts, _ in loaded:
        out_dir = Path(args.out) / f"{split}.{args.src_lang}-{args.tgt_lang}"
        write_st_data_dir(out_dir, utts, args.src_lang, args.tgt_lang, workers=args.nj)


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {PROG} %(levelname)s: %(message)s")
    try:
        run(args)
    except (MustCError, DataDirError, TableError, OSError) as e:
        # Expected failures (bad corpus, unwritable output): one line, no traceback.
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
