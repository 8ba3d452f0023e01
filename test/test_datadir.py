"""Tests for espnet_mtl.prep.datadir and its CLI, on tiny fabricated data dirs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_mtl.prep import datadir
from espnet_mtl.bin import data_dir as cli
from espnet_mtl.prep.datadir import DataDirError

# utt, spk, rec, start, end, German, English
UTTS = [
    ("spk1-recA-0001", "spk1", "recA", 0.0, 1.5, "Hallo Welt", "hello world"),
    ("spk1-recA-0002", "spk1", "recA", 1.5, 3.0, "Guten Tag", "good day"),
    ("spk1-recB-0001", "spk1", "recB", 0.0, 2.0, "Danke", "thanks"),
    ("spk2-recC-0001", "spk2", "recC", 0.0, 1.0, "Ja", "yes"),
    ("spk2-recC-0002", "spk2", "recC", 1.0, 4.0, "Nein sagen", "say no"),
    ("spk3-recD-0001", "spk3", "recD", 0.5, 2.5, "Vielleicht", "maybe"),
]


def tables(utts=UTTS, segments=True) -> dict[str, list[str]]:
    """File name -> lines of a consistent data dir."""
    t = {
        "utt2spk": [f"{u} {s}" for u, s, *_ in utts],
        "text.tc.de": [f"{u} {de}" for u, *_, de, _ in utts],
        "text.tc.en": [f"{u} {en}" for u, *_, en in utts],
    }
    spk2utt: dict[str, list[str]] = {}
    for u, s, *_ in utts:
        spk2utt.setdefault(s, []).append(u)
    t["spk2utt"] = [f"{s} {' '.join(us)}" for s, us in sorted(spk2utt.items())]
    if segments:
        t["segments"] = [f"{u} {r} {a:.2f} {b:.2f}" for u, _, r, a, b, *_ in utts]
        recs = sorted({r for _, _, r, *_ in utts})
        t["wav.scp"] = [f"{r} /db/{r}.wav" for r in recs]
    else:
        t["wav.scp"] = [f"{u} /db/{u}.wav" for u, *_ in utts]
        t["utt2num_samples"] = [f"{u} {int((b - a) * 16000)}" for u, _, _, a, b, *_ in utts]
    return t


def write_dir(path: Path, t: dict[str, list[str]], feats_type: str | None = "raw") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, lines in t.items():
        (path / name).write_text("".join(f"{line}\n" for line in lines))
    if feats_type:
        (path / "feats_type").write_text(feats_type + "\n")
    return path


def make_dir(path: Path, **kw) -> Path:
    return write_dir(path, tables(**kw))


def keys(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines()]


def table(path: Path) -> dict[str, str]:
    return dict((line.split(" ", 1) + [""])[:2] for line in path.read_text().splitlines())


# --------------------------------------------------------------------------- validate


def test_valid_dir_passes(tmp_path):
    d = make_dir(tmp_path / "d")
    s = datadir.validate_data_dir(d)
    assert s["utterances"] == 6 and s["speakers"] == 3 and s["recordings"] == 4
    assert s["warnings"] == 0


def test_valid_dir_without_segments_passes(tmp_path):
    d = make_dir(tmp_path / "d", segments=False)
    assert datadir.validate_data_dir(d)["recordings"] == 6


def _mutate(t, name, fn):
    t[name] = fn(t[name])
    return t


BROKEN = {
    # case: (mutation, file:line expected in the message, another expected substring)
    "unsorted": (lambda t: _mutate(t, "utt2spk", lambda L: [L[1], L[0]] + L[2:]),
                 "utt2spk:2", "not sorted"),
    "extra_key": (lambda t: _mutate(t, "text.tc.en", lambda L: L + ["spk9-x hi"]),
                  "text.tc.en:7", "'spk9-x' is not in utt2spk"),
    "missing_key": (lambda t: _mutate(t, "text.tc.de", lambda L: L[:2] + L[3:]),
                    "utt2spk:3", "'spk1-recB-0001' is missing from text.tc.de"),
    "spk2utt": (lambda t: _mutate(t, "spk2utt", lambda L: [L[0].rsplit(" ", 1)[0]] + L[1:]),
                "spk2utt:1", "lacks utterance 'spk1-recB-0001'"),
    "unknown_rec": (lambda t: _mutate(t, "segments",
                                      lambda L: L[:1] + ["spk1-recA-0002 recZ 1.5 3.0"] + L[2:]),
                    "segments:2", "recording 'recZ' is not in wav.scp"),
    "start_ge_end": (lambda t: _mutate(t, "segments",
                                       lambda L: L[:3] + ["spk2-recC-0001 recC 1.0 1.0"] + L[4:]),
                     "segments:4", "spk2-recC-0001"),
    "negative_start": (lambda t: _mutate(t, "segments",
                                         lambda L: ["spk1-recA-0001 recA -0.5 1.5"] + L[1:]),
                       "segments:1", "negative start"),
    "duplicate": (lambda t: _mutate(t, "text.tc.en", lambda L: L[:2] + [L[1]] + L[2:]),
                  "text.tc.en:3", "duplicate key 'spk1-recA-0002'"),
    "empty_line": (lambda t: _mutate(t, "utt2spk", lambda L: L[:4] + [""] + L[4:]),
                   "utt2spk:5", "empty line"),
    "two_speakers": (lambda t: _mutate(t, "utt2spk", lambda L: [L[0] + " spk9"] + L[1:]),
                     "utt2spk:1", "exactly one speaker"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validation_errors_name_file_and_line(tmp_path, case):
    mutate, where, what = BROKEN[case]
    d = write_dir(tmp_path / "d", mutate(tables()))
    with pytest.raises(DataDirError) as e:
        datadir.validate_data_dir(d)
    assert f"{d}/{where}:" in str(e.value)
    assert what in str(e.value)


@pytest.mark.parametrize("name", ["wav.scp", "utt2spk"])
def test_missing_required_file(tmp_path, name):
    d = make_dir(tmp_path / "d")
    (d / name).unlink()
    with pytest.raises(DataDirError, match=f"{name}: missing"):
        datadir.validate_data_dir(d)


def test_text_required_unless_disabled(tmp_path):
    t = tables()
    del t["text.tc.de"], t["text.tc.en"]
    d = write_dir(tmp_path / "d", t)
    with pytest.raises(DataDirError, match="no text file"):
        datadir.validate_data_dir(d)
    datadir.validate_data_dir(d, need_text=False)


def test_unsorted_allowed_when_not_checked(tmp_path):
    t = tables()
    t["text.tc.de"].reverse()
    d = write_dir(tmp_path / "d", t)
    with pytest.raises(DataDirError):
        datadir.validate_data_dir(d)
    datadir.validate_data_dir(d, check_sorted=False)


def test_speaker_prefix_is_only_a_warning(tmp_path, caplog):
    utts = [("uttA", "spkX", "recA", 0, 1, "a", "a"), ("uttB", "spkX", "recA", 1, 2, "b", "b")]
    d = make_dir(tmp_path / "d", utts=utts)
    with caplog.at_level(logging.WARNING):
        s = datadir.validate_data_dir(d)
    assert s["warnings"] == 1
    assert "does not start with its speaker id 'spkX'" in caplog.text


# --------------------------------------------------------------------------- fix


def test_fix_removes_inconsistent_utterances(tmp_path, caplog):
    t = tables()
    t["text.tc.de"] = t["text.tc.de"][:3] + t["text.tc.de"][4:]  # drop spk2-recC-0001
    t["segments"][5] = "spk3-recD-0001 recZ 0.5 2.5"  # unknown recording: spk3 goes away
    t["wav.scp"].append("recE /db/recE.wav")  # unused recording
    t["utt2spk"].reverse()  # unsorted
    d = write_dir(tmp_path / "d", t)
    with caplog.at_level(logging.WARNING):
        removed = datadir.fix_data_dir(d)
    assert removed["utt2spk"] == 2 and removed["text.tc.de"] == 1
    assert removed["wav.scp"] == 2  # recD (its only segment is gone) and recE
    assert removed["spk2utt"] == 1
    assert "removed" in caplog.text and caplog.records[0].levelno == logging.WARNING
    datadir.validate_data_dir(d)
    assert keys(d / "utt2spk") == ["spk1-recA-0001", "spk1-recA-0002", "spk1-recB-0001",
                                   "spk2-recC-0002"]
    assert keys(d / "spk2utt") == ["spk1", "spk2"]
    assert (d / "feats_type").read_text() == "raw\n"


def test_fix_leaves_valid_dir_untouched(tmp_path):
    d = make_dir(tmp_path / "d")
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    assert not any(datadir.fix_data_dir(d).values())
    assert {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before


# --------------------------------------------------------------------------- copy/subset


def test_copy_with_prefix_renames_consistently(tmp_path):
    src = make_dir(tmp_path / "src")
    dst = tmp_path / "sp0.9"
    datadir.copy_data_dir(src, dst, utt_prefix="sp0.9-", spk_prefix="sp0.9-")
    datadir.validate_data_dir(dst)
    assert keys(dst / "utt2spk") == [f"sp0.9-{u[0]}" for u in UTTS]
    assert table(dst / "utt2spk")["sp0.9-spk1-recA-0001"] == "sp0.9-spk1"
    assert table(dst / "segments")["sp0.9-spk2-recC-0002"] == "sp0.9-recC 1.00 4.00"
    assert table(dst / "wav.scp")["sp0.9-recA"] == "/db/recA.wav"
    assert table(dst / "text.tc.de")["sp0.9-spk2-recC-0002"] == "Nein sagen"
    assert keys(dst / "spk2utt") == ["sp0.9-spk1", "sp0.9-spk2", "sp0.9-spk3"]


def test_copy_suffix_and_own_recording_prefix(tmp_path):
    src = make_dir(tmp_path / "src")
    dst = tmp_path / "dst"
    datadir.copy_data_dir(src, dst, utt_suffix="-x", spk_suffix="-x", rec_prefix="r-")
    datadir.validate_data_dir(dst)
    assert table(dst / "segments")["spk1-recA-0001-x"].startswith("r-recA-x ")


def test_copy_without_segments(tmp_path):
    src = make_dir(tmp_path / "src", segments=False)
    dst = tmp_path / "dst"
    datadir.copy_data_dir(src, dst, utt_prefix="p-", spk_prefix="p-")
    datadir.validate_data_dir(dst)
    assert keys(dst / "wav.scp") == keys(dst / "utt2spk")
    with pytest.raises(DataDirError, match="no segments"):
        datadir.copy_data_dir(src, tmp_path / "bad", utt_prefix="p-", rec_prefix="q-")


def test_copy_refuses_inconsistent_source(tmp_path):
    t = tables()
    t["text.tc.de"].pop()
    src = write_dir(tmp_path / "src", t)
    with pytest.raises(DataDirError, match="text.tc.de.*differ"):
        datadir.copy_data_dir(src, tmp_path / "dst")


@pytest.mark.parametrize("kw, expected", [
    ({"first": 2}, ["spk1-recA-0001", "spk1-recA-0002"]),
    ({"last": 1}, ["spk3-recD-0001"]),
    ({"utt_list": ["spk2-recC-0002", "spk1-recB-0001", "nope"]},
     ["spk1-recB-0001", "spk2-recC-0002"]),
    ({"spk_list": ["spk2"]}, ["spk2-recC-0001", "spk2-recC-0002"]),
])
def test_subset(tmp_path, kw, expected):
    src = make_dir(tmp_path / "src")
    dst = tmp_path / "dst"
    assert datadir.subset_data_dir(src, dst, **kw) == len(expected)
    datadir.validate_data_dir(dst)
    assert keys(dst / "utt2spk") == expected
    used = {table(dst / "segments")[u].split()[0] for u in expected}
    assert set(keys(dst / "wav.scp")) == used


def test_subset_from_list_file_and_selector_count(tmp_path):
    src = make_dir(tmp_path / "src")
    (tmp_path / "list").write_text("spk3-recD-0001\n")
    datadir.subset_data_dir(src, tmp_path / "dst", utt_list=tmp_path / "list")
    assert keys(tmp_path / "dst" / "utt2spk") == ["spk3-recD-0001"]
    with pytest.raises(ValueError, match="exactly one"):
        datadir.subset_data_dir(src, tmp_path / "x", first=1, last=1)
    with pytest.raises(ValueError, match="exactly one"):
        datadir.subset_data_dir(src, tmp_path / "x")
    with pytest.raises(DataDirError, match="cannot take 7"):
        datadir.subset_data_dir(src, tmp_path / "x", first=7)


def test_writing_over_a_dir_removes_stale_tables(tmp_path):
    src = make_dir(tmp_path / "src")
    dst = make_dir(tmp_path / "dst")
    (dst / "utt2lang").write_text("".join(f"{u[0]} de\n" for u in UTTS))
    datadir.subset_data_dir(src, dst, first=2)
    assert not (dst / "utt2lang").exists()
    datadir.validate_data_dir(dst)


# --------------------------------------------------------------------------- split


def test_split_by_utt_is_contiguous_and_balanced(tmp_path):
    src = make_dir(tmp_path / "src")
    parts = datadir.split_data_dir(src, 4)
    assert parts == [src / "split4" / str(i) for i in range(1, 5)]
    chunks = [keys(p / "utt2spk") for p in parts]
    assert sum(chunks, []) == [u[0] for u in UTTS]  # contiguous, in order
    assert sorted(len(c) for c in chunks) == [1, 1, 2, 2]
    for p in parts:
        datadir.validate_data_dir(p)
        assert (p / "feats_type").read_text() == "raw\n"


def test_split_by_recording_keeps_recordings_together(tmp_path):
    src = make_dir(tmp_path / "src")
    parts = datadir.split_data_dir(src, 3, by="recording")
    assert parts[0].parent.name == "split3rec"
    seen = {}
    for i, p in enumerate(parts):
        datadir.validate_data_dir(p)
        for u, v in table(p / "segments").items():
            assert seen.setdefault(v.split()[0], i) == i  # each recording in one part
    assert len(seen) == 4
    assert sum(len(keys(p / "utt2spk")) for p in parts) == len(UTTS)


def test_split_by_speaker(tmp_path):
    src = make_dir(tmp_path / "src")
    parts = datadir.split_data_dir(src, 3, by="spk")
    assert [keys(p / "spk2utt") for p in parts] == [["spk1"], ["spk2"], ["spk3"]]
    with pytest.raises(DataDirError, match="cannot split 3 spk"):
        datadir.split_data_dir(src, 4, by="spk")


def test_split_more_parts_than_utterances(tmp_path):
    src = make_dir(tmp_path / "src")
    with pytest.raises(DataDirError, match="cannot split 6"):
        datadir.split_data_dir(src, 7)


def test_resplit_skipped_until_source_changes(tmp_path):
    src = make_dir(tmp_path / "src")
    part = datadir.split_data_dir(src, 2)[0]
    marker = part / "marker"
    marker.write_text("")  # would vanish if the split were redone
    datadir.split_data_dir(src, 2)
    assert marker.exists()
    future = (src / "split2" / ".split_done").stat().st_mtime + 10
    os.utime(src / "text.tc.de", (future, future))
    datadir.split_data_dir(src, 2)
    assert not marker.exists()


def test_chunk_bounds_balance_by_weight():
    assert datadir._chunk_bounds([1] * 10, 3) == [0, 3, 7, 10]
    assert datadir._chunk_bounds([5, 1, 1, 1, 1, 1], 2) == [0, 1, 6]
    assert datadir._chunk_bounds([9, 1, 1], 3) == [0, 1, 2, 3]  # never an empty part


# --------------------------------------------------------------------------- combine


def test_combine_union(tmp_path, caplog):
    a = make_dir(tmp_path / "a", utts=UTTS[:3])
    b = make_dir(tmp_path / "b", utts=UTTS[3:])
    (a / "utt2lang").write_text("".join(f"{u[0]} de\n" for u in UTTS[:3]))
    dst = tmp_path / "all"
    with caplog.at_level(logging.WARNING):
        assert datadir.combine_data_dirs(dst, [a, b]) == 6
    assert "dropping utt2lang" in caplog.text and str(b) in caplog.text
    datadir.validate_data_dir(dst)
    assert keys(dst / "utt2spk") == [u[0] for u in UTTS]
    assert not (dst / "utt2lang").exists()
    assert (dst / "feats_type").read_text() == "raw\n"


def test_combine_can_skip_sources_without_utterances(tmp_path, caplog):
    a = make_dir(tmp_path / "a", utts=UTTS[:3])
    empty = tmp_path / "empty"  # what stage 3 leaves when every segment of a job was dropped
    empty.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt", "text.tc.de"):
        (empty / name).write_text("")
    with pytest.raises(DataDirError, match="no utterances"):
        datadir.combine_data_dirs(tmp_path / "all", [a, empty])
    with caplog.at_level(logging.WARNING):
        assert datadir.combine_data_dirs(tmp_path / "all", [a, empty], skip_empty=True) == 3
    assert f"{empty} has no utterances; left out" in caplog.text
    with pytest.raises(DataDirError, match="every source is empty"):
        datadir.combine_data_dirs(tmp_path / "none", [empty], skip_empty=True)


def test_combine_duplicate_utterance_names_both_sources(tmp_path):
    a = make_dir(tmp_path / "a", utts=UTTS[:3])
    b = make_dir(tmp_path / "b", utts=UTTS[2:])
    with pytest.raises(DataDirError, match=f"'spk1-recB-0001' is in both {a} and {b}"):
        datadir.combine_data_dirs(tmp_path / "all", [a, b])


def test_combine_makes_identity_segments(tmp_path):
    a = make_dir(tmp_path / "a", utts=UTTS[:3])
    b = make_dir(tmp_path / "b", utts=UTTS[3:], segments=False)
    dst = tmp_path / "all"
    datadir.combine_data_dirs(dst, [a, b])
    datadir.validate_data_dir(dst)
    assert table(dst / "segments")["spk2-recC-0002"] == "spk2-recC-0002 0 3"
    assert table(dst / "wav.scp")["spk2-recC-0002"] == "/db/spk2-recC-0002.wav"

    (b / "utt2num_samples").unlink()
    with pytest.raises(DataDirError, match="reco2dur or utt2num_samples"):
        datadir.combine_data_dirs(tmp_path / "all2", [a, b])


# --------------------------------------------------------------------------- filter/durations


def test_utt2dur_from_segments_and_samples(tmp_path):
    seg = make_dir(tmp_path / "seg")
    assert datadir.utt2dur(seg)["spk2-recC-0002"] == pytest.approx(3.0)
    nseg = make_dir(tmp_path / "nseg", segments=False)
    assert datadir.utt2dur(nseg)["spk2-recC-0002"] == pytest.approx(3.0)
    assert datadir.utt2dur(nseg, fs=8000)["spk2-recC-0002"] == pytest.approx(6.0)


def test_filter_by_duration_and_empty_text(tmp_path, caplog):
    t = tables()
    t["text.tc.en"][0] = "spk1-recA-0001"  # empty translation
    src = write_dir(tmp_path / "src", t)
    dst = tmp_path / "dst"
    with caplog.at_level(logging.INFO):
        removed = datadir.filter_data_dir(src, dst, min_dur=1.2, max_dur=2.5,
                                          nonempty_text_files=["text.tc.en"])
    # durations: 1.5 1.5 2.0 1.0 3.0 2.0; the first has an empty text.tc.en
    assert removed == {"shorter than 1.2s": 1, "longer than 2.5s": 1, "empty text.tc.en": 1}
    assert "empty text.tc.en" in caplog.text
    assert keys(dst / "utt2spk") == ["spk1-recA-0002", "spk1-recB-0001", "spk3-recD-0001"]
    datadir.validate_data_dir(dst)
    assert keys(dst / "wav.scp") == ["recA", "recB", "recD"]


def test_filter_without_durations_errors(tmp_path):
    src = make_dir(tmp_path / "src", segments=False)
    (src / "utt2num_samples").unlink()
    with pytest.raises(DataDirError, match="no utt2num_samples"):
        datadir.filter_data_dir(src, tmp_path / "dst", max_dur=1)
    datadir.filter_data_dir(src, tmp_path / "dst")  # nothing to filter by: a copy


# --------------------------------------------------------------------------- CLI


def test_cli_validate_and_split(tmp_path, capsys):
    src = make_dir(tmp_path / "src")
    assert cli.main(["validate", str(src)]) == 0
    assert "6 utterances" in capsys.readouterr().out
    assert cli.main(["split", str(src), "2", "--by", "recording"]) == 0
    assert capsys.readouterr().out.split() == [str(src / "split2rec" / i) for i in "12"]


def test_cli_subcommands(tmp_path):
    src = make_dir(tmp_path / "src")
    assert cli.main(["copy", str(src), str(tmp_path / "sp"), "--utt-prefix", "sp1.1-",
                     "--spk_prefix", "sp1.1-"]) == 0
    assert cli.main(["combine", str(tmp_path / "all"), str(src), str(tmp_path / "sp")]) == 0
    assert cli.main(["subset", str(tmp_path / "all"), str(tmp_path / "sub"), "--last", "3"]) == 0
    assert cli.main(["filter", str(tmp_path / "all"), str(tmp_path / "f"), "--max-dur", "2",
                     "--nonempty-text", "text.tc.en"]) == 0
    assert cli.main(["fix", str(tmp_path / "f")]) == 0
    assert len(keys(tmp_path / "all" / "utt2spk")) == 12
    # "sp1.1-..." sorts before "spk...": the last three are original utterances
    assert keys(tmp_path / "sub" / "utt2spk") == [u[0] for u in UTTS[3:]]
    assert len(keys(tmp_path / "f" / "utt2spk")) == 10


def test_cli_error_is_one_line_without_traceback(tmp_path):
    t = tables()
    t["segments"][1] = "spk1-recA-0002 recZ 1.5 3.0"
    src = write_dir(tmp_path / "src", t)
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.data_dir", "validate", str(src)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith(f"data_dir: error: {src}/segments:2:")
    assert "Traceback" not in r.stderr


def test_cli_invalid_utf8_and_missing_list_are_one_line_errors(tmp_path, capsys):
    src = make_dir(tmp_path / "src")
    with open(src / "text.tc.de", "ab") as f:
        f.write(b"spk3-recD-0002 Gr\xfc\xdfe\n")  # Latin-1, never re-encoded
    assert cli.main(["validate", str(src)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"data_dir: error: {src}/text.tc.de:7: not valid UTF-8 (byte 18")
    assert err.count("\n") == 1
    src = make_dir(tmp_path / "src2")
    missing = tmp_path / "no_such_list"
    assert cli.main(["subset", str(src), str(tmp_path / "dst"), "--utt-list", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("data_dir: error: ") and str(missing) in err and err.count("\n") == 1
