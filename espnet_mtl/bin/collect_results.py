"""`python -m espnet_mtl.bin.collect_results [RECIPE_DIR] [--out FILE]`

One table over every experiment of a recipe: each `exp*/<st_exp>/<inference
tag>/<test set>/score_bleu/result.json` (stage 13's) as a row, with ESPnet's
environment header. Markdown on stdout, or into --out.
"""

import argparse
import json
import sys
from pathlib import Path

from espnet_mtl.fileio import atomic_open
from espnet_mtl.inference.scoring import environment


def collect(recipe: Path) -> str:
    rows = []
    for path in sorted(recipe.glob("exp*/*/*/*/score_bleu/result.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        exp, tag, test_set = path.parts[-5:-2]
        rows.append(f"| {path.parts[-6]}/{exp} | {tag} | {test_set} | {r['bleu']} | {r['chrf']} | "
                    f"{r['ter']} | {r['bleu_lc_rm']} | {r['num_sentences']} |")
    if not rows:
        raise FileNotFoundError(f"{recipe}: no exp*/*/*/*/score_bleu/result.json: run stage 13 "
                                f"first")
    return "\n".join([f"# RESULTS: {recipe.resolve().name}", "", *environment(),
                      "| experiment | inference | test set | BLEU | chrF | TER | BLEU lc.rm | "
                      "sentences |", "|---|---|---|---|---|---|---|---|", *rows, ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=".", help="recipe directory (default: .)")
    p.add_argument("--out", default=None, help="write here instead of stdout")
    args = p.parse_args(argv)
    try:
        text = collect(Path(args.recipe))
    except FileNotFoundError as e:
        print(f"collect_results: error: {e}", file=sys.stderr)
        return 1
    if args.out:
        with atomic_open(Path(args.out)) as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
