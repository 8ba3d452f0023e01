"""ComSL's training-step cost: gradient checkpointing on/off, Whisper frozen or not.

The composite model (`--model comsl`: Whisper encoder -> adapter -> mBART-50, the
paper's four objectives with their weights) with random weights built from
configs (no hub), at two sizes on CPU:

    tiny   Whisper and mBART d 32, 4 layers (the demo's, espnet_mtl.demo.tiny_pretrained)
    mid    Whisper d 384, 4 layers, 6 heads (whisper-tiny's shape); mBART d 256,
           6 + 6 layers, 4 heads, 8k vocabulary

A step is zero_grad + forward (all passes: ST, ASR, MT, frozen teacher, CML) +
backward + AdamW step, on --batch utterances of 4-8 s with their transcripts and
translations (seeded). Each variant runs in its own process (peak memory is the
process's), --warmup untimed steps then --steps timed; the variants of a size run
one after another, and the whole set --rounds times interleaved.

    python bench/bench_comsl.py [--sizes tiny mid] [--steps 5] [--warmup 1] [--batch 4]
                                [--out bench/plots/issue17_comsl_cost.json]

Prints JSON: per size and variant the median step seconds, the ratio to the
`unfrozen, no checkpointing` baseline of the same size, and the peak memory the
steps add (max RSS during the steps minus RSS before them, MB); the load average
before and after. The GPU counterpart at the paper's medium size is
bench/device_comsl.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {
    "tiny": dict(whisper=dict(d_model=32, layers=4, heads=2, ffn=64),
                 mbart=dict(d_model=32, layers=4, heads=2, ffn=64, vocab=300)),
    "mid": dict(whisper=dict(d_model=384, layers=4, heads=6, ffn=1536),
                mbart=dict(d_model=256, layers=6, heads=4, ffn=1024, vocab=8000)),
    # the paper's: Whisper medium, mBART-large-50 (bench/device_comsl.py, on a GPU)
    "medium": dict(whisper=dict(d_model=1024, layers=24, heads=16, ffn=4096),
                   mbart=dict(d_model=1024, layers=12, heads=16, ffn=4096, vocab=250054)),
}
VARIANTS = {"baseline": dict(freeze=False, ckpt=False),
            "checkpointing": dict(freeze=False, ckpt=True),
            "frozen_encoder": dict(freeze=True, ckpt=False),
            "frozen_encoder_checkpointing": dict(freeze=True, ckpt=True)}
LANGS = ("en_XX", "de_DE")


def build(size: str, ckpt: bool, freeze: bool):
    """ComSLModel with random weights at `size` (configs, no files)."""
    import torch
    from transformers import MBartConfig, WhisperConfig

    from espnet_mtl.models.comsl import ComSLModel

    w, m = SIZES[size]["whisper"], SIZES[size]["mbart"]
    whisper = WhisperConfig(d_model=w["d_model"], encoder_layers=w["layers"],
                            encoder_attention_heads=w["heads"], encoder_ffn_dim=w["ffn"],
                            decoder_layers=1, decoder_attention_heads=w["heads"],
                            decoder_ffn_dim=w["ffn"], num_mel_bins=80, vocab_size=64,
                            pad_token_id=1, bos_token_id=2, eos_token_id=3,
                            decoder_start_token_id=2)
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [f"t{i}" for i in range(m["vocab"] - 7)] + \
        [*LANGS, "<mask>"]
    mbart = MBartConfig(vocab_size=m["vocab"], d_model=m["d_model"], encoder_layers=m["layers"],
                        decoder_layers=m["layers"], encoder_attention_heads=m["heads"],
                        decoder_attention_heads=m["heads"], encoder_ffn_dim=m["ffn"],
                        decoder_ffn_dim=m["ffn"], scale_embedding=True, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    torch.manual_seed(0)
    model = ComSLModel(tokens, whisper=whisper, mbart=mbart, src_lang=LANGS[0],
                       tgt_lang=LANGS[1], gradient_checkpointing=ckpt,
                       freeze_encoder_epochs=1 if freeze else 0)
    model.start_epoch(1)
    return model


def batch(size: str, n: int, device="cpu"):
    import torch

    g = torch.Generator().manual_seed(0)
    vocab = SIZES[size]["mbart"]["vocab"]
    lens = torch.randint(4 * 16000, 8 * 16000, (n,), generator=g)
    speech = torch.randn(n, int(lens.max()), generator=g) * 0.1
    out = dict(speech=speech, speech_lengths=lens)
    for key, lo, hi in (("text", 15, 30), ("src_text", 15, 30)):
        tl = torch.randint(lo, hi, (n,), generator=g)
        tok = torch.randint(4, vocab - 3, (n, int(tl.max())), generator=g)
        out[key] = tok.masked_fill(torch.arange(tok.size(1))[None] >= tl[:, None], -1)
        out[f"{key}_lengths"] = tl
    return {k: v.to(device) for k, v in out.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(size: str, variant: str, steps: int, warmup: int, n: int) -> dict:
    """One variant in this process: median step seconds and the memory the steps add."""
    import torch

    torch.set_num_threads(2)
    model = build(size, **{k: v for k, v in VARIANTS[variant].items()}).train()
    b = batch(size, n)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5,
                            weight_decay=0.1)
    before = _rss_mb()
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        opt.zero_grad()
        loss, _, _ = model(**b)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(step_s=statistics.median(times), peak_added_mb=round(peak - before, 1),
                params=sum(p.numel() for p in model.parameters()))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["tiny", "mid"], choices=list(SIZES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--one", nargs=2, metavar=("SIZE", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:  # a child process: one variant
        print(json.dumps(measure(*args.one, args.steps, args.warmup, args.batch)))
        return
    load_before = os.getloadavg()
    runs = {s: {v: [] for v in VARIANTS} for s in args.sizes}
    for _ in range(args.rounds):
        for size in args.sizes:
            for variant in VARIANTS:
                r = subprocess.run([sys.executable, __file__, "--one", size, variant,
                                    "--steps", str(args.steps), "--warmup", str(args.warmup),
                                    "--batch", str(args.batch)], capture_output=True, text=True,
                                   check=True)
                runs[size][variant].append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(size, variant, runs[size][variant][-1], file=sys.stderr)
    result = {"batch": args.batch, "steps": args.steps, "rounds": args.rounds,
              "load_before": load_before, "sizes": {}}
    for size in args.sizes:
        base = statistics.median(r["step_s"] for r in runs[size]["baseline"])
        base_mem = statistics.median(r["peak_added_mb"] for r in runs[size]["baseline"])
        result["sizes"][size] = {"params": runs[size]["baseline"][0]["params"], **{
            v: {"step_s": round(statistics.median(r["step_s"] for r in rs), 3),
                "step_ratio": round(statistics.median(r["step_s"] for r in rs) / base, 3),
                "peak_added_mb": round(statistics.median(r["peak_added_mb"] for r in rs), 1),
                "memory_ratio": round(statistics.median(r["peak_added_mb"] for r in rs)
                                      / base_mem, 3)}
            for v, rs in runs[size].items()}}
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
