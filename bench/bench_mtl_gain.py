"""Does multi-task training pay off? ESPnet's ST baseline against `mtl_st`, at an
equal wall-clock training budget, in the demo's two settings:

    full          egs2/mini_st/st1: 1,500 ST triples, no auxiliary data
    low_resource  egs2/mini_st_low/st1: 400 ST triples + 20,000 MT-only pairs +
                  1,500 ASR-only utterances (mtl_st uses them, the baseline cannot)

Budget B: the default demo's stage-11 time, i.e. the full setting's baseline
trained as conf/train_st.yaml says (its max_epoch x its median epoch time,
from ESPnet's train.log); with `--budget S` it is given instead. Every other
system (the low-resource baseline included) first trains 3 epochs, then
resumes to E = floor(B / d) epochs, d the median of its epoch times so far
(from epoch 2), and again while a longer run of the measured epochs shows
that more fit (warmuplr does not depend on max_epoch, so this is the run that
trains E epochs directly). A single epoch's time is too noisy for this (one
slow epoch 2 cost a system 4 of 18 epochs). Each system is decoded as the recipe does:
the average of its 5 best checkpoints by validation accuracy
(valid.acc.ave), so a system that peaks early is not cut short.

    python bench/bench_mtl_gain.py [--settings full low_resource] [--workdir DIR]
        [--full_systems mtl_best mtl_ce_only] [--budget SECONDS] [--out result.json]

Prints JSON (BLEU / chrF per system, BLEU vs baseline, epochs, budget use,
the low-resource setting's total wall time, load average) and draws
<workdir>/gain_<setting>.png (validation accuracy against training time).
A rerun in the same --workdir reuses prepared data and finished systems.
Run it alone on the machine: epoch counts come from measured epoch times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench_demo_budget import epoch_seconds, run, score, valid_acc
from espnet_mtl.runner.recipes import copy_recipe

# setting -> recipe, and system -> (run.sh options selecting it, config it trains)
SETTINGS = {
    "full": ("mini_st", {
        "baseline": ([], "conf/train_st.yaml"),
        # the best mtl_st configuration of the issue-13 chain on the full demo
        "mtl_best": (["--st_config", "conf/train_st_mtl_best.yaml"],
                     "conf/train_st_mtl_best.yaml"),
        # mtl_st with ST CE + CTC only (chain row E0): the baseline's objectives in our model
        "mtl_ce_only": (["--st_config", "conf/tuning/chain/E0.yaml"], "conf/tuning/chain/E0.yaml"),
        "mtl_paper": (["--st_config", "conf/train_st_mtl.yaml"], "conf/train_st_mtl.yaml"),
    }),
    "low_resource": ("mini_st_low", {
        "baseline": (["--system", "baseline"], "conf/train_st.yaml"),
        "mtl_st": (["--system", "mtl_st"], "conf/train_st_mtl.yaml"),
    }),
}


def exp_dir(recipe: Path, system: str) -> Path:
    # mini_st_low's run.sh tags its systems' experiments; mini_st's gets --st_tag <system>
    return recipe / "exp" / f"st_{system}"


def system_args(setting: str, system: str) -> list[str]:
    opts, _ = SETTINGS[setting][1][system]
    return opts if setting == "low_resource" else [*opts, "--st_tag", system]


def train_to_budget(recipe: Path, log: Path, setting: str, system: str, budget: float) -> dict:
    """Train `system` for floor(budget / median epoch time) epochs, decode and score it."""
    st_exp = exp_dir(recipe, system)
    saved = st_exp / "bench_row.json"
    if saved.exists():  # finished in an earlier run of this script
        return json.loads(saved.read_text())
    common = system_args(setting, system)
    train_log = st_exp / "train.log"
    epochs, wall, times = 3, 0.0, {}
    while True:  # resume while the measured epoch time says more epochs fit
        wall += run(recipe, log, "--stage", "11", "--stop_stage", "11", *common,
                    "--st_args", f"--max_epoch {epochs}")
        times.update(epoch_seconds(train_log))  # each run rewrites train.log
        median = statistics.median(times.values())
        if math.floor(budget / median) <= epochs:
            break
        epochs = math.floor(budget / median)
    run(recipe, log, "--stage", "12", "--stop_stage", "13", *common)
    row = {"config": SETTINGS[setting][1][system][1], "epochs": epochs,
           "median_epoch_seconds": round(median, 1),
           "budget_used": round(epochs * median / budget, 3),
           "stage11_wall_seconds": round(wall, 1), **best_valid(st_exp), **score(recipe, system)}
    saved.write_text(json.dumps(row) + "\n")
    return row


def best_valid(st_exp: Path) -> dict:
    acc = valid_acc(st_exp)
    best = max(acc, key=acc.get)
    return {"best_valid_acc": round(acc[best], 4), "best_valid_epoch": best}


def baseline_budget(recipe: Path, log: Path) -> tuple[float, dict]:
    """The full demo's baseline as the default recipe trains it; B = epochs x median epoch time."""
    st_exp = recipe / "exp" / "st_baseline"
    wall = None
    if not (st_exp / ".done").exists():
        wall = run(recipe, log, "--stage", "11", "--stop_stage", "11", "--st_tag", "baseline")
    if not list(st_exp.glob("*/*/score_bleu/result.json")):
        run(recipe, log, "--stage", "12", "--stop_stage", "13", "--st_tag", "baseline")
    epochs = yaml.safe_load((recipe / "conf" / "train_st.yaml").read_text())["max_epoch"]
    median = statistics.median(epoch_seconds(st_exp / "train.log").values())
    row = {"config": "conf/train_st.yaml", "epochs": epochs,
           "median_epoch_seconds": round(median, 1), "budget_used": 1.0,
           "stage11_wall_seconds": None if wall is None else round(wall, 1),
           **best_valid(st_exp), **score(recipe, "baseline")}
    return epochs * median, row


def plot(recipe: Path, setting: str, rows: dict, budget: float, png: Path) -> None:
    """Validation accuracy against training time (epoch x planned epoch time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in rows.items():
        acc = valid_acc(exp_dir(recipe, name))
        step = row["median_epoch_seconds"]
        ax.plot([e * step / 60 for e in sorted(acc)], [acc[e] for e in sorted(acc)],
                marker=".", label=f"{name}: {row['epochs']} epochs, BLEU {row['bleu']}")
    ax.axvline(budget / 60, color="grey", linestyle="--", label="budget")
    ax.set_xlabel("training time (min) = epoch x median epoch time")
    ax.set_ylabel("validation token accuracy (ST)")
    ax.set_title(f"Demo en-de, {setting} setting, equal training budget")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def prepare(work: Path, setting: str) -> tuple[Path, Path, float]:
    """Recipe copy with stages 1-10 done; returns (recipe, log, seconds spent here)."""
    corpus = SETTINGS[setting][0]
    recipe = work / "egs2" / corpus / "st1"
    if not recipe.exists():
        copy_recipe(corpus, work)
    log = recipe / "bench_mtl_gain.log"
    print(f"bench_mtl_gain: {setting}: {recipe} (log: {log})", file=sys.stderr, flush=True)
    wall = 0.0
    if not list(recipe.glob("exp/st_stats_*/.done")):
        wall = run(recipe, log, "--stage", "1", "--stop_stage", "10")
    return recipe, log, wall


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="keep the runs here (default: a new temp dir)")
    p.add_argument("--settings", nargs="+", default=["full", "low_resource"],
                   choices=sorted(SETTINGS))
    p.add_argument("--full_systems", nargs="+", default=["mtl_best", "mtl_ce_only"],
                   choices=[s for s in SETTINGS["full"][1] if s != "baseline"],
                   help="mtl_st systems of the full setting")
    p.add_argument("--budget", type=float,
                   help="training seconds per system (default: the full demo baseline's)")
    p.add_argument("--out")
    args = p.parse_args()
    if "full" not in args.settings and args.budget is None:
        p.error("--budget is needed without the full setting (it defines the budget)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_mtl_gain."))
    out = {"benchmark": "mtl_gain_equal_budget", "cpu_count": os.cpu_count(),
           "test_set": "tst-COMMON.en-de", "workdir": str(work), "settings": {}}
    budget = args.budget
    for setting in (s for s in SETTINGS if s in args.settings):  # full first: it sets B
        t0 = time.perf_counter()
        load_before = os.getloadavg()[0]
        recipe, log, prep_wall = prepare(work, setting)
        rows = {}
        if setting == "full":
            measured, rows["baseline"] = baseline_budget(recipe, log)
            budget = budget or measured
            systems = args.full_systems
        else:
            systems = list(SETTINGS[setting][1])
        for system in systems:
            rows[system] = train_to_budget(recipe, log, setting, system, budget)
            print(json.dumps({setting: {system: rows[system]}}), file=sys.stderr, flush=True)
        png = work / f"gain_{setting}.png"
        plot(recipe, setting, rows, budget, png)
        out["settings"][setting] = {
            "recipe": f"egs2/{SETTINGS[setting][0]}/st1", "budget_seconds": round(budget, 1),
            "systems": rows, "plot": str(png),
            "bleu_vs_baseline": {k: round(v["bleu"] - rows["baseline"]["bleu"], 2)
                                 for k, v in rows.items() if k != "baseline"},
            "prep_wall_seconds": round(prep_wall, 1),
            "total_wall_seconds": round(time.perf_counter() - t0, 1),
            "load_average_1min": {"before": round(load_before, 2),
                                  "after": round(os.getloadavg()[0], 2)}}
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
