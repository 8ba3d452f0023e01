"""The demo recipe end to end through the real driver, ESPnet and sacreBLEU.

One small run (a 160-utterance corpus, 2 epochs) in a private copy of
egs2/mini_st/st1, shared by the tests of this module:
- stage 3 killed midway, then rerun: the same files as an uninterrupted run,
  and stage 4 refuses the incomplete output in between;
- stage 11 killed after its first epoch, then rerun: training resumes;
- stages 4-13: every expected file, and result.json parses; a failed
  rescoring leaves no stale result.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from espnet_mtl.runner.recipes import copy_recipe

SMALL = ["--local_data_opts", "--tgt_lang de --n_train 160 --n_dev 16 --n_test 16",
         "--src_nbpe", "80", "--tgt_nbpe", "80", "--st_tag", "small",
         "--st_args", "--max_epoch 2 --keep_nbest_models 2"]
DUMP = Path("dump/raw")


def run(recipe, *args, check=True):
    r = subprocess.run(["./run.sh", *SMALL, *args], cwd=recipe, capture_output=True, text=True)
    if check:
        assert r.returncode == 0, f"run.sh {args} failed:\n{r.stderr[-4000:]}"
    return r


def start(recipe, *args):
    return subprocess.Popen(["./run.sh", *SMALL, *args], cwd=recipe, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def kill_when(proc, condition, timeout=300):
    """Kill the stage as soon as `condition()` holds, as Ctrl-C or scancel would:
    SIGTERM to the driver's process group; the job runner then kills its tasks."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "the stage finished before it could be killed"
        assert time.time() < deadline, "timed out waiting for the stage to get going"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
    while True:  # until the job runner has reaped its tasks and exited
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline + 30, "the killed stage's processes did not exit"
        time.sleep(0.05)


def snapshot(root: Path) -> dict[str, str]:
    """Content hash of every file except logs, marks and locks (they hold timestamps, pids)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "logs" not in p.parts
            and p.name != ".done" and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    recipe = copy_recipe("mini_st", tmp_path_factory.mktemp("mini_st"))
    run(recipe, "--stage", "1", "--stop_stage", "3")
    return recipe


def test_stage3_killed_midway_then_rerun_gives_the_same_result(recipe):
    before = snapshot(recipe / DUMP)
    assert any(k.endswith(".flac") for k in before)
    proc = start(recipe, "--stage", "3", "--stop_stage", "3")
    train_dump = recipe / DUMP / "org" / "train.en-de"
    # The rerun first removes the old output (and its .done), then cuts anew.
    kill_when(proc, lambda: not (train_dump / ".done").exists()
              and any(train_dump.glob("format.*/data/*.flac")))
    assert not (train_dump / ".done").exists()

    r = run(recipe, "--stage", "4", "--stop_stage", "4", check=False)
    assert r.returncode != 0
    assert "incomplete (no " in r.stderr and "train.en-de/.done" in r.stderr

    run(recipe, "--stage", "3", "--stop_stage", "3")
    assert snapshot(recipe / DUMP) == before


def test_stages_4_to_13_with_a_killed_and_resumed_training(recipe):
    run(recipe, "--stage", "4", "--stop_stage", "10")
    exp = recipe / "exp" / "st_small"
    proc = start(recipe, "--stage", "11", "--stop_stage", "11")
    kill_when(proc, lambda: (exp / "1epoch.pth").exists())
    assert not (exp / ".done").exists()
    run(recipe, "--stage", "11", "--stop_stage", "13")
    assert "resumed" in (exp / "train.log").read_text()
    assert "espnet_mtl.bin.st_train" in (exp / "train.1.log").read_text()  # the killed run's log
    rerun = (exp / "run.sh").read_text()  # ESPnet's: rerun the experiment from stage 11
    assert "st.sh" in rerun and rerun.rstrip().endswith('--stage 11 "$@"')

    # Every stage's outputs.
    for d in ("train.en-de", "dev.en-de", "tst-COMMON.en-de"):
        assert (recipe / "data" / d / ".done").exists()
        assert (recipe / DUMP / d / ".done").exists()
    tokens = recipe / "data" / "en_de_token_list"
    for side in ("src", "tgt"):
        assert (tokens / f"{side}_bpe_unigram80" / "bpe.model").exists()
        assert (tokens / f"{side}_bpe_unigram80" / "tokens.txt").exists()
    stats = recipe / "exp" / "st_stats_raw_en_de_bpe80"
    assert (stats / "train" / "feats_stats.npz").exists()
    assert (stats / "train" / "text_shape.bpe").read_text().split("\n")[0].count(",") == 1
    for name in ("config.yaml", "valid.acc.ave.pth", "2epoch.pth", "train.log",
                 "images/acc.png", "images/loss.png"):  # curves drawn once, at the end
        assert (exp / name).exists(), name
    decode_dirs = list(exp.glob("decode_st_st_model_valid.acc.ave/tst-COMMON.en-de"))
    assert decode_dirs, sorted(p.name for p in exp.iterdir())
    hyps = (decode_dirs[0] / "text").read_text().splitlines()
    assert len(hyps) == 16
    result = json.loads((decode_dirs[0] / "score_bleu" / "result.json").read_text())
    assert 0 <= result["bleu"] <= 100 and result["num_sentences"] == 16
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert "tst-COMMON.en-de" in (exp / "RESULTS.md").read_text()

    # A failed rescoring leaves no stale score that looks current.
    text = decode_dirs[0] / "text"
    text.write_text("".join(text.read_text().splitlines(keepends=True)[1:]))  # a hypothesis lost
    r = run(recipe, "--stage", "13", "--stop_stage", "13", check=False)
    assert r.returncode != 0 and "no hypothesis for 1 of 16 reference utterances" in r.stderr
    assert not (decode_dirs[0] / "score_bleu" / "result.json").exists()
    rows = [line for line in (exp / "RESULTS.md").read_text().splitlines() if line.startswith("| ")]
    assert not any("tst-COMMON.en-de" in row for row in rows)


def test_training_is_deterministic_killed_and_resumed_or_not(recipe):
    # Reuses the previous test's experiment (killed after epoch 1, then
    # resumed; its first hypothesis since removed): an uninterrupted rerun of
    # stages 11-13 gives the same weights and hypotheses, hence the same BLEU.
    run(recipe, "--stage", "11", "--stop_stage", "13", "--st_tag", "small_again")
    exps = [recipe / "exp" / f"st_{tag}" for tag in ("small", "small_again")]
    first, again = (torch.load(e / "valid.acc.ave.pth", map_location="cpu") for e in exps)
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    kept, rerun = ((next(e.glob("*/tst-COMMON.en-de")) / "text").read_text().splitlines()
                   for e in exps)
    assert len(rerun) == 16 and kept == rerun[1:]


def test_baseline_model_loads_anywhere(recipe, monkeypatch, tmp_path):
    """ESPnet's own ST model (the baseline choice) through `load_pretrained`, from
    another directory: stage 12's hypotheses."""
    from espnet_mtl.inference.pretrained import load_pretrained

    exp = recipe / "exp" / "st_small_again"
    stage12 = dict(line.split(maxsplit=1) if " " in line else (line, "")
                   for line in (next(exp.glob("*/tst-COMMON.en-de")) / "text").read_text()
                   .splitlines())
    monkeypatch.chdir(tmp_path)
    s2t = load_pretrained(exp, beam_size=5, ctc_weight=0.0, lm_weight=0.0, penalty=0.0)
    assert type(s2t.st_model).__name__ == "ESPnetSTModel"
    for utt, speech in _first_test_utterances(recipe):
        assert (s2t(speech)[0][0] or "") == stage12[utt], utt


def test_mtl_st_with_mt_and_asr_path_decoding(recipe):
    # Reuses the stage 1-10 outputs of the previous test.
    run(recipe, "--stage", "11", "--stop_stage", "13", "--st_config", "conf/train_st_mtl.yaml",
        "--st_tag", "mtl", "--st_args", "--max_epoch 1 --keep_nbest_models 1",
        "--extra_decode_paths", "mt asr")
    exp = recipe / "exp" / "st_mtl"
    assert "model: mtl_st" in (exp / "config.yaml").read_text()
    log = (exp / "train.log").read_text()
    for key in ("loss_mt=", "loss_cr=", "loss_rd=", "loss_asr_ctc="):
        assert key in log, key  # every loss term in the training stats
    test = next(exp.glob("*/tst-COMMON.en-de"))
    for path in ("mt_path", "asr_path"):
        assert len((test / path / "text").read_text().splitlines()) == 16, path
    mt = json.loads((test / "mt_path" / "score_bleu" / "result.json").read_text())
    asr = json.loads((test / "asr_path" / "score_wer" / "result.json").read_text())
    assert mt["num_sentences"] == 16 and 0 <= mt["bleu"] <= 100
    assert asr["num_sentences"] == 16 and asr["wer"] >= 0
    results = (exp / "RESULTS.md").read_text()
    assert "(MT path: transcript in)" in results and "| WER | CER |" in results
    r = run(recipe, "--stage", "12", "--stop_stage", "12", "--st_tag", "mtl",
            "--extra_decode_paths", "mt lm", check=False)
    assert r.returncode != 0 and "'lm' is not one of mt, asr" in r.stderr
    # batched decoding of the three paths writes what one utterance at a time wrote
    run(recipe, "--stage", "12", "--stop_stage", "12", "--st_tag", "mtl", "--batch_size", "4",
        "--inference_tag", "batched", "--extra_decode_paths", "mt asr")
    batched = exp / "batched" / "tst-COMMON.en-de"
    for path in ("", "mt_path", "asr_path"):
        assert (batched / path / "text").read_text() == (test / path / "text").read_text(), path


def test_speed_perturbation_fbank_and_joint_tokens_through_decoding(recipe):
    run(recipe, "--stage", "2", "--dumpdir", "dump_fbank", "--expdir", "exp_fbank",
        "--feats_type", "fbank", "--speed_perturb_factors", "0.9 1.0 1.1", "--st_tag", "fbank",
        "--token_joint", "true", "--st_args", "--max_epoch 1 --keep_nbest_models 1")
    joint = recipe / "data" / "en_de_token_list" / "bpe_unigram80" / "tokens.txt"
    assert "ü" in joint.read_text() or "ß" in joint.read_text()  # German pieces in the joint list
    train = recipe / "dump_fbank" / "fbank" / "train.en-de_sp"
    utts = (train / "feats.scp").read_text().splitlines()
    assert len(utts) == 3 * 160
    assert any(u.startswith("sp0.9-") for u in utts) and any(u.startswith("sp1.1-") for u in utts)
    assert (train / "feats_type").read_text().strip() == "fbank"
    exp = recipe / "exp_fbank" / "st_fbank"
    config = (exp / "config.yaml").read_text()
    assert "input_size: 80" in config and "bpe_unigram80/tokens.txt" not in config  # lists inlined
    assert config.count("bpe_unigram80/bpe.model") == 2  # one joint model on both sides
    results = list(exp.glob("*/tst-COMMON.en-de/score_bleu/result.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["num_sentences"] == 16


def _first_test_utterances(recipe, n=3):
    """(utt, waveform) of the first test utterances, as stage 12 read them."""
    import soundfile

    scp = (recipe / DUMP / "tst-COMMON.en-de" / "wav.scp").read_text().splitlines()[:n]
    out = []
    for line in scp:
        utt, path = line.split(maxsplit=1)
        out.append((utt, soundfile.read(recipe / path if not path.startswith("/") else path,
                                        dtype="float32")[0]))
    return out


def test_pack_upload_and_load_the_model_anywhere(recipe, tmp_path, monkeypatch):
    """Stages 14-15 (to a local folder), then the packed model loads in another directory
    and decodes the test utterances exactly as stage 12 did."""
    import shutil

    from espnet_mtl.inference.pretrained import load_pretrained

    # Reuses the mtl_st experiment of the previous test.
    exp = recipe / "exp" / "st_mtl"
    hub = tmp_path / "hub"
    run(recipe, "--stage", "14", "--stop_stage", "15", "--st_tag", "mtl",
        "--skip_upload_hf", "false", "--hf_repo", "me/mtl-demo", "--hf_local_dir", str(hub))
    packed = exp / "st_mtl_valid.acc.ave.zip"
    card = (hub / "README.md").read_text()
    assert "model: mtl_st" in card and "Regularization Horizon" in card
    assert "tst-COMMON.en-de" in card and "me/mtl-demo" in card
    assert "espnet_mtl git hash" in (exp / "RESULTS.md").read_text()
    r = run(recipe, "--stage", "15", "--stop_stage", "15", "--st_tag", "mtl",
            "--skip_upload_hf", "false", check=False)
    assert r.returncode == 2 and "stage 15 needs --hf_repo" in r.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(packed, elsewhere / "model.zip")
    monkeypatch.chdir(elsewhere)  # nothing of the recipe is reachable by relative paths
    stage12 = dict(line.split(maxsplit=1) if " " in line else (line, "")
                   for line in (next(exp.glob("*/tst-COMMON.en-de")) / "text").read_text()
                   .splitlines())
    decode = dict(beam_size=5, ctc_weight=0.0, lm_weight=0.0, penalty=0.0, maxlenratio=0.0,
                  minlenratio=0.0)
    for where in (elsewhere / "model.zip", hub, exp):  # the zip, the repository, the exp dir
        s2t = load_pretrained(where, **decode)
        for utt, speech in _first_test_utterances(recipe):
            assert (s2t(speech)[0][0] or "") == stage12[utt], (where, utt)
    # the other paths of the multi-task model, from the same zip
    asr = load_pretrained(elsewhere / "model.zip", task="asr")
    assert isinstance(asr(_first_test_utterances(recipe, 1)[0][1])[0][0], str)
    mt = load_pretrained(elsewhere / "model.zip", task="mt")
    assert isinstance(mt("hello world")[0][0], str)


def test_translate_cli_reads_any_rate_channels_and_format(recipe, tmp_path):
    import numpy as np
    import soundfile

    from espnet_mtl.prep.audio_dump import _resample

    exp = recipe / "exp" / "st_mtl"
    (utt, speech), = _first_test_utterances(recipe, 1)
    wav8k = tmp_path / "a.wav"
    soundfile.write(wav8k, _resample(speech, 16000, 8000), 8000)
    stereo = _resample(speech, 16000, 44100)
    mp3 = tmp_path / "b.mp3"
    soundfile.write(mp3, np.stack([stereo, stereo], axis=1), 44100, format="MP3")
    bad = tmp_path / "c.wav"
    bad.write_bytes(b"not audio at all")
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.translate", "--model", str(exp),
                        str(wav8k), str(mp3), str(bad), "--json"], capture_output=True, text=True)
    assert r.returncode == 1  # the unreadable file
    assert f"input {bad} ({bad}): cannot read audio" in r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["file"] for row in rows] == [str(wav8k), str(mp3)]
    assert all(isinstance(row["text"], str) and row["task"] == "st" for row in rows)
