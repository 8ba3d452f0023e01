"""Task-aware MTL's cost: parameters added and step time, with and without a TCN.

The low-resource demo's mtl_st (egs2/mini_st_low/st1/conf/train_st_mtl.yaml) and
the same model as `task_aware` with the explicit and the implicit TCN
(conf/train_st_task_aware_{explicit,implicit}.yaml), on the same fabricated
mixed batches (--batch rows, ST:MT:ASR = 2:1:1 as the demo's mixing: speech
2-4 s, 20-40 tokens, seeded). A step is zero_grad + forward + backward + Adam
step; the variants take turns step by step (--warmup untimed steps each,
then --steps timed), so machine drift hits all alike. Parameter counts are
also given at the paper's sizes (conf_templates/st/task_aware.yaml).

    python bench/bench_task_aware.py [--steps 10] [--warmup 2] [--batch 24]
                                     [--out bench/plots/issue16_task_aware_cost.json]

Prints JSON: per variant the TCN's parameters (and the model's), the median step
seconds and its ratio to mtl_st; the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LOW = ROOT / "egs2/mini_st_low/st1/conf"
VARIANTS = {
    "mtl_st": LOW / "train_st_mtl.yaml",
    "task_aware_explicit": LOW / "train_st_task_aware_explicit.yaml",
    "task_aware_implicit": LOW / "train_st_task_aware_implicit.yaml",
}
PAPER = {"explicit": {}, "implicit": {"tcn": "implicit",
                                      "tcn_conf": {"hidden": 128, "heads": 4, "ffn": 512}}}


def build(config: Path, workdir: Path, vocab: int, overrides: dict | None = None):
    import torch

    from espnet_mtl.tasks.st import MTLSTTask

    conf = yaml.safe_load(config.read_text())
    conf["model_conf"].update(overrides or {})
    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(vocab - 3)] + ["<sos/eos>"]
    (workdir / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (workdir / "conf.yaml").write_text(yaml.safe_dump(conf))
    sys.argv = ["bench_task_aware"]  # ESPnet's parser also reads sys.argv
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(workdir / "conf.yaml"), "--token_list", str(workdir / "tokens.txt"),
         "--src_token_list", str(workdir / "tokens.txt")])
    torch.manual_seed(0)
    return MTLSTTask.build_model(args)


def mixed_batch(batch: int, vocab: int):
    """ST triples, MT-only and ASR-only rows, 2:1:1."""
    import torch

    g = torch.Generator().manual_seed(1)
    n_mt = n_asr = batch // 4
    n_st = batch - n_mt - n_asr
    lens = torch.randint(32000, 64000, (batch,), generator=g)
    lens[n_st:n_st + n_mt] = 0  # MT-only: no speech
    speech = torch.randn(batch, int(lens.max()), generator=g) * 0.1
    text_lens = torch.randint(20, 41, (batch,), generator=g)
    text_lens[n_st + n_mt:] = 0  # ASR-only: no translation
    src_lens = torch.randint(20, 41, (batch,), generator=g)

    def tokens_of(lengths):
        out = torch.randint(2, vocab - 1, (batch, max(int(lengths.max()), 1)), generator=g)
        out[torch.arange(out.shape[1])[None, :] >= lengths[:, None]] = -1
        return out

    return {"speech": speech, "speech_lengths": lens, "text": tokens_of(text_lens),
            "text_lengths": text_lens, "src_text": tokens_of(src_lens),
            "src_text_lengths": src_lens}


def tcn_parameters(model) -> int:
    tcn = getattr(model, "tcn", None)
    return 0 if tcn is None else sum(p.numel() for p in tcn.parameters())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--vocab", type=int, default=300, help="tokens per vocabulary")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    load_before = os.getloadavg()
    result = {"batch_rows": args.batch, "mix": "st:mt:asr = 2:1:1", "steps": args.steps,
              "vocab": args.vocab, "variants": {}, "paper_size_parameters": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for tcn, overrides in PAPER.items():
            work = Path(tmp, f"paper_{tcn}")
            work.mkdir()
            model = build(ROOT / "conf_templates/st/task_aware.yaml", work, args.vocab,
                          overrides)
            result["paper_size_parameters"][tcn] = {
                "tcn": tcn_parameters(model),
                "tcn_without_token_embeddings": tcn_parameters(model) - sum(
                    p.numel() for n, p in model.tcn.named_parameters() if "embed." in n),
                "model": sum(p.numel() for p in model.parameters())}
            del model
        models, optims = {}, {}
        for name, config in VARIANTS.items():
            work = Path(tmp, name)
            work.mkdir()
            models[name] = build(config, work, args.vocab).train()
            optims[name] = torch.optim.Adam(models[name].parameters(), lr=1e-4)
        data = mixed_batch(args.batch, args.vocab)
        times = {name: [] for name in models}
        for i in range(args.warmup + args.steps):
            for name, model in models.items():
                start = time.perf_counter()
                optims[name].zero_grad()
                loss, _, _ = model(**data)
                loss.backward()
                optims[name].step()
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
            print(f"step {i + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()
                                                if t), file=sys.stderr)
    base = statistics.median(times["mtl_st"])
    for name, model in models.items():
        median = statistics.median(times[name])
        result["variants"][name] = {
            "tcn_parameters": tcn_parameters(model),
            "model_parameters": sum(p.numel() for p in model.parameters()),
            "median_step_s": round(median, 4), "step_ratio_vs_mtl_st": round(median / base, 3)}
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
