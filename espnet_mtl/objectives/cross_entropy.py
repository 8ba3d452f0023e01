"""Label-smoothed cross-entropy of the attention decoders: ST, MT and ASR.

ESPnet's LabelSmoothingLoss (sum over tokens / batch rows, or / tokens with
length_normalized_loss) on teacher-forced logits, with token accuracy as a
metric. Under R-drop the ST pass holds both dropout copies and the ST loss is
the SUM of the two copies' CE, as in the R-drop paper and fairseq's R-drop
criterion (L = CE_1 + CE_2 + alpha * KL), so `rdrop` weights mean what the
literature's alpha means. (Training logs then show loss_st of both copies;
validation runs one copy.)
"""

from __future__ import annotations

from espnet.nets.pytorch_backend.nets_utils import th_accuracy
from espnet.nets.pytorch_backend.transformer.label_smoothing_loss import LabelSmoothingLoss

from espnet_mtl.objectives.base import Objective


class _CrossEntropy(Objective):
    pass_name: str
    accuracy: str
    #: add the CE of every dropout copy (R-drop's convention) rather than average them
    sum_copies = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.needs = (f"{self.pass_name}.logits", f"{self.pass_name}.target")
        size = ctx.src_vocab_size if self.pass_name == "asr_att" else ctx.vocab_size
        self.criterion = LabelSmoothingLoss(size=size, padding_idx=ctx.ignore_id,
                                            smoothing=ctx.lsm_weight,
                                            normalize_length=ctx.length_normalized)

    def __call__(self, out, model):
        p = out.get(self.pass_name)
        if p is None or p.count == 0:
            return None, {}
        logits, target = p["logits"], p["target"]
        acc = th_accuracy(logits.reshape(-1, logits.size(-1)), target,
                          ignore_label=self.ctx.ignore_id)
        loss = self.criterion(logits, target)  # the mean over the copies it holds
        return (loss * p.copies if self.sum_copies else loss), {self.accuracy: acc}


class STCrossEntropy(_CrossEntropy):
    """CE of the translation given speech (the main task)."""

    stat, metrics, pass_name, accuracy = "loss_st", ("acc",), "st", "acc"
    sum_copies = True


class MTCrossEntropy(_CrossEntropy):
    """CE of the translation given the transcript (MT path, shared textual encoder/decoder)."""

    stat, metrics, pass_name, accuracy = "loss_mt", ("acc_mt",), "mt", "acc_mt"
    train_only = True
    legacy_weight = "mt_weight"


class ASRCrossEntropy(_CrossEntropy):
    """CE of the transcript from the ASR attention decoder on the acoustic encoder."""

    stat, metrics, pass_name, accuracy = "loss_asr_att", ("acc_asr",), "asr_att", "acc_asr"
    heads = ("extra_asr_decoder",)
    legacy_weight = "asr_att_weight"
