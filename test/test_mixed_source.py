"""Mixed-source training: ST triples with MT-only and ASR-only examples.

Model level: every loss of a mixed batch equals the mean of that loss over
exactly the examples that have its fields (computed one example at a time),
and the empty placeholders' contents change nothing. Data level: the sampler's
batch composition, order and resume determinism. End to end: ESPnet's trainer
trains on mixed batches built by our task.
"""

import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_mtl.iterators.mixed_source import (
    MixedSourceDataset,
    MixedSourceError,
    MixedSourceSampler,
    parse_ratio,
)

from test_mtl_st_model import ALL_OFF, NO_DROPOUT_DEC, NO_DROPOUT_ENC, _build

LOSSES = ("loss_st", "loss_asr_ctc", "loss_asr_att", "loss_mt", "loss_st_ctc", "loss_cr")
# Which examples feed which loss (rows of _mixed_batch: ST, MT-only, ASR-only, ST)
FEEDS = {"loss_st": [0, 3], "loss_st_ctc": [0, 3], "loss_cr": [0, 3],
         "loss_mt": [0, 1, 3], "loss_asr_ctc": [0, 2, 3], "loss_asr_att": [0, 2, 3]}
WEIGHTS = dict(asr_ctc_weight=0.3, asr_att_weight=0.2, mt_weight=0.5, st_ctc_weight=0.3,
               consistency_weight=1.0, rdrop_weight=0.0, lsm_weight=0.1)
WEIGHT_OF = {"loss_st": 1.0, "loss_cr": WEIGHTS["consistency_weight"],
             **{f"loss_{k}": WEIGHTS[f"{k}_weight"] for k in ("asr_ctc", "asr_att", "mt", "st_ctc")}}
# Padding-exact acoustic encoder (see test_mtl_st_model.test_padding_changes_nothing)
EXACT = dict(encoder_conf={"cnn_module_kernel": 1, "input_layer": "linear"},
             frontend_conf={"center": False})


def _mixed_batch(seed=3, garbage=0.0, speech_lengths=(1600, 0, 1280, 960)):
    """Rows: 0 ST triple, 1 MT-only (no speech), 2 ASR-only (no translation), 3 ST triple.

    Absent fields have length 0; their padded content is `garbage` (the
    collate pads with 0 / -1; any value must do).
    """
    g = torch.Generator().manual_seed(seed)
    speech = torch.randn(4, 1600, generator=g)
    speech_lengths = torch.tensor(speech_lengths)
    text = torch.tensor([[2, 3, 4], [4, 2, -1], [-1, -1, -1], [3, -1, -1]])
    text_lengths = torch.tensor([3, 2, 0, 1])
    src = torch.tensor([[2, 3, 4, 5], [5, 4, -1, -1], [3, 3, 2, -1], [3, 4, -1, -1]])
    src_lengths = torch.tensor([4, 2, 3, 2])
    for i, n in enumerate(speech_lengths):
        speech[i, n:] = garbage
    if garbage:
        text[2] = 2  # a placeholder row full of valid-looking ids
    return dict(speech=speech, speech_lengths=speech_lengths, text=text,
                text_lengths=text_lengths, src_text=src, src_text_lengths=src_lengths)


def _alone(batch, i):
    """Example i alone, cut to its lengths; a missing field gets a stand-in.

    The stand-in never reaches the losses this example feeds (speech does not
    enter the MT loss, the translation not the ASR loss).
    """
    out = {}
    for k in ("speech", "text", "src_text"):
        n = int(batch[k + "_lengths"][i])
        out[k] = batch[k][i:i + 1, :n]
        out[k + "_lengths"] = batch[k + "_lengths"][i:i + 1]
    if out["speech_lengths"][0] == 0:
        out["speech"], out["speech_lengths"] = batch["speech"][:1, :800], torch.tensor([800])
    if out["text_lengths"][0] == 0:
        out["text"], out["text_lengths"] = torch.tensor([[2]]), torch.tensor([1])
    return out


# The second case makes the ASR-only row the longest: the ST rows' encoder
# output is then padded beyond their own longest row (found by a recipe run).
@pytest.mark.parametrize("lengths", [(1600, 0, 1280, 960), (1280, 0, 1600, 960)])
def test_each_loss_uses_exactly_the_examples_with_its_fields(tmp_path, monkeypatch, lengths):
    model = _build(tmp_path, monkeypatch, WEIGHTS, **EXACT)
    model.eval()
    with torch.no_grad():
        _, mixed, weight = model(**_mixed_batch(speech_lengths=lengths))
        _, garbage, _ = model(**_mixed_batch(garbage=1e4, speech_lengths=lengths))
        alone = [model(**_alone(_mixed_batch(speech_lengths=lengths), i))[1] for i in range(4)]
    assert int(weight) == 4
    total = 0.0
    for key in LOSSES:
        expected = sum(float(alone[i][key]) for i in FEEDS[key]) / len(FEEDS[key])
        assert float(mixed[key]) == pytest.approx(expected, rel=1e-4, abs=1e-5), key
        # placeholder contents are never read
        assert float(garbage[key]) == pytest.approx(float(mixed[key]), rel=1e-6, abs=1e-6), key
        total += WEIGHT_OF[key] * expected
    assert float(mixed["loss"]) == pytest.approx(total, rel=1e-4)
    # accuracy counts the ST rows only: rows 0 and 3 alone, token-weighted (4 + 2 tokens)
    acc = (float(alone[0]["acc"]) * 4 + float(alone[3]["acc"]) * 2) / 6
    assert float(mixed["acc"]) == pytest.approx(acc, rel=1e-5)


def test_rdrop_and_consistency_in_a_mixed_batch(tmp_path, monkeypatch):
    kw = dict(encoder_conf={**NO_DROPOUT_ENC, **EXACT["encoder_conf"]},
              frontend_conf=EXACT["frontend_conf"], decoder_conf=NO_DROPOUT_DEC,
              asr_decoder_conf=NO_DROPOUT_DEC, textual=NO_DROPOUT_ENC)
    on = _build(tmp_path, monkeypatch, {**WEIGHTS, "rdrop_weight": 2.0}, **kw)
    off = _build(tmp_path, monkeypatch, WEIGHTS, **kw)
    off.load_state_dict(on.state_dict())
    on.train()
    off.train()  # no dropout, no specaug: the two copies are identical
    _, s_on, _ = on(**_mixed_batch())
    _, s_off, _ = off(**_mixed_batch())
    assert abs(float(s_on["loss_rd"])) < 1e-5
    for key in LOSSES:  # doubled rows, selected in both copies, give the same means
        # (except the ST CE: R-drop's convention sums the two copies' CE)
        expect = float(s_off[key]) * (2 if key == "loss_st" else 1)
        assert float(s_on[key]) == pytest.approx(expect, rel=1e-4, abs=1e-6), key


def test_a_mixed_batch_trains(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, {**WEIGHTS, "rdrop_weight": 1.0})
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss, stats, _ = model(**_mixed_batch())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    # every module got a gradient: MT-only and ASR-only rows do not starve anything
    assert model.mt_embed.weight.grad.abs().sum() > 0
    assert model.ctc.ctc_lo.weight.grad.abs().sum() > 0


def test_batch_of_one_source_only(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, {**ALL_OFF, "mt_weight": 0.5, "asr_ctc_weight": 0.3},
                   **EXACT)
    model.train()
    batch = _mixed_batch()
    mt_only = {k: v[1:2] for k, v in batch.items()}  # one MT-only example
    loss, stats, _ = model(**mt_only)
    assert stats["loss_st"] is None and stats["loss_asr_ctc"] is None
    assert float(stats["loss_mt"]) > 0 and float(loss) == pytest.approx(
        0.5 * float(stats["loss_mt"]))
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())  # speech path untouched
    asr_only = {k: v[2:3] for k, v in batch.items()}
    loss, stats, _ = model(**asr_only)
    assert stats["loss_mt"] is None and float(stats["loss_asr_ctc"]) > 0


def test_a_batch_that_feeds_no_loss_is_an_error(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, {**ALL_OFF, "mt_weight": 0.5})
    model.train()
    batch = _mixed_batch()
    asr_only = {k: v[2:3] for k, v in batch.items()}  # ASR data but no ASR weight
    with pytest.raises(RuntimeError, match="no example of this batch feeds a loss"):
        model(**asr_only)


# ------------------------------------------------------------------ sampler, dataset

def _source_batches():
    st = [(f"s{i}a", f"s{i}b") for i in range(5)]
    mt = [(f"mt/m{i}",) for i in range(3)]
    asr = [(f"asr/a{i}a", f"asr/a{i}b") for i in range(2)]
    return {"st": st, "mt": mt, "asr": asr}


def test_ratio_mode_batches_mix_every_source():
    batches = _source_batches()
    sampler = MixedSourceSampler(batches, parse_ratio("st=2,mt=1,asr=2", list(batches)),
                                 "ratio")
    assert len(sampler) == 5
    seen_mt = []
    for epoch in (0, 1, 2):  # stream positions 0..14: five whole passes over MT
        epoch_batches = sampler.generate(epoch)
        assert epoch_batches == sampler.generate(epoch)  # resumable: a function of the seed
        assert sorted(b[:2] for b in epoch_batches) == sorted(batches["st"])
        for b in epoch_batches:
            assert b[2].startswith("mt/") and all(k.startswith("asr/") for k in b[3:])
            seen_mt.append(b[2])
    # the MT stream continues across epochs and covers every MT batch evenly
    assert {k: seen_mt.count(k) for k in set(seen_mt)} == {"mt/m0": 5, "mt/m1": 5, "mt/m2": 5}
    assert sampler.generate(1) != sampler.generate(2)


def test_round_robin_order_and_sharding():
    batches = _source_batches()
    ratio = parse_ratio("st=2,mt=1,asr=1", list(batches))
    sampler = MixedSourceSampler(batches, ratio, "round_robin", shuffle=False)
    out = sampler.generate(0)
    kinds = ["mt" if b[0].startswith("mt/") else "asr" if b[0].startswith("asr/") else "st"
             for b in out]
    assert kinds == ["st", "st", "mt", "asr"] * 2 and len(sampler) == 8
    assert out[:2] == batches["st"][:2]
    shard = MixedSourceSampler({k: v for k, v in batches.items() if k != "mt"},
                               {"st": 1, "asr": 1}, "ratio", shuffle=False, rank=1,
                               world_size=2)
    assert shard.generate(0)[0] == ("s0b", "asr/a0b")
    with pytest.raises(MixedSourceError, match="fewer than the 2 processes"):
        MixedSourceSampler(batches, ratio, "ratio", world_size=2)


@pytest.mark.parametrize("spec,message", [
    ("st=1,mt=x", "bad item 'mt=x'"), ("st=1,mt=0", "bad item"),
    ("st=1,lm=1", "names 'lm'"), ("st=1", "no ratio for mt"),
])
def test_bad_ratio(spec, message):
    with pytest.raises(MixedSourceError, match=message):
        parse_ratio(spec, ["st", "mt"])


class _Dict:
    """A minimal AbsDataset stand-in over a dict (uid -> fields)."""

    def __init__(self, data):
        self.data = data

    def names(self):
        return tuple(next(iter(self.data.values())))

    def __getitem__(self, uid):
        uid = list(self.data)[uid] if isinstance(uid, int) else uid
        return uid, dict(self.data[uid])

    def __len__(self):
        return len(self.data)


def test_dataset_placeholders_follow_the_st_fields():
    st = _Dict({"u1": {"speech": np.ones((7, 80), np.float32),
                       "text": np.array([2, 3]), "src_text": np.array([4])}})
    mt = _Dict({"m1": {"src_text": np.array([5, 6]), "text": np.array([2])}})
    asr = _Dict({"a1": {"speech": np.ones((9, 80), np.float32), "src_text": np.array([4])}})
    ds = MixedSourceDataset(st, {"mt": mt, "asr": asr})
    key, data = ds["mt/m1"]
    assert key == "mt/m1" and data["speech"].shape == (0, 80)  # fbank placeholder
    assert data["speech"].dtype == np.float32
    _, data = ds["asr/a1"]
    assert data["text"].shape == (0,) and data["text"].dtype == np.array([2]).dtype
    assert ds["u1"][1]["speech"].shape == (7, 80)
    with pytest.raises(MixedSourceError, match="lacks"):
        MixedSourceDataset(_Dict({"u": {"speech": np.ones(3), "text": np.array([1])}}),
                           {"mt": mt})


# ------------------------------------------------------------------ end to end

TOKENS = ["<blank>", "<unk>", "a", "b", "c", "d", "<space>", "<sos/eos>"]


def _write_set(d, name, n, speech=True, text=True, src=True, seed=0):
    rng = np.random.default_rng(seed)
    d = d / name
    d.mkdir()
    words = ["a b", "b c", "c d a", "d", "a c b d", "b"]
    rows = {"wav.scp": [], "text": [], "src_text": [], "speech_shape": [], "text_shape.char": [],
            "src_text_shape.char": []}
    for i in range(n):
        uid = f"{name}{i:02d}"
        if speech:
            wav = d / f"{uid}.wav"
            samples = 1600 + 160 * i
            soundfile.write(wav, rng.standard_normal(samples).astype(np.float32) * 0.1, 16000)
            rows["wav.scp"].append(f"{uid} {wav}")
            rows["speech_shape"].append(f"{uid} {samples}")
        if text:
            t = words[i % len(words)]
            rows["text"].append(f"{uid} {t}")
            rows["text_shape.char"].append(f"{uid} {len(t)},{len(TOKENS)}")
        if src:
            s = words[(i + 2) % len(words)]
            rows["src_text"].append(f"{uid} {s}")
            rows["src_text_shape.char"].append(f"{uid} {len(s)},{len(TOKENS)}")
    for fname, lines in rows.items():
        if lines:
            (d / fname).write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    (d / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    conf = {
        "model": "mtl_st",
        "model_conf": {"asr_ctc_weight": 0.3, "mt_weight": 0.5, "consistency_weight": 0.5,
                       "textual_encoder_conf": {"num_blocks": 1, "linear_units": 32,
                                                "attention_heads": 2}},
        "frontend_conf": {"n_fft": 128, "hop_length": 64, "n_mels": 8},
        "encoder": "conformer",
        "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                         "num_blocks": 1, "cnn_module_kernel": 3, "rel_pos_type": "latest",
                         "pos_enc_layer_type": "rel_pos",
                         "selfattention_layer_type": "rel_selfattn"},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "batch_type": "folded", "batch_size": 6, "max_epoch": 1, "num_workers": 0,
        "num_att_plot": 0, "seed": 0, "optim": "adam", "optim_conf": {"lr": 0.001},
    }
    (d / "conf.yaml").write_text(yaml.safe_dump(conf))
    return d, {"st": _write_set(d, "st", 6, seed=1),
               "mt": _write_set(d, "mt", 9, speech=False, seed=2),
               "asr": _write_set(d, "asr", 4, text=False, seed=3)}


def _train_cmd(d, sets, out, *extra, mt=True, asr=True):
    st = sets["st"]
    cmd = [sys.executable, "-m", "espnet_mtl.bin.st_train", "--config", str(d / "conf.yaml"),
           "--token_list", str(d / "tokens.txt"), "--src_token_list", str(d / "tokens.txt"),
           "--token_type", "char", "--src_token_type", "char", "--ngpu", "0",
           "--output_dir", str(out), "--fold_length", "80000", "--fold_length", "150",
           "--fold_length", "150"]
    for split in ("train", "valid"):
        for f, name, kind in (("wav.scp", "speech", "sound"), ("text", "text", "text"),
                              ("src_text", "src_text", "text")):
            cmd += [f"--{split}_data_path_and_name_and_type", f"{st}/{f},{name},{kind}"]
        for f in ("speech_shape", "text_shape.char", "src_text_shape.char"):
            cmd += [f"--{split}_shape_file", f"{st}/{f}"]
    if mt:
        m = sets["mt"]
        cmd += ["--train_mt_data_path_and_name_and_type", f"{m}/src_text,src_text,text",
                "--train_mt_data_path_and_name_and_type", f"{m}/text,text,text",
                "--train_mt_shape_file", f"{m}/src_text_shape.char",
                "--train_mt_shape_file", f"{m}/text_shape.char"]
    if asr:
        a = sets["asr"]
        cmd += ["--train_asr_data_path_and_name_and_type", f"{a}/wav.scp,speech,sound",
                "--train_asr_data_path_and_name_and_type", f"{a}/src_text,src_text,text",
                "--train_asr_shape_file", f"{a}/speech_shape",
                "--train_asr_shape_file", f"{a}/src_text_shape.char"]
    return cmd + list(extra)


@pytest.mark.parametrize("mode,ratio,batches", [("ratio", "st=2,mt=1,asr=1", 2),
                                                ("round_robin", "st=1,mt=1,asr=1", 3)])
def test_espnet_trainer_trains_on_mixed_batches(mixed_data, tmp_path, mode, ratio, batches):
    d, sets = mixed_data
    out = tmp_path / "exp"
    r = subprocess.run(_train_cmd(d, sets, out, "--mixed_source_mode", mode,
                                  "--mixed_source_ratio", ratio),
                       capture_output=True, text=True)
    log = r.stderr
    assert r.returncode == 0, log[-4000:]
    assert f"mixed-source batches ({mode}" in log
    assert f"-> {batches} batches per epoch" in log
    assert (out / "1epoch.pth").exists()
    results = [line for line in log.splitlines() if "1epoch results" in line]
    assert results, log[-3000:]
    # train stats carry every loss the mixed data feeds
    for key in ("loss_st=", "loss_mt=", "loss_asr_ctc=", "loss_cr="):
        assert f"[train] " in results[0] and key in results[0], (key, results[0])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["mixed_source_mode"] == mode and saved["train_mt_shape_file"]


def test_mixed_data_the_model_cannot_use_is_refused(mixed_data, tmp_path):
    d, sets = mixed_data
    r = subprocess.run(_train_cmd(d, sets, tmp_path / "exp", "--model_conf", "mt_weight=0.0",
                                  "--model_conf", "consistency_weight=0.0", asr=False),
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "MT-only data is given but no loss can use it" in r.stderr
    r = subprocess.run(_train_cmd(d, sets, tmp_path / "exp2", "--mixed_source_ratio",
                                  "st=1,mt=1", mt=True, asr=True),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no ratio for asr" in r.stderr


def test_model_check_uses_the_model_defaults():
    import argparse

    from espnet_mtl.iterators.mixed_source import check_model_uses_sources

    # asr_ctc_weight defaults to 0.3 in mtl_st: ASR-only data is usable without setting it
    check_model_uses_sources(argparse.Namespace(model="mtl_st", model_conf={}), ["asr"])
    with pytest.raises(MixedSourceError, match="MT-only data is given but no loss"):
        check_model_uses_sources(argparse.Namespace(model="mtl_st", model_conf={}), ["mt"])
    with pytest.raises(MixedSourceError, match="needs --model mtl_st"):
        check_model_uses_sources(argparse.Namespace(model="espnet", model_conf={}), ["mt"])


def test_round_robin_needs_enough_st_batches():
    batches = _source_batches()
    with pytest.raises(MixedSourceError, match="needs at least 6 ST batches"):
        MixedSourceSampler(batches, {"st": 6, "mt": 1, "asr": 1}, "round_robin")
