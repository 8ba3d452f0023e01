"""ESPnet's training curves (exp/st_*/images/*.png), drawn from a checkpoint.

ESPnet redraws every curve after every epoch when `use_matplotlib` is on:
~2.4 s an epoch on 2 CPU cores, a tenth of a demo epoch. The demo configs
turn that off; stage 11 then draws the same PNGs once, when training ends,
from the reporter state ESPnet keeps in `checkpoint.pth`, and
`python -m espnet_mtl.bin.plot_training EXP_DIR` draws them mid-training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from espnet2.train.reporter import Reporter


def draw_training_curves(exp_dir: str | Path) -> Path:
    """Write exp_dir/images/<metric>.png for every metric ESPnet reported so far."""
    exp_dir = Path(exp_dir)
    checkpoint = exp_dir / "checkpoint.pth"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: no checkpoint yet (ESPnet writes one after "
                                f"each epoch); wait for the first epoch to finish")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    images = exp_dir / "images"
    reporter.matplotlib_plot(images)
    return images
