"""Stage 2: speed-perturbed copies of a training data dir (ESPnet/Kaldi style).

Factor f != 1 gets ids prefixed `sp<f>-` (utterances, speakers, recordings),
segment times divided by f, and the factor in `reco2speed`; stage 3 applies
it to the audio. The union with the unperturbed data is written to out_dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from espnet_mtl.prep.datadir import combine_data_dirs, copy_data_dir
from espnet_mtl.fileio import read_table, write_table


def speed_perturb(in_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  factors: list[float]) -> int:
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not factors or any(f <= 0 for f in factors):
        raise ValueError(f"speed factors must be positive, got {factors}")
    if (in_dir / "reco2speed").exists():
        raise ValueError(f"{in_dir} is already speed-perturbed (has reco2speed)")
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        parts = []
        for factor in factors:
            part = Path(tmp) / f"sp{factor}"
            prefix = "" if factor == 1.0 else f"sp{factor}-"
            copy_data_dir(in_dir, part, utt_prefix=prefix, spk_prefix=prefix)
            recs = read_table(part / "wav.scp")
            write_table(part / "reco2speed", {r: str(factor) for r in recs})
            if (part / "segments").exists() and factor != 1.0:
                segs = {}
                for utt, value in read_table(part / "segments").items():
                    rec, start, end = value.split()
                    segs[utt] = f"{rec} {float(start) / factor:.3f} {float(end) / factor:.3f}"
                write_table(part / "segments", segs)
            for name in ("utt2num_samples", "utt2dur", "reco2dur"):
                (part / name).unlink(missing_ok=True)  # durations change with the factor
            parts.append(part)
        staging = Path(tmp) / "combined"
        n = combine_data_dirs(staging, parts)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return n
