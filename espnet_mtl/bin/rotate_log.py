"""`python -m espnet_mtl.bin.rotate_log exp/st_x/train.log`: keep the earlier log as train.1.log."""

import sys

from espnet_mtl.runner.logs import rotate_log

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m espnet_mtl.bin.rotate_log LOG")
    rotate_log(sys.argv[1])
