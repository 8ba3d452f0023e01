"""Local-to-Global convolutions (IMTL, seed 000): block hook `local_to_global`.

Before textual-encoder block i: x = x + ConvModule_i(LN(x)), a Conformer
convolution module (pointwise -> GLU -> depthwise -> BatchNorm -> ReLU ->
pointwise) whose depthwise kernel grows with depth, 5 + 3i rounded up to
odd: 5, 9, 11, 15, 17, 21 for six blocks (methods.md section 2, [code]).
Early blocks see local context, later ones wider: the shrunk speech sequence
is noisy locally and the MT source is not.

Masking: padding frames are zeroed before the depthwise convolution (so they
never leak into valid frames), BatchNorm statistics are taken over valid
frames only, and the residual adds nothing on padding. The authors' released
code passes a padding mask of inverted meaning, which zeroes every valid
frame so that the branch contributes nothing; this module masks as intended.
"""

from __future__ import annotations

from typing import List

import torch

#: IMTL's depthwise kernel sizes: base + step * block index, rounded up to odd [code]
IMTL_KERNEL_BASE = 5
IMTL_KERNEL_STEP = 3


def kernel_sizes(num_blocks: int, base: int = IMTL_KERNEL_BASE,
                 step: int = IMTL_KERNEL_STEP) -> List[int]:
    """Depthwise kernel of each block: base + step * i, rounded up to odd."""
    return [k + 1 - k % 2 for k in (base + step * i for i in range(num_blocks))]


class MaskedBatchNorm1d(torch.nn.BatchNorm1d):
    """BatchNorm over (B, C, T) whose training statistics come from valid frames only."""

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """valid: (B, 1, T) bool."""
        if not self.training:
            return super().forward(x)
        m = valid.to(x.dtype)
        count = m.sum().clamp(min=1)
        mean = (x * m).sum((0, 2)) / count
        var = (((x - mean[None, :, None]) * m) ** 2).sum((0, 2)) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)
        y = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


class MaskedConvModule(torch.nn.Module):
    """Conformer convolution module (ESPnet's layer names) that respects a padding mask."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.pointwise_conv1 = torch.nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = torch.nn.Conv1d(channels, channels, kernel_size,
                                              padding=kernel_size // 2, groups=channels)
        self.norm = MaskedBatchNorm1d(channels)
        self.activation = torch.nn.ReLU()
        self.pointwise_conv2 = torch.nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C); valid: (B, 1, T) bool -> (B, T, C), zero on padding."""
        x = x.transpose(1, 2).masked_fill(~valid, 0.0)
        x = torch.nn.functional.glu(self.pointwise_conv1(x), dim=1)
        x = self.depthwise_conv(x.masked_fill(~valid, 0.0))
        x = self.pointwise_conv2(self.activation(self.norm(x, valid)))
        return x.masked_fill(~valid, 0.0).transpose(1, 2)


class LocalToGlobal(torch.nn.Module):
    """One LayerNorm + convolution module per textual-encoder block, run before the block."""

    def __init__(self, size: int, num_blocks: int, kernel_base: int = IMTL_KERNEL_BASE,
                 kernel_step: int = IMTL_KERNEL_STEP):
        super().__init__()
        self.kernels = kernel_sizes(num_blocks, kernel_base, kernel_step)
        self.norms = torch.nn.ModuleList(torch.nn.LayerNorm(size) for _ in self.kernels)
        self.convs = torch.nn.ModuleList(MaskedConvModule(size, k) for k in self.kernels)

    def attach(self, encoder) -> None:
        encoder.add_block_hook(before=self)

    def forward(self, index: int, xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The hook: mask (B, 1, T) True on valid frames."""
        # zero padding first: the LayerNorm of a NaN padding frame would stay NaN
        xs = xs.masked_fill(~mask.transpose(1, 2), 0.0)
        return xs + self.convs[index](self.norms[index](xs), mask)
