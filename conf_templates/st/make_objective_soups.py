#!/usr/bin/env python3
"""Write the Objective Soups recipe configs (seed 002; methods.md section 3).

The paper's recipes differ only in how the objectives become an update, so
each config is the multilingual base config (CoVoST 2 X->En with ASR in each
source language) with the CPC objective added and its `strategy` /
`strategy_conf` (and, for two-stage training, its objectives) set. ESPnet's
`--config` takes one complete YAML file: the files are generated, so they
cannot drift apart. Two sets:

    egs2/covost2/st1/conf/train_st_os_<recipe>.yaml         paper settings, from
        conf/train_st_multilingual.yaml, with the paper's optimiser: AdamW,
        heads lr 5e-4, backbone (acoustic encoder) lr 5e-5 via --lr_groups [paper]
    egs2/covost2/st1/conf/tuning/train_st_os_<recipe>_demo.yaml   demo size, from
        conf/tuning/train_st_multilingual_demo.yaml, with the demo's optimiser
    egs2/covost2/st1/conf/train_st_os_<recipe>_xlsr.yaml    the paper settings on a
        pre-trained XLS-R backbone (`encoder: hf_wav2vec2`, raw waveform in), for
        the recipes in XLSR_RECIPES; any other recipe takes the same keys

    tools/venv/bin/python conf_templates/st/make_objective_soups.py          # write
    tools/venv/bin/python conf_templates/st/make_objective_soups.py --check  # verify

test/test_conf_templates.py fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import copy
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs2" / "covost2" / "st1" / "conf"
TARGETS = [  # (base config, output pattern, paper optimiser?)
    (CONF / "train_st_multilingual.yaml", CONF / "train_st_os_{}.yaml", True),
    (CONF / "tuning" / "train_st_multilingual_demo.yaml",
     CONF / "tuning" / "train_st_os_{}_demo.yaml", False),
]

#: the paper's per-epoch penalties [code skeleton]: eta_1 from 0.1, eta_2 from 0,
#: +0.02 per epoch each, capped at 1.5
ETA_1 = {"start": 0.1, "step": 0.02, "max": 1.5}
ETA_2 = {"start": 0.0, "step": 0.02, "max": 1.5}
#: VC-MSP's single penalty: from 0 [paper, as corrected in the reviews' reply]
ETA_VC = {"start": 0.0, "step": 0.02, "max": 1.5}
MODO = {"gamma": 0.01, "rho": 0.001}  # [code]
#: CPC on the shared encoder [paper]: temperature 0.1, in-batch negatives
CPC = {"weight": 0.1, "temperature": 0.1}

#: recipe -> (strategy, strategy_conf, objectives override or None, description)
RECIPES = {
    "static": ("static", None, None,
               "Joint training without MOO: ST CE + ASR CTC + CPC at the base's static "
               "weights (the paper's 'Joint PT+FT W/O MOO' baseline)."),
    "vs_msp": ("modo", {"levels": [["asr_ctc", "st_ce", "cpc"]], **MODO}, None,
               "VS-MSP: one MoDo over all objectives (supervised and CPC)."),
    "vs_msp_layers": ("modo", {"levels": [["asr_ctc", "st_ce", "cpc"]], **MODO,
                               "conflict_threshold": 0.0, "non_conflicting": "weighted_sum"},
                      None,
                      "VS-MSP with layer-wise conflict selection: MoDo only on tensors whose "
                      "mean pairwise gradient cosine is < 0 [paper]; the others get the "
                      "static weighted sum [choice: the authors' skeleton skips them "
                      "(non_conflicting: skip), which freezes them and looks like a bug]."),
    "vc_msp": ("modo", {"levels": [["asr_ctc", "st_ce"], ["cpc"]], "penalties": [ETA_VC],
                        **MODO}, None,
               "VC-MSP: MoDo over the supervised objectives + eta * grad(CPC)."),
    "vm_msp_uas": ("modo", {"levels": [["asr_ctc"], ["st_ce"], ["cpc"]],
                            "penalties": [ETA_1, ETA_2], **MODO}, None,
                   "VM-MSP, ordering UAS (ASR first: the paper's best WER): d = "
                   "g(ASR) + eta_1 g(ST) + eta_1 eta_2 g(CPC)."),
    "vm_msp_usa": ("modo", {"levels": [["st_ce"], ["asr_ctc"], ["cpc"]],
                            "penalties": [ETA_1, ETA_2], **MODO}, None,
                   "VM-MSP, ordering USA (ST first: the paper's best BLEU): d = "
                   "g(ST) + eta_1 g(ASR) + eta_1 eta_2 g(CPC)."),
    "pretrain_cpc": ("static", None, {"cpc": {**CPC, "weight": 1.0}},
                     "Two-stage baseline, stage 1: CPC alone on the encoder (the decoder "
                     "and CTC head are not trained). Then fine-tune with "
                     "train_st_os_finetune*.yaml and --st_args \"--init_param "
                     "<this exp>/valid.loss.best.pth:encoder:encoder\"."),
    "finetune": ("static", None, "supervised",
                 "Two-stage baseline, stage 2: ST CE + ASR CTC from the CPC-pretrained "
                 "encoder (pass it with --init_param, see train_st_os_pretrain_cpc)."),
}


#: the self-supervised backbone of the paper's wav2vec2/XLS-R rows [paper]; its output
#: projected to the Conformer's 256 [choice]; layerdrop 0 so DDP needs no
#: unused_parameters [choice]; HF's own time masking instead of ESPnet's SpecAugment
XLSR = {
    "input_size": 1, "normalize": None, "specaug": None,  # input_size set: no frontend
    "encoder": "hf_wav2vec2",
    "encoder_conf": {"model_name_or_path": "facebook/wav2vec2-xls-r-300m", "output_size": 256,
                     "dropout_rate": 0.1, "freeze_updates": 0,
                     "config_overrides": {"layerdrop": 0.0, "mask_time_prob": 0.05}},
}
XLSR_RECIPES = ("vs_msp", "vm_msp_usa")


def render(base_path: Path, recipe: str, paper_optim: bool, backbone: dict = None) -> str:
    conf = yaml.safe_load(base_path.read_text())
    strategy, strategy_conf, objectives, what = RECIPES[recipe]
    supervised = dict(conf["model_conf"]["objectives"])
    conf = copy.deepcopy(conf)
    # the authors' losses are per token (PyTorch's CTCLoss / CrossEntropyLoss, reduction
    # "mean"): MoDo's weights follow the gradients' scales, and ESPnet's per-utterance
    # sums make CTC ~20x CPC and drive its weight to 0 (measured, issue 15)
    conf["model_conf"]["length_normalized_loss"] = True
    if isinstance(supervised.get("asr_ctc"), dict):
        supervised["asr_ctc"] = {**supervised["asr_ctc"], "per_token": True}
    elif "asr_ctc" in supervised:
        supervised["asr_ctc"] = {"weight": supervised["asr_ctc"], "per_token": True}
    if objectives is None:
        conf["model_conf"]["objectives"] = {**supervised, "cpc": dict(CPC)}
    elif objectives == "supervised":
        conf["model_conf"]["objectives"] = supervised
    else:
        conf["model_conf"]["objectives"] = objectives
        # no accuracy without the decoder trained: keep the best CPC loss
        conf["best_model_criterion"] = [["valid", "loss", "min"]]
    if backbone:
        for key in ("frontend_conf", "specaug_conf", "encoder_conf"):
            conf.pop(key, None)
        conf.update(copy.deepcopy(backbone))
    conf["strategy"] = strategy
    if strategy_conf:
        conf["strategy_conf"] = strategy_conf
    if paper_optim:
        conf["optim"] = "adamw"
        conf["optim_conf"] = {"lr": 0.0005, "weight_decay": 0.01}
        conf["lr_groups"] = {"encoder": 0.00005}
    header = [
        f"# GENERATED by conf_templates/st/make_objective_soups.py from "
        f"{base_path.relative_to(ROOT)}: edit those, then rerun it.",
        "# Objective Soups (seed 002; methods.md section 3), recipe "
        f"'{recipe}': " + what,
        "# Objectives [paper]: ASR = CTC on the shared encoder (ESPnet's linear CTC head; "
        "the paper's is a 2-layer MLP [choice]), ST = CE through the decoder, CPC on the "
        "encoder (temperature 0.1, in-batch negatives). MoDo gamma 0.01, rho 0.001 [code].",
        "# Losses per token as the authors' criteria [code]: length_normalized_loss true, "
        "asr_ctc per_token (MoDo's weights depend on the losses' scales).",
    ]
    if backbone:
        header.append("# Backbone [paper]: XLS-R (300M) through Hugging Face "
                      "(encoder hf_wav2vec2, see espnet_mtl/modules/hf_wav2vec2.py) on the raw "
                      "audio the recipe dumps (feats_type raw); model_name_or_path may be a "
                      "local save_pretrained directory.")
    if paper_optim:
        header.append("# Optimiser [paper]: AdamW, heads lr 5e-4, backbone lr 5e-5 "
                      "(--lr_groups); the authors' reply says the backbone rate is the "
                      "higher one, the paper's settings the reverse: both are configurable. "
                      "Batch 256, 200 epochs in the paper.")
    lines = [wrapped for line in header
             for wrapped in textwrap.wrap(line, 88, subsequent_indent="#   ")]
    return "\n".join(lines) + "\n" + yaml.safe_dump(conf, sort_keys=False, width=100)


def outputs():
    for base, pattern, paper_optim in TARGETS:
        for recipe in RECIPES:
            yield Path(str(pattern).format(recipe)), render(base, recipe, paper_optim)
    base, pattern, _ = TARGETS[0]
    for recipe in XLSR_RECIPES:
        yield (Path(str(pattern).format(f"{recipe}_xlsr")),
               render(base, recipe, True, backbone=XLSR))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if a committed file differs from what would be written")
    args = parser.parse_args()
    stale = []
    for path, text in outputs():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
    if stale:
        sys.exit("stale Objective Soups configs (rerun make_objective_soups.py): "
                 + ", ".join(stale))


if __name__ == "__main__":
    main()
