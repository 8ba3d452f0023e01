"""`cpc`: contrastive predictive coding on the acoustic encoder (seed 002, methods.md section 3).

The self-supervised objective of Objective Soups on the shared backbone: a
causal context over the acoustic encoder output predicts the encoder frames
1..K steps ahead, InfoNCE with cosine similarity at temperature 0.1 against
in-batch negatives (`espnet_mtl.losses.cpc`). The context network and the
predictors are this objective's own module (`espnet_mtl.modules.cpc.CPCHead`),
built by the model as `objective_modules["cpc"]` only when `cpc` is on.

    model_conf:
        objectives:
            st_ce: 1.0
            asr_ctc: 0.3
            cpc: {weight: 0.1, steps: 3, num_negatives: 100}

Reads the speech pass only, so every row with speech feeds it (transcript or
translation not needed). Under R-drop each dropout copy is its own batch
(its twin's frames would be near-copies of the positive among the
negatives). A mean over (t, k) pairs under either length_normalized_loss
setting, like `contrastive`: one InfoNCE term per pair. Not train_only: its
validation value says whether the encoder still predicts its future.
"""

from __future__ import annotations

from typing import Optional

from espnet_mtl.losses.cpc import CPC_TEMPERATURE, cpc_loss
from espnet_mtl.modules.cpc import CONTEXTS, CPCHead
from espnet_mtl.objectives.base import Objective, ObjectiveError

#: future steps K [choice]: CPC (van den Oord et al. 2018) predicts 12 steps of
#: 10 ms = 120 ms; at the 40 ms frames of a Conformer with 4x subsampling that is 3
CPC_STEPS = 3
#: negatives drawn per batch [choice]: wav2vec 2.0's 100 distractors; all frames when fewer
CPC_NUM_NEGATIVES = 100


class CPC(Objective):
    stat = "loss_cpc"
    needs = ("speech.hidden", "speech.lens")
    key = "cpc"  # its name in the table: the model's objective_modules key

    def __init__(self, ctx, steps: int = CPC_STEPS, temperature: float = CPC_TEMPERATURE,
                 num_negatives: Optional[int] = CPC_NUM_NEGATIVES, context: str = "gru",
                 context_size: Optional[int] = None, context_kernel: int = 3,
                 detach_targets: bool = False):
        super().__init__(ctx)

        def bad(option, value, want):
            return ObjectiveError(f"model_conf.objectives.cpc.{option} must be {want}, "
                                  f"got {value!r}")

        def integer(option, value, least, allow_none=False):
            if value is None and allow_none:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise bad(option, value, f"an integer >= {least}"
                          + (" or null" if allow_none else ""))
            return value

        self.steps = integer("steps", steps, 1)
        try:
            self.temperature = float(temperature)
        except (TypeError, ValueError):
            raise bad("temperature", temperature, "> 0") from None
        if not self.temperature > 0:
            raise bad("temperature", temperature, "> 0")
        self.num_negatives = integer("num_negatives", num_negatives, 1, allow_none=True)
        if context not in CONTEXTS:
            raise bad("context", context, f"one of {', '.join(CONTEXTS)}")
        self.context = context
        self.context_size = integer("context_size", context_size, 1, allow_none=True)
        self.context_kernel = integer("context_kernel", context_kernel, 1)
        # Targets are NOT detached by default [choice]: CPC is the self-supervised term
        # on the shared backbone, and as in CPC the encoder learns through both the
        # context and the targets; the in-batch negatives keep the targets from
        # collapsing. `detach_targets: true` trains the encoder through the context only.
        self.detach_targets = bool(detach_targets)

    def build_module(self, encoder_output_size: int) -> CPCHead:
        return CPCHead(encoder_output_size, self.steps, self.context, self.context_size,
                       self.context_kernel)

    def __call__(self, out, model):
        sp = out.get("speech")
        if sp is None or sp.count == 0 or int(sp["lens"].max()) < 2:
            return None, {}  # no row with two frames: nothing to predict
        hidden, lens = sp["hidden"], sp["lens"]
        predictions = model.objective_modules[self.key](hidden, lens)
        targets = hidden.detach() if self.detach_targets else hidden
        n = sp.count
        total = 0.0
        for copy in range(sp.copies):  # [rows; rows] under R-drop: each copy on its own
            rows = slice(copy * n, (copy + 1) * n)
            total = total + cpc_loss(targets[rows], predictions[rows], lens[rows],
                                     self.temperature, self.num_negatives)
        # the copies have the same lengths, hence the same pair count: mean of means
        return total / sp.copies, {}
