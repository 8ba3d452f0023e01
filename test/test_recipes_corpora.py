"""Each corpus recipe's stages 1-5 through its own run.sh on a fabricated corpus.

A private copy of egs2/<corpus>/st1 (espnet_mtl.recipes.copy_recipe) reads a
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
from espnet_mtl.datadir import validate_data_dir
from espnet_mtl.fileio import read_table
from espnet_mtl.recipes import ROOT, copy_recipe

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
        frames = {rec: sf.info(p).duration for rec, p in wavs.items()}
        for utt, value in read_table(path / "segments").items():
            rec, start, end = value.split()
            assert 0 <= float(start) < float(end) <= frames[rec] + 1e-6, (utt, value)
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
    r = run(recipe, "--stage", "1", "--stop_stage", "1", "--tgt_lang", "ja",
            env={"MUST_C": str(tmp_path)}, check=False)
    assert r.returncode != 0 and "MuST-C v1 has no en-ja pair" in r.stderr
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
