"""Slurm overhead: what submitting through Slurm adds to a stage and to a chain of stages.

Needs a running cluster (tools/slurm/start_local_slurm.sh). Prints JSON:
- per stage (run_jobs with 4 trivial tasks): median wall time with the local
  backend (the baseline) and with the Slurm backend, their difference and ratio;
- whole pipeline (submit_pipeline --wait on a recipe whose 13 stages do
  nothing): per group, the seconds from "ready" (predecessor ended) to started.

    tools/venv/bin/python bench/bench_slurm_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from espnet_mtl.runner.pipeline import stage_overheads

NOOP_RUN_SH = """#!/usr/bin/env bash
# A recipe whose stages do nothing: what remains is the scheduling overhead.
set -euo pipefail
while [ $# -gt 0 ]; do shift 2; done
"""


def time_run_jobs(backend: str, workdir: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "espnet_mtl.bin.run_jobs", "--backend", backend,
                    "JOB=1:4", f"log_{backend}/t.JOB.log", "true"], cwd=workdir, check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_slurm.") as tmp:
        tmp = Path(tmp)
        local = [time_run_jobs("local", tmp) for _ in range(args.repeats)]
        slurm = [time_run_jobs("slurm", tmp) for _ in range(args.repeats)]
        recipe = tmp / "egs2" / "noop" / "st1"
        recipe.mkdir(parents=True)
        (recipe / "run.sh").write_text(NOOP_RUN_SH)
        (recipe / "run.sh").chmod(0o755)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "espnet_mtl.bin.submit_pipeline", "--recipe",
                        str(recipe), "--gpu_stages", "", "--wait"], check=True, capture_output=True)
        chain = time.perf_counter() - t0
        overheads = stage_overheads(recipe)
    med_local, med_slurm = statistics.median(local), statistics.median(slurm)
    result = {
        "benchmark": "slurm_overhead",
        "stage_4_tasks": {"local_backend_s": round(med_local, 3), "slurm_backend_s": round(med_slurm, 3),
                          "added_by_slurm_s": round(med_slurm - med_local, 3),
                          "ratio_slurm_vs_local": round(med_slurm / med_local, 2)},
        "pipeline": {"groups": len(overheads), "wall_s": round(chain, 2),
                     "ready_to_start_s": overheads,
                     "median_ready_to_start_s": round(statistics.median(overheads.values()), 3)},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
