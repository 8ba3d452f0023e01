"""CTC objectives through ESPnet's CTC heads (the heads are model modules:
ESPnet's Speech2Text uses them for joint CTC/attention decoding).

`asr_ctc`: source-transcript CTC on the acoustic encoder output (the
Conformer CTC/attention ASR task). `st_ctc`: target-side CTC on the textual
encoder output (lets Speech2Text use CTC prefix scores for ST).

Reduction: ESPnet's (each utterance's loss summed over its frames, averaged
over utterances; `length_normalized_loss` does not change it), or with

    asr_ctc: {weight: 0.3, per_token: true}

each utterance's loss divided by its transcript length, then averaged over
utterances: PyTorch's `CTCLoss(reduction="mean")`, the criterion of the
Objective Soups authors' code, whose MoDo weights depend on the losses'
scales (a per-utterance sum is ~20x a per-token CE and gets its weight
driven to 0). The same head and log-probabilities as ESPnet's
(`ctc_type: builtin` only).
"""

from __future__ import annotations

import torch

from espnet_mtl.objectives.base import Objective, ObjectiveError


class _CTC(Objective):
    pass_name: str
    head: str

    def __init__(self, ctx, per_token: bool = False):
        super().__init__(ctx)
        if not isinstance(per_token, bool):
            raise ObjectiveError(f"model_conf.objectives.{self.key}.per_token must be true or "
                                 f"false, got {per_token!r}")
        self.per_token = per_token
        self.needs = tuple(f"{self.pass_name}.{f}"
                           for f in ("hidden", "hidden_lens", "tokens", "token_lens"))

    def __call__(self, out, model):
        p = out.get(self.pass_name)
        if p is None or p.count == 0:
            return None, {}
        ctc = getattr(model, self.head)
        if not self.per_token:
            return ctc(p["hidden"], p["hidden_lens"], p["tokens"], p["token_lens"]), {}
        return self._per_token(ctc, p, model.training), {}

    def _per_token(self, ctc, p, training: bool) -> torch.Tensor:
        if ctc.ctc_type != "builtin":
            raise ObjectiveError(f"model_conf.objectives.{self.key}.per_token needs ctc_conf "
                                 f"ctc_type builtin, not {ctc.ctc_type!r}")
        hidden = torch.nn.functional.dropout(p["hidden"], p=ctc.dropout_rate, training=training)
        log_probs = ctc.ctc_lo(hidden).log_softmax(2).float().transpose(0, 1)  # (T, B, V)
        tokens, token_lens = p["tokens"], p["token_lens"]
        targets = torch.cat([tokens[i, :n] for i, n in enumerate(token_lens.tolist())])
        return torch.nn.functional.ctc_loss(
            log_probs, targets, p["hidden_lens"], token_lens, blank=0, reduction="mean",
            zero_infinity=ctc.ctc_loss.zero_infinity).to(p["hidden"].dtype)


class ASRCTC(_CTC):
    stat, pass_name, head, key = "loss_asr_ctc", "asr", "ctc", "asr_ctc"
    heads = ("ctc",)
    legacy_weight = "asr_ctc_weight"


class STCTC(_CTC):
    stat, pass_name, head, key = "loss_st_ctc", "st", "st_ctc", "st_ctc"
    heads = ("st_ctc",)
    legacy_weight = "st_ctc_weight"
