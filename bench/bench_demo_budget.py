"""Demo corpus, equal wall-clock budget: ESPnet's ST model against `mtl_st`.

One recipe copy, stages 1-10 once, then for each model stages 11-13 with its
own `--st_tag`:

    baseline    conf/train_st.yaml (ESPnetSTModel), its max_epoch (20)
    mt_cr       conf/train_st_mtl.yaml with rdrop_weight 0: MT path
                (alpha_t 0.5) + softmax-KL consistency (beta 1.0)
    mt_rdrop    conf/train_st_mtl.yaml with consistency_weight 0: MT path +
                R-drop (alpha 3.0)
    mt_cr_rdrop conf/train_st_mtl.yaml as it is (the paper's full setting;
                only with --variants ... mt_cr_rdrop)

Budget: B = (baseline epochs) x (its median epoch wall time). Epoch times
come from ESPnet's train.log (the time between consecutive "Nepoch results"
lines: training, validation and checkpointing of one epoch). The median
keeps an epoch slowed by something else on the machine from moving the
budget. A variant first trains 2 epochs; its epoch time d is that of epoch 2
and its epoch count is E = floor(B / d); training then resumes from the
checkpoint up to E epochs (the warm-up LR schedule does not depend on
max_epoch, so this is the same run as training E epochs directly). The JSON
reports each model's epochs, median epoch time, budget use, total stage-11
wall time, and BLEU / chrF / TER on tst-COMMON.

    python bench/bench_demo_budget.py [--workdir DIR] [--variants mt_cr mt_rdrop]
                                      [--out result.json]

A rerun in the same --workdir reuses the prepared data and finished training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from espnet_mtl.runner.recipes import copy_recipe

VARIANTS = {
    "mt_cr": {"rdrop_weight": 0.0},
    "mt_rdrop": {"consistency_weight": 0.0},
    "mt_cr_rdrop": {},
}
_RESULTS = re.compile(r"^\S+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) \(trainer:\d+\) INFO: "
                      r"(\d+)epoch results", re.M)


def run(recipe: Path, log: Path, *args: str) -> float:
    """./run.sh ARGS with output to `log`; returns the wall seconds (exits on failure)."""
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n### ./run.sh {' '.join(args)}\n")
        f.flush()
        rc = subprocess.run(["./run.sh", *args], cwd=recipe, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    if rc:
        sys.exit(f"./run.sh {' '.join(args)} failed (rc {rc}); see {log}")
    return time.perf_counter() - t0


def epoch_seconds(train_log: Path) -> dict[int, float]:
    """epoch -> seconds since the previous epoch's results line (from epoch 2 on)."""
    stamps = {int(m.group(2)): datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
              for m in _RESULTS.finditer(train_log.read_text(errors="replace"))}
    return {e: (stamps[e] - stamps[e - 1]).total_seconds()
            for e in sorted(stamps) if e - 1 in stamps}


def valid_acc(st_exp: Path) -> dict[int, float]:
    """epoch -> validation accuracy, from the reporter state ESPnet keeps in checkpoint.pth."""
    import torch

    state = torch.load(st_exp / "checkpoint.pth", map_location="cpu", weights_only=False)
    return {e: float(s["valid"]["acc"]) for e, s in state["reporter"]["stats"].items()
            if "acc" in s.get("valid", {})}


def plot_curves(recipe: Path, rows: dict, budget: float, png: Path) -> None:
    """Validation accuracy against training time.

    The time axis is epoch x the epoch time the budget was planned with (the
    baseline's median, a variant's epoch 2), so a variant's later epochs slowed
    by a busy machine do not stretch its curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in rows.items():
        acc = valid_acc(recipe / "exp" / f"st_{name}")
        epochs = sorted(acc)
        step = row.get("epoch2_seconds", row["median_epoch_seconds"])
        ax.plot([e * step / 60 for e in epochs], [acc[e] for e in epochs],
                marker=".", label=f"{name}: {row['epochs']} epochs, BLEU {row['bleu']}")
    ax.axvline(budget / 60, color="grey", linestyle="--", label="budget")
    ax.set_xlabel("training time (min) = epoch x epoch time (baseline: median; others: epoch 2)")
    ax.set_ylabel("validation token accuracy (ST)")
    ax.set_title("Demo en-de, equal training budget")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def score(recipe: Path, tag: str) -> dict:
    found = sorted(recipe.glob(f"exp/st_{tag}/*/*/score_bleu/result.json"))
    if not found:
        sys.exit(f"no result.json under {recipe}/exp/st_{tag}")
    r = json.loads(found[0].read_text())
    return {"bleu": r["bleu"], "chrf": r["chrf"], "ter": r["ter"]}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="keep the runs here (default: a new temp dir)")
    p.add_argument("--variants", nargs="+", default=["mt_cr", "mt_rdrop"],
                   choices=sorted(VARIANTS))
    p.add_argument("--out")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_budget."))
    recipe = work / "egs2" / "mini_st" / "st1"
    if not recipe.exists():
        copy_recipe("mini_st", work)
    log = recipe / "bench_budget.log"
    print(f"bench_demo_budget: {recipe} (log: {log})", file=sys.stderr, flush=True)

    if not list(recipe.glob("exp/st_stats_*/.done")):
        run(recipe, log, "--stage", "1", "--stop_stage", "10")
    wall = None  # a rerun keeps the finished training (and its train.log)
    if not (recipe / "exp" / "st_baseline" / ".done").exists():
        wall = run(recipe, log, "--stage", "11", "--stop_stage", "11", "--st_tag", "baseline")
    if not list(recipe.glob("exp/st_baseline/*/*/score_bleu/result.json")):
        run(recipe, log, "--stage", "12", "--stop_stage", "13", "--st_tag", "baseline")
    base_epochs = yaml.safe_load((recipe / "conf" / "train_st.yaml").read_text())["max_epoch"]
    base_times = epoch_seconds(recipe / "exp" / "st_baseline" / "train.log")
    epoch_time = statistics.median(base_times.values())
    budget = base_epochs * epoch_time
    rows = {"baseline": {"config": "conf/train_st.yaml", "epochs": base_epochs,
                         "median_epoch_seconds": round(epoch_time, 1),
                         "budget_used": 1.0,
                         "stage11_wall_seconds": None if wall is None else round(wall, 1),
                         **score(recipe, "baseline")}}
    print(json.dumps({"baseline": rows["baseline"]}), file=sys.stderr, flush=True)

    mtl = yaml.safe_load((recipe / "conf" / "train_st_mtl.yaml").read_text())
    for name in args.variants:
        saved = recipe / "exp" / f"st_{name}" / "bench_row.json"
        if saved.exists():  # finished in an earlier run of this script
            rows[name] = json.loads(saved.read_text())
            continue
        conf = yaml.safe_load(yaml.safe_dump(mtl))
        conf["model_conf"].update(VARIANTS[name])
        path = recipe / "conf" / f"train_st_budget_{name}.yaml"
        path.write_text(f"# bench_demo_budget.py: conf/train_st_mtl.yaml with "
                        f"{VARIANTS[name] or 'no change'}\n" + yaml.safe_dump(conf, sort_keys=False))
        common = ["--st_config", str(path.relative_to(recipe)), "--st_tag", name]
        train_log = recipe / "exp" / f"st_{name}" / "train.log"
        wall = run(recipe, log, "--stage", "11", "--stop_stage", "11", *common,
                   "--st_args", "--max_epoch 2")
        first = epoch_seconds(train_log)[2]
        epochs = max(2, math.floor(budget / first))
        wall += run(recipe, log, "--stage", "11", "--stop_stage", "11", *common,
                    "--st_args", f"--max_epoch {epochs}")
        run(recipe, log, "--stage", "12", "--stop_stage", "13", *common)
        times = epoch_seconds(train_log)
        median = statistics.median(times.values())
        rows[name] = {"config": str(path.relative_to(recipe)),
                      "model_conf_overrides": VARIANTS[name], "epoch2_seconds": round(first, 1),
                      "epochs": epochs, "median_epoch_seconds": round(median, 1),
                      "budget_planned": round(epochs * first / budget, 3),
                      "budget_used": round(epochs * median / budget, 3),
                      "stage11_wall_seconds": round(wall, 1), **score(recipe, name)}
        saved.write_text(json.dumps(rows[name]) + "\n")
        print(json.dumps({name: rows[name]}), file=sys.stderr, flush=True)

    png = recipe / "budget_curves.png"
    plot_curves(recipe, rows, budget, png)
    out = {"benchmark": "demo_equal_budget", "plot": str(png), "budget_seconds": round(budget, 1),
           "cpu_count": os.cpu_count(), "test_set": "tst-COMMON.en-de", "models": rows,
           "bleu_vs_baseline": {k: round(v["bleu"] - rows["baseline"]["bleu"], 2)
                                for k, v in rows.items() if k != "baseline"},
           "workdir": str(work)}
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
