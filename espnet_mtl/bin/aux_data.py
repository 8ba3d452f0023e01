"""Auxiliary ASR-only / MT-only data for multi-task training (see espnet_mtl.prep.aux_data).

    python -m espnet_mtl.bin.aux_data prepare --kind asr --src_lang en --tgt_lang de \\
        --out data librispeech:train-clean-100 tedlium3:train
    python -m espnet_mtl.bin.aux_data prepare --kind mt --src_lang en --tgt_lang de \\
        --out data bitext:/corpora/wmt/europarl-v7.de-en
    python -m espnet_mtl.bin.aux_data filter_text dump/raw/org/aux_mt dump/raw/aux_mt \\
        text.lc.rm.en text.tc.de
    python -m espnet_mtl.bin.aux_data shapes dump/raw/aux_mt exp/st_stats/aux_mt \\
        --text text.lc.rm.en src_text_shape.bpe data/en_de_token_list/src_bpe_unigram4000

st.sh's stages 10 and 11 name the sets by the driver's layout (`--kinds` and
the names below) instead of by file:

    python -m espnet_mtl.bin.aux_data driver_shapes --kinds "asr mt" --data_feats dump/raw \\
        --stats_dir exp/st_stats --src_text_name text.lc.rm.en --tgt_text_name text.tc.de \\
        --feats_type raw --src_token_dir data/en_de_token_list/src_bpe_unigram4000 \\
        --tgt_token_dir data/en_de_token_list/tgt_bpe_unigram4000
    python -m espnet_mtl.bin.aux_data train_args --kinds "asr mt" --data_feats dump/raw \\
        --stats_dir exp/st_stats --src_text_name text.lc.rm.en --tgt_text_name text.tc.de \\
        --speech_scp wav.scp --speech_type sound --mixing ratio --ratio st=2,asr=1,mt=1

`train_args` prints the training options one per line (st.sh reads them with
mapfile); a value holding a newline is refused.

Corpus roots for `prepare` come from the environment (LIBRISPEECH, TEDLIUM3:
st.sh sources db.sh for them).
"""

from __future__ import annotations

import argparse
import sys

from espnet_mtl.runner.cli import run_main
from espnet_mtl.prep import aux_data

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
                   "tedlium3:train, bitext:<prefix>, dir:<data dir> (see espnet_mtl/prep/aux_data.py)")

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

    p = sub.add_parser("driver_shapes", help="stage 10: shape files of every auxiliary set")
    _add_layout(p)
    p.add_argument("--feats_type", choices=("raw", "fbank"), required=True)
    p.add_argument("--n_mels", type=int, default=80)
    p.add_argument("--src_token_dir", required=True, help="stage-5 token dir of the source side")
    p.add_argument("--tgt_token_dir", required=True, help="stage-5 token dir of the target side")

    p = sub.add_parser("train_args", help="stage 11: print the auxiliary-data training options")
    _add_layout(p)
    p.add_argument("--speech_scp", default="wav.scp", help="wav.scp (raw) or feats.scp (fbank)")
    p.add_argument("--speech_type", default="sound", help="sound (raw) or kaldi_ark (fbank)")
    p.add_argument("--mixing", choices=("ratio", "round_robin"), default="ratio")
    p.add_argument("--ratio", default="", help="batch share per source, e.g. st=2,asr=1,mt=1")
    return parser


def _add_layout(p: argparse.ArgumentParser) -> None:
    """The driver's names for the auxiliary sets (`aux_data.DriverLayout`)."""
    p.add_argument("--kinds", required=True, help='space-separated: "asr", "mt" or "asr mt"')
    p.add_argument("--data_feats", required=True, help="holds aux_<kind>/ after stage 4")
    p.add_argument("--stats_dir", required=True, help="holds aux_<kind>/ shape files")
    p.add_argument("--src_text_name", required=True, help="e.g. text.lc.rm.en")
    p.add_argument("--tgt_text_name", required=True, help="e.g. text.tc.de")
    p.add_argument("--src_token_type", default="bpe")
    p.add_argument("--tgt_token_type", default="bpe")


def _layout(args: argparse.Namespace) -> tuple[aux_data.DriverLayout, list[str]]:
    kinds = args.kinds.split()
    bad = [k for k in kinds if k not in ("asr", "mt")]
    if bad or len(set(kinds)) != len(kinds):
        raise aux_data.AuxDataError(f"--kinds: expected asr and/or mt once each, got {args.kinds!r}")
    layout = aux_data.DriverLayout(
        args.data_feats, args.stats_dir, args.src_text_name, args.tgt_text_name,
        args.src_token_type, args.tgt_token_type,
        **({"speech_scp": args.speech_scp, "speech_type": args.speech_type}
           if args.command == "train_args" else {}))
    return layout, kinds


def run(args: argparse.Namespace) -> None:
    if args.command == "prepare":
        aux_data.prepare(args.kind, args.specs, args.out, args.src_lang, args.tgt_lang, args.nj,
                         roots=aux_data.roots_from_env())
    elif args.command == "filter_text":
        aux_data.filter_text(args.src, args.dst, args.names)
    elif args.command == "shapes":
        texts = [(name, shape, *aux_data.token_model(d)) for name, shape, d in args.text]
        aux_data.write_shapes(args.data_dir, args.out_dir, texts=texts, speech=args.speech,
                              n_mels=args.n_mels)
    elif args.command == "driver_shapes":
        layout, kinds = _layout(args)
        aux_data.write_driver_shapes(layout, kinds, feats_type=args.feats_type,
                                     n_mels=args.n_mels,
                                     token_dirs={"src_text": args.src_token_dir,
                                                 "text": args.tgt_token_dir})
    else:
        layout, kinds = _layout(args)
        options = aux_data.train_args(layout, kinds, args.mixing, args.ratio)
        bad = [o for o in options if "\n" in o]
        if bad:
            raise aux_data.AuxDataError(f"a training option holds a newline: {bad[0]!r}")
        sys.stdout.write("".join(f"{o}\n" for o in options))


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (aux_data.AuxDataError,), argv)


if __name__ == "__main__":
    sys.exit(main())
