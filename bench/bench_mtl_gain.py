"""Does multi-task training pay off? ESPnet's ST baseline against `mtl_st`, at an
equal wall-clock training budget, in the demo's settings:

    full          egs2/mini_st/st1: 1,500 ST triples, no auxiliary data
    low_resource  egs2/mini_st_low/st1: 400 ST triples + 20,000 MT-only pairs +
                  1,500 ASR-only utterances (mtl_st uses them, the baseline cannot)
    multilingual  egs2/covost2/st1 --demo true: De/Es/Fr->En (Objective Soups,
                  issue 15): static weighting vs the MoDo recipes, BLEU and WER
                  per source language (needs --budget)
    task_aware    egs2/mini_st_low/st1: mtl_st vs one task-aware model (explicit,
                  implicit TCN; issue 16), ST BLEU, MT BLEU and WER (needs --budget)

Budget B: the default demo's stage-11 time, i.e. the full setting's baseline
trained as conf/train_st.yaml says (its max_epoch epochs); with `--budget S`
it is given instead. The systems of a setting train interleaved: each in turn
trains `--chunk` epochs (ESPnet resumes from its checkpoint), so the machine's
drift (epoch times here vary by +-20% over minutes) hits every system alike.
An epoch's cost is what ESPnet's epoch results line reports (train + valid
time; process start-up is not charged). A system trains while its next epoch,
at the median of its epochs so far, ends within half an epoch of B (so its
epoch count is the nearest one to B, not rounded down). Each system is
decoded as the recipe does: the average of its 5 best checkpoints by
validation accuracy (valid.acc.ave), so a system that peaks early is not cut
short.

    python bench/bench_mtl_gain.py [--settings full low_resource] [--workdir DIR]
        [--full_systems baseline mtl_best mtl_ce_only] [--low_resource_systems baseline mtl_st]
        [--budget SECONDS] [--chunk 3] [--out result.json]

Prints JSON (BLEU / chrF per system, BLEU vs baseline, epochs, budget use,
the low-resource setting's total wall time, load average) and draws
<workdir>/gain_<setting>.png (validation accuracy against training time).
A rerun in the same --workdir reuses prepared data, trained epochs and
finished systems.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench_demo_budget import run, score, valid_acc
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
        # IMTL (seed 000) on the same data (issue 14)
        "imtl": (["--system", "mtl_st", "--st_config", "conf/train_st_imtl.yaml",
                  "--st_tag", "imtl"], "conf/train_st_imtl.yaml"),
    }),
    # task-aware MTL (seed 003, issue 16): mtl_st vs the same model with a TCN and FiLM,
    # each decoded for ST, MT (transcript in) and ASR from its one checkpoint
    "task_aware": ("mini_st_low", {
        name: (["--system", "mtl_st", "--st_config", config, "--extra_decode_paths", "mt asr"],
               config)
        for name, config in (("mtl_st_3task", "conf/train_st_mtl.yaml"),
                             ("task_aware_explicit", "conf/train_st_task_aware_explicit.yaml"),
                             ("task_aware_implicit", "conf/train_st_task_aware_implicit.yaml"))
    }),
    # Objective Soups (seed 002): the same objectives (ST CE, ASR CTC, CPC), three updates
    "multilingual": ("covost2", {
        name: (["--demo", "true", "--st_config", f"conf/tuning/train_st_os_{name}_demo.yaml"],
               f"conf/tuning/train_st_os_{name}_demo.yaml")
        for name in ("static", "vs_msp", "vs_msp_layers", "vc_msp", "vm_msp_uas", "vm_msp_usa")
    }),
}
#: run.sh options every call of a setting needs (stages 1-10 included)
COMMON_ARGS = {"multilingual": ["--demo", "true"]}


def exp_root(recipe: Path) -> Path:
    # covost2's --demo runs keep their experiments apart from real-data ones
    return recipe / ("exp_demo" if recipe.parent.name == "covost2" else "exp")


def exp_dir(recipe: Path, system: str) -> Path:
    # mini_st_low's run.sh tags its systems' experiments; the others get --st_tag <system>
    return exp_root(recipe) / f"st_{system}"


def system_args(setting: str, system: str) -> list[str]:
    opts, _ = SETTINGS[setting][1][system]
    return opts if setting == "low_resource" else [*opts, "--st_tag", system]


_EPOCH_TIMES = re.compile(r"(\d+)epoch results: \[train\] .*?, time=([\d.]+) seconds,"
                          r".*?\[valid\] .*?, time=([\d.]+) seconds")


def logged_epoch_seconds(train_log: Path) -> dict[int, float]:
    """epoch -> train + validation seconds, from ESPnet's epoch results lines."""
    return {int(m[1]): float(m[2]) + float(m[3])
            for m in _EPOCH_TIMES.finditer(train_log.read_text(errors="replace"))}


def train_interleaved(recipe: Path, log: Path, setting: str, systems: list[str],
                      budget: float | None, chunk: int) -> tuple[dict, float]:
    """Train `systems` in turn, `chunk` epochs at a time, to an equal budget.

    budget None: the baseline trains its config's max_epoch epochs and their
    summed seconds are the budget (estimated from its epochs so far until it
    is done). Returns ({system: row}, budget).
    """
    base_epochs = yaml.safe_load((recipe / "conf" / "train_st.yaml").read_text())["max_epoch"]
    state = {}  # system -> {"seconds": {epoch: s}, "wall": s, "done": bool}
    for system in systems:
        saved = exp_dir(recipe, system) / "bench_epochs.json"
        state[system] = (json.loads(saved.read_text(), object_hook=_int_epochs) if saved.exists()
                         else {"seconds": {}, "wall": 0.0, "done": False})
    while not all(st["done"] for st in state.values()):
        for system, st in state.items():
            if st["done"]:
                continue
            # an epoch whose results line was not parsed (seen once in a resumed run) still
            # counts: trained is the last epoch logged, its cost the median epoch's
            trained = max(st["seconds"], default=0)
            spent = sum(st["seconds"].values()) + (trained - len(st["seconds"])) * (
                statistics.median(st["seconds"].values()) if st["seconds"] else 0.0)
            if budget is None and system == "baseline":
                more, final = min(chunk, base_epochs - trained), True
            else:
                limit, final = budget_so_far(budget, state.get("baseline"), base_epochs)
                median = statistics.median(st["seconds"].values()) if st["seconds"] else 0.0
                more = sum(spent + (j - 0.5) * median <= limit for j in range(1, chunk + 1))
            if more <= 0:
                st["done"] = final
            else:
                st["wall"] += run(recipe, log, "--stage", "11", "--stop_stage", "11",
                                  *system_args(setting, system),
                                  "--st_args", f"--max_epoch {trained + more}")
                st["seconds"].update(logged_epoch_seconds(exp_dir(recipe, system) / "train.log"))
                if max(st["seconds"], default=0) <= trained:  # would ask for the same epochs again
                    sys.exit(f"{setting}/{system}: no epoch after {trained} in "
                             f"{exp_dir(recipe, system) / 'train.log'}")
            (exp_dir(recipe, system) / "bench_epochs.json").write_text(json.dumps(st) + "\n")
            print(f"bench_mtl_gain: {setting}/{system}: {len(st['seconds'])} epochs, "
                  f"{sum(st['seconds'].values()):.0f} s", file=sys.stderr, flush=True)
    budget = budget or sum(state["baseline"]["seconds"].values())
    return {system: decode_row(recipe, log, setting, system, st, budget)
            for system, st in state.items()}, budget


def budget_so_far(budget: float | None, base: dict | None, base_epochs: int) -> tuple[float, bool]:
    """(the budget, whether it is final): given, or the baseline's seconds (estimated while it trains)."""
    if budget is not None:
        return budget, True
    seconds = list(base["seconds"].values())
    if base["done"]:
        return sum(seconds), True
    if not seconds:
        return math.inf, False  # nothing measured yet: the first chunk is safe
    return statistics.mean(seconds) * base_epochs, False


def _int_epochs(d: dict) -> dict:
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


def decode_row(recipe: Path, log: Path, setting: str, system: str, st: dict,
               budget: float) -> dict:
    """Decode and score a trained system (stages 12-13, once); its JSON row."""
    st_exp = exp_dir(recipe, system)
    saved = st_exp / "bench_row.json"
    if saved.exists():  # finished in an earlier run of this script
        return json.loads(saved.read_text())
    run(recipe, log, "--stage", "12", "--stop_stage", "13", *system_args(setting, system))
    seconds = [st["seconds"][e] for e in sorted(st["seconds"])]
    row = {"config": SETTINGS[setting][1][system][1], "epochs": len(seconds),
           "median_epoch_seconds": round(statistics.median(seconds), 1),
           "trained_seconds": round(sum(seconds), 1),
           "budget_used": round(sum(seconds) / budget, 3),
           "stage11_wall_seconds": round(st["wall"], 1),
           "epoch_seconds": [round(x, 2) for x in seconds],
           **best_valid(st_exp),
           **(score_per_test_set(st_exp) if setting == "multilingual" else
              score_three_tasks(st_exp) if setting == "task_aware" else score(recipe, system))}
    saved.write_text(json.dumps(row) + "\n")
    return row


def score_per_test_set(st_exp: Path) -> dict:
    """BLEU of every test set (and WER through the ASR path), plus their means."""
    bleu = {p.parts[-3]: json.loads(p.read_text())["bleu"]
            for p in sorted(st_exp.glob("*/*/score_bleu/result.json"))}
    wer = {p.parts[-4]: json.loads(p.read_text())["wer"]
           for p in sorted(st_exp.glob("*/*/asr_path/score_wer/result.json"))}
    if not bleu:
        sys.exit(f"no score_bleu/result.json under {st_exp}")
    return {"bleu": round(statistics.mean(bleu.values()), 2), "bleu_per_test_set": bleu,
            "wer": round(statistics.mean(wer.values()), 2) if wer else None,
            "wer_per_test_set": wer}


def score_three_tasks(st_exp: Path) -> dict:
    """ST BLEU, MT-path BLEU and ASR-path WER of the (one) test set."""
    def one(pattern, key):
        found = sorted(st_exp.glob(pattern))
        if not found:
            sys.exit(f"no {pattern} under {st_exp}")
        return json.loads(found[0].read_text())[key]

    return {"bleu": one("*/*/score_bleu/result.json", "bleu"),
            "mt_bleu": one("*/*/mt_path/score_bleu/result.json", "bleu"),
            "wer": one("*/*/asr_path/score_wer/result.json", "wer")}


def best_valid(st_exp: Path) -> dict:
    acc = valid_acc(st_exp)
    best = max(acc, key=acc.get)
    return {"best_valid_acc": round(acc[best], 4), "best_valid_epoch": best}


def plot(recipe: Path, setting: str, rows: dict, budget: float, png: Path) -> None:
    """Validation accuracy against training time (the epochs' logged seconds, summed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in rows.items():
        acc = valid_acc(exp_dir(recipe, name))
        elapsed = list(itertools.accumulate(row["epoch_seconds"]))
        ax.plot([elapsed[e - 1] / 60 for e in sorted(acc)], [acc[e] for e in sorted(acc)],
                marker=".", label=f"{name}: {row['epochs']} epochs, BLEU {row['bleu']}")
    ax.axvline(budget / 60, color="grey", linestyle="--", label="budget")
    ax.set_xlabel("training time (min): train + valid seconds of the epochs so far")
    ax.set_ylabel("validation token accuracy (ST)")
    ax.set_title(f"Demo ({recipe.parent.name}), {setting} setting, equal training budget")
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
    if not list(exp_root(recipe).glob("st_stats_*/.done")):
        wall = run(recipe, log, "--stage", "1", "--stop_stage", "10",
                   *COMMON_ARGS.get(setting, []))
    return recipe, log, wall


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="keep the runs here (default: a new temp dir)")
    p.add_argument("--settings", nargs="+", default=["full", "low_resource"],
                   choices=sorted(SETTINGS))
    for setting, default in (("full", ["baseline", "mtl_best", "mtl_ce_only"]),
                             ("low_resource", ["baseline", "mtl_st"]),
                             ("multilingual", ["static", "vs_msp", "vm_msp_uas"]),
                             ("task_aware", ["mtl_st_3task", "task_aware_explicit",
                                             "task_aware_implicit"])):
        p.add_argument(f"--{setting}_systems", nargs="+", default=default,
                       choices=list(SETTINGS[setting][1]),
                       help=f"systems of the {setting} setting (trained interleaved)")
    p.add_argument("--budget", type=float,
                   help="training seconds per system (default: the full demo baseline's)")
    p.add_argument("--chunk", type=int, default=3,
                   help="epochs a system trains before the next one takes its turn")
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
        systems = getattr(args, f"{setting}_systems")
        if budget is None and "baseline" not in systems:
            p.error(f"--{setting}_systems: the baseline defines the budget; add it or give "
                    "--budget")
        rows, budget = train_interleaved(recipe, log, setting, systems, budget, args.chunk)
        first = "baseline" if "baseline" in rows else systems[0]  # what the others are against
        png = work / f"gain_{setting}.png"
        plot(recipe, setting, rows, budget, png)
        out["settings"][setting] = {
            "recipe": f"egs2/{SETTINGS[setting][0]}/st1", "budget_seconds": round(budget, 1),
            "systems": rows, "plot": str(png),
            "bleu_vs_baseline": {k: round(v["bleu"] - rows[first]["bleu"], 2)
                                 for k, v in rows.items() if k != first},
            "prep_wall_seconds": round(prep_wall, 1),
            "total_wall_seconds": round(time.perf_counter() - t0, 1),
            "load_average_1min": {"before": round(load_before, 2),
                                  "after": round(os.getloadavg()[0], 2)}}
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
