"""`contrastive`: IMTL's InfoNCE between speech and text (seed 000, methods.md section 2).

Each example with speech, transcript and translation gives a speech vector
(the ST pass's textual-encoder output, mean-pooled over its frames) and a
text vector (the MT pass's textual-encoder output for its transcript,
mean-pooled); InfoNCE with cosine similarity at temperature 0.1 pulls the
pair together against the batch's other texts. The text side is detached
[code]: the speech representation moves toward the text one, not the reverse.
Under R-drop both speech copies are compared with the same texts.

A mean over examples under either length_normalized_loss setting: InfoNCE is
one term per example, not per token.
"""

from __future__ import annotations

import torch

from espnet_mtl.losses.contrastive import IMTL_TEMPERATURE, info_nce, masked_mean
from espnet_mtl.objectives.base import Objective, ObjectiveError


class Contrastive(Objective):
    stat = "loss_contrastive"
    needs = ("st.hidden", "st.hidden_lens", "mt.hidden", "mt.hidden_lens")
    train_only = True

    def __init__(self, ctx, temperature: float = IMTL_TEMPERATURE, detach_text: bool = True):
        super().__init__(ctx)
        if float(temperature) <= 0:
            raise ObjectiveError(f"model_conf.objectives.contrastive.temperature must be > 0, "
                                 f"got {temperature}")
        self.temperature, self.detach_text = float(temperature), bool(detach_text)

    def __call__(self, out, model):
        st, mt = out.get("st"), out.get("mt")
        if st is None or mt is None:
            return None, {}
        both = st.covers & mt.covers
        rows = both.nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            return None, {}
        # positions of the shared rows within each pass (a pass covers a subset, in order)
        st_sel = (st.covers.long().cumsum(0) - 1)[rows]
        mt_sel = (mt.covers.long().cumsum(0) - 1)[rows]
        speech = masked_mean(st["hidden"], st["hidden_lens"])
        text = masked_mean(mt["hidden"], mt["hidden_lens"])[mt_sel]
        if self.detach_text:
            text = text.detach()
        total = speech.new_zeros(())
        for copy in range(st.copies):  # [rows; rows] under R-drop
            total = total + info_nce(speech[st_sel + copy * st.count], text,
                                     self.temperature, reduction="sum")
        return total / (rows.numel() * st.copies), {}
