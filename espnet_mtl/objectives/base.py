"""What an objective is, and what it reads: the outputs of a model's passes.

A model computes *passes* (the speech pass through the acoustic encoder, the
ST pass through textual encoder and decoder, the MT pass from the transcript,
...) over the rows of a batch that carry the pass's fields. Each pass is a
`PassOutput`: named tensors plus which batch rows it covers and how many
dropout copies of them it stacks (R-drop runs the speech rows twice in one
forward, as [rows; rows]).

An objective is one named, weighted loss term. It declares the pass fields it
reads (`needs`, e.g. "st.logits"), the heads of the model it uses (`heads`,
built only when an objective asks for them) and how many speech copies it
needs; it computes a scalar from the outputs with the functions of
`espnet_mtl.losses` (or ESPnet's own loss modules). Weighting is not its
business: the model reports the configured weighted sum, and the training
strategy decides the update (`espnet_mtl.training.strategies`).

Most objectives own no parameters (the heads they use are the model's). One
that does (the CPC context network and predictors) defines `build_module`:
the model builds it, only while the objective is on, into
`model.objective_modules[name]` (a ModuleDict keyed by the objective's name
in the table) and the objective reads it from there in `__call__`. A model
without such objectives has an empty ModuleDict: no new state_dict keys, so
its checkpoints are what they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Dict, Optional, Tuple

import torch


@dataclass
class PassOutput:
    """One pass over the batch rows that carry its fields."""

    covers: torch.Tensor  # (B,) bool: the batch rows this pass covers, in order
    copies: int = 1  # dropout copies stacked along dim 0: [rows; rows] when 2
    fields: Dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Examples covered (per copy)."""
        return int(self.covers.sum())

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.fields[name]


@dataclass(frozen=True)
class ObjectiveContext:
    """Model-wide settings every objective may need."""

    ignore_id: int
    vocab_size: int
    src_vocab_size: Optional[int]
    lsm_weight: float
    length_normalized: bool  # ESPnet's length_normalized_loss: divide by tokens, not examples


class ObjectiveError(ValueError):
    """A bad objective configuration (unknown name or option, missing field)."""


class Objective:
    """A named loss term over pass outputs; subclasses set the class attributes."""

    #: stats key the trainer logs (e.g. "loss_st")
    stat: ClassVar[str]
    #: pass fields read, "pass.field"
    needs: Tuple[str, ...] = ()
    #: model heads used (the builder builds only these)
    heads: ClassVar[Tuple[str, ...]] = ()
    #: extra stats it reports (e.g. accuracy), None when not computed
    metrics: ClassVar[Tuple[str, ...]] = ()
    #: dropout copies of the speech rows it needs (R-drop: 2)
    speech_copies: ClassVar[int] = 1
    #: a training-only term: skipped in validation (where it is pure overhead)
    train_only: ClassVar[bool] = False
    #: the model_conf keys of the seed-001 configs: its weight, and option name -> key
    legacy_weight: ClassVar[Optional[str]] = None
    legacy_options: ClassVar[Dict[str, str]] = {}

    def __init__(self, ctx: ObjectiveContext):
        self.ctx = ctx

    @property
    def passes(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(n.split(".", 1)[0] for n in self.needs))

    @property
    def reduction(self) -> str:
        """The `espnet_mtl.losses` reduction that follows ESPnet's length_normalized_loss."""
        return "mean_tokens" if self.ctx.length_normalized else "sum"

    def per_example(self, value: torch.Tensor, examples: int) -> torch.Tensor:
        """A loss reduced with `self.reduction` -> per example (a token mean stays)."""
        return value if self.ctx.length_normalized else value / examples

    def build_module(self, encoder_output_size: int) -> Optional[torch.nn.Module]:
        """This objective's own parameters over the acoustic encoder output, if any."""
        return None

    def __call__(self, out: Dict[str, PassOutput], model) -> Tuple[Optional[torch.Tensor], dict]:
        """(loss, metrics); loss None when no row of this batch feeds it."""
        raise NotImplementedError
