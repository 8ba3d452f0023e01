"""IMTL (seed 000) modules: CTC length shrinking + Looking-Back, Local-to-Global
convolutions, InfoNCE, and the model that composes them by config."""

import math
import sys

import numpy as np
import pytest
import torch

from espnet_mtl.losses.contrastive import info_nce, masked_mean
from espnet_mtl.modules.local_to_global import LocalToGlobal, kernel_sizes
from espnet_mtl.modules.shrinking import (
    LookingBack,
    ShrinkLBMAdapter,
    gumbel_temperature,
    run_starts,
    shrink,
)
from espnet_mtl.tasks.st import MTLSTTask

from dry_run import dry_run
from test_mtl_st_model import TGT, _batch, _build, _conf, _write


# -- shrinking ------------------------------------------------------------------------
def test_shrinking_keeps_one_frame_per_run_blank_runs_included():
    labels = torch.tensor([[1, 1, 0, 0, 2, 2, 2, 0],
                           [3, 3, 3, 0, 5, 5, 9, 9]])  # row 1: frames 5.. are padding
    lens = torch.tensor([8, 5])
    keep = run_starts(labels, lens)
    assert keep.tolist() == [[True, False, True, False, True, False, False, True],
                             [True, False, False, True, True, False, False, False]]
    xs = torch.arange(2 * 8 * 3, dtype=torch.float).reshape(2, 8, 3)
    ys, new_lens = shrink(xs, keep)
    assert new_lens.tolist() == [4, 3] and ys.shape == (2, 4, 3)
    assert torch.equal(ys[0], xs[0, [0, 2, 4, 7]])
    assert torch.equal(ys[1, :3], xs[1, [0, 3, 4]])
    assert torch.equal(ys[1, 3], torch.zeros(3))  # padding of the shorter row


def test_gumbel_temperature_schedule():
    assert gumbel_temperature(0) == 1.0
    assert gumbel_temperature(1000) == pytest.approx(0.999995 ** 1000)
    # 0.999995^step reaches 0.1 at step ln(0.1)/ln(0.999995) ~ 460,516; floored after
    assert gumbel_temperature(460_000) > 0.1
    assert gumbel_temperature(500_000) == 0.1


def test_looking_back_length_and_padding_invariance():
    torch.manual_seed(0)
    lbm = LookingBack(size=8, attention_heads=2, linear_units=16, dropout_rate=0.0).eval()
    memory, query = torch.randn(2, 10, 8), torch.randn(2, 4, 8)
    memory_lens, query_lens = torch.tensor([10, 6]), torch.tensor([4, 2])
    memory[1, 6:] = float("nan")
    query[1, 2:] = float("nan")
    out = lbm(query, query_lens, memory, memory_lens)
    assert out.shape == (2, 4, 8) and torch.isfinite(out).all()
    assert torch.equal(out[1, 2:], torch.zeros(2, 8))
    alone = lbm(query[1:, :2], query_lens[1:], memory[1:, :6], memory_lens[1:])
    assert torch.allclose(out[1:, :2], alone, atol=1e-6)


class _FixedCTC(torch.nn.Module):
    """A CTC head whose logits are the first `vocab` input features (labels set by hand)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def ctc_lo(self, xs):
        return xs[..., : self.vocab] * 100.0


def _adapter(**kw):
    adapter = ShrinkLBMAdapter(input_size=8, output_size=6, attention_heads=2, linear_units=16,
                               dropout_rate=0.0, **kw)
    adapter.bind(type("M", (), {"ctc": _FixedCTC(4)})())
    return adapter


def _frames(labels, size=8):
    xs = torch.randn(len(labels), len(labels[0]), size) * 0.01
    for b, row in enumerate(labels):
        for t, label in enumerate(row):
            xs[b, t, label] += 1.0  # CTC argmax = label
    return xs


def test_adapter_shrinks_after_warmup_and_counts_updates():
    torch.manual_seed(0)
    adapter = _adapter(warmup_steps=2)
    xs = _frames([[1, 1, 0, 2, 2, 0], [3, 3, 0, 0, 1, 1]])
    lens = torch.tensor([6, 4])
    adapter.train()
    for _ in range(2):  # warm-up: the full sequence goes through
        out, out_lens = adapter(xs, lens)
        assert out_lens.tolist() == [6, 4] and out.shape == (2, 6, 6)
    assert int(adapter.updates) == 2 and adapter.shrinking
    adapter.eval()
    out, out_lens = adapter(xs, lens)
    assert out_lens.tolist() == [4, 2] and out.shape == (2, 4, 6)  # runs 1,0,2,0 and 3,0
    assert torch.equal(out[1, 2:], torch.zeros(2, 6))
    assert int(adapter.updates) == 2  # eval does not count
    # the counter is state: a resumed model shrinks as the killed one did
    fresh = _adapter(warmup_steps=2)
    fresh.load_state_dict(adapter.state_dict())
    assert fresh.shrinking


def test_adapter_training_sample_reaches_the_ctc_logits():
    torch.manual_seed(0)
    adapter = ShrinkLBMAdapter(input_size=8, output_size=8, attention_heads=2, linear_units=16,
                               dropout_rate=0.0, warmup_steps=0)
    ctc_lo = torch.nn.Linear(8, 4)
    adapter.bind(type("M", (), {"ctc": type("C", (), {"ctc_lo": ctc_lo})()})())
    adapter.train()
    out, _ = adapter(torch.randn(2, 7, 8), torch.tensor([7, 5]))
    out.sum().backward()
    assert ctc_lo.weight.grad is not None and float(ctc_lo.weight.grad.abs().sum()) > 0


# -- Local-to-Global --------------------------------------------------------------------
def test_l2g_kernel_sizes_are_the_papers():
    assert kernel_sizes(6) == [5, 9, 11, 15, 17, 21]
    assert LocalToGlobal(size=4, num_blocks=3).kernels == [5, 9, 11]


@pytest.mark.parametrize("training", [True, False])
def test_l2g_padding_changes_nothing_and_the_branch_contributes(training):
    torch.manual_seed(0)
    l2g = LocalToGlobal(size=6, num_blocks=2).train(training)
    xs = torch.randn(2, 9, 6)
    lens = torch.tensor([9, 5])
    mask = torch.arange(9)[None, None, :] < lens[:, None, None]
    # the same batch padded further, with NaN in every padding frame
    longer = torch.cat([xs, torch.zeros(2, 4, 6)], 1)
    longer[1, 5:] = float("nan")
    longer_mask = torch.arange(13)[None, None, :] < lens[:, None, None]
    for index in (0, 1):
        out = l2g(index, xs.clone(), mask)
        out_longer = l2g(index, longer.clone(), longer_mask)
        assert torch.isfinite(out_longer).all()
        assert torch.allclose(out[0], out_longer[0, :9], atol=1e-5)
        assert torch.allclose(out[1, :5], out_longer[1, :5], atol=1e-5)
        # the residual branch adds something on valid frames (the released code's
        # inverted mask made it add nothing)
        assert not torch.allclose(out[0], xs[0], atol=1e-3)
    if not training:  # eval: each utterance alone gives the batched frames
        alone = l2g(1, xs[1:, :5].clone(), mask[1:, :, :5])
        assert torch.allclose(l2g(1, xs.clone(), mask)[1, :5], alone[0], atol=1e-5)


# -- InfoNCE ----------------------------------------------------------------------------
def test_info_nce_against_a_hand_computed_value():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosines: a0.p0 = 1, a0.p1 = 1/sqrt2, a1.p0 = 0, a1.p1 = 1/sqrt2; / 0.1
    c = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(10) / (math.exp(10) + math.exp(10 * c)))
    row1 = -math.log(math.exp(10 * c) / (math.exp(0) + math.exp(10 * c)))
    assert float(info_nce(a, p, 0.1)) == pytest.approx(row0 + row1, rel=1e-5)
    assert float(info_nce(a, p, 0.1, reduction="mean")) == pytest.approx((row0 + row1) / 2,
                                                                          rel=1e-5)
    assert float(info_nce(a[:1], p[:1])) == pytest.approx(0.0, abs=1e-6)  # no negatives


def test_masked_mean_ignores_padding_values_and_gradients():
    xs = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [float("nan"), float("inf")]]],
                      requires_grad=True)
    pooled = masked_mean(xs, torch.tensor([2]))
    assert pooled.tolist() == [[2.0, 3.0]]
    pooled.sum().backward()
    assert xs.grad[0, 2].tolist() == [0.0, 0.0]


# -- the model, composed by config ---------------------------------------------------------
IMTL_CONF = {
    "adapter": "shrink_lbm",
    "adapter_conf": {"attention_heads": 2, "linear_units": 16, "warmup_steps": 1},
    "block_hooks": {"local_to_global": {}},
    "objectives": {"st_ce": 0.7, "asr_ctc": 0.3, "contrastive": 0.3, "mt_ce": 0.5},
}


def test_imtl_model_trains_with_shrinking_l2g_and_contrastive(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, IMTL_CONF, textual={"num_blocks": 2})
    assert model.block_hooks["local_to_global"].kernels == [5, 9]
    assert model.adapter._ctc is model.ctc
    model.train()
    for _ in range(2):  # the second step is past the warm-up: shrunk
        loss, stats, _ = model(**_batch())
    assert torch.isfinite(loss) and float(stats["loss_contrastive"]) > 0
    loss.backward()
    l2g = model.block_hooks["local_to_global"]
    assert float(l2g.convs[1].depthwise_conv.weight.grad.abs().sum()) > 0
    # the text side is detached: contrastive alone sends nothing into the MT path
    model.zero_grad()
    out = model(**_batch(), return_objectives=True)
    out["objectives"]["contrastive"].backward()
    assert model.mt_embed.weight.grad is None or float(model.mt_embed.weight.grad.abs().sum()) == 0


def test_shrinking_adapter_needs_the_ctc_head(tmp_path, monkeypatch):
    conf = {**IMTL_CONF, "objectives": {"st_ce": 1.0}, "block_hooks": {}}
    d = _write(tmp_path, _conf(conf))
    monkeypatch.setattr(sys, "argv", ["st_train"])
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(d / "conf.yaml"), "--token_list", str(d / "tgt.txt")])
    with pytest.raises(ValueError, match="adapter shrink_lbm needs a CTC module"):
        MTLSTTask.build_model(args)


def test_block_hook_errors_name_the_key(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="model_conf.block_hooks.l2g: unknown block_hook"):
        _build(tmp_path, monkeypatch, {**IMTL_CONF, "block_hooks": {"l2g": {}}})
    with pytest.raises(ValueError, match="textual encoder has no blocks"):
        _build(tmp_path, monkeypatch, IMTL_CONF, textual={"num_blocks": 0})


def test_imtl_model_decodes_through_speech2text(tmp_path):
    import espnet2.bin.st_inference as st_inference

    d = _write(tmp_path, _conf(IMTL_CONF, textual={"num_blocks": 2}))
    exp = dry_run(d, d / "conf.yaml", d / "tgt.txt", d / "src.txt")
    model, _ = MTLSTTask.build_model_from_file(exp / "config.yaml", None, "cpu")
    model.train()
    model(**_batch())  # one update: past the warm-up, so decoding shrinks
    torch.save(model.state_dict(), tmp_path / "model.pth")
    original = st_inference.STTask
    st_inference.STTask = MTLSTTask
    try:
        s2t = st_inference.Speech2Text(
            st_train_config=exp / "config.yaml", st_model_file=tmp_path / "model.pth",
            beam_size=2, maxlenratio=0.0, nbest=1)
        assert s2t.st_model.adapter.shrinking
        text, tokens, token_int, hyp = s2t(
            np.random.default_rng(0).standard_normal(1600).astype(np.float32))[0]
        assert all(0 <= t < len(TGT) for t in token_int) and math.isfinite(float(hyp.score))
    finally:
        st_inference.STTask = original
