"""Training and collect-stats entry point: `python -m espnet_mtl.bin.st_train`.

Same options as ESPnet's `espnet2.bin.st_train`, plus `--model`.
"""

from espnet_mtl.tasks.st import MTLSTTask


def main(cmd=None):
    MTLSTTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
