"""Contrastive predictive coding (CPC): a pure InfoNCE loss over future frames.

The self-supervised term of Objective Soups (seed 002, methods.md section 3):
a causal context c_t over the encoder frames z predicts the frame k steps
ahead, p_t^k = W_k c_t, and InfoNCE asks p_t^k to be closer to z_{t+k} than
to the batch's other frames. This module holds the loss only; the context
network and the predictors W_k are `espnet_mtl.modules.cpc.CPCHead`.

    cpc_loss(z, p, lens) = mean over pairs (b, t, k), t + k < lens[b], of
        -log  exp(s(p[b,t,k], z[b,t+k]) / tau)
              / (exp(s(p[b,t,k], z[b,t+k]) / tau) + sum_{n in N} exp(s(p[b,t,k], z_n) / tau))

* s is cosine similarity [code: the authors' InfoNCE normalises both sides],
  so the temperature tau = 0.1 [code] has a fixed meaning whatever the scale
  of the encoder output.
* N, the negatives, are valid frames of the batch other than the positive
  (in-batch negatives): frames of the same utterance (other times) and of
  the other utterances. With `num_negatives` set and more valid frames than
  that, `num_negatives` frames are drawn once per call without replacement
  (`torch.randperm`, so deterministic given torch's RNG) and shared by every
  pair: one (pairs x num_negatives) matrix, no python loop, no
  (pairs x negatives x D) gather. A pair whose positive was drawn has it
  masked out of N (it then has num_negatives - 1 negatives).
* Padding: frames at t >= lens[b] are neither targets, negatives nor
  anchors. They are left out by boolean indexing before any arithmetic, so
  NaN or inf there changes neither the value nor the gradient (theirs is 0).
* Half / bfloat16 inputs are computed in float32.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

#: InfoNCE temperature of the authors' CPC term [code], also methods.md section 3
CPC_TEMPERATURE = 0.1


def _check(targets, predictions, lens, temperature, num_negatives):
    if targets.dim() != 3:
        raise ValueError(f"cpc_loss: targets must be (B, T, D), got {tuple(targets.shape)}")
    b, t, d = targets.shape
    if predictions.dim() != 4 or predictions.shape[:2] != (b, t) or predictions.shape[3] != d:
        raise ValueError(f"cpc_loss: predictions must be (B, T, K, D) = ({b}, {t}, K, {d}), "
                         f"got {tuple(predictions.shape)}")
    if tuple(lens.shape) != (b,):
        raise ValueError(f"cpc_loss: lens must be ({b},), got {tuple(lens.shape)}")
    if not temperature > 0:
        raise ValueError(f"cpc_loss: temperature must be > 0, got {temperature}")
    if num_negatives is not None and num_negatives < 1:
        raise ValueError(f"cpc_loss: num_negatives must be >= 1 or None (all), "
                         f"got {num_negatives}")


def cpc_pairs(lens: torch.Tensor, frames: int, steps: int) -> torch.Tensor:
    """(B, T, K) bool: True where frame t of row b predicts t + k (k = 1..K) inside lens[b]."""
    t = torch.arange(frames, device=lens.device)
    ahead = t[:, None] + torch.arange(1, steps + 1, device=lens.device)[None, :]  # (T, K)
    return ahead[None] < lens[:, None, None]


def cpc_loss(targets: torch.Tensor, predictions: torch.Tensor, lens: torch.Tensor,
             temperature: float = CPC_TEMPERATURE,
             num_negatives: Optional[int] = None) -> torch.Tensor:
    """InfoNCE of predicted future frames; the mean over the (b, t, k) pairs.

    targets: (B, T, D) the frames z; predictions: (B, T, K, D) with
    predictions[b, t, k - 1] the prediction of z[b, t + k] made at t; lens:
    (B,) valid frames per row. Returns a scalar; 0 (still part of the graph)
    when no row has two valid frames.
    """
    _check(targets, predictions, lens, temperature, num_negatives)
    b, t, _ = targets.shape
    steps = predictions.size(2)
    lens = lens.to(targets.device)
    valid = torch.arange(t, device=targets.device)[None, :] < lens[:, None]  # (B, T)
    # index of every valid frame among the valid frames (row-major): the target table
    index = valid.reshape(-1).long().cumsum(0).reshape(b, t) - 1
    pairs = cpc_pairs(lens, t, steps)  # (B, T, K)
    ahead = (torch.arange(t, device=targets.device)[:, None]
             + torch.arange(1, steps + 1, device=targets.device)[None, :]).clamp(max=t - 1)
    positive = index.gather(1, ahead.reshape(1, -1).expand(b, -1)).reshape(b, t, steps)[pairs]

    dtype = torch.float32 if targets.dtype in (torch.float16, torch.bfloat16) else targets.dtype
    z = F.normalize(targets[valid].to(dtype), dim=-1)  # (N, D), valid frames only
    p = F.normalize(predictions[pairs].to(dtype), dim=-1)  # (M, D), valid pairs only
    if p.size(0) == 0:
        return p.sum()  # no pair: 0, connected to the graph
    if num_negatives is not None and num_negatives < z.size(0) - 1:
        candidates = torch.randperm(z.size(0), device=z.device)[:num_negatives]
    else:  # few frames: every valid frame is a candidate
        candidates = torch.arange(z.size(0), device=z.device)
    negative = p @ z[candidates].t() / temperature  # (M, C)
    # the positive sits in column 0; as a candidate it is not also a negative
    negative = negative.masked_fill(candidates[None, :] == positive[:, None], float("-inf"))
    logits = torch.cat([(p * z[positive]).sum(-1, keepdim=True) / temperature, negative], 1)
    return -torch.log_softmax(logits, dim=-1)[:, 0].mean()
