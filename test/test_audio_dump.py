"""Stage 3: cutting segments out of long recordings, raw and fbank."""

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.prep.audio_dump import AudioError, dump_audio, summarize_overruns
from espnet_mtl.bin import dump_audio as dump_audio_cli
from espnet_mtl.fileio import read_table, write_table

FS = 16000


def _data_dir(tmp_path, n_recs=2, seconds=3.0, fs=FS, channels=1):
    rng = np.random.default_rng(0)
    d = tmp_path / "data"
    d.mkdir()
    wav_scp, segments, utt2spk, text = [], [], [], []
    for r in range(n_recs):
        rec = f"ted_{r:05d}"
        samples = (rng.standard_normal((int(seconds * fs), channels)) * 0.1).astype(np.float32)
        path = tmp_path / f"{rec}.wav"
        sf.write(path, samples, fs, subtype="PCM_16")
        wav_scp.append(f"{rec} {path}\n")
        for start, end in ((0.5, 1.25), (1.5, 2.9)):
            utt = f"{rec}_{int(start * 1000):07d}_{int(end * 1000):07d}"
            segments.append(f"{utt} {rec} {start} {end}\n")
            utt2spk.append(f"{utt} {rec}\n")
            text.append(f"{utt} hello {r}\n")
    (d / "wav.scp").write_text("".join(wav_scp))
    (d / "segments").write_text("".join(segments))
    (d / "utt2spk").write_text("".join(utt2spk))
    (d / "text.lc.rm.en").write_text("".join(text))
    return d


def _set_segments(d, times, rec="ted_00000"):
    """Make `times` [(start, end)] the segments of `d` (one recording); returns their ids."""
    utts = [f"{rec}_{round(s * 1000):07d}_{round(e * 1000):07d}" for s, e in times]
    (d / "segments").write_text("".join(f"{u} {rec} {s} {e}\n" for u, (s, e) in zip(utts, times)))
    (d / "utt2spk").write_text("".join(f"{u} {rec}\n" for u in utts))
    (d / "text.lc.rm.en").write_text("".join(f"{u} hi\n" for u in utts))
    return utts


def test_raw_cuts_exact_samples(tmp_path):
    d = _data_dir(tmp_path)
    stats = dump_audio(d, tmp_path / "out", feats_type="raw", audio_format="flac")
    assert stats["utterances"] == 4
    wav_scp = read_table(tmp_path / "out" / "wav.scp")
    n_samples = read_table(tmp_path / "out" / "utt2num_samples")
    utt = "ted_00000_0000500_0001250"
    audio, fs = sf.read(wav_scp[utt], dtype="int16")
    source, _ = sf.read(tmp_path / "ted_00000.wav", dtype="int16")
    assert fs == FS and int(n_samples[utt]) == len(audio) == 12000
    assert np.array_equal(audio, source[8000:20000])
    assert read_table(tmp_path / "out" / "text.lc.rm.en")[utt] == "hello 0"
    assert read_table(tmp_path / "out" / "spk2utt")["ted_00000"].split() == [
        "ted_00000_0000500_0001250", "ted_00000_0001500_0002900"]
    assert (tmp_path / "out" / "feats_type").read_text() == "raw\n"


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    d = _data_dir(tmp_path, n_recs=1, fs=44100, channels=2)
    dump_audio(d, tmp_path / "out")
    audio, fs = sf.read(read_table(tmp_path / "out" / "wav.scp")["ted_00000_0000500_0001250"])
    assert fs == FS and audio.ndim == 1 and len(audio) == 12000


def test_speed_perturbation_scales_length(tmp_path):
    d = _data_dir(tmp_path, n_recs=1)
    (d / "reco2speed").write_text("ted_00000 1.1\n")
    # Stage 2 divides segment times by the factor; here one utterance only.
    [utt] = _set_segments(d, [(0.0, 2.5)])
    dump_audio(d, tmp_path / "out")
    n = int(read_table(tmp_path / "out" / "utt2num_samples")[utt])
    assert n == 40000  # 3 s played 1.1x faster is 2.73 s: the whole 2.5 s segment fits


def test_fbank_to_kaldi_ark(tmp_path):
    d = _data_dir(tmp_path)
    dump_audio(d, tmp_path / "out", feats_type="fbank", n_mels=40)
    feats = kaldiio.load_scp(str(tmp_path / "out" / "feats.scp"))
    mat = feats["ted_00001_0001500_0002900"]
    assert mat.shape == (138, 40)  # 1.4 s at 10 ms shift, 25 ms window
    frames = read_table(tmp_path / "out" / "utt2num_frames")
    assert frames["ted_00001_0001500_0002900"] == "138"
    # The features' source stays in the dir (Kaldi's layout): wav.scp and segments.
    assert read_table(tmp_path / "out" / "segments") == read_table(d / "segments")
    assert read_table(tmp_path / "out" / "wav.scp") == read_table(d / "wav.scp")


def test_unreadable_audio_names_recording(tmp_path):
    d = _data_dir(tmp_path, n_recs=1)
    (tmp_path / "ted_00000.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="recording ted_00000 .*ted_00000.wav"):
        dump_audio(d, tmp_path / "out")


# Segments ending after their 3.0 s audio (at 16 kHz, 1 ms = 16 samples).


def test_overrun_within_tolerance_is_clamped_and_reported(tmp_path):
    d = _data_dir(tmp_path, n_recs=1)
    # 0.05 s past the end: clamped and reported; 0.5 ms: rounding, cut silently.
    ok, late, rounding = _set_segments(d, [(0.5, 1.25), (2.5, 3.05), (2.0, 3.0005)])
    out = tmp_path / "out"
    stats = dump_audio(d, out)
    assert stats["utterances"] == 3
    assert (stats["clamped_segments"], stats["dropped_segments"]) == (1, 0)
    lengths = read_table(out / "utt2num_samples")
    assert (lengths[late], lengths[rounding]) == ("8000", "16000")  # to the audio end
    assert read_table(out / "overruns") == {late: "ted_00000 clamped 3.050 3.000 0.050"}
    assert summarize_overruns([out], "dev.en-de", 0.1) == (
        "dev.en-de: 1 segment(s) clamped (end <= 0.1 s past their audio: cut at its end):\n"
        f"  {late}: 0.050 s past the end of recording ted_00000 (segment end 3.050 s, "
        "audio 3.000 s)")


@pytest.mark.parametrize("feats_type", ["raw", "fbank"])
def test_overrun_past_tolerance_is_dropped_from_every_table(tmp_path, feats_type):
    d = _data_dir(tmp_path, n_recs=2)
    late = "ted_00000_0002500_0003300"
    with open(d / "segments", "a") as f:
        f.write(f"{late} ted_00000 2.5 3.3\n")  # 0.3 s past the end
    with open(d / "utt2spk", "a") as f:
        f.write(f"{late} ted_00000\n")
    with open(d / "text.lc.rm.en", "a") as f:
        f.write(f"{late} lost words\n")
    out = tmp_path / "out"
    stats = dump_audio(d, out, feats_type=feats_type)
    assert stats["utterances"] == 4
    assert (stats["clamped_segments"], stats["dropped_segments"]) == (0, 1)
    tables = ["utt2spk", "utt2dur", "text.lc.rm.en"] + (
        ["wav.scp", "utt2num_samples"] if feats_type == "raw" else
        ["feats.scp", "utt2num_frames", "segments"])
    for name in tables:
        assert len(read_table(out / name)) == 4 and late not in read_table(out / name), name
    assert late not in read_table(out / "spk2utt")["ted_00000"].split()
    assert read_table(out / "overruns") == {late: "ted_00000 dropped 3.300 3.000 0.300"}
    summary = summarize_overruns([out], "train", 0.1)
    assert summary.startswith("train: 1 segment(s) dropped (end more than 0.1 s past their audio")
    assert "--segment_overrun error" in summary and "clamped" not in summary
    assert f"  {late}: 0.300 s past the end of recording ted_00000" in summary


def test_segment_starting_after_audio_end_is_dropped(tmp_path):
    d = _data_dir(tmp_path, n_recs=1)
    # At the end, within the tolerance but nothing left; and well after it.
    ok, at_end, after = _set_segments(d, [(1.5, 2.9), (3.0, 3.05), (5.0, 6.0)])
    stats = dump_audio(d, tmp_path / "out", min_samples=400)
    assert stats["utterances"] == 1 and stats["dropped_segments"] == 2
    assert list(read_table(tmp_path / "out" / "wav.scp")) == [ok]
    overruns = read_table(tmp_path / "out" / "overruns")
    assert overruns == {at_end: "ted_00000 dropped 3.050 3.000 0.050",
                        after: "ted_00000 dropped 6.000 3.000 3.000"}


@pytest.mark.parametrize("times, how", [
    ((2.5, 3.3), r"ends 0\.300 s after the end of"),
    ((5.0, 6.0), "starts at or after the end of"),
], ids=["ends_late", "starts_after"])
def test_overrun_action_error_names_utterance_and_recording(tmp_path, times, how):
    d = _data_dir(tmp_path, n_recs=1)
    [utt] = _set_segments(d, [times])
    with pytest.raises(AudioError, match=(
            rf"utterance {utt}: segment \[{times[0]}, {times[1]}\] s {how} recording ted_00000 "
            rf"\({tmp_path / 'ted_00000.wav'}, audio of 3\.000 s; tolerance 0\.1 s\): .*"
            r"Fix the segment's times .*--overrun_action drop")):
        dump_audio(d, tmp_path / "out", overrun_action="error")
    assert not (tmp_path / "out" / "overruns").exists()
    assert not (tmp_path / "out" / "wav.scp").exists()


def test_rerun_leaves_no_stale_overruns(tmp_path):
    d = _data_dir(tmp_path, n_recs=1)
    _set_segments(d, [(2.5, 3.05)])
    dump_audio(d, tmp_path / "out")
    assert (tmp_path / "out" / "overruns").exists()
    _set_segments(d, [(2.5, 2.95)])  # fixed
    stats = dump_audio(d, tmp_path / "out")
    assert stats["clamped_segments"] == 0 and not (tmp_path / "out" / "overruns").exists()
    # A larger tolerance turns the drop into a clamp.
    _set_segments(d, [(2.5, 3.3)])
    assert dump_audio(d, tmp_path / "out", overrun_tolerance=0.5)["clamped_segments"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"overrun_action": "clamp"}, "overrun_action must be one of drop, error"),
    ({"overrun_tolerance": -0.1}, "overrun_tolerance must be a number of seconds >= 0"),
])
def test_overrun_options_are_checked(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dump_audio(_data_dir(tmp_path, n_recs=1), tmp_path / "out", **kwargs)


def test_summary_merges_parts_and_shortens_long_lists(tmp_path):
    parts = [tmp_path / f"format.{n}" for n in (1, 2, 3)]
    for part in parts:
        part.mkdir()
    # 30 + 25 clamped, 1 dropped; part 3 has none.
    write_table(parts[0] / "overruns", {f"u{k:03d}": "r1 clamped 3.050 3.000 0.050"
                                        for k in range(0, 60, 2)})
    write_table(parts[1] / "overruns", {**{f"u{k:03d}": "r2 clamped 2.010 2.000 0.010"
                                           for k in range(1, 50, 2)},
                                        "v": "r2 dropped 4.000 2.000 2.000"})
    lines = summarize_overruns(parts, "train.en-de", 0.1).split("\n")
    assert lines[0] == ("train.en-de: 55 segment(s) clamped (end <= 0.1 s past their audio: "
                        "cut at its end):")
    assert lines[1:4] == [
        "  u000: 0.050 s past the end of recording r1 (segment end 3.050 s, audio 3.000 s)",
        "  u001: 0.010 s past the end of recording r2 (segment end 2.010 s, audio 2.000 s)",
        "  u002: 0.050 s past the end of recording r1 (segment end 3.050 s, audio 3.000 s)"]
    assert lines[50].startswith("  u049:")
    assert lines[51] == (f"  ... and 5 more: see {parts[0] / 'overruns'} {parts[1] / 'overruns'}")
    assert lines[52].startswith("train.en-de: 1 segment(s) dropped")
    assert lines[53].startswith("  v: 2.000 s past the end of recording r2")
    assert len(lines) == 54
    assert summarize_overruns([parts[2]], "train.en-de", 0.1) == ""


def test_cli_options_and_summary(tmp_path, capsys):
    d = _data_dir(tmp_path, n_recs=1)
    [late] = _set_segments(d, [(2.5, 3.05)])
    out = tmp_path / "format.1"
    argv = ["--in_dir", str(d), "--out_dir", str(out)]
    strict = ["--overrun_tolerance", "0.01", "--overrun_action", "error"]
    assert dump_audio_cli.main(argv + strict) == 1
    assert f"dump_audio: error: utterance {late}: segment" in capsys.readouterr().err
    assert dump_audio_cli.main(argv) == 0
    summarize = ["--summarize_overruns", "--name", "dev", "--overrun_tolerance", "0.1"]
    assert dump_audio_cli.main(summarize + [str(out), str(tmp_path / "format.2")]) == 0
    assert capsys.readouterr().out.startswith("dev: 1 segment(s) clamped (end <= 0.1 s")
    (out / "overruns").unlink()
    assert dump_audio_cli.main(summarize + [str(out)]) == 0
    assert capsys.readouterr().out == ""
    for bad in (argv + ["--overrun_tolerance", "-1"], summarize, argv + [str(out)],
                summarize + ["--in_dir", str(d), str(out)]):
        with pytest.raises(SystemExit) as e:
            dump_audio_cli.main(bad)
        assert e.value.code == 2
