"""IMTL's CTC length shrinking on the demo: how much shorter, and what a step costs.

Needs a trained IMTL experiment of a demo recipe (a model whose adapter is
`shrink_lbm`, e.g. `./run.sh --system mtl_st --st_config conf/train_st_imtl.yaml
--st_tag imtl` in egs2/mini_st_low/st1, or bench_mtl_gain.py's imtl system):

1. reduction: the dev set through the trained model in eval mode; frames
   out of the acoustic encoder (what a linear adapter hands the textual
   encoder) against frames out of the shrinking adapter, summed over the set.
2. step time: two models built from the experiment's config, trained on the
   same real dev batches (ESPnet's own data loading and preprocessing):
       shrink_lbm   the config as it is, initialised from the trained
                    checkpoint (so its CTC head shrinks as after training)
       linear       the same with the plain `linear` adapter and one more
                    textual-encoder block (the Looking-Back block's size),
                    initialised from the same checkpoint where names match
   A step is zero_grad + forward + backward + Adam step in train mode; after
   --warmup steps each, --steps rounds of one step per model, the order
   rotated every round, so machine drift hits both alike.

    python bench/bench_imtl.py --exp egs2/mini_st_low/st1/exp/st_imtl \
        [--recipe egs2/mini_st_low/st1] [--dev_set dev.en-de] [--batch_size 12]
        [--texts text.tc.de text.lc.rm.en]
        [--steps 10] [--warmup 2] [--out result.json]

Prints JSON: frames before/after and the reduction factor, parameter counts,
median step seconds per model and the ratio shrink_lbm / linear, load average.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml


def load(exp: Path):
    from espnet_mtl.tasks.st import MTLSTTask

    config = exp / "config.yaml"
    checkpoint = next((exp / name for name in ("valid.acc.ave.pth", "valid.acc.best.pth",
                                               "checkpoint.pth") if (exp / name).exists()), None)
    if checkpoint is None:
        sys.exit(f"{exp}: no trained model (valid.acc.ave.pth / checkpoint.pth)")
    model, args = MTLSTTask.build_model_from_file(config, None, "cpu")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state.get("model", state))
    if type(model.adapter).__name__ != "ShrinkLBMAdapter":
        sys.exit(f"{exp}: the model's adapter is not shrink_lbm")
    return model, args, model.state_dict()


def dev_batches(recipe: Path, dev_set: str, texts: tuple, args, batch_size: int):
    """The dev set as ESPnet reads it: speech, translation and transcript, collated."""
    from espnet_mtl.tasks.st import MTLSTTask

    dump = recipe / "dump" / "raw" / dev_set
    missing = [p for p in (dump / "wav.scp", *(dump / t for t in texts)) if not p.exists()]
    if missing:
        sys.exit(f"{missing[0]}: not found (run the recipe's stages 1-10; --dev_set and "
                 f"--texts name the set and its text files)")
    iterator = MTLSTTask.build_streaming_iterator(
        data_path_and_name_and_type=[(str(dump / "wav.scp"), "speech", "sound"),
                                     (str(dump / texts[0]), "text", "text"),
                                     (str(dump / texts[1]), "src_text", "text")],
        dtype="float32", batch_size=batch_size, num_workers=0,
        preprocess_fn=MTLSTTask.build_preprocess_fn(args, False),
        collate_fn=MTLSTTask.build_collate_fn(args, False), inference=False)
    return [batch for _, batch in iterator]


@torch.no_grad()
def reduction(model, batches) -> dict:
    model.eval()
    before = after = 0
    for b in batches:
        hidden, lens = model.encode_acoustic(b["speech"], b["speech_lengths"])
        _, shrunk = model.adapter(hidden[:, : int(lens.max())], lens)
        before, after = before + int(lens.sum()), after + int(shrunk.sum())
    return {"utterances": sum(len(b["speech"]) for b in batches), "frames_before": before,
            "frames_after": after, "reduction_factor": round(before / max(after, 1), 3)}


def linear_variant(args, trained_state):
    from espnet_mtl.tasks.st import MTLSTTask

    args = copy.deepcopy(args)
    conf = dict(args.model_conf)
    conf["adapter"], conf["adapter_conf"] = "linear", {}
    text = dict(conf["textual_encoder_conf"])
    text["num_blocks"] = int(text["num_blocks"]) + 1
    conf["textual_encoder_conf"] = text
    args.model_conf = conf
    model = MTLSTTask.build_model(args)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in trained_state.items()
                           if k in own and own[k].shape == v.shape}, strict=False)
    return model


def step(model, optim, batch) -> float:
    t0 = time.perf_counter()
    optim.zero_grad(set_to_none=True)
    loss, _, _ = model(**{k: v.clone() for k, v in batch.items()})
    loss.backward()
    optim.step()
    if not torch.isfinite(loss):
        raise RuntimeError(f"non-finite loss {float(loss)}")
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", type=Path, required=True, help="trained IMTL experiment dir")
    p.add_argument("--recipe", type=Path, help="recipe dir (default: exp/../..)")
    p.add_argument("--dev_set", default="dev.en-de")
    p.add_argument("--texts", nargs=2, default=["text.tc.de", "text.lc.rm.en"],
                   metavar=("TRANSLATION", "TRANSCRIPT"), help="text files of the dev dump")
    p.add_argument("--batch_size", type=int, default=12)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out")
    a = p.parse_args(argv)
    recipe = a.recipe or a.exp.resolve().parents[1]
    os.chdir(recipe)  # the config's paths (token lists, stats) are relative to it
    shrinking, args, state = load(a.exp.resolve())
    batches = dev_batches(recipe, a.dev_set, tuple(a.texts), args, a.batch_size)
    out = {"benchmark": "imtl_shrinking", "exp": str(a.exp), "dev_set": a.dev_set,
           "cpu_count": os.cpu_count(), "load_average_1min": {"before": os.getloadavg()[0]}}
    out["reduction"] = reduction(shrinking, batches)

    models = {"shrink_lbm": shrinking, "linear": linear_variant(args, state)}
    optims = {n: torch.optim.Adam(m.parameters(), lr=1e-4) for n, m in models.items()}
    out["parameters"] = {n: sum(q.numel() for q in m.parameters()) for n, m in models.items()}
    times = {n: [] for n in models}
    names = list(models)
    for m in models.values():
        m.train()
    for r in range(a.warmup + a.steps):
        batch = batches[r % len(batches)]
        for name in names[r % 2:] + names[: r % 2]:
            torch.manual_seed(r)
            t = step(models[name], optims[name], batch)
            if r >= a.warmup:
                times[name].append(t)
    out["step_seconds_median"] = {n: round(statistics.median(t), 4) for n, t in times.items()}
    out["step_time_ratio_shrink_lbm_vs_linear"] = round(
        out["step_seconds_median"]["shrink_lbm"] / out["step_seconds_median"]["linear"], 3)
    out["batch_size"], out["steps"] = a.batch_size, a.steps
    out["load_average_1min"]["after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
