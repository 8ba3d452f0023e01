"""`python -m espnet_mtl.bin.add_vocab_dim STATS_DIR SUFFIX NAME=TOKEN_LIST ...`."""

import sys

from espnet_mtl.fileio import TableError
from espnet_mtl.prep.st_stats import add_vocab_dim


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or not all("=" in a for a in argv[2:]):
        print("usage: add_vocab_dim STATS_DIR SUFFIX text_shape=tokens.txt ...", file=sys.stderr)
        return 2
    try:
        add_vocab_dim(argv[0], dict(a.split("=", 1) for a in argv[2:]), argv[1])
    except (TableError, OSError) as e:
        print(f"add_vocab_dim: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
