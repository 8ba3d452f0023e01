#!/usr/bin/env python3
"""Write the seed-001 ablation configs from the main templates.

ESPnet's `--config` takes one complete YAML file, so every ablation row is a
full config. To keep them from drifting apart, each one is a main template
with a generated header and only the `model_conf` values of its row replaced
(comments and everything else kept verbatim). Two sets are written:

    conf_templates/st/train_st_mtl_ablation_<row>.yaml     paper size, from
        train_st_mtl_regularization_horizon.yaml
    egs2/mini_st/st1/conf/tuning/train_st_mtl_ablation_<row>.yaml   demo size,
        from egs2/mini_st/st1/conf/train_st_mtl.yaml

Edit a main template or the ROWS table below, then run

    tools/venv/bin/python conf_templates/st/make_ablations.py          # write
    tools/venv/bin/python conf_templates/st/make_ablations.py --check  # verify

test/test_conf_templates.py fails when the committed files differ from this
script's output.

Rows (seed 001 = "Optimal Multi-Task Learning at Regularization Horizon for
ST", arXiv 2509.09701; methods.md section 1). Notation: alpha_t = mt_weight,
beta = consistency_weight (L_CR), alpha = rdrop_weight (L_RD). Every row keeps
the main template's values for what it does not name.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
MAIN = HERE / "train_st_mtl_regularization_horizon.yaml"
ROOT = HERE.parents[1]
DEMO_CONF = ROOT / "egs2" / "mini_st" / "st1" / "conf"
PREFIX = "train_st_mtl_ablation_"
#: (main template, folder its rows go to)
TARGETS = [(MAIN, HERE), (DEMO_CONF / "train_st_mtl.yaml", DEMO_CONF / "tuning")]

#: (row name, model_conf overrides, what the row is and where it comes from)
ROWS: List[Tuple[str, Dict[str, object], str]] = [
    # -- which regularizers (paper sections 3-4; methods.md section 1) --------
    ("ce_only", dict(mt_weight=0.0, consistency_weight=0.0, rdrop_weight=0.0),
     "ST cross-entropy only (+ our ASR CTC): alpha_t = beta = alpha = 0, the "
     "paper's baseline floor. No MT path is built."),
    ("mt_only", dict(consistency_weight=0.0, rdrop_weight=0.0),
     "Plain multi-task learning: ST + alpha_t * MT, no CR, no R-drop (paper "
     "section 4.1: alpha_t itself is a source of regularization)."),
    ("rdrop_only", dict(mt_weight=0.0, consistency_weight=0.0),
     "R-drop within the speech modality only, no MT data (paper: R-drop is the "
     "more effective one without external MT data)."),
    ("mt_rdrop", dict(consistency_weight=0.0),
     "MTL + R-drop, no cross-modal consistency (paper section 4.2 "
     "combinations)."),
    ("consistency_only", dict(rdrop_weight=0.0),
     "MTL + cross-modal consistency (softmax KL), no R-drop (paper section "
     "3.1 / 4.2). CR needs the MT pass, so alpha_t stays at the main value."),
    ("consistency_rdrop", dict(),
     "MTL + CR + R-drop: identical model_conf to the main template; kept so "
     "the table is complete (paper section 4.2: CR and R-drop saturate "
     "rather than add)."),
    # -- where the consistency is applied (paper Table 1) ---------------------
    ("cr_logits_mse", dict(consistency_type="logits_mse", rdrop_weight=0.0),
     "Paper Table 1 row logits-MSE: CR as MSE between pre-softmax logits, no "
     "R-drop as in consistency_only. beta kept at the main value [choice: "
     "the MSE scale differs from KL; sweep beta if needed]."),
    ("cr_enc_mse", dict(consistency_type="enc_mse", rdrop_weight=0.0),
     "Paper Table 1 row enc-MSE: CR as MSE between the mean-pooled "
     "textual-encoder outputs of ST and MT, no R-drop as in consistency_only. beta kept at the main value "
     "[choice: the MSE scale differs from KL]."),
    # -- the MT coefficient as a regularizer (paper Table 3) ------------------
    ("alpha_t_0.0", dict(mt_weight=0.0),
     "Paper Table 3 sweep of alpha_t at fixed beta and alpha: alpha_t = 0 "
     "(the MT pass still runs for CR, without its own CE)."),
    ("alpha_t_0.1", dict(mt_weight=0.1),
     "Paper Table 3 sweep of alpha_t at fixed beta and alpha: alpha_t = 0.1 "
     "(one of the paper's peaks)."),
    ("alpha_t_0.3", dict(mt_weight=0.3),
     "Paper Table 3 sweep of alpha_t at fixed beta and alpha: alpha_t = 0.3 "
     "[choice: a point between the paper's peaks 0.1 and 0.5]."),
    ("alpha_t_0.5", dict(mt_weight=0.5),
     "Paper Table 3 sweep of alpha_t at fixed beta and alpha: alpha_t = 0.5 "
     "(= the main template)."),
    ("alpha_t_1.0", dict(mt_weight=1.0),
     "Paper Table 3 sweep of alpha_t at fixed beta and alpha: alpha_t = 1.0 "
     "(equal task weights; the paper finds it below the peak)."),
]

_WRAP = 74


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _wrap(text: str) -> List[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > _WRAP:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def render(name: str, overrides: Dict[str, object], note: str, main_text: str,
           main_name: str = str(MAIN.relative_to(ROOT))) -> str:
    """The ablation config for one row, as text."""
    body = main_text
    for key, value in overrides.items():
        # A direct child of model_conf: exactly 4 spaces of indentation.
        pattern = re.compile(rf"^(    {re.escape(key)}:)[ \t]*[^#\n]*?([ \t]*#[^\n]*)?$", re.M)
        matches = pattern.findall(body)
        if len(matches) != 1:
            raise ValueError(f"model_conf key {key!r} found {len(matches)} times "
                             f"in {main_name}; expected once")
        body = pattern.sub(
            lambda m: f"{m.group(1)} {_fmt(value)}   # ablation {name} (see header)",
            body,
        )
    changed = ", ".join(f"{k}={_fmt(v)}" for k, v in overrides.items()) or "none"
    header = [
        "# GENERATED by conf_templates/st/make_ablations.py: do not edit by hand;",
        f"# edit {main_name} or the generator's",
        "# ROWS table and rerun it.",
        f"# Seed-001 ablation row `{name}`:",
        *(f"#   {line}" for line in _wrap(note)),
        f"# model_conf overrides of the main template: {changed}",
        "# " + "-" * 76,
    ]
    return "\n".join(header) + "\n" + body


def outputs() -> Dict[Path, str]:
    """{path: text} of every ablation file of every target."""
    names = [row[0] for row in ROWS]
    if len(set(names)) != len(names):
        raise ValueError("duplicate row names in ROWS")
    out = {}
    for main, folder in TARGETS:
        main_text = main.read_text(encoding="utf-8")
        for name, overrides, note in ROWS:
            out[folder / f"{PREFIX}{name}.yaml"] = render(name, overrides, note, main_text,
                                                          str(main.relative_to(ROOT)))
    return out


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare; exit 1 when a file is missing or differs")
    args = parser.parse_args(argv)
    wanted = outputs()
    stale = sorted({p for _, folder in TARGETS for p in folder.glob(f"{PREFIX}*.yaml")}
                   - set(wanted))
    bad = [p for p, text in wanted.items()
           if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in bad:
            print(f"out of date: {p.name}", file=sys.stderr)
        for p in stale:
            print(f"not in ROWS: {p.name}", file=sys.stderr)
        return 1 if bad or stale else 0
    for p in bad:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(wanted[p], encoding="utf-8")
        print(f"wrote {p}")
    for p in stale:
        print(f"warning: {p.name} is not in ROWS (left as is)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
