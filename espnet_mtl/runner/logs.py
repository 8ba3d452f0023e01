"""Log rotation as ESPnet's launcher does it (`espnet2.bin.launch`): before a rerun writes
`train.log`, the earlier one becomes `train.1.log` (and `train.1.log` `train.2.log`, ...),
so a resumed training keeps the log of the run it resumes."""

from __future__ import annotations

import os
from pathlib import Path


def rotate_log(path: str | os.PathLike, keep: int = 1000) -> None:
    p = Path(path)
    numbered = lambda i: p if i == 0 else p.with_name(f"{p.stem}.{i}{p.suffix}")  # noqa: E731
    for i in range(keep - 1, -1, -1):
        src = numbered(i)
        if src.exists():
            if i == keep - 1:
                src.unlink()
            else:
                src.replace(numbered(i + 1))
