"""Contrastive losses: pure functions on tensors and padding masks.

`info_nce` is the InfoNCE term of IMTL (seed 000, methods.md section 2): the
i-th speech vector should be closer (cosine similarity / temperature) to the
i-th text vector than to every other text vector of the batch; cross-entropy
over each row of the similarity matrix. The objective (objectives/contrastive)
pools sequences with `masked_mean` first.
"""

from __future__ import annotations

import torch

#: IMTL's InfoNCE temperature [code]
IMTL_TEMPERATURE = 0.1


def masked_mean(xs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, D): the mean over each row's first lens[i] frames.

    Padding frames are replaced by zeros with `torch.where` before summing, so
    NaN or inf there changes neither the value nor the gradient.
    """
    valid = torch.arange(xs.size(1), device=xs.device)[None, :] < lens.to(xs.device)[:, None]
    summed = torch.where(valid[..., None], xs, xs.new_zeros(())).sum(1)
    return summed / lens.clamp(min=1).to(xs.dtype)[:, None]


def info_nce(anchors: torch.Tensor, positives: torch.Tensor,
             temperature: float = IMTL_TEMPERATURE, reduction: str = "sum") -> torch.Tensor:
    """InfoNCE with cosine similarity; row i of `positives` is the positive of anchor i.

    anchors, positives: (N, D). Returns the sum (or "mean") over the N anchors of
    -log softmax_j(cos(a_i, p_j) / temperature)[i]. The other rows of the batch
    are the negatives; with N = 1 the loss is 0.
    """
    if anchors.shape != positives.shape or anchors.dim() != 2:
        raise ValueError(f"info_nce: anchors {tuple(anchors.shape)} and positives "
                         f"{tuple(positives.shape)} must both be (N, D)")
    if temperature <= 0:
        raise ValueError(f"info_nce: temperature must be > 0, got {temperature}")
    a = torch.nn.functional.normalize(anchors.float(), dim=-1)
    p = torch.nn.functional.normalize(positives.float(), dim=-1)
    logits = a @ p.t() / temperature
    target = torch.arange(a.size(0), device=a.device)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"info_nce: reduction must be sum or mean, got {reduction!r}")
    return torch.nn.functional.cross_entropy(logits, target, reduction=reduction)
