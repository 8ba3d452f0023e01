"""Stage 1 for auxiliary MT data: a line-aligned bitext as an MT-only data dir `<out>/<name>/`.

    python -m espnet_mtl.bin.prepare_bitext --src wmt/train.en.gz --tgt wmt/train.de.gz \\
        --src_lang en --tgt_lang de --out data --name wmt_train --nj 2

The dir holds only `text.{tc,lc,lc.rm}.<src_lang>` and `text.{tc,lc,lc.rm}.<tgt_lang>`
(no wav.scp, no utt2spk), every file with the same keys `<name>_<line %09d>`:
the 1-based line number in the input files. One file pair per call; blank,
over-long, badly length-matched and duplicate pairs are dropped and counted
(see `espnet_mtl.corpora.bitext`).
"""

from __future__ import annotations

import argparse
import sys

from espnet_mtl.runner.cli import run_main
from espnet_mtl.corpora import prepare
from espnet_mtl.corpora.bitext import BitextError, ReadStats

PROG = "prepare_bitext"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="source side, one sentence per line (.gz ok)")
    parser.add_argument("--tgt", required=True, help="target side, line-aligned with --src (.gz ok)")
    parser.add_argument("--src_lang", required=True, help="source language, e.g. en")
    parser.add_argument("--tgt_lang", required=True, help="target language, e.g. de")
    parser.add_argument("--out", default="data", help="parent of the data dir (default: data)")
    parser.add_argument("--name", required=True,
                        help="data dir name and id prefix, e.g. wmt_train")
    parser.add_argument("--max_len_ratio", type=float, default=9.0,
                        help="drop pairs whose (longer+1)/(shorter+1) length ratio exceeds this "
                             "(words; characters for zh/ja; 0: no limit; default: 9)")
    parser.add_argument("--max_words", type=int, default=250,
                        help="drop pairs with a side longer than this many words (0: no limit; "
                             "default: 250)")
    parser.add_argument("--max_chars", type=int, default=1000,
                        help="the same in characters, for zh/ja sides (0: no limit; default: 1000)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> ReadStats:
    return prepare.bitext_dir(args.src, args.tgt, args.src_lang, args.tgt_lang, args.out,
                              args.name, nj=args.nj, max_len_ratio=args.max_len_ratio,
                              max_words=args.max_words, max_chars=args.max_chars)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (BitextError,), argv)


if __name__ == "__main__":
    sys.exit(main())
