"""wav2vec 2.0 / XLS-R through Hugging Face Transformers as `encoder: hf_wav2vec2`
(espnet_mtl.modules.hf_wav2vec2), and Objective Soups (MoDo + CPC) on it.

The encoder is `hf_hubert`'s on `Wav2Vec2Model` (test_hf_hubert.py covers the shared
code in depth); here: the choice, the XLS-R layout (layer-norm conv stack, normalised
waveform), exact padding, HF equality, errors, and one MoDo update through the trainer's
StrategyStep. Tiny random models saved locally: nothing touches the network.
"""

import pytest
import torch
import transformers

from espnet_mtl import registry
from espnet_mtl.modules.hf_hubert import HFHubertEncoder
from espnet_mtl.modules.hf_wav2vec2 import HFWav2Vec2Encoder
from espnet_mtl.training.trainer import StrategyStep

from test_hf_hubert import TINY, _batch, _build, _frames, _snapshot, _changed


@pytest.fixture(scope="module")
def xlsr_dir(tmp_path_factory):
    """XLS-R's layout in miniature: layer-norm conv stack, pre-LN Transformer, and the
    preprocessor config asking for normalised waveforms."""
    d = tmp_path_factory.mktemp("xlsr")
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(**TINY, feat_extract_norm="layer",
                                         do_stable_layer_norm=True)
    transformers.Wav2Vec2Model(config).save_pretrained(d)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(d)
    return d


def test_registered_as_espnet_encoder_choice():
    from espnet2.tasks.st import encoder_choices

    assert encoder_choices.get_class("hf_wav2vec2") is HFWav2Vec2Encoder
    assert registry.ENCODERS["hf_wav2vec2"].endswith(":HFWav2Vec2Encoder")


def test_xlsr_layout_matches_hf_and_padding_changes_nothing(xlsr_dir):
    enc = HFWav2Vec2Encoder(model_name_or_path=str(xlsr_dir), output_size=None).eval()
    assert isinstance(enc.wav2vec2, transformers.Wav2Vec2Model)
    assert not hasattr(enc, "hubert")  # checkpoints hold encoder.wav2vec2.*
    assert enc.normalize_waveform  # do_normalize of the preprocessor config
    ref = transformers.Wav2Vec2Model.from_pretrained(xlsr_dir).eval()
    wav = torch.randn(3, 2000, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([2000, 1337, 401])
    with torch.no_grad():
        out, olens, _ = enc(wav, lens)
    assert olens.tolist() == [_frames(int(n)) for n in lens]
    fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)
    for i, n in enumerate(lens.tolist()):
        # HF's own pipeline on the utterance alone: normalise, then Wav2Vec2Model
        x = fe(wav[i, :n].numpy(), sampling_rate=16000, return_tensors="pt").input_values
        with torch.no_grad():
            expect = ref(x).last_hidden_state[0]
        torch.testing.assert_close(out[i, : olens[i]], expect, atol=1e-4, rtol=1e-3)
        assert out[i, olens[i]:].abs().sum() == 0


def test_errors_name_the_family(tmp_path, xlsr_dir):
    hubert = tmp_path / "hubert"
    transformers.HubertConfig().save_pretrained(hubert)
    with pytest.raises(ValueError, match=r"model_type 'hubert', not 'wav2vec2'.*Wav2Vec2Model"):
        HFWav2Vec2Encoder(model_name_or_path=str(hubert))
    with pytest.raises(ValueError, match=r"model_type 'wav2vec2', not 'hubert'"):
        HFHubertEncoder(model_name_or_path=str(xlsr_dir))
    with pytest.raises(ValueError, match=r"not Wav2Vec2Config fields"):
        HFWav2Vec2Encoder(model_name_or_path=str(xlsr_dir), config_overrides={"no_such": 1})
    with pytest.raises(ValueError, match=r"encoder hf_wav2vec2 reads the raw waveform"):
        HFWav2Vec2Encoder(input_size=80, model_name_or_path=str(xlsr_dir))


@pytest.mark.parametrize("form", ["objective_soups", "modo"])
def test_objective_soups_update_on_wav2vec2(tmp_path, monkeypatch, xlsr_dir, form):
    """VS-MSP (one MoDo over ST CE, ASR CTC and CPC) with the wav2vec2 backbone: one update
    through the trainer's StrategyStep moves the backbone and keeps lambda on the simplex."""
    conf = {
        "model": "mtl_st", "input_size": 1, "normalize": None,
        "encoder": "hf_wav2vec2",
        "encoder_conf": {"model_name_or_path": str(xlsr_dir), "output_size": 24,
                         "freeze_updates": 0, "config_overrides": {"mask_time_prob": 0.0}},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "model_conf": {"objectives": {"st_ce": 0.7, "asr_ctc": 0.3,
                                      "cpc": {"weight": 0.1, "num_negatives": 10}},
                       "textual_encoder_conf": {"num_blocks": 0}},
        "strategy": "modo",
        "strategy_conf": {"gamma": 0.5, "lambda_gradient": form},
    }
    model = _build(tmp_path, monkeypatch, conf)
    assert isinstance(model.encoder, HFWav2Vec2Encoder)
    model.train()
    model.strategy.start_epoch(1)
    before = _snapshot(model.encoder.wav2vec2.encoder)
    out = StrategyStep(model, None, None)(**_batch())
    loss = out[0] if isinstance(out, tuple) else out["loss"]
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    assert _changed(model.encoder.wav2vec2.encoder, before)
    lam = model.strategy.lambdas()
    assert set(lam) == {"st_ce", "asr_ctc", "cpc"}
    assert sum(lam.values()) == pytest.approx(1.0)
    assert lam != pytest.approx({k: 1 / 3 for k in lam})  # the update moved lambda


def test_objective_soups_xlsr_config_builds_with_a_local_model(tmp_path, monkeypatch, xlsr_dir):
    """egs2/covost2/st1/conf/train_st_os_vs_msp_xlsr.yaml at paper size, the hub name
    replaced by a local model: the XLS-R backbone under VS-MSP, lr groups included."""
    import yaml
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    path = root / "egs2/covost2/st1/conf/train_st_os_vs_msp_xlsr.yaml"
    conf = yaml.safe_load(path.read_text())
    assert conf["encoder_conf"]["model_name_or_path"] == "facebook/wav2vec2-xls-r-300m"
    assert conf["lr_groups"] == {"encoder": 5.0e-05}
    conf["encoder_conf"]["model_name_or_path"] = str(xlsr_dir)
    model = _build(tmp_path, monkeypatch, conf)
    assert isinstance(model.encoder, HFWav2Vec2Encoder) and model.encoder.output_size() == 256
    assert type(model.strategy).__name__ == "MoDo"
    assert set(model.objectives) == {"st_ce", "asr_ctc", "cpc"}
    assert model.objectives["asr_ctc"].per_token and model.length_normalized_loss
