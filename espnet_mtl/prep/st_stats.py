"""Stage 10 helpers: merge per-job collect_stats outputs and add vocab sizes.

ESPnet's numel/length batch samplers need the output dimension of every
text shape (`<utt> <length>,<vocab>`); collect_stats writes only lengths.
"""

from __future__ import annotations

from pathlib import Path

from espnet_mtl.fileio import read_lines, read_table, write_table


def count_lines(path: str | Path) -> int:
    return len(read_lines(path))


def add_vocab_dim(stats_dir: str | Path, shapes: dict[str, str | Path], suffix: str) -> None:
    """For each `<name>_shape` -> token list: write `<name>_shape.<suffix>`."""
    for sub in ("train", "valid"):
        for shape_name, token_list in shapes.items():
            src = Path(stats_dir) / sub / shape_name
            if not src.exists():
                continue
            vocab = count_lines(token_list)
            table = read_table(src)
            write_table(src.with_name(f"{shape_name}.{suffix}"),
                        {k: f"{v},{vocab}" for k, v in table.items()}, sort=False)
