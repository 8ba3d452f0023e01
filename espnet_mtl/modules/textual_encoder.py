"""The textual encoder: a stack of Transformer blocks with a hook around each block.

Shared by the speech path (after the adapter) and the MT path (after the
transcript embedding). Its parameters are ESPnet's TransformerEncoder with
`input_layer=None` (inputs already have the model size), so checkpoints keep
ESPnet's parameter names; the layer loop is ours, so methods can act between
blocks: Local-to-Global convolutions before block i (seed 000), FiLM after
every block (seed 003). A hook is `fn(index, xs, mask) -> xs`, with `mask`
(B, 1, T) True on valid frames; hooks run in the order they were added.
`num_blocks: 0` is the identity (no final LayerNorm either).
"""

from __future__ import annotations

from typing import Callable, List, Tuple

import torch

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

from espnet_mtl import registry

#: Defaults of `textual_encoder_conf`; a user's dict is merged over these.
#: `output_size: null` = the acoustic encoder's output size.
TEXTUAL_ENCODER_DEFAULTS = dict(
    output_size=None,
    num_blocks=6,
    attention_heads=4,
    linear_units=2048,
    dropout_rate=0.1,
    positional_dropout_rate=0.1,
    attention_dropout_rate=0.0,
    normalize_before=True,
)

BlockHook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def merge_textual_conf(conf: dict | None) -> dict:
    merged = dict(TEXTUAL_ENCODER_DEFAULTS)
    if conf:
        merged.update(conf)
    return merged


class HookedTransformerEncoder(TransformerEncoder):
    """ESPnet's TransformerEncoder blocks, run one by one with hooks around each."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_block: List[BlockHook] = []
        self.after_block: List[BlockHook] = []

    def forward(self, xs: torch.Tensor, lens: torch.Tensor, *unused, **unused_kw):
        mask = (~make_pad_mask(lens)[:, None, :]).to(xs.device)
        if self.embed is not None:  # only when input and output sizes differ
            xs = self.embed(xs)
        for index, block in enumerate(self.encoders):
            for hook in self.before_block:
                xs = hook(index, xs, mask)
            xs, mask = block(xs, mask)
            for hook in self.after_block:
                xs = hook(index, xs, mask)
        if self.normalize_before:
            xs = self.after_norm(xs)
        return xs, mask.squeeze(1).sum(1), None


class TextualEncoder(torch.nn.Module):
    """(B, T, size) -> (B, T, size): the shared Transformer blocks."""

    def __init__(self, size: int, conf: dict):
        super().__init__()
        conf = dict(conf)
        conf.pop("output_size", None)
        self._size = size
        if int(conf.get("num_blocks", 0)) > 0:
            self.encoder = HookedTransformerEncoder(
                input_size=size, output_size=size, input_layer=None, **conf)
        else:
            self.encoder = None

    def output_size(self) -> int:
        return self._size

    @property
    def num_blocks(self) -> int:
        return 0 if self.encoder is None else len(self.encoder.encoders)

    def add_block_hook(self, before: BlockHook | None = None,
                       after: BlockHook | None = None) -> None:
        """Run `before(i, xs, mask)` / `after(i, xs, mask)` around every block i."""
        if self.encoder is None:
            return
        if before is not None:
            self.encoder.before_block.append(before)
        if after is not None:
            self.encoder.after_block.append(after)

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.encoder is None:
            return xs, lens
        out, out_lens, _ = self.encoder(xs, lens)
        return out, out_lens


def build_block_hook(name: str, conf: dict | None, encoder: TextualEncoder) -> torch.nn.Module:
    """`model_conf.block_hooks.<name>`: a module that adds its hooks to `encoder`.

    The class (table `espnet_mtl.registry.BLOCK_HOOKS`) is built with
    `size`, `num_blocks` and its conf, then `attach(encoder)` adds its hooks.
    """
    cls = registry.get("block_hook", name, key=f"model_conf.block_hooks.{name}")
    if encoder.num_blocks == 0:
        raise ValueError(f"model_conf.block_hooks.{name}: the textual encoder has no blocks "
                         "(textual_encoder_conf.num_blocks: 0); give it blocks or drop the hook")
    try:
        hook = cls(size=encoder.output_size(), num_blocks=encoder.num_blocks, **(conf or {}))
    except TypeError as e:
        raise ValueError(f"model_conf.block_hooks.{name}: {e}") from None
    hook.attach(encoder)
    return hook
