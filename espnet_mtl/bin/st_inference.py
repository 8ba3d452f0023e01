"""Decoding entry point: `python -m espnet_mtl.bin.st_inference`.

Same options and outputs as ESPnet's `espnet2.bin.st_inference`. ESPnet's
inference module looks its task up through its module-level name `STTask`;
we bind that name to our subclass so `Speech2Text` builds the model chosen
by `model:` in the training config (ESPnet's own code path otherwise).
"""

import espnet2.bin.st_inference as espnet_st_inference

from espnet_mtl.tasks.st import MTLSTTask


def main(cmd=None):
    espnet_st_inference.STTask = MTLSTTask
    espnet_st_inference.main(cmd)


if __name__ == "__main__":
    main()
