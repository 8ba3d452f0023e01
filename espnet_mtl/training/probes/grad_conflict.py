"""Gradient-conflict probe: cosine between the main task's gradient and each auxiliary one.

The analysis of seed 000 (and the layer selection of seed 002): for the
unweighted loss of the main objective (ST cross-entropy) and of each
auxiliary objective, the gradient on the shared parameters, compared per
module (acoustic encoder, adapter, textual encoder, decoder) and per layer.
A cosine near 1 means the tasks pull the same way, below 0 they conflict;
a module an objective does not reach has no cosine (empty in the CSV).

Rows of `grad_conflict.csv`: epoch, step, objective, scope ("module" or
"layer"), name, cosine, main_norm, aux_norm. `plot(csv, out_dir)` draws
`grad_conflict_layers.png` (layers x objectives, mean cosine) and
`grad_conflict_training.png` (per module: probe steps x objectives).
As a training hook every `--grad_probe_interval` updates; on a trained
checkpoint with `python -m espnet_mtl.bin.grad_probe`.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from espnet_mtl.training import gradients
from espnet_mtl.training.probes import append_rows

FIELDS = ("epoch", "step", "objective", "scope", "name", "cosine", "main_norm", "aux_norm")
CSV_NAME = "grad_conflict.csv"

#: module label -> parameter-name prefixes (the shared parts of mtl_st)
DEFAULT_MODULES = {
    "acoustic encoder": ("frontend.", "normalize.", "preencoder.", "encoder."),
    "adapter": ("adapter.",),
    "textual encoder": ("textual_encoder.", "block_hooks."),  # hooks act between its blocks
    "decoder": ("decoder.",),
}


def _cosine(a: torch.Tensor, b: torch.Tensor) -> Tuple[Optional[float], float, float]:
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return None, na, nb
    return float(torch.dot(a, b) / (na * nb)), na, nb


def conflicts(grads: Dict[str, List[Optional[torch.Tensor]]], names: Sequence[str],
              params: Sequence[torch.nn.Parameter], main: str,
              modules: Dict[str, Tuple[str, ...]] = DEFAULT_MODULES) -> List[dict]:
    """Cosine rows for each auxiliary objective against `main`, per module and per layer."""
    if main not in grads:
        return []
    scopes: Dict[Tuple[str, str], List[int]] = defaultdict(list)
    for j, name in enumerate(names):
        for label, prefixes in modules.items():
            if name.startswith(prefixes):
                scopes[("module", label)].append(j)
                scopes[("layer", gradients.layer_of(name))].append(j)
    rows = []
    for aux, aux_grads in grads.items():
        if aux == main:
            continue
        for (scope, label), idx in scopes.items():
            sel = [params[j] for j in idx]
            a = gradients.flat([grads[main][j] for j in idx], sel)
            b = gradients.flat([aux_grads[j] for j in idx], sel)
            cos, na, nb = _cosine(a, b)
            rows.append(dict(objective=aux, scope=scope, name=label, cosine=cos,
                             main_norm=na, aux_norm=nb))
    return rows


class GradientConflictProbe:
    """Every `interval` training updates, append the conflict rows to `<out_dir>/grad_conflict.csv`."""

    def __init__(self, out_dir, interval: int, main: str = "st_ce",
                 modules: Dict[str, Tuple[str, ...]] = DEFAULT_MODULES):
        self.path = Path(out_dir) / CSV_NAME
        self.interval, self.main, self.modules = int(interval), main, modules
        self.write = True

    def due(self, step: int) -> bool:
        return self.interval > 0 and step % self.interval == 0

    def record(self, losses: Dict[str, Optional[torch.Tensor]], model: torch.nn.Module,
               epoch: int, step: int) -> List[dict]:
        named = gradients.trainable(model)
        names, params = [n for n, _ in named], [p for _, p in named]
        grads = gradients.objective_gradients(losses, params, keep_graph=True)
        rows = [dict(epoch=epoch, step=step, **r)
                for r in conflicts(grads, names, params, self.main, self.modules)]
        if self.write:
            write_rows(self.path, rows)
        return rows


def write_rows(path: Path, rows: List[dict]) -> None:
    append_rows(path, rows, FIELDS)


def read_rows(path) -> List[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["cosine"] = float(r["cosine"]) if r["cosine"] != "" else math.nan
        r["step"] = int(r["step"])
    return rows


def plot(csv_path, out_dir=None) -> List[Path]:
    """Draw the two heatmaps next to the CSV (or in out_dir); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = read_rows(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: no probe rows to plot")
    out_dir = Path(out_dir or Path(csv_path).parent)
    out_dir.mkdir(parents=True, exist_ok=True)
    objectives = sorted({r["objective"] for r in rows})

    def mean_table(sel, key):
        acc = defaultdict(list)
        for r in sel:
            if not math.isnan(r["cosine"]):
                acc[(r[key], r["objective"])].append(r["cosine"])
        return acc

    layer_rows = [r for r in rows if r["scope"] == "layer"]
    layers = list(dict.fromkeys(r["name"] for r in layer_rows))
    acc = mean_table(layer_rows, "name")
    grid = np.full((len(layers), len(objectives)), np.nan)
    for i, layer in enumerate(layers):
        for j, obj in enumerate(objectives):
            if acc.get((layer, obj)):
                grid[i, j] = float(np.mean(acc[(layer, obj)]))
    paths = [out_dir / "grad_conflict_layers.png", out_dir / "grad_conflict_training.png"]
    cmap = plt.get_cmap("RdBu").copy()
    cmap.set_bad("lightgray")  # the objective does not reach these parameters
    fig, ax = plt.subplots(figsize=(2 + 1.2 * len(objectives), 1 + 0.28 * len(layers)))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(objectives)), objectives, rotation=30, ha="right")
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_title("cos(grad ST, grad aux) per layer, mean over probes\n(gray: not reached)",
                 fontsize=10)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    module_rows = [r for r in rows if r["scope"] == "module"]
    modules = list(dict.fromkeys(r["name"] for r in module_rows))
    steps = sorted({r["step"] for r in module_rows})
    fig, axes = plt.subplots(len(modules), 1, squeeze=False, layout="constrained",
                             figsize=(max(6, 0.25 * len(steps) + 3),
                                      1.0 + len(modules) * (0.6 + 0.3 * len(objectives))))
    for ax, module in zip(axes[:, 0], modules):
        grid = np.full((len(objectives), len(steps)), np.nan)
        for r in module_rows:
            if r["name"] == module:
                grid[objectives.index(r["objective"]), steps.index(r["step"])] = r["cosine"]
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
        ax.set_yticks(range(len(objectives)), objectives, fontsize=7)
        ax.set_title(f"{module}: cos(grad ST, grad aux) (gray: not reached)", fontsize=9)
        ticks = list(range(0, len(steps), max(1, len(steps) // 10)))
        ax.set_xticks(ticks, [str(steps[t]) for t in ticks], fontsize=7)
    axes[-1, 0].set_xlabel("update")
    fig.colorbar(im, ax=axes[:, 0].tolist())
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def probe_checkpoint(config, model_file, data_path_and_name_and_type, out_dir,
                     batches: int = 10, batch_size: int = 8, seed: int = 0,
                     main: str = "st_ce") -> Path:
    """The probe on a trained model over `batches` batches of a data set; returns the CSV.

    The model runs in train mode (dropout and SpecAugment on, seeded): the
    gradients are the ones training would take on these batches.
    """
    from espnet_mtl.tasks.st import MTLSTTask

    model, args = MTLSTTask.build_model_from_file(config, model_file, "cpu")
    if not hasattr(model, "objectives"):
        raise ValueError(f"{config}: model '{args.model}' has no objectives to compare")
    out_dir = Path(out_dir)
    csv_path = out_dir / CSV_NAME
    if csv_path.exists():
        csv_path.unlink()  # a fresh run, not appended to an old one
    iterator = MTLSTTask.build_streaming_iterator(
        data_path_and_name_and_type=data_path_and_name_and_type, dtype="float32",
        batch_size=batch_size, key_file=None, num_workers=0,
        preprocess_fn=MTLSTTask.build_preprocess_fn(args, train=False),
        collate_fn=MTLSTTask.build_collate_fn(args, train=False),
        allow_variable_data_keys=False, inference=False)
    probe = GradientConflictProbe(out_dir, interval=1, main=main)
    torch.manual_seed(seed)
    model.train()
    done = 0
    for _, batch in iterator:
        out = model(**batch, return_objectives=True)
        probe.record(out["objectives"], model, epoch=0, step=done + 1)
        done += 1
        if done == batches:
            break
    if done == 0:
        raise ValueError(f"no batch read from {data_path_and_name_and_type}")
    return csv_path
