"""Stage 3: cutting segments out of long recordings, raw and fbank."""

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.audio_dump import AudioError, dump_audio
from espnet_mtl.fileio import read_table

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
    # Stage 2 divides segment times by the factor; here the first utterance only.
    (d / "segments").write_text("ted_00000_0000500_0001250 ted_00000 0.0 2.5\n")
    (d / "utt2spk").write_text("ted_00000_0000500_0001250 ted_00000\n")
    (d / "text.lc.rm.en").write_text("ted_00000_0000500_0001250 hi\n")
    dump_audio(d, tmp_path / "out")
    n = int(read_table(tmp_path / "out" / "utt2num_samples")["ted_00000_0000500_0001250"])
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


def test_segment_beyond_audio_names_utterance(tmp_path):
    d = _data_dir(tmp_path, n_recs=1)
    (d / "segments").write_text("ted_00000_0000500_0001250 ted_00000 5.0 6.0\n"
                                "ted_00000_0001500_0002900 ted_00000 1.5 2.9\n")
    with pytest.raises(AudioError, match="utterance ted_00000_0000500_0001250: only 0 samples"):
        dump_audio(d, tmp_path / "out")
