"""Stages 14-15: `python -m espnet_mtl.bin.pack_model pack|upload ...`

    pack   --st_exp exp/st_x --model_file valid.acc.ave.pth --outpath exp/st_x/st_x.zip
    upload --packed exp/st_x/st_x.zip --hf_repo user/name [--dry_run] [--local_dir DIR]

`espnet_mtl.runner.packing` says what goes in and what the Hub repository holds.
"""

import argparse
import logging
import sys

from espnet_mtl.runner.packing import PackingError, pack_experiment, upload_to_hf


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack")
    pk.add_argument("--st_exp", required=True)
    pk.add_argument("--model_file", default="valid.acc.ave.pth")
    pk.add_argument("--outpath", required=True)
    up = sub.add_parser("upload")
    up.add_argument("--packed", required=True)
    up.add_argument("--hf_repo", required=True)
    up.add_argument("--dry_run", action="store_true", help="stage the repository and list it")
    up.add_argument("--local_dir", default=None, help="copy the repository here, not the Hub")
    up.add_argument("--private", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pack_model %(levelname)s: "
                                                   "%(message)s")
    try:
        if args.command == "pack":
            pack_experiment(args.st_exp, args.model_file, args.outpath)
        else:
            out = upload_to_hf(args.packed, args.hf_repo, dry_run=args.dry_run,
                               local_dir=args.local_dir, private=args.private)
            print(out)
    except (PackingError, OSError) as e:
        print(f"pack_model: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
