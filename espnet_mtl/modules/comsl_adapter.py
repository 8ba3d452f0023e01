"""ComSL's speech-to-text adapter (seed 004; methods.md section 5): Whisper encoder
states -> mBART encoder inputs, 4x shorter.

    x + 0.5 FFN(x) -> LN -> Conv1d(k 3, s 2) + GLU -> x + 0.5 FFN(x) -> LN      [code]
      -> Conv1d(k 3, s 2) + GLU

FFN = Linear(d, 4d) -> ReLU -> Linear(4d, d), each Conv1d maps to 2x its output
channels for the GLU, with padding 1 (k // 2). The first convolution changes the
size from the speech encoder's to the text model's (Whisper medium 1024 and
mBART-50 1024 in the paper).

Masks (the authors train one utterance per GPU without them): padded frames are
zeroed before each convolution, which is exactly the convolution's own zero
padding for the utterance alone, and the output lengths are the convolutions'
((L - 1) // 2 + 1, twice): a padded batch gives every utterance the frames it
gets alone (tested).
"""

from __future__ import annotations

from typing import Tuple

import torch


class _HalfResidualFFN(torch.nn.Module):
    """x + 0.5 FFN(x), then LayerNorm (the Macaron-style half step)."""

    def __init__(self, size: int):
        super().__init__()
        self.ffn = torch.nn.Sequential(torch.nn.Linear(size, 4 * size), torch.nn.ReLU(),
                                       torch.nn.Linear(4 * size, size))
        self.norm = torch.nn.LayerNorm(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + 0.5 * self.ffn(x))


class _StridedGLUConv(torch.nn.Module):
    """Conv1d (kernel 3, stride 2, padding 1) to 2 x out channels, GLU; masked."""

    def __init__(self, in_size: int, out_size: int):
        super().__init__()
        self.conv = torch.nn.Conv1d(in_size, 2 * out_size, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        valid = torch.arange(x.size(1), device=x.device)[None] < lens[:, None]
        x = x.masked_fill(~valid[..., None], 0.0)
        y = torch.nn.functional.glu(self.conv(x.transpose(1, 2)), dim=1).transpose(1, 2)
        return y, torch.div(lens - 1, 2, rounding_mode="floor") + 1


class ComSLAdapter(torch.nn.Module):
    """(B, T, in_size) speech states -> (B, ~T/4, out_size), with lengths."""

    def __init__(self, in_size: int, out_size: int):
        super().__init__()
        self.pre = _HalfResidualFFN(in_size)
        self.down1 = _StridedGLUConv(in_size, out_size)
        self.post = _HalfResidualFFN(out_size)
        self.down2 = _StridedGLUConv(out_size, out_size)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, lens = self.down1(self.pre(x), lens)
        x, lens = self.down2(self.post(x), lens)
        valid = torch.arange(x.size(1), device=x.device)[None] < lens[:, None]
        return x.masked_fill(~valid[..., None], 0.0), lens
