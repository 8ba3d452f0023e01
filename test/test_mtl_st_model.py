"""The multi-task ST model `--model mtl_st` (espnet_mtl.models.mtl_st)."""

import math
import sys

import numpy as np
import pytest
import torch
import yaml

from espnet2.utils.get_default_kwargs import get_default_kwargs

from espnet_mtl.models.mtl_st import MTLSTModel
from espnet_mtl.tasks.st import MTLSTTask, model_choices

from dry_run import dry_run

TGT = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
SRC = ["<blank>", "<unk>", "x", "y", "z", "w", "<sos/eos>"]
STAT_KEYS = ["loss", "loss_st", "loss_asr_ctc", "loss_asr_att", "loss_mt", "loss_st_ctc",
             "loss_cr", "loss_rd", "acc", "acc_mt", "acc_asr"]
ALL_ON = dict(asr_ctc_weight=0.3, asr_att_weight=0.2, mt_weight=0.5, st_ctc_weight=0.3,
              consistency_weight=1.0, rdrop_weight=1.0, lsm_weight=0.1)
ALL_OFF = dict(asr_ctc_weight=0.0, asr_att_weight=0.0, mt_weight=0.0, st_ctc_weight=0.0,
               consistency_weight=0.0, rdrop_weight=0.0)
TINY_ATT = {"attention_heads": 2, "linear_units": 32, "num_blocks": 1}
NO_DROPOUT_DEC = {"dropout_rate": 0.0, "positional_dropout_rate": 0.0,
                  "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0}
NO_DROPOUT_ENC = {"dropout_rate": 0.0, "positional_dropout_rate": 0.0,
                  "attention_dropout_rate": 0.0}


def _conf(model_conf, encoder_conf=None, frontend_conf=None, decoder_conf=None,
          textual=None, asr_decoder_conf=None):
    textual = {"num_blocks": 1, "attention_heads": 2, "linear_units": 32, "output_size": 12,
               **(textual or {})}
    return {
        "model": "mtl_st",
        "model_conf": {**model_conf, "textual_encoder_conf": textual},
        "encoder": "conformer",
        "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                         "num_blocks": 1, "cnn_module_kernel": 3, "rel_pos_type": "latest",
                         "pos_enc_layer_type": "rel_pos",
                         "selfattention_layer_type": "rel_selfattn", **(encoder_conf or {})},
        "decoder": "transformer",
        "decoder_conf": {**TINY_ATT, **(decoder_conf or {})},
        "extra_asr_decoder": "transformer",
        "extra_asr_decoder_conf": {**TINY_ATT, **(asr_decoder_conf or {})},
        "frontend_conf": {"n_fft": 128, "hop_length": 64, "n_mels": 8,
                          **(frontend_conf or {})},
    }


def _write(d, conf):
    (d / "tgt.txt").write_text("\n".join(TGT) + "\n")
    (d / "src.txt").write_text("\n".join(SRC) + "\n")
    (d / "conf.yaml").write_text(yaml.safe_dump(conf))
    return d


def _build(tmp_path, monkeypatch, model_conf, seed=0, **kw):
    d = _write(tmp_path, _conf(model_conf, **kw))
    # ESPnet's ArgumentParser also looks at sys.argv (for --config): keep pytest's out.
    monkeypatch.setattr(sys, "argv", ["st_train"])
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(d / "conf.yaml"), "--token_list", str(d / "tgt.txt"),
         "--src_token_list", str(d / "src.txt")])
    assert args.model == "mtl_st"
    torch.manual_seed(seed)
    model = MTLSTTask.build_model(args)
    assert isinstance(model, MTLSTModel)
    # token lists are read and written back into args (portable config.yaml)
    assert args.token_list == TGT and args.src_token_list == SRC
    return model


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    speech = torch.randn(2, 1600, generator=g)
    speech[1, 1200:] = 0.0
    return dict(
        speech=speech, speech_lengths=torch.tensor([1600, 1200]),
        text=torch.tensor([[2, 3, 4], [3, -1, -1]]), text_lengths=torch.tensor([3, 1]),
        src_text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1]]),
        src_text_lengths=torch.tensor([4, 2]),
    )


def _sub(batch, i):
    """Utterance i alone, cut to its own lengths (no padding)."""
    out = {}
    for k in ("speech", "text", "src_text"):
        n = int(batch[k + "_lengths"][i])
        out[k] = batch[k][i:i + 1, :n]
        out[k + "_lengths"] = batch[k + "_lengths"][i:i + 1]
    return out


def _count_calls(module, counter, name):
    def hook(*_):
        counter[name] = counter.get(name, 0) + 1
    return module.register_forward_hook(hook)


def test_registered_and_default_kwargs():
    assert "mtl_st" in model_choices.choices()
    defaults = get_default_kwargs(MTLSTModel)
    for key in ("asr_ctc_weight", "asr_att_weight", "mt_weight", "st_ctc_weight",
                "consistency_weight", "consistency_type", "consistency_direction",
                "consistency_detach_mt", "rdrop_weight", "lsm_weight",
                "textual_encoder_conf", "length_normalized_loss"):
        assert key in defaults, key
    # structural arguments are not model_conf keys (no defaults)
    for key in ("encoder", "decoder", "ctc", "st_ctc", "token_list"):
        assert key not in defaults
    yaml.safe_dump(defaults)


def test_forward_backward_all_terms(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, ALL_ON)
    model.train()
    loss, stats, weight = model(**_batch())
    assert torch.isfinite(loss).all()
    assert int(weight) == 2
    for key in STAT_KEYS:
        assert key in stats and stats[key] is not None, key
        assert torch.isfinite(stats[key]).all(), key
    for key in ("loss_asr_ctc", "loss_asr_att", "loss_mt", "loss_st_ctc", "loss_rd"):
        assert float(stats[key]) > 0, key
    # the total is the weighted sum of the reported terms
    w = ALL_ON
    expect = (stats["loss_st"] + w["asr_ctc_weight"] * stats["loss_asr_ctc"]
              + w["asr_att_weight"] * stats["loss_asr_att"] + w["mt_weight"] * stats["loss_mt"]
              + w["st_ctc_weight"] * stats["loss_st_ctc"]
              + w["consistency_weight"] * stats["loss_cr"]
              + w["rdrop_weight"] * stats["loss_rd"])
    assert torch.allclose(stats["loss"], expect, rtol=1e-5)
    loss.backward()
    for name in ("mt_embed", "ctc", "extra_asr_decoder", "st_ctc", "textual_encoder",
                 "encoder_proj", "decoder", "encoder"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    # eval mode reports BLEU as well and needs no R-drop
    model.eval()
    with torch.no_grad():
        _, stats, _ = model(**_batch())
    assert float(stats["loss_rd"]) == 0.0 or float(stats["loss_rd"]) < 1e-5
    assert "bleu" in stats


def test_zero_weights_skip_their_computation(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, ALL_OFF)
    assert model.mt_embed is None and model.ctc is None and model.extra_asr_decoder is None
    assert not hasattr(model, "st_ctc")
    calls = {}
    _count_calls(model.textual_encoder, calls, "textual")
    _count_calls(model.decoder, calls, "decoder")
    batch = _batch()
    loss, stats, _ = model(**{k: v for k, v in batch.items() if not k.startswith("src")})
    assert calls == {"textual": 1, "decoder": 1}  # speech path only, no MT pass
    for key in STAT_KEYS:
        assert key in stats
    for key in ("loss_asr_ctc", "loss_asr_att", "loss_mt", "loss_st_ctc", "loss_cr",
                "loss_rd"):
        assert float(stats[key]) == 0.0, key
    assert torch.allclose(stats["loss"], stats["loss_st"])

    # with the weights on, every auxiliary module runs exactly once
    model = _build(tmp_path, monkeypatch, {**ALL_ON, "rdrop_weight": 0.0})
    calls = {}
    for name, module in (("textual", model.textual_encoder), ("decoder", model.decoder),
                         ("mt_embed", model.mt_embed), ("ctc", model.ctc.ctc_lo),
                         ("asr_dec", model.extra_asr_decoder),
                         ("st_ctc", model.st_ctc.ctc_lo)):
        _count_calls(module, calls, name)
    model(**batch)
    assert calls == {"textual": 2, "decoder": 2, "mt_embed": 1, "ctc": 1, "asr_dec": 1,
                     "st_ctc": 1}
    # the source transcript is required then, with a clear message
    with pytest.raises(ValueError, match="src_text"):
        model(**{k: v for k, v in batch.items() if not k.startswith("src")})


def test_padding_changes_nothing(tmp_path, monkeypatch):
    # Exact invariance needs an acoustic encoder that is itself padding-exact:
    # ESPnet's conformer convolution module is not masked (kernel > 1 mixes padded
    # frames into the last valid ones), its Conv2dSubsampling gives a padded
    # utterance a longer output length than alone, and the STFT with center=True
    # reflect-pads at the batch end. Hence kernel 1, linear input layer, center off.
    model = _build(tmp_path, monkeypatch, {**ALL_ON, "rdrop_weight": 0.0},
                   encoder_conf={"cnn_module_kernel": 1, "input_layer": "linear"},
                   frontend_conf={"center": False})
    model.eval()
    batch = _batch()
    with torch.no_grad():
        _, both, _ = model(**batch)
        _, first, _ = model(**_sub(batch, 0))
        _, second, _ = model(**_sub(batch, 1))
    # losses are per-utterance sums divided by the batch size
    for key in ("loss", "loss_st", "loss_asr_ctc", "loss_asr_att", "loss_mt", "loss_st_ctc",
                "loss_cr"):
        alone = (first[key] + second[key]) / 2
        assert torch.allclose(both[key], alone, rtol=1e-4, atol=1e-5), (key, both[key], alone)


@pytest.mark.parametrize("kind", ["softmax_kl", "logits_mse", "enc_mse"])
def test_consistency_kinds_and_detach(tmp_path, monkeypatch, kind):
    conf = {**ALL_OFF, "consistency_weight": 1.0, "consistency_type": kind,
            "consistency_direction": "symmetric", "consistency_detach_mt": True}
    model = _build(tmp_path, monkeypatch, conf)
    loss, stats, _ = model(**_batch())
    assert float(stats["loss_cr"]) > 0 and float(stats["loss_mt"]) == 0.0
    loss.backward()
    # mt_weight 0 and a detached MT side: nothing trains the transcript embedding
    grad = model.mt_embed.weight.grad
    assert grad is None or float(grad.abs().sum()) == 0.0
    model.zero_grad()
    model.consistency_detach_mt = False
    loss, _, _ = model(**_batch())
    loss.backward()
    assert float(model.mt_embed.weight.grad.abs().sum()) > 0


def test_rdrop_without_dropout_is_plain_ce(tmp_path, monkeypatch):
    kw = dict(encoder_conf=NO_DROPOUT_ENC, decoder_conf=NO_DROPOUT_DEC,
              asr_decoder_conf=NO_DROPOUT_DEC, textual=NO_DROPOUT_ENC)
    base = {**ALL_ON, "consistency_weight": 0.0}
    on = _build(tmp_path, monkeypatch, {**base, "rdrop_weight": 3.0}, **kw)
    off = _build(tmp_path, monkeypatch, {**base, "rdrop_weight": 0.0}, **kw)
    off.load_state_dict(on.state_dict())
    on.train()
    off.train()  # no dropout anywhere and no specaug: train mode is deterministic
    batch = _batch()
    _, s_on, _ = on(**batch)
    _, s_off, _ = off(**batch)
    assert abs(float(s_on["loss_rd"])) < 1e-5
    # R-drop's convention (paper, fairseq): the ST CE of the two copies is summed
    assert torch.allclose(s_on["loss_st"], 2 * s_off["loss_st"], rtol=1e-5, atol=1e-6)
    for key in ("loss_asr_ctc", "loss_asr_att", "loss_mt", "loss_st_ctc"):
        assert torch.allclose(s_on[key], s_off[key], rtol=1e-5, atol=1e-6), key


def test_rdrop_with_dropout_is_positive_and_trains(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, {**ALL_OFF, "rdrop_weight": 1.0},
                   decoder_conf={"dropout_rate": 0.3})
    model.train()
    loss, stats, _ = model(**_batch())
    assert float(stats["loss_rd"]) > 0
    loss.backward()


@pytest.fixture(scope="module")
def dry_run_exp(tmp_path_factory):
    d = tmp_path_factory.mktemp("mtl_dry")
    conf = _conf({**ALL_ON, "rdrop_weight": 0.0, "consistency_weight": 0.5})
    _write(d, conf)
    dry_run(d, d / "conf.yaml", d / "tgt.txt", d / "src.txt")
    return d


def test_config_round_trip(dry_run_exp):
    d = dry_run_exp
    saved = yaml.safe_load((d / "exp" / "config.yaml").read_text())
    assert saved["model"] == "mtl_st"
    assert saved["model_conf"]["mt_weight"] == 0.5
    assert saved["model_conf"]["textual_encoder_conf"]["output_size"] == 12
    assert saved["token_list"] == TGT and saved["src_token_list"] == SRC  # portable
    model, args = MTLSTTask.build_model_from_file(d / "exp" / "config.yaml", None, "cpu")
    assert isinstance(model, MTLSTModel)
    assert model.token_list == TGT and model.src_token_list == SRC
    assert model.mt_weight == 0.5 and model.textual_encoder.output_size() == 12
    model.eval()
    with torch.no_grad():
        loss, _, _ = model(**_batch())
    assert torch.isfinite(loss).all()


def test_speech2text_decodes(dry_run_exp, tmp_path):
    import espnet2.bin.st_inference as st_inference

    d = dry_run_exp
    model, _ = MTLSTTask.build_model_from_file(d / "exp" / "config.yaml", None, "cpu")
    torch.save(model.state_dict(), tmp_path / "model.pth")
    original = st_inference.STTask
    st_inference.STTask = MTLSTTask
    try:
        speech = np.random.default_rng(0).standard_normal(1600).astype(np.float32)
        for ctc_weight in (0.0, 0.3):
            s2t = st_inference.Speech2Text(
                st_train_config=d / "exp" / "config.yaml",
                st_model_file=tmp_path / "model.pth", beam_size=2,
                ctc_weight=ctc_weight, maxlenratio=0.0, nbest=1,
            )
            results = s2t(speech)
            assert len(results) == 1
            text, tokens, token_int, hyp = results[0]
            assert all(0 <= t < len(TGT) for t in token_int)
            assert math.isfinite(float(hyp.score))
    finally:
        st_inference.STTask = original


def test_identity_textual_encoder_encode_api_and_token_normalisation(tmp_path, monkeypatch):
    conf = {**ALL_ON, "rdrop_weight": 0.0, "length_normalized_loss": True,
            "consistency_type": "enc_mse"}
    model = _build(tmp_path, monkeypatch, conf,
                   textual={"num_blocks": 0, "output_size": None})
    assert model.encoder_proj is None and model.textual_encoder.encoder is None
    model.eval()
    batch = _batch()
    with torch.no_grad():
        enc, enc_lens, ac, ac_lens = model.encode(batch["speech"], batch["speech_lengths"],
                                                  return_int_enc=True)
        assert torch.equal(enc, ac) and torch.equal(enc_lens, ac_lens)  # identity
        enc2, lens2 = model.encode(batch["speech"], batch["speech_lengths"])
        assert torch.equal(enc2, enc)
        mt, mt_lens = model.encode_text(batch["src_text"], batch["src_text_lengths"])
        assert mt.shape == (2, 4, 16) and mt_lens.tolist() == [4, 2]
        loss, stats, _ = model(**batch)
    assert torch.isfinite(loss).all() and float(stats["loss_cr"]) > 0


def test_mt_input_norm_puts_the_mt_path_at_the_speech_path_scale(tmp_path, monkeypatch):
    """Issue 13: the MT embeddings enter the shared layers sqrt(d) larger than the
    layer-normalised acoustic encoder output unless `mt_input_norm` is on."""
    batch = _batch()
    scales = {}
    for norm in (False, True):
        conf = {**ALL_ON, "rdrop_weight": 0.0, "mt_input_norm": norm}
        model = _build(tmp_path, monkeypatch, conf, textual={"num_blocks": 0, "output_size": None})
        model.eval()
        with torch.no_grad():
            mt, _ = model.encode_text(batch["src_text"], batch["src_text_lengths"])
            speech, _ = model.encode(batch["speech"], batch["speech_lengths"])
        scales[norm] = float(mt[0].std()) / float(speech[0].std())
        names = {n for n, _ in model.named_parameters()}
        # off by default: the parameters (and old checkpoints) are unchanged
        assert ("mt_input_norm.weight" in names) == norm
    assert scales[False] > 2.0  # sqrt(16) = 4 times N(0, 1) embeddings
    assert 0.5 < scales[True] < 2.0
