"""Stage 3 speed: real-time factor of cutting + dumping the demo corpus.

Prints JSON with our real-time factor per core and the ratio against a
baseline run in the same script: the naive approach that re-reads the whole
recording for every segment (what a per-segment `sox in.wav out.flac trim`
pipeline does). Target: >= 300x real time per core.

`--source_format m4a` first converts every talk (untimed) to 44.1 kHz stereo
AAC, as Europarl-ST ships its speeches, so the timing includes ffmpeg
decoding, downmixing and resampling to 16 kHz.

    python bench/bench_audio_dump.py [--corpus DIR] [--split train] [--source_format wav|m4a] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import soundfile as sf

from espnet_mtl.prep.audio_dump import dump_audio, ffmpeg_exe, load_recording
from espnet_mtl.fileio import read_table


def naive_dump(data_dir: Path, out_dir: Path) -> float:
    """Baseline: open and read the recording once per segment."""
    wav_scp = read_table(data_dir / "wav.scp")
    out_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    for utt, value in read_table(data_dir / "segments").items():
        rec, start, end = value.split()
        fs = 16000
        samples = load_recording(wav_scp[rec], fs)
        piece = samples[int(float(start) * fs):int(float(end) * fs)]
        sf.write(out_dir / f"{utt}.flac", piece, fs, subtype="PCM_16")
    return time.perf_counter() - t0


def to_m4a(data_dir: Path, out_dir: Path) -> None:
    """Re-encode every recording of wav.scp as 44.1 kHz stereo AAC and point wav.scp at it."""
    import subprocess

    from espnet_mtl.fileio import write_table

    out_dir.mkdir(parents=True)
    table = {}
    for rec, path in read_table(data_dir / "wav.scp").items():
        dst = out_dir / f"{rec}.m4a"
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path, "-ac", "2", "-ar", "44100",
                        "-c:a", "aac", "-b:a", "96k", str(dst)], check=True)
        table[rec] = str(dst)
    write_table(data_dir / "wav.scp", table)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", help="demo corpus root (generated into a temp dir if absent)")
    p.add_argument("--split", default="train")
    p.add_argument("--source_format", choices=("wav", "m4a"), default="wav",
                   help="m4a: convert the talks to 44.1 kHz stereo AAC first (Europarl-ST's format)")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = Path(args.corpus) if args.corpus else tmp / "corpus"
        if not args.corpus:
            from espnet_mtl.demo.make_corpus import make_corpus
            make_corpus(corpus, tgt_langs=("de",))
        from espnet_mtl.corpora.must_c import read_must_c
        from espnet_mtl.corpora.writer import write_st_data_dir
        data = tmp / "data"
        write_st_data_dir(data, read_must_c(corpus, "de", args.split), "en", "de")
        if args.source_format == "m4a":
            to_m4a(data, tmp / "m4a")

        stats = dump_audio(data, tmp / "dump", feats_type="raw", audio_format="flac")
        naive_seconds = naive_dump(data, tmp / "naive")
        shutil.rmtree(tmp / "naive")
    result = {
        "benchmark": "stage3_audio_dump",
        "split": args.split,
        "source_format": args.source_format,
        "utterances": stats["utterances"],
        "audio_hours": round(stats["audio_seconds"] / 3600, 3),
        "seconds": round(stats["seconds"], 2),
        "real_time_factor_per_core": round(stats["real_time_factor"], 1),
        "target_real_time_factor_per_core": 300,
        "meets_target": stats["real_time_factor"] >= 300,
        "baseline_naive_reread_seconds": round(naive_seconds, 2),
        "speedup_vs_naive_reread": round(naive_seconds / stats["seconds"], 2),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
