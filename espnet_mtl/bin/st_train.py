"""Training and collect-stats entry point: `python -m espnet_mtl.bin.st_train`.

Same options as ESPnet's `espnet2.bin.st_train`, plus `--model`.
"""

import sys

from espnet_mtl.training.experiment_guard import ExperimentMismatch
from espnet_mtl.runner.locks import LockBusy
from espnet_mtl.tasks.st import MTLSTTask


get_parser = MTLSTTask.get_parser  # ESPnet's bin modules expose their parser


def main(cmd=None):
    try:
        MTLSTTask.main(cmd=cmd)
    except (LockBusy, ExperimentMismatch) as e:
        print(f"st_train: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
