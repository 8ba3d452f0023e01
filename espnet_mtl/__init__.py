"""espnet_mtl: multi-task end-to-end speech translation recipes on ESPnet.

Importing the package is cheap (no torch): the stage driver calls many small
CLIs, and ESPnet is only imported by the modules that need it.
"""

__version__ = "0.1.0"
