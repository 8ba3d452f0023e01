"""Stage 3: cut utterances out of their recordings and dump them.

`--feats_type raw` writes one audio file per utterance (flac or wav, PCM16)
and an utterance-level `wav.scp` + `utt2num_samples`; `--feats_type fbank`
writes Kaldi-compatible log-mel filterbanks to one ark per job with
`feats.scp` + `utt2num_frames` (kaldiio). Each source recording is read once,
whatever the number of segments it holds (a TED talk has ~100).

Audio is read with libsndfile (wav, flac, ogg, mp3), except AAC in MP4
containers (`.m4a`, `.mp4`, `.aac`: Europarl-ST), which libsndfile cannot
read: those are decoded by the ffmpeg binary of the `imageio-ffmpeg` package
(see `FFMPEG_EXTENSIONS`).

Speed perturbation (stage 2) marks perturbed recordings in `reco2speed`; the
factor is applied here, once per recording, by resampling (sox `speed`
semantics: tempo and pitch change together).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from espnet_mtl.fileio import atomic_open, read_table, write_table

log = logging.getLogger(__name__)

PER_UTT_FILES_KEPT = ("utt2spk", "utt2lang")
_CLAMPED_SHOWN = 3  # utterance ids named in the per-recording clamping log line


class AudioError(RuntimeError):
    """Unreadable, empty or too-short audio; names the recording and utterances."""


def _resample(samples: np.ndarray, orig_fs: int, new_fs: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    g = math.gcd(int(orig_fs), int(new_fs))
    out = AF.resample(torch.from_numpy(samples.astype(np.float32)), orig_fs // g, new_fs // g)
    return out.numpy()


# Decoded by ffmpeg instead of libsndfile (which has no AAC/MP4 support).
FFMPEG_EXTENSIONS = (".m4a", ".mp4", ".aac")
_FFMPEG_MESSAGE_CHARS = 600  # characters of ffmpeg's messages kept in an error

_ffmpeg_exe: str | None = None


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: imageio-ffmpeg's (tools/requirements.txt), else ffmpeg on PATH.

    imageio-ffmpeg honours the IMAGEIO_FFMPEG_EXE environment variable to
    point at another build.
    """
    global _ffmpeg_exe
    if _ffmpeg_exe is None:
        try:
            import imageio_ffmpeg

            _ffmpeg_exe = imageio_ffmpeg.get_ffmpeg_exe()
        except Exception as e:  # not installed, or no binary for this platform
            found = shutil.which("ffmpeg")
            if found is None:
                raise AudioError(f"no ffmpeg to decode {'/'.join(FFMPEG_EXTENSIONS)} audio: "
                                 f"install imageio-ffmpeg (tools/setup.sh installs the pinned "
                                 f"version) or put ffmpeg on PATH ({e})") from e
            _ffmpeg_exe = found
    return _ffmpeg_exe


def _check_file(path: str, where: str, error: Exception | None = None) -> int:
    """Size of `path`; a missing or 0-byte file is an AudioError saying so."""
    try:
        size = os.stat(path).st_size
    except OSError:
        raise AudioError(f"{where}: cannot read audio: the file does not exist") from error
    if size == 0:
        raise AudioError(f"{where}: cannot read audio: the file is empty (0 bytes)") from error
    return size


def _decode_ffmpeg(path: str, fs: int, where: str) -> np.ndarray:
    """Whole file as float32 mono at `fs`: ffmpeg averages the channels and resamples.

    `-rematrix_maxval 1` makes the stereo downmix the mean of the channels,
    as for libsndfile-read files (ffmpeg's default sums them at -3 dB each,
    which can exceed full scale).
    """
    size = _check_file(path, where)
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path,
           "-f", "f32le", "-ac", "1", "-ar", str(fs), "-rematrix_maxval", "1", "-"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as e:
        raise AudioError(f"{where}: cannot run ffmpeg ({cmd[0]}): {e}") from e
    messages = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 and "does not contain any stream" in messages:
        raise AudioError(f"{where}: the audio file is empty (no audio stream; {size} bytes)")
    if proc.returncode != 0:
        raise AudioError(f"{where}: cannot read audio: not a readable audio file ({size} bytes; "
                         f"corrupt or unsupported format): ffmpeg exited with status "
                         f"{proc.returncode}: {_brief(messages) or '(no message)'}")
    if messages:
        # ffmpeg conceals damaged frames and stops quietly at a truncation (exit status 0):
        # the audio would be silently shorter or glitched, so any reported error is fatal.
        raise AudioError(f"{where}: cannot read audio: ffmpeg reported decoding errors "
                         f"({size} bytes; damaged or truncated file?): {_brief(messages)}")
    usable = len(proc.stdout) // 4 * 4
    if usable == 0:
        raise AudioError(f"{where}: the audio file is empty (ffmpeg decoded no samples)")
    return np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32, copy=True)


def _brief(messages: str) -> str:
    """ffmpeg's messages on one line: the first one (the cause) and the end of the rest."""
    lines = [line.strip() for line in messages.splitlines() if line.strip()]
    if not lines:
        return ""
    text = " | ".join(lines)
    if len(text) <= _FFMPEG_MESSAGE_CHARS:
        return text
    first = lines[0][:_FFMPEG_MESSAGE_CHARS // 3]
    tail = text[-(_FFMPEG_MESSAGE_CHARS - len(first)):]
    return f"{first} | ... {tail} ({len(lines)} lines)"


def load_recording(path: str, fs: int, speed: float = 1.0, rec_id: str = "", *,
                   kind: str = "recording") -> np.ndarray:
    """Read a whole recording as float32 mono at `fs`, with speed applied.

    Any format libsndfile reads (wav, flac, ogg, and mp3 since libsndfile
    1.1, bundled with the soundfile wheel); files ending in one of
    `FFMPEG_EXTENSIONS` (AAC in MP4: m4a) are decoded, downmixed and
    resampled by ffmpeg instead. Errors say `<kind> <rec_id> (<path>)`: a
    data dir without `segments` passes kind="utterance".
    """
    where = f"{kind} {rec_id} ({path})"
    if path.lower().endswith(FFMPEG_EXTENSIONS):
        samples = _decode_ffmpeg(path, fs, where)
    else:
        try:
            data, file_fs = sf.read(path, dtype="float32", always_2d=True)
        except Exception as e:  # soundfile raises several types for bad files
            # libsndfile says "File does not exist" for any file it cannot open; say what it is.
            size = _check_file(path, where, e)
            raise AudioError(f"{where}: cannot read audio: not a readable audio file "
                             f"({size} bytes; corrupt or unsupported format): {e}") from e
        if data.shape[0] == 0:
            raise AudioError(f"{where}: the audio file is empty")
        samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if file_fs != fs:
            samples = _resample(samples, file_fs, fs)
    if speed != 1.0:
        # Play `speed` times faster: pretend the samples were taken at fs*speed.
        samples = _resample(samples, round(fs * speed), fs)
    return samples


def _segments_by_recording(data_dir: Path, wav_scp: dict[str, str]):
    """Yield (rec_id, [(utt, start_s, end_s or None)]) in wav.scp order."""
    seg_file = data_dir / "segments"
    if not seg_file.exists():
        for rec in wav_scp:
            yield rec, [(rec, 0.0, None)]
        return
    by_rec: dict[str, list] = {}
    for utt, value in read_table(seg_file).items():
        fields = value.split()
        if len(fields) != 3:
            raise AudioError(f"{seg_file}: utterance {utt}: expected '<utt> <rec> <start> <end>'")
        rec, start, end = fields[0], float(fields[1]), float(fields[2])
        if rec not in wav_scp:
            raise AudioError(f"{seg_file}: utterance {utt}: recording {rec} is not in wav.scp")
        by_rec.setdefault(rec, []).append((utt, start, end))
    for rec in wav_scp:
        if rec in by_rec:
            yield rec, by_rec[rec]


def dump_audio(data_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
               feats_type: str = "raw", audio_format: str = "flac", fs: int = 16000,
               n_mels: int = 80, min_samples: int = 400) -> dict:
    """Dump every utterance of `data_dir` into `out_dir`; returns timing stats.

    A segment ending after its recording's audio (Europarl-ST has some) is
    cut at the audio end and counted: one INFO line per recording names them,
    and the stats' `clamped_segments` sums them. Utterances shorter than
    `min_samples` after cutting (clamped or not; a segment starting at or
    after the audio end has 0 samples) are an error naming the utterance,
    its recording and its times (stage 4 removes short ones by duration
    before training, but a segment that ends up empty means wrong metadata).
    """
    import time

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if feats_type not in ("raw", "fbank"):
        raise ValueError(f"feats_type must be raw or fbank, got {feats_type!r}")
    if audio_format not in ("flac", "wav"):
        raise ValueError(f"audio_format must be flac or wav, got {audio_format!r}")
    wav_scp = read_table(data_dir / "wav.scp")
    for rec, value in wav_scp.items():
        if value.endswith("|"):
            raise AudioError(f"{data_dir}/wav.scp: recording {rec}: piped commands are not "
                             "supported; point wav.scp at audio files")
    speeds = {k: float(v) for k, v in read_table(data_dir / "reco2speed").items()} \
        if (data_dir / "reco2speed").exists() else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    audio_dir = (out_dir / "data").resolve()
    audio_dir.mkdir(exist_ok=True)

    lengths: dict[str, int] = {}
    paths: dict[str, str] = {}
    t0, audio_seconds = time.perf_counter(), 0.0
    n_clamped = 0
    writer = None
    if feats_type == "fbank":
        import kaldiio
        import torch
        import torchaudio.compliance.kaldi as kaldi

        ark = audio_dir / "feats.ark"
        writer = kaldiio.WriteHelper(f"ark,scp:{ark},{out_dir / 'feats.scp.tmp'}")
    # Without segments each wav.scp entry is one utterance: errors name it as such.
    kind = "recording" if (data_dir / "segments").exists() else "utterance"
    try:
        for rec, segs in _segments_by_recording(data_dir, wav_scp):
            samples = load_recording(wav_scp[rec], fs, speeds.get(rec, 1.0), rec, kind=kind)
            clamped: list[str] = []  # segments ending after the audio: cut at its end
            for utt, start, end in segs:
                begin = int(round(start * fs))
                stop = len(samples) if end is None else int(round(end * fs))
                if stop > len(samples):
                    # Past the end by more than rounding (1 ms): worth reporting.
                    if stop - len(samples) > fs // 1000:
                        clamped.append(utt)
                    stop = len(samples)
                piece = samples[begin:stop]
                if len(piece) < min_samples:
                    where = (f"in its audio file {wav_scp[rec]} (need {min_samples}): remove it"
                             if end is None else
                             f"after cutting [{start}, {end}] s from recording {rec} "
                             f"({wav_scp[rec]}, audio of {len(samples) / fs:.2f} s): "
                             "fix its segment or remove it")
                    raise AudioError(f"utterance {utt}: only {len(piece)} samples at {fs} Hz "
                                     f"{where}")
                audio_seconds += len(piece) / fs
                if writer is None:
                    path = audio_dir / f"{utt}.{audio_format}"
                    sf.write(path, piece, fs, subtype="PCM_16", format=audio_format.upper())
                    paths[utt], lengths[utt] = str(path), len(piece)
                else:
                    feats = kaldi.fbank(torch.from_numpy(piece).unsqueeze(0) * 32768,
                                        num_mel_bins=n_mels, sample_frequency=fs, dither=0.0)
                    writer(utt, feats.numpy())
                    lengths[utt] = feats.shape[0]
            if clamped:
                n_clamped += len(clamped)
                shown = " ".join(clamped[:_CLAMPED_SHOWN])
                if len(clamped) > _CLAMPED_SHOWN:
                    shown += " ..."
                log.info("recording %s (%.3f s): %d segment(s) end after the audio end, clamped to "
                         "it: %s", rec, len(samples) / fs, len(clamped), shown)
    finally:
        if writer is not None:
            writer.close()

    if feats_type == "raw":
        write_table(out_dir / "wav.scp", paths)
        write_table(out_dir / "utt2num_samples", {u: str(n) for u, n in lengths.items()})
    else:
        scp = read_table(out_dir / "feats.scp.tmp")
        write_table(out_dir / "feats.scp", scp)
        (out_dir / "feats.scp.tmp").unlink()
        write_table(out_dir / "utt2num_frames", {u: str(n) for u, n in lengths.items()})
        # Kaldi keeps features next to their source (wav.scp, segments): the
        # dir stays a complete data dir, and the provenance stays visible.
        _copy_sources(data_dir, out_dir, set(lengths))
    # Durations in seconds for both feature types: stage 4 filters on them.
    durations = {u: n / fs for u, n in lengths.items()} if feats_type == "raw" \
        else {u: n * 0.01 for u, n in lengths.items()}  # 10 ms frame shift
    write_table(out_dir / "utt2dur", {u: f"{d:.3f}" for u, d in durations.items()})
    _copy_per_utterance_files(data_dir, out_dir, set(lengths))
    with atomic_open(out_dir / "feats_type") as f:
        f.write(feats_type + "\n")
    elapsed = time.perf_counter() - t0
    return {"utterances": len(lengths), "clamped_segments": n_clamped,
            "audio_seconds": audio_seconds, "seconds": elapsed,
            "real_time_factor": audio_seconds / elapsed if elapsed else float("inf")}


def _copy_sources(src: Path, dst: Path, utts: set[str]) -> None:
    if (src / "segments").exists():
        segments = {u: v for u, v in read_table(src / "segments").items() if u in utts}
        recs = {v.split()[0] for v in segments.values()}
        write_table(dst / "segments", segments)
    else:
        recs = utts
    for name in ("wav.scp", "reco2speed", "reco2dur"):
        if (src / name).exists():
            write_table(dst / name, {r: v for r, v in read_table(src / name).items() if r in recs})


def _copy_per_utterance_files(src: Path, dst: Path, utts: set[str]) -> None:
    names = [p.name for p in src.iterdir() if p.is_file() and
             (p.name.startswith("text") or p.name in PER_UTT_FILES_KEPT)]
    for name in names:
        table = read_table(src / name)
        write_table(dst / name, {k: v for k, v in table.items() if k in utts})
    if (dst / "utt2spk").exists():
        spk2utt: dict[str, list[str]] = {}
        for utt, spk in read_table(dst / "utt2spk").items():
            spk2utt.setdefault(spk, []).append(utt)
        write_table(dst / "spk2utt", {s: " ".join(u) for s, u in spk2utt.items()})
