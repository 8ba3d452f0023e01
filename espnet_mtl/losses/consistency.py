"""Consistency losses for seed 001 (regularization horizon for ST).

Pure functions on tensors and masks; no model code. The training objective
of "Optimal Multi-Task Learning at Regularization Horizon for ST" is

    L = CE_ST + alpha_t * CE_MT + beta * L_CR + alpha * L_RD

with L_CR the cross-modal consistency regularizer between the speech (ST)
and transcript (MT) passes of the shared decoder (teacher forced on the same
target prefix) and L_RD R-drop between two dropout passes of the same batch.

Conventions shared by every function here:

* ``mask`` has shape (B, T) and is True (or nonzero) on real target tokens,
  False / 0 on padding. Any dtype is accepted; nonzero means valid.
* Reductions follow ESPnet's ``length_normalized_loss: false``: the default
  ``reduction="sum"`` sums over the valid tokens of the whole batch;
  ``"mean_tokens"`` divides that sum by the number of valid tokens;
  ``"none"`` returns per-token values of shape (B, T), zero at padding.
* Padding cannot influence the value or the gradient: padded logits are
  replaced by zeros with ``torch.where`` before any arithmetic, so NaN, inf
  or huge values there neither propagate nor receive gradient (their
  gradient is exactly zero).
* Half / bfloat16 inputs are computed in float32.

Hyperparameters reported around the paper (methods.md, section 1) are the
module constants below; they are reference values, not defaults of these
functions (the weights are applied by the caller).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

# --- reference hyperparameters (methods.md section 1) -----------------------
#: beta for L_CR in CRESS (symmetric KL between ST and MT output distributions).
CRESS_BETA = 1.0
#: beta for L_CR in SimCR.
SIMCR_BETA = 5.0
#: alpha for R-drop as used in R-drop / SimCR for ST: 3 to 5.
RDROP_ALPHA_RANGE = (3.0, 5.0)
#: The paper finds BLEU peaks at an MT weight alpha_t below 1, e.g. 0.1-0.5.
MT_WEIGHT_PEAK_RANGE = (0.1, 0.5)

# --- accepted option values ---------------------------------------------------
CONSISTENCY_KINDS = ("softmax_kl", "logits_mse", "enc_mse")
#: ``mt_to_st`` = KL(P_MT || P_ST) is the default [choice] of methods.md.
DIRECTIONS = ("mt_to_st", "st_to_mt", "symmetric")
REDUCTIONS = ("sum", "mean_tokens", "none")
POOLS = (None, "mean")


# --- helpers ------------------------------------------------------------------
def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _as_bool_mask(mask: torch.Tensor, shape: torch.Size, what: str) -> torch.Tensor:
    if mask is None:
        raise ValueError(f"{what}: a padding mask of shape {tuple(shape)} is required")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{what}: mask shape {tuple(mask.shape)} does not match {tuple(shape)}"
        )
    return mask if mask.dtype == torch.bool else mask != 0


def _compute_dtype(x: torch.Tensor) -> torch.Tensor:
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _masked(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Zero ``x`` (B, T, ...) where ``m`` (B, T) is False, NaN-safe in value and gradient."""
    m = m.reshape(m.shape + (1,) * (x.dim() - m.dim()))
    return torch.where(m, _compute_dtype(x), torch.zeros((), dtype=_compute_dtype(x).dtype,
                                                          device=x.device))


def _check_logits(logits: torch.Tensor, what: str) -> None:
    if logits is None or logits.dim() != 3:
        shape = None if logits is None else tuple(logits.shape)
        raise ValueError(f"{what}: expected logits of shape (B, T, V), got {shape}")


def _log_probs(logits: torch.Tensor, m: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.log_softmax(_masked(logits, m) / temperature, dim=-1)


def _kl_per_token(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """sum_v P (log P - log Q), with 0 log 0 := 0 (finite also for -inf logits in P)."""
    p = logp.exp()
    # Where P is 0 the term is 0 whatever log Q is; selecting the difference
    # (not the product) keeps the backward pass free of 0 * inf.
    diff = torch.where(p > 0, logp - logq, torch.zeros((), dtype=logp.dtype, device=logp.device))
    return (p * diff).sum(-1)


def _reduce(per_item: torch.Tensor, m: torch.Tensor, reduction: str) -> torch.Tensor:
    """``per_item`` has shape of ``m`` and any value at padding; reduce it."""
    per_item = torch.where(m, per_item, torch.zeros((), dtype=per_item.dtype,
                                                    device=per_item.device))
    if reduction == "none":
        return per_item
    total = per_item.sum()
    if reduction == "sum":
        return total
    return total / m.sum().clamp(min=1).to(total.dtype)


# --- public losses --------------------------------------------------------------
def token_kl(
    p_logits: torch.Tensor,
    q_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Token-level KL(P || Q) summed over the valid tokens.

    P = softmax(p_logits / temperature), Q = softmax(q_logits / temperature),
    both (B, T, V); per token KL = sum_v P (log P - log Q), computed from
    log_softmax. No temperature**2 rescaling is applied. Gradients flow into
    both arguments; detach one before the call to stop them.
    """
    _check_reduction(reduction)
    _check_logits(p_logits, "token_kl p_logits")
    _check_logits(q_logits, "token_kl q_logits")
    if p_logits.shape != q_logits.shape:
        raise ValueError(
            f"token_kl: logits shapes differ: {tuple(p_logits.shape)} vs {tuple(q_logits.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = _as_bool_mask(mask, p_logits.shape[:2], "token_kl")
    logp = _log_probs(p_logits, m, temperature)
    logq = _log_probs(q_logits, m, temperature)
    return _reduce(_kl_per_token(logp, logq), m, reduction)


def symmetric_token_kl(
    logits_1: torch.Tensor,
    logits_2: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """1/2 [KL(P1 || P2) + KL(P2 || P1)] per token, reduced over valid tokens."""
    _check_reduction(reduction)
    _check_logits(logits_1, "symmetric_token_kl logits_1")
    _check_logits(logits_2, "symmetric_token_kl logits_2")
    if logits_1.shape != logits_2.shape:
        raise ValueError(
            f"symmetric_token_kl: logits shapes differ: {tuple(logits_1.shape)} "
            f"vs {tuple(logits_2.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = _as_bool_mask(mask, logits_1.shape[:2], "symmetric_token_kl")
    lp1 = _log_probs(logits_1, m, temperature)
    lp2 = _log_probs(logits_2, m, temperature)
    per_token = 0.5 * (_kl_per_token(lp1, lp2) + _kl_per_token(lp2, lp1))
    return _reduce(per_token, m, reduction)


def rdrop_loss(
    logits_1: torch.Tensor,
    logits_2: torch.Tensor,
    mask: torch.Tensor,
    reduction: str = "sum",
) -> torch.Tensor:
    """R-drop: 1/2 [KL(P1 || P2) + KL(P2 || P1)] between two dropout passes.

    ``logits_1`` / ``logits_2`` (B, T, V) come from two forward passes of the
    same batch with independent dropout masks (in practice one pass over the
    batch doubled, see :func:`double_batch` / :func:`split_doubled_batch`).
    Neither side is detached. Reference weight alpha: 3 to 5
    (:data:`RDROP_ALPHA_RANGE`).
    """
    return symmetric_token_kl(logits_1, logits_2, mask, reduction=reduction)


def _enc_mse(
    st_hidden: torch.Tensor,
    mt_hidden: torch.Tensor,
    hidden_mask: Optional[torch.Tensor],
    mt_hidden_mask: Optional[torch.Tensor],
    pool: Optional[str],
    reduction: str,
) -> torch.Tensor:
    if st_hidden is None or mt_hidden is None:
        raise ValueError("kind='enc_mse' needs st_hidden and mt_hidden (B, T', D)")
    if st_hidden.dim() != 3 or mt_hidden.dim() != 3:
        raise ValueError(
            f"enc_mse: expected hidden states (B, T', D), got {tuple(st_hidden.shape)} "
            f"and {tuple(mt_hidden.shape)}"
        )
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    B, Ts, D = st_hidden.shape
    if mt_hidden.shape[0] != B or mt_hidden.shape[2] != D:
        raise ValueError(
            f"enc_mse: batch or feature sizes differ: {tuple(st_hidden.shape)} "
            f"vs {tuple(mt_hidden.shape)}"
        )

    def full_mask(x):
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)

    if pool is None:
        if st_hidden.shape != mt_hidden.shape:
            raise ValueError(
                "enc_mse with pool=None compares encoder states position by position "
                f"and needs equal shapes, got ST {tuple(st_hidden.shape)} vs MT "
                f"{tuple(mt_hidden.shape)}: speech and transcript encodings usually "
                "differ in length, so pool or align them first, or use pool='mean'"
            )
        if mt_hidden_mask is not None:
            raise ValueError("enc_mse: mt_hidden_mask is only used with pool='mean'")
        m = full_mask(st_hidden) if hidden_mask is None else _as_bool_mask(
            hidden_mask, st_hidden.shape[:2], "enc_mse hidden_mask")
        diff = _masked(st_hidden, m) - _masked(mt_hidden, m)
        return _reduce((diff * diff).sum(-1), m, reduction)

    # pool == "mean": one vector per sequence and side, lengths may differ.
    ms = full_mask(st_hidden) if hidden_mask is None else _as_bool_mask(
        hidden_mask, st_hidden.shape[:2], "enc_mse hidden_mask")
    if mt_hidden_mask is None:
        if mt_hidden.shape[1] != Ts and hidden_mask is not None:
            raise ValueError(
                "enc_mse pool='mean': ST and MT lengths differ, pass mt_hidden_mask "
                "for the MT side"
            )
        mm = full_mask(mt_hidden) if hidden_mask is None else ms
    else:
        mm = _as_bool_mask(mt_hidden_mask, mt_hidden.shape[:2], "enc_mse mt_hidden_mask")

    def mean_pool(x, m):
        summed = _masked(x, m).sum(1)
        count = m.sum(1).clamp(min=1).to(summed.dtype).unsqueeze(-1)
        return summed / count

    diff = mean_pool(st_hidden, ms) - mean_pool(mt_hidden, mm)
    per_seq = (diff * diff).sum(-1)  # (B,)
    if reduction == "none":
        return per_seq
    total = per_seq.sum()
    return total if reduction == "sum" else total / max(B, 1)


def consistency_loss(
    st_logits: Optional[torch.Tensor],
    mt_logits: Optional[torch.Tensor],
    mask: Optional[torch.Tensor],
    *,
    kind: str = "softmax_kl",
    direction: str = "mt_to_st",
    detach_mt: bool = False,
    st_hidden: Optional[torch.Tensor] = None,
    mt_hidden: Optional[torch.Tensor] = None,
    hidden_mask: Optional[torch.Tensor] = None,
    mt_hidden_mask: Optional[torch.Tensor] = None,
    pool: Optional[str] = None,
    temperature: float = 1.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """Cross-modal consistency regularizer L_CR between the ST and MT passes.

    ``kind`` (config key ``consistency_type``, as in the paper's ablation):

    * ``"softmax_kl"`` (default): token KL between P_ST and P_MT over
      ``st_logits`` / ``mt_logits`` (B, T, V) under ``mask`` (B, T).
      ``direction``: ``"mt_to_st"`` = KL(P_MT || P_ST) (default, [choice] of
      methods.md), ``"st_to_mt"`` = KL(P_ST || P_MT), ``"symmetric"`` =
      1/2 [KL(MT || ST) + KL(ST || MT)] (CRESS, beta 1.0 =
      :data:`CRESS_BETA`; SimCR uses beta 5 = :data:`SIMCR_BETA`).
    * ``"logits_mse"``: per token the squared L2 distance between the two
      logit vectors (summed over the vocabulary), reduced over valid tokens.
    * ``"enc_mse"``: squared L2 distance between encoder states
      ``st_hidden`` and ``mt_hidden`` (B, T', D); the logits and ``mask``
      are ignored (may be None).

      - ``pool=None``: position by position under ``hidden_mask`` (B, T')
        (None = every position valid). This NEEDS equal-length sequences:
        speech and transcript encodings usually differ in length, so the
        caller must pool or align them first; differing shapes raise
        ValueError. Reductions as for tokens, over valid positions.
      - ``pool="mean"``: each side is mean-pooled over its valid positions
        (``hidden_mask`` for ST, ``mt_hidden_mask`` for MT, defaulting to
        ``hidden_mask`` when the lengths agree), then the squared L2 distance
        per sequence is summed over the batch. ``"mean_tokens"`` divides by
        the batch size; ``"none"`` returns the (B,) per-sequence values.

    ``detach_mt=True`` stops the gradient into the MT side (logits or hidden
    states) for every kind. ``temperature`` applies to ``softmax_kl`` only.
    """
    _check_reduction(reduction)
    if kind not in CONSISTENCY_KINDS:
        raise ValueError(f"kind must be one of {CONSISTENCY_KINDS}, got {kind!r}")

    if kind == "enc_mse":
        if detach_mt and mt_hidden is not None:
            mt_hidden = mt_hidden.detach()
        return _enc_mse(st_hidden, mt_hidden, hidden_mask, mt_hidden_mask, pool, reduction)

    if pool is not None:
        raise ValueError("pool applies to kind='enc_mse' only")
    _check_logits(st_logits, "consistency_loss st_logits")
    _check_logits(mt_logits, "consistency_loss mt_logits")
    if st_logits.shape != mt_logits.shape:
        raise ValueError(
            f"consistency_loss: ST and MT logits differ in shape: {tuple(st_logits.shape)} "
            f"vs {tuple(mt_logits.shape)} (both passes must be teacher forced on the "
            "same target prefix)"
        )
    if detach_mt:
        mt_logits = mt_logits.detach()

    if kind == "logits_mse":
        m = _as_bool_mask(mask, st_logits.shape[:2], "consistency_loss")
        diff = _masked(st_logits, m) - _masked(mt_logits, m)
        return _reduce((diff * diff).sum(-1), m, reduction)

    # softmax_kl
    if direction == "mt_to_st":
        return token_kl(mt_logits, st_logits, mask, temperature=temperature,
                        reduction=reduction)
    if direction == "st_to_mt":
        return token_kl(st_logits, mt_logits, mask, temperature=temperature,
                        reduction=reduction)
    if direction == "symmetric":
        return symmetric_token_kl(st_logits, mt_logits, mask, temperature=temperature,
                                  reduction=reduction)
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


# --- doubled-batch helpers for R-drop --------------------------------------------
def double_batch(x: torch.Tensor) -> torch.Tensor:
    """[x; x] along dim 0: one forward pass gives two independent dropout samples."""
    return torch.cat([x, x], dim=0)


def split_doubled_batch(x: torch.Tensor, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Halves of a doubled batch (2B, ...) -> ((B, ...), (B, ...)), as views (no copy).

    The first half is the first pass, the second half the second pass, the
    order :func:`double_batch` builds.
    """
    if x.dim() == 0 or x.shape[0] != 2 * batch_size:
        raise ValueError(
            f"split_doubled_batch: expected leading size 2 * {batch_size}, "
            f"got shape {tuple(x.shape)}"
        )
    return x.narrow(0, 0, batch_size), x.narrow(0, batch_size, batch_size)
