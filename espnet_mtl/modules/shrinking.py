"""CTC length shrinking with the Looking-Back Mechanism (IMTL, seed 000): adapter `shrink_lbm`.

Speech frames outnumber the tokens they carry several times over; IMTL
shortens the acoustic-encoder output to about one frame per CTC label before
the textual encoder (methods.md section 2, [code] = the authors' code):

1. per-frame labels from the model's CTC head: a hard Gumbel-softmax sample
   in training, temperature max(0.999995^step, 0.1) [code]; argmax in eval;
2. keep one frame per run of equal labels, blank runs included [code]: the
   first frame of the run;
3. LayerNorm on the kept frames;
4. Looking-Back: the shrunk sequence queries the full (unshrunk) sequence
   under the full sequence's own padding mask, post-LN:
   x = LN(x + MHA(q=x, kv=full)); x = LN(x + W2 SiLU(W1 x)) [code];
5. sinusoidal positions (the textual encoder has no input layer of its own).

CTC stays on the unshrunk sequence (the `asr_ctc` objective reads the
acoustic encoder output, not this adapter's). Shrinking starts after
`warmup_steps` training updates (3000 in the code, when HuBERT unfreezes):
until then the full sequence is its own query, so the same layers train from
the start [choice]. The update count is a buffer: it survives resume, and a
model decodes shrunk exactly when it trained past the warm-up.

[choice] The hard sample selects frames, and selection passes no gradient:
argmax(logits + Gumbel noise) is the same at every temperature. Each kept
frame is therefore multiplied by the straight-through weight of its label
(exactly 1 in the forward pass, d/dlogits of the soft sample at the
scheduled temperature in the backward pass), so the losses after the
adapter also train the CTC head, and the temperature means what it does in
the straight-through Gumbel-softmax.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention

#: IMTL's Gumbel temperature schedule and shrinking warm-up [code]
IMTL_TEMPERATURE_DECAY = 0.999995
IMTL_MIN_TEMPERATURE = 0.1
IMTL_SHRINK_WARMUP = 3000


def gumbel_temperature(step: int, decay: float = IMTL_TEMPERATURE_DECAY,
                       floor: float = IMTL_MIN_TEMPERATURE) -> float:
    """max(decay^step, floor)."""
    return max(decay ** step, floor)


def run_starts(labels: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """(B, T) labels -> (B, T) bool: True on the first valid frame of each run of equal labels."""
    valid = ~make_pad_mask(lens, maxlen=labels.size(1)).to(labels.device)
    changed = torch.ones_like(valid)
    changed[:, 1:] = labels[:, 1:] != labels[:, :-1]
    return valid & changed


def shrink(xs: torch.Tensor, keep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) frames and a (B, T) keep mask -> (B, T', D) kept frames, in order, zero-padded."""
    new_lens = keep.sum(1)
    batch, frames = keep.nonzero(as_tuple=True)
    position = (keep.long().cumsum(1) - 1)[batch, frames]
    out = xs.new_zeros(xs.size(0), int(new_lens.max()) if keep.numel() else 0, xs.size(2))
    return out.index_put((batch, position), xs[batch, frames]), new_lens


def sinusoid_positions(length: int, size: int, device, dtype) -> torch.Tensor:
    """(length, size) sinusoidal position table (Vaswani et al.), unscaled."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, size, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / size))
    table = torch.zeros(length, size, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: size // 2])
    return table.to(dtype)


class LookingBack(torch.nn.Module):
    """Post-LN block: the query sequence attends to a memory sequence, then a SiLU FFN."""

    def __init__(self, size: int, attention_heads: int, linear_units: int, dropout_rate: float):
        super().__init__()
        self.attn = MultiHeadedAttention(attention_heads, size, dropout_rate)
        self.norm_attn = torch.nn.LayerNorm(size)
        self.ffn = torch.nn.Sequential(
            torch.nn.Linear(size, linear_units), torch.nn.SiLU(),
            torch.nn.Dropout(dropout_rate), torch.nn.Linear(linear_units, size))
        self.norm_ffn = torch.nn.LayerNorm(size)
        self.dropout = torch.nn.Dropout(dropout_rate)

    def forward(self, query: torch.Tensor, query_lens: torch.Tensor,
                memory: torch.Tensor, memory_lens: torch.Tensor) -> torch.Tensor:
        memory_valid = ~make_pad_mask(memory_lens, maxlen=memory.size(1)).to(memory.device)
        # zeroed, not only masked: attention weights of 0 times NaN padding are NaN
        memory = memory.masked_fill(~memory_valid[..., None], 0.0)
        x = self.norm_attn(query + self.dropout(
            self.attn(query, memory, memory, memory_valid[:, None, :])))
        x = self.norm_ffn(x + self.dropout(self.ffn(x)))
        query_valid = ~make_pad_mask(query_lens, maxlen=x.size(1)).to(x.device)
        return x.masked_fill(~query_valid[..., None], 0.0)


class ShrinkLBMAdapter(torch.nn.Module):
    """Acoustic frames -> about one frame per CTC label -> Looking-Back -> textual encoder input."""

    #: the model heads it reads (the model builds them and calls `bind`)
    heads = ("ctc",)

    def __init__(self, input_size: int, output_size: int, attention_heads: int = 4,
                 linear_units: int = 1024, dropout_rate: float = 0.1,
                 warmup_steps: int = IMTL_SHRINK_WARMUP,
                 temperature_decay: float = IMTL_TEMPERATURE_DECAY,
                 min_temperature: float = IMTL_MIN_TEMPERATURE, positions: bool = True):
        super().__init__()
        if warmup_steps < 0 or not 0 < temperature_decay <= 1 or min_temperature <= 0:
            raise ValueError(
                f"model_conf.adapter_conf: need warmup_steps >= 0, 0 < temperature_decay <= 1, "
                f"min_temperature > 0; got {warmup_steps}, {temperature_decay}, {min_temperature}")
        self.norm = torch.nn.LayerNorm(input_size)
        self.looking_back = LookingBack(input_size, attention_heads, linear_units, dropout_rate)
        self.proj = (torch.nn.Linear(input_size, output_size)
                     if input_size != output_size else None)
        self.warmup_steps, self.positions = int(warmup_steps), bool(positions)
        self.temperature_decay, self.min_temperature = temperature_decay, min_temperature
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._ctc = None

    def bind(self, model) -> None:
        """Read the model's CTC head (kept out of this module's parameters and state)."""
        object.__setattr__(self, "_ctc", model.ctc)

    @property
    def shrinking(self) -> bool:
        return int(self.updates) >= self.warmup_steps

    @property
    def temperature(self) -> float:
        return gumbel_temperature(int(self.updates), self.temperature_decay, self.min_temperature)

    def labels(self, xs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-frame CTC labels and their straight-through weights (1.0 forward)."""
        if self._ctc is None:
            raise RuntimeError("adapter shrink_lbm is not bound to a model's CTC head "
                               "(the model calls bind(model) when it is built)")
        logits = self._ctc.ctc_lo(xs).float()
        if not self.training:
            return logits.argmax(-1), torch.ones(xs.shape[:2], device=xs.device)
        one_hot = torch.nn.functional.gumbel_softmax(logits, tau=self.temperature, hard=True)
        labels = one_hot.argmax(-1)
        return labels, one_hot.gather(-1, labels[..., None]).squeeze(-1)

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        shrinking = self.shrinking  # counted before this update
        if self.training:
            self.updates += 1
        if shrinking:
            labels, weight = self.labels(xs)
            keep = run_starts(labels, lens)
            query, query_lens = shrink(xs * weight[..., None].to(xs.dtype), keep)
        else:
            query, query_lens = xs, lens
        out = self.looking_back(self.norm(query), query_lens, xs, lens)
        if self.proj is not None:
            out = self.proj(out)
        if self.positions:
            out = out + sinusoid_positions(out.size(1), out.size(2), out.device, out.dtype)
            out = out.masked_fill(make_pad_mask(query_lens, maxlen=out.size(1))
                                  .to(out.device)[..., None], 0.0)
        return out, query_lens
