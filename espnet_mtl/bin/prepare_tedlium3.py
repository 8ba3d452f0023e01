"""Stage 1 for auxiliary ASR data: one TED-LIUM 3 split as an ASR-only data dir `<out>/<name>/`.

    python -m espnet_mtl.bin.prepare_tedlium3 --root /corpora/TEDLIUM_release-3 \\
        --split train --layout legacy --out data --name tedlium3_train --nj 2

Layouts: `legacy` and `speaker-adaptation` (<root>/<layout>/<split>/{sph,stm}),
and `data` (<root>/data/{sph,stm}: the full 452 h training set, split train
only). The dir has wav.scp (talk -> sph file), segments, utt2spk, spk2utt,
text.{tc,lc,lc.rm}.<lang>, text (= text.tc.<lang>), and spk2gender when the
stm labels give every speaker one gender. Utterance ids are
`<speaker>-<start cs %07d>-<end cs %07d>`; see `espnet_mtl.corpora.tedlium3`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_mtl.runner.cli import run_main
from espnet_mtl.corpora import prepare
from espnet_mtl.corpora.tedlium3 import LAYOUTS, SPLITS, TedliumError

PROG = "prepare_tedlium3"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the TEDLIUM_release-3 directory")
    parser.add_argument("--split", choices=SPLITS, default="train", help="split (default: train)")
    parser.add_argument("--layout", choices=LAYOUTS, default="legacy",
                        help="which copy of the split (default: legacy)")
    parser.add_argument("--out", default="data", help="parent of the data dir (default: data)")
    parser.add_argument("--name", default=None, help="data dir name (default: tedlium3_<split>)")
    parser.add_argument("--lang", default="en", help="transcript language code (default: en)")
    parser.add_argument("--min_duration", type=float, default=0.2,
                        help="drop segments shorter than this many seconds (default: 0.2)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> Path:
    return prepare.tedlium3_dir(args.root, args.split, args.out, args.name, layout=args.layout,
                                lang=args.lang, min_duration=args.min_duration, nj=args.nj)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (TedliumError,), argv)


if __name__ == "__main__":
    sys.exit(main())
