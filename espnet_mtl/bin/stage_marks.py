"""`python -m espnet_mtl.bin.stage_marks`: the stage driver's completion marks.

    stage_marks start --in DIR... --fresh DIR... --resume DIR...
    stage_marks done --stage N --in DIR... --out DIR...
"""

import argparse
import sys

from espnet_mtl.runner.stage_marks import StageError, done, start


def main(argv=None):
    p = argparse.ArgumentParser(prog="stage_marks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="check inputs, unmark outputs")
    s.add_argument("--in", dest="inputs", nargs="*", default=[])
    s.add_argument("--fresh", nargs="*", default=[], help="outputs rewritten from scratch")
    s.add_argument("--resume", nargs="*", default=[], help="outputs whose content is kept")
    d = sub.add_parser("done", help="mark outputs complete")
    d.add_argument("--stage", type=int, required=True)
    d.add_argument("--in", dest="inputs", nargs="*", default=[])
    d.add_argument("--out", dest="outputs", nargs="*", default=[])
    args = p.parse_args(argv)
    try:
        if args.command == "start":
            start(args.inputs, args.fresh, args.resume)
        else:
            done(args.stage, args.inputs, args.outputs)
    except (StageError, OSError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
