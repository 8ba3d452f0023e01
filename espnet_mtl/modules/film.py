"""FiLM on every block of a model (task-aware MTL, seed 003; methods.md section 4).

A task embedding te in R^{2d} modulates each block output f(v):

    O = (1 + delta_gamma) * f(v) + beta,   delta_gamma = te[:d], beta = te[d:]

The paper writes O = gamma * f(v) + beta; predicting delta_gamma makes a zero
embedding the identity, so training starts from the unmodulated network
[choice]. One te (per example) for every block, as the paper's one gamma and
one beta.

`FiLMConditioner` attaches the modulation to the blocks of ESPnet modules
with PyTorch forward hooks (no ESPnet source is changed):

    acoustic encoder   its front (`embed`: the convolutional subsampling) and every
                       block of `encoders` (Conformer/Transformer layers)
    textual encoder    after every block (the core's block hooks)
    decoders           their front (`embed`: token embedding + positions) and every
                       block of `decoders`
    MT front           the transcript's embedding + positions (`mt_pos_enc`, or
                       `mt_input_norm` after it)

The embedding in force is per row, (B, 2d), set by the model around each pass
(`with conditioner.condition(te): ...`); outside a pass (decoding) it is
`fallback()`, the embedding of the task being decoded, broadcast over rows and
beams. Incremental decoding (ESPnet's `forward_one_step` with a cache) returns
the cached, already modulated positions plus the new one: only the new
position is modulated.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List, Optional

import torch


def film(x: torch.Tensor, te: torch.Tensor) -> torch.Tensor:
    """(1 + te[..., :d]) * x + te[..., d:] on x (B, T, d) with te (B, 2d) or (2d,)."""
    d = x.size(-1)
    if te.size(-1) != 2 * d:
        raise ValueError(f"FiLM: a block output of size {d} needs a task embedding of size "
                         f"{2 * d}, got {te.size(-1)}: every modulated block must have the "
                         "task embedding's size (set the encoders' and decoder's sizes equal)")
    if te.dim() == 2:
        te = te[:, None, :]  # (B, 1, 2d): one embedding per row, every frame
    return (1.0 + te[..., :d]) * x + te[..., d:]


def _map_first(out, fn):
    """Apply fn to the first tensor of an ESPnet block output: x, (x, mask), ((x, pos), mask)."""
    if isinstance(out, torch.Tensor):
        return fn(out)
    first = out[0]
    if isinstance(first, tuple):  # relative positions ride along: (x, pos_emb)
        first = (fn(first[0]), *first[1:])
    else:
        first = fn(first)
    return (first, *out[1:])


class FiLMConditioner(torch.nn.Module):
    """Applies the task embedding in force to the block outputs it is attached to."""

    def __init__(self, fallback: Callable[[], Optional[torch.Tensor]]):
        super().__init__()
        self._fallback = fallback
        self._te: Optional[torch.Tensor] = None
        self._handles: List[torch.utils.hooks.RemovableHandle] = []
        #: where the modulation is attached (for messages and tests)
        self.sites: List[str] = []

    # -- the embedding in force -------------------------------------------------
    @contextlib.contextmanager
    def condition(self, te: Optional[torch.Tensor]) -> Iterator[None]:
        """Modulate with te (B, 2d) (rows of the forward inside) until the block ends."""
        before, self._te = self._te, te
        try:
            yield
        finally:
            self._te = before

    def current(self) -> Optional[torch.Tensor]:
        return self._te if self._te is not None else self._fallback()

    def apply(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        te = self.current()
        if te is None:
            return x
        if te.dim() == 2 and te.size(0) not in (1, x.size(0)):
            raise RuntimeError(f"FiLM: {te.size(0)} task embeddings for a forward of "
                               f"{x.size(0)} rows")
        te = te.to(x.dtype)
        if last_only:  # cached decoding: earlier positions were modulated when computed
            return torch.cat([x[:, :-1], film(x[:, -1:], te)], dim=1)
        return film(x, te)

    # -- attaching ----------------------------------------------------------------
    def _hook(self, module, name: str, cached: bool = False) -> None:
        def after(mod, args, kwargs, out):
            last_only = cached and kwargs.get("cache", args[4] if len(args) > 4 else None) \
                is not None
            return _map_first(out, lambda x: self.apply(x, last_only))

        self._handles.append(module.register_forward_hook(after, with_kwargs=True))
        self.sites.append(name)

    def attach_encoder(self, encoder: torch.nn.Module, name: str) -> None:
        """An ESPnet encoder's front (`embed`) and blocks (`encoders`)."""
        blocks = getattr(encoder, "encoders", None)
        if blocks is None:
            raise ValueError(f"FiLM: {name} ({type(encoder).__name__}) has no `encoders` "
                             "blocks to modulate; use an ESPnet Conformer/Transformer encoder")
        if getattr(encoder, "embed", None) is not None:
            self._hook(encoder.embed, f"{name}.embed")
        for i, block in enumerate(blocks):
            self._hook(block, f"{name}.encoders.{i}")

    def attach_decoder(self, decoder: torch.nn.Module, name: str) -> None:
        """An ESPnet attention decoder's front (`embed`) and blocks (`decoders`)."""
        blocks = getattr(decoder, "decoders", None)
        if blocks is None:
            raise ValueError(f"FiLM: {name} ({type(decoder).__name__}) has no `decoders` "
                             "blocks to modulate; use ESPnet's transformer decoder")
        self._hook(decoder.embed, f"{name}.embed")
        for i, block in enumerate(blocks):
            self._hook(block, f"{name}.decoders.{i}", cached=True)

    def attach_module(self, module: torch.nn.Module, name: str) -> None:
        """One module whose output is a block output (e.g. the MT front)."""
        self._hook(module, name)

    def attach_textual_encoder(self, textual_encoder, name: str = "textual_encoder") -> None:
        """After every block of our textual encoder (its block hooks)."""
        textual_encoder.add_block_hook(after=lambda index, xs, mask: self.apply(xs))
        self.sites += [f"{name}.{i}" for i in range(textual_encoder.num_blocks)]
