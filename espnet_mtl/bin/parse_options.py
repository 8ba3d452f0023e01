"""`python -m espnet_mtl.bin.parse_options`: option parsing for the stage driver."""

import sys

from espnet_mtl.runner.options import main

if __name__ == "__main__":
    sys.exit(main())
