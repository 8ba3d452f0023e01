"""The default demo run against the pre-issue-11 demo config, in one script.

1. A fresh copy of egs2/mini_st/st1 runs `./run.sh` (stages 1-13, corpus
   generation included): wall time, per-stage times, test BLEU.
2. In the same copy, the baseline config (conf/tuning/train_st_demo_10ms_20ep.yaml:
   the demo as it was before issue 11, 10 ms frames, 20 epochs) runs stages
   10-13 with its own statistics directory and --st_tag baseline.

The JSON has both runs' per-stage seconds, training steps per second and
epoch seconds (from ESPnet's train.log), BLEU / chrF / TER, the ratio of
the baseline's stage 11 time to the default's (target >= 2) and of the whole
default demo against the 10-minute target, plus the CPU model, the core
count and the load average before and after (a figure is only valid when
nothing else ran on the machine).

    python bench/bench_demo.py [--workdir DIR] [--out result.json] [--no_baseline]
                               [-- extra run.sh options for both runs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from espnet_mtl.runner.recipes import copy_recipe

BASELINE_CONFIG = "conf/tuning/train_st_demo_10ms_20ep.yaml"
_STAGE = re.compile(r"^(\S+) \(st\.sh:\d+:main\) (Stages? [\d-]+|Successfully finished)", re.M)
_EPOCH = re.compile(r"\d+epoch results: \[train\] .*?, time=([\d.]+) seconds, total_count=(\d+)")
_TRAINING = re.compile(r"Stage 11: ST training -> (\S+)")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def stage_seconds(log_text: str) -> dict[str, float]:
    """Seconds per stage from the driver's timestamped stage lines."""
    stages, last = {}, None
    for m in _STAGE.finditer(log_text):
        stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        if last:
            stages[last[0]] = stages.get(last[0], 0) + stamp - last[1]
        last = (m.group(2), stamp)
    return stages


def training_speed(train_log: Path) -> dict:
    """Epochs, median epoch seconds (training part) and steps per second from ESPnet's log."""
    epochs = [(float(seconds), int(steps)) for seconds, steps in _EPOCH.findall(train_log.read_text())]
    if not epochs:
        return {}
    median = statistics.median(seconds for seconds, _ in epochs)
    return {"epochs": len(epochs), "steps_per_epoch": epochs[0][1],
            "median_epoch_train_s": median, "steps_per_s": round(epochs[0][1] / median, 3)}


def run(recipe: Path, log_name: str, args: list[str]) -> dict:
    t0 = time.perf_counter()
    with open(recipe / log_name, "w") as log:
        rc = subprocess.run(["./run.sh", *args], cwd=recipe, stdout=log,
                            stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = (recipe / log_name).read_text()
    found = _TRAINING.search(text)  # the experiment directory the driver trained
    exp = recipe / found.group(1) if found else None
    results = sorted(exp.glob("*/*/score_bleu/result.json")) if exp else []
    result = json.loads(results[0].read_text()) if results else {}
    return {
        "returncode": rc,
        "wall_seconds": round(wall, 1),
        "stage_seconds": stage_seconds(text),
        "training": training_speed(exp / "train.log") if exp else {},
        "bleu": result.get("bleu"), "chrf": result.get("chrf"), "ter": result.get("ter"),
        "bleu_signature": result.get("bleu_signature"),
        "run_log": str(recipe / log_name),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="keep the run here (default: a temp dir, removed)")
    p.add_argument("--out")
    p.add_argument("--no_baseline", action="store_true", help="only the default demo")
    p.add_argument("run_args", nargs="*")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_demo."))
    recipe = copy_recipe("mini_st", work)
    load_before = os.getloadavg()
    demo = run(recipe, "run.log", args.run_args)
    out = {"benchmark": "demo_run", "cpu": cpu_model(), "cores": os.cpu_count(),
           "load_average_before": load_before, "demo": demo,
           "demo_wall_minutes": round(demo["wall_seconds"] / 60, 2),
           "target_demo_minutes": 10, "target_bleu": 80}
    if not args.no_baseline and demo["returncode"] == 0:
        base = run(recipe, "baseline.log",
                   ["--stage", "10", "--stop_stage", "13", "--st_config", BASELINE_CONFIG,
                    "--st_tag", "baseline", "--st_stats_dir", "exp/st_stats_baseline",
                    *args.run_args])
        out["baseline"] = base
        st11 = "Stage 11"
        if st11 in demo["stage_seconds"] and st11 in base["stage_seconds"]:
            out["stage11_speedup_vs_baseline"] = round(
                base["stage_seconds"][st11] / demo["stage_seconds"][st11], 3)
            out["target_stage11_speedup"] = 2.0
        if demo["training"] and base["training"]:
            out["steps_per_s_ratio_vs_baseline"] = round(
                demo["training"]["steps_per_s"] / base["training"]["steps_per_s"], 3)
    out["load_average_after"] = os.getloadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    rc = demo["returncode"] or out.get("baseline", {}).get("returncode", 0)
    if not args.workdir and rc == 0:
        shutil.rmtree(work)
    sys.exit(rc)


if __name__ == "__main__":
    main()
