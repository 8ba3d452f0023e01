"""Stage 1 for CoVoST 2: write `data/<split>.<src>-<tgt>/` for each split.

    python -m espnet_mtl.bin.prepare_covost2 --root /corpora/cv-corpus-4 --src_lang fr \\
        --tgt_lang en --splits train,dev,test --out data

Data dirs are named as in ESPnet's egs2/covost2 recipe: `train.<src>-<tgt>`,
`dev.<src>-<tgt>`, `test.<src>-<tgt>` (language codes as CoVoST writes them,
e.g. `train.zh-CN-en`). Each Common Voice clip is one utterance, so the dirs
have no `segments` file: `wav.scp` maps the utterance id to its mp3, which
stage 3 decodes (libsndfile, bundled with the soundfile wheel) to 16 kHz
mono. Clip durations are unknown until then; stage 4 filters on them.
"""

from __future__ import annotations

import argparse
import sys

from espnet_mtl.runner.cli import run_main
from espnet_mtl.corpora.covost2 import CoVoST2Error, check_pair, read_covost2_with_stats
from espnet_mtl.corpora.writer import prepare_splits

PROG = "prepare_covost2"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True,
                        help="Common Voice v4 root holding <src_lang>/clips/ and <src_lang>/validated.tsv")
    parser.add_argument("--src_lang", required=True, help="source language, e.g. fr, zh-CN or en")
    parser.add_argument("--tgt_lang", required=True, help="target language, e.g. en or de")
    parser.add_argument("--covost_dir", default=None,
                        help="directory holding covost_v2.<src>_<tgt>.tsv (default: <root>/<src_lang>)")
    parser.add_argument("--splits", default="train,dev,test",
                        help="comma-separated splits (default: train,dev,test)")
    parser.add_argument("--missing_clips", choices=("error", "drop"), default="error",
                        help="a clip listed but absent from clips/: stop (default) or drop and count it")
    parser.add_argument("--out", default="data", help="parent of the data dirs (default: data)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> None:
    check_pair(args.src_lang, args.tgt_lang)
    prepare_splits(args.splits,
                   lambda split: read_covost2_with_stats(
                       args.root, args.src_lang, args.tgt_lang, split,
                       covost_dir=args.covost_dir, missing_clips=args.missing_clips),
                   args.out, args.src_lang, args.tgt_lang, workers=args.nj, error=CoVoST2Error)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (CoVoST2Error,), argv)


if __name__ == "__main__":
    sys.exit(main())
