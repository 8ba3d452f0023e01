"""Loss functions: pure functions on tensors and padding masks (no model code).

Importing this subpackage imports torch (the top-level package does not).
"""

from espnet_mtl.losses.consistency import (
    CONSISTENCY_KINDS,
    CRESS_BETA,
    DIRECTIONS,
    MT_WEIGHT_PEAK_RANGE,
    RDROP_ALPHA_RANGE,
    REDUCTIONS,
    SIMCR_BETA,
    consistency_loss,
    double_batch,
    rdrop_loss,
    split_doubled_batch,
    symmetric_token_kl,
    token_kl,
)

__all__ = [
    "CONSISTENCY_KINDS",
    "CRESS_BETA",
    "DIRECTIONS",
    "MT_WEIGHT_PEAK_RANGE",
    "RDROP_ALPHA_RANGE",
    "REDUCTIONS",
    "SIMCR_BETA",
    "consistency_loss",
    "double_batch",
    "rdrop_loss",
    "split_doubled_batch",
    "symmetric_token_kl",
    "token_kl",
]
