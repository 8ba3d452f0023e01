"""The default demo run: wall time and test BLEU of `egs2/mini_st/st1/run.sh`.

Runs the recipe in a fresh copy (corpus generation included) and prints
JSON with the wall time, per-stage times from the driver's log, the
result.json numbers, and the ratios against the issue's targets (<= 20 min,
>= 60 BLEU).

    python bench/bench_demo.py [--workdir DIR] [--out result.json] [-- extra run.sh options]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from espnet_mtl.recipes import copy_recipe



def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workdir", help="keep the run here (default: a temp dir, removed)")
    p.add_argument("--out")
    p.add_argument("run_args", nargs="*")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_demo."))
    recipe = copy_recipe("mini_st", work)
    t0 = time.perf_counter()
    with open(recipe / "run.log", "w") as log:
        rc = subprocess.run(["./run.sh", *args.run_args], cwd=recipe,
                            stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = (recipe / "run.log").read_text()
    stages = {}
    last = None
    for m in re.finditer(r"^(\S+) \(st\.sh:\d+:main\) (Stages? [\d-]+|Successfully finished)", text, re.M):
        stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        if last:
            stages[last[0]] = stamp - last[1]
        last = (m.group(2), stamp)
    results = sorted(recipe.glob("exp/st_*/*/*/score_bleu/result.json"))
    result = json.loads(results[0].read_text()) if results else {}
    out = {
        "benchmark": "demo_run",
        "returncode": rc,
        "wall_seconds": round(wall, 1),
        "wall_minutes": round(wall / 60, 2),
        "stage_seconds": stages,
        "bleu": result.get("bleu"),
        "chrf": result.get("chrf"),
        "ter": result.get("ter"),
        "bleu_signature": result.get("bleu_signature"),
        "target_minutes": 20,
        "target_bleu": 60,
        "ratio_wall_vs_target": round(wall / 60 / 20, 3),
        "ratio_bleu_vs_target": round(result["bleu"] / 60, 3) if result else None,
        "run_log": str(recipe / "run.log"),
    }
    print(json.dumps(out, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    if not args.workdir and rc == 0:
        shutil.rmtree(work)
    sys.exit(rc)


if __name__ == "__main__":
    main()
