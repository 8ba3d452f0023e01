"""Adapters: the join between the acoustic and the textual encoder (`model_conf.adapter`).

An adapter maps acoustic-encoder outputs (B, T, D_ac) with lengths to
textual-encoder inputs (B, T', D_text) with lengths; it may shorten the
sequence (length shrinking, seed 000). Built by `build_adapter(name, conf,
input_size, output_size)` from `espnet_mtl.registry.ADAPTERS`.
"""

from __future__ import annotations

from typing import Tuple

import torch

from espnet_mtl import registry


class LinearAdapter(torch.nn.Module):
    """A Linear projection when the sizes differ, the identity otherwise."""

    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        self.proj = (torch.nn.Linear(input_size, output_size)
                     if input_size != output_size else None)

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return (xs if self.proj is None else self.proj(xs)), lens


def build_adapter(name: str, conf: dict | None, input_size: int, output_size: int):
    cls = registry.get("adapter", name, key="model_conf.adapter")
    return cls(input_size=input_size, output_size=output_size, **(conf or {}))
