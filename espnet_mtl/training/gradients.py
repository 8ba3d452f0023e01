"""Per-objective gradients on named parameters, for strategies and probes.

Gradients are taken with `torch.autograd.grad` on each objective's loss (its
graph kept until the last one), never read from accumulated `.grad`, so they
are exact per objective and leave `.grad` untouched. Under DDP they are
averaged across ranks (every rank then sees the same per-objective
gradients and takes the same decision). A strategy hands its combined
gradient back to ESPnet's trainer as `surrogate_loss(params, grads)`, whose
backward adds exactly `grads` to `.grad`: gradient clipping, accumulation,
DDP's reducer and the optimizer then run unchanged.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch

NamedParams = List[Tuple[str, torch.nn.Parameter]]


def trainable(model: torch.nn.Module) -> NamedParams:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def objective_gradients(losses: Dict[str, Optional[torch.Tensor]],
                        params: Sequence[torch.nn.Parameter],
                        reduce: bool = True, keep_graph: bool = False
                        ) -> Dict[str, List[Optional[torch.Tensor]]]:
    """Objective -> d loss / d param for each param (None where the loss does not reach it).

    Objectives whose loss is None (no example of this batch feeds them) are left
    out. The graph is freed after the last objective unless `keep_graph`.
    Under DDP every rank must pass the same objective names (a None loss where
    its rows have no example): each gradient is averaged over the ranks that
    have the loss, and an objective no rank has is left out.
    """
    present = [(n, l) for n, l in losses.items() if l is not None]
    grads = {}
    for i, (name, loss) in enumerate(present):
        keep = keep_graph or i < len(present) - 1
        grads[name] = list(torch.autograd.grad(loss, params, retain_graph=keep,
                                               allow_unused=True))
    if reduce and torch.distributed.is_available() and torch.distributed.is_initialized():
        names = list(losses)
        device = params[0].device if params else None
        counts = torch.tensor([float(n in grads) for n in names], device=device)
        torch.distributed.all_reduce(counts)  # how many ranks have each objective
        reduced = {}
        for name, count in zip(names, counts.tolist()):
            if count == 0:
                continue
            mine = grads.get(name, [None] * len(params))
            out = []
            for j, g in enumerate(mine):
                g = torch.zeros_like(params[j]) if g is None else g.contiguous()
                torch.distributed.all_reduce(g)
                out.append(g / count)
            reduced[name] = out
        grads = reduced
    return grads


def weighted_sum(grads: Dict[str, List[Optional[torch.Tensor]]], weights: Dict[str, float]
                 ) -> List[Optional[torch.Tensor]]:
    """sum_k weights[k] * grads[k], parameter by parameter (None where no objective reaches)."""
    out: List[Optional[torch.Tensor]] = []
    names = list(grads)
    for j in range(len(grads[names[0]]) if names else 0):
        total = None
        for name in names:
            g = grads[name][j]
            if g is not None:
                total = weights[name] * g if total is None else total + weights[name] * g
        out.append(total)
    return out


def surrogate_loss(params: Sequence[torch.nn.Parameter],
                   grads: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
    """A scalar whose gradient with respect to each param is exactly `grads` (0 where None).

    Every param takes part, so DDP sees a gradient for each of them.
    """
    total = None
    for p, g in zip(params, grads):
        term = (p * (torch.zeros_like(p) if g is None else g.detach())).sum()
        total = term if total is None else total + term
    return total


def flat(grads: Sequence[Optional[torch.Tensor]], params: Sequence[torch.nn.Parameter]
         ) -> torch.Tensor:
    """One vector (zeros where a gradient is None)."""
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params)])


_LAYER = re.compile(r"\.(encoders|decoders)\.(\d+)\.")


def layer_of(name: str) -> str:
    """A parameter's layer: 'encoder.encoders.3.self_attn.linear_q.weight' -> 'encoder.3',
    'textual_encoder.encoder.encoders.0.x' -> 'textual_encoder.0', others -> the first
    two parts ('decoder.output_layer')."""
    # the textual encoder wraps ESPnet's encoder as `.encoder`: not a level of its own
    name = name.replace("textual_encoder.encoder.", "textual_encoder.", 1)
    top = name.split(".", 1)[0]
    m = _LAYER.search(name)
    if m:
        return f"{top}.{m.group(2)}"
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else top
