"""Training-step time of `--model mtl_st` against ESPnet's ESPnetSTModel, on CPU.

All models are built in this process through `MTLSTTask.build_model(args)`
at the demo size (egs2/mini_st/st1/conf/train_st.yaml: conformer 4 blocks x
144, transformer decoder 3 blocks) and trained on the same fabricated
batches (fixed seed; random audio at 16 kHz padded with 0, token ids of a
300-token vocabulary padded with -1, as ESPnet's collate does):

    baseline   ESPnetSTModel (`--model espnet`), asr_weight 0, mt_weight 0,
               st_mtlalpha 0: ST cross-entropy only
    mtl_off    mtl_st, every auxiliary weight 0, textual encoder num_blocks 0
               (identity): the same network as the baseline
    mtl_rdrop  mtl_off + rdrop_weight 1.0
    mtl_mt_cr  mtl_off + mt_weight 0.3 + consistency_weight 1.0
    mtl_demo   the demo's train_st_mtl.yaml objectives (CTC 0.4286, MT 0.5,
               consistency 1.0, R-drop 3.0, 2 textual blocks), static strategy
    pre_refactor_demo  the same config built by the mtl_st model before issue
               12's refactor (read from git: --pre_refactor_rev)
    obj3_static         st_ce + asr_ctc + mt_ce (2 textual blocks), static
    obj3_gradient_sum   the same with --strategy gradient_sum: one backward per
               objective, the update from the per-objective gradients

A step is zero_grad + forward + backward + Adam step in train mode (dropout
on). After `--warmup` steps per model, `--steps` steps per model are timed
in rounds (one step of each model per round, the order rotated every round)
so that machine drift hits every model alike.

    python bench/bench_mtl_step.py [--steps 10] [--threads N] [--batch_size 16] [--hop_length 160]
                                   [--seed 0] [--out result.json]

Prints JSON: mean/median seconds per step (and the forward / backward /
optimizer split) per model, parameter counts, and the ratios
mtl_off/baseline (target <= 1.05), mtl_rdrop/mtl_off (target <= 2.1),
mtl_mt_cr/mtl_off (reported), mtl_demo/pre_refactor_demo (target <= 1.02)
and obj3_gradient_sum/obj3_static (target <= 3.2) with a `meets_target` flag.
For a strategy model the "backward" time includes the strategy's
per-objective backward passes (they run inside its combine step).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

VOCAB = 300
SAMPLE_RATE = 16000

# Demo model size (egs2/mini_st/st1/conf/train_st.yaml).
FRONTEND_CONF = {"n_fft": 512, "hop_length": 320}
ENCODER_CONF = {
    "output_size": 144, "attention_heads": 4, "linear_units": 576, "num_blocks": 4,
    "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
    "input_layer": "conv2d", "normalize_before": True, "macaron_style": True,
    "rel_pos_type": "latest", "pos_enc_layer_type": "rel_pos",
    "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
    "use_cnn_module": True, "cnn_module_kernel": 15,
}
DECODER_CONF = {
    "attention_heads": 4, "linear_units": 576, "num_blocks": 3, "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
    "src_attention_dropout_rate": 0.1,
}
OPTIM_CONF = {"lr": 0.002, "betas": (0.9, 0.98), "eps": 1.0e-9, "weight_decay": 0.0}

MTL_OFF = {
    "asr_ctc_weight": 0.0, "asr_att_weight": 0.0, "mt_weight": 0.0, "st_ctc_weight": 0.0,
    "consistency_weight": 0.0, "rdrop_weight": 0.0, "lsm_weight": 0.1,
    "length_normalized_loss": False,
    "textual_encoder_conf": {"num_blocks": 0, "output_size": None},
}
MODELS = {
    "baseline": ("espnet", {"asr_weight": 0.0, "mt_weight": 0.0, "mtlalpha": 0.0,
                            "st_mtlalpha": 0.0, "lsm_weight": 0.1,
                            "length_normalized_loss": False}),
    "mtl_off": ("mtl_st", MTL_OFF),
    "mtl_rdrop": ("mtl_st", {**MTL_OFF, "rdrop_weight": 1.0}),
    "mtl_mt_cr": ("mtl_st", {**MTL_OFF, "mt_weight": 0.3, "consistency_weight": 1.0}),
}
DEMO_TEXTUAL = {"num_blocks": 2, "attention_heads": 4, "linear_units": 576, "dropout_rate": 0.1,
                "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                "normalize_before": True, "output_size": None}
MTL_DEMO = {**MTL_OFF, "asr_ctc_weight": 0.4286, "mt_weight": 0.5, "consistency_weight": 1.0,
            "rdrop_weight": 3.0, "textual_encoder_conf": DEMO_TEXTUAL}
OBJ3 = {"lsm_weight": 0.1, "textual_encoder_conf": DEMO_TEXTUAL,
        "objectives": {"st_ce": 1.0, "asr_ctc": 0.4286, "mt_ce": 0.5}}
MODELS.update({
    "mtl_demo": ("mtl_st", MTL_DEMO),
    "pre_refactor_demo": ("pre_refactor", MTL_DEMO),
    "obj3_static": ("mtl_st", OBJ3),
    "obj3_gradient_sum": ("mtl_st", OBJ3, "gradient_sum"),
})
# (name, model, reference, target or None)
RATIOS = [
    ("mtl_off_vs_baseline", "mtl_off", "baseline", 1.05),
    ("rdrop_on_vs_off", "mtl_rdrop", "mtl_off", 2.1),
    ("mt_consistency_on_vs_off", "mtl_mt_cr", "mtl_off", None),
    ("static_vs_pre_refactor", "mtl_demo", "pre_refactor_demo", 1.02),
    ("gradient_sum_3_objectives_vs_static", "obj3_gradient_sum", "obj3_static", 3.2),
]
#: the commit whose mtl_st model is the pre-refactor reference (issue 12)
PRE_REFACTOR_REV = "f61c064"


def token_list(prefix: str):
    return ["<blank>", "<unk>"] + [f"{prefix}{i}" for i in range(VOCAB - 3)] + ["<sos/eos>"]


def pre_refactor_class(rev: str):
    """MTLSTModel as it was at git revision `rev` (imported from `git show`)."""
    import importlib.util
    import subprocess

    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "-C", str(root), "show", f"{rev}:espnet_mtl/models/mtl_st.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="pre_refactor.")) / "mtl_st_pre_refactor.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("mtl_st_pre_refactor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MTLSTModel


def build_model(workdir: Path, name: str, seed: int, frontend_conf: dict = FRONTEND_CONF,
                pre_refactor_rev: str = PRE_REFACTOR_REV):
    from espnet_mtl.tasks.st import MTLSTTask

    model_name, model_conf, *strategy = MODELS[name]
    conf = {
        "model": "mtl_st" if model_name == "pre_refactor" else model_name,
        "model_conf": model_conf,
        "frontend_conf": frontend_conf,
        "encoder": "conformer",
        "encoder_conf": ENCODER_CONF,
        "decoder": "transformer",
        "decoder_conf": DECODER_CONF,
        "ctc_conf": {"dropout_rate": 0.0},
    }
    if strategy:
        conf["strategy"] = strategy[0]
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    # ESPnet's parser also reads sys.argv (for --config): give it only ours.
    saved_argv = sys.argv
    sys.argv = [saved_argv[0]]
    try:
        args = MTLSTTask.get_parser().parse_args(
            ["--config", str(path), "--token_list", str(workdir / "tgt.txt"),
             "--src_token_list", str(workdir / "src.txt")])
    finally:
        sys.argv = saved_argv
    torch.manual_seed(seed)
    if model_name == "pre_refactor":
        return pre_refactor_class(pre_refactor_rev).build_from_task_args(args)
    return MTLSTTask.build_model(args)


def make_batches(n_batches: int, batch_size: int, seed: int):
    """Padded like ESPnet's common_collate_fn: speech with 0.0, text with -1."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        sp_lens = rng.integers(1 * SAMPLE_RATE, 3 * SAMPLE_RATE + 1, size=batch_size)
        tgt_lens = rng.integers(5, 31, size=batch_size)
        src_lens = rng.integers(5, 31, size=batch_size)
        speech = np.zeros((batch_size, sp_lens.max()), dtype=np.float32)
        text = np.full((batch_size, tgt_lens.max()), -1, dtype=np.int64)
        src = np.full((batch_size, src_lens.max()), -1, dtype=np.int64)
        for i in range(batch_size):
            speech[i, :sp_lens[i]] = rng.standard_normal(sp_lens[i]).astype(np.float32) * 0.1
            text[i, :tgt_lens[i]] = rng.integers(2, VOCAB - 1, size=tgt_lens[i])
            src[i, :src_lens[i]] = rng.integers(2, VOCAB - 1, size=src_lens[i])
        batches.append(dict(
            speech=torch.from_numpy(speech), speech_lengths=torch.from_numpy(sp_lens),
            text=torch.from_numpy(text), text_lengths=torch.from_numpy(tgt_lens),
            src_text=torch.from_numpy(src), src_text_lengths=torch.from_numpy(src_lens),
        ))
    return batches


def train_step(model, optim, batch):
    """One step; returns (total, forward, backward, optimizer) seconds.

    A model with a non-static strategy runs as our trainer runs it: the
    strategy turns the per-objective losses into the scalar to back-propagate.
    """
    batch = {k: v.clone() for k, v in batch.items()}  # ESPnetSTModel edits text in place
    strategy = getattr(model, "strategy", None)
    t0 = time.perf_counter()
    optim.zero_grad(set_to_none=True)
    if strategy is not None and strategy.needs_gradients:
        out = model(**batch, return_objectives=True)
        t1 = time.perf_counter()
        loss = strategy.combine(out["objectives"], model)
        check = out["loss"]
    else:
        loss, _, _ = model(**batch)
        t1 = time.perf_counter()
        check = loss
    loss.backward()
    t2 = time.perf_counter()
    optim.step()
    t3 = time.perf_counter()
    if not torch.isfinite(check):
        raise RuntimeError(f"non-finite loss {float(check)}")
    return t3 - t0, t1 - t0, t2 - t1, t3 - t2


def summarize(times):
    total = [t[0] for t in times]
    return {
        "mean_s": statistics.fmean(total),
        "median_s": statistics.median(total),
        "min_s": min(total),
        "max_s": max(total),
        "stdev_s": statistics.stdev(total) if len(total) > 1 else 0.0,
        "trimmed_mean_s": (statistics.fmean(sorted(total)[1:-1]) if len(total) > 2
                           else statistics.fmean(total)),
        "forward_mean_s": statistics.fmean(t[1] for t in times),
        "backward_mean_s": statistics.fmean(t[2] for t in times),
        "optimizer_mean_s": statistics.fmean(t[3] for t in times),
        "forward_median_s": statistics.median(t[1] for t in times),
        "backward_median_s": statistics.median(t[2] for t in times),
        "optimizer_median_s": statistics.median(t[3] for t in times),
        "steps": len(total),
        "step_times_s": [round(t, 4) for t in total],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch.set_num_threads (default: all cores)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--hop_length", type=int,
                   help="frontend hop (default: the demo's %d; 160 = the demo before issue 11)"
                   % FRONTEND_CONF["hop_length"])
    p.add_argument("--n_mels", type=int, help="mel bins (default: the demo's)")
    p.add_argument("--pre_refactor_rev", default=PRE_REFACTOR_REV,
                   help="git revision of the pre-refactor mtl_st model (pre_refactor_demo)")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    frontend = {k: v for k, v in (("hop_length", args.hop_length), ("n_mels", args.n_mels)) if v}
    work = Path(tempfile.mkdtemp(prefix="bench_mtl_step."))
    (work / "tgt.txt").write_text("\n".join(token_list("t")) + "\n")
    (work / "src.txt").write_text("\n".join(token_list("s")) + "\n")

    names = list(args.models)
    models, optims, params = {}, {}, {}
    for name in names:
        model = build_model(work, name, args.seed, {**FRONTEND_CONF, **frontend},
                            args.pre_refactor_rev)
        model.train()
        models[name] = model
        optims[name] = torch.optim.Adam(model.parameters(), **OPTIM_CONF)
        params[name] = {
            "class": type(model).__name__,
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }

    same_init = None
    if "baseline" in models and "mtl_off" in models:
        a, b = models["baseline"].state_dict(), models["mtl_off"].state_dict()
        same_init = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    pre_same_init = None
    if "mtl_demo" in models and "pre_refactor_demo" in models:
        a = models["pre_refactor_demo"].state_dict()
        b = {k.replace("adapter.proj.", "encoder_proj."): v
             for k, v in models["mtl_demo"].state_dict().items()}
        pre_same_init = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    batches = make_batches(max(1, args.warmup + args.steps), args.batch_size, args.seed)

    def run(name, i):
        # the same dropout stream for every model at step i
        torch.manual_seed(args.seed * 100003 + i)
        return train_step(models[name], optims[name], batches[i % len(batches)])

    for i in range(args.warmup):
        for name in names:
            run(name, i)
    times = {name: [] for name in names}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    wall0 = time.perf_counter()
    for r in range(args.steps):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # rotate the order each round
            times[name].append(run(name, args.warmup + r))
    wall = time.perf_counter() - wall0
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    results = {name: summarize(times[name]) for name in names}
    ratios = {}
    for key, model, ref, target in RATIOS:
        if model not in results or ref not in results:
            continue
        mean = results[model]["mean_s"] / results[ref]["mean_s"]
        median = results[model]["median_s"] / results[ref]["median_s"]
        ratios[key] = {
            "model": model, "reference": ref,
            "ratio_mean": round(mean, 4), "ratio_median": round(median, 4),
            "target": target,
            "meets_target": None if target is None else bool(mean <= target),
            "meets_target_median": None if target is None else bool(median <= target),
        }
    out = {
        "benchmark": "mtl_st_train_step_cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "frontend_conf": {**FRONTEND_CONF, **frontend},
        "seed": args.seed,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "timed_wall_s": round(wall, 2),
        # other processes competing for the cores show up here and as outliers
        # in step_times_s (then trust the medians more than the means)
        "load_average_before_after": [load_before, load_after],
        "batch": {"audio_seconds": "1-3 (uniform)", "vocab": VOCAB,
                  "target_tokens": "5-30", "source_tokens": "5-30"},
        "models": {name: {"model_conf": MODELS[name][1], "params": params[name],
                          **{k: (round(v, 5) if isinstance(v, float) else v)
                             for k, v in results[name].items()}}
                   for name in names},
        "mtl_off_same_weights_as_baseline": same_init,
        "mtl_demo_same_weights_as_pre_refactor": pre_same_init,
        "ratios": ratios,
        "meets_target": all(r["meets_target"] for r in ratios.values()
                            if r["meets_target"] is not None),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
