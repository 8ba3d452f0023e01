"""Training probes: measurements taken on live training batches (gradient conflict)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Sequence


def append_rows(path: Path, rows: List[dict], fields: Sequence[str]) -> None:
    """Append rows to a probe CSV (header when new); None is written as an empty cell."""
    if not rows:
        return
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in fields})
