"""Stage 1 for auxiliary ASR data: LibriSpeech subsets as one ASR-only data dir `<out>/<name>/`.

    python -m espnet_mtl.bin.prepare_librispeech --root /corpora/LibriSpeech \\
        --subsets train-clean-100,train-clean-360,train-other-500 --out data \\
        --name librispeech_train --lang en --nj 2

The dir has wav.scp (utterance id -> flac; no segments: each flac is one
utterance), utt2spk, spk2utt (speaker = the LibriSpeech speaker number),
text.{tc,lc,lc.rm}.<lang> and text (= text.tc.<lang>), plus spk2gender when
<root>/SPEAKERS.TXT lists every speaker used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet_mtl.runner.cli import run_main
from espnet_mtl.corpora import prepare
from espnet_mtl.corpora.librispeech import LibriSpeechError

PROG = "prepare_librispeech"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True,
                        help="the LibriSpeech directory holding <subset>/ and SPEAKERS.TXT")
    parser.add_argument("--subsets", default="train-clean-100,train-clean-360,train-other-500",
                        help="comma-separated subsets, written together into one dir "
                             "(default: the 960 h training set)")
    parser.add_argument("--out", default="data", help="parent of the data dir (default: data)")
    parser.add_argument("--name", default="librispeech_train",
                        help="data dir name (default: librispeech_train)")
    parser.add_argument("--lang", default="en", help="transcript language code (default: en)")
    parser.add_argument("--missing_audio", choices=("error", "drop"), default="error",
                        help="a transcript line without its flac: stop (default) or drop and count it")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> Path:
    return prepare.librispeech_dir(args.root, args.subsets, args.out, args.name, lang=args.lang,
                                   missing_audio=args.missing_audio, nj=args.nj)


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (LibriSpeechError,), argv)


if __name__ == "__main__":
    sys.exit(main())
