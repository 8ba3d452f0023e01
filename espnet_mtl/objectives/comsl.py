"""ComSL's objectives (seed 004; methods.md section 5), as in the authors' code [code].

    guided_st   ST = (1 - alpha) CE + alpha H(stopgrad(P_MT), P_ST), alpha 0.8: decoder
                distribution matching against the MT pass on the same rows
    teacher_mt  MT = (1 - alpha) CE + alpha H(P_teacher, P_MT), alpha 0.2: the frozen teacher
    cml         cross-modality learning over one pass on [masked transcript; speech]:
                (speech->translation, guided like ST + speech->transcript CE + masked-token
                CE) / 3 + erm_weight * ERM, erm_weight 0.2

ASR is the generic `asr_att` objective (CE of the transcript). Losses are token sums
per utterance (the authors' code trains one utterance per GPU, so its token sums are
per utterance; with ESPnet's `length_normalized_loss: true` they become token means).
`guided_st` reads only st and mt logits, so it also runs on `mtl_st`.
"""

from __future__ import annotations

from espnet.nets.pytorch_backend.nets_utils import th_accuracy

from espnet_mtl.losses.guided import guided_cross_entropy
from espnet_mtl.objectives.base import Objective, ObjectiveError


def _check_alpha(name: str, alpha) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ObjectiveError(f"model_conf.objectives.{name}.alpha must be in [0, 1], got {alpha}")
    return alpha


def _shared_rows(a, b):
    """Positions within passes a and b of the rows both cover (None: the same rows)."""
    both = a.covers & b.covers
    if int(both.sum()) == a.count == b.count:
        return None, None, a.count
    rows = both.nonzero(as_tuple=True)[0]
    return ((a.covers.long().cumsum(0) - 1)[rows], (b.covers.long().cumsum(0) - 1)[rows],
            int(both.sum()))


class GuidedST(Objective):
    stat, metrics = "loss_st_guided", ("acc",)
    needs = ("st.logits", "st.target", "mt.logits")

    def __init__(self, ctx, alpha: float = 0.8):
        super().__init__(ctx)
        self.alpha = _check_alpha("guided_st", alpha)

    def __call__(self, out, model):
        st, mt = out.get("st"), out.get("mt")
        if st is None or st.count == 0:
            return None, {}
        if st.copies != 1:
            raise ObjectiveError("guided_st runs on one copy of the speech rows: it cannot be "
                                 "combined with rdrop")
        if mt is None:  # validation skips the MT pass: plain CE there
            logits, target, guide = st["logits"], st["target"], st["logits"]
            alpha, n = 0.0, st.count
        else:
            st_sel, mt_sel, n = _shared_rows(st, mt)
            if n == 0:
                return None, {}
            logits, target, guide = st["logits"], st["target"], mt["logits"]
            if st_sel is not None:
                length = int((target[st_sel] != self.ctx.ignore_id).sum(1).max())
                logits, target = logits[st_sel, :length], target[st_sel, :length]
                guide = guide[mt_sel, :length]
            alpha = self.alpha
        loss = guided_cross_entropy(logits, target, guide, alpha, self.ctx.ignore_id,
                                    self.reduction)
        acc = th_accuracy(st["logits"].reshape(-1, st["logits"].size(-1)), st["target"],
                          ignore_label=self.ctx.ignore_id)
        return self.per_example(loss, n), {"acc": acc}


class TeacherMT(Objective):
    stat = "loss_mt_teacher"
    needs = ("mt.logits", "mt.target", "teacher.logits")
    train_only = True

    def __init__(self, ctx, alpha: float = 0.2):
        super().__init__(ctx)
        self.alpha = _check_alpha("teacher_mt", alpha)

    def __call__(self, out, model):
        mt, teacher = out.get("mt"), out.get("teacher")
        if mt is None or teacher is None or mt.count == 0:
            return None, {}
        loss = guided_cross_entropy(mt["logits"], mt["target"], teacher["logits"], self.alpha,
                                    self.ctx.ignore_id, self.reduction)
        return self.per_example(loss, mt.count), {}


class CrossModalityLearning(Objective):
    stat = "loss_cml"
    metrics = ("loss_erm",)
    needs = ("cml.st_logits", "cml.st_target", "cml.asr_logits", "cml.asr_target",
             "cml.mlm_logits", "cml.mlm_target", "cml.erm", "mt.logits")
    train_only = True

    def __init__(self, ctx, alpha: float = 0.8, erm_weight: float = 0.2):
        super().__init__(ctx)
        self.alpha = _check_alpha("cml", alpha)
        self.erm_weight = float(erm_weight)
        if self.erm_weight < 0:
            raise ObjectiveError(f"model_conf.objectives.cml.erm_weight must be >= 0, got "
                                 f"{erm_weight}")

    def __call__(self, out, model):
        cml, mt = out.get("cml"), out.get("mt")
        if cml is None or mt is None or cml.count == 0:
            return None, {}
        cml_sel, mt_sel, n = _shared_rows(cml, mt)
        guide = mt["logits"] if mt_sel is None else mt["logits"][mt_sel]
        guide = guide[:, : cml["st_logits"].size(1)]  # mt may cover longer rows too
        ignore, reduction = self.ctx.ignore_id, self.reduction
        st = guided_cross_entropy(cml["st_logits"], cml["st_target"], guide, self.alpha,
                                  ignore, reduction)
        asr = guided_cross_entropy(cml["asr_logits"], cml["asr_target"], cml["asr_logits"], 0.0,
                                   ignore, reduction)
        mlm = guided_cross_entropy(cml["mlm_logits"], cml["mlm_target"], cml["mlm_logits"], 0.0,
                                   ignore, reduction)
        erm = cml["erm"]  # a sum over the speech frames, as the authors'
        loss = (st + asr + mlm) / 3.0 + self.erm_weight * erm
        return self.per_example(loss, n), {"loss_erm": self.per_example(erm.detach(), n)}
