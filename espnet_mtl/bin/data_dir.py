"""Data directory utilities (replace Kaldi's utils/*_data_dir.sh).

    python -m espnet_mtl.bin.data_dir validate data/train
    python -m espnet_mtl.bin.data_dir fix data/train
    python -m espnet_mtl.bin.data_dir copy data/train data/sp0.9 \\
        --utt-prefix sp0.9- --spk-prefix sp0.9-
    python -m espnet_mtl.bin.data_dir subset data/train data/train_1k --first 1000
    python -m espnet_mtl.bin.data_dir split data/train 8 --by recording
    python -m espnet_mtl.bin.data_dir combine data/all data/a data/b
    python -m espnet_mtl.bin.data_dir filter data/train data/train_f --min-dur 0.1 --max-dur 20
"""

from __future__ import annotations

import argparse
import logging
import sys

from espnet_mtl.prep import datadir
from espnet_mtl.fileio import TableError


def _opt(p: argparse.ArgumentParser, name: str, **kw) -> None:
    """Accept both --foo-bar (Kaldi) and --foo_bar (ESPnet) spellings."""
    p.add_argument(f"--{name.replace('_', '-')}", f"--{name}", dest=name, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="data_dir", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("validate", help="check a data dir; errors name file and line")
    p.add_argument("dir")
    _opt(p, "no_text", action="store_true", help="do not require a text file")
    _opt(p, "no_check_sorted", action="store_true", help="do not require sorted files")

    p = sub.add_parser("fix", help="drop inconsistent utterances, sort, regenerate spk2utt")
    p.add_argument("dir")

    p = sub.add_parser("copy", help="copy, optionally adding prefixes/suffixes to ids")
    p.add_argument("src")
    p.add_argument("dst")
    for name in ("utt_prefix", "utt_suffix", "spk_prefix", "spk_suffix"):
        _opt(p, name, default="")
    for name in ("rec_prefix", "rec_suffix"):
        _opt(p, name, default=None, help="default: the utterance one")

    p = sub.add_parser("subset", help="copy a selection of utterances")
    p.add_argument("src")
    p.add_argument("dst")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--utt-list", "--utt_list", dest="utt_list", metavar="FILE")
    g.add_argument("--spk-list", "--spk_list", dest="spk_list", metavar="FILE")
    g.add_argument("--first", type=int, metavar="N")
    g.add_argument("--last", type=int, metavar="N")

    p = sub.add_parser("split", help="split into SRC/splitN{,spk,rec}/{1..N}")
    p.add_argument("src")
    p.add_argument("n", type=int)
    p.add_argument("--by", choices=sorted(datadir.SPLIT_SUFFIX), default="utt")

    p = sub.add_parser("combine", help="union of several data dirs")
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")
    p.add_argument("--fs", type=int, default=16000, help="sampling rate of utt2num_samples")
    p.add_argument("--skip_empty", action="store_true",
                   help="leave out sources without utterances instead of refusing them")

    p = sub.add_parser("filter", help="drop utterances by duration or empty text")
    p.add_argument("src")
    p.add_argument("dst")
    _opt(p, "min_dur", type=float, help="seconds")
    _opt(p, "max_dur", type=float, help="seconds")
    _opt(p, "nonempty_text", nargs="+", default=[], metavar="FILE",
         help="text files (e.g. text.tc.de) whose value must not be empty")
    p.add_argument("--fs", type=int, default=16000, help="sampling rate of utt2num_samples")
    return parser


def run(args: argparse.Namespace) -> None:
    if args.cmd == "validate":
        s = datadir.validate_data_dir(args.dir, need_text=not args.no_text,
                                      check_sorted=not args.no_check_sorted)
        print(f"{args.dir}: OK: {s['utterances']} utterances, {s['speakers']} speakers, "
              f"{s['recordings']} recordings, {s['files']} files, {s['warnings']} warning(s)")
    elif args.cmd == "fix":
        removed = datadir.fix_data_dir(args.dir)
        print(f"{args.dir}: fixed, {sum(removed.values())} line(s) removed")
    elif args.cmd == "copy":
        datadir.copy_data_dir(args.src, args.dst, utt_prefix=args.utt_prefix,
                              utt_suffix=args.utt_suffix, spk_prefix=args.spk_prefix,
                              spk_suffix=args.spk_suffix, rec_prefix=args.rec_prefix,
                              rec_suffix=args.rec_suffix)
    elif args.cmd == "subset":
        datadir.subset_data_dir(args.src, args.dst, utt_list=args.utt_list, first=args.first,
                                last=args.last, spk_list=args.spk_list)
    elif args.cmd == "split":
        for part in datadir.split_data_dir(args.src, args.n, by=args.by):
            print(part)
    elif args.cmd == "combine":
        datadir.combine_data_dirs(args.dst, args.srcs, fs=args.fs, skip_empty=args.skip_empty)
    elif args.cmd == "filter":
        removed = datadir.filter_data_dir(args.src, args.dst, min_dur=args.min_dur,
                                          max_dur=args.max_dur,
                                          nonempty_text_files=args.nonempty_text, fs=args.fs)
        for reason, n in removed.items():
            print(f"removed {n}: {reason}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="data_dir: %(levelname)s: %(message)s")
    try:
        run(args)
    except (datadir.DataDirError, TableError, OSError) as e:
        # A bad data dir (or a missing --utt-list, an unwritable destination) is a
        # user error: the message names file and line, no traceback.
        print(f"data_dir: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
