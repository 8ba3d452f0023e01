"""Cross-modal consistency (seed 001's L_CR, CRESS / SimCR): the ST pass should
predict like the MT pass on the same target prefix.

Computed on the rows with speech, transcript and translation, against every
speech copy (under R-drop the MT distribution is compared with both ST
copies). `kind`: `softmax_kl` (KL of output distributions, `direction`),
`logits_mse`, or `enc_mse` (mean-pooled textual-encoder states).
`detach_mt`: the MT side is a fixed teacher (no gradient into the MT path).
"""

from __future__ import annotations

import torch

from espnet.nets.pytorch_backend.nets_utils import make_pad_mask

from espnet_mtl.losses.consistency import CONSISTENCY_KINDS, DIRECTIONS, consistency_loss, double_batch
from espnet_mtl.objectives.base import Objective, ObjectiveError


def _valid(lens: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    return ~make_pad_mask(lens, maxlen=xs.size(1)).to(xs.device)


class Consistency(Objective):
    stat = "loss_cr"
    train_only = True
    legacy_weight = "consistency_weight"
    legacy_options = {"kind": "consistency_type", "direction": "consistency_direction",
                      "detach_mt": "consistency_detach_mt",
                      "temperature": "consistency_temperature"}

    def __init__(self, ctx, kind: str = "softmax_kl", direction: str = "mt_to_st",
                 detach_mt: bool = False, temperature: float = 1.0):
        super().__init__(ctx)
        if kind not in CONSISTENCY_KINDS:
            raise ObjectiveError(
                f"consistency_type must be one of {CONSISTENCY_KINDS}, got {kind!r}")
        if direction not in DIRECTIONS:
            raise ObjectiveError(
                f"consistency_direction must be one of {DIRECTIONS}, got {direction!r}")
        self.kind, self.direction = kind, direction
        self.detach_mt, self.temperature = bool(detach_mt), float(temperature)
        fields = ("hidden", "hidden_lens") if kind == "enc_mse" else ("logits", "mask")
        self.needs = tuple(f"{p}.{f}" for p in ("st", "mt") for f in fields) + ("st.token_lens",)

    def __call__(self, out, model):
        st, mt = out.get("st"), out.get("mt")
        if st is None or mt is None:
            return None, {}
        both = st.covers & mt.covers
        n = int(both.sum())
        if n == 0:
            return None, {}
        copies = st.copies
        if n == st.count == mt.count:  # the same rows in the same order
            st_sel = mt_sel = None
        else:  # positions of the shared rows within each pass
            rows = both.nonzero(as_tuple=True)[0]
            st_sel = (st.covers.long().cumsum(0) - 1)[rows]
            mt_sel = (mt.covers.long().cumsum(0) - 1)[rows]
            if copies == 2:
                st_sel = torch.cat([st_sel, st_sel + st.count])
                mt_sel = torch.cat([mt_sel, mt_sel])
        if self.kind == "enc_mse":
            loss = self._hidden(st, mt, st_sel, mt_sel, copies)
        else:
            loss = self._logits(st, mt, st_sel, mt_sel, copies)
        return self.per_example(loss, n * copies), {}

    def _hidden(self, st, mt, st_sel, mt_sel, copies):
        st_h, st_lens = st["hidden"], st["hidden_lens"]
        if st_sel is not None:
            st_h, st_lens = st_h[st_sel], st_lens[st_sel]
        mt_h, mt_lens = mt["hidden"], mt["hidden_lens"]
        if mt_sel is None:
            if copies == 2:
                mt_h, mt_lens = double_batch(mt_h), double_batch(mt_lens)
        else:
            mt_h, mt_lens = mt_h[mt_sel], mt_lens[mt_sel]
        return consistency_loss(
            None, None, None, kind="enc_mse", detach_mt=self.detach_mt,
            st_hidden=st_h, mt_hidden=mt_h, hidden_mask=_valid(st_lens, st_h),
            mt_hidden_mask=_valid(mt_lens, mt_h), pool="mean", reduction=self.reduction)

    def _logits(self, st, mt, st_sel, mt_sel, copies):
        if st_sel is None:
            st_l, mt_l, mask = st["logits"], mt["logits"], st["mask"]
            if copies == 2:
                mt_l = double_batch(mt_l)
        else:
            length = int(st["token_lens"][st_sel].max()) + 1
            st_l = st["logits"][st_sel, :length]
            mt_l = mt["logits"][mt_sel, :length]
            mask = st["mask"][st_sel, :length]
        return consistency_loss(
            st_l, mt_l, mask, kind=self.kind, direction=self.direction,
            detach_mt=self.detach_mt, temperature=self.temperature, reduction=self.reduction)
