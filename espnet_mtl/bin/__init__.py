"""Thin command-line entry points (`python -m espnet_mtl.bin.<verb>`).

Under the stage driver each of them stops when the driver dies, however it
dies (see `espnet_mtl.runner.lifetime`).
"""

from espnet_mtl.runner.lifetime import die_with_driver

die_with_driver()
