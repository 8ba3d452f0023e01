"""MuST-C reader, data-dir writer and CLI on tiny fabricated corpora."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.bin import prepare_must_c
from espnet_mtl.corpora.must_c import MustCError, Utterance, read_must_c, read_must_c_with_stats
from espnet_mtl.corpora.writer import DataDirError, format_time, write_st_data_dir
from espnet_mtl.fileio import read_table


def v1(duration, offset, wav, spk="spk.1"):
    return f"- {{duration: {duration:.6f}, offset: {offset:.6f}, speaker_id: {spk}, wav: {wav}}}"


def v2(duration, offset, wav, spk="spk.1"):
    # v2 keys, in an unusual order, with extra keys the reader must ignore.
    return f"- {{wav: {wav}, rW: 9, speaker_id: {spk}, uW: 0, offset: {offset:.6f}, duration: {duration:.6f}}}"


def make_split(root, yaml_lines, en, de, split="train", tgt="de", wavs=None, final_newline=True):
    """Write one split; `wavs` defaults to every wav named in the yaml."""
    d = root / f"en-{tgt}" / "data" / split
    (d / "txt").mkdir(parents=True, exist_ok=True)
    (d / "wav").mkdir(exist_ok=True)
    end = "\n" if final_newline else ""
    (d / "txt" / f"{split}.yaml").write_text("\n".join(yaml_lines) + "\n", encoding="utf-8")
    (d / "txt" / f"{split}.en").write_text("\n".join(en) + end, encoding="utf-8")
    (d / "txt" / f"{split}.{tgt}").write_text("\n".join(de) + end, encoding="utf-8")
    if wavs is None:
        wavs = {line.split("wav: ")[1].split(",")[0].rstrip("}") for line in yaml_lines}
    for wav in wavs:
        sf.write(d / "wav" / wav, np.zeros(160, dtype=np.int16), 16000, subtype="PCM_16")
    return d


@pytest.fixture
def corpus(tmp_path):
    """Two talks, entries out of order, offsets that sort wrongly as strings."""
    root = tmp_path / "MUSTC"
    yaml_lines = [
        v1(2.5, 100.5, "ted_12.wav", spk="spk.12"),
        v2(3.0, 20.1, "ted_12.wav", spk="spk.999"),  # speaker_id does not match the wav
        v1(1.25, 6.17, "ted_3.wav", spk="spk.3"),
    ]
    en = ["Thank you. (Applause)", "He said, \u201cIt\u2019s fine.\u201d", "Don't -- ever."]
    de = ["Vielen Dank. (Applaus)", "Er sagte: \u201eEs ist sch\u00f6n.\u201c", "Nie -- niemals."]
    make_split(root, yaml_lines, en, de)
    return root


def test_read_ids_order_and_fields(corpus):
    utts = read_must_c(corpus, "de", "train")
    assert [u.utt_id for u in utts] == [
        "ted_00003_0006170_0007420",
        "ted_00012_0020100_0023100",  # 20.1 < 100.5 numerically
        "ted_00012_0100500_0103000",
    ]
    u = utts[1]
    assert isinstance(u, Utterance)
    assert u.recording_id == u.speaker == "ted_00012"
    assert u.wav_path == str(corpus / "en-de" / "data" / "train" / "wav" / "ted_12.wav")
    assert os.path.isabs(u.wav_path)
    assert (u.start, u.end) == (20.1, 23.1)
    assert u.src_text == "He said, \u201cIt\u2019s fine.\u201d"


def test_write_data_dir(corpus, tmp_path):
    out = write_st_data_dir(tmp_path / "data" / "train.en-de", read_must_c(corpus, "de", "train"), "en", "de")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["wav.scp", "segments", "utt2spk", "spk2utt", "text"]
                           + [f"text.{c}.{lang}" for c in ("tc", "lc", "lc.rm") for lang in ("en", "de")])
    wav_dir = corpus / "en-de" / "data" / "train" / "wav"
    assert (out / "wav.scp").read_text() == (
        f"ted_00003 {wav_dir / 'ted_3.wav'}\nted_00012 {wav_dir / 'ted_12.wav'}\n")
    assert (out / "segments").read_text().splitlines() == [
        "ted_00003_0006170_0007420 ted_00003 6.170 7.420",
        "ted_00012_0020100_0023100 ted_00012 20.100 23.100",
        "ted_00012_0100500_0103000 ted_00012 100.500 103.000",
    ]
    assert read_table(out / "spk2utt") == {
        "ted_00003": "ted_00003_0006170_0007420",
        "ted_00012": "ted_00012_0020100_0023100 ted_00012_0100500_0103000",
    }
    utt2spk = read_table(out / "utt2spk")
    assert all(utt.startswith(spk) for utt, spk in utt2spk.items())
    u = "ted_00012_0100500_0103000"
    assert read_table(out / "text.tc.en")[u] == "Thank you. (Applause)"
    assert read_table(out / "text.lc.en")[u] == "thank you. (applause)"
    assert read_table(out / "text.lc.rm.en")[u] == "thank you"
    assert read_table(out / "text.tc.de")[u] == "Vielen Dank. (Applaus)"
    assert read_table(out / "text.lc.rm.de")[u] == "vielen dank"
    u = "ted_00012_0020100_0023100"
    assert read_table(out / "text.tc.en")[u] == 'He said, "It\'s fine."'
    assert read_table(out / "text.lc.rm.en")[u] == "he said it's fine"
    assert read_table(out / "text.tc.de")[u] == 'Er sagte: "Es ist sch\u00f6n."'
    assert (out / "text").read_text() == (out / "text.tc.de").read_text()
    for p in out.iterdir():  # every table sorted by key bytes
        keys = [line.split(" ", 1)[0].encode() for line in p.read_text().splitlines()]
        assert keys == sorted(keys), p.name
    # No temporary siblings are left behind.
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train.en-de"]
    # The project's own data-dir checker accepts it.
    from espnet_mtl.prep.datadir import validate_data_dir

    assert validate_data_dir(out)["utterances"] == 3


def test_rewrite_replaces_whole_dir(corpus, tmp_path):
    out = tmp_path / "train.en-de"
    utts = read_must_c(corpus, "de", "train")
    write_st_data_dir(out, utts, "en", "de")
    (out / "feats.scp").write_text("stale\n")
    write_st_data_dir(out, utts[:1], "en", "de")
    assert not (out / "feats.scp").exists()
    assert len(read_table(out / "segments")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MUSTC", "train.en-de"]


def test_interrupted_write_leaves_old_dir(corpus, tmp_path, monkeypatch):
    out = tmp_path / "train.en-de"
    utts = read_must_c(corpus, "de", "train")
    write_st_data_dir(out, utts, "en", "de")
    before = (out / "segments").read_text()
    import espnet_mtl.corpora.writer as writer

    real_write_table = writer.write_table
    calls = []

    def write_table_then_die(path, rows):  # a kill after two of the files
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write_table(path, rows)

    monkeypatch.setattr(writer, "write_table", write_table_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_st_data_dir(out, utts[:1], "en", "de")
    assert (out / "segments").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MUSTC", "train.en-de"]


def test_workers_give_identical_output(tmp_path, monkeypatch):
    import espnet_mtl.corpora.writer as writer

    monkeypatch.setattr(writer, "_MIN_LINES_FOR_POOL", 0)
    monkeypatch.setattr(writer, "_CHUNK", 7)
    utts = [Utterance(f"ted_00001_{i:07d}_{i + 500:07d}", "ted_00001", "/x/ted_1.wav", i / 1000,
                      (i + 500) / 1000, "ted_00001", f"Line \u201c{i}\u201d (Laughter)", f"Zeile {i}.")
            for i in range(0, 50000, 1000)]
    a = write_st_data_dir(tmp_path / "a", utts, "en", "de", workers=1)
    b = write_st_data_dir(tmp_path / "b", utts, "en", "de", workers=2)
    for p in a.iterdir():
        assert p.read_bytes() == (b / p.name).read_bytes()


def test_format_time():
    assert format_time(6.17 + 28.8) == "34.970"
    assert format_time(0.0) == "0.000"
    assert format_time(1.2345) == "1.2345"


# ---- traps -----------------------------------------------------------------

def test_line_count_mismatch(tmp_path):
    make_split(tmp_path, [v1(1, 0, "ted_1.wav"), v1(1, 2, "ted_1.wav")], ["a", "b"], ["a"])
    with pytest.raises(MustCError, match=r"train\.yaml: 2 entries, .*train\.en: 2 lines, .*train\.de: 1 lines"):
        read_must_c(tmp_path, "de", "train")


def test_no_final_newline(tmp_path):
    make_split(tmp_path, [v1(1, 0, "ted_1.wav"), v1(1, 2, "ted_1.wav")], ["a", "b"], ["x", "y"],
               final_newline=False)
    utts = read_must_c(tmp_path, "de", "train")
    assert [(u.src_text, u.tgt_text) for u in utts] == [("a", "x"), ("b", "y")]


def test_empty_texts_dropped_and_counted(tmp_path, caplog):
    make_split(tmp_path, [v1(1, 0, "ted_1.wav"), v1(1, 2, "ted_1.wav"), v1(1, 4, "ted_1.wav")],
               ["a", "  ", "c"], ["x", "y", ""])
    with caplog.at_level(logging.INFO):
        utts, stats = read_must_c_with_stats(tmp_path, "de", "train")
    assert [u.src_text for u in utts] == ["a"]
    assert stats.dropped["empty_transcript"] == 1 and stats.dropped["empty_translation"] == 1
    assert (stats.entries, stats.kept) == (3, 1)
    assert "empty_transcript=1, empty_translation=1" in caplog.text


def test_duplicates_keep_first(tmp_path):
    make_split(tmp_path, [v1(1, 0, "ted_1.wav"), v2(1, 0, "ted_1.wav"), v1(1, 0, "ted_2.wav")],
               ["first", "second", "other talk"], ["x", "y", "z"])
    utts, stats = read_must_c_with_stats(tmp_path, "de", "train")
    assert [u.src_text for u in utts] == ["first", "other talk"]
    assert stats.dropped["duplicate"] == 1


def test_short_segments_dropped(tmp_path):
    make_split(tmp_path, [v1(0.19, 0, "ted_1.wav"), v1(0.2, 1, "ted_1.wav"), v1(0.5, 2, "ted_1.wav")],
               ["a", "b", "c"], ["x", "y", "z"])
    utts, stats = read_must_c_with_stats(tmp_path, "de", "train")
    assert [u.src_text for u in utts] == ["b", "c"] and stats.dropped["too_short"] == 1
    utts, stats = read_must_c_with_stats(tmp_path, "de", "train", min_duration=0.3)
    assert [u.src_text for u in utts] == ["c"] and stats.dropped["too_short"] == 2


def test_missing_root(tmp_path):
    with pytest.raises(MustCError, match=f"expected a directory at {tmp_path / 'nope'}"):
        read_must_c(tmp_path / "nope", "de", "train")


def test_missing_pair_lists_existing(corpus):
    make_split(corpus, [v1(1, 0, "ted_1.wav")], ["a"], ["x"], tgt="fr")
    with pytest.raises(MustCError) as e:
        read_must_c(corpus, "es", "train")
    assert f"expected {corpus / 'en-es'}" in str(e.value)
    assert "en-de, en-fr" in str(e.value)


def test_missing_split(corpus):
    with pytest.raises(MustCError) as e:
        read_must_c(corpus, "de", "tst-COMMON")
    assert f"expected {corpus / 'en-de' / 'data' / 'tst-COMMON'}" in str(e.value)
    assert "splits under" in str(e.value) and "train" in str(e.value)


def test_missing_wav_names_yaml_line(tmp_path):
    make_split(tmp_path, [v1(1, 0, "ted_1.wav"), v1(1, 0, "ted_2.wav")], ["a", "b"], ["x", "y"],
               wavs={"ted_1.wav"})
    with pytest.raises(MustCError, match=r"train\.yaml:2: wav file ted_2\.wav not found"):
        read_must_c(tmp_path, "de", "train")


def test_unparsable_yaml_line(tmp_path):
    make_split(tmp_path, [v1(1, 0, "ted_1.wav"), "- [1, 2, 3]"], ["a", "b"], ["x", "y"], wavs={"ted_1.wav"})
    with pytest.raises(MustCError, match=r"train\.yaml:2: expected one flow mapping"):
        read_must_c(tmp_path, "de", "train")


def test_missing_key_and_bad_number(tmp_path):
    make_split(tmp_path, ["- {duration: 1.0, wav: ted_1.wav}"], ["a"], ["x"], wavs={"ted_1.wav"})
    with pytest.raises(MustCError, match=r"train\.yaml:1: missing key 'offset'"):
        read_must_c(tmp_path, "de", "train")
    make_split(tmp_path, ["- {duration: abc, offset: 1, wav: ted_1.wav}"], ["a"], ["x"], wavs={"ted_1.wav"})
    with pytest.raises(MustCError, match=r"train\.yaml:1: duration must be a number"):
        read_must_c(tmp_path, "de", "train")


def test_writer_rejects_duplicate_ids(tmp_path):
    u = Utterance("ted_00001_0000000_0001000", "ted_00001", "/x.wav", 0.0, 1.0, "ted_00001", "a", "b")
    with pytest.raises(DataDirError, match="duplicate utterance id"):
        write_st_data_dir(tmp_path / "d", [u, u], "en", "de")
    assert not (tmp_path / "d").exists()


# ---- CLI -------------------------------------------------------------------

def test_cli_writes_splits(corpus, tmp_path, caplog):
    make_split(corpus, [v1(1, 0, "ted_5.wav")], ["Hi."], ["Hallo."], split="dev")
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        rc = prepare_must_c.main(["--root", str(corpus), "--tgt_lang", "de", "--splits", "train,dev",
                                  "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev.en-de", "train.en-de"]
    assert read_table(out / "dev.en-de" / "text.lc.rm.en") == {"ted_00005_0000000_0001000": "hi"}
    assert "kept 3 of 3 entries" in caplog.text


def test_cli_missing_pair(corpus, tmp_path, capsys):
    rc = prepare_must_c.main(["--root", str(corpus), "--tgt_lang", "ja", "--out", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("prepare_must_c: error: language pair en-ja not found")
    assert "en-de" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_cli_subprocess_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.prepare_must_c", "--root", str(tmp_path / "none"),
                           "--tgt_lang", "de", "--out", str(tmp_path / "data")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == f"prepare_must_c: error: MuST-C root not found: expected a directory at {tmp_path / 'none'}\n"
