"""Draw an experiment's training curves now: `python -m espnet_mtl.bin.plot_training EXP_DIR`.

Writes EXP_DIR/images/<metric>.png (loss, acc, bleu, ... per epoch, train
and valid) from EXP_DIR/checkpoint.pth; works while training runs.
"""

import argparse
import sys

from espnet_mtl.training.curves import draw_training_curves


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("exp_dir")
    args = p.parse_args(argv)
    try:
        images = draw_training_curves(args.exp_dir)
    except FileNotFoundError as e:
        sys.exit(f"plot_training: error: {e}")
    print(images)


if __name__ == "__main__":
    main()
