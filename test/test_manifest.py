"""The generic manifest reader and the lhotse import (stage 1 for your own corpus).

Fabricated corpora: a few short wav files, manifests written by the test (TSV and
JSON Lines), and lhotse manifests written with lhotse's own API.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_mtl.bin import prepare_manifest
from espnet_mtl.corpora.manifest import ManifestError, read_manifest

HEADER = "id\taudio\tstart\tend\tspeaker\tsrc_text\ttgt_text\n"


@pytest.fixture()
def corpus(tmp_path):
    """Two 3 s recordings under audio/ next to the manifests."""
    (tmp_path / "audio").mkdir()
    rng = np.random.default_rng(0)
    for name in ("talk1", "talk2"):
        soundfile.write(tmp_path / "audio" / f"{name}.wav",
                        (rng.standard_normal(48000) * 0.05).astype("float32"), 16000)
    return tmp_path


def _tsv(path, rows, header=HEADER, bom=False):
    text = header + "".join("\t".join(r) + "\n" for r in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


ROWS = [
    ("u1", "audio/talk1.wav", "0.0", "1.2", "spk1", "hello world", "hallo welt"),
    ("u2", "audio/talk1.wav", "1.2", "2.5", "spk1", 'a "quoted" text', "ein text"),
    ("u3", "audio/talk2.wav", "0.5", "2.0", "spk2", "good morning", "guten morgen"),
]


def test_tsv_rows_kinds_and_ids(corpus):
    rows = [*ROWS,
            ("u4", "audio/talk2.wav", "2.0", "2.9", "spk2", "only a transcript", ""),  # ASR-only
            ("u5", "", "", "", "", "text only", "nur text"),                            # MT-only
            ("u6", "audio/talk2.wav", "0.1", "0.4", "spk2", "", "keine quelle"),        # no transcript
            ("u7", "audio/talk2.wav", "0.1", "0.4", "spk2", " ", "")]                    # empty
    m = read_manifest(_tsv(corpus / "train.tsv", rows, bom=True))
    assert [r.utt_id for r in m.st] == ["spk1-u1", "spk1-u2", "spk2-u3"]  # Kaldi: speaker first
    assert m.st[1].src_text == 'a "quoted" text'                          # quoting off
    assert m.st[0].recording_id == "audio-talk1" and m.st[0].end == 1.2
    assert m.st[0].wav_path == str(corpus / "audio" / "talk1.wav")        # relative to the manifest
    assert [r.utt_id for r in m.asr_only] == ["spk2-u4"]
    assert [(r.utt_id, r.src_text, r.tgt_text) for r in m.mt_only] == [("u5", "text only", "nur text")]
    assert m.dropped == {"no_transcript": 1, "empty": 1}


def test_duplicates_dropped_and_counted_conflicts_named(corpus):
    m = read_manifest(_tsv(corpus / "a.tsv", [*ROWS, ROWS[0]]))
    assert len(m.st) == 3 and m.dropped["duplicate"] == 1
    other = ("u1", "audio/talk2.wav", "0.0", "1.0", "spk1", "x", "y")
    with pytest.raises(ManifestError, match=r"b.tsv:5: id u1 again, with other content than at "
                                            r".*b.tsv:2"):
        read_manifest(_tsv(corpus / "b.tsv", [*ROWS, other]))


@pytest.mark.parametrize("header, rows, message", [
    ("id\taudio\tsrc_text\n", [], r"c.tsv:1: header lacks column\(s\) tgt_text"),
    (HEADER, [("u1", "audio/nope.wav", "0", "1", "s", "a", "b")],
     r"c.tsv:2: audio 'audio/nope.wav' not found .*--missing_audio drop"),
    (HEADER, [("u1", "audio/talk1.wav", "1.0", "1.0", "s", "a", "b")],
     r"c.tsv:2: end 1.0 is not after start 1.0"),
    (HEADER, [("u1", "audio/talk1.wav", "zero", "1.0", "s", "a", "b")],
     r"c.tsv:2: start 'zero' is not a number of seconds"),
    (HEADER, [("u1", "audio/talk1.wav", "0", "1", "s", "a\tb", "c")],
     r"c.tsv:2: 8 tab-separated fields, but the header has 7; a tab inside a text\? .*JSON Lines"),
    (HEADER, [("u 1", "audio/talk1.wav", "0", "1", "s", "a", "b")],
     r"c.tsv:2: id 'u 1' must be non-empty without whitespace"),
    (HEADER, [("u1", "audio/talk1.wav", "0", "", "s", "a", "b")],
     r"c.tsv:2: give both start and end"),
])
def test_traps_are_errors_naming_file_and_line(corpus, header, rows, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(_tsv(corpus / "c.tsv", rows, header=header))


def test_missing_audio_can_be_dropped_and_counted(corpus):
    rows = [*ROWS, ("u9", "audio/nope.wav", "0", "1", "s", "a", "b")]
    m = read_manifest(_tsv(corpus / "d.tsv", rows), missing_audio="drop")
    assert len(m.st) == 3 and m.dropped["missing_audio"] == 1


def test_jsonl_texts_may_hold_tabs_and_columns_map(corpus):
    lines = [{"utt": "u1", "path": "audio/talk1.wav", "src_text": "a\tb\nc", "tgt_text": "x",
              "extra": 1},
             {"utt": "u2", "path": "audio/talk2.wav", "src_text": "y", "tgt_text": None}]
    path = corpus / "e.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    m = read_manifest(path, columns="id=utt,audio=path")
    assert [(r.utt_id, r.src_text, r.end) for r in m.st] == [("u1", "a b c", float("inf"))]
    assert [r.utt_id for r in m.asr_only] == ["u2"]
    path.write_text('{"utt": "u1"\n')
    with pytest.raises(ManifestError, match=r"e.jsonl:1: not a JSON object"):
        read_manifest(path, columns="id=utt,audio=path")


def test_mixed_whole_files_and_segments(corpus):
    rows = [ROWS[0], ("w1", "audio/talk2.wav", "", "", "", "whole file", "ganze datei")]
    m = read_manifest(_tsv(corpus / "f.tsv", rows))
    whole = next(r for r in m.st if r.utt_id == "w1")
    assert (whole.recording_id, whole.start, whole.end) == ("w1", 0.0, 3.0)


def _data_dir_files(d: Path) -> dict:
    return {p.name: p.read_text() for p in sorted(d.iterdir())}


def test_prepare_writes_st_asr_only_and_mt_only_dirs(corpus):
    rows = [*ROWS, ("u4", "audio/talk2.wav", "2.0", "2.9", "spk2", "only asr", ""),
            ("u5", "", "", "", "", "text only", "nur text")]
    _tsv(corpus / "train.tsv", rows)
    _tsv(corpus / "dev.tsv", ROWS[:2])
    out = corpus / "data"
    assert prepare_manifest.main(["--manifest_dir", str(corpus), "--splits", "train,dev",
                                  "--src_lang", "en", "--tgt_lang", "de", "--out", str(out)]) == 0
    st = _data_dir_files(out / "train.en-de")
    assert st["segments"].splitlines()[0] == "spk1-u1 audio-talk1 0.000 1.200"
    assert "text.lc.rm.en" in st and st["text"] == st["text.tc.de"]
    assert (out / "train_asr_only.en" / "text.tc.en").read_text() == "spk2-u4 only asr\n"
    assert (out / "train_mt_only.en-de" / "text.tc.de").read_text() == "u5 nur text\n"
    assert not (out / "dev_asr_only.en").exists()
    # a bad split leaves nothing written: every manifest is read first
    _tsv(corpus / "test.tsv", [("u1", "audio/x.wav", "0", "1", "s", "a", "b")])
    assert prepare_manifest.main(["--manifest_dir", str(corpus), "--splits", "train,test",
                                  "--src_lang", "en", "--tgt_lang", "de",
                                  "--out", str(corpus / "data2")]) == 1
    assert not (corpus / "data2").exists()


@pytest.mark.parametrize("form", ["recordings_supervisions", "cuts"])
def test_lhotse_manifests_read_back_to_the_tsv_data_dir(corpus, form):
    lhotse = pytest.importorskip("lhotse")
    _tsv(corpus / "train.tsv", [*ROWS, ("u4", "audio/talk2.wav", "2.0", "2.9", "spk2",
                                        "only asr", "")])
    recordings = lhotse.RecordingSet.from_recordings(
        lhotse.Recording.from_file(corpus / "audio" / f"{n}.wav", recording_id=f"audio-{n}")
        for n in ("talk1", "talk2"))
    sups = lhotse.SupervisionSet.from_segments(
        lhotse.SupervisionSegment(id=uid, recording_id=f"audio-{Path(audio).stem}",
                                  start=float(s), duration=float(e) - float(s), speaker=spk,
                                  text=src, custom={"translation": tgt} if tgt else None)
        for uid, audio, s, e, spk, src, tgt in
        [*ROWS, ("u4", "audio/talk2.wav", "2.0", "2.9", "spk2", "only asr", "")])
    lhotse_dir = corpus / "lhotse"
    lhotse_dir.mkdir()
    if form == "cuts":
        lhotse.CutSet.from_manifests(recordings=recordings, supervisions=sups).to_file(
            lhotse_dir / "mine_cuts_train.jsonl.gz")
    else:
        recordings.to_file(lhotse_dir / "mine_recordings_train.jsonl.gz")
        sups.to_file(lhotse_dir / "mine_supervisions_train.jsonl.gz")
    common = ["--splits", "train", "--src_lang", "en", "--tgt_lang", "de"]
    assert prepare_manifest.main(["--manifest_dir", str(corpus), *common,
                                  "--out", str(corpus / "from_tsv")]) == 0
    assert prepare_manifest.main(["--manifest_dir", str(lhotse_dir), "--input", "lhotse",
                                  *common, "--out", str(corpus / "from_lhotse")]) == 0
    for d in ("train.en-de", "train_asr_only.en"):
        assert _data_dir_files(corpus / "from_lhotse" / d) == \
            _data_dir_files(corpus / "from_tsv" / d)


def test_lhotse_errors_name_the_recording(corpus):
    lhotse = pytest.importorskip("lhotse")
    rec = lhotse.Recording(id="r1", sources=[lhotse.audio.AudioSource(
        type="url", channels=[0], source="https://example.org/a.wav")], sampling_rate=16000,
        num_samples=16000, duration=1.0)
    d = corpus / "lh"
    d.mkdir()
    lhotse.RecordingSet.from_recordings([rec]).to_file(d / "x_recordings_train.jsonl.gz")
    lhotse.SupervisionSet.from_segments([lhotse.SupervisionSegment(
        id="s1", recording_id="r1", start=0, duration=1, text="a",
        custom={"translation": "b"})]).to_file(d / "x_supervisions_train.jsonl.gz")
    with pytest.raises(ManifestError, match=r"supervision 1 \(s1\): recording r1 has audio "
                                            r"source\(s\) of type url"):
        from espnet_mtl.corpora.lhotse_import import read_lhotse

        read_lhotse(recordings=d / "x_recordings_train.jsonl.gz",
                    supervisions=d / "x_supervisions_train.jsonl.gz")
