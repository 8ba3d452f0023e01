"""ComSL on a GPU at the paper's medium size: throughput and peak memory.

Whisper medium (24 blocks, d 1024) -> adapter -> mBART-large-50 (12 + 12, d 1024,
250k vocabulary), random weights from configs (no hub), all four objectives with the
frozen teacher, bf16 autocast (ESPnet's `use_amp: true` on bf16 GPUs), AdamW. Per
variant (gradient checkpointing on/off x Whisper frozen or not): utterances per
second over --steps timed steps after --warmup, and torch.cuda.max_memory_allocated.

    python bench/device_comsl.py [--batch 8] [--steps 10] [--warmup 3] [--out FILE]

Prints JSON with the ratio of each variant to the unfrozen, no-checkpointing one.
Run when a GPU is lent (`run` tool); the CPU benchmark is bench/bench_comsl.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_comsl import VARIANTS, batch, build  # noqa: E402


def main():
    import torch

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="medium")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None)
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of this script")
    args = p.parse_args()
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("device_comsl: no CUDA device")
    cuda = dev == "cuda"
    result = {"device": torch.cuda.get_device_name() if cuda else dev, "size": args.size, "batch": args.batch,
              "variants": {}}
    for name, variant in VARIANTS.items():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model = build(args.size, **variant).to(dev).train()
        b = batch(args.size, args.batch, dev)
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-5,
                                weight_decay=0.1)
        for i in range(args.warmup + args.steps):
            if i == args.warmup:
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            opt.zero_grad()
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss, _, _ = model(**b)
            loss.backward()
            opt.step()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        result["variants"][name] = {
            "utt_per_s": round(args.batch * args.steps / seconds, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else 1.0}
        print(name, result["variants"][name], file=sys.stderr)
        del model, opt, b
    base = result["variants"]["baseline"]
    for v in result["variants"].values():
        v["throughput_ratio"] = round(v["utt_per_s"] / base["utt_per_s"], 3)
        v["memory_ratio"] = round(v["peak_gib"] / base["peak_gib"], 3)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
