"""CTC objectives through ESPnet's CTC heads (the heads are model modules:
ESPnet's Speech2Text uses them for joint CTC/attention decoding).

`asr_ctc`: source-transcript CTC on the acoustic encoder output (the
Conformer CTC/attention ASR task). `st_ctc`: target-side CTC on the textual
encoder output (lets Speech2Text use CTC prefix scores for ST).
"""

from __future__ import annotations

from espnet_mtl.objectives.base import Objective


class _CTC(Objective):
    pass_name: str
    head: str

    def __init__(self, ctx):
        super().__init__(ctx)
        self.needs = tuple(f"{self.pass_name}.{f}"
                           for f in ("hidden", "hidden_lens", "tokens", "token_lens"))

    def __call__(self, out, model):
        p = out.get(self.pass_name)
        if p is None or p.count == 0:
            return None, {}
        ctc = getattr(model, self.head)
        return ctc(p["hidden"], p["hidden_lens"], p["tokens"], p["token_lens"]), {}


class ASRCTC(_CTC):
    stat, pass_name, head = "loss_asr_ctc", "asr", "ctc"
    heads = ("ctc",)
    legacy_weight = "asr_ctc_weight"


class STCTC(_CTC):
    stat, pass_name, head = "loss_st_ctc", "st", "st_ctc"
    heads = ("st_ctc",)
    legacy_weight = "st_ctc_weight"
