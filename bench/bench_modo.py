"""Objective Soups' update cost: static weighting vs full MoDo vs layer-selected MoDo.

One model (the demo's Conformer mtl_st of egs2/mini_st/st1/conf/train_st_mtl.yaml,
with the paper's objectives: ST CE, ASR CTC on the shared encoder, CPC), the
same fabricated batches (--batch utterances of 2-4 s with 20-40 target and
source tokens, seeded), three ways to turn the losses into an update:

    static        ESPnet's step: the weighted sum, one backward
    modo_full     MoDo on every shared tensor (two half-batches, one backward per
                  objective on each)
    modo_layers   MoDo only where the objectives' gradients conflict (mean pairwise
                  cosine < 0); the second half's backward covers only those tensors
    modo_full_weighted, modo_layers_weighted
                  the same with `lambda_gradient: modo` (MoDo's own G1 (G2^T lambda):
                  one backward of the lambda-weighted loss on the second half)

A step is zero_grad + forward + backward + Adam step, through our trainer's
StrategyStep (what ESPnet's loop calls). Each variant runs in a fresh process
(so its peak memory is its own): --warmup steps, then --steps timed steps;
--rounds rounds, the variant order rotated each round so machine drift hits
all alike. Memory: the process's peak RSS minus its RSS once the model and
batches are built (the training step's own peak).

    python bench/bench_modo.py [--steps 6] [--warmup 2] [--rounds 3] [--batch 16]
                               [--out bench/plots/issue15_modo_cost.json]

Prints JSON: per variant the median step seconds and peak step memory (MiB),
the ratios modo_layers / static and modo_layers / modo_full (the same for
the weighted forms, against the paper-form modo_full), the share of
shared tensors selected, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "static": ("static", {}),
    "modo_full": ("modo", {}),
    "modo_layers": ("modo", {"conflict_threshold": 0.0}),
    "modo_full_weighted": ("modo", {"lambda_gradient": "modo"}),
    "modo_layers_weighted": ("modo", {"conflict_threshold": 0.0, "lambda_gradient": "modo"}),
}


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _model_and_batches(variant: str, batch: int, workdir: Path):
    import torch

    from espnet_mtl.tasks.st import MTLSTTask

    conf = yaml.safe_load((ROOT / "egs2/mini_st/st1/conf/train_st_mtl.yaml").read_text())
    model_conf = conf["model_conf"]
    for key in [k for k in model_conf if k.endswith(("_weight", "_type", "_direction",
                                                     "_detach_mt", "_temperature"))]:
        if key != "lsm_weight":
            del model_conf[key]
    model_conf["objectives"] = {"st_ce": 1.0, "asr_ctc": 0.3, "cpc": 0.1}
    conf.pop("optim", None), conf.pop("optim_conf", None), conf.pop("scheduler", None)
    conf.pop("scheduler_conf", None)
    strategy, strategy_conf = VARIANTS[variant]
    conf.update(strategy=strategy, strategy_conf=strategy_conf)
    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(200)] + ["<sos/eos>"]
    (workdir / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (workdir / "conf.yaml").write_text(yaml.safe_dump(conf))
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(workdir / "conf.yaml"), "--token_list", str(workdir / "tokens.txt"),
         "--src_token_list", str(workdir / "tokens.txt")])
    torch.manual_seed(0)
    model = MTLSTTask.build_model(args)
    g = torch.Generator().manual_seed(1)
    lens = torch.randint(32000, 64000, (batch,), generator=g)
    speech = torch.randn(batch, int(lens.max()), generator=g) * 0.1
    text_lens = torch.randint(20, 41, (batch,), generator=g)
    src_lens = torch.randint(20, 41, (batch,), generator=g)

    def tokens_of(lengths):
        out = torch.randint(2, 202, (batch, int(lengths.max())), generator=g)
        out[torch.arange(out.shape[1])[None, :] >= lengths[:, None]] = -1
        return out

    data = {"speech": speech, "speech_lengths": lens, "text": tokens_of(text_lens),
            "text_lengths": text_lens, "src_text": tokens_of(src_lens),
            "src_text_lengths": src_lens}
    return model, data


def child(variant: str, steps: int, warmup: int, batch: int) -> dict:
    import torch

    from espnet_mtl.training.trainer import StrategyStep

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model, data = _model_and_batches(variant, batch, Path(tmp))
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_fn = model if variant == "static" else StrategyStep(model, None, None)
    if variant != "static":
        model.strategy.start_epoch(1)
    base = _rss_mib()
    times, selected = [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optim.zero_grad()
        out = step_fn(**data)
        loss = out[0] if isinstance(out, tuple) else out["loss"]
        loss.backward()
        optim.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            if "modo_selected" in model.strategy.stats():
                selected.append(model.strategy.stats()["modo_selected"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shared = sum(1 for names in model.strategy._reached.values() if len(names) > 1) \
        if variant != "static" else None
    return {"variant": variant, "step_seconds": times, "peak_step_mib": peak - base,
            "rss_built_mib": base, "selected_share": statistics.mean(selected) if selected else None,
            "shared_tensors": shared}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.warmup, args.batch)))
        return
    load_before = os.getloadavg()
    runs = {v: [] for v in VARIANTS}
    order = list(VARIANTS)
    for r in range(args.rounds):
        for variant in order[r % len(order):] + order[:r % len(order)]:
            cmd = [sys.executable, __file__, "--child", variant, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--batch", str(args.batch)]
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode != 0:
                sys.exit(f"{variant}: failed\n{done.stderr[-3000:]}")
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {variant}: median "
                  f"{statistics.median(runs[variant][-1]['step_seconds']):.3f} s", file=sys.stderr)
    result = {"batch_utterances": args.batch, "steps_per_round": args.steps,
              "rounds": args.rounds, "variants": {}}
    for variant, rs in runs.items():
        times = [t for r in rs for t in r["step_seconds"]]
        result["variants"][variant] = {
            "median_step_s": round(statistics.median(times), 4),
            "peak_step_mib": round(max(r["peak_step_mib"] for r in rs), 1),
            "selected_share": rs[0]["selected_share"], "shared_tensors": rs[0]["shared_tensors"]}
    v = result["variants"]
    result["time_ratio_layers_vs_static"] = round(
        v["modo_layers"]["median_step_s"] / v["static"]["median_step_s"], 3)
    result["time_ratio_full_vs_static"] = round(
        v["modo_full"]["median_step_s"] / v["static"]["median_step_s"], 3)
    result["time_saving_layers_vs_full"] = round(
        1 - v["modo_layers"]["median_step_s"] / v["modo_full"]["median_step_s"], 3)
    result["memory_saving_layers_vs_full"] = round(
        1 - v["modo_layers"]["peak_step_mib"] / v["modo_full"]["peak_step_mib"], 3)
    for form in ("full", "layers"):
        result[f"time_ratio_{form}_weighted_vs_static"] = round(
            v[f"modo_{form}_weighted"]["median_step_s"] / v["static"]["median_step_s"], 3)
    result["time_saving_layers_weighted_vs_full"] = round(
        1 - v["modo_layers_weighted"]["median_step_s"] / v["modo_full"]["median_step_s"], 3)
    result["memory_saving_layers_weighted_vs_full"] = round(
        1 - v["modo_layers_weighted"]["peak_step_mib"] / v["modo_full"]["peak_step_mib"], 3)
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
