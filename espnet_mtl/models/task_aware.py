"""Task-aware multi-task ST (`--model task_aware`; seed 003, methods.md section 4).

`mtl_st` whose every block is FiLM-modulated by a task embedding
(`espnet_mtl.modules.film`) from a Task Characteristics Network
(`espnet_mtl.modules.task_characteristics`): one model for ST, ASR and MT,
trained together on mixed batches, decoded for any of the three tasks from
one checkpoint.

    model: task_aware
    model_conf:
        tcn: explicit            # explicit (paper eq. 1) or implicit (eqs. 2-5)
        tcn_conf: {}             # the implicit TCN's sizes (hidden, heads, ffn, blocks)
        decode_task: st          # the task decoding uses (the MT/ASR path entry
                                 # points set mt / asr)
        objectives: {st_ce: 1.0, asr_ctc: 0.3, mt_ce: 0.3}   # any of mtl_st's

Which task each forward is (the paper: every example belongs to one task):

    speech pass   rows with a translation are ST examples, speech rows without one
                  (ASR-only data) ASR examples [choice: the transcript of an ST triple
                  is ESPnet's auxiliary CTC on the ST task's encoder, not a second
                  example]; CPC and the ASR CTC read these states
    st pass       ST (textual encoder + decoder)
    asr_att pass  ASR (the ASR attention decoder)
    mt pass       MT (transcript front, textual encoder, decoder)

FiLM sits on every block output of the acoustic encoder (its subsampling
front included), the textual encoder, the decoder(s) and the MT front, so
they must all have the task embedding's size d (the acoustic encoder's
output size). Composes by config with the objectives (R-drop's two dropout
copies carry their rows' embeddings) and the training strategies.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from espnet_mtl.models.mtl_st import MTLSTModel, _rows, _take
from espnet_mtl.modules.film import FiLMConditioner
from espnet_mtl.modules.task_characteristics import (
    TASKS,
    ExplicitTCN,
    ImplicitTCN,
    same_task_partners,
    task_index,
)

TCN_CHOICES = ("explicit", "implicit")
#: task -> the batch fields its examples carry: (source, target) for the implicit TCN
TASK_FIELDS = {"st": ("speech", "text"), "asr": ("speech", "src_text"),
               "mt": ("src_text", "text")}
#: token field -> the vocabulary it is written in
VOCAB = {"text": "tgt", "src_text": "src"}


class TaskAwareSTModel(MTLSTModel):
    """mtl_st + a TCN + FiLM on every block."""

    def __init__(self, *args, tcn: str = "explicit", tcn_conf: Optional[dict] = None,
                 decode_task: str = "st", **kwargs):
        super().__init__(*args, **kwargs)
        if tcn not in TCN_CHOICES:
            raise ValueError(f"model_conf.tcn: unknown TCN {tcn!r}; choices: "
                             f"{', '.join(TCN_CHOICES)}")
        task_index(decode_task)  # a clear error for an unknown task
        size = self.encoder.output_size()
        sizes = {"encoder (acoustic)": size,
                 "textual_encoder": self.textual_encoder.output_size(),
                 "decoder": self.decoder.output_layer.in_features
                 if getattr(self.decoder, "output_layer", None) is not None else size}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"model task_aware: FiLM modulates every block with one task "
                             f"embedding of size 2d, so the blocks must have one size d; got "
                             f"{sizes} (set encoder_conf.output_size, "
                             f"textual_encoder_conf.output_size and the decoder alike)")
        self.tcn_name = tcn
        try:
            if tcn == "explicit":
                self.tcn = ExplicitTCN(size, **(tcn_conf or {}))
            else:
                if self.src_vocab_size is None:
                    raise ValueError("the implicit TCN reads transcripts: pass "
                                     "--src_token_list")
                self.tcn = ImplicitTCN(size, self._feat_size(), self.src_vocab_size,
                                       self.vocab_size, **(tcn_conf or {}))
        except TypeError as e:
            raise ValueError(f"model_conf.tcn_conf: {e}") from None
        self.decode_task = decode_task
        self._te_cache: Optional[Dict[str, torch.Tensor]] = None
        self.film = FiLMConditioner(fallback=self._decode_embedding)
        self.film.attach_encoder(self.encoder, "encoder")
        self.film.attach_textual_encoder(self.textual_encoder)
        self.film.attach_decoder(self.decoder, "decoder")
        if self.extra_asr_decoder is not None:
            self.film.attach_decoder(self.extra_asr_decoder, "extra_asr_decoder")
        if self.mt_embed is not None:  # the text front: embedding + positions (+ norm)
            front = self.mt_input_norm if self.mt_input_norm is not None else self.mt_pos_enc
            self.film.attach_module(front, "mt_front")

    def _feat_size(self) -> int:
        if self.preencoder is not None:
            raise ValueError("model_conf.tcn implicit: a preencoder is not supported")
        if self.frontend is None:
            raise ValueError("model_conf.tcn implicit reads filterbank features: the "
                             "model needs a frontend (not input_size)")
        return self.frontend.output_size()

    @classmethod
    def model_conf_defaults(cls) -> dict:
        return {**MTLSTModel.model_conf_defaults(),  # (our __init__ passes **kwargs on)
                "tcn": "explicit", "tcn_conf": None, "decode_task": "st"}

    # -- task embeddings ------------------------------------------------------------
    def _decode_embedding(self) -> torch.Tensor:
        return self.tcn.inference_embedding(self.decode_task)

    def _device(self):
        return next(self.tcn.parameters()).device

    def _sequence(self, b: dict, field: str, rows: torch.Tensor):
        """The implicit TCN's embedded sequence of a batch field for `rows`."""
        if field == "speech":
            speech, lens = b["speech"][rows], b["speech_lengths"][rows]
            with torch.autocast(device_type=speech.device.type, enabled=False):
                feats, feat_lens = self._extract_feats(speech, lens)
                if self.normalize is not None:
                    feats, feat_lens = self.normalize(feats, feat_lens)
            return self.tcn.embed_speech(feats, feat_lens)
        tokens, lens = b[field][rows], b[f"{field}_lengths"][rows]
        return self.tcn.embed_tokens(tokens[:, : int(lens.max())], lens, VOCAB[field])

    def _examples(self, b: dict, task: str) -> torch.Tensor:
        source, target = TASK_FIELDS[task]
        return b["has"][source] & b["has"][target]

    def task_embeddings(self, b: dict, task: str, own: bool = False) -> torch.Tensor:
        """te (B, 2d) of every row of the batch as an example of `task` (rows that are not
        one: zeros). Explicit: the task's embedding. Implicit: each example's embedding is
        computed from another example of the task in the batch (`own`: from itself, for
        analysis). Once per forward."""
        if self._te_cache is not None and task in self._te_cache:
            return self._te_cache[task]
        n = b["speech"].size(0)
        if self.tcn_name == "explicit":
            ids = torch.full((n,), task_index(task), dtype=torch.long, device=self._device())
            te = self.tcn(ids)
        else:
            examples = self._examples(b, task)
            te = b["speech"].new_zeros(n, self.tcn.stored.size(1))
            rows = examples.nonzero(as_tuple=True)[0]
            if rows.numel():
                partners = rows if own else rows[same_task_partners(torch.zeros_like(rows))]
                source, target = TASK_FIELDS[task]
                src, src_valid = self._sequence(b, source, partners)
                tgt, tgt_valid = self._sequence(b, target, partners)
                row_te = self.tcn(src, src_valid, tgt, tgt_valid)
                te = te.index_put((rows,), row_te.to(te.dtype))
                if self.training and not own:
                    self.tcn.store(task, row_te)
        if self._te_cache is not None:
            self._te_cache[task] = te
        return te

    @torch.no_grad()
    def example_embeddings(self, speech, speech_lengths, text, text_lengths, src_text,
                           src_text_lengths) -> dict:
        """Task -> te (n, 2d) of each example of a batch that the task can use, computed
        from the example itself (the embedding plot)."""
        b = self.make_batch(speech, speech_lengths, text, text_lengths, src_text,
                        src_text_lengths)
        out = {}
        for task in TASKS:
            rows = self._examples(b, task)
            if bool(rows.any()):
                out[task] = self.task_embeddings(b, task, own=True)[rows]
        return out

    def forward(self, *args, **kwargs):
        self._te_cache = {}  # one embedding per example and task for all passes
        try:
            return super().forward(*args, **kwargs)
        finally:
            self._te_cache = None

    def _condition(self, b: dict, task: str, covers: torch.Tensor, copies: int = 1):
        te = _take(self.task_embeddings(b, task), _rows(covers))
        return self.film.condition(torch.cat([te] * copies) if copies > 1 else te)

    # -- passes: each under its task ---------------------------------------------------
    def _speech_pass(self, b, out, covers):
        st = self.task_embeddings(b, "st")
        asr = self.task_embeddings(b, "asr")
        te = torch.where(b["has"]["text"][:, None], st, asr)
        te = _take(te, _rows(covers))
        if self.training and self.speech_copies == 2:  # R-drop: [rows; rows]
            te = torch.cat([te, te])
        with self.film.condition(te):
            return super()._speech_pass(b, out, covers)

    def _st_pass(self, b, out, covers):
        with self._condition(b, "st", covers, out["speech"].copies):
            return super()._st_pass(b, out, covers)

    def _asr_att_pass(self, b, out, covers):
        asr = out["asr"]
        with self._condition(b, "asr", asr.covers, asr.copies):
            return super()._asr_att_pass(b, out, covers)

    def _mt_pass(self, b, out, covers):
        with self._condition(b, "mt", covers):
            return super()._mt_pass(b, out, covers)

    PASS_ORDER = (("speech", _speech_pass), ("st", _st_pass),
                  ("asr", MTLSTModel._asr_pass), ("asr_att", _asr_att_pass),
                  ("mt", _mt_pass))


__all__ = ["TaskAwareSTModel", "TASKS"]
