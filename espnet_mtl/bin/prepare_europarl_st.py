"""Stage 1 for Europarl-ST v1.1: write `data/<split>.<src>-<tgt>/` for each split.

    python -m espnet_mtl.bin.prepare_europarl_st --root /corpora/europarl-st/v1.1 \\
        --src_lang en --tgt_lang de --splits train,dev,test --out data

train-noisy is read only when named in --splits. The audio stays m4a in
wav.scp; stage 3 (dump_audio) decodes it with ffmpeg and clamps (within 0.1 s)
or drops segments that end after their audio.
"""

from __future__ import annotations

import argparse
import sys

from espnet_mtl.runner.cli import run_main
from espnet_mtl.corpora.europarl_st import (DEFAULT_SPLITS, LANGS, EuroparlSTError, check_pair,
                                            check_split, pair_dir, read_europarl_st_with_stats)
from espnet_mtl.corpora.writer import prepare_splits

PROG = "prepare_europarl_st"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True,
                        help="Europarl-ST v1.1 root holding <src>/audios/ and <src>/<tgt>/ folders")
    parser.add_argument("--src_lang", required=True, help=f"source language ({' '.join(LANGS)})")
    parser.add_argument("--tgt_lang", required=True, help="target language, another of those")
    parser.add_argument("--splits", default=",".join(DEFAULT_SPLITS),
                        help="comma-separated splits (default: train,dev,test; "
                             "train-noisy only when named)")
    parser.add_argument("--min_duration", type=float, default=0.2,
                        help="drop segments shorter than this many seconds (default: 0.2)")
    parser.add_argument("--out", default="data", help="parent of the data dirs (default: data)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> None:
    # Up front, before any split is read: a wrong direction, split name or root.
    check_pair(args.src_lang, args.tgt_lang)
    for split in (s for s in args.splits.split(",") if s):
        check_split(split)
    pair_dir(args.root, args.src_lang, args.tgt_lang)
    prepare_splits(args.splits,
                   lambda split: read_europarl_st_with_stats(args.root, args.src_lang, args.tgt_lang,
                                                             split, args.min_duration),
                   args.out, args.src_lang, args.tgt_lang, workers=args.nj, error=EuroparlSTError)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (EuroparlSTError,), argv)


if __name__ == "__main__":
    sys.exit(main())
