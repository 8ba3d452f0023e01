"""Where a demo training step spends its time, module by module, on CPU.

Builds the model of a recipe config exactly as stage 11 does (ESPnet's task
parser, the recipe's token lists and feature statistics) and trains it on
batches shaped like the prepared demo corpus: utterance and token lengths
read from stage 10's shape files, sorted by length and cut into batches as
ESPnet's folded sampler does. The audio and token ids are random (the
content does not change the time of a step).

Forward time per module comes from forward hooks, backward time per module
from full backward hooks (the span between a module's output gradient and
its input gradient; modules whose hooks cannot see it, such as the first
layer, whose input needs no gradient, are left out), both summed over the
timed steps; the JSON also lists
the operators that take the most self time (torch.profiler, with --ops).

    python bench/profile_demo_step.py --recipe DIR [--config conf/train_st.yaml]
        [--steps 8] [--threads 2] [--batch_size 16] [-- extra task options]

DIR is a demo recipe directory after stage 10 (dump/, data/*token_list, exp/st_stats_*).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_demo import cpu_model


def stats_dir(recipe: Path, feats_type: str, given: Path | None = None) -> Path:
    if given:
        return recipe / given
    found = sorted(recipe.glob(f"exp/st_stats_{feats_type}_*"))
    if not found:
        raise SystemExit(f"no exp/st_stats_{feats_type}_* under {recipe}: run stages 1-10 "
                         f"with --feats_type {feats_type} first")
    return found[0]


def read_shapes(path: Path) -> dict[str, int]:
    return {key: int(shape.split(",")[0])
            for key, shape in (line.split() for line in path.read_text().splitlines())}


def build(recipe: Path, config: Path, feats_type: str, extra: list[str], given_stats=None):
    from espnet_mtl.tasks.st import MTLSTTask

    stats = stats_dir(recipe, feats_type, given_stats)
    token_dir = next(recipe.glob("data/*_token_list"))
    argv = ["--config", str(config),
            "--token_list", str(next(token_dir.glob("tgt_bpe_*/tokens.txt"))),
            "--src_token_list", str(next(token_dir.glob("src_bpe_*/tokens.txt"))),
            "--normalize", "global_mvn",
            "--normalize_conf", f"stats_file={stats}/train/feats_stats.npz"]
    if feats_type != "raw":  # as st.sh: features from dump/, no frontend
        argv += ["--input_size", str(feats_dim(recipe))]
    saved = sys.argv
    sys.argv = [saved[0]]
    try:
        args = MTLSTTask.get_parser().parse_args(argv + extra)
    finally:
        sys.argv = saved
    torch.manual_seed(0)
    return MTLSTTask.build_model(args), args, stats


def feats_dim(recipe: Path) -> int:
    return int((next(recipe.glob("dump/fbank/train*/feats_dim"))).read_text().split()[0])


def make_batches(stats: Path, batch_size: int, n_batches: int, feat_dim: int, vocab: int,
                 src_vocab: int):
    speech = read_shapes(stats / "train" / "speech_shape")
    tgt = read_shapes(next((stats / "train").glob("text_shape.*")))
    src = read_shapes(next((stats / "train").glob("src_text_shape.*")))
    keys = sorted(speech, key=lambda k: -speech[k])  # folded sampler: longest first
    chunks = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]
    rng = np.random.default_rng(0)
    picked = [chunks[i] for i in rng.choice(len(chunks), size=min(n_batches, len(chunks)),
                                            replace=False)]
    batches = []
    for chunk in picked:
        lens = np.array([speech[k] for k in chunk])
        shape = (len(chunk), lens.max()) + ((feat_dim,) if feat_dim else ())
        x = torch.randn(*shape) * 0.1
        for i, n in enumerate(lens):
            x[i, n:] = 0.0
        batch = {"speech": x, "speech_lengths": torch.from_numpy(lens)}
        for name, table, v in (("text", tgt, vocab), ("src_text", src, src_vocab)):
            tl = np.array([table[k] for k in chunk])
            t = torch.full((len(chunk), tl.max()), -1, dtype=torch.long)
            for i, n in enumerate(tl):
                t[i, :n] = torch.randint(2, v - 1, (n,))
            batch[name], batch[f"{name}_lengths"] = t, torch.from_numpy(tl)
        batches.append(batch)
    return batches


class ModuleTimer:
    """Forward and backward seconds per named module, summed while `enabled`."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.forward = collections.Counter()
        self.backward = collections.Counter()
        self.enabled = False
        self._start = {}
        for name, module in modules.items():
            module.register_forward_pre_hook(self._mark(name, "f"))
            module.register_forward_hook(self._add(name, "f", self.forward))
            module.register_full_backward_pre_hook(self._mark(name, "b"))
            module.register_full_backward_hook(self._add(name, "b", self.backward))

    def _mark(self, name, kind):
        def hook(*_):
            self._start[name, kind] = time.perf_counter()
        return hook

    def _add(self, name, kind, counter):
        def hook(*_):
            if self.enabled and (name, kind) in self._start:
                counter[name] += time.perf_counter() - self._start.pop((name, kind))
        return hook


def named_parts(model) -> dict[str, torch.nn.Module]:
    parts = {}
    for attr in ("frontend", "normalize"):
        if getattr(model, attr, None) is not None:
            parts[attr] = getattr(model, attr)
    parts["encoder.embed (subsampling)"] = model.encoder.embed
    for i, block in enumerate(model.encoder.encoders):
        parts[f"encoder.block{i}"] = block
    parts["decoder"] = model.decoder
    for attr in ("ctc", "asr_ctc", "criterion_st"):
        if getattr(model, attr, None) is not None:
            parts[attr] = getattr(model, attr)
    return parts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, required=True)
    p.add_argument("--config", default="conf/train_st.yaml")
    p.add_argument("--feats_type", default="raw", choices=["raw", "fbank"])
    p.add_argument("--stats_dir", type=Path,
                   help="stage 10's output (default: exp/st_stats_<feats_type>_*) in the recipe")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--checkpoint", help="start from these weights (e.g. exp/st_*/20epoch.pth): "
                   "a trained model's step time, not a fresh one's")
    p.add_argument("--flush_denormal", action="store_true",
                   help="torch.set_flush_denormal(True) (the CPU treats denormal floats as 0)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model first (dynamic shapes); compile time reported")
    p.add_argument("--no_mkldnn", action="store_true",
                   help="torch.backends.mkldnn off (convolutions through im2col + BLAS)")
    p.add_argument("--fp32_precision", default="none", choices=["none", "bf16"],
                   help="oneDNN's fp32 matmul/conv precision (bf16: bf16 inputs, fp32 sums)")
    p.add_argument("--ops", action="store_true",
                   help="also list the operators with the most self time (torch.profiler; slower)")
    p.add_argument("--out")
    p.add_argument("task_args", nargs="*", help="extra task options, e.g. --encoder_conf input_layer=conv2d8")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    torch.backends.mkldnn.matmul.fp32_precision = args.fp32_precision
    torch.backends.mkldnn.conv.fp32_precision = args.fp32_precision

    recipe = args.recipe.resolve()
    model, task_args, stats = build(recipe, recipe / args.config, args.feats_type, args.task_args,
                                    args.stats_dir)
    if args.checkpoint:
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    feat_dim = feats_dim(recipe) if args.feats_type != "raw" else 0
    batches = make_batches(stats, args.batch_size, args.warmup + args.steps, feat_dim,
                           len(task_args.token_list), len(task_args.src_token_list))
    timer = ModuleTimer(named_parts(model))
    forward = model
    compile_s = None
    if args.compile:
        forward = torch.compile(model, dynamic=True)
        t0 = time.perf_counter()
        forward(**{k: v.clone() for k, v in batches[0].items()})[0].backward()
        compile_s = time.perf_counter() - t0
    steps = []
    prof = (torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            if args.ops else contextlib.nullcontext())
    with prof:
        for i, batch in enumerate(batches):
            timer.enabled = i >= args.warmup
            t0 = time.perf_counter()
            optim.zero_grad(set_to_none=True)
            loss = forward(**{k: v.clone() for k, v in batch.items()})[0]
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optim.step()
            t3 = time.perf_counter()
            if timer.enabled:
                steps.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))
    n = len(steps)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:15] if args.ops else []
    out = {
        "benchmark": "demo_step_profile",
        "config": args.config, "feats_type": args.feats_type, "task_args": args.task_args,
        "threads": args.threads, "checkpoint": args.checkpoint,
        "flush_denormal": args.flush_denormal, "mkldnn": not args.no_mkldnn,
        "compile_s": compile_s, "fp32_precision": args.fp32_precision,
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OMP_", "MKL_", "ONEDNN_", "DNNL_", "KMP_", "GLIBC_"))},
        "batch_size": args.batch_size, "steps": n,
        "cpu": cpu_model(), "load_average": os.getloadavg(),
        "step_s": statistics.fmean(s[0] for s in steps),
        "forward_s": statistics.fmean(s[1] for s in steps),
        "backward_s": statistics.fmean(s[2] for s in steps),
        "optimizer_s": statistics.fmean(s[3] for s in steps),
        "forward_by_module_s": {k: round(v / n, 4) for k, v in timer.forward.items()},
        "backward_by_module_s": {k: round(v / n, 4) for k, v in timer.backward.items()},
        "top_ops_self_s": {e.key: round(e.self_cpu_time_total / 1e6 / (n + args.warmup), 4)
                           for e in ops},
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
