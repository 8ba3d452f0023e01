"""HuBERT through Hugging Face Transformers as `encoder: hf_hubert` (espnet_mtl.modules.hf_hubert).

Every model here is a tiny randomly initialised HubertConfig saved with
`save_pretrained` to a temporary directory: nothing touches the network.
"""

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
import yaml

from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError
from espnet2.st.espnet_model import ESPnetSTModel

from espnet_mtl import registry
from espnet_mtl.models.mtl_st import MTLSTModel
from espnet_mtl.modules.hf_hubert import HFHubertEncoder
from espnet_mtl.tasks.st import MTLSTTask

from dry_run import dry_run

TGT = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
SRC = ["<blank>", "<unk>", "x", "y", "z", "w", "<sos/eos>"]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0)


def _save_hubert(d, **kw):
    torch.manual_seed(0)
    transformers.HubertModel(transformers.HubertConfig(**{**TINY, **kw})).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def hubert_dir(tmp_path_factory):
    """HuBERT-base's layout in miniature: group-norm conv stack, post-LN transformer."""
    return _save_hubert(tmp_path_factory.mktemp("hubert"), feat_extract_norm="group")


def _frames(n):
    """Frames of the tiny conv stack (kernels 10, 3; strides 5, 2) for n samples."""
    return ((n - 10) // 5 + 1 - 3) // 2 + 1


def _conf(hubert_dir, model="mtl_st", **encoder_conf):
    conf = {
        "model": model,
        "input_size": 1,  # the waveform goes to the encoder: no frontend
        "normalize": None,
        "encoder": "hf_hubert",
        "encoder_conf": {"model_name_or_path": str(hubert_dir), "output_size": 24,
                         "dropout_rate": 0.1, "freeze_updates": 1, **encoder_conf},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
    }
    if model == "mtl_st":
        conf["model_conf"] = {"asr_ctc_weight": 0.3, "st_ctc_weight": 0.3, "lsm_weight": 0.1,
                              "textual_encoder_conf": {"num_blocks": 1, "attention_heads": 2,
                                                       "linear_units": 32, "output_size": 24}}
    else:
        conf["model_conf"] = {"asr_weight": 0.3, "mtlalpha": 1.0}
    return conf


def _write(d, conf):
    (d / "tgt.txt").write_text("\n".join(TGT) + "\n")
    (d / "src.txt").write_text("\n".join(SRC) + "\n")
    (d / "conf.yaml").write_text(yaml.safe_dump(conf))
    return d


def _build(d, monkeypatch, conf):
    _write(d, conf)
    # ESPnet's ArgumentParser also looks at sys.argv (for --config): keep pytest's out.
    monkeypatch.setattr(sys, "argv", ["st_train"])
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(d / "conf.yaml"), "--token_list", str(d / "tgt.txt"),
         "--src_token_list", str(d / "src.txt")])
    torch.manual_seed(0)
    return MTLSTTask.build_model(args)


def _batch():
    g = torch.Generator().manual_seed(1)
    speech = 0.1 * torch.randn(2, 1600, generator=g)
    speech[1, 1100:] = 0.0
    return dict(
        speech=speech, speech_lengths=torch.tensor([1600, 1100]),
        text=torch.tensor([[2, 3, 4], [3, -1, -1]]), text_lengths=torch.tensor([3, 1]),
        src_text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1]]),
        src_text_lengths=torch.tensor([4, 2]),
    )


def _pretrained_equal(encoder, hubert_dir):
    ref = transformers.HubertModel.from_pretrained(hubert_dir).state_dict()
    ours = encoder.hubert.state_dict()
    assert set(ours) == set(ref)
    return all(torch.equal(ours[k], v) for k, v in ref.items())


def _snapshot(module):
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def _changed(module, before):
    return {k for k, p in module.named_parameters() if not torch.equal(p, before[k])}


def test_registered_as_espnet_encoder_choice():
    from espnet2.tasks.st import encoder_choices

    assert registry.ENCODERS["hf_hubert"].endswith(":HFHubertEncoder")
    assert "hf_hubert" in encoder_choices.choices()
    assert encoder_choices.get_class("hf_hubert") is HFHubertEncoder


def test_mtl_st_frozen_then_trains(tmp_path, monkeypatch, hubert_dir):
    model = _build(tmp_path, monkeypatch, _conf(hubert_dir, freeze_updates=1))
    assert isinstance(model, MTLSTModel)
    enc = model.encoder
    assert isinstance(enc, HFHubertEncoder) and enc.output_size() == 24
    assert _pretrained_equal(enc, hubert_dir)
    assert not enc.normalize_waveform  # group-norm conv stack, no preprocessor config
    cnn, transformer = enc.hubert.feature_extractor, enc.hubert.encoder
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()

    def step():
        opt.zero_grad()
        loss, stats, _ = model(**_batch())
        assert torch.isfinite(loss) and float(stats["loss_asr_ctc"]) > 0  # CTC on HuBERT
        loss.backward()
        opt.step()

    hubert_before, proj_before = _snapshot(enc.hubert), _snapshot(enc.proj)
    step()  # update 1: HuBERT frozen, the projection trains
    assert int(enc.num_updates) == 1 and not enc.frozen
    assert all(p.grad is None for p in enc.hubert.parameters())
    assert enc.proj.weight.grad.abs().sum() > 0
    assert not _changed(enc.hubert, hubert_before)
    assert _changed(enc.proj, proj_before) == {"weight", "bias"}

    transformer_before, cnn_before = _snapshot(transformer), _snapshot(cnn)
    step()  # update 2: HuBERT trains, the CNN stays frozen (freeze_feature_extractor)
    assert int(enc.num_updates) == 2
    assert all(p.grad is None for p in cnn.parameters())
    grads = [p.grad for p in transformer.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # (not every tensor: e.g. a key bias has an exactly zero gradient under softmax)
    assert len(_changed(transformer, transformer_before)) > len(transformer_before) // 2
    assert not _changed(cnn, cnn_before)

    # eval forwards do not count; the count is checkpointed, so a resumed run stays unfrozen
    model.eval()
    with torch.no_grad():
        model(**_batch())
    assert int(enc.num_updates) == 2
    state = model.state_dict()
    assert int(state["encoder.num_updates"]) == 2
    resumed = _build(tmp_path, monkeypatch, _conf(hubert_dir, freeze_updates=1))
    assert resumed.encoder.frozen
    resumed.load_state_dict(state)
    assert not resumed.encoder.frozen


def test_cnn_trains_without_freeze_feature_extractor(tmp_path, monkeypatch, hubert_dir):
    model = _build(tmp_path, monkeypatch,
                   _conf(hubert_dir, freeze_updates=0, freeze_feature_extractor=False))
    model.train()
    loss, _, _ = model(**_batch())
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.hubert.feature_extractor.parameters())


@pytest.mark.parametrize("normalize", [False, True])
def test_padding_changes_nothing_and_output_lengths(hubert_dir, normalize):
    enc = HFHubertEncoder(model_name_or_path=str(hubert_dir), output_size=24,
                          normalize_waveform=normalize).eval()
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(3, 2000, generator=g)  # the padding holds noise: it must not matter
    lens = torch.tensor([2000, 1337, 401])
    with torch.no_grad():
        out, olens, _ = enc(wav, lens)
    expect = [_frames(int(n)) for n in lens]
    assert olens.tolist() == expect == [199, 132, 39]
    assert olens.tolist() == enc.hubert._get_feat_extract_output_lengths(lens).tolist()
    assert out.shape == (3, 199, 24)
    for i in range(3):
        n = int(lens[i])
        with torch.no_grad():
            alone, alone_lens, _ = enc(wav[i:i + 1, :n], lens[i:i + 1])
        assert int(alone_lens) == expect[i] == alone.size(1)
        torch.testing.assert_close(out[i, : expect[i]], alone[0], atol=1e-5, rtol=1e-4)
        assert out[i, expect[i]:].abs().sum() == 0  # padded frames are zero

    # The test has teeth: HF's own batched forward (GroupNorm over the padded time
    # axis) gives the padded utterance other frames than alone.
    hf = enc.hubert
    x = wav.clone()
    x[1, 1337:] = 0.0
    mask = (torch.arange(2000)[None] < lens[:, None]).long()
    with torch.no_grad():
        batched = hf(x, attention_mask=mask).last_hidden_state
        alone = hf(x[1:2, :1337]).last_hidden_state
    assert not torch.allclose(batched[1, :132], alone[0], atol=1e-3)


def test_unpadded_output_is_hf_hubert(hubert_dir):
    """Without padding the encoder is HF's HubertModel (+ projection), nothing else."""
    enc = HFHubertEncoder(model_name_or_path=str(hubert_dir), output_size=None).eval()
    ref = transformers.HubertModel.from_pretrained(hubert_dir).eval()
    wav = torch.randn(2, 1800, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, olens, _ = enc(wav, torch.tensor([1800, 1800]))
        expect = ref(wav).last_hidden_state
    assert enc.output_size() == 32 and olens.tolist() == [_frames(1800)] * 2
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=1e-4)
    # under mixed precision (ESPnet's use_amp) the masked GroupNorm computes in float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low, _, _ = enc(wav, torch.tensor([1800, 1500]))
    assert torch.isfinite(low).all()


def test_waveform_normalisation_follows_the_checkpoint(tmp_path, hubert_dir):
    # group-norm stack (HuBERT-base): raw waveform, as fairseq pre-trained it
    assert not HFHubertEncoder(model_name_or_path=str(hubert_dir)).normalize_waveform
    # layer-norm stack (HuBERT-large): normalised waveform
    large = _save_hubert(tmp_path / "large", feat_extract_norm="layer",
                         do_stable_layer_norm=True)
    assert HFHubertEncoder(model_name_or_path=str(large)).normalize_waveform
    # a preprocessor_config.json decides where there is one; the option decides over both
    with_pre = tmp_path / "with_pre"
    shutil.copytree(hubert_dir, with_pre)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(with_pre)
    assert json.loads((with_pre / "preprocessor_config.json").read_text())["do_normalize"]
    enc = HFHubertEncoder(model_name_or_path=str(with_pre))
    assert enc.normalize_waveform
    assert not HFHubertEncoder(model_name_or_path=str(with_pre),
                               normalize_waveform=False).normalize_waveform

    # the normalisation is HF's feature extractor's, computed over the valid samples only
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(1600).astype(np.float32) * 0.3 + 0.1,
             rng.standard_normal(900).astype(np.float32) * 2.0 - 0.5]
    fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    expect = fe(waves, sampling_rate=16000, padding=True, return_tensors="pt").input_values
    lens = torch.tensor([1600, 900])
    x = torch.zeros(2, 1600)
    x[0], x[1, :900] = torch.from_numpy(waves[0]), torch.from_numpy(waves[1])
    valid = torch.arange(1600)[None] < lens[:, None]
    torch.testing.assert_close(enc._normalize(x, valid, lens), expect, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("init", ["xavier_uniform", "chainer"])
def test_espnet_init_keeps_the_pretrained_weights(tmp_path, monkeypatch, hubert_dir, init):
    model = _build(tmp_path, monkeypatch, {**_conf(hubert_dir), "init": init})
    assert _pretrained_equal(model.encoder, hubert_dir)


def test_espnet_baseline_model_trains(tmp_path, monkeypatch, hubert_dir):
    model = _build(tmp_path, monkeypatch, _conf(hubert_dir, model="espnet", freeze_updates=0))
    assert isinstance(model, ESPnetSTModel) and isinstance(model.encoder, HFHubertEncoder)
    model.train()
    batch = _batch()
    loss, stats, _ = model(**batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.encoder.proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.encoder.hubert.encoder.parameters())


def test_config_round_trip_and_speech2text_decodes(tmp_path, hubert_dir):
    import espnet2.bin.st_inference as st_inference

    d = _write(tmp_path, _conf(hubert_dir))
    exp = dry_run(d, d / "conf.yaml", d / "tgt.txt", d / "src.txt")
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["encoder"] == "hf_hubert" and saved["input_size"] == 1
    assert saved["frontend"] is None and saved["normalize"] is None
    assert saved["encoder_conf"]["model_name_or_path"] == str(hubert_dir)
    model, _ = MTLSTTask.build_model_from_file(exp / "config.yaml", None, "cpu")
    assert isinstance(model.encoder, HFHubertEncoder)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    original = st_inference.STTask
    st_inference.STTask = MTLSTTask
    try:
        speech = (0.1 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32)
        for ctc_weight in (0.0, 0.3):
            s2t = st_inference.Speech2Text(
                st_train_config=exp / "config.yaml", st_model_file=tmp_path / "model.pth",
                beam_size=2, ctc_weight=ctc_weight, maxlenratio=0.0, nbest=1)
            results = s2t(speech)
            assert len(results) == 1
            _, _, token_int, hyp = results[0]
            assert all(0 <= t < len(TGT) for t in token_int)
            assert math.isfinite(float(hyp.score))
    finally:
        st_inference.STTask = original


def test_clear_errors(tmp_path, monkeypatch, hubert_dir):
    missing = tmp_path / "no_such_hubert"
    with pytest.raises(FileNotFoundError, match=r"no_such_hubert.*save_pretrained"):
        HFHubertEncoder(model_name_or_path=str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty has no config.json"):
        HFHubertEncoder(model_name_or_path=str(empty))
    w2v = tmp_path / "w2v"
    transformers.Wav2Vec2Config().save_pretrained(w2v)
    with pytest.raises(ValueError, match=r"model_type 'wav2vec2', not 'hubert'"):
        HFHubertEncoder(model_name_or_path=str(w2v))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(hubert_dir / "config.json", no_weights)
    with pytest.raises(OSError, match=r"could not load HuBERT weights from .*no_weights"):
        HFHubertEncoder(model_name_or_path=str(no_weights))
    with pytest.raises(ValueError, match=r"model_name_or_path"):
        HFHubertEncoder()
    with pytest.raises(ValueError, match=r"not HubertConfig fields"):
        HFHubertEncoder(model_name_or_path=str(hubert_dir), config_overrides={"no_such": 1})
    # a config that keeps ESPnet's fbank frontend
    with pytest.raises(ValueError, match=r"input_size: 1"):
        HFHubertEncoder(input_size=80, model_name_or_path=str(hubert_dir))
    enc = HFHubertEncoder(model_name_or_path=str(hubert_dir)).eval()
    with pytest.raises(TooShortUttError, match=r"shorter than HuBERT's first frame \(20"):
        enc(torch.zeros(2, 400), torch.tensor([400, 12]))
    # transformers missing: the message names the install command
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"tools/setup.sh"):
        HFHubertEncoder(model_name_or_path=str(hubert_dir))


def test_imtl_paper_template_builds_with_a_local_hubert(tmp_path, monkeypatch, hubert_dir):
    """conf_templates/st/imtl.yaml at paper size, the hub name replaced by a local HuBERT."""
    root = Path(__file__).resolve().parents[1]
    conf = yaml.safe_load((root / "conf_templates" / "st" / "imtl.yaml").read_text())
    assert conf["encoder_conf"]["model_name_or_path"] == "facebook/hubert-base-ls960"
    conf["encoder_conf"]["model_name_or_path"] = str(hubert_dir)
    model = _build(tmp_path, monkeypatch, conf)
    assert type(model.adapter).__name__ == "ShrinkLBMAdapter"
    assert model.block_hooks["local_to_global"].kernels == [5, 9, 11, 15, 17, 21]
    assert model.textual_encoder.num_blocks == 6 and model.textual_encoder.output_size() == 512
    assert type(model.strategy).__name__ == "TaskNormWeights"
    assert set(model.objectives) == {"st_ce", "asr_ctc", "contrastive", "mt_ce"}
    model.train()
    loss, stats, _ = model(**_batch())
    assert torch.isfinite(loss) and stats["loss_contrastive"] > 0
