"""The multilingual X->En demo corpus in the CoVoST 2 layout (espnet_mtl/demo/covost_corpus.py).

Generated once (small), then: read back through our CoVoST 2 reader, every
language and split; deterministic and skipped when complete; the CLI; the
multilingual prepare step (one data dir for all languages, utt2lang); the
covost2 recipe's stages 1-5 on it; the multilingual configs build.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.corpora.covost2 import read_covost2_with_stats
from espnet_mtl.demo import grammar
from espnet_mtl.demo.covost_corpus import (
    COVOST_COLUMNS, CV_COLUMNS, make_covost_corpus, sample_language_splits,
)
from espnet_mtl.fileio import read_table
from espnet_mtl.prep.datadir import validate_data_dir
from espnet_mtl.runner.recipes import ROOT, copy_recipe

LANGS = ("de", "es", "fr")
SIZES = {"train": 12, "dev": 3, "test": 3}
SEED = 7
KW = dict(n_train=SIZES["train"], n_dev=SIZES["dev"], n_test=SIZES["test"], seed=SEED)
TAG = "de_es_fr"
RECIPE = ROOT / "egs2" / "covost2" / "st1"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("covost_demo") / "corpus"
    # Given out of order: the corpus does not depend on the order of the languages.
    summary = make_covost_corpus(out, src_langs=("fr", "de", "es"), **KW)
    return out, summary


def _tree(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*"))


def _identical_trees(a: Path, b: Path) -> bool:
    return _tree(a) == _tree(b) and all(
        (a / f).is_dir() or filecmp.cmp(a / f, b / f, shallow=False) for f in _tree(a))


# ---------------------------------------------------------------------------
# The corpus reads back through the CoVoST 2 reader
# ---------------------------------------------------------------------------

def test_layout_reads_back_through_the_covost2_reader(corpus):
    out, summary = corpus
    assert not summary["skipped"]
    assert sorted(p.name for p in out.iterdir()) == [".done", *LANGS]
    assert json.loads((out / ".done").read_text())["src_langs"] == list(LANGS)
    # What the grammar says each clip should hold: the same sampling, redone.
    expected = sample_language_splits(LANGS, SIZES["train"], SIZES["dev"], SIZES["test"], SEED)
    all_ids: set[str] = set()
    seen_en: dict[str, str] = {}
    for lang in LANGS:
        ldir = out / lang
        assert sorted(p.name for p in ldir.iterdir()) == sorted(
            ["clips", "validated.tsv", f"covost_v2.{lang}_en.tsv"])
        assert (ldir / "validated.tsv").read_text().split("\n")[0].split("\t") == list(CV_COLUMNS)
        assert (ldir / f"covost_v2.{lang}_en.tsv").read_text().split("\n")[0].split("\t") == \
            list(COVOST_COLUMNS)
        clips = set()
        for split, n in SIZES.items():
            utts, stats = read_covost2_with_stats(out, lang, "en", split)
            assert (stats.rows, stats.kept, sum(stats.dropped.values())) == (n, n, 0)
            assert not stats.ignored_labels
            # Transcripts in the source language, translations in English.
            assert {(u.src_text, u.tgt_text) for u in utts} == {
                (grammar.render(s, lang), grammar.render(s, "en")) for s in expected[lang][split]}
            for u in utts:
                assert re.fullmatch(r"[0-9a-f]{128}", u.speaker)
                assert re.fullmatch(rf"{u.speaker}-common_voice_{lang}_\d+", u.utt_id)
                assert u.wav_path == str(ldir / "clips" / (u.utt_id.split("-", 1)[1] + ".mp3"))
                clips.add(os.path.basename(u.wav_path))
                # No sentence twice anywhere: no English target leaks across splits or languages.
                assert seen_en.setdefault(u.tgt_text, f"{lang} {split}") == f"{lang} {split}"
            all_ids |= {u.utt_id for u in utts}
            assert summary["stats"][lang][split]["utterances"] == n
        assert {p.name for p in (ldir / "clips").iterdir()} == clips  # one clip per utterance
    assert len(all_ids) == len(LANGS) * sum(SIZES.values())
    # dev and test: new sentences made of the words of the language's own training sentences.
    for lang in LANGS:
        vocab = {side: {w for s in expected[lang]["train"] for w in grammar.words(grammar.render(s, side))}
                 for side in (lang, "en")}
        for split in ("dev", "test"):
            for s in expected[lang][split]:
                for side in (lang, "en"):
                    assert set(grammar.words(grammar.render(s, side))) <= vocab[side]


def test_clips_are_48k_mono_mp3_speech(corpus):
    out, _ = corpus
    for lang in LANGS:
        utts = read_covost2_with_stats(out, lang, "en", "dev")[0]
        for u in utts:
            info = sf.info(u.wav_path)
            assert (info.samplerate, info.channels, info.format) == (48000, 1, "MP3")
        audio, fs = sf.read(utts[0].wav_path, dtype="float32")
        assert fs == 48000 and audio.ndim == 1 and 0.8 < len(audio) / fs < 8
        # Speech in the middle, the faint noise floor at the start (the lead silence).
        assert np.abs(audio).max() > 0.05 and np.abs(audio[:int(0.15 * fs)]).max() < 0.01


# ---------------------------------------------------------------------------
# Determinism, the .done short-cut, the CLI
# ---------------------------------------------------------------------------

def test_same_arguments_same_files_and_done_shortcut(corpus, tmp_path):
    out, _ = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = make_covost_corpus(out, src_langs=LANGS, **KW)  # another order of the same languages
    assert again["skipped"] and again["stats"] == corpus[1]["stats"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    copy = tmp_path / "copy"
    assert not make_covost_corpus(copy, src_langs=LANGS, workers=1, **KW)["skipped"]
    assert _identical_trees(out, copy)  # tables and MP3 bytes alike, whatever the workers

    # Other arguments rebuild; no partial tree is left beside it.
    rebuilt = make_covost_corpus(copy, src_langs=("es",), n_train=4, n_dev=1, n_test=1, seed=SEED)
    assert not rebuilt["skipped"] and sorted(p.name for p in copy.iterdir()) == [".done", "es"]
    assert not list(tmp_path.glob(".copy.partial-*"))

    # One generation at a time per corpus (the lock of make_corpus.py).
    from espnet_mtl.demo.make_corpus import lock_path
    from espnet_mtl.runner.locks import LockBusy, hold_lock

    busy = tmp_path / "busy"
    with hold_lock(lock_path(busy), "another generation"):
        with pytest.raises(LockBusy, match=f"demo corpus generation into {busy} is already running"):
            make_covost_corpus(busy, src_langs=("de",), n_train=2, n_dev=1, n_test=1)
    assert not busy.exists()


def test_cli_covost2_layout(corpus, caplog):
    from espnet_mtl.bin.make_demo_corpus import main

    out, _ = corpus
    args = ["--out", str(out), "--layout", "covost2", "--n_train", "12", "--n_dev", "3",
            "--n_test", "3", "--seed", str(SEED)]
    with caplog.at_level("INFO"):
        assert main(args + ["--src_langs", "de,es,fr"]) == 0
    assert "already holds this corpus (de-en, es-en, fr-en)" in caplog.text
    assert re.search(r"fr train +12 clips from +\d+ speakers", caplog.text)


@pytest.mark.parametrize("args, message", [
    (["--layout", "covost2", "--tgt_langs", "de"], "--tgt_langs is not available with --layout covost2"),
    (["--layout", "covost2", "--n_aux_mt", "5"], "--n_aux_mt is not available with --layout covost2"),
    (["--src_langs", "de"], "--src_langs is for --layout covost2"),
])
def test_cli_refuses_options_of_the_other_layout(tmp_path, capsys, args, message):
    from espnet_mtl.bin.make_demo_corpus import main

    assert main(["--out", str(tmp_path / "c")] + args) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_cli_bad_language_and_sizes(tmp_path, caplog):
    from espnet_mtl.bin.make_demo_corpus import main

    base = ["--out", str(tmp_path / "c"), "--layout", "covost2"]
    assert main(base + ["--src_langs", "de,it"]) == 2
    assert "src_langs must be a non-empty subset of de, es, fr, got ['de', 'it']" in caplog.text
    assert main(base + ["--n_dev", "0"]) == 2
    assert "need n_train, n_dev and n_test >= 1" in caplog.text
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------
# Stage 1: one data dir for all the source languages
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    from espnet_mtl.bin import prepare_covost2

    out = tmp_path_factory.mktemp("prep") / "data"
    rc = prepare_covost2.main(["--root", str(corpus[0]), "--src_lang", "de,es,fr", "--tgt_lang", "en",
                               "--lang_splits", "test", "--out", str(out)])
    assert rc == 0
    return out


def test_prepare_multilingual_one_data_dir_per_split(prepared, corpus):
    assert sorted(p.name for p in prepared.iterdir()) == sorted(
        [f"{s}.{TAG}-en" for s in SIZES] + [f"test_{lang}.{TAG}-en" for lang in LANGS])
    for split, n in SIZES.items():
        d = prepared / f"{split}.{TAG}-en"
        counts = validate_data_dir(d)  # sorted tables, same ids everywhere, spk2utt = utt2spk
        assert counts["utterances"] == 3 * n and counts["warnings"] == 0
        assert not (d / "segments").exists()
        names = {p.name for p in d.iterdir()}
        assert {f"text.{c}.{side}" for c in ("tc", "lc", "lc.rm") for side in (TAG, "en")} <= names
        assert not any(name.endswith((".de", ".es", ".fr")) for name in names)
        utt2lang = read_table(d / "utt2lang")
        assert list(utt2lang) == list(read_table(d / "utt2spk"))
        assert sorted(utt2lang.values()) == sorted(LANGS * n)
        for utt, lang in utt2lang.items():  # the language is also in the id
            assert utt.rsplit("-", 1)[1].startswith(f"common_voice_{lang}_")
        # The same texts as the reader gives, per language.
        src, tgt = read_table(d / f"text.tc.{TAG}"), read_table(d / "text.tc.en")
        for lang in LANGS:
            utts = read_covost2_with_stats(corpus[0], lang, "en", split)[0]
            assert {u.utt_id: (u.src_text, u.tgt_text) for u in utts} == {
                u: (src[u], tgt[u]) for u, l in utt2lang.items() if l == lang}
        assert read_table(d / "text") == tgt
        assert all(v == v.lower() for v in read_table(d / f"text.lc.rm.{TAG}").values())
    for lang in LANGS:
        d = prepared / f"test_{lang}.{TAG}-en"
        assert validate_data_dir(d)["utterances"] == SIZES["test"]
        assert set(read_table(d / "utt2lang").values()) == {lang}
        whole = read_table(prepared / f"test.{TAG}-en" / f"text.tc.{TAG}")
        assert read_table(d / f"text.tc.{TAG}").items() <= whole.items()


@pytest.mark.parametrize("args, message", [
    (["--src_lang", "de,de"], "de listed more than once"),
    (["--src_lang", "de,,es"], "no empty items"),
    (["--src_lang", "de,xx"], "CoVoST 2 has no direction xx->en"),
    (["--src_lang", "de", "--lang_splits", "test"], "--lang_splits needs several source languages"),
    (["--src_lang", "de,es", "--splits", "train", "--lang_splits", "test"],
     "--lang_splits test: not among --splits train"),
])
def test_prepare_multilingual_errors(corpus, tmp_path, capsys, args, message):
    from espnet_mtl.bin import prepare_covost2

    rc = prepare_covost2.main(["--root", str(corpus[0]), "--tgt_lang", "en",
                               "--out", str(tmp_path / "data")] + args)
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_same_utterance_id_in_two_languages_is_an_error(tmp_path):
    from espnet_mtl.corpora.covost2 import CoVoST2Error, read_covost2_multilingual

    # Clip names without the language (not Common Voice's naming) collide across languages.
    for lang in ("de", "fr"):
        d = tmp_path / lang
        (d / "clips").mkdir(parents=True)
        (d / "clips" / "clip_1.mp3").write_bytes(b"ID3\x04")
        (d / "validated.tsv").write_text("client_id\tpath\tsentence\nabc\tclip_1.mp3\tJa.\n")
        (d / f"covost_v2.{lang}_en.tsv").write_text("path\ttranslation\tsplit\nclip_1.mp3\tYes.\ttrain\n")
    with pytest.raises(CoVoST2Error, match=r"utterance id abc-clip_1 .* is in both de and fr"):
        read_covost2_multilingual(tmp_path, ("de", "fr"), "en", "train")


def test_covost2_recipe_stages_1_to_5_on_the_demo(corpus, tmp_path):
    """run.sh --demo true: stage 1 finds the generated corpus complete (same
    arguments) and prepares it; stages 3-5 keep utt2lang and train a joint source BPE."""
    recipe = copy_recipe("covost2", tmp_path / "work")
    # run.sh's own local/data.sh options, with the fixture's sizes.
    opts = (f"--demo true --src_lang de,es,fr --n_train 12 --n_dev 3 --n_test 3 --seed {SEED} "
            f"--lang_splits test")
    r = subprocess.run(
        ["./run.sh", "--demo", "true", "--stage", "1", "--stop_stage", "5", "--src_nbpe", "60",
         "--tgt_nbpe", "60", "--local_data_opts", opts],
        cwd=recipe, capture_output=True, text=True,
        env={**os.environ, "COVOST2_DEMO": str(corpus[0])})
    assert r.returncode == 0, r.stderr[-5000:]
    assert "already holds this corpus" in r.stderr
    data = recipe / "data"
    assert validate_data_dir(data / f"train.{TAG}-en")["utterances"] == 3 * SIZES["train"]
    for lang in LANGS:
        assert (data / f"test_{lang}.{TAG}-en" / ".done").exists()
    dump = recipe / "dump_demo" / "raw"
    train = read_table(dump / f"train.{TAG}-en" / "utt2lang")
    assert sorted(set(train.values())) == list(LANGS) and len(train) == 3 * SIZES["train"]
    assert set(read_table(dump / f"test_fr.{TAG}-en" / "utt2lang").values()) == {"fr"}
    n = read_table(dump / f"test_de.{TAG}-en" / "utt2num_samples")
    assert all(0.8 * 16000 < int(v) < 8 * 16000 for v in n.values())  # 48 kHz mp3 -> 16 kHz
    bpe = data / f"{TAG}_en_token_list" / "src_bpe_unigram60" / "tokens.txt"
    tokens = bpe.read_text(encoding="utf-8")
    assert "ü" in tokens or "ä" in tokens or "ö" in tokens  # German in the joint source BPE
    assert "é" in tokens or "è" in tokens or "ç" in tokens  # and French


# ---------------------------------------------------------------------------
# The multilingual configs build and run one step
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("config", ["conf/train_st_multilingual.yaml",
                                    "conf/tuning/train_st_multilingual_demo.yaml"])
def test_multilingual_configs_build(config, tmp_path, monkeypatch):
    import torch

    from espnet_mtl.tasks.st import MTLSTTask

    for side, n in (("src", 40), ("tgt", 30)):
        (tmp_path / side).write_text("\n".join(["<blank>", "<unk>"] + [f"t{i}" for i in range(n)]
                                               + ["<sos/eos>"]) + "\n")
    monkeypatch.setattr(sys, "argv", ["st_train"])  # ESPnet's parser also reads sys.argv
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(RECIPE / config), "--token_list", str(tmp_path / "tgt"),
         "--src_token_list", str(tmp_path / "src")])
    model = MTLSTTask.build_model(args)
    assert set(model.objectives) == {"st_ce", "asr_ctc"}
    assert model.textual_encoder.num_blocks == 0
    assert type(model.strategy).__name__ == "StaticWeights"
    loss, stats, _ = model(speech=torch.randn(2, 8000), speech_lengths=torch.tensor([8000, 6000]),
                           text=torch.tensor([[2, 3, 4], [3, -1, -1]]), text_lengths=torch.tensor([3, 1]),
                           src_text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1]]),
                           src_text_lengths=torch.tensor([4, 2]))
    assert torch.isfinite(loss)
