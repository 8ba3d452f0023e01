"""espnet_mtl.prep.aux_data: stage 1 through the corpus readers (roots as arguments),
and the stage 10/11 CLI that gives st.sh the auxiliary sets' shape files and
training options."""

import subprocess
import sys

import pytest

import corpus_fixtures as fx
from espnet_mtl.prep import aux_data
from espnet_mtl.bin import aux_data as aux_cli
from espnet_mtl.fileio import read_table

LAYOUT = ["--data_feats", "dump/raw", "--stats_dir", "exp/st_stats_raw_en_de_bpe60",
          "--src_text_name", "text.lc.rm.en", "--tgt_text_name", "text.tc.de",
          "--src_token_type", "bpe", "--tgt_token_type", "bpe"]
STATS = "exp/st_stats_raw_en_de_bpe60"


def train_args(tmp_path, monkeypatch, *args):
    """The CLI's stdout, run in tmp_path (where the stats dirs are made)."""
    monkeypatch.chdir(tmp_path)
    return subprocess.run([sys.executable, "-m", "espnet_mtl.bin.aux_data", "train_args",
                           *LAYOUT, *args], capture_output=True, text=True)


def test_train_args_are_the_flags_st_sh_used_to_build(tmp_path, monkeypatch):
    for kind in ("asr", "mt"):
        (tmp_path / STATS / f"aux_{kind}").mkdir(parents=True)
    r = train_args(tmp_path, monkeypatch, "--kinds", " asr mt", "--speech_scp", "wav.scp",
                   "--speech_type", "sound", "--mixing", "ratio", "--ratio=st=2,asr=1,mt=1")
    assert r.returncode == 0, r.stderr
    # What stage 11 passed before this CLI existed, flag for flag.
    assert r.stdout.split("\n") == [
        "--train_asr_data_path_and_name_and_type", "dump/raw/aux_asr/wav.scp,speech,sound",
        "--train_asr_data_path_and_name_and_type", "dump/raw/aux_asr/text.lc.rm.en,src_text,text",
        "--train_asr_shape_file", f"{STATS}/aux_asr/speech_shape",
        "--train_asr_shape_file", f"{STATS}/aux_asr/src_text_shape.bpe",
        "--train_mt_data_path_and_name_and_type", "dump/raw/aux_mt/text.lc.rm.en,src_text,text",
        "--train_mt_data_path_and_name_and_type", "dump/raw/aux_mt/text.tc.de,text,text",
        "--train_mt_shape_file", f"{STATS}/aux_mt/src_text_shape.bpe",
        "--train_mt_shape_file", f"{STATS}/aux_mt/text_shape.bpe",
        "--mixed_source_mode", "ratio", "--mixed_source_ratio", "st=2,asr=1,mt=1", ""]


def test_train_args_fbank_mt_only_round_robin_no_ratio(tmp_path, monkeypatch):
    (tmp_path / STATS / "aux_asr").mkdir(parents=True)
    r = train_args(tmp_path, monkeypatch, "--kinds", "asr", "--speech_scp", "feats.scp",
                   "--speech_type", "kaldi_ark", "--mixing", "round_robin", "--ratio=")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "dump/raw/aux_asr/feats.scp,speech,kaldi_ark"
    assert lines[-2:] == ["--mixed_source_mode", "round_robin"] and len(lines) == 10


def test_train_args_refuses_missing_shapes_and_bad_kinds(tmp_path, monkeypatch):
    (tmp_path / STATS / "aux_asr").mkdir(parents=True)
    r = train_args(tmp_path, monkeypatch, "--kinds", "asr mt")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"aux_data: error: no {STATS}/aux_mt: rerun stages 1-10 with "
                        f"--aux_mt_sets\n")
    r = train_args(tmp_path, monkeypatch, "--kinds", "asr lm")
    assert r.returncode == 1 and "--kinds: expected asr and/or mt once each, got 'asr lm'" in r.stderr
    assert aux_data.train_args(aux_data.DriverLayout("d", "s", "a", "b"), []) == []


def test_train_args_refuses_a_value_with_a_newline(tmp_path, monkeypatch, capsys):
    (tmp_path / "s" / "aux_mt").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    rc = aux_cli.main(["train_args", "--kinds", "mt", "--data_feats", "d", "--stats_dir", "s",
                       "--src_text_name", "a", "--tgt_text_name", "b", "--ratio", "st=1\nmt=1"])
    assert rc == 1 and "holds a newline" in capsys.readouterr().err


def test_prepare_reads_corpora_from_roots_given_as_arguments(tmp_path, monkeypatch):
    n_libri = fx.make_librispeech(tmp_path / "libri")
    n_ted = fx.make_tedlium3(tmp_path / "ted")
    monkeypatch.delenv("LIBRISPEECH", raising=False)
    monkeypatch.delenv("TEDLIUM3", raising=False)
    roots = {"librispeech": str(tmp_path / "libri" / "LibriSpeech"),
             "tedlium3": str(tmp_path / "ted" / "TEDLIUM_release-3")}
    out = aux_data.prepare("asr", ["librispeech:train-clean-5", "tedlium3:train"],
                           tmp_path / "data", "en", "de", roots=roots)
    assert out == tmp_path / "data" / "aux_asr"
    assert len(read_table(out / "utt2spk")) == n_libri + n_ted
    assert (tmp_path / "data" / "aux_asr.1" / "spk2gender").exists()  # from SPEAKERS.TXT
    with pytest.raises(aux_data.AuxDataError, match="LIBRISPEECH is not set; set it in db.sh"):
        aux_data.prepare("asr", ["librispeech:train-clean-5"], tmp_path / "data", "en", "de")
    # The corpus's own error, naming the spec it came from.
    with pytest.raises(aux_data.AuxDataError,
                       match="preparing librispeech:dev-clean failed: subset dev-clean not found"):
        aux_data.prepare("asr", ["librispeech:dev-clean"], tmp_path / "data", "en", "de",
                         roots=roots)
    assert aux_data.roots_from_env({"LIBRISPEECH": "/a", "TEDLIUM3": ""}) == {"librispeech": "/a"}


def test_prepare_bitext_and_cli_roots_from_environment(tmp_path, monkeypatch):
    n_mt = fx.make_bitext(tmp_path / "wmt" / "news", "en", "de")
    out = aux_data.prepare("mt", [f"bitext:{tmp_path / 'wmt' / 'news'}"], tmp_path / "data",
                           "en", "de")
    assert len(read_table(out / "text.tc.de")) == n_mt
    fx.make_librispeech(tmp_path / "libri")
    monkeypatch.setenv("LIBRISPEECH", str(tmp_path / "libri" / "LibriSpeech"))
    assert aux_cli.main(["prepare", "--kind", "asr", "--src_lang", "en", "--tgt_lang", "de",
                         "--out", str(tmp_path / "cli"), "librispeech:train-clean-5"]) == 0
    assert (tmp_path / "cli" / "aux_asr" / "wav.scp").exists()
