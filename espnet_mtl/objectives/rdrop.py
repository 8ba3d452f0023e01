"""R-drop (Liang et al. 2021; seed 001's L_RD): symmetric KL between the ST
output distributions of two dropout samples of the same speech rows.

Needs the speech rows twice in one forward ([rows; rows], `speech_copies = 2`);
the model then stacks both copies in every speech pass.
"""

from __future__ import annotations

from espnet_mtl.losses.consistency import rdrop_loss, split_doubled_batch
from espnet_mtl.objectives.base import Objective


class RDrop(Objective):
    stat = "loss_rd"
    speech_copies = 2
    train_only = True
    legacy_weight = "rdrop_weight"
    needs = ("st.logits", "st.mask")

    def __call__(self, out, model):
        p = out.get("st")
        if p is None or p.count == 0:
            return None, {}
        if p.copies < 2:  # eval: no dropout, so no pair of samples to compare
            return p["logits"].new_zeros(()), {}
        first, second = split_doubled_batch(p["logits"], p.count)
        mask, _ = split_doubled_batch(p["mask"], p.count)
        return self.per_example(rdrop_loss(first, second, mask, reduction=self.reduction),
                                p.count), {}
