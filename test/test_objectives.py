"""The composable core's model side: the objective table, declared fields, block hooks, adapters."""

import pytest
import torch

from espnet_mtl import registry
from espnet_mtl.models.mtl_st import PASS_PROVIDES, MTLSTModel
from espnet_mtl.objectives import ObjectiveError, resolve
from espnet_mtl.objectives.base import Objective

from test_mtl_st_model import ALL_ON, ALL_OFF, _batch, _build

SEED001 = {"st_ce", "asr_ctc", "asr_att", "mt_ce", "st_ctc", "consistency", "rdrop"}


def test_one_table_with_declared_fields():
    assert set(registry.OBJECTIVES) >= SEED001
    every = MTLSTModel.objectives_on(None, every=True)
    # every objective over passes mtl_st computes (ComSL's teacher and CML passes: not)
    assert set(every) == set(registry.OBJECTIVES) - {"teacher_mt", "cml"}
    from espnet_mtl.models.comsl import ComSLModel

    assert {"teacher_mt", "cml", "guided_st", "asr_att"} <= set(
        ComSLModel.objectives_on(None, every=True))
    for name in registry.OBJECTIVES:
        cls = registry.get("objective", name)
        assert cls.stat.startswith("loss_"), name
    # the stats keys are one per objective
    stats = [registry.get("objective", n).stat for n in registry.OBJECTIVES]
    assert len(stats) == len(set(stats))
    # the batch fields each objective's examples need
    assert every["mt_ce"] == ("src_text", "text")
    assert every["asr_ctc"] == ("speech", "src_text")
    assert every["st_ce"] == ("speech", "text")
    assert MTLSTModel.consumes(("src_text", "text"), {"mt_weight": 0.3}) == ["mt_ce"]
    assert MTLSTModel.consumes(("src_text", "text"), {}) == []


def test_a_field_no_pass_computes_is_an_error(tmp_path, monkeypatch):
    class NeedsAttention(Objective):
        stat = "loss_att_map"
        needs = ("st.attention",)

    import sys
    sys.modules[__name__].NeedsAttention = NeedsAttention
    monkeypatch.setitem(registry.OBJECTIVES, "att_map", f"{__name__}:NeedsAttention")
    with pytest.raises(ObjectiveError, match="needs 'st.attention', which model mtl_st does not"):
        _build(tmp_path, monkeypatch, {"objectives": {"st_ce": 1.0, "att_map": 0.5}})
    assert "st.logits" in ", ".join(f"{p}.{f}" for p, fs in PASS_PROVIDES.items() for f in fs)


def test_bad_objective_configs_name_the_key(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"model_conf.objectives.ctc_asr: unknown objective "
                                         r"'ctc_asr'; choices: asr_att, asr_ctc"):
        _build(tmp_path, monkeypatch, {"objectives": {"st_ce": 1.0, "ctc_asr": 0.3}})
    with pytest.raises(ObjectiveError, match="either under 'objectives' or with the flat keys"):
        resolve({"st_ce": 1.0}, {"mt_weight": 0.3})
    with pytest.raises(ObjectiveError, match="mt_weight must be >= 0"):
        resolve(None, {"mt_weight": -1.0})
    with pytest.raises(ObjectiveError, match="consistency: .*unexpected keyword argument 'kinds'"):
        _build(tmp_path, monkeypatch, {"objectives": {
            "st_ce": 1.0, "mt_ce": 0.3, "consistency": {"weight": 1.0, "kinds": "x"}}})
    with pytest.raises(ValueError, match="model_conf.adapter: unknown adapter 'conv'"):
        _build(tmp_path, monkeypatch, {**ALL_OFF, "adapter": "conv"})


def test_objectives_table_form_equals_the_flat_keys(tmp_path, monkeypatch):
    flat = {**ALL_ON, "rdrop_weight": 0.0}
    table = {"lsm_weight": 0.1, "objectives": {
        "st_ce": 1.0, "asr_ctc": 0.3, "asr_att": 0.2, "mt_ce": 0.5, "st_ctc": 0.3,
        "consistency": {"weight": 1.0, "kind": "softmax_kl", "direction": "mt_to_st"}}}
    a = _build(tmp_path, monkeypatch, flat)
    b = _build(tmp_path, monkeypatch, table)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    with torch.no_grad():
        _, sa, _ = a(**_batch())
        _, sb, _ = b(**_batch())
    for key in ("loss", "loss_st", "loss_mt", "loss_cr", "loss_asr_ctc", "loss_st_ctc"):
        assert torch.equal(sa[key], sb[key]), key
    assert "loss_rd" in sa and "loss_rd" not in sb  # listed at 0 vs not listed


def test_hooks_fire_once_per_block_in_order(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, ALL_OFF, textual={"num_blocks": 2})
    model.eval()
    batch = _batch()
    with torch.no_grad():
        plain, _ = model.encode(batch["speech"], batch["speech_lengths"])
    calls = []

    def before(i, xs, mask):
        calls.append(("before", i))
        assert mask.shape == (xs.shape[0], 1, xs.shape[1]) and mask.dtype == torch.bool
        return xs

    def after(i, xs, mask):
        calls.append(("after", i))
        return xs

    model.textual_encoder.add_block_hook(before=before, after=after)
    with torch.no_grad():
        hooked, _ = model.encode(batch["speech"], batch["speech_lengths"])
    assert calls == [("before", 0), ("after", 0), ("before", 1), ("after", 1)]
    assert torch.equal(hooked, plain)  # identity hooks change nothing
    model.textual_encoder.add_block_hook(after=lambda i, xs, mask: xs * 0 if i == 1 else xs)
    with torch.no_grad():
        zeroed, _ = model.encode(batch["speech"], batch["speech_lengths"])
    assert not torch.allclose(zeroed, plain)  # a hook's output is what the next step sees


def test_checkpoints_from_before_the_adapter_load(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, ALL_OFF)
    assert model.encoder_proj is model.adapter.proj is not None  # 16 -> 12
    old = {k.replace("adapter.proj.", "encoder_proj."): v for k, v in model.state_dict().items()}
    fresh = _build(tmp_path, monkeypatch, ALL_OFF, seed=5)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.adapter.proj.weight, model.adapter.proj.weight)


def _build_conf(d, monkeypatch, conf):
    """Any task model from a full config dict (written to d/conf.yaml)."""
    import sys

    import yaml as _yaml

    from espnet_mtl.tasks.st import MTLSTTask
    from test_mtl_st_model import SRC, TGT

    d.mkdir(exist_ok=True)
    (d / "conf.yaml").write_text(_yaml.safe_dump(conf))
    (d / "tgt.txt").write_text("\n".join(TGT) + "\n")
    (d / "src.txt").write_text("\n".join(SRC) + "\n")
    monkeypatch.setattr(sys, "argv", ["st_train"])
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(d / "conf.yaml"), "--token_list", str(d / "tgt.txt"),
         "--src_token_list", str(d / "src.txt")])
    return MTLSTTask.build_model(args)


def test_specaugment_once_then_double(tmp_path, monkeypatch):
    """R-drop's two copies differ by dropout only: with every dropout off, the R-drop
    term is 0 even with SpecAugment on (it is drawn once, then the batch is doubled)."""
    from test_mtl_st_model import NO_DROPOUT_DEC, NO_DROPOUT_ENC, _conf

    conf = _conf({**ALL_OFF, "rdrop_weight": 3.0}, encoder_conf=NO_DROPOUT_ENC,
                 decoder_conf=NO_DROPOUT_DEC, textual=NO_DROPOUT_ENC)
    conf.update(specaug="specaug", specaug_conf={
        "apply_time_warp": False, "apply_freq_mask": True, "freq_mask_width_range": [1, 3],
        "num_freq_mask": 2, "apply_time_mask": True, "time_mask_width_range": [2, 5],
        "num_time_mask": 2})
    model = _build_conf(tmp_path, monkeypatch, conf)
    assert model.specaug is not None
    model.train()
    torch.manual_seed(0)
    _, stats, _ = model(**_batch())
    assert abs(float(stats["loss_rd"])) < 1e-6


def _espnet_model(tmp_path, monkeypatch, model_conf):
    from espnet2.st.espnet_model import ESPnetSTModel
    from test_mtl_st_model import NO_DROPOUT_DEC, NO_DROPOUT_ENC, _conf

    conf = _conf({}, encoder_conf=NO_DROPOUT_ENC, decoder_conf=NO_DROPOUT_DEC)
    conf.update(model="espnet", model_conf=model_conf)
    del conf["extra_asr_decoder"], conf["extra_asr_decoder_conf"]
    model = _build_conf(tmp_path / "espnet", monkeypatch, conf)
    assert type(model) is ESPnetSTModel
    return model


def test_ctc_weight_parity_with_espnet_st_model(tmp_path, monkeypatch):
    """ESPnetSTModel weighs ST by 1 - asr_weight: with asr_weight 0.3 (pure CTC) the
    loss is 0.7 ST + 0.3 CTC. mtl_st without textual blocks and objectives
    {st_ce: 0.7, asr_ctc: 0.3} gives the same loss on the same batch and parameters,
    and the demo's flat asr_ctc_weight 0.3 / 0.7 the same loss divided by 0.7."""
    from test_mtl_st_model import NO_DROPOUT_DEC, NO_DROPOUT_ENC

    espnet = _espnet_model(tmp_path, monkeypatch, {
        "asr_weight": 0.3, "mtlalpha": 1.0, "mt_weight": 0.0, "lsm_weight": 0.1,
        "length_normalized_loss": False})
    kw = dict(encoder_conf=NO_DROPOUT_ENC, decoder_conf=NO_DROPOUT_DEC,
              textual={"num_blocks": 0, "output_size": None})
    table = _build(tmp_path, monkeypatch, {"lsm_weight": 0.1, "objectives": {
        "st_ce": 0.7, "asr_ctc": 0.3}}, seed=7, **kw)
    flat = _build(tmp_path, monkeypatch, {**ALL_OFF, "lsm_weight": 0.1,
                                          "asr_ctc_weight": 0.3 / 0.7}, seed=7, **kw)
    for model in (table, flat):
        missing, _ = model.load_state_dict(espnet.state_dict(), strict=False)
        assert missing == []  # every mtl_st parameter comes from the ESPnet model
        model.eval()
    espnet.eval()
    batch = _batch()
    with torch.no_grad():
        expect, e_stats, _ = espnet(**batch)
        got, g_stats, _ = table(**batch)
        scaled, _, _ = flat(**batch)
    assert torch.allclose(e_stats["loss_st_att"], g_stats["loss_st"], rtol=1e-5)
    assert torch.allclose(e_stats["loss_asr"], g_stats["loss_asr_ctc"], rtol=1e-5)
    assert torch.allclose(got, expect, rtol=1e-5)
    assert torch.allclose(0.7 * scaled, expect, rtol=1e-5)


def test_shipped_mtl_configs_keep_the_baselines_asr_to_st_ratio():
    import yaml as _yaml
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for mtl, base in (("egs2/mini_st/st1/conf/train_st_mtl.yaml",
                       "egs2/mini_st/st1/conf/train_st.yaml"),
                      ("conf_templates/st/train_st_mtl_regularization_horizon.yaml",
                       "conf_templates/st/train_st_conformer.yaml")):
        m = _yaml.safe_load((root / mtl).read_text())["model_conf"]
        b = _yaml.safe_load((root / base).read_text())["model_conf"]
        baseline_ratio = b["asr_weight"] / (1 - b["asr_weight"] - b["mt_weight"])
        ours = (m["asr_ctc_weight"] + m.get("asr_att_weight", 0.0)) / 1.0  # ST CE weight 1
        assert ours == pytest.approx(baseline_ratio, rel=1e-3), mtl


def test_per_token_ctc_is_the_authors_reduction_and_padding_invariant():
    """asr_ctc {per_token: true}: each utterance's CTC (ESPnet's head, alone) / its
    transcript length, averaged over utterances; padding frames and tokens change nothing."""
    from espnet2.asr.ctc import CTC

    from espnet_mtl.objectives.base import ObjectiveContext, PassOutput
    from espnet_mtl.objectives.ctc import ASRCTC

    torch.manual_seed(0)
    head = torch.nn.Module()
    head.ctc = CTC(odim=6, encoder_output_size=4)
    head.train(False)
    ctx = ObjectiveContext(ignore_id=-1, vocab_size=6, src_vocab_size=6, lsm_weight=0.0,
                           length_normalized=False)
    hidden = torch.randn(2, 9, 4)
    tokens = torch.tensor([[2, 3, 4, 5], [3, 3, -1, -1]])
    hidden_lens, token_lens = torch.tensor([9, 6]), torch.tensor([4, 2])

    def pass_of(h, hl, t, tl):
        return {"asr": PassOutput(covers=torch.ones(2, dtype=torch.bool), fields=dict(
            hidden=h, hidden_lens=hl, tokens=t, token_lens=tl))}

    alone = [float(head.ctc(hidden[i:i + 1, :hidden_lens[i]], hidden_lens[i:i + 1],
                            tokens[i:i + 1, :token_lens[i]], token_lens[i:i + 1]))
             for i in range(2)]  # ESPnet's per-utterance sums
    loss, _ = ASRCTC(ctx, per_token=True)(pass_of(hidden, hidden_lens, tokens, token_lens), head)
    assert float(loss) == pytest.approx((alone[0] / 4 + alone[1] / 2) / 2, rel=1e-5)
    espnet, _ = ASRCTC(ctx)(pass_of(hidden, hidden_lens, tokens, token_lens), head)
    assert float(espnet) == pytest.approx((alone[0] + alone[1]) / 2, rel=1e-5)
    # more padding (frames and tokens, holding garbage) changes nothing
    padded_h = torch.cat([hidden, torch.randn(2, 5, 4)], dim=1)
    padded_t = torch.cat([tokens, torch.full((2, 3), 4)], dim=1)
    again, _ = ASRCTC(ctx, per_token=True)(pass_of(padded_h, hidden_lens, padded_t, token_lens),
                                           head)
    assert float(again) == pytest.approx(float(loss), rel=1e-6)
    with pytest.raises(ObjectiveError, match=r"asr_ctc.per_token must be true or false"):
        ASRCTC(ctx, per_token="yes")
