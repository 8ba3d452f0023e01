"""`static`: the configured weights, one backward (the default).

The trainer leaves ESPnet's step untouched under this strategy: the model's
loss is already the configured weighted sum.
"""

from espnet_mtl.training.strategies.base import Strategy


class StaticWeights(Strategy):
    pass
