"""ComSL (seed 004): losses against hand values, the Whisper encoder against HF, the
composite model's passes, teacher, freezing schedule and scheduler.

Tiny random Whisper and mBART-50 models (with an mBART-50 tokenizer trained on a few
sentences) are saved locally and loaded through `from_pretrained`: no network.
"""

import math

import pytest
import torch
import transformers

from espnet_mtl.demo.tiny_pretrained import make_tiny_comsl
from espnet_mtl.losses.guided import erm_distance, guided_cross_entropy
from espnet_mtl.models.comsl import ComSLModel
from espnet_mtl.modules.hf_whisper import WhisperLogMel, WhisperSpeechEncoder
from espnet_mtl.objectives import ObjectiveError
from espnet_mtl.training.schedulers import WarmupPolynomialLR

SRC = ["hello world", "the cat sat on the mat", "this is a test", "good morning"]
TGT = ["hallo welt", "die katze sass auf der matte", "das ist ein test", "guten morgen"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    d = tmp_path_factory.mktemp("comsl")
    whisper, mbart = make_tiny_comsl(d, (SRC + TGT) * 10, vocab_size=80)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(mbart))
    return whisper, mbart, tokenizer


def _model(pretrained, **conf):
    whisper, mbart, tok = pretrained
    token_list = tok.convert_ids_to_tokens(list(range(len(tok))))
    torch.manual_seed(0)
    return ComSLModel(token_list, whisper=str(whisper), mbart=str(mbart), **conf)


def _ids(tok, texts):
    seqs = [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
    n = max(map(len, seqs))
    return (torch.tensor([s + [-1] * (n - len(s)) for s in seqs]),
            torch.tensor([len(s) for s in seqs]))


def _batch(tok, rows=(0, 1, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([16000, 11000, 7000, 9000])[list(rows)]
    speech = torch.randn(len(rows), int(lens.max()), generator=g) * 0.1
    speech = speech * (torch.arange(speech.size(1))[None] < lens[:, None])
    text, text_lens = _ids(tok, [TGT[i] for i in rows])
    src, src_lens = _ids(tok, [SRC[i] for i in rows])
    return dict(speech=speech, speech_lengths=lens, text=text, text_lengths=text_lens,
                src_text=src, src_text_lengths=src_lens)


# -- losses: hand values -----------------------------------------------------------------
def test_guided_cross_entropy_hand_value_and_padding():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]])
    guide = torch.tensor([[[0.0, 0.0, math.log(2.0)], [5.0, 5.0, 5.0]]])
    target = torch.tensor([[1, -1]])  # the second position is padding
    # by hand: log P = logits - log(e + e^2 + 1); Q = (1/4, 1/4, 1/2)
    z = math.log(math.e + math.e ** 2 + 1.0)
    logp = [1.0 - z, 2.0 - z, 0.0 - z]
    ce = -logp[1]
    soft = -(0.25 * logp[0] + 0.25 * logp[1] + 0.5 * logp[2])
    for alpha in (0.0, 0.2, 0.8, 1.0):
        value = guided_cross_entropy(logits, target, guide, alpha)
        assert value.item() == pytest.approx((1 - alpha) * ce + alpha * soft, rel=1e-6)
    # padding: anything there (even NaN) changes neither value nor gradient
    noisy = logits.clone()
    noisy[0, 1] = float("nan")
    noisy.requires_grad_(True)
    value = guided_cross_entropy(noisy, target, guide, 0.8)
    value.backward()
    assert value.item() == pytest.approx(0.2 * ce + 0.8 * soft, rel=1e-6)
    assert torch.equal(noisy.grad[0, 1], torch.zeros(3))
    # the guide is a stop-gradient
    g = guide.clone().requires_grad_(True)
    assert not guided_cross_entropy(logits, target, g, 0.8).requires_grad


def test_erm_distance_hand_value_and_padding():
    a = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [7.0, 7.0]]])
    b = torch.tensor([[[4.0, 3.0], [0.0, 2.0], [float("nan"), 1.0]]])
    mask = torch.tensor([[True, True, False]])
    # unit vectors: (.6,.8) vs (.8,.6): sqrt(.04+.04); (1,0) vs (0,1): sqrt(2)
    expect = math.sqrt(0.08) + math.sqrt(2.0)
    assert erm_distance(a, b, mask).item() == pytest.approx(expect, rel=1e-5)
    assert erm_distance(a, b, mask, reduction="mean_tokens").item() == pytest.approx(expect / 2,
                                                                                      rel=1e-5)
    same = a.clone().requires_grad_(True)
    value = erm_distance(same, a, mask)
    value.backward()
    assert value.item() < 1e-5 and torch.isfinite(same.grad).all()


# -- Whisper encoder -------------------------------------------------------------------------
def test_log_mel_equals_hf_feature_extractor():
    fe = transformers.WhisperFeatureExtractor(feature_size=80)
    wav = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    lens = torch.tensor([16000, 12345])
    mel, frames = WhisperLogMel(80)(wav, lens)
    assert frames.tolist() == [100, 77]
    for i in range(2):
        ref = fe(wav[i, : lens[i]].numpy(), sampling_rate=16000, return_tensors="pt",
                 padding="longest").input_features[0]
        torch.testing.assert_close(mel[i, : frames[i]], ref[:, : frames[i]].T, atol=1e-5,
                                   rtol=1e-5)
        assert mel[i, frames[i]:].abs().sum() == 0


def test_whisper_encoder_matches_hf_and_padding_changes_nothing(pretrained):
    whisper, _, _ = pretrained
    enc = WhisperSpeechEncoder(str(whisper)).eval()
    ref = transformers.WhisperModel.from_pretrained(str(whisper)).encoder.eval()
    # HF's own forward needs exactly 2 * max_source_positions frames: 30 s here
    wav = torch.randn(2, 30 * 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    lens = torch.tensor([30 * 16000, 7 * 16000 + 123])
    with torch.no_grad():
        out, olens = enc(wav, lens)
        feats, _ = enc.features(wav[:1], lens[:1])
        expect = ref(feats.transpose(1, 2)).last_hidden_state
        alone, _ = enc(wav[1:, : lens[1]], lens[1:])
    torch.testing.assert_close(out[0], expect[0], atol=1e-4, rtol=1e-4)
    assert olens.tolist() == [1500, (700 - 1) // 2 + 1]
    torch.testing.assert_close(out[1, : olens[1]], alone[0], atol=1e-5, rtol=1e-5)
    assert out[1, olens[1]:].abs().sum() == 0
    with pytest.raises(ValueError, match="longer than the encoder's 30 s"):
        enc(torch.zeros(1, 31 * 16000), torch.tensor([31 * 16000]))


def test_gradient_checkpointing_gives_the_same_gradients(pretrained):
    whisper, _, _ = pretrained
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        enc = WhisperSpeechEncoder(str(whisper), gradient_checkpointing=ckpt).train()
        enc.whisper.config.dropout = 0.0
        enc.whisper.dropout = 0.0
        wav = torch.randn(2, 8000, generator=torch.Generator().manual_seed(3))
        out, _ = enc(wav, torch.tensor([8000, 5000]))
        out.pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in enc.parameters()
                                if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


# -- the composite model ---------------------------------------------------------------------
def test_paper_objectives_and_passes(pretrained):
    model = _model(pretrained)
    assert model.objective_weights == {"asr_att": 0.35, "guided_st": 0.35, "teacher_mt": 0.2,
                                       "cml": 0.1}
    assert model.objectives["guided_st"].alpha == 0.8
    assert model.objectives["teacher_mt"].alpha == 0.2
    assert model.objectives["cml"].erm_weight == 0.2
    assert model.passes == {"speech", "st", "asr_att", "mt", "teacher", "cml"}
    tok = pretrained[2]
    assert model.sos == tok.convert_tokens_to_ids("de_DE") and model.eos == tok.eos_token_id
    assert model.src_sos == tok.convert_tokens_to_ids("en_XX")


def test_encode_is_padding_invariant_and_prepends_the_source_language(pretrained):
    model = _model(pretrained).eval()
    b = _batch(pretrained[2])
    with torch.no_grad():
        enc, lens = model.encode(b["speech"], b["speech_lengths"])
        for i in range(3):
            n = int(b["speech_lengths"][i])
            alone, alone_lens = model.encode(b["speech"][i:i + 1, :n], b["speech_lengths"][i:i + 1])
            assert lens[i] == alone_lens[0]
            torch.testing.assert_close(enc[i, : lens[i]], alone[0], atol=1e-5, rtol=1e-5)
        # the adapter output is 4x shorter than Whisper's 50 Hz states, plus the language token
        whisper_frames = (b["speech_lengths"] // 160 - 1) // 2 + 1
        assert lens.tolist() == [int(((f - 1) // 2 + 1 - 1) // 2 + 1) + 1 for f in whisper_frames]


def test_mt_and_teacher_follow_mbart50s_format(pretrained):
    """The MT pass is mBART-50 on [src_lang, x, </s>] -> [</s>, tgt_lang, y, </s>]."""
    model = _model(pretrained, objectives={"teacher_mt": 1.0}).eval()
    tok = pretrained[2]
    tok.src_lang, tok.tgt_lang = "en_XX", "de_DE"
    enc_in = tok(SRC[1], return_tensors="pt")
    labels = tok(text_target=TGT[1], return_tensors="pt").input_ids  # [de_DE, y, </s>]
    dec_in = torch.cat([torch.tensor([[tok.eos_token_id]]), labels[:, :-1]], 1)
    with torch.no_grad():
        expect = model.mbart(**enc_in, decoder_input_ids=dec_in).logits[:, 1:]  # after the forced de_DE
        b = _batch(tok, rows=(1,))
        out = model.compute_passes(model.make_batch(**b))
    torch.testing.assert_close(out["mt"]["logits"], expect, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["teacher"]["logits"], expect, atol=1e-5, rtol=1e-5)
    assert out["mt"]["target"].tolist() == labels[:, 1:].tolist()


def test_mask_tokens_spares_the_language_token_and_eos(pretrained):
    model = _model(pretrained)
    ids = torch.full((64, 40), 7)
    lens = torch.full((64,), 30)
    ids[:, 0] = model.src_lang_id
    ids[torch.arange(64), lens - 1] = model.eos
    torch.manual_seed(0)
    masked, target = model.mask_tokens(ids, lens)
    chosen = masked == model.mask_id
    assert not chosen[:, 0].any() and not chosen[:, 29:].any()
    assert abs(chosen[:, 1:29].float().mean().item() - 0.15) < 0.03
    assert torch.equal(target[chosen], ids[chosen]) and (target[~chosen] == -1).all()


def test_cml_concatenation_is_padding_invariant(pretrained):
    """Each row's [masked transcript; speech] pass gives what the row gives alone."""
    model = _model(pretrained, mask_prob=0.0).eval()  # no dropout: exact values
    tok = pretrained[2]
    with torch.no_grad():
        full = model.compute_passes(model.make_batch(**_batch(tok)))["cml"]
        for i in range(3):
            alone = model.compute_passes(model.make_batch(**_batch(tok, rows=(i,))))["cml"]
            n = int((alone["st_target"][0] != -1).sum())
            torch.testing.assert_close(full["st_logits"][i, :n], alone["st_logits"][0, :n],
                                       atol=1e-4, rtol=1e-4)
            k = int((alone["asr_target"][0] != -1).sum())
            torch.testing.assert_close(full["asr_logits"][i, :k], alone["asr_logits"][0, :k],
                                       atol=1e-4, rtol=1e-4)
        # ERM per row adds up: the batch's sum is the rows' sums
        erms = [model.compute_passes(model.make_batch(**_batch(tok, rows=(i,))))["cml"]["erm"]
                for i in range(3)]
    assert full["erm"].item() == pytest.approx(sum(e.item() for e in erms), rel=1e-4)


def test_training_keeps_the_teacher_and_the_frozen_encoder(pretrained):
    model = _model(pretrained, freeze_encoder_epochs=1).train()
    assert model.__dict__["_teacher"] is None  # loaded when training first needs it
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("teacher") for n in names)  # no optimizer, DDP, checkpoint
    assert not any(k.startswith("teacher") for k in model.state_dict())
    teacher_before = {n: p.clone() for n, p in model.teacher.named_parameters()}
    encoder_before = {n: p.clone() for n, p in model.encoder.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    b = _batch(pretrained[2])

    def step():
        opt.zero_grad()
        loss, stats, _ = model(**b)
        loss.backward()
        opt.step()
        return stats

    model.start_epoch(1)  # frozen: no gradient, no update, no weight decay
    stats = step()
    assert all(stats[k] is not None
               for k in ("loss_asr_att", "loss_st_guided", "loss_mt_teacher", "loss_cml"))
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(torch.equal(p, encoder_before[n]) for n, p in model.encoder.named_parameters())
    model.start_epoch(2)  # thawed
    step()
    changed = [n for n, p in model.encoder.named_parameters() if not torch.equal(p, encoder_before[n])]
    assert len(changed) > 0.9 * len(encoder_before)
    assert all(torch.equal(p, teacher_before[n]) for n, p in model.teacher.named_parameters())
    assert not model.teacher.training and model.training
    assert not torch.equal(model.mbart.lm_head.weight, model.teacher.lm_head.weight)


def test_mixed_rows_feed_only_their_objectives(pretrained):
    """MT-only rows (no speech) feed teacher_mt; speech rows without a translation feed
    asr_att only."""
    model = _model(pretrained).train()
    b = _batch(pretrained[2])
    b["speech_lengths"] = torch.tensor([16000, 0, 7000])  # row 1: MT only
    b["text_lengths"] = torch.tensor([int(b["text_lengths"][0]), int(b["text_lengths"][1]), 0])
    out = model(**b, return_objectives=True)
    losses = out["objectives"]
    assert all(losses[n] is not None for n in ("asr_att", "guided_st", "teacher_mt", "cml"))
    passes = model.compute_passes(model.make_batch(**b))
    assert passes["st"].covers.tolist() == [True, False, False]
    assert passes["mt"].covers.tolist() == [True, True, False]
    assert passes["asr_att"].covers.tolist() == [True, False, True]
    assert passes["cml"].covers.tolist() == [True, False, False]


def test_guided_st_composes_with_mtl_st():
    from espnet_mtl.models.mtl_st import MTLSTModel

    on = MTLSTModel.objectives_on({"objectives": {"st_ce": 0.0, "guided_st": 1.0, "mt_ce": 0.3}})
    assert on == {"mt_ce": ("src_text", "text"), "guided_st": ("speech", "src_text", "text")}
    with pytest.raises(ObjectiveError, match="teacher.logits.*mtl_st"):
        MTLSTModel.check_needs({"teacher_mt": __import__(
            "espnet_mtl.objectives.comsl", fromlist=["x"]).TeacherMT(None)})
    assert "cml" not in MTLSTModel.objectives_on(None, every=True)


def test_bad_configs_are_clear(pretrained):
    with pytest.raises(ValueError, match="tgt_lang 'xx_YY' is not in the token list"):
        _model(pretrained, tgt_lang="xx_YY")
    with pytest.raises(ObjectiveError, match="alpha must be in"):
        _model(pretrained, objectives={"guided_st": {"weight": 1.0, "alpha": 2.0}})
    whisper, mbart, tok = pretrained
    with pytest.raises(ValueError, match="must be the mBART-50 tokenizer's vocabulary"):
        ComSLModel(["<unk>", "a"], whisper=str(whisper), mbart=str(mbart))
    with pytest.raises(OSError, match="cannot load a Whisper model"):
        ComSLModel(["a"], whisper="/nonexistent/whisper", mbart=str(mbart))


def test_warmup_polynomial_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p]}, {"params": [torch.nn.Parameter(torch.zeros(1))],
                                               "lr": 1e-3}], lr=2e-5)
    sched = WarmupPolynomialLR(opt, warmup_steps=4, total_steps=8, end_lr=1e-7)
    lrs = []
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    assert lrs[0] == pytest.approx([2e-5 * 2 / 4, 1e-3 * 2 / 4])
    assert lrs[2] == pytest.approx([2e-5, 1e-3])                        # step 4: the peak
    assert lrs[4][0] == pytest.approx((2e-5 - 1e-7) * 0.5 + 1e-7)       # halfway down
    assert lrs[6] == pytest.approx([1e-7, 1e-7]) and lrs[9] == pytest.approx([1e-7, 1e-7])
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        WarmupPolynomialLR(opt, warmup_steps=10, total_steps=5)


# -- configs -----------------------------------------------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "conf_templates" / "st"


@pytest.mark.parametrize("name", ["comsl.yaml", "comsl_must_c.yaml"])
def test_paper_configs_build_with_local_models(name, pretrained, tmp_path, monkeypatch):
    """The paper configs through ESPnet's parser and our task; the hub names replaced by
    the tiny local models (and their language pair kept)."""
    import yaml

    from espnet_mtl.tasks.st import MTLSTTask

    conf = yaml.safe_load((TEMPLATES / name).read_text())
    assert conf["model_conf"]["objectives"] == {
        "asr_att": 0.35, "guided_st": {"weight": 0.35, "alpha": 0.8},
        "teacher_mt": {"weight": 0.2, "alpha": 0.2},
        "cml": {"weight": 0.1, "alpha": 0.8, "erm_weight": 0.2}}
    assert conf["model_conf"]["freeze_encoder_epochs"] == 5 and conf["max_epoch"] == 15
    assert conf["optim_conf"] == {"lr": 2.0e-5, "weight_decay": 0.1}
    assert conf["scheduler_conf"]["warmup_steps"] == 5000
    whisper, mbart, tok = pretrained
    conf["model_conf"].update(whisper=str(whisper), mbart=str(mbart))
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(conf))
    tokens = tok.convert_ids_to_tokens(list(range(len(tok))))
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")
    monkeypatch.setattr("sys.argv", ["test"])
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(tmp_path / "conf.yaml"), "--token_list", str(tmp_path / "tokens.txt"),
         "--src_token_type", "hugging_face", "--src_bpemodel", str(mbart)])
    model = MTLSTTask.build_model(args)
    assert isinstance(model, ComSLModel) and model.freeze_encoder_epochs == 5
    assert model.encoder.gradient_checkpointing
    optimizers = MTLSTTask.build_optimizers(args, model)
    from espnet2.tasks.abs_task import scheduler_classes

    scheduler = scheduler_classes[args.scheduler](optimizers[0], **args.scheduler_conf)
    assert isinstance(scheduler, WarmupPolynomialLR)


def test_must_c_config_is_the_template_with_its_language_pair():
    import yaml

    covost = yaml.safe_load((TEMPLATES / "comsl.yaml").read_text())
    must_c = yaml.safe_load((TEMPLATES / "comsl_must_c.yaml").read_text())
    for conf in (covost, must_c):
        conf["model_conf"].pop("mbart")
    assert (covost["model_conf"].pop("src_lang"), covost["model_conf"].pop("tgt_lang")) == \
        ("fr_XX", "en_XX")
    assert (must_c["model_conf"].pop("src_lang"), must_c["model_conf"].pop("tgt_lang")) == \
        ("en_XX", "de_DE")
    assert covost == must_c
    for recipe, conf in (("covost2", "comsl.yaml"), ("must_c", "comsl_must_c.yaml")):
        link = ROOT / "egs2" / recipe / "st1/conf/train_st_comsl.yaml"
        assert link.resolve() == (TEMPLATES / conf).resolve()
