"""`python -m espnet_mtl.bin.speed_perturb --in_dir data/train --out_dir data/train_sp --factors 0.9 1.0 1.1`."""

import argparse
import sys

from espnet_mtl.prep.datadir import DataDirError
from espnet_mtl.prep.speed_perturb import speed_perturb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--in_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--factors", nargs="+", type=float, required=True)
    args = p.parse_args(argv)
    try:
        n = speed_perturb(args.in_dir, args.out_dir, args.factors)
    except (DataDirError, ValueError) as e:
        print(f"speed_perturb: error: {e}", file=sys.stderr)
        return 1
    print(f"speed_perturb: {args.out_dir}: {n} utterances (factors {args.factors})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
