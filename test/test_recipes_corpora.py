"""Each corpus recipe's stages 1-5 through its own run.sh on a fabricated corpus.

A private copy of egs2/<corpus>/st1 (espnet_mtl.runner.recipes.copy_recipe) reads a
tiny corpus written in the real layout (test/corpus_fixtures.py), found
through the db.sh variable a researcher would set. Checked: the data dirs
(validated: sorted, the same ids in every file, segments inside their
audio), the trap counts, the dumped audio and the token lists; and the
errors for a missing corpus root or a pair the release does not have.
"""

import os
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

import corpus_fixtures as fx
from espnet_mtl.prep.audio_dump import load_recording
from espnet_mtl.prep.datadir import validate_data_dir
from espnet_mtl.fileio import read_table
from espnet_mtl.runner.recipes import ROOT, copy_recipe

SMALL = ["--nj", "2", "--src_nbpe", "60", "--tgt_nbpe", "60"]


def run(recipe, *args, env=None, check=True):
    r = subprocess.run(["./run.sh", *SMALL, *args], cwd=recipe, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if check:
        assert r.returncode == 0, f"run.sh {args} failed:\n{r.stderr[-5000:]}"
    return r


def check_data_dir(path: Path, n_utts: int | None = None):
    """Validated, and every segment lies inside its recording."""
    counts = validate_data_dir(path)
    if n_utts is not None:
        assert counts["utterances"] == n_utts, (path, counts)
    if (path / "segments").exists():
        wavs = read_table(path / "wav.scp")
        frames = {rec: load_recording(p, 16000).size / 16000 for rec, p in wavs.items()}
        for utt, value in read_table(path / "segments").items():
            rec, start, end = value.split()
            assert 0 <= float(start) < float(end) <= frames[rec] + 1e-3, (utt, value)
    ids = list(read_table(path / "utt2spk"))
    for name in path.iterdir():
        if name.name.startswith("text"):
            assert list(read_table(name)) == ids, name


def check_stages_2_to_5(recipe: Path, train: str, tests: list[str], sp: bool = True):
    dump = recipe / "dump" / "raw"
    train_dump = dump / (f"{train}_sp" if sp else train)
    assert (train_dump / ".done").exists()
    if sp:  # speed perturbation 0.9/1.0/1.1: three copies (minus filtered ones)
        n_org = len(read_table(recipe / "data" / train / "utt2spk"))
        n_sp = len(read_table(train_dump / "utt2spk"))
        assert 2 * n_org < n_sp <= 3 * n_org
    for t in tests:
        wavs = read_table(dump / t / "wav.scp")
        assert wavs and all(sf.info(p).samplerate == 16000 and sf.info(p).channels == 1
                            for p in list(wavs.values())[:3])
    tokens = next((recipe / "data").glob("*_token_list"))
    for side in ("src", "tgt"):
        assert (tokens / f"{side}_bpe_unigram60" / "bpe.model").exists()
    return dump


def test_must_c_v1_stages_1_to_5(tmp_path):
    kept = fx.make_must_c(tmp_path / "MUSTC_v1.0", "de")
    recipe = copy_recipe("must_c", tmp_path / "work")
    r = run(recipe, "--stage", "1", "--stop_stage", "5",
            env={"MUST_C": str(tmp_path / "MUSTC_v1.0")})
    # The traps: duplicate, too short, empty translation dropped and counted.
    assert "kept 25 of 28 entries; dropped: empty_transcript=0, empty_translation=1, " \
           "too_short=1, duplicate=1" in r.stderr
    for split in ("train", "dev", "tst-COMMON", "tst-HE"):
        check_data_dir(recipe / "data" / f"{split}.en-de", kept[split])
    data = recipe / "data" / "train.en-de"
    ids = list(read_table(data / "utt2spk"))
    assert ids[0] == "ted_00101_0000500_" + ids[0].split("_")[-1]
    # ESPnet's files and casings; numeric, not string, order of offsets.
    for name in ("text.tc.en", "text.lc.en", "text.lc.rm.en", "text.tc.de", "text.lc.de",
                 "text.lc.rm.de", "text", "segments", "wav.scp", "utt2spk", "spk2utt"):
        assert (data / name).exists(), name
    starts = [int(u.split("_")[2]) for u in ids if u.startswith("ted_00101")]
    assert starts == sorted(starts) and 9400 in starts
    rm = read_table(data / "text.lc.rm.en")
    assert all(v == v.lower() and "." not in v for v in rm.values())
    check_stages_2_to_5(recipe, "train.en-de", ["tst-COMMON.en-de", "tst-HE.en-de"])


def test_must_c_v2_stages_1_to_5(tmp_path):
    kept = fx.make_must_c(tmp_path / "MUSTC_v2.0", "de", "v2", talks=2)
    recipe = copy_recipe("must_c_v2", tmp_path / "work")
    run(recipe, "--stage", "1", "--stop_stage", "5", "--speed_perturb_factors", "",
        env={"MUST_C_V2": str(tmp_path / "MUSTC_v2.0")})
    for split in ("train", "dev", "tst-COMMON", "tst-HE"):
        check_data_dir(recipe / "data" / f"{split}.en-de", kept[split])
    check_stages_2_to_5(recipe, "train.en-de", ["tst-COMMON.en-de"], sp=False)


def test_must_c_missing_root_and_wrong_pair(tmp_path):
    recipe = copy_recipe("must_c", tmp_path / "work")
    r = run(recipe, "--stage", "1", "--stop_stage", "1", env={"MUST_C": ""}, check=False)
    assert r.returncode != 0 and "MUST_C is not set" in r.stderr and "db.sh" in r.stderr
    # A language no MuST-C release has: refused by run.sh before any stage runs.
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--tgt_lang", "ja",
            env={"MUST_C": str(tmp_path)}, check=False)
    assert r.returncode == 2 and "--tgt_lang takes one of de|es|fr|it|nl|pt|ro|ru" in r.stderr
    # One of v1.2 only: refused by the reader, which knows each release's pairs.
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--tgt_lang", "zh",
            env={"MUST_C": str(tmp_path)}, check=False)
    assert r.returncode != 0 and "MuST-C v1 has no en-zh pair" in r.stderr
    assert "en-de, en-es" in r.stderr
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--tgt_lang", "es",
            env={"MUST_C": str(tmp_path / "nowhere")}, check=False)
    assert r.returncode != 0 and f"expected a directory at {tmp_path / 'nowhere'}" in r.stderr
    assert not (recipe / "data" / "train.en-es").exists()


def test_covost2_stages_1_to_5(tmp_path):
    kept = fx.make_covost2(tmp_path / "cv4", "fr", "en")
    recipe = copy_recipe("covost2", tmp_path / "work")
    r = run(recipe, "--stage", "1", "--stop_stage", "5", "--speed_perturb_factors", "",
            env={"COVOST2": str(tmp_path / "cv4")})
    assert "remove_translation=1" in r.stderr and "empty_translation=1" in r.stderr
    for split in ("train", "dev", "test"):
        check_data_dir(recipe / "data" / f"{split}.fr-en", kept[split])
    train = recipe / "data" / "train.fr-en"
    assert not (train / "segments").exists()  # one clip = one utterance
    assert "NA" in read_table(train / "text.tc.fr").values()  # read literally
    assert any(v.startswith('"Bonjour"') for v in read_table(train / "text.tc.fr").values())
    dump = check_stages_2_to_5(recipe, "train.fr-en", ["test.fr-en"], sp=False)
    n = read_table(dump / "test.fr-en" / "utt2num_samples")
    assert all(0.5 * 16000 < int(v) < 1.3 * 16000 for v in n.values())  # 48 kHz mp3 -> 16 kHz


def test_covost2_unknown_direction(tmp_path):
    recipe = copy_recipe("covost2", tmp_path / "work")
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--src_lang", "fr", "--tgt_lang", "de",
            env={"COVOST2": str(tmp_path)}, check=False)
    assert r.returncode != 0 and "fr-de" in r.stderr


def test_recipes_share_the_driver_and_corpus_paths():
    for corpus in ("mini_st", "must_c", "must_c_v2", "covost2", "europarl_st"):
        d = ROOT / "egs2" / corpus / "st1"
        for name in ("st.sh", "db.sh", "cmd.sh", "path.sh"):
            assert (d / name).resolve() == (ROOT / "egs2" / "TEMPLATE" / "st1" / name).resolve()
        for name in ("run.sh", "local/data.sh"):
            assert os.access(d / name, os.X_OK), (corpus, name)
        if corpus != "mini_st":
            assert (d / "RESULTS.md").exists() and "Published reference numbers" in \
                (d / "RESULTS.md").read_text()


def test_must_c_with_auxiliary_asr_and_mt_data_trains_mixed_batches(tmp_path):
    """LibriSpeech + TED-LIUM 3 (ASR-only) and a bitext (MT-only) through stages 1-11."""
    fx.make_must_c(tmp_path / "MUSTC_v1.0", "de", talks=2)
    n_libri = fx.make_librispeech(tmp_path / "libri")
    n_ted = fx.make_tedlium3(tmp_path / "ted")
    n_mt = fx.make_bitext(tmp_path / "wmt" / "news", "en", "de")
    recipe = copy_recipe("must_c", tmp_path / "work")
    config = ROOT / "egs2" / "mini_st" / "st1" / "conf" / "train_st_mtl.yaml"
    env = {"MUST_C": str(tmp_path / "MUSTC_v1.0"), "LIBRISPEECH": str(tmp_path / "libri" / "LibriSpeech"),
           "TEDLIUM3": str(tmp_path / "ted" / "TEDLIUM_release-3")}
    run(recipe, "--stage", "1", "--stop_stage", "11", "--ngpu", "0", "--speed_perturb_factors", "",
        "--aux_asr_sets", "librispeech:train-clean-5 tedlium3:train",
        "--aux_mt_sets", f"bitext:{tmp_path / 'wmt' / 'news'}", "--aux_ratio", "st=2,asr=1,mt=1",
        "--st_config", str(config), "--st_tag", "aux",
        "--st_args", "--max_epoch 1 --batch_size 8 --keep_nbest_models 1 --num_workers 0", env=env)

    asr, mt = recipe / "data" / "aux_asr", recipe / "data" / "aux_mt"
    assert len(read_table(asr / "utt2spk")) == n_libri + n_ted
    assert (asr / "segments").exists()  # TED-LIUM segments + identity segments of LibriSpeech clips
    assert len(read_table(mt / "text.tc.de")) == n_mt
    stats = recipe / "exp" / "st_stats_raw_en_de_bpe60"
    speech = read_table(stats / "aux_asr" / "speech_shape")
    assert len(speech) == n_libri + n_ted and all(int(v) > 1000 for v in speech.values())
    vocab = sum(1 for _ in open(next((recipe / "data").glob("*_token_list")) / "tgt_bpe_unigram60"
                                / "tokens.txt"))
    assert all(v.endswith(f",{vocab}") for v in read_table(stats / "aux_mt" / "text_shape.bpe").values())
    log = (recipe / "exp" / "st_aux" / "train.log").read_text()
    assert "mixed-source batches (ratio, ratio {'st': 2, 'asr': 1, 'mt': 1})" in log
    for key in ("loss_mt=", "loss_asr_ctc=", "loss_st="):
        assert key in log, key


def test_aux_data_bad_spec_is_refused_before_anything_runs(tmp_path):
    fx.make_must_c(tmp_path / "MUSTC_v1.0", "de", talks=1, segments_per_talk=3)
    recipe = copy_recipe("must_c", tmp_path / "work")
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--aux_asr_sets", "commonvoice:fr",
            env={"MUST_C": str(tmp_path / "MUSTC_v1.0")}, check=False)
    assert r.returncode != 0 and "'commonvoice:fr' is not <corpus>:<argument>" in r.stderr
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--aux_asr_sets", "librispeech:train-clean-5",
            env={"MUST_C": str(tmp_path / "MUSTC_v1.0"), "LIBRISPEECH": ""}, check=False)
    assert r.returncode != 0 and "LIBRISPEECH is not set" in r.stderr


def test_europarl_st_stages_1_to_5(tmp_path):
    kept = fx.make_europarl_st(tmp_path / "europarl-st", "en", "de")
    recipe = copy_recipe("europarl_st", tmp_path / "work")
    r = run(recipe, "--stage", "1", "--stop_stage", "5", "--speed_perturb_factors", "",
            env={"EUROPARL_ST": str(tmp_path / "europarl-st")})
    assert "empty_translation=1" in r.stderr and "duplicate=1" in r.stderr
    assert sorted(p.name for p in (recipe / "data").iterdir() if "." in p.name
                  and not p.name.startswith(".")) == ["dev.en-de", "test.en-de", "train.en-de"]
    for split in ("dev", "test"):
        check_data_dir(recipe / "data" / f"{split}.en-de", kept[split])
    # The segment 0.4 s past its audio end: kept in data/, dropped at stage 3
    # (past the 0.1 s tolerance) and named in the stage's console summary.
    assert validate_data_dir(recipe / "data" / "train.en-de")["utterances"] == kept["train"]
    dump = check_stages_2_to_5(recipe, "train.en-de", ["test.en-de"], sp=False)
    assert "train.en-de: 1 segment(s) dropped (end more than 0.1 s past their audio" in r.stderr
    assert "0.400 s past the end of recording" in r.stderr
    assert len(read_table(dump / "org" / "train.en-de" / "utt2spk")) == kept["train"] - 1


def test_europarl_st_with_train_noisy(tmp_path):
    kept = fx.make_europarl_st(tmp_path / "europarl-st", "en", "de", segments=3)
    recipe = copy_recipe("europarl_st", tmp_path / "work")
    run(recipe, "--stage", "1", "--stop_stage", "1", "--train_noisy", "true",
        env={"EUROPARL_ST": str(tmp_path / "europarl-st")})
    both = validate_data_dir(recipe / "data" / "train_with_noisy.en-de")["utterances"]
    assert both == kept["train"] + kept["train-noisy"]
