"""Decoder work done once per utterance instead of once per step (batched search).

ESPnet's `forward_one_step` projects the encoder output to source-attention keys and
values in every layer at every step, for every hypothesis: beam x steps copies of
the same product. `memory_projected_once` computes each layer's key and value
projections once per utterance and, for the duration of a search, stands them in
for the two Linear layers, handing each step the rows of its running hypotheses.
The decoder's own code runs unchanged; the Linear layers are put back afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List, Optional

import torch


class _ProjectedMemory(torch.nn.Module):
    """A source-attention key/value Linear's output for every utterance, read by row."""

    def __init__(self, projected: torch.Tensor):
        super().__init__()
        self.projected = projected
        self.rows: Optional[torch.Tensor] = None

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        # `memory` is what the decoder passes: the stand-in already holds its projection
        return self.projected[self.rows]


class MemoryRows:
    """Which utterance each running hypothesis decodes (set before each step)."""

    def __init__(self, stand_ins: List[_ProjectedMemory]):
        self.stand_ins = stand_ins

    def set(self, rows: torch.Tensor) -> None:
        for s in self.stand_ins:
            s.rows = rows


def _source_attentions(decoder) -> list:
    layers = list(getattr(decoder, "decoders", []))
    attns = [getattr(layer, "src_attn", None) for layer in layers]
    if not layers or not all(isinstance(getattr(a, "linear_k", None), torch.nn.Linear)
                             and isinstance(getattr(a, "linear_v", None), torch.nn.Linear)
                             for a in attns):
        return []
    return attns


@contextmanager
def memory_projected_once(decoder, memory: torch.Tensor) -> Iterator[Optional[MemoryRows]]:
    """Within the block, the decoder's source attentions read projections of `memory`
    (utterances, frames, size) computed here once; yields the `MemoryRows` to set each
    step (the decoder may then be given `memory` unexpanded), or None for decoders
    without ESPnet's source attention (the caller expands the memory itself)."""
    attns = _source_attentions(decoder)
    if not attns:
        yield None
        return
    swapped = []
    try:
        for attn in attns:
            for name in ("linear_k", "linear_v"):
                linear = getattr(attn, name)
                stand_in = _ProjectedMemory(linear(memory))
                swapped.append((attn, name, linear, stand_in))
                setattr(attn, name, stand_in)
        yield MemoryRows([s for *_, s in swapped])
    finally:
        for attn, name, linear, _ in swapped:
            setattr(attn, name, linear)
