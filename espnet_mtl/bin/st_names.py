"""`python -m espnet_mtl.bin.st_names NAME VALUE ...`: the stage driver's derived names.

Prints `st_tag=... st_exp=... st_stats_dir=... inference_tag=...` for eval
(see `espnet_mtl.runner.options.st_names`).
"""

import sys

from espnet_mtl.runner.options import names_main

if __name__ == "__main__":
    sys.exit(names_main())
