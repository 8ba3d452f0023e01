"""The `cpc` objective: its loss (espnet_mtl.losses.cpc), its head and the model seam."""

import math

import pytest
import torch

from espnet_mtl import objectives as objective_table
from espnet_mtl.losses.cpc import cpc_loss
from espnet_mtl.models.mtl_st import MTLSTModel
from espnet_mtl.modules.cpc import CPCHead
from espnet_mtl.objectives import ObjectiveContext, ObjectiveError

from test_mtl_st_model import _batch, _build

CTX = ObjectiveContext(ignore_id=-1, vocab_size=6, src_vocab_size=7, lsm_weight=0.0,
                       length_normalized=False)
CPC_ON = {"objectives": {"st_ce": 1.0, "cpc": {"weight": 0.1, "steps": 2}}}


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _reference(rows, preds, steps, temperature=0.1):
    """Plain python: rows[b] = valid frames of utterance b, preds[b][t][k - 1] = p_t^k."""
    frames = [z for row in rows for z in row]
    terms = []
    for b, row in enumerate(rows):
        first = sum(len(r) for r in rows[:b])
        for t in range(len(row)):
            for k in range(1, steps + 1):
                if t + k >= len(row):
                    continue
                p = preds[b][t][k - 1]
                logits = [_cos(p, z) / temperature for z in frames]
                pos = first + t + k
                terms.append(-logits[pos] + math.log(sum(math.exp(v) for v in logits)))
    return sum(terms) / len(terms)


def test_loss_against_a_hand_value():
    # identity context and predictor (p_t^1 = z_t): the softmax written out by hand
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    got = cpc_loss(z, z[:, :, None, :], torch.tensor([3]), temperature=0.1)
    r = 1 / math.sqrt(2)  # cos((0, 1), (1, 1)) = cos((1, 0), (1, 1))
    # t=0: p=(1,0) vs z_1=(0,1) (cos 0); negatives z_0 (cos 1), z_2 (cos r)
    first = -0.0 + math.log(math.exp(0.0) + math.exp(10.0) + math.exp(10 * r))
    # t=1: p=(0,1) vs z_2 (cos r); negatives z_0 (cos 0), z_1 (cos 1)
    second = -10 * r + math.log(math.exp(0.0) + math.exp(10.0) + math.exp(10 * r))
    assert float(got) == pytest.approx((first + second) / 2, rel=1e-5)
    assert float(got) == pytest.approx(_reference([z[0].tolist()], [[[v] for v in z[0].tolist()]],
                                                  1), rel=1e-6)


def test_two_rows_two_steps_with_padding_match_the_reference():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    p = torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64)
    lens = torch.tensor([4, 3])
    z[1, 3], p[1, 3] = float("nan"), float("nan")
    got = cpc_loss(z, p, lens, temperature=0.1)
    rows = [z[0].tolist(), z[1, :3].tolist()]
    preds = [p[0].tolist(), p[1, :3].tolist()]
    assert float(got) == pytest.approx(_reference(rows, preds, steps=2), rel=1e-9)
    # enough negatives asked for: every valid frame, the same value
    assert torch.equal(cpc_loss(z, p, lens, num_negatives=6), got)


@pytest.mark.parametrize("context", ["gru", "conv"])
@pytest.mark.parametrize("num_negatives", [None, 3])
def test_padding_changes_nothing(context, num_negatives):
    """NaN in the padding frames: the same value and gradients, finite, 0 on padding."""
    torch.manual_seed(0)
    head = CPCHead(4, steps=2, context=context, context_size=5)
    lens = torch.tensor([6, 4, 2])
    base = torch.randn(3, 6, 4)
    results = []
    for fill in (0.0, float("nan"), 1e6):
        z = base.clone()
        for b, n in enumerate(lens.tolist()):
            z[b, n:] = fill
        z.requires_grad_(True)
        head.zero_grad()
        torch.manual_seed(1)  # the same negatives drawn each time
        loss = cpc_loss(z, head(z, lens), lens, num_negatives=num_negatives)
        loss.backward()
        results.append((loss.detach(), z.grad.clone(),
                        [q.grad.clone() for q in head.parameters()]))
    ref_loss, ref_grad, ref_head = results[0]
    assert torch.isfinite(ref_loss) and float(ref_loss) > 0
    for loss, grad, head_grads in results[1:]:
        assert torch.allclose(loss, ref_loss, atol=1e-6)
        assert torch.isfinite(grad).all()
        assert torch.allclose(grad, ref_grad, atol=1e-6)
        for a, b in zip(head_grads, ref_head):
            assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-5)
    for b, n in enumerate(lens.tolist()):
        assert (ref_grad[b, n:] == 0).all()


def test_negatives_are_valid_frames_only():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 3, generator=g)
    p = torch.randn(2, 5, 1, 3, generator=g)
    lens = torch.tensor([5, 2])
    clean = cpc_loss(z, p, lens)
    # padding made into perfect negatives (every prediction's direction) is not used
    tricky = z.clone()
    tricky[1, 2:] = p[0, :3, 0]
    assert torch.equal(cpc_loss(tricky, p, lens), clean)
    # sampled negatives: NaN padding is never drawn (any draw would make the loss NaN)
    z[1, 2:] = float("nan")
    for seed in range(20):
        torch.manual_seed(seed)
        assert torch.isfinite(cpc_loss(z, p, lens, num_negatives=2))
    # deterministic given torch's RNG
    torch.manual_seed(7)
    a = cpc_loss(z, p, lens, num_negatives=2)
    torch.manual_seed(7)
    assert torch.equal(cpc_loss(z, p, lens, num_negatives=2), a)


def test_no_pair_is_zero_and_bad_arguments_fail():
    z = torch.randn(2, 3, 2, requires_grad=True)
    zero = cpc_loss(z, z[:, :, None], torch.tensor([1, 1]))
    assert float(zero.detach()) == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="temperature must be > 0"):
        cpc_loss(z, z[:, :, None], torch.tensor([3, 2]), temperature=0.0)
    with pytest.raises(ValueError, match=r"predictions must be \(B, T, K, D\)"):
        cpc_loss(z, z, torch.tensor([3, 2]))
    with pytest.raises(ValueError, match="num_negatives must be >= 1"):
        cpc_loss(z, z[:, :, None], torch.tensor([3, 2]), num_negatives=0)


@pytest.mark.parametrize("context", ["gru", "conv"])
def test_the_context_is_causal(context):
    torch.manual_seed(0)
    head = CPCHead(3, steps=2, context=context)
    z = torch.randn(1, 6, 3)
    later = z.clone()
    later[0, 3:] += 5.0
    lens = torch.tensor([6])
    a, b = head(z, lens), head(later, lens)
    assert a.shape == (1, 6, 2, 3)
    assert torch.allclose(a[:, :3], b[:, :3])  # c_t sees frames up to t only
    assert not torch.allclose(a[:, 3:], b[:, 3:])


@pytest.mark.parametrize("options, message", [
    ({"steps": 0}, r"cpc.steps must be an integer >= 1, got 0"),
    ({"steps": 1.5}, r"cpc.steps must be an integer >= 1"),
    ({"temperature": 0.0}, r"cpc.temperature must be > 0, got 0.0"),
    ({"temperature": -0.1}, r"cpc.temperature must be > 0"),
    ({"num_negatives": 0}, r"cpc.num_negatives must be an integer >= 1 or null"),
    ({"context": "lstm"}, r"cpc.context must be one of gru, conv"),
    ({"stepz": 2}, r"cpc: .*unexpected keyword argument 'stepz'"),
])
def test_bad_options_name_the_key(options, message):
    with pytest.raises(ObjectiveError, match=message):
        objective_table.build({"cpc": {"weight": 0.1, **options}}, CTX)


def test_model_with_cpc_trains_and_its_head_gets_a_gradient(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, CPC_ON)
    assert set(model.objective_modules) == {"cpc"}
    head = model.objective_modules["cpc"]
    assert head.steps == 2 and head.input_size == model.encoder.output_size()
    model.train()
    out = model(**_batch(), return_objectives=True)
    cpc = out["objectives"]["cpc"]
    assert torch.isfinite(cpc) and float(cpc.detach()) > 0
    assert float(out["stats"]["loss_cpc"]) == float(cpc.detach())
    cpc.backward()  # CPC alone: the head and the shared acoustic encoder learn from it
    for q in head.parameters():
        assert q.grad is not None and q.grad.abs().sum() > 0
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in model.encoder.parameters())
    assert all(q.grad is None for q in model.decoder.parameters())
    # one step of the whole weighted sum moves the head
    model.zero_grad()
    before = [q.detach().clone() for q in head.parameters()]
    loss, _, _ = model(**_batch())
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert any(not torch.equal(a, q) for a, q in zip(before, head.parameters()))
    # validation reports it too (not train_only)
    model.eval()
    model.validating = True
    with torch.no_grad():
        _, stats, _ = model(**_batch())
    assert torch.isfinite(stats["loss_cpc"])


def test_cpc_with_rdrop_compares_each_copy_alone(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, {"objectives": {
        "st_ce": 1.0, "rdrop": 1.0, "cpc": {"weight": 0.1, "steps": 1, "num_negatives": None}}})
    model.train()
    loss, stats, _ = model(**_batch())
    loss.backward()
    assert torch.isfinite(stats["loss_cpc"]) and torch.isfinite(stats["loss_rd"])


def test_speech_only_rows_feed_cpc(tmp_path, monkeypatch):
    conf = CPC_ON
    assert MTLSTModel.consumes(("speech",), conf) == ["cpc"]
    assert MTLSTModel.consumes(("speech", "text"), conf) == ["st_ce", "cpc"]
    model = _build(tmp_path, monkeypatch, conf)
    model.train()
    batch = _batch()
    batch["text_lengths"] = torch.tensor([0, 0])  # no translation: only CPC reads these rows
    loss, stats, _ = model(**batch)
    assert stats["loss_st"] is None and torch.isfinite(stats["loss_cpc"])
    loss.backward()


def test_without_cpc_the_state_dict_is_unchanged(tmp_path, monkeypatch):
    off = _build(tmp_path, monkeypatch, {"objectives": {"st_ce": 1.0, "cpc": 0.0}})
    plain = _build(tmp_path, monkeypatch, {"objectives": {"st_ce": 1.0}})
    on = _build(tmp_path, monkeypatch, CPC_ON)
    assert len(off.objective_modules) == 0
    keys = set(plain.state_dict())
    assert set(off.state_dict()) == keys
    assert not any(k.startswith("objective_modules") for k in keys)
    extra = set(on.state_dict()) - keys
    assert extra and all(k.startswith("objective_modules.cpc.") for k in extra)
    assert keys <= set(on.state_dict())
    # turning CPC on changes no other initial weight; an old checkpoint loads
    for k, v in plain.state_dict().items():
        assert torch.equal(on.state_dict()[k], v), k
    off.load_state_dict(plain.state_dict())
    missing, unexpected = on.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == extra and unexpected == []
