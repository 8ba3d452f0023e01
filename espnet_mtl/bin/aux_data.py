"""Auxiliary ASR-only / MT-only data for multi-task training (see espnet_mtl.aux_data).

    python -m espnet_mtl.bin.aux_data prepare --kind asr --src_lang en --tgt_lang de \\
        --out data librispeech:train-clean-100 tedlium3:train
    python -m espnet_mtl.bin.aux_data prepare --kind mt --src_lang en --tgt_lang de \\
        --out data bitext:/corpora/wmt/europarl-v7.de-en
    python -m espnet_mtl.bin.aux_data filter_text dump/raw/org/aux_mt dump/raw/aux_mt \\
        text.lc.rm.en text.tc.de
    python -m espnet_mtl.bin.aux_data shapes dump/raw/aux_mt exp/st_stats/aux_mt \\
        --text text.lc.rm.en src_text_shape.bpe data/en_de_token_list/src_bpe_unigram4000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_mtl.cli import run_main
from espnet_mtl import aux_data
from espnet_mtl.st_stats import count_lines

PROG = "aux_data"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="stage 1: prepare specs into <out>/aux_<kind>")
    p.add_argument("--kind", choices=("asr", "mt"), required=True)
    p.add_argument("--src_lang", required=True)
    p.add_argument("--tgt_lang", required=True)
    p.add_argument("--out", default="data")
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("specs", nargs="+", help="<corpus>:<argument>, e.g. librispeech:train-clean-100, "
                   "tedlium3:train, bitext:<prefix>, dir:<data dir> (see espnet_mtl/aux_data.py)")

    p = sub.add_parser("filter_text", help="stage 4 for MT data: drop examples with empty text")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("names", nargs="+", help="text files that must be non-empty")

    p = sub.add_parser("shapes", help="stage 10: ESPnet shape files of an auxiliary set")
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    p.add_argument("--text", nargs=3, action="append", default=[],
                   metavar=("TEXT_FILE", "SHAPE_NAME", "BPE_DIR"),
                   help="a text field: its file in data_dir, the shape file name, and the "
                        "token dir holding bpe.model and tokens.txt")
    p.add_argument("--speech", choices=("raw", "fbank"), default=None)
    p.add_argument("--n_mels", type=int, default=80)
    return parser


def _vocab_size(token_dir: Path) -> int:
    tokens = token_dir / "tokens.txt"
    if not tokens.is_file():
        raise aux_data.AuxDataError(f"{tokens}: missing; run stage 5 (token lists) first")
    return count_lines(tokens)


def run(args: argparse.Namespace) -> None:
    if args.command == "prepare":
        aux_data.prepare(args.kind, args.specs, args.out, args.src_lang, args.tgt_lang, args.nj)
    elif args.command == "filter_text":
        aux_data.filter_text(args.src, args.dst, args.names)
    else:
        texts = [(name, shape, str(Path(d) / "bpe.model"), _vocab_size(Path(d)))
                 for name, shape, d in args.text]
        aux_data.write_shapes(args.data_dir, args.out_dir, texts=texts, speech=args.speech,
                              n_mels=args.n_mels)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (aux_data.AuxDataError,), argv)


if __name__ == "__main__":
    sys.exit(main())
