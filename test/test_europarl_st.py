"""Europarl-ST v1.1: reader traps, stage 1 CLI and stage 3 m4a decoding on a fabricated corpus.

Reader tests use placeholder audio files (the reader only checks they
exist). The CLI and stage 3 tests use real 44.1 kHz stereo AAC .m4a files
encoded by the ffmpeg binary of imageio-ffmpeg, the decoder stage 3 uses.
"""

import logging
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.prep.audio_dump import AudioError, dump_audio, ffmpeg_exe, load_recording
from espnet_mtl.bin import prepare_europarl_st
from espnet_mtl.corpora.europarl_st import (LANGS, PAIRS, SPLITS, EuroparlSTError, Utterance,
                                            read_europarl_st, read_europarl_st_with_stats)
from espnet_mtl.corpora.writer import write_st_data_dir
from espnet_mtl.prep.datadir import validate_data_dir
from espnet_mtl.fileio import read_table

FS = 16000
SRC_FS = 44100
# Speech ids with dots; one is a prefix of another (3-24 / 3-243).
A, B, C = "en.20080924.31.3-243", "en.20080924.31.3-24", "en.20081008.4.1-5"
F = "fr.20090114.7.3-101"


def make_split(root, segs, src, tgt, *, pair=("en", "de"), split="train", audios=None,
               newline="\n", final_newline=True):
    """Write one split in the real layout; placeholder audios for every speech named."""
    s, t = pair
    d = root / s / t / split
    d.mkdir(parents=True, exist_ok=True)
    end = newline if final_newline else ""
    for name, lines in (("segments.lst", segs), (f"segments.{s}", src), (f"segments.{t}", tgt)):
        text = newline.join(lines) + end
        (d / name).write_bytes(text.encode("utf-8"))
    audio_dir = root / s / "audios"
    audio_dir.mkdir(exist_ok=True)
    if audios is None:
        audios = {line.split()[0] for line in segs if line.split()}
    for speech in audios:
        (audio_dir / (speech + ".m4a")).write_bytes(b"placeholder")
    return d


def seg_path(root, split="train", pair=("en", "de")):
    return root / pair[0] / pair[1] / split / "segments.lst"


# ---- reader: layout and ids ------------------------------------------------

def test_pairs_and_splits():
    assert len(PAIRS) == 72 and len(set(PAIRS)) == 72
    assert all(s != t and s in LANGS and t in LANGS for s, t in PAIRS)
    assert SPLITS == ("train", "dev", "test", "train-noisy")


def test_ids_paths_and_numeric_order(tmp_path):
    make_split(tmp_path, [f"{A} 10.5 12.25", f"{A} 9.0 10.0", f"{B} 100.5 101.5", f"{B} 20.1 21.3"],
               ["ten", "nine", "hundred", "twenty"], ["zehn", "neun", "hundert", "zwanzig"])
    utts = read_europarl_st(tmp_path, "en", "de", "train")
    # Numerically by time within a speech (as strings "10.5" < "9.0" and "100.5" < "20.1").
    assert [u.utt_id for u in utts] == [
        f"{B}_0020100_0021300", f"{B}_0100500_0101500",
        f"{A}_0009000_0010000", f"{A}_0010500_0012250",
    ]
    u = utts[3]
    assert isinstance(u, Utterance)
    assert u.recording_id == A and u.speaker == A + "_" and u.utt_id.startswith(u.speaker)
    # The whole dotted id plus .m4a: nothing is stripped as a "suffix".
    assert u.wav_path == os.path.join(os.path.abspath(tmp_path), "en", "audios", A + ".m4a")
    assert (u.start, u.end, u.src_text, u.tgt_text) == (10.5, 12.25, "ten", "zehn")


def test_audio_named_by_stem_does_not_count(tmp_path):
    # Only en.20080924.31.3.m4a exists (what a suffix-stripping helper would look for).
    make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"], audios={"en.20080924.31.3"})
    with pytest.raises(EuroparlSTError) as e:
        read_europarl_st(tmp_path, "en", "de", "train")
    expected = os.path.join(os.path.abspath(tmp_path), "en", "audios", A + ".m4a")
    assert str(e.value) == (f"{seg_path(tmp_path)}:1: audio of speech {A} not found: "
                            f"expected {expected}")


def test_missing_audio_names_line_and_path(tmp_path):
    make_split(tmp_path, [f"{A} 0 1", f"{A} 1 2", f"{B} 0 1"], ["a", "b", "c"], ["x", "y", "z"],
               audios={A})
    with pytest.raises(EuroparlSTError,
                       match=rf"segments\.lst:3: audio of speech {B} not found: expected .*/en/audios/"
                             rf"{B}\.m4a$"):
        read_europarl_st(tmp_path, "en", "de", "train")


def test_missing_audios_dir(tmp_path):
    make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"], audios=set())
    (tmp_path / "en" / "audios").rmdir()
    with pytest.raises(EuroparlSTError, match=r"audio directory not found: expected .*/en/audios"):
        read_europarl_st(tmp_path, "en", "de", "train")


# ---- reader: traps ---------------------------------------------------------

def test_line_count_mismatch_names_all_three(tmp_path):
    make_split(tmp_path, [f"{A} 0 1", f"{A} 1 2", f"{A} 2 3"], ["a", "b"], ["x", "y", "z"])
    with pytest.raises(EuroparlSTError, match=r"segments\.lst: 3 lines, .*segments\.en: 2 lines, "
                                              r".*segments\.de: 3 lines"):
        read_europarl_st(tmp_path, "en", "de", "train")


@pytest.mark.parametrize("line, message", [
    (f"{A} 1.0", r"segments\.lst:2: expected '<speech_id> <start_s> <end_s>' \(3 fields\), got 2"),
    (f"{A} 1.0 2.0 3.0", r"segments\.lst:2: expected .* got 4"),
    ("", r"segments\.lst:2: expected .* got 0"),
    (f"{A} 1,5 2.0", r"segments\.lst:2: start time must be a number of seconds, got '1,5'"),
    (f"{A} 1.0 nan", r"segments\.lst:2: end time must be a finite, non-negative number"),
    (f"{A} -0.5 2.0", r"segments\.lst:2: start time must be a finite, non-negative number.*'-0.5'"),
    (f"{A} 2.0 1.0", r"segments\.lst:2: start 2.0 is not before end 1.0 \(the third field is the end"),
    (f"{A} 2.0 2.0", r"segments\.lst:2: start 2.0 is not before end 2.0"),
    ("../x 0 1", r"segments\.lst:2: '\.\./x' is not a speech id"),
])
def test_malformed_segment_line(tmp_path, line, message):
    make_split(tmp_path, [f"{A} 0 1", line], ["a", "b"], ["x", "y"], audios={A})
    with pytest.raises(EuroparlSTError, match=message):
        read_europarl_st(tmp_path, "en", "de", "train")


def test_empty_texts_dropped_and_counted(tmp_path, caplog):
    make_split(tmp_path, [f"{A} 0 1", f"{A} 1 2", f"{A} 2 3"], ["a", "  ", "c"], ["x", "y", "\t"])
    with caplog.at_level(logging.INFO):
        utts, stats = read_europarl_st_with_stats(tmp_path, "en", "de", "train")
    assert [u.src_text for u in utts] == ["a"]
    assert stats.dropped["empty_transcript"] == 1 and stats.dropped["empty_translation"] == 1
    assert (stats.segments, stats.kept) == (3, 1)
    assert ("Europarl-ST en-de train: kept 1 of 3 segments; dropped: empty_transcript=1, "
            "empty_translation=1, too_short=0, duplicate=0") in caplog.text


def test_short_segments_dropped(tmp_path):
    # 1.0 -> 1.2 is 0.19999999999999996 s in floats: still 0.2 s, kept.
    make_split(tmp_path, [f"{A} 0 0.19", f"{A} 1.0 1.2", f"{A} 2 2.5"], ["a", "b", "c"], ["x", "y", "z"])
    utts, stats = read_europarl_st_with_stats(tmp_path, "en", "de", "train")
    assert [u.src_text for u in utts] == ["b", "c"] and stats.dropped["too_short"] == 1
    utts, stats = read_europarl_st_with_stats(tmp_path, "en", "de", "train", min_duration=0.3)
    assert [u.src_text for u in utts] == ["c"] and stats.dropped["too_short"] == 2


def test_duplicates_keep_first(tmp_path):
    # Same speech and same times in ms (1.0004 rounds to 1000 ms); another speech is no duplicate.
    make_split(tmp_path, [f"{A} 1.0 2.0", f"{A} 1.0004 2.0", f"{B} 1.0 2.0"],
               ["first", "second", "other speech"], ["x", "y", "z"])
    utts, stats = read_europarl_st_with_stats(tmp_path, "en", "de", "train")
    assert [u.src_text for u in utts] == ["other speech", "first"]
    assert stats.dropped["duplicate"] == 1 and stats.kept == 2


@pytest.mark.parametrize("newline, final_newline", [("\n", False), ("\r\n", True), ("\r\n", False)])
def test_line_endings(tmp_path, newline, final_newline):
    make_split(tmp_path, [f"{A} 0 1", f"{A} 1 2"], ["a", "b"], ["x", "y"], newline=newline,
               final_newline=final_newline)
    utts = read_europarl_st(tmp_path, "en", "de", "train")
    assert [(u.src_text, u.tgt_text, u.end) for u in utts] == [("a", "x", 1.0), ("b", "y", 2.0)]


def test_utf8_bom(tmp_path):
    make_split(tmp_path, ["\ufeff" + f"{A} 0 1"], ["\ufeffÄpfel"], ["\ufeffpommes"],
               pair=("de", "fr"), audios={A})
    utts = read_europarl_st(tmp_path, "de", "fr", "train")
    assert [(u.recording_id, u.src_text, u.tgt_text) for u in utts] == [(A, "Äpfel", "pommes")]


def test_invalid_utf8_names_line(tmp_path):
    d = make_split(tmp_path, [f"{A} 0 1", f"{A} 1 2"], ["a", "b"], ["x", "y"])
    (d / "segments.de").write_bytes("x\nStra\u00dfe\n".encode("latin-1"))
    with pytest.raises(EuroparlSTError, match=r"segments\.de:2: not valid UTF-8"):
        read_europarl_st(tmp_path, "en", "de", "train")


def test_missing_text_file(tmp_path):
    d = make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"])
    (d / "segments.de").unlink()
    with pytest.raises(EuroparlSTError, match=r"file not found: expected .*/en/de/train/segments\.de$"):
        read_europarl_st(tmp_path, "en", "de", "train")


# ---- reader: where things are ----------------------------------------------

def test_missing_root(tmp_path):
    with pytest.raises(EuroparlSTError, match=f"root not found: expected a directory at {tmp_path / 'no'}"):
        read_europarl_st(tmp_path / "no", "en", "de", "train")


def test_missing_pair_lists_pairs_under_root(tmp_path):
    make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"])
    make_split(tmp_path, [f"{F} 0 1"], ["a"], ["x"], pair=("fr", "en"))
    with pytest.raises(EuroparlSTError) as e:
        read_europarl_st(tmp_path, "en", "it", "train")
    assert str(e.value) == (f"language pair en-it not found: expected {tmp_path / 'en' / 'it'}; "
                            f"pairs under {tmp_path}: en-de, fr-en")


@pytest.mark.parametrize("src, tgt, why", [("en", "en", "source and target are the same language"),
                                           ("en", "ja", "unknown language code 'ja'")])
def test_unknown_direction(tmp_path, src, tgt, why):
    with pytest.raises(EuroparlSTError, match=f"no direction {src}->{tgt} \\({why}\\)"):
        read_europarl_st(tmp_path, src, tgt, "train")


def test_missing_and_unknown_split(tmp_path):
    make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"])
    make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"], split="dev")
    with pytest.raises(EuroparlSTError) as e:
        read_europarl_st(tmp_path, "en", "de", "test")
    assert str(e.value) == (f"split test not found: expected {tmp_path / 'en' / 'de' / 'test'}; "
                            f"splits under {tmp_path / 'en' / 'de'}: dev, train")
    with pytest.raises(EuroparlSTError, match="unknown split 'tst-COMMON'; Europarl-ST splits: train, "
                                              "dev, test, train-noisy"):
        read_europarl_st(tmp_path, "en", "de", "tst-COMMON")


def test_language_dir_as_root(tmp_path):
    make_split(tmp_path, [f"{A} 0 1"], ["a"], ["x"])
    with pytest.raises(EuroparlSTError, match="looks like one source language's directory"):
        read_europarl_st(tmp_path / "en", "en", "de", "train")


# ---- real m4a corpus: stage 1 CLI and stage 3 ---------------------------------

TONES = {A: (2.0, 440), B: (1.5, 550), C: (1.0, 660), F: (1.2, 770)}  # seconds, Hz


def write_m4a(path, seconds, freq):
    """44.1 kHz stereo AAC in an MP4 container, like the Europarl-ST audios."""
    t = np.arange(int(seconds * SRC_FS)) / SRC_FS
    left = 0.3 * np.sin(2 * np.pi * freq * t)
    wav = path.parent / (path.name + ".wav")
    sf.write(wav, np.stack([left, 0.5 * left], axis=1).astype(np.float32), SRC_FS)
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac",
                    "-b:a", "96k", str(path)], check=True)
    wav.unlink()


def write_split(root, pair, split, rows):
    d = root / pair[0] / pair[1] / split
    d.mkdir(parents=True)
    (d / "segments.lst").write_text("".join(f"{s} {a} {b}\n" for s, a, b, _, _ in rows))
    (d / f"segments.{pair[0]}").write_text("".join(f"{x}\n" for *_, x, _ in rows))
    (d / f"segments.{pair[1]}").write_text("".join(f"{y}\n" for *_, y in rows))
    for extra in ("speeches.lst", "speakers.lst", "url.lst"):
        (d / extra).write_text("unused\n")


EN_DE = {
    "train": [(A, "1.2", "1.95", "Thank you.", "Danke."),
              (A, "0.1", "1.1", "Mr President, (applause)", "Herr Präsident, (Beifall)"),
              (B, "0.25", "1.5", "Next item.", "Nächster Punkt."),
              (B, "0.9", "1.8", "It ends late.", "Es endet spät."),  # after the 1.5 s audio: clamped
              (C, "0.0", "0.8", "Vote.", "Abstimmung.")],
    "dev": [(C, "0.1", "0.9", "Dev.", "Entw.")],
    "test": [(A, "0.5", "1.5", "Test.", "Prüfung.")],
    "train-noisy": [(B, "0.0", "1.0", "Noisy.", "Verrauscht.")],
}
FR_EN = {
    "train": [(F, "0.0", "0.6", "Merci.", "Thanks."), (F, "0.6", "1.2", "Oui.", "Yes.")],
    "dev": [(F, "0.2", "1.0", "Non.", "No.")],
    "test": [(F, "0.3", "1.1", "Peut-être.", "Maybe.")],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("europarl") / "v1.1"
    for speech, (seconds, freq) in TONES.items():
        audio_dir = root / speech[:2] / "audios"
        audio_dir.mkdir(parents=True, exist_ok=True)
        write_m4a(audio_dir / (speech + ".m4a"), seconds, freq)
    for pair, splits in ((("en", "de"), EN_DE), (("fr", "en"), FR_EN)):
        for split, rows in splits.items():
            write_split(root, pair, split, rows)
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "data"
    assert prepare_europarl_st.main(["--root", str(corpus), "--src_lang", "en", "--tgt_lang", "de",
                                     "--out", str(out)]) == 0
    return out


def test_cli_writes_valid_sorted_dirs_without_train_noisy(prepared, corpus):
    assert sorted(p.name for p in prepared.iterdir()) == ["dev.en-de", "test.en-de", "train.en-de"]
    for d in prepared.iterdir():
        assert validate_data_dir(d)["warnings"] == 0
        utt2spk = read_table(d / "utt2spk")
        ids = list(utt2spk)
        assert ids == sorted(ids, key=lambda s: s.encode("utf-8"))
        # Kaldi's rule: sorted by utterance id is also sorted by speaker (the
        # fixture has speech ids where one is a prefix of another).
        spks = list(utt2spk.values())
        assert spks == sorted(spks, key=lambda s: s.encode("utf-8"))
        for name in ("segments", "text", *(f"text.{c}.{lang}" for c in ("tc", "lc", "lc.rm")
                                           for lang in ("en", "de"))):
            assert list(read_table(d / name)) == ids, name
        for rec, path in read_table(d / "wav.scp").items():
            assert path == str(corpus / "en" / "audios" / (rec + ".m4a"))
    train = prepared / "train.en-de"
    assert read_table(train / "segments") == {
        f"{A}_0000100_0001100": f"{A} 0.100 1.100",
        f"{A}_0001200_0001950": f"{A} 1.200 1.950",
        f"{B}_0000250_0001500": f"{B} 0.250 1.500",
        f"{B}_0000900_0001800": f"{B} 0.900 1.800",  # clamped at stage 3, not here
        f"{C}_0000000_0000800": f"{C} 0.000 0.800",
    }
    assert read_table(train / "utt2spk")[f"{B}_0000900_0001800"] == B + "_"
    assert read_table(train / "text.tc.de")[f"{A}_0000100_0001100"] == "Herr Präsident, (Beifall)"
    assert read_table(train / "text.lc.en")[f"{A}_0000100_0001100"] == "mr president, (applause)"


def test_cli_train_noisy_only_when_asked(corpus, tmp_path, caplog):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        rc = prepare_europarl_st.main(["--root", str(corpus), "--src_lang", "en", "--tgt_lang", "de",
                                       "--splits", "train,train-noisy", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["train-noisy.en-de", "train.en-de"]
    assert list(read_table(out / "train-noisy.en-de" / "utt2spk")) == [f"{B}_0000000_0001000"]
    assert "Europarl-ST en-de train-noisy: kept 1 of 1 segments" in caplog.text
    assert "Europarl-ST en-de train: kept 5 of 5 segments" in caplog.text


def test_cli_other_direction(corpus, tmp_path):
    out = tmp_path / "data"
    assert prepare_europarl_st.main(["--root", str(corpus), "--src_lang", "fr", "--tgt_lang", "en",
                                     "--splits", "dev", "--out", str(out)]) == 0
    d = out / "dev.fr-en"
    assert validate_data_dir(d)["utterances"] == 1
    assert read_table(d / "text.tc.fr") == {f"{F}_0000200_0001000": "Non."}
    assert read_table(d / "text") == {f"{F}_0000200_0001000": "No."}


@pytest.mark.parametrize("args, message", [
    (["--src_lang", "en", "--tgt_lang", "en"], "Europarl-ST has no direction en->en"),
    (["--src_lang", "en", "--tgt_lang", "de", "--splits", "train,tst-COMMON"], "unknown split 'tst-COMMON'"),
    (["--src_lang", "en", "--tgt_lang", "fr"], "language pair en-fr not found"),
])
def test_cli_checks_up_front(corpus, tmp_path, capsys, args, message):
    rc = prepare_europarl_st.main(["--root", str(corpus), *args, "--out", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"prepare_europarl_st: error: {message}")
    assert "Traceback" not in err and not (tmp_path / "data").exists()
    if "en-fr" in message:
        assert "pairs under" in err and "en-de, fr-en" in err


def test_stage3_decodes_m4a_to_16k_mono_and_clamps(prepared, corpus, tmp_path):
    # 0.3 s past the 1.5 s audio: clamped under a 0.5 s tolerance (dropped under the default).
    stats = dump_audio(prepared / "train.en-de", tmp_path / "dump", feats_type="raw", fs=FS,
                       overrun_tolerance=0.5)
    assert stats["utterances"] == 5 and stats["clamped_segments"] == 1
    out = tmp_path / "dump"
    assert validate_data_dir(out)["utterances"] == 5
    lengths = {u: int(n) for u, n in read_table(out / "utt2num_samples").items()}
    assert lengths == {
        f"{A}_0000100_0001100": 16000, f"{A}_0001200_0001950": 12000,
        f"{B}_0000250_0001500": 20000,
        f"{B}_0000900_0001800": 9600,  # 0.9 s to the audio end at 1.5 s, not to 1.8 s
        f"{C}_0000000_0000800": 12800,
    }
    wav_scp = read_table(out / "wav.scp")
    # Every cut lies within its recording once clamped.
    for utt, value in read_table(prepared / "train.en-de" / "segments").items():
        rec, start = value.split()[0], float(value.split()[1])
        assert round(start * FS) + lengths[utt] <= TONES[rec][0] * FS
    audio, fs = sf.read(wav_scp[f"{A}_0000100_0001100"], dtype="float32")
    assert fs == FS and audio.ndim == 1 and len(audio) == 16000
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * FS / len(audio) - 440) < 5
    # Channels are averaged (0.3 and 0.15 amplitude: 0.225), not summed.
    assert 0.2 < np.abs(audio).max() < 0.26
    # The clamped utterance ends where the recording ends.
    clamped, _ = sf.read(wav_scp[f"{B}_0000900_0001800"], dtype="float32")
    whole = load_recording(str(corpus / "en" / "audios" / (B + ".m4a")), FS, rec_id=B)
    assert len(whole) == 24000
    assert np.abs(clamped - whole[-9600:]).max() < 1e-4  # PCM16 rounding
    assert read_table(out / "overruns") == {f"{B}_0000900_0001800": f"{B} clamped 1.800 1.500 0.300"}


def _one_recording_dir(tmp_path, path, rec=A, times=((0.0, 0.5),)):
    utts = [Utterance(f"{rec}_{round(s * 1000):07d}_{round(e * 1000):07d}", rec, str(path), s, e, rec,
                      "Hello.", "Hallo.") for s, e in times]
    return write_st_data_dir(tmp_path / "data", utts, "en", "de")


def test_stage3_too_little_left_after_clamping(corpus, tmp_path):
    path = corpus / "en" / "audios" / (A + ".m4a")
    d = _one_recording_dir(tmp_path, path, times=((1.95, 2.05),))  # clamped to 0.05 s
    utt = f"{A}_0001950_0002050"
    with pytest.raises(AudioError) as e:
        dump_audio(d, tmp_path / "dump", min_samples=2000)
    assert str(e.value) == (f"utterance {utt}: only 800 samples at {FS} Hz after cutting "
                            f"[1.95, 2.05] s from recording {A} ({path}, audio of 2.00 s): "
                            f"fix its segment or remove it")


def test_stage3_segment_starting_at_the_audio_end_is_dropped(corpus, tmp_path):
    path = corpus / "en" / "audios" / (A + ".m4a")
    d = _one_recording_dir(tmp_path, path, times=((0.5, 1.0), (2.0, 2.5)))
    stats = dump_audio(d, tmp_path / "dump")
    assert stats["utterances"] == 1 and stats["dropped_segments"] == 1
    assert list(read_table(tmp_path / "dump" / "text.tc.de")) == [f"{A}_0000500_0001000"]


def _remux(src, dst, *args):
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(dst)],
                   check=True)


@pytest.mark.parametrize("kind, reason", [
    ("0-byte", "cannot read audio: the file is empty (0 bytes)"),
    ("no moov", "cannot read audio: not a readable audio file (1000 bytes; corrupt or unsupported "
                "format): ffmpeg exited with status"),
    ("garbage", "cannot read audio: not a readable audio file (4096 bytes"),
    # moov first, data cut: ffmpeg exits 0 with part of the audio; must not pass as shorter audio.
    ("truncated", "cannot read audio: ffmpeg reported decoding errors"),
    ("no samples", "the audio file is empty (no audio stream"),
])
def test_stage3_bad_m4a_names_recording(corpus, tmp_path, kind, reason):
    good = corpus / "en" / "audios" / (A + ".m4a")
    bad = tmp_path / (C + ".m4a")
    if kind == "0-byte":
        bad.write_bytes(b"")
    elif kind == "no moov":  # the encoder writes moov last
        bad.write_bytes(good.read_bytes()[:1000])
    elif kind == "garbage":
        bad.write_bytes(bytes(range(256)) * 16)
    elif kind == "truncated":
        _remux(good, tmp_path / "fast.m4a", "-c", "copy", "-movflags", "+faststart")
        data = (tmp_path / "fast.m4a").read_bytes()
        bad.write_bytes(data[:len(data) * 2 // 3])
    else:
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        "anullsrc=r=44100:cl=stereo", "-t", "0", "-c:a", "aac", str(bad)], check=True)
    d = _one_recording_dir(tmp_path, bad, rec=C)
    with pytest.raises(AudioError) as e:
        dump_audio(d, tmp_path / "dump")
    assert str(e.value).startswith(f"recording {C} ({bad}): {reason}")
    assert not (tmp_path / "dump" / "wav.scp").exists()


def test_stage3_missing_m4a(tmp_path):
    d = _one_recording_dir(tmp_path, tmp_path / (C + ".m4a"), rec=C)
    with pytest.raises(AudioError, match=rf"recording {C} \(.*\): cannot read audio: the file does not exist"):
        dump_audio(d, tmp_path / "dump")


def test_load_m4a_with_speed_and_uppercase_extension(corpus, tmp_path):
    upper = tmp_path / (B + ".M4A")
    upper.write_bytes((corpus / "en" / "audios" / (B + ".m4a")).read_bytes())
    assert len(load_recording(str(upper), FS, rec_id=B)) == 24000  # 1.5 s
    faster = load_recording(str(upper), FS, speed=1.25, rec_id=B)
    assert len(faster) == 19200  # 1.5 s played 1.25x faster is 1.2 s
