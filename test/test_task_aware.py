"""Task-aware MTL (seed 003): FiLM on every block, the explicit TCN, the task_aware model
(one model for ST, ASR and MT on mixed batches), decoding by task."""

import sys

import pytest
import torch

from espnet_mtl.models.mtl_st import MTLSTModel
from espnet_mtl.models.task_aware import TaskAwareSTModel
from espnet_mtl.modules.film import film
from espnet_mtl.modules.task_characteristics import (
    TASKS,
    ExplicitTCN,
    ImplicitTCN,
    same_task_partners,
)
from espnet_mtl.tasks.st import MTLSTTask

from test_mtl_st_model import _batch, _conf, _write

OBJECTIVES = {"st_ce": 1.0, "asr_ctc": 0.3, "mt_ce": 0.3, "asr_att": 0.2}


def _args(d):
    """The task's parsed arguments for d/conf.yaml and its token lists."""
    return MTLSTTask.get_parser().parse_args(
        ["--config", str(d / "conf.yaml"), "--token_list", str(d / "tgt.txt"),
         "--src_token_list", str(d / "src.txt")])


def _train(model, steps):
    """A few Adam steps on the mixed batch; the last step's stats."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss, stats, _ = model(**_mixed_batch())
        loss.backward()
        opt.step()
    return stats


def _build(tmp_path, monkeypatch, model="task_aware", objectives=OBJECTIVES, seed=0, **extra):
    conf = _conf({"objectives": objectives, **extra}, textual={"output_size": 16})
    conf["model"] = model
    tmp_path.mkdir(exist_ok=True)
    d = _write(tmp_path, conf)
    monkeypatch.setattr(sys, "argv", ["st_train"])
    args = _args(d)
    torch.manual_seed(seed)
    return MTLSTTask.build_model(args)


def _mixed_batch():
    """Row 0: an ST triple; row 1: ASR-only (no translation); row 2: MT-only (no speech)."""
    g = torch.Generator().manual_seed(1)
    speech = torch.randn(3, 1600, generator=g)
    speech[1, 1200:] = 0.0
    speech[2] = 0.0
    return dict(
        speech=speech, speech_lengths=torch.tensor([1600, 1200, 0]),
        text=torch.tensor([[2, 3, 4], [-1, -1, -1], [4, 3, -1]]),
        text_lengths=torch.tensor([3, 0, 2]),
        src_text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1], [5, 2, 3, -1]]),
        src_text_lengths=torch.tensor([4, 2, 3]),
    )


def test_film_hand_values_and_zero_is_identity():
    x = torch.tensor([[[1.0, 2.0]]])
    te = torch.tensor([[0.5, -1.0, 0.1, 0.2]])  # delta_gamma (.5, -1), beta (.1, .2)
    assert film(x, te).flatten().tolist() == pytest.approx([1.5 * 1 + 0.1, 0.0 * 2 + 0.2])
    x = torch.randn(3, 5, 4)
    assert torch.equal(film(x, torch.zeros(3, 8)), x)
    assert torch.equal(film(x, torch.zeros(8)), x)
    with pytest.raises(ValueError, match="size 4 needs a task embedding of size 8, got 6"):
        film(x, torch.zeros(6))


def test_explicit_tcn_is_the_papers_size_and_starts_at_zero():
    tcn = ExplicitTCN(256)
    assert sum(p.numel() for p in tcn.parameters()) == 3 * 512  # "roughly 1500"
    assert torch.equal(tcn(torch.arange(3)), torch.zeros(3, 512))


def test_film_on_every_block_and_an_untrained_tcn_is_the_plain_model(tmp_path, monkeypatch):
    model = _build(tmp_path / "a", monkeypatch)
    assert isinstance(model, TaskAwareSTModel)
    enc_blocks, dec_blocks = len(model.encoder.encoders), len(model.decoder.decoders)
    assert model.film.sites == (
        ["encoder.embed"] + [f"encoder.encoders.{i}" for i in range(enc_blocks)]
        + [f"textual_encoder.{i}" for i in range(model.textual_encoder.num_blocks)]
        + ["decoder.embed"] + [f"decoder.decoders.{i}" for i in range(dec_blocks)]
        + ["extra_asr_decoder.embed"]
        + [f"extra_asr_decoder.decoders.{i}" for i in range(
            len(model.extra_asr_decoder.decoders))]
        + ["mt_front"])
    plain = _build(tmp_path / "b", monkeypatch, model="mtl_st")
    assert type(plain) is MTLSTModel
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith("tcn.") for k in unexpected)
    model.eval(), plain.eval()
    with torch.no_grad():
        _, ours, _ = model(**_mixed_batch())
        _, theirs, _ = plain(**_mixed_batch())
    for key in ("loss_st", "loss_asr_ctc", "loss_mt", "loss_asr_att"):
        assert float(ours[key]) == pytest.approx(float(theirs[key]), rel=1e-6), key
    # a task embedding in force changes every path
    with torch.no_grad():
        model.tcn.ffn.weight.normal_(0, 0.5)
        _, moved, _ = model(**_mixed_batch())
    for key in ("loss_st", "loss_asr_ctc", "loss_mt", "loss_asr_att"):
        assert float(moved[key]) != pytest.approx(float(theirs[key]), rel=1e-4), key


def test_one_model_trains_st_asr_and_mt_and_learns_distinct_task_embeddings(
        tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch)
    stats = _train(model, 3)
    assert all(stats[k] is not None for k in ("loss_st", "loss_asr_ctc", "loss_mt"))
    te = model.tcn(torch.arange(len(TASKS))).detach()
    for i in range(3):
        assert te[i].abs().sum() > 0, TASKS[i]
        for j in range(i):
            assert not torch.allclose(te[i], te[j]), (TASKS[i], TASKS[j])


def test_each_pass_runs_under_its_task(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch)
    with torch.no_grad():
        model.tcn.ffn.weight.normal_(0, 0.5)
    by_task = model.tcn(torch.arange(len(TASKS)))
    seen = []
    real = model.film.condition

    def record(te):
        seen.append([TASKS[int((by_task - row).abs().sum(1).argmin())] for row in te])
        return real(te)

    model.film.condition = record
    model.train()
    model(**_mixed_batch())
    # speech rows: the triple is ST, the speech-only row ASR; then the ST decoder pass,
    # the ASR attention decoder over both speech rows, the MT pass over its 2 rows
    assert seen == [["st", "asr"], ["st"], ["asr", "asr"], ["mt", "mt"]]


def test_rdrop_composes_two_copies_carry_their_rows_embeddings(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch,
                   objectives={"st_ce": 1.0, "asr_ctc": 0.3, "rdrop": 1.0})
    with torch.no_grad():
        model.tcn.ffn.weight.normal_(0, 0.1)
    model.train()
    loss, stats, _ = model(**_batch())
    assert torch.isfinite(loss) and float(stats["loss_rd"]) > 0
    loss.backward()
    assert model.tcn.ffn.weight.grad[:, 0].abs().sum() > 0  # the ST row learns


def test_decoding_uses_the_decode_task_and_cached_steps_match(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch)
    with torch.no_grad():
        model.tcn.ffn.weight.normal_(0, 0.5)
    model.eval()
    speech, lens = _batch()["speech"][:1], torch.tensor([1600])
    with torch.no_grad():
        st, _ = model.encode(speech, lens)
        model.decode_task = "asr"
        asr, _ = model.encode(speech, lens)
        model.decode_task = "st"
    assert not torch.allclose(st, asr)
    # incremental decoding (ESPnet's beam search: cache) = the full forward's last step
    ys = torch.tensor([[model.sos, 2, 3, 4]])
    with torch.no_grad():
        full, _ = model.decoder(st, torch.tensor([st.size(1)]), ys, torch.tensor([4]))
        cache = None
        for t in range(1, 5):
            mask = torch.tril(torch.ones(t, t, dtype=torch.bool))[None]
            step, cache = model.decoder.forward_one_step(ys[:, :t], mask, st, cache=cache)
        torch.testing.assert_close(step[0], full[0, -1].log_softmax(-1), atol=1e-5,
                                   rtol=1e-4)


def test_bad_configs_name_the_key(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="model_conf.tcn: unknown TCN 'implicitly'"):
        _build(tmp_path / "a", monkeypatch, tcn="implicitly")
    with pytest.raises(ValueError, match="unknown task 'tts'"):
        _build(tmp_path / "b", monkeypatch, decode_task="tts")
    conf = _conf({"objectives": OBJECTIVES}, textual={"output_size": 12})
    conf["model"] = "task_aware"
    (tmp_path / "c").mkdir()
    d = _write(tmp_path / "c", conf)
    args = _args(d)
    with pytest.raises(ValueError, match=r"blocks must have one size d; got .*16.*12"):
        MTLSTTask.build_model(args)


def test_implicit_tcn_pairs_only_same_task_examples():
    tasks = torch.tensor([0, 1, 0, 2, 1, 0, 1])
    for seed in range(20):
        partner = same_task_partners(tasks, torch.Generator().manual_seed(seed))
        assert torch.equal(tasks[partner], tasks)  # same task
        assert bool((partner != torch.arange(7))[tasks != 2].all())  # never themselves
        assert int(partner[3]) == 3  # the only MT row: itself
        assert sorted(partner.tolist()) == list(range(7))  # each row lends once


def test_implicit_tcn_is_padding_invariant():
    torch.manual_seed(0)
    tcn = ImplicitTCN(size=8, feat_size=10, src_vocab_size=7, tgt_vocab_size=6, hidden=16,
                      heads=2, ffn=32).eval()
    torch.nn.init.normal_(tcn.ffn[-1].weight)  # not zero: the output must carry the input
    feats, tokens = torch.randn(2, 40, 10), torch.tensor([[2, 3, 4, 5], [3, 2, 0, 0]])
    feat_lens, token_lens = torch.tensor([40, 23]), torch.tensor([4, 2])
    feats[1, 23:] = 99.0  # garbage in the padding
    tokens[1, 2:] = 5
    with torch.no_grad():
        src, src_valid = tcn.embed_speech(feats, feat_lens)
        tgt, tgt_valid = tcn.embed_tokens(tokens, token_lens, "tgt")
        both = tcn(src, src_valid, tgt, tgt_valid)
        s1, v1 = tcn.embed_speech(feats[1:, :23], feat_lens[1:])
        t1, u1 = tcn.embed_tokens(tokens[1:, :2], token_lens[1:], "tgt")
        alone = tcn(s1, v1, t1, u1)
    assert both.shape == (2, 16)
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(both[0], both[1])


def test_implicit_model_trains_stores_and_decodes_with_the_stored_embeddings(
        tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, tcn="implicit",
                   tcn_conf={"hidden": 16, "heads": 2, "ffn": 32, "store_momentum": 0.5})
    assert isinstance(model.tcn, ImplicitTCN)
    _train(model, 2)
    # every task's examples were embedded and folded into its stored embedding
    assert model.tcn.stored_count.tolist() == [2, 4, 4]  # st: 1 row, asr: 2, mt: 2; x2
    assert bool((model.tcn.stored.abs().sum(1) > 0).all())
    model.eval()
    speech, lens = _batch()["speech"][:1], torch.tensor([1600])
    with torch.no_grad():
        before, _ = model.encode(speech, lens)
        model.tcn.stored[0] += 0.5  # the stored ST embedding is what decoding reads
        after, _ = model.encode(speech, lens)
        model.decode_task = "mt"
        unchanged, _ = model.encode(speech, lens)  # decoding as MT ignores the ST one
        model.tcn.stored[0] -= 0.5
        as_mt, _ = model.encode(speech, lens)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(unchanged, as_mt)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
LOW = ROOT / "egs2/mini_st_low/st1/conf"


@pytest.mark.parametrize("variant", ["explicit", "implicit"])
def test_demo_configs_are_the_mtl_config_plus_the_tcn(variant, tmp_path, monkeypatch):
    import yaml

    ours = yaml.safe_load((LOW / f"train_st_task_aware_{variant}.yaml").read_text())
    base = yaml.safe_load((LOW / "train_st_mtl.yaml").read_text())
    assert ours.pop("model") == "task_aware" and base.pop("model") == "mtl_st"
    assert ours["model_conf"].pop("tcn") == variant
    ours["model_conf"].pop("tcn_conf", None)
    assert ours == base  # same data, objectives, sizes and budget


@pytest.mark.parametrize("path", [ROOT / "conf_templates/st/task_aware.yaml",
                                  LOW / "train_st_task_aware_explicit.yaml",
                                  LOW / "train_st_task_aware_implicit.yaml"],
                         ids=lambda p: p.name)
def test_configs_build_and_count_the_added_parameters(path, tmp_path, monkeypatch):
    d = _write(tmp_path, {})
    (d / "conf.yaml").write_text(path.read_text())
    monkeypatch.setattr(sys, "argv", ["st_train"])
    args = _args(d)
    model = MTLSTTask.build_model(args)
    assert isinstance(model, TaskAwareSTModel)
    added = sum(p.numel() for p in model.tcn.parameters())
    d_model = model.encoder.output_size()
    if model.tcn_name == "explicit":
        assert added == 3 * 2 * d_model
    else:
        assert 0 < added < 1_000_000
    assert "mt_front" in model.film.sites and "encoder.embed" in model.film.sites


def test_one_checkpoint_decodes_st_asr_and_mt_through_the_cli(tmp_path):
    """ST, ASR and MT through our st_inference (--task): one model file."""
    import subprocess

    import numpy as np
    import soundfile

    from dry_run import dry_run

    conf = _conf({"objectives": OBJECTIVES, "tcn": "explicit"}, textual={"output_size": 16})
    conf["model"] = "task_aware"
    d = _write(tmp_path, conf)
    exp = dry_run(d, d / "conf.yaml", d / "tgt.txt", d / "src.txt")
    model, _ = MTLSTTask.build_model_from_file(exp / "config.yaml", None, "cpu")
    assert isinstance(model, TaskAwareSTModel)
    with torch.no_grad():
        model.tcn.ffn.weight.normal_(0, 0.5)
    torch.save(model.state_dict(), exp / "model.pth")
    (d / "src_text").write_text("utt1 x y z\nutt2 w x\n")
    rng = np.random.default_rng(0)
    for uid in ("utt1", "utt2"):
        soundfile.write(d / f"{uid}.wav", rng.standard_normal(3200).astype(np.float32) * 0.1,
                        16000)
    (d / "wav.scp").write_text("".join(f"{u} {d / u}.wav\n" for u in ("utt1", "utt2")))
    common = ["--ngpu", "0", "--beam_size", "2", "--maxlenratio", "0.5"]
    runs = {
        "st": ["espnet_mtl.bin.st_inference", "--data_path_and_name_and_type",
               f"{d}/wav.scp,speech,sound", "--st_train_config", f"{exp}/config.yaml",
               "--st_model_file", f"{exp}/model.pth"],
        # --task: the same entry point and options, another path of the same model
        "asr": ["espnet_mtl.bin.st_inference", "--task", "asr", "--data_path_and_name_and_type",
                f"{d}/wav.scp,speech,sound", "--st_train_config", f"{exp}/config.yaml",
                "--st_model_file", f"{exp}/model.pth", "--ctc_weight", "0.3"],
        "mt": ["espnet_mtl.bin.st_inference", "--task=mt", "--data_path_and_name_and_type",
               f"{d}/src_text,src_text,text", "--st_train_config", f"{exp}/config.yaml",
               "--st_model_file", f"{exp}/model.pth"],
    }
    for task, cmd in runs.items():
        out = tmp_path / f"out_{task}"
        r = subprocess.run([sys.executable, "-m", *cmd, "--output_dir", str(out), *common],
                           capture_output=True, text=True)
        assert r.returncode == 0, (task, r.stderr[-3000:])
        lines = (out / "1best_recog" / "token").read_text().splitlines()
        assert [line.split(maxsplit=1)[0] for line in lines] == ["utt1", "utt2"], task
    # the same from Python, the model loaded from its experiment dir (issue 19)
    from espnet_mtl.inference.pretrained import load_pretrained

    decode = dict(beam_size=2, maxlenratio=0.5)
    first = {task: (tmp_path / f"out_{task}" / "1best_recog" / "token").read_text()
             .splitlines()[0].split()[1:] for task in runs}
    speech = soundfile.read(d / "utt1.wav", dtype="float32")[0]
    assert load_pretrained(exp, model_file="model.pth", **decode)(speech)[0][1] == first["st"]
    asr = load_pretrained(exp, task="asr", model_file="model.pth", ctc_weight=0.3, **decode)
    assert asr(speech)[0][1] == first["asr"]
    mt = load_pretrained(exp, task="mt", model_file="model.pth", **decode)
    assert mt("x y z")[0][1] == first["mt"]  # utt1 of src_text, tokenised as in training


def test_task_embedding_plot(tmp_path, monkeypatch):
    """plot_task_embeddings: every example of every data set as each task it can be."""
    import numpy as np
    import soundfile
    import yaml

    from dry_run import dry_run
    from espnet_mtl.bin import plot_task_embeddings

    conf = _conf({"objectives": OBJECTIVES, "tcn": "implicit",
                  "tcn_conf": {"hidden": 16, "heads": 2, "ffn": 32}},
                 textual={"output_size": 16})
    conf["model"] = "task_aware"
    d = _write(tmp_path, conf)
    exp = dry_run(d, d / "conf.yaml", d / "tgt.txt", d / "src.txt")
    config = yaml.safe_load((exp / "config.yaml").read_text())
    config["train_data_path_and_name_and_type"].append([f"{d}/src_text", "src_text", "text"])
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    model, _ = MTLSTTask.build_model_from_file(exp / "config.yaml", None, "cpu")
    torch.nn.init.normal_(model.tcn.ffn[-1].weight)
    torch.save(model.state_dict(), exp / "model.pth")
    rng = np.random.default_rng(0)
    sets = []
    for name in ("dev", "test"):
        data = tmp_path / name
        data.mkdir()
        for uid in ("u1", "u2", "u3"):
            soundfile.write(data / f"{uid}.wav",
                            rng.standard_normal(3200).astype(np.float32) * 0.1, 16000)
        (data / "wav.scp").write_text("".join(f"{u} {data / u}.wav\n" for u in ("u1", "u2", "u3")))
        (data / "text").write_text("u1 abc\nu2 ba\nu3 cab\n")
        (data / "src_text").write_text("u1 xyz\nu2 wx\nu3 zz\n")
        sets.append(data)
    tcn, points = plot_task_embeddings.embed(exp, exp / "model.pth", sets, max_per_set=2)
    assert tcn == "implicit"
    assert sorted((s, t) for s, t, _ in points) == sorted(
        (s, t) for s in ("dev", "test") for t in ("st", "asr", "mt") for _ in range(2))
    png = plot_task_embeddings.plot(points, tmp_path / "te.png", "test")
    assert png.stat().st_size > 5000
    monkeypatch.setattr(sys, "argv", ["x"])
    with pytest.raises(SystemExit, match="missing"):
        plot_task_embeddings.embed(exp, exp / "model.pth", [tmp_path / "nowhere"], 2)


def test_task_option_errors():
    from espnet_mtl.bin import st_inference

    with pytest.raises(SystemExit, match="choose one of st, asr, mt"):
        st_inference.main(["--task", "tts"])
    with pytest.raises(SystemExit, match="needs a value"):
        st_inference.main(["--task"])
    assert st_inference._pop_task(["--a", "1", "--task=mt", "--b"]) == ("mt", ["--a", "1", "--b"])
