"""`python -m espnet_mtl.bin.dump_audio`: stage 3 for one part of a data dir.

    python -m espnet_mtl.bin.dump_audio --in_dir data/dev/split4rec/1 --out_dir dump/dev/format.1 \\
        [--overrun_tolerance 0.1] [--overrun_action drop|error]

With --summarize_overruns it instead prints the console summary of the
segments clamped or dropped (see `overruns`) in the given job parts of one set,
nothing when there are none:

    python -m espnet_mtl.bin.dump_audio --summarize_overruns --name dev \\
        --overrun_tolerance 0.1 dump/dev/format.1 dump/dev/format.2 ...
"""

import argparse
import json
import logging
import math
import sys

from espnet_mtl.prep.audio_dump import (OVERRUN_ACTIONS, OVERRUN_TOLERANCE_S, AudioError, dump_audio,
                                   summarize_overruns)
from espnet_mtl.fileio import TableError


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {value!r}")
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--in_dir", help="data dir (wav.scp, segments, texts)")
    p.add_argument("--out_dir")
    p.add_argument("--feats_type", default="raw", choices=["raw", "fbank"])
    p.add_argument("--audio_format", default="flac", choices=["flac", "wav"])
    p.add_argument("--fs", type=int, default=16000)
    p.add_argument("--n_mels", type=int, default=80)
    p.add_argument("--overrun_tolerance", type=_seconds, default=OVERRUN_TOLERANCE_S,
                   metavar="SECONDS", help="a segment ending at most this much after its audio is "
                   "cut at the audio end (default: %(default)s)")
    p.add_argument("--overrun_action", default="drop", choices=OVERRUN_ACTIONS,
                   help="what to do with a segment ending later, or starting at or after the "
                   "audio end: leave the utterance out, or stop with an error "
                   "(default: %(default)s)")
    summary = p.add_argument_group("summary mode")
    summary.add_argument("--summarize_overruns", action="store_true",
                         help="print the overruns of the PART dirs (format.N) of one set and exit")
    summary.add_argument("--name", help="the set's name in the summary")
    summary.add_argument("parts", nargs="*", metavar="PART", help="job output dirs (--out_dir)")
    args = p.parse_args(argv)
    if args.summarize_overruns:
        if not args.parts or not args.name:
            p.error("--summarize_overruns needs --name and at least one PART dir")
        if args.in_dir or args.out_dir:
            p.error("--summarize_overruns takes PART dirs, not --in_dir/--out_dir")
        return print_overruns(args.parts, args.name, args.overrun_tolerance)
    if not (args.in_dir and args.out_dir):
        p.error("--in_dir and --out_dir are required (or --summarize_overruns)")
    if args.parts:
        p.error(f"unexpected arguments {' '.join(args.parts)} (PART dirs go with "
                "--summarize_overruns)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    try:
        stats = dump_audio(args.in_dir, args.out_dir, feats_type=args.feats_type,
                           audio_format=args.audio_format, fs=args.fs, n_mels=args.n_mels,
                           overrun_tolerance=args.overrun_tolerance,
                           overrun_action=args.overrun_action)
    except (AudioError, TableError, ValueError) as e:
        print(f"dump_audio: error: {e}", file=sys.stderr)
        return 1
    logging.info("dump_audio %s: %s", args.in_dir, json.dumps(stats))
    return 0


def print_overruns(parts: list[str], name: str, tolerance: float) -> int:
    """Print the overruns summary of one set's job parts to stdout (nothing if none)."""
    try:
        text = summarize_overruns(parts, name, tolerance)
    except TableError as e:
        print(f"dump_audio: error: {e}", file=sys.stderr)
        return 1
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
