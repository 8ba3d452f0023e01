"""Seed 001 losses: token KL, cross-modal consistency, R-drop (pure functions).

Expected values are worked out by hand with math.log, not recomputed with
torch; padding (NaN / inf / huge logits there) must change nothing.
"""

import math

import pytest
import torch

from espnet_mtl.losses import (
    consistency_loss,
    double_batch,
    rdrop_loss,
    split_doubled_batch,
    symmetric_token_kl,
    token_kl,
)
from espnet_mtl.losses import consistency as C

LN2, LN3 = math.log(2.0), math.log(3.0)
NAN, INF = float("nan"), float("inf")

# B=1, T=3, V=2; position 2 is padding and holds garbage.
#   softmax([0, ln3]) = [1, 3] / 4 = [1/4, 3/4]
#   softmax([ln3, 0]) = [3/4, 1/4]
#   softmax([0, 0])   = [1/2, 1/2]
#   softmax([0, ln3]) = [1/4, 3/4]
# P rows: [1/4, 3/4], [3/4, 1/4]      Q rows: [1/2, 1/2], [1/4, 3/4]
P_ROWS = [[0.0, LN3], [LN3, 0.0], [NAN, INF]]
Q_ROWS = [[0.0, 0.0], [0.0, LN3], [-INF, 1e30]]
MASK = [[True, True, False]]

# KL(P||Q) row 0 = 1/4 ln((1/4)/(1/2)) + 3/4 ln((3/4)/(1/2)) = 1/4 ln(1/2) + 3/4 ln(3/2)
KL_PQ_0 = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
# KL(P||Q) row 1 = 3/4 ln((3/4)/(1/4)) + 1/4 ln((1/4)/(3/4)) = 3/4 ln3 - 1/4 ln3 = 1/2 ln3
KL_PQ_1 = 0.5 * LN3
# KL(Q||P) row 0 = 1/2 ln((1/2)/(1/4)) + 1/2 ln((1/2)/(3/4)) = 1/2 ln2 + 1/2 ln(2/3)
KL_QP_0 = 0.5 * LN2 + 0.5 * math.log(2.0 / 3.0)
# KL(Q||P) row 1 = 1/4 ln(1/3) + 3/4 ln3 = 1/2 ln3
KL_QP_1 = 0.5 * LN3
# symmetric row 0: 1/2 [(3/4 ln3 - ln2) + (ln2 - 1/2 ln3)] = 1/2 * 1/4 ln3 = 1/8 ln3
SYM_0 = LN3 / 8.0
SYM_1 = 0.5 * LN3


def _t(rows, requires_grad=False):
    return torch.tensor([rows], dtype=torch.float64, requires_grad=requires_grad)


def _mask():
    return torch.tensor(MASK)


def test_hand_values_hold():
    # sanity of the comment arithmetic itself
    assert KL_PQ_0 == pytest.approx(0.75 * LN3 - LN2)
    assert KL_QP_0 == pytest.approx(LN2 - 0.5 * LN3)
    assert 0.5 * (KL_PQ_0 + KL_QP_0) == pytest.approx(SYM_0)


def test_token_kl_by_hand():
    p, q = _t(P_ROWS), _t(Q_ROWS)
    assert token_kl(p, q, _mask()).item() == pytest.approx(KL_PQ_0 + KL_PQ_1, abs=1e-12)
    assert token_kl(q, p, _mask()).item() == pytest.approx(KL_QP_0 + KL_QP_1, abs=1e-12)
    per = token_kl(p, q, _mask(), reduction="none")
    assert per.shape == (1, 3)
    assert per[0, 0].item() == pytest.approx(KL_PQ_0, abs=1e-12)
    assert per[0, 1].item() == pytest.approx(KL_PQ_1, abs=1e-12)
    assert per[0, 2].item() == 0.0
    mean = token_kl(p, q, _mask(), reduction="mean_tokens")
    assert mean.item() == pytest.approx((KL_PQ_0 + KL_PQ_1) / 2, abs=1e-12)


def test_token_kl_temperature():
    # logits / T with T=2: [0, 2 ln3] / 2 = [0, ln3] -> [1/4, 3/4]; [0, 0] -> [1/2, 1/2]
    p = torch.tensor([[[0.0, 2 * LN3]]], dtype=torch.float64)
    q = torch.zeros(1, 1, 2, dtype=torch.float64)
    m = torch.ones(1, 1, dtype=torch.bool)
    assert token_kl(p, q, m, temperature=2.0).item() == pytest.approx(KL_PQ_0, abs=1e-12)
    with pytest.raises(ValueError):
        token_kl(p, q, m, temperature=0.0)


def test_consistency_softmax_kl_directions_by_hand():
    st, mt = _t(Q_ROWS), _t(P_ROWS)  # P_MT = P rows, P_ST = Q rows
    m = _mask()
    # default mt_to_st = KL(P_MT || P_ST)
    assert consistency_loss(st, mt, m).item() == pytest.approx(KL_PQ_0 + KL_PQ_1, abs=1e-12)
    assert consistency_loss(st, mt, m, direction="st_to_mt").item() == pytest.approx(
        KL_QP_0 + KL_QP_1, abs=1e-12)
    assert consistency_loss(st, mt, m, direction="symmetric").item() == pytest.approx(
        SYM_0 + SYM_1, abs=1e-12)
    with pytest.raises(ValueError):
        consistency_loss(st, mt, m, direction="sideways")
    with pytest.raises(ValueError):
        consistency_loss(st, mt, m, kind="cosine")


def test_logits_mse_by_hand():
    # row 0: st [1, 2] vs mt [0, 0] -> 1 + 4 = 5; row 1: st [3, 0] vs mt [1, 1] -> 4 + 1 = 5
    st = _t([[1.0, 2.0], [3.0, 0.0], [NAN, -INF]])
    mt = _t([[0.0, 0.0], [1.0, 1.0], [1e30, INF]])
    m = _mask()
    assert consistency_loss(st, mt, m, kind="logits_mse").item() == pytest.approx(10.0)
    per = consistency_loss(st, mt, m, kind="logits_mse", reduction="none")
    assert per.tolist() == [[5.0, 5.0, 0.0]]
    assert consistency_loss(st, mt, m, kind="logits_mse",
                            reduction="mean_tokens").item() == pytest.approx(5.0)


def test_rdrop_by_hand():
    # P1 = [1/4, 3/4], P2 = [1/2, 1/2]:
    # 1/2 [KL(P1||P2) + KL(P2||P1)] = 1/2 sum_v (p1 - p2)(ln p1 - ln p2)
    #   = 1/2 [(-1/4) ln(1/2) + (1/4) ln(3/2)] = 1/8 (ln2 + ln(3/2)) = 1/8 ln3
    l1 = torch.tensor([[[0.0, LN3], [7.0, NAN]]], dtype=torch.float64)
    l2 = torch.tensor([[[0.0, 0.0], [INF, 1.0]]], dtype=torch.float64)
    m = torch.tensor([[1, 0]])  # 0/1 integer mask
    assert rdrop_loss(l1, l2, m).item() == pytest.approx(LN3 / 8, abs=1e-12)
    assert rdrop_loss(l1, l2, m).item() == pytest.approx(rdrop_loss(l2, l1, m).item(), abs=1e-15)


def test_enc_mse_positionwise_by_hand():
    # valid positions: [1, 2] vs [0, 0] -> 5; [0, 0] vs [3, 4] -> 25; total 30
    st = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [NAN, INF]]], dtype=torch.float64)
    mt = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [1e30, -INF]]], dtype=torch.float64)
    hm = torch.tensor([[1.0, 1.0, 0.0]])  # float 0/1 mask
    loss = consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt,
                            hidden_mask=hm)
    assert loss.item() == pytest.approx(30.0)
    per = consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt,
                           hidden_mask=hm, reduction="none")
    assert per.tolist() == [[5.0, 25.0, 0.0]]
    mean = consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt,
                            hidden_mask=hm, reduction="mean_tokens")
    assert mean.item() == pytest.approx(15.0)


def test_enc_mse_shape_mismatch_raises():
    st = torch.zeros(2, 5, 4)
    mt = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="equal shapes"):
        consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt)
    with pytest.raises(ValueError, match="st_hidden and mt_hidden"):
        consistency_loss(None, None, None, kind="enc_mse", st_hidden=st)
    with pytest.raises(ValueError):  # feature size differs
        consistency_loss(None, None, None, kind="enc_mse", st_hidden=st,
                         mt_hidden=torch.zeros(2, 5, 3), pool="mean")


def test_enc_mse_mean_pool_by_hand():
    # batch element 0: ST valid [1, 2], [3, 0] (pad [nan, inf]) -> mean [2, 1]
    #                  MT valid [0, 0], [2, 2]                 -> mean [1, 1]  => |[1, 0]|^2 = 1
    # batch element 1: ST valid [4, 4] (two pads)              -> mean [4, 4]
    #                  MT valid [1, 0] (one pad [inf, nan])    -> mean [1, 0]  => 9 + 16 = 25
    st = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [NAN, INF]],
                       [[4.0, 4.0], [1e30, 0.0], [-INF, NAN]]], dtype=torch.float64)
    mt = torch.tensor([[[0.0, 0.0], [2.0, 2.0]],
                       [[1.0, 0.0], [INF, NAN]]], dtype=torch.float64)
    hs = torch.tensor([[True, True, False], [True, False, False]])
    hm = torch.tensor([[True, True], [True, False]])
    kw = dict(kind="enc_mse", st_hidden=st, mt_hidden=mt, hidden_mask=hs,
              mt_hidden_mask=hm, pool="mean")
    assert consistency_loss(None, None, None, **kw).item() == pytest.approx(26.0)
    assert consistency_loss(None, None, None, reduction="none", **kw).tolist() == [1.0, 25.0]
    assert consistency_loss(None, None, None, reduction="mean_tokens",
                            **kw).item() == pytest.approx(13.0)
    # different lengths without an MT mask is ambiguous
    with pytest.raises(ValueError, match="mt_hidden_mask"):
        consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt,
                         hidden_mask=hs, pool="mean")


def test_enc_mse_mean_pool_gradients_ignore_padding():
    st = torch.tensor([[[1.0, 2.0], [3.0, 0.0], [NAN, INF]]], dtype=torch.float64,
                      requires_grad=True)
    mt = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]], dtype=torch.float64, requires_grad=True)
    hs = torch.tensor([[True, True, False]])
    loss = consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt,
                            hidden_mask=hs, mt_hidden_mask=torch.ones(1, 2, dtype=torch.bool),
                            pool="mean")
    loss.backward()
    # d/d st_i of |mean(st) - mean(mt)|^2 = 2 (mean diff) / n = 2 [1, 0] / 2 = [1, 0]
    assert st.grad.tolist() == [[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]
    assert mt.grad.tolist() == [[[-1.0, 0.0], [-1.0, 0.0]]]


# --- padding invariance, all losses -----------------------------------------------
B, T, V, D = 2, 4, 5, 3
LENGTHS = [4, 2]


def _len_mask():
    return torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]


def _poison(x, m):
    """Garbage at padded positions: NaN, +inf, -inf, huge, cycling over entries."""
    x = x.detach().clone()
    garbage = torch.tensor([NAN, INF, -INF, 1e30, -1e30], dtype=x.dtype)
    pad = ~m
    n = int(pad.sum()) * x.shape[-1]
    x[pad] = garbage.repeat(n // len(garbage) + 1)[:n].view(-1, x.shape[-1])
    return x


LOSSES = {
    "token_kl": lambda a, b, m: token_kl(a, b, m),
    "token_kl_T": lambda a, b, m: token_kl(a, b, m, temperature=0.7),
    "symmetric_token_kl": lambda a, b, m: symmetric_token_kl(a, b, m),
    "cr_mt_to_st": lambda a, b, m: consistency_loss(a, b, m),
    "cr_st_to_mt": lambda a, b, m: consistency_loss(a, b, m, direction="st_to_mt"),
    "cr_symmetric": lambda a, b, m: consistency_loss(a, b, m, direction="symmetric"),
    "cr_logits_mse": lambda a, b, m: consistency_loss(a, b, m, kind="logits_mse"),
    "rdrop": lambda a, b, m: rdrop_loss(a, b, m),
    "rdrop_mean": lambda a, b, m: rdrop_loss(a, b, m, reduction="mean_tokens"),
    "enc_mse": lambda a, b, m: consistency_loss(None, None, None, kind="enc_mse",
                                                st_hidden=a, mt_hidden=b, hidden_mask=m),
    "enc_mse_mean": lambda a, b, m: consistency_loss(None, None, None, kind="enc_mse",
                                                     st_hidden=a, mt_hidden=b, hidden_mask=m,
                                                     pool="mean"),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_padding_changes_nothing(name):
    fn = LOSSES[name]
    g = torch.Generator().manual_seed(0)
    last = D if name.startswith("enc") else V
    a = torch.randn(B, T, last, generator=g, dtype=torch.float64)
    b = torch.randn(B, T, last, generator=g, dtype=torch.float64)
    m = _len_mask()

    def run(a0, b0):
        a1, b1 = a0.clone().requires_grad_(), b0.clone().requires_grad_()
        loss = fn(a1, b1, m)
        loss.backward()
        return loss.detach(), a1.grad, b1.grad

    clean = run(a, b)
    dirty = run(_poison(a, m), _poison(b, m))
    assert torch.isfinite(clean[0]) and torch.isfinite(dirty[0])
    assert clean[0].item() > 0
    assert torch.allclose(clean[0], dirty[0], rtol=0, atol=1e-12)
    for gc, gd in ((clean[1], dirty[1]), (clean[2], dirty[2])):
        assert torch.isfinite(gd).all()
        assert torch.allclose(gc[m], gd[m], rtol=0, atol=1e-12)
        assert (gd[~m] == 0).all() and (gc[~m] == 0).all()
        assert gd[m].abs().sum() > 0


def test_none_reduction_zeros_at_padding_and_mean_tokens():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(B, T, V, generator=g)
    b = torch.randn(B, T, V, generator=g)
    m = _len_mask()
    for kw in (dict(), dict(direction="symmetric"), dict(kind="logits_mse")):
        per = consistency_loss(_poison(a, m), _poison(b, m), m, reduction="none", **kw)
        assert per.shape == (B, T)
        assert (per[~m] == 0).all() and (per[m] > 0).all()
        total = consistency_loss(a, b, m, **kw)
        assert torch.allclose(per.sum(), total)
        mean = consistency_loss(a, b, m, reduction="mean_tokens", **kw)
        assert torch.allclose(mean, total / sum(LENGTHS))
    with pytest.raises(ValueError):
        consistency_loss(a, b, m, reduction="mean")


def test_mask_dtypes_are_equivalent():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(B, T, V, generator=g)
    b = torch.randn(B, T, V, generator=g)
    m = _len_mask()
    ref = token_kl(a, b, m)
    assert torch.equal(token_kl(a, b, m.long()), ref)
    assert torch.equal(token_kl(a, b, m.float()), ref)
    with pytest.raises(ValueError, match="mask shape"):
        token_kl(a, b, m[:, :2])


# --- structural properties ----------------------------------------------------------
def test_zero_when_distributions_equal():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(B, T, V, generator=g)
    m = _len_mask()
    for direction in ("mt_to_st", "st_to_mt", "symmetric"):
        assert consistency_loss(a, a.clone(), m, direction=direction).item() == 0.0
    assert token_kl(a, a, m).item() == 0.0
    assert rdrop_loss(a, a.clone(), m).item() == 0.0
    # a constant shift of the logits leaves the softmax unchanged
    assert token_kl(a, a + 2.5, m).item() == pytest.approx(0.0, abs=1e-6)
    assert consistency_loss(a, a, m, kind="logits_mse").item() == 0.0


def test_symmetric_and_direction_switch():
    g = torch.Generator().manual_seed(4)
    st = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    mt = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    m = _len_mask()
    sym = consistency_loss(st, mt, m, direction="symmetric")
    assert torch.allclose(sym, consistency_loss(mt, st, m, direction="symmetric"))
    fwd = consistency_loss(st, mt, m, direction="mt_to_st")
    bwd = consistency_loss(st, mt, m, direction="st_to_mt")
    assert not torch.allclose(fwd, bwd)
    # switching direction == swapping the arguments
    assert torch.equal(bwd, consistency_loss(mt, st, m, direction="mt_to_st"))
    assert torch.equal(fwd, token_kl(mt, st, m))
    assert torch.equal(bwd, token_kl(st, mt, m))
    assert torch.allclose(sym, 0.5 * (fwd + bwd))
    assert torch.allclose(rdrop_loss(st, mt, m), sym)


@pytest.mark.parametrize("kind", ["softmax_kl", "logits_mse"])
@pytest.mark.parametrize("direction", ["mt_to_st", "st_to_mt", "symmetric"])
def test_detach_mt(kind, direction):
    g = torch.Generator().manual_seed(5)
    st = torch.randn(B, T, V, generator=g, requires_grad=True)
    mt = torch.randn(B, T, V, generator=g, requires_grad=True)
    m = _len_mask()
    consistency_loss(st, mt, m, kind=kind, direction=direction, detach_mt=True).backward()
    assert mt.grad is None
    assert st.grad is not None and st.grad[m].abs().sum() > 0
    # without detach both sides get gradient
    st.grad = None
    consistency_loss(st, mt, m, kind=kind, direction=direction).backward()
    assert mt.grad is not None and mt.grad[m].abs().sum() > 0


def test_detach_mt_enc_mse():
    g = torch.Generator().manual_seed(6)
    st = torch.randn(B, T, D, generator=g, requires_grad=True)
    mt = torch.randn(B, T, D, generator=g, requires_grad=True)
    for pool in (None, "mean"):
        st.grad = None
        consistency_loss(None, None, None, kind="enc_mse", st_hidden=st, mt_hidden=mt,
                         hidden_mask=_len_mask(), pool=pool, detach_mt=True).backward()
        assert mt.grad is None and st.grad.abs().sum() > 0


def test_rdrop_no_side_detached():
    g = torch.Generator().manual_seed(7)
    l1 = torch.randn(B, T, V, generator=g, requires_grad=True)
    l2 = torch.randn(B, T, V, generator=g, requires_grad=True)
    rdrop_loss(l1, l2, _len_mask()).backward()
    assert l1.grad.abs().sum() > 0 and l2.grad.abs().sum() > 0


def test_gradcheck_kl_terms():
    g = torch.Generator().manual_seed(8)
    a = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda x, y: token_kl(x, y, m, temperature=1.3), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: rdrop_loss(x, y, m), (a, b))


def test_minus_inf_logit_at_valid_position_is_finite():
    # a vocabulary entry masked with -inf on both sides: 0 log 0 := 0.
    # Remaining entries: P = softmax([0, ln3]) = [1/4, 3/4], Q = [1/2, 1/2]
    p = torch.tensor([[[0.0, LN3, -INF]]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[[0.0, 0.0, -INF]]], dtype=torch.float64, requires_grad=True)
    m = torch.ones(1, 1, dtype=torch.bool)
    loss = token_kl(p, q, m) + rdrop_loss(p, q, m)
    assert loss.item() == pytest.approx(KL_PQ_0 + LN3 / 8, abs=1e-12)
    loss.backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()


def test_half_precision_computes_in_float32():
    a = torch.tensor([[[0.0, LN3]]], dtype=torch.bfloat16)
    b = torch.zeros(1, 1, 2, dtype=torch.bfloat16)
    out = token_kl(a, b, torch.ones(1, 1, dtype=torch.bool))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(KL_PQ_0, abs=1e-2)


# --- doubled batch -------------------------------------------------------------------
def test_split_doubled_batch_views():
    x = torch.arange(12.0).view(3, 4)
    doubled = double_batch(x)
    assert doubled.shape == (6, 4)
    first, second = split_doubled_batch(doubled, 3)
    assert torch.equal(first, x) and torch.equal(second, x)
    # views, no copy
    assert first.data_ptr() == doubled.data_ptr()
    assert second.data_ptr() == doubled.data_ptr() + 3 * 4 * doubled.element_size()
    first[0, 0] = -1.0
    assert doubled[0, 0].item() == -1.0
    with pytest.raises(ValueError):
        split_doubled_batch(doubled, 2)


def test_rdrop_through_a_doubled_batch():
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(2 * B, T, V, generator=g, requires_grad=True)
    l1, l2 = split_doubled_batch(logits, B)
    m = _len_mask()
    loss = rdrop_loss(l1, l2, m)
    loss.backward()
    assert logits.grad.shape == logits.shape
    assert logits.grad[:B][m].abs().sum() > 0 and logits.grad[B:][m].abs().sum() > 0


def test_reference_constants():
    assert C.CRESS_BETA == 1.0 and C.SIMCR_BETA == 5.0
    assert C.RDROP_ALPHA_RANGE == (3.0, 5.0)
    assert C.MT_WEIGHT_PEAK_RANGE == (0.1, 0.5)
    assert C.DIRECTIONS[0] == "mt_to_st"
    assert set(C.CONSISTENCY_KINDS) == {"softmax_kl", "logits_mse", "enc_mse"}
