"""Make ESPnet's `--resume true` survive a training run killed while saving.

ESPnet's trainer writes `checkpoint.pth` and then `<N>epoch.pth` in place
with torch.save, so a kill during either save leaves a truncated file: the
resumed run then crashes in torch.load (checkpoint) or, at the very end, in
model averaging (epoch snapshot). Before resuming we look for truncated files
(torch.save's zip container has its directory at the end, so a truncated
file is not a valid zip) and repair what can be repaired:
- `<N>epoch.pth` truncated, N = the checkpoint's epoch: rewritten from the
  checkpoint's model state (the kill fell between the two saves);
- any other truncated `<N>epoch.pth`: removed, with a warning;
- `checkpoint.pth` truncated: moved aside, with a warning; training restarts
  from epoch 1 (the previous checkpoint was overwritten by the failed save).
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

EPOCH_SNAPSHOT = re.compile(r"^(\d+)epoch\.pth$")


def is_complete(path: Path) -> bool:
    """True if `path` is a whole torch.save file (zip directory present)."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError):
        return False


def repair_interrupted_checkpoints(output_dir: str | Path) -> list[str]:
    """Repair or remove truncated checkpoint files; returns what was done."""
    import torch

    output_dir = Path(output_dir)
    actions: list[str] = []
    checkpoint = output_dir / "checkpoint.pth"
    states = None
    if checkpoint.exists():
        if is_complete(checkpoint):
            states = None  # loaded lazily: only needed to rebuild a snapshot
        else:
            aside = checkpoint.with_name("checkpoint.pth.truncated")
            checkpoint.replace(aside)
            actions.append(f"{checkpoint} was truncated (killed while saving); moved to "
                           f"{aside.name}: training restarts from epoch 1")
    for path in sorted(output_dir.glob("*epoch.pth")):
        match = EPOCH_SNAPSHOT.match(path.name)
        if not match or path.is_symlink() or is_complete(path):
            continue
        epoch = int(match.group(1))
        if checkpoint.exists() and states is None:
            states = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if states is not None and states["reporter"]["epoch"] == epoch:
            tmp = path.with_name(path.name + ".tmp")
            torch.save(states["model"], tmp)
            tmp.replace(path)
            actions.append(f"{path} was truncated; rewritten from {checkpoint.name} (epoch {epoch})")
        else:
            path.unlink()
            actions.append(f"{path} was truncated and is not the checkpoint's epoch; removed")
    for action in actions:
        log.warning(action)
    return actions
