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

A segment ending after its recording's audio is cut at the audio end when it
overruns by at most `overrun_tolerance` (`OVERRUN_TOLERANCE_S`); past that,
or when it starts at or after the audio end, it is dropped from every output
table (or is an error, by option). Each clamped or dropped segment is a line
of `<out_dir>/overruns`; `summarize_overruns` turns the tables of all job
parts of a set into the stage's console summary.
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

from espnet_mtl.fileio import TableError, atomic_open, read_table, write_table

log = logging.getLogger(__name__)

PER_UTT_FILES_KEPT = ("utt2spk", "utt2lang")

# How far (s) a segment may end after its audio and still be cut at the audio end.
# Segment times in MuST-C and Europarl-ST are rounded to ~10 ms, and compressed
# audio decoders (AAC priming/padding in m4a, MP3) can lose or add a few tens of
# ms at the end: an overrun of a fraction of 0.1 s is bookkeeping noise, not lost
# speech. Anything more means the transcript covers speech that is not in the audio.
OVERRUN_TOLERANCE_S = 0.1
OVERRUN_ACTIONS = ("drop", "error")  # past the tolerance
# One line per clamped or dropped segment:
# `<utt> <rec> clamped|dropped <segment_end_s> <audio_end_s> <overrun_s>`.
OVERRUNS_FILE = "overruns"
_OVERRUNS_SHOWN = 50  # segments listed per action in the console summary


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
               n_mels: int = 80, min_samples: int = 400,
               overrun_tolerance: float = OVERRUN_TOLERANCE_S,
               overrun_action: str = "drop") -> dict:
    """Dump every utterance of `data_dir` into `out_dir`; returns counts and timing stats.

    A segment ending after its recording's audio by at most `overrun_tolerance`
    seconds is cut at the audio end (`clamped_segments`). One ending later, or
    starting at or after the audio end, is left out of every output table
    (`dropped_segments`) with overrun_action="drop", and is an AudioError
    naming it with overrun_action="error". Both kinds are listed in
    `<out_dir>/overruns` (written only when there are some); overruns under
    1 ms are rounding of the segment times, cut silently.

    Utterances shorter than `min_samples` after cutting are an error naming
    the utterance, its recording and its times (stage 4 removes short ones by
    duration before training, but a segment that ends up that short means
    wrong metadata).
    """
    import time

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if feats_type not in ("raw", "fbank"):
        raise ValueError(f"feats_type must be raw or fbank, got {feats_type!r}")
    if audio_format not in ("flac", "wav"):
        raise ValueError(f"audio_format must be flac or wav, got {audio_format!r}")
    if overrun_action not in OVERRUN_ACTIONS:
        raise ValueError(f"overrun_action must be one of {', '.join(OVERRUN_ACTIONS)}, "
                         f"got {overrun_action!r}")
    if not 0 <= overrun_tolerance < math.inf:
        raise ValueError(f"overrun_tolerance must be a number of seconds >= 0, "
                         f"got {overrun_tolerance!r}")
    wav_scp = read_table(data_dir / "wav.scp")
    for rec, value in wav_scp.items():
        if value.endswith("|"):
            raise AudioError(f"{data_dir}/wav.scp: recording {rec}: piped commands are not "
                             "supported; point wav.scp at audio files")
    speeds = {k: float(v) for k, v in read_table(data_dir / "reco2speed").items()} \
        if (data_dir / "reco2speed").exists() else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rerun must not leave the previous run's list behind (it is written only when non-empty).
    (out_dir / OVERRUNS_FILE).unlink(missing_ok=True)
    audio_dir = (out_dir / "data").resolve()
    audio_dir.mkdir(exist_ok=True)

    lengths: dict[str, int] = {}
    paths: dict[str, str] = {}
    overruns: dict[str, str] = {}  # utt -> rest of its `overruns` line
    t0, audio_seconds = time.perf_counter(), 0.0
    tolerance_samples = int(round(overrun_tolerance * fs))
    rounding_samples = fs // 1000  # segment times rounded to 1 ms: not worth reporting
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
            audio_end = len(samples) / fs
            for utt, start, end in segs:
                begin = int(round(start * fs))
                stop = len(samples) if end is None else int(round(end * fs))
                over = stop - len(samples)  # samples past the audio end
                if over > tolerance_samples or begin >= len(samples):
                    if overrun_action == "error":
                        how = ("starts at or after the end of" if begin >= len(samples) else
                               f"ends {over / fs:.3f} s after the end of")
                        raise AudioError(
                            f"utterance {utt}: segment [{start}, {end}] s {how} recording {rec} "
                            f"({wav_scp[rec]}, audio of {audio_end:.3f} s; tolerance "
                            f"{overrun_tolerance:g} s): its transcript covers speech that is not "
                            "in the audio. Fix the segment's times (or the audio file), or leave "
                            "such utterances out: --overrun_action drop (st.sh: "
                            "--segment_overrun drop)")
                    overruns[utt] = f"{rec} dropped {end:.3f} {audio_end:.3f} {over / fs:.3f}"
                    continue
                if over > 0:
                    if over > rounding_samples:
                        overruns[utt] = f"{rec} clamped {end:.3f} {audio_end:.3f} {over / fs:.3f}"
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
    n_clamped = sum(v.split()[1] == "clamped" for v in overruns.values())
    n_dropped = len(overruns) - n_clamped
    if overruns:
        write_table(out_dir / OVERRUNS_FILE, overruns)
        log.log(logging.WARNING if n_dropped else logging.INFO,
                "%d segment(s) clamped, %d dropped: they end after their audio; see %s",
                n_clamped, n_dropped, out_dir / OVERRUNS_FILE)
    elapsed = time.perf_counter() - t0
    return {"utterances": len(lengths), "clamped_segments": n_clamped,
            "dropped_segments": n_dropped,
            "audio_seconds": audio_seconds, "seconds": elapsed,
            "real_time_factor": audio_seconds / elapsed if elapsed else float("inf")}


def summarize_overruns(parts: list[str | os.PathLike], data_name: str,
                       tolerance: float = OVERRUN_TOLERANCE_S) -> str:
    """Console summary of the `overruns` tables of the job parts of one set ("" if none).

    Per action (clamped, dropped): a count line naming `data_name`, then one
    line per segment, sorted by utterance; past `_OVERRUNS_SHOWN` segments
    the rest is counted and the files holding the full list are named.
    `tolerance` is the one dump_audio ran with (the tables do not record it).
    """
    found: dict[str, list[tuple[str, str]]] = {"clamped": [], "dropped": []}
    files: list[Path] = []
    for part in parts:
        path = Path(part) / OVERRUNS_FILE
        if not path.exists():
            continue
        files.append(path)
        for utt, value in read_table(path).items():
            fields = value.split()
            if len(fields) != 5 or fields[1] not in found:
                raise TableError(f"{path}: utterance {utt}: expected '<utt> <recording> "
                                 "clamped|dropped <segment_end_s> <audio_end_s> <overrun_s>'")
            rec, action, end, audio_end, over = fields
            found[action].append((utt, f"  {utt}: {over} s past the end of recording {rec} "
                                       f"(segment end {end} s, audio {audio_end} s)"))
    headers = {
        "clamped": f"segment(s) clamped (end <= {tolerance:g} s past their audio: cut at its end)",
        "dropped": f"segment(s) dropped (end more than {tolerance:g} s past their audio, or start "
                   "at or after its end; --segment_overrun error makes this an error)",
    }
    lines = []
    for action, entries in found.items():
        if not entries:
            continue
        entries.sort(key=lambda e: e[0].encode("utf-8"))
        lines.append(f"{data_name}: {len(entries)} {headers[action]}:")
        lines += [line for _, line in entries[:_OVERRUNS_SHOWN]]
        if len(entries) > _OVERRUNS_SHOWN:
            where = " ".join(map(str, files)) if len(files) <= 3 else \
                f"{files[0]} ... {files[-1]} ({len(files)} files)"
            lines.append(f"  ... and {len(entries) - _OVERRUNS_SHOWN} more: see {where}")
    return "\n".join(lines)


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
