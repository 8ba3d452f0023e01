"""The CPC head: a causal context network over the acoustic encoder output and
one linear predictor W_k per future step k = 1..K (objective `cpc`).

Built by the model only when `cpc` is on (`Objective.build_module`), as
`model.objective_modules["cpc"]`: its parameters are the objective's own,
the acoustic encoder below it is the shared backbone CPC trains.

Causality: c_t sees z_1..z_t only (a unidirectional GRU, or a convolution
padded on the left), so predicting z_{t+k} cannot copy it. Padding frames are
zeroed before the context network: they come after every valid frame, so
they cannot reach a valid context, and zeroing them keeps NaN there out of
the backward pass too (0 * NaN would be NaN in the recurrence's gradient).
"""

from __future__ import annotations

import torch

#: the context networks: `gru` as CPC (van den Oord et al. 2018), `conv` a causal convolution
CONTEXTS = ("gru", "conv")


class CPCHead(torch.nn.Module):
    def __init__(self, input_size: int, steps: int, context: str = "gru",
                 context_size: int = None, context_kernel: int = 3):
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        size = int(context_size or input_size)
        self.input_size, self.steps, self.context_type = input_size, int(steps), context
        if context == "gru":
            self.context = torch.nn.GRU(input_size, size, batch_first=True)
        else:
            self.context = torch.nn.Conv1d(input_size, size, int(context_kernel))
        # the K predictors W_k as one matrix (no bias: p_t^k = W_k c_t)
        self.predict = torch.nn.Linear(size, self.steps * input_size, bias=False)

    def contexts(self, xs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, C): c_t from the frames up to t."""
        valid = torch.arange(xs.size(1), device=xs.device)[None, :] < lens.to(xs.device)[:, None]
        xs = torch.where(valid[..., None], xs, xs.new_zeros(()))
        if self.context_type == "gru":
            return self.context(xs)[0]
        kernel = self.context.kernel_size[0]
        padded = torch.nn.functional.pad(xs.transpose(1, 2), (kernel - 1, 0))  # left only
        return torch.relu(self.context(padded)).transpose(1, 2)

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> predictions (B, T, K, D), [b, t, k - 1] = W_k c_t."""
        c = self.contexts(xs, lens)
        return self.predict(c).view(xs.size(0), xs.size(1), self.steps, self.input_size)
