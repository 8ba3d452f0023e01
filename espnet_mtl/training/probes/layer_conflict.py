"""Per-layer gradient conflict as MoDo's layer selection sees it (seed 002).

Every `log_interval` updates the `modo` strategy appends, for each layer of
the shared parameters (`gradients.layer_of`), the mean over its tensors of
the objectives' mean pairwise gradient cosine and how many of its tensors
were selected for the MoDo direction, to `<output_dir>/modo_layers.csv`:

    epoch, step, layer, tensors, selected, mean_cosine

`plot(csv)` draws `modo_layers.png`: layers x updates, the cosine on the
left and the selected share on the right. The task draws it after training.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import List, Optional, Sequence

from espnet_mtl.training import gradients
from espnet_mtl.training.probes import append_rows

CSV_NAME = "modo_layers.csv"
FIELDS = ("epoch", "step", "layer", "tensors", "selected", "mean_cosine")


def layer_rows(epoch: int, step: int, names: Sequence[str], cosines: Sequence[Optional[float]],
               selected: Sequence[bool]) -> List[dict]:
    """Tensor-level cosines and choices -> one row per layer."""
    acc = defaultdict(lambda: {"tensors": 0, "selected": 0, "cos": []})
    for name, cos, chosen in zip(names, cosines, selected):
        entry = acc[gradients.layer_of(name)]
        entry["tensors"] += 1
        entry["selected"] += int(chosen)
        if cos is not None:
            entry["cos"].append(cos)
    return [dict(epoch=epoch, step=step, layer=layer, tensors=e["tensors"],
                 selected=e["selected"],
                 mean_cosine=sum(e["cos"]) / len(e["cos"]) if e["cos"] else "")
            for layer, e in acc.items()]


def write_rows(path: Path, rows: List[dict]) -> None:
    append_rows(path, rows, FIELDS)


def read_rows(path) -> List[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["step"], r["tensors"], r["selected"] = int(r["step"]), int(r["tensors"]), int(r["selected"])
        r["mean_cosine"] = float(r["mean_cosine"]) if r["mean_cosine"] != "" else math.nan
    return rows


def plot(csv_path, out_dir=None) -> Path:
    """`modo_layers.png` next to the CSV (or in out_dir); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = read_rows(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: no rows to plot")
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    steps = sorted({r["step"] for r in rows})
    cos = np.full((len(layers), len(steps)), np.nan)
    share = np.full((len(layers), len(steps)), np.nan)
    for r in rows:
        i, j = layers.index(r["layer"]), steps.index(r["step"])
        cos[i, j] = r["mean_cosine"]
        share[i, j] = r["selected"] / r["tensors"]
    out = Path(out_dir or Path(csv_path).parent) / "modo_layers.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.3 * len(steps) + 6), 1.5 + 0.25 * len(layers)),
                             layout="constrained")
    ticks = list(range(0, len(steps), max(1, len(steps) // 8)))
    for ax, grid, title, cmap, lo in ((axes[0], cos, "mean pairwise gradient cosine", "RdBu", -1),
                                      (axes[1], share, "share of tensors given MoDo", "viridis", 0)):
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=1, aspect="auto")
        ax.set_yticks(range(len(layers)), layers, fontsize=7)
        ax.set_xticks(ticks, [str(steps[t]) for t in ticks], fontsize=7)
        ax.set_xlabel("update")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
