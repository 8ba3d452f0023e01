"""Gradient conflict of a trained multi-task model: cosine(grad main task, grad each auxiliary).

    python -m espnet_mtl.bin.grad_probe --config EXP/config.yaml \
        --model_file EXP/valid.acc.ave.pth [--data valid|train] [--batches 10] \
        [--batch_size 8] [--out_dir EXP/grad_probe]

Reads the data set the experiment trained or validated on (its config's
`*_data_path_and_name_and_type`), or `--data_path_and_name_and_type path,name,type`
given explicitly (repeat it), and writes OUT_DIR/grad_conflict.csv plus
grad_conflict_layers.png and grad_conflict_training.png (see
espnet_mtl.training.probes.grad_conflict).
"""

import argparse
import sys
from pathlib import Path

import yaml

from espnet_mtl.training.probes import grad_conflict


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--model_file", required=True, type=Path)
    p.add_argument("--data", choices=("valid", "train"), default="valid")
    p.add_argument("--data_path_and_name_and_type", action="append", default=[])
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--main", default="st_ce", help="the main objective")
    p.add_argument("--out_dir", type=Path, help="default: <config dir>/grad_probe")
    args = p.parse_args(argv)
    for path in (args.config, args.model_file):
        if not path.is_file():
            sys.exit(f"grad_probe: error: {path} does not exist")
    if args.data_path_and_name_and_type:
        data = [tuple(s.split(",")) for s in args.data_path_and_name_and_type]
        if any(len(t) != 3 for t in data):
            sys.exit("grad_probe: error: --data_path_and_name_and_type takes path,name,type")
    else:
        data = yaml.safe_load(args.config.read_text())[f"{args.data}_data_path_and_name_and_type"]
    out_dir = args.out_dir or args.config.parent / "grad_probe"
    try:
        csv_path = grad_conflict.probe_checkpoint(args.config, args.model_file, data, out_dir,
                                                  args.batches, args.batch_size, args.seed,
                                                  args.main)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"grad_probe: error: {e}")
    for png in grad_conflict.plot(csv_path):
        print(png)
    print(csv_path)


if __name__ == "__main__":
    main()
