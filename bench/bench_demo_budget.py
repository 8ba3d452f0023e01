"""Demo corpus, equal training budget: ESPnet's ST model against `mtl_st`.

One recipe copy, stages 1-10 once, then for each model stages 11-13 with its
own `--st_tag`:

    baseline    conf/train_st.yaml (ESPnetSTModel), its max_epoch (20): the
                stage-11 cost of this run is the budget B
    mt_cr       conf/train_st_mtl.yaml with rdrop_weight 0: MT path
                (alpha_t 0.5) + softmax-KL consistency (beta 1.0)
    mt_rdrop    conf/train_st_mtl.yaml with consistency_weight 0: MT path +
                R-drop (alpha 3.0)
    mt_cr_rdrop conf/train_st_mtl.yaml as it is (the paper's full setting;
                only with --variants ... mt_cr_rdrop)

Budget matching: a variant first trains 1 epoch (stage 11 with --max_epoch 1)
and its cost t1 (start-up included, so the estimate errs on the short side)
sets its epoch count E = floor(B / t1); training then resumes from the
checkpoint up to E epochs. The warm-up LR schedule does not depend on
max_epoch, so this is the same run as training E epochs directly.

B and t1 are CPU seconds of the stage (user + system of all its processes),
not wall seconds: training uses every core, so on an otherwise idle machine
the two budgets are the same, but CPU time does not grow when something
else shares the machine during the hour this takes. The JSON reports both,
each model's epochs and its ratio to B, and BLEU / chrF / TER on tst-COMMON.

    python bench/bench_demo_budget.py [--workdir DIR] [--variants mt_cr mt_rdrop]
                                      [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from espnet_mtl.recipes import copy_recipe

VARIANTS = {
    "mt_cr": {"rdrop_weight": 0.0},
    "mt_rdrop": {"consistency_weight": 0.0},
    "mt_cr_rdrop": {},
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(recipe: Path, log: Path, *args: str) -> tuple[float, float]:
    """./run.sh ARGS with output to `log`; returns (CPU seconds, wall seconds)."""
    t0, c0 = time.perf_counter(), _children_cpu()
    with open(log, "a") as f:
        f.write(f"\n### ./run.sh {' '.join(args)}\n")
        f.flush()
        rc = subprocess.run(["./run.sh", *args], cwd=recipe, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    if rc:
        sys.exit(f"./run.sh {' '.join(args)} failed (rc {rc}); see {log}")
    return _children_cpu() - c0, time.perf_counter() - t0


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

    run(recipe, log, "--stage", "1", "--stop_stage", "10")
    budget, budget_wall = run(recipe, log, "--stage", "11", "--stop_stage", "11",
                              "--st_tag", "baseline")
    run(recipe, log, "--stage", "12", "--stop_stage", "13", "--st_tag", "baseline")
    base_conf = yaml.safe_load((recipe / "conf" / "train_st.yaml").read_text())
    rows = {"baseline": {"config": "conf/train_st.yaml", "epochs": base_conf["max_epoch"],
                         "train_cpu_seconds": round(budget, 1),
                         "train_wall_seconds": round(budget_wall, 1), "ratio_to_budget": 1.0,
                         **score(recipe, "baseline")}}
    print(json.dumps({"baseline": rows["baseline"]}), file=sys.stderr, flush=True)

    mtl = yaml.safe_load((recipe / "conf" / "train_st_mtl.yaml").read_text())
    for name in args.variants:
        conf = yaml.safe_load(yaml.safe_dump(mtl))
        conf["model_conf"].update(VARIANTS[name])
        path = recipe / "conf" / f"train_st_budget_{name}.yaml"
        path.write_text(f"# bench_demo_budget.py: conf/train_st_mtl.yaml with "
                        f"{VARIANTS[name] or 'no change'}\n" + yaml.safe_dump(conf, sort_keys=False))
        common = ["--st_config", str(path.relative_to(recipe)), "--st_tag", name]
        t1, w1 = run(recipe, log, "--stage", "11", "--stop_stage", "11", *common,
                     "--st_args", "--max_epoch 1")
        epochs = max(1, math.floor(budget / t1))
        rest, w_rest = run(recipe, log, "--stage", "11", "--stop_stage", "11", *common,
                           "--st_args", f"--max_epoch {epochs}") if epochs > 1 else (0.0, 0.0)
        run(recipe, log, "--stage", "12", "--stop_stage", "13", *common)
        rows[name] = {"config": str(path.relative_to(recipe)), "model_conf_overrides": VARIANTS[name],
                      "first_epoch_cpu_seconds": round(t1, 1), "epochs": epochs,
                      "train_cpu_seconds": round(t1 + rest, 1),
                      "train_wall_seconds": round(w1 + w_rest, 1),
                      "ratio_to_budget": round((t1 + rest) / budget, 3), **score(recipe, name)}
        print(json.dumps({name: rows[name]}), file=sys.stderr, flush=True)

    out = {"benchmark": "demo_equal_budget", "budget_cpu_seconds": round(budget, 1),
           "cpu_count": os.cpu_count(),
           "test_set": "tst-COMMON.en-de", "models": rows,
           "bleu_vs_baseline": {k: round(v["bleu"] - rows["baseline"]["bleu"], 2)
                                for k, v in rows.items() if k != "baseline"},
           "workdir": str(work)}
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
