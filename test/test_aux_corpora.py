"""Auxiliary-data stage 1: LibriSpeech and TED-LIUM 3 (ASR-only dirs), bitext (MT-only dirs).

Every corpus is fabricated under tmp_path in its real layout, with tiny real
audio: flac for LibriSpeech, uncompressed NIST SPHERE (written by libsndfile)
for TED-LIUM, which stage 3 (`dump_audio`) then cuts into segments.
"""

import gzip
import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.prep.audio_dump import dump_audio
from espnet_mtl.bin import prepare_bitext, prepare_librispeech, prepare_tedlium3
from espnet_mtl.corpora import writer
from espnet_mtl.corpora.bitext import BitextError, read_bitext_with_stats
from espnet_mtl.corpora.librispeech import (LibriSpeechError, read_librispeech_with_stats,
                                            read_speaker_genders)
from espnet_mtl.corpora.tedlium3 import (TedliumError, clean_words, read_tedlium3,
                                         read_tedlium3_with_stats)
from espnet_mtl.corpora.writer import DataDirError, write_asr_data_dir, write_mt_data_dir
from espnet_mtl.prep.datadir import validate_data_dir
from espnet_mtl.fileio import read_table

FS = 16000
CASES = ("tc", "lc", "lc.rm")


def keys(path):
    return [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]


def check_sorted_same_keys(d, names):
    ref = keys(d / names[0])
    assert ref == sorted(ref, key=lambda s: s.encode("utf-8"))
    for name in names:
        assert keys(d / name) == ref, name
    return ref


# =========================================================================== LibriSpeech

SPEAKERS_TXT = """\
; Speaker list: name fields may contain '|'
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
60   | M | train-clean-100  | 20.18 | |CBW|Simon
103  | F | train-clean-100  | 23.06 | Karen Savage
1034 | M | train-clean-360  | 25.03 | Kevin O'Coin
"""


def write_flac(path, n=1600):
    sf.write(path, np.full(n, 0.1, dtype=np.float32), FS, format="FLAC", subtype="PCM_16")


def make_chapter(root, subset, spk, chap, lines, flacs=None, trans=True):
    """One chapter: `lines` of its trans.txt; `flacs` (utterance numbers) default to the lines' ids."""
    d = root / subset / spk / chap
    d.mkdir(parents=True, exist_ok=True)
    if trans:
        (d / f"{spk}-{chap}.trans.txt").write_text("".join(line + "\n" for line in lines))
    if flacs is None:
        flacs = [line.split()[0] for line in lines if line.strip()]
    for utt in flacs:
        write_flac(d / f"{utt}.flac")
    return d


@pytest.fixture
def libri(tmp_path):
    root = tmp_path / "LibriSpeech"
    make_chapter(root, "train-clean-100", "103", "1240", [
        "103-1240-0000 CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED",
        "103-1240-0001 DON'T YOU THINK SO",
    ])
    make_chapter(root, "train-clean-100", "19", "198", ["19-198-0000 NORTHANGER ABBEY"])
    make_chapter(root, "train-clean-360", "1034", "121119", ["1034-121119-0000 THE TIME MACHINE"])
    make_chapter(root, "dev-clean", "84", "121123", ["84-121123-0000 GO DO YOU HEAR"])
    (root / "SPEAKERS.TXT").write_text(SPEAKERS_TXT)
    return root


def test_librispeech_cli_writes_asr_dir(libri, tmp_path):
    out = tmp_path / "data"
    rc = prepare_librispeech.main(["--root", str(libri), "--subsets", "train-clean-100,train-clean-360",
                                   "--out", str(out), "--name", "librispeech_train", "--lang", "en"])
    assert rc == 0
    d = out / "librispeech_train"
    assert sorted(p.name for p in out.iterdir()) == ["librispeech_train"]
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["wav.scp", "utt2spk", "spk2utt", "spk2gender", "text"] + [f"text.{c}.en" for c in CASES])
    ids = ["103-1240-0000", "103-1240-0001", "1034-121119-0000", "19-198-0000"]  # "-" < "4"
    assert check_sorted_same_keys(d, ["utt2spk", "wav.scp", "text"] + [f"text.{c}.en" for c in CASES]) == ids
    assert read_table(d / "wav.scp")["19-198-0000"] == str(
        libri / "train-clean-100" / "19" / "198" / "19-198-0000.flac")
    assert read_table(d / "utt2spk") == {"1034-121119-0000": "1034", "103-1240-0000": "103",
                                         "103-1240-0001": "103", "19-198-0000": "19"}
    assert read_table(d / "spk2utt")["103"] == "103-1240-0000 103-1240-0001"
    assert read_table(d / "spk2gender") == {"1034": "m", "103": "f", "19": "f"}
    assert read_table(d / "text.tc.en")["103-1240-0001"] == "DON'T YOU THINK SO"
    assert read_table(d / "text.lc.en")["103-1240-0001"] == "don't you think so"
    assert read_table(d / "text.lc.rm.en")["103-1240-0001"] == "don't you think so"
    assert (d / "text").read_text() == (d / "text.tc.en").read_text()
    counts = validate_data_dir(d)
    assert (counts["utterances"], counts["speakers"], counts["warnings"]) == (4, 3, 0)
    # Stage 3 takes the whole flac of each utterance (no segments).
    dump_audio(d, tmp_path / "dump", audio_format="flac", fs=FS)
    assert set(read_table(tmp_path / "dump" / "utt2num_samples").values()) == {"1600"}


def test_librispeech_speakers_txt_name_with_bar(tmp_path):
    p = tmp_path / "SPEAKERS.TXT"
    p.write_text(SPEAKERS_TXT)
    assert read_speaker_genders(p) == {"19": "f", "60": "m", "103": "f", "1034": "m"}
    # Columns by name: another order in the header reads the same.
    p.write_text(";SEX|ID|NAME\nM | 7 | A | B\n")
    assert read_speaker_genders(p) == {"7": "m"}
    p.write_text(SPEAKERS_TXT + "200  | X | dev-clean | 8.0 | Someone\n")
    with pytest.raises(LibriSpeechError, match=r"SPEAKERS\.TXT:7: speaker 200: SEX must be M or F"):
        read_speaker_genders(p)
    p.write_text(SPEAKERS_TXT + "200  | F \n")
    with pytest.raises(LibriSpeechError, match=r"SPEAKERS\.TXT:7: expected 5 '\|'-separated fields"):
        read_speaker_genders(p)


def test_librispeech_speaker_missing_from_speakers_txt(libri, tmp_path, caplog):
    # Speaker 84 is not in SPEAKERS.TXT: no spk2gender (a partial one would fail validation).
    with caplog.at_level(logging.WARNING):
        assert prepare_librispeech.main(["--root", str(libri), "--subsets", "dev-clean",
                                         "--out", str(tmp_path / "data")]) == 0
    d = tmp_path / "data" / "librispeech_train"
    assert not (d / "spk2gender").exists()
    assert "lacks 1 of the 1 speakers used (e.g. 84)" in caplog.text
    validate_data_dir(d)
    # No SPEAKERS.TXT at all: fine too.
    (libri / "SPEAKERS.TXT").unlink()
    assert prepare_librispeech.main(["--root", str(libri), "--subsets", "train-clean-360",
                                     "--out", str(tmp_path / "data")]) == 0
    assert not (d / "spk2gender").exists()


def test_librispeech_missing_flac_is_error_or_dropped(libri):
    make_chapter(libri, "train-other-500", "7", "100", ["7-100-0000 HELLO", "7-100-0001 WORLD"],
                 flacs=["7-100-0000"])
    trans = libri / "train-other-500" / "7" / "100" / "7-100.trans.txt"
    with pytest.raises(LibriSpeechError, match=f"{trans}:2: audio of 7-100-0001 not found"):
        read_librispeech_with_stats(libri, "train-other-500")
    utts, stats = read_librispeech_with_stats(libri, "train-other-500", missing_audio="drop")
    assert [u.utt_id for u in utts] == ["7-100-0000"] and stats.dropped["missing_audio"] == 1


def test_librispeech_flac_without_transcript_dropped(libri, caplog):
    make_chapter(libri, "train-other-500", "7", "100", ["7-100-0000 HELLO"],
                 flacs=["7-100-0000", "7-100-0001"])
    make_chapter(libri, "train-other-500", "7", "101", [], flacs=["7-101-0000"], trans=False)
    with caplog.at_level(logging.WARNING):
        utts, stats = read_librispeech_with_stats(libri, "train-other-500")
    assert [u.utt_id for u in utts] == ["7-100-0000"]
    assert stats.dropped["no_transcript"] == 2 and stats.audio_files == 3
    assert "7-101.trans.txt: missing" in caplog.text and "7-100-0001.flac" in caplog.text


@pytest.mark.parametrize("line", ["7-100-0001", "7-100-0001 "])
def test_librispeech_empty_text_dropped(libri, line):
    make_chapter(libri, "train-other-500", "7", "100", ["7-100-0000 HELLO", line])
    utts, stats = read_librispeech_with_stats(libri, ["train-other-500"])
    assert len(utts) == 1 and stats.dropped["empty_text"] == 1
    assert "empty_text=1" in stats.summary()


@pytest.mark.parametrize("line", ["7-999-0001 OTHER CHAPTER", "HELLO WORLD", "7-100-x1 BAD"])
def test_librispeech_malformed_transcript_line(libri, line):
    make_chapter(libri, "train-other-500", "7", "100", ["7-100-0000 HELLO", line], flacs=["7-100-0000"])
    with pytest.raises(LibriSpeechError, match=r"7-100\.trans\.txt:2: expected '<utterance-id> TEXT' "
                                               r"with an id 7-100-<number>"):
        read_librispeech_with_stats(libri, "train-other-500")


def test_librispeech_duplicate_id_across_subsets(libri):
    make_chapter(libri, "train-other-500", "103", "1240", ["103-1240-0001 AGAIN"])
    first = libri / "train-clean-100" / "103" / "1240" / "103-1240.trans.txt"
    second = libri / "train-other-500" / "103" / "1240" / "103-1240.trans.txt"
    with pytest.raises(LibriSpeechError, match=f"{second}:1: utterance 103-1240-0001 was already "
                                               f"read at {first}:2"):
        read_librispeech_with_stats(libri, "train-clean-100,train-other-500")


def test_librispeech_unknown_subset_lists_found(libri, tmp_path, capsys):
    with pytest.raises(LibriSpeechError) as e:
        read_librispeech_with_stats(libri, "train-clean-100,train-clean-460")
    assert f"subset train-clean-460 not found: expected {libri / 'train-clean-460'}" in str(e.value)
    assert "subsets under" in str(e.value) and "dev-clean, train-clean-100, train-clean-360" in str(e.value)
    # The CLI: one line, exit 1, nothing written; a parent root gets a hint.
    rc = prepare_librispeech.main(["--root", str(tmp_path), "--subsets", "dev-clean",
                                   "--out", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("prepare_librispeech: error: subset dev-clean not found")
    assert "pass it as the root" in err and not (tmp_path / "data").exists()


# =========================================================================== TED-LIUM 3

TALK_A = "AimeeMullins_2009P"
TALK_B = "BillGates_2010"
STM_A = f"""\
;; LABEL "o" "Overall" "Overall results"
{TALK_A} 1 {TALK_A} 0.00 0.50 <o,f0,female> i 'm here {{NOISE}} today(2) <sil>
{TALK_A} 1 {TALK_A} 0.50 1.25 <o,f0,female> don 't you think it 's fine ({TALK_A}-001)
{TALK_A} 1 {TALK_A} 1.25 1.40 <o,f0,female> too short
{TALK_A} 1 inter_segment_gap 1.40 2.00 <o,,unknown> ignore_time_segment_in_scoring
{TALK_A} 1 {TALK_A} 2.00 2.50 <o,f0,female> {{BREATH}} <sil>
{TALK_A} 1 {TALK_A} 0.50 1.25 <o,f0,female> don 't you think it 's fine
{TALK_A} 1 {TALK_A} 2.50 3.00 <o,f0,female> 'cause {{SMACK}} we 've <unk> won
"""
# Talk B's stm file is named after the talk without the year; its <file> field names the audio.
STM_B = f"{TALK_B} 1 {TALK_B} 0.20 1.10 <o,f0,male> energy and climate\n"


def tone(seconds, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(-8000, 8000, int(seconds * FS), dtype=np.int16)


def write_sph(path, samples):
    sf.write(path, samples, FS, format="NIST", subtype="PCM_16")


def make_tedlium(root, split="train", layout="legacy", stms=None, sphs=None):
    d = root / "data" if layout == "data" else root / layout / split
    (d / "stm").mkdir(parents=True, exist_ok=True)
    (d / "sph").mkdir(exist_ok=True)
    stms = {TALK_A: STM_A, "BillGates": STM_B} if stms is None else stms
    sphs = {TALK_A: tone(3.2, 1), TALK_B: tone(1.5, 2)} if sphs is None else sphs
    for name, text in stms.items():
        (d / "stm" / f"{name}.stm").write_text(text)
    for name, samples in sphs.items():
        write_sph(d / "sph" / f"{name}.sph", samples)
    return d


@pytest.fixture
def ted(tmp_path):
    root = tmp_path / "TEDLIUM_release-3"
    make_tedlium(root)
    return root


def test_clean_words():
    assert clean_words("i 'm here {NOISE} today(2) <sil>".split()) == "i'm here today"
    assert clean_words("don 't <sil> 's".split()) == "don't's"
    assert clean_words("'cause we 've (talk-1) [laughter] <unk> won".split()) == "'cause we've won"
    assert clean_words(["{BREATH}", "<sil>"]) == ""


def test_tedlium_cli_writes_asr_dir(ted, tmp_path, caplog):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        rc = prepare_tedlium3.main(["--root", str(ted), "--split", "train", "--layout", "legacy",
                                    "--out", str(out), "--name", "tedlium3_train"])
    assert rc == 0
    assert "kept 4 of 8 segments; dropped: ignored=1, empty_text=1, too_short=1, duplicate=1" in caplog.text
    d = out / "tedlium3_train"
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["wav.scp", "segments", "utt2spk", "spk2utt", "spk2gender", "text"] + [f"text.{c}.en" for c in CASES])
    sph = ted / "legacy" / "train" / "sph"
    assert read_table(d / "wav.scp") == {TALK_A: str(sph / f"{TALK_A}.sph"),
                                         TALK_B: str(sph / f"{TALK_B}.sph")}
    assert (d / "segments").read_text().splitlines() == [
        f"{TALK_A}-0000000-0000050 {TALK_A} 0.000 0.500",
        f"{TALK_A}-0000050-0000125 {TALK_A} 0.500 1.250",
        f"{TALK_A}-0000250-0000300 {TALK_A} 2.500 3.000",
        f"{TALK_B}-0000020-0000110 {TALK_B} 0.200 1.100",
    ]
    assert read_table(d / "text.tc.en") == {
        f"{TALK_A}-0000000-0000050": "i'm here today",
        f"{TALK_A}-0000050-0000125": "don't you think it's fine",
        f"{TALK_A}-0000250-0000300": "'cause we've won",
        f"{TALK_B}-0000020-0000110": "energy and climate",
    }
    assert read_table(d / "text.lc.rm.en")[f"{TALK_A}-0000250-0000300"] == "cause we've won"
    assert read_table(d / "spk2gender") == {TALK_A: "f", TALK_B: "m"}
    assert read_table(d / "utt2spk")[f"{TALK_B}-0000020-0000110"] == TALK_B
    counts = validate_data_dir(d)
    assert (counts["utterances"], counts["recordings"], counts["warnings"]) == (4, 2, 0)


def test_tedlium_sphere_read_and_cut_by_stage3(ted, tmp_path):
    """libsndfile reads the NIST SPHERE files; dump_audio cuts the exact samples."""
    info = sf.info(str(ted / "legacy" / "train" / "sph" / f"{TALK_A}.sph"))
    assert (info.format, info.subtype, info.samplerate) == ("NIST", "PCM_16", FS)
    d = write_asr_data_dir(tmp_path / "asr", read_tedlium3(ted, "train"), "en")
    dump_audio(d, tmp_path / "dump", audio_format="flac", fs=FS)
    out = tmp_path / "dump"
    lengths = read_table(out / "utt2num_samples")
    assert lengths[f"{TALK_A}-0000050-0000125"] == str(int(0.75 * FS))
    assert lengths[f"{TALK_B}-0000020-0000110"] == str(int(0.9 * FS))
    piece, fs = sf.read(read_table(out / "wav.scp")[f"{TALK_A}-0000050-0000125"], dtype="int16")
    assert fs == FS and np.array_equal(piece, tone(3.2, 1)[int(0.5 * FS):int(1.25 * FS)])
    assert validate_data_dir(out)["utterances"] == 4


def test_tedlium_min_duration_configurable(ted):
    utts, stats = read_tedlium3_with_stats(ted, "train", min_duration=0.6)
    assert [u.utt_id for u in utts] == [f"{TALK_A}-0000050-0000125", f"{TALK_B}-0000020-0000110"]
    assert stats.dropped["too_short"] == 3


def test_tedlium_end_not_after_start(tmp_path):
    root = tmp_path / "T3"
    make_tedlium(root, stms={TALK_A: f"{TALK_A} 1 {TALK_A} 0.0 1.0 <o,f0,male> ok\n"
                                     f"{TALK_A} 1 {TALK_A} 2.50 2.50 <o,f0,male> bad\n"})
    stm = root / "legacy" / "train" / "stm" / f"{TALK_A}.stm"
    with pytest.raises(TedliumError, match=f"{stm}:2: end 2.50 is not after start 2.50"):
        read_tedlium3(root, "train")


@pytest.mark.parametrize("line, message", [
    (f"{TALK_A} 1 {TALK_A} 0.0", "expected '<file> <channel> <speaker> <start> <end>"),
    (f"{TALK_A} 1 {TALK_A} zero 1.0 <o,f0,male> hi", "start time must be a number of seconds"),
])
def test_tedlium_malformed_line(tmp_path, line, message):
    root = tmp_path / "T3"
    make_tedlium(root, stms={TALK_A: f";; comment\n\n{line}\n"})
    with pytest.raises(TedliumError, match=rf"{TALK_A}\.stm:3: {message}"):
        read_tedlium3(root, "train")


def test_tedlium_missing_sph_names_stm_line(tmp_path):
    root = tmp_path / "T3"
    make_tedlium(root, sphs={TALK_A: tone(3.2, 1)})  # BillGates_2010.sph is absent
    stm = root / "legacy" / "train" / "stm" / "BillGates.stm"
    sph = root / "legacy" / "train" / "sph" / f"{TALK_B}.sph"
    with pytest.raises(TedliumError, match=f"{stm}:1: audio of {TALK_B} not found: expected {sph}"):
        read_tedlium3(root, "train")


def test_tedlium_layouts(tmp_path, capsys):
    root = tmp_path / "T3"
    make_tedlium(root, layout="data")
    make_tedlium(root, split="dev", layout="speaker-adaptation", stms={"BillGates": STM_B},
                 sphs={TALK_B: tone(1.5, 2)})
    assert len(read_tedlium3(root, "train", layout="data")) == 4
    assert [u.utt_id for u in read_tedlium3(root, "dev", layout="speaker-adaptation")] == [
        f"{TALK_B}-0000020-0000110"]
    with pytest.raises(TedliumError, match="layout 'data' holds only the train split"):
        read_tedlium3(root, "dev", layout="data")
    with pytest.raises(TedliumError, match=r"legacy/test/stm not found; directories under .*T3: "
                                           r"data, speaker-adaptation"):
        read_tedlium3(root, "test")
    rc = prepare_tedlium3.main(["--root", str(tmp_path), "--split", "train", "--out", str(tmp_path / "d")])
    assert rc == 1 and "prepare_tedlium3: error:" in capsys.readouterr().err


def test_tedlium_speaker_not_file_gets_file_in_id(tmp_path):
    root = tmp_path / "T3"
    make_tedlium(root, stms={TALK_A: f"{TALK_A} 1 Aimee 0.0 1.0 <o,f0,female> hello\n"})
    (u,) = read_tedlium3(root, "train")
    assert (u.utt_id, u.speaker, u.recording_id) == (f"Aimee-{TALK_A}-0000000-0000100", "Aimee", TALK_A)


# =========================================================================== bitext

def write_lines(path, lines, end="\n", final=True, bom=False):
    data = end.join(lines) + (end if final else "")
    raw = ("\ufeff" if bom else "") + data
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw.encode("utf-8"))
    else:
        path.write_bytes(raw.encode("utf-8"))
    return path


EN = ["Hello world.", "  ", "He said \u201cyes\u201d (Laughter)", "one", "Hello world.", "Good night.",
      "a b c d e f g h i j k l m n o p q r s t"]
DE = ["Hallo Welt.", "Leer", "Er sagte \u201eja\u201c (Lachen)", "", "Hallo Welt.", "Gute Nacht.", "x"]


def mt_files(d, lang_pair=("en", "de")):
    return [f"text.{c}.{lang}" for lang in lang_pair for c in CASES]


def test_bitext_cli_writes_mt_dir(tmp_path, caplog):
    src = write_lines(tmp_path / "train.en", EN)
    tgt = write_lines(tmp_path / "train.de", DE)
    with caplog.at_level(logging.INFO):
        rc = prepare_bitext.main(["--src", str(src), "--tgt", str(tgt), "--src_lang", "en",
                                  "--tgt_lang", "de", "--out", str(tmp_path / "data"), "--name", "wmt_train"])
    assert rc == 0
    assert "kept 3 of 7 lines; dropped: blank=2, too_long=0, length_ratio=1, duplicate=1" in caplog.text
    d = tmp_path / "data" / "wmt_train"
    assert sorted(p.name for p in d.iterdir()) == sorted(mt_files(d))  # no wav.scp, utt2spk, text
    ids = check_sorted_same_keys(d, mt_files(d))
    assert ids == ["wmt_train_000000001", "wmt_train_000000003", "wmt_train_000000006"]
    assert read_table(d / "text.tc.en")["wmt_train_000000003"] == 'He said "yes" (Laughter)'
    assert read_table(d / "text.lc.en")["wmt_train_000000003"] == 'he said "yes" (laughter)'
    assert read_table(d / "text.lc.rm.en")["wmt_train_000000003"] == "he said yes"
    assert read_table(d / "text.tc.de")["wmt_train_000000003"] == 'Er sagte "ja" (Lachen)'
    assert read_table(d / "text.lc.rm.de")["wmt_train_000000006"] == "gute nacht"


def test_bitext_line_count_mismatch(tmp_path, capsys):
    src = write_lines(tmp_path / "a.en", ["x", "y", "z"])
    tgt = write_lines(tmp_path / "a.de", ["x", "y"], final=False)
    with pytest.raises(BitextError, match=f"{src}: 3 lines, {tgt}: 2 lines"):
        read_bitext_with_stats(src, tgt, "en", "de", "wmt")
    rc = prepare_bitext.main(["--src", str(src), "--tgt", str(tgt), "--src_lang", "en",
                              "--tgt_lang", "de", "--out", str(tmp_path / "data"), "--name", "wmt"])
    assert rc == 1 and "line counts differ" in capsys.readouterr().err
    assert not (tmp_path / "data" / "wmt").exists()


def test_bitext_invalid_utf8_names_line(tmp_path):
    src = write_lines(tmp_path / "a.en", ["ok", "fine", "bad"])
    tgt = tmp_path / "a.de"
    tgt.write_bytes(b"gut\nsch\xf6n\nschlecht\n")  # latin-1 on line 2
    with pytest.raises(BitextError, match=rf"{tgt}:2: not valid UTF-8 \(byte 4 of the line"):
        read_bitext_with_stats(src, tgt, "en", "de", "wmt")


def test_bitext_crlf_bom_no_final_newline_u2028(tmp_path):
    src = write_lines(tmp_path / "a.en", ["First\u2028half", "Second", "Third"], end="\r\n",
                      final=False, bom=True)
    tgt = write_lines(tmp_path / "a.de", ["Erste", "Zweite\u0085x", "Dritte\x0c"], bom=True)
    pairs, stats = read_bitext_with_stats(src, tgt, "en", "de", "wmt")
    assert pairs == [("wmt_000000001", "First\u2028half", "Erste"),
                     ("wmt_000000002", "Second", "Zweite\u0085x"),
                     ("wmt_000000003", "Third", "Dritte\x0c")]
    d = tmp_path / "d"
    write_mt_data_dir(d, pairs, "en", "de")
    assert read_table(d / "text.tc.en")["wmt_000000001"] == "First half"
    assert read_table(d / "text.tc.de")["wmt_000000002"] == "Zweite x"
    check_sorted_same_keys(d, mt_files(d))


def test_bitext_gzip_input(tmp_path):
    src = write_lines(tmp_path / "a.en.gz", ["Hello.", "Bye."])
    tgt = write_lines(tmp_path / "a.de", ["Hallo.", "Tschüss."])
    pairs, _ = read_bitext_with_stats(src, tgt, "en", "de", "news")
    assert pairs == [("news_000000001", "Hello.", "Hallo."), ("news_000000002", "Bye.", "Tschüss.")]
    bad = tmp_path / "b.en.gz"
    bad.write_bytes(gzip.compress(b"Hello.\nBye.\n")[:-6])  # truncated
    with pytest.raises(BitextError, match="cannot decompress"):
        read_bitext_with_stats(bad, tgt, "en", "de", "news")


def test_bitext_length_filters(tmp_path):
    src = write_lines(tmp_path / "a.en", ["one two three", "w " * 30, "a", "a b c d e f g h"])
    tgt = write_lines(tmp_path / "a.zh", ["一二三四", "短", "一二三四五六七八九十" * 2, "一二三四五六七八"])
    # Chinese lengths count characters: 4 chars vs 3 words is fine; 1 char vs 30 words is not.
    pairs, stats = read_bitext_with_stats(src, tgt, "en", "zh-CN", "x", max_len_ratio=9)
    assert [p[0] for p in pairs] == ["x_000000001", "x_000000004"]
    assert stats.dropped["length_ratio"] == 2
    pairs, stats = read_bitext_with_stats(src, tgt, "en", "zh", "x", max_words=5, max_chars=6,
                                          max_len_ratio=0)
    assert [p[0] for p in pairs] == ["x_000000001"]
    assert stats.dropped["too_long"] == 3


def test_bitext_duplicates_keep_first(tmp_path):
    src = write_lines(tmp_path / "a.en", ["Yes.", "Yes.", "Yes.", "Yes. "])
    tgt = write_lines(tmp_path / "a.de", ["Ja.", "Ja.", "Jawohl.", "Ja."])
    pairs, stats = read_bitext_with_stats(src, tgt, "en", "de", "x")
    assert [p[0] for p in pairs] == ["x_000000001", "x_000000003", "x_000000004"]
    assert stats.dropped["duplicate"] == 1


def test_bitext_nothing_left(tmp_path, capsys):
    src = write_lines(tmp_path / "a.en", ["", "x"])
    tgt = write_lines(tmp_path / "a.de", ["y", " "])
    rc = prepare_bitext.main(["--src", str(src), "--tgt", str(tgt), "--src_lang", "en",
                              "--tgt_lang", "de", "--out", str(tmp_path / "data"), "--name", "n"])
    err = capsys.readouterr().err
    assert rc == 1 and "no sentence pair left" in err and "blank=2" in err
    assert not (tmp_path / "data" / "n").exists() and list((tmp_path / "data").iterdir()) == []


def test_bitext_cli_subprocess_bad_name(tmp_path):
    src = write_lines(tmp_path / "a.en", ["x"])
    proc = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.prepare_bitext", "--src", str(src),
                           "--tgt", str(src), "--src_lang", "en", "--tgt_lang", "de", "--out",
                           str(tmp_path / "data"), "--name", "a b"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("prepare_bitext: error: --name must be a plain directory name")


# =========================================================================== writer

def test_mt_writer_workers_identical_and_streamed(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "_MIN_LINES_FOR_POOL", 0)
    monkeypatch.setattr(writer, "_CHUNK", 7)
    n = 200
    pairs = [(f"x_{i:09d}", f"Line \u201c{i}\u201d (Laughter)", f"Zeile {i}.") for i in range(1, n + 1)]
    consumed = []

    def stream():
        for p in pairs:
            consumed.append(p)
            yield p

    assert write_mt_data_dir(tmp_path / "a", pairs, "en", "de", workers=1) == n
    assert write_mt_data_dir(tmp_path / "b", stream(), "en", "de", workers=2) == n
    for name in mt_files(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert read_table(tmp_path / "b" / "text.lc.rm.en")["x_000000005"] == "line 5"
    assert len(consumed) == n


def test_mt_writer_rejects_unsorted_and_keeps_old_dir(tmp_path):
    d = tmp_path / "mt"
    write_mt_data_dir(d, [("a_1", "x", "y")], "en", "de")
    before = (d / "text.tc.en").read_bytes()
    with pytest.raises(DataDirError, match="strictly increasing C order: 'a_1' after 'a_2'"):
        write_mt_data_dir(d, [("a_2", "x", "y"), ("a_1", "x", "y")], "en", "de")
    with pytest.raises(DataDirError, match="both 'en'"):
        write_mt_data_dir(d, [("a_2", "x", "y")], "en", "en")
    with pytest.raises(DataDirError, match="no sentence pairs"):
        write_mt_data_dir(d, [], "en", "de")
    assert (d / "text.tc.en").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mt"]


def test_asr_writer_spk2gender_must_cover_speakers(tmp_path):
    from espnet_mtl.corpora.librispeech import Utterance

    utts = [Utterance(f"{s}-1-0000", f"{s}-1-0000", f"/x/{s}.flac", 0.0, math.inf, s, "HI")
            for s in ("1", "2")]
    with pytest.raises(DataDirError, match="spk2gender lacks speaker 2"):
        write_asr_data_dir(tmp_path / "d", utts, "en", spk2gender={"1": "m"})
    with pytest.raises(DataDirError, match="expected m or f"):
        write_asr_data_dir(tmp_path / "d", utts, "en", spk2gender={"1": "m", "2": "x"})
    assert not (tmp_path / "d").exists()
    write_asr_data_dir(tmp_path / "d", utts, "en", spk2gender={"1": "m", "2": "f", "3": "f"})
    assert read_table(tmp_path / "d" / "spk2gender") == {"1": "m", "2": "f"}
    validate_data_dir(tmp_path / "d")
