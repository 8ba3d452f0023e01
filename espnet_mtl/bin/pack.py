"""Model packing entry point: `python -m espnet_mtl.bin.pack st ...`.

ESPnet's packer zips the config, model and referenced files; importing our
task first keeps our model choices registered in this process too.
"""

import espnet2.bin.pack as espnet_pack

import espnet_mtl.tasks.st  # noqa: F401,E402  (registers our classes)


get_parser = espnet_pack.get_parser


def main(cmd=None):
    espnet_pack.main(cmd)


if __name__ == "__main__":
    main()
