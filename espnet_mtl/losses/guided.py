"""ComSL's guided cross-entropy and embedding-regularisation (ERM) losses (seed 004).

Pure functions on tensors and masks, with the conventions of
`espnet_mtl.losses.consistency`: `reduction="sum"` sums over the valid tokens
(frames) of the batch, `"mean_tokens"` divides by their number, `"none"` gives
per-token values that are 0 at padding; padded positions never reach the value
or the gradient.

Guided CE (methods.md section 5, [code] of the authors: `alpha * guide + (1 - alpha) * CE`,
no label smoothing, token sums):

    L = sum_t [ (1 - alpha) * -log P(y_t)  +  alpha * -sum_v Q_t(v) log P_t(v) ]

Q is the guide's distribution (stop-gradient): the MT pass for ST (decoder
distribution matching, alpha 0.8) and the frozen teacher for MT (alpha 0.2).

ERM: per frame, the L2 distance (not squared, as the authors' code) between the
unit-normalised states of the speech-only pass and of the speech part of the
[masked transcript; speech] pass.
"""

from __future__ import annotations

import torch

from espnet_mtl.losses.consistency import _check_reduction, _reduce


def guided_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                         guide_logits: torch.Tensor, alpha: float, ignore_id: int = -1,
                         reduction: str = "sum") -> torch.Tensor:
    """(1 - alpha) CE + alpha H(stopgrad softmax(guide), softmax(logits)) over valid tokens.

    logits, guide_logits: (B, T, V); target: (B, T) with `ignore_id` at padding.
    """
    _check_reduction(reduction)
    if logits.shape != guide_logits.shape:
        raise ValueError(f"guided_cross_entropy: logits {tuple(logits.shape)} and guide "
                         f"{tuple(guide_logits.shape)} differ (same targets expected)")
    valid = target != ignore_id
    logp = torch.log_softmax(torch.where(valid[..., None], logits.float(), 0.0), dim=-1)
    nll = -logp.gather(-1, target.masked_fill(~valid, 0)[..., None]).squeeze(-1)
    if alpha == 0.0:  # plain CE (the CML transcript and masked-token terms): no guide needed
        return _reduce(nll, valid, reduction)
    guide = torch.softmax(torch.where(valid[..., None], guide_logits.detach().float(), 0.0),
                          dim=-1)
    soft = -(guide * logp).sum(-1)
    return _reduce((1.0 - alpha) * nll + alpha * soft, valid, reduction)


def erm_distance(speech_states: torch.Tensor, mixed_states: torch.Tensor,
                 mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """|| a / |a| - b / |b| ||_2 per valid frame; (B, T, D) states, (B, T) mask."""
    _check_reduction(reduction)
    valid = mask.bool()
    a = torch.nn.functional.normalize(
        torch.where(valid[..., None], speech_states.float(), 1.0), dim=-1)
    b = torch.nn.functional.normalize(
        torch.where(valid[..., None], mixed_states.float(), 1.0), dim=-1)
    # sqrt has an infinite gradient at 0: a floor keeps identical states finite
    dist = ((a - b).pow(2).sum(-1) + 1e-12).sqrt()
    return _reduce(dist, valid, reduction)
