"""Stage 1 from a manifest: rows per second on a fabricated 200,000-row TSV.

The manifest is the generic one (`espnet_mtl.corpora.manifest`): id, audio, start,
end, speaker, src_text, tgt_text; 200 talks of 1,000 segments each (the reader
checks each audio file exists: one tiny wav per talk), TED-like English and
German sentences (bench_data_prep.py's vocabulary), fabricated untimed. Timed in
this process: `prepare_manifest` (read, check, normalise the texts in 3 cases,
write the data dir; --nj processes), and as a baseline `csv.DictReader` over the
same file (parse only).

    python bench/bench_manifest.py [--rows 200000] [--nj 2] [--out bench/plots/issue18_manifest.json]

Prints JSON: rows/s of both, the ratio, the target (>= 10,000 rows/s), the load
average before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_data_prep import DE_WORDS, EN_WORDS  # noqa: E402

from espnet_mtl.bin import prepare_manifest  # noqa: E402

TARGET = 10000  # rows per second, stage 1 on 2 cores
PER_TALK = 1000


def fabricate(root: Path, rows: int, seed: int = 0) -> Path:
    rnd = random.Random(seed)
    (root / "wav").mkdir(parents=True)
    talks = (rows + PER_TALK - 1) // PER_TALK
    for t in range(talks):
        with wave.open(str(root / "wav" / f"talk{t:04d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"\0\0" * 160)
    path = root / "train.tsv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("id\taudio\tstart\tend\tspeaker\tsrc_text\ttgt_text\n")
        for i in range(rows):
            talk, k = divmod(i, PER_TALK)
            start = k * 5.0 + rnd.random()
            src = " ".join(rnd.choices(EN_WORDS, k=rnd.randint(5, 25))).capitalize() + "."
            tgt = " ".join(rnd.choices(DE_WORDS, k=rnd.randint(5, 25))).capitalize() + "."
            f.write(f"seg{i:07d}\twav/talk{talk:04d}.wav\t{start:.2f}\t{start + 4:.2f}\t"
                    f"talk{talk:04d}\t{src}\t{tgt}\n")
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200000)
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = fabricate(root, args.rows)
        t = time.perf_counter()
        with open(manifest, encoding="utf-8", newline="") as f:
            parsed = sum(1 for _ in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        baseline_s = time.perf_counter() - t
        t = time.perf_counter()
        code = prepare_manifest.main(["--manifest", f"train={manifest}", "--src_lang", "en",
                                      "--tgt_lang", "de", "--out", str(root / "data"),
                                      "--nj", str(args.nj)])
        stage1_s = time.perf_counter() - t
        assert code == 0 and parsed == args.rows
        written = sum(1 for _ in open(root / "data/train.en-de/segments"))
        assert written == args.rows, written
    result = {"rows": args.rows, "nj": args.nj,
              "stage1_s": round(stage1_s, 2), "stage1_rows_per_s": round(args.rows / stage1_s),
              "csv_baseline_s": round(baseline_s, 2),
              "csv_baseline_rows_per_s": round(args.rows / baseline_s),
              "stage1_over_baseline_time": round(stage1_s / baseline_s, 2),
              "target_rows_per_s": TARGET, "met": args.rows / stage1_s >= TARGET,
              "load_before": load_before, "load_after": os.getloadavg()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
