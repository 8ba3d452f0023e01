"""ComSL (seed 004; methods.md section 5): Whisper encoder -> adapter -> mBART-50 (`--model comsl`).

    speech -> Whisper log-mel + encoder (hf_whisper, masked)  -> ComSL adapter (4x shorter)
           -> [src-lang token; speech] -> mBART-50 encoder -> mBART-50 decoder -> text
    transcript [src-lang, x, </s>]  -> the same mBART-50 encoder and decoder (MT)

Passes (the objectives of `espnet_mtl.objectives.comsl` and the generic ones read them):

    speech   Whisper + adapter + mBART encoder over the speech rows  needs speech
    st       decoder -> translation                                   needs speech, text
    asr_att  decoder -> transcript (source-language token first)      needs speech, src_text
    mt       mBART on the transcript -> translation                   needs src_text, text
    teacher  the frozen teacher mBART on the same input (no grad)     needs src_text, text
    cml      one encoder pass over [masked transcript; speech], then  needs all three
             translation, transcript, masked tokens, and the ERM distance

Target sequences are ESPnet's: sos = the target-language token (mBART-50's forced
first token), eos = </s>; `modules.hf_mbart` puts mBART's decoder start token in
front, so training and beam search see mBART-50's own [</s>, lang, y ...]. The
token list is the mBART-50 tokenizer's vocabulary (the recipe's stage 5 with
`--tgt_token_type hugging_face`, `--hugging_face_model_name_or_path`).

Schedule: `freeze_encoder_epochs` N keeps Whisper frozen (run under no_grad: no
gradient, no update) for epochs 1..N [code: 5 of 15]; the trainer calls
`start_epoch`, so a resumed run freezes by the epoch it resumes at. Under DDP set
`unused_parameters: true` (the frozen encoder's parameters get no gradient). The teacher is a frozen copy of
the mBART weights the model starts from (the authors' `reg_model`: the fine-tuned
mBART), or of `teacher_path`; it is not a registered submodule: no optimizer,
DDP or checkpoint sees it; training loads it from the pretrained weights when it
first needs it (decoding never does).
"""

from __future__ import annotations

import argparse
import copy
import os
from typing import Dict, List, Optional, Tuple, Union

import torch

from espnet.nets.e2e_mt_common import ErrorCalculator as MTErrorCalculator
from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos

from espnet_mtl.losses.guided import erm_distance
from espnet_mtl.models.build import _read_tokens
from espnet_mtl.models.passes import PassModel, rows_of, take
from espnet_mtl.modules.comsl_adapter import ComSLAdapter
from espnet_mtl.modules.hf_mbart import MBartScorer, decode_logits, key_padding, load_mbart
from espnet_mtl.modules.hf_whisper import WhisperSpeechEncoder
from espnet_mtl.objectives import ObjectiveContext, PassOutput

#: the paper's objectives and weights [code]: 0.35 ASR, 0.35 ST, 0.2 MT, 0.1 CML
PAPER_OBJECTIVES = {
    "asr_att": 0.35,
    "guided_st": {"weight": 0.35, "alpha": 0.8},
    "teacher_mt": {"weight": 0.2, "alpha": 0.2},
    "cml": {"weight": 0.1, "alpha": 0.8, "erm_weight": 0.2},
}


class ComSLModel(PassModel):
    """Whisper + adapter + mBART-50, trained by objectives over its passes."""

    model_name = "comsl"
    PASS_FIELDS = {"speech": ("speech",), "st": ("speech", "text"),
                   "asr_att": ("speech", "src_text"), "mt": ("src_text", "text"),
                   "teacher": ("src_text", "text"), "cml": ("speech", "src_text", "text")}
    PASS_PROVIDES = {
        "speech": ("hidden", "lens"),
        "st": ("logits", "target", "mask", "tokens", "token_lens"),
        "asr_att": ("logits", "target"),
        "mt": ("logits", "target", "mask"),
        "teacher": ("logits", "target"),
        "cml": ("st_logits", "st_target", "asr_logits", "asr_target", "mlm_logits",
                "mlm_target", "erm"),
    }
    PASS_INPUTS = {"st": ("speech",), "asr_att": ("speech",), "cml": ("speech",)}
    DEFAULT_OBJECTIVES = PAPER_OBJECTIVES

    def __init__(
        self,
        token_list: Union[Tuple[str, ...], List[str]],
        whisper: Union[str, object] = "openai/whisper-medium",
        mbart: Union[str, object] = "facebook/mbart-large-50-many-to-many-mmt",
        src_lang: str = "en_XX",
        tgt_lang: str = "de_DE",
        objectives: Optional[dict] = None,
        freeze_encoder_epochs: int = 0,
        gradient_checkpointing: bool = False,
        mask_prob: float = 0.15,
        erm_layer: int = 4,
        teacher_path: Optional[str] = None,
        whisper_overrides: Optional[dict] = None,
        ignore_id: int = -1,
        length_normalized_loss: bool = False,
        report_bleu: bool = True,
        extract_feats_in_collect_stats: bool = False,
    ):
        super().__init__()
        self.token_list = list(token_list)
        self.src_token_list = self.token_list  # one mBART-50 vocabulary for both sides
        self.vocab_size = len(self.token_list)
        self.ignore_id = ignore_id
        self.length_normalized_loss = bool(length_normalized_loss)
        self.extract_feats_in_collect_stats = extract_feats_in_collect_stats
        self.setup_objectives(objectives, {}, ObjectiveContext(
            ignore_id=ignore_id, vocab_size=self.vocab_size, src_vocab_size=self.vocab_size,
            lsm_weight=0.0, length_normalized=self.length_normalized_loss))

        self.encoder = WhisperSpeechEncoder(whisper, gradient_checkpointing, whisper_overrides)
        self.mbart = load_mbart(mbart)
        if self.mbart.config.vocab_size != self.vocab_size:
            raise ValueError(
                f"model comsl: the token list has {self.vocab_size} entries, mBART "
                f"{mbart!r} {self.mbart.config.vocab_size}: the token list must be the "
                f"mBART-50 tokenizer's vocabulary (stage 5 with --tgt_token_type hugging_face "
                f"--hugging_face_model_name_or_path <the mBART directory>)")
        if gradient_checkpointing:
            self.mbart.gradient_checkpointing_enable()
        d_model = self.mbart.config.d_model
        self.adapter = ComSLAdapter(self.encoder.output_size(), d_model)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.src_lang_id = self._token_id(src_lang, "src_lang")
        self.tgt_lang_id = self._token_id(tgt_lang, "tgt_lang")
        self.mask_id = self._token_id("<mask>", "the mask token")
        self.eos = self._token_id("</s>", "eos")
        self.sos = self.tgt_lang_id  # ESPnet's hypotheses start with the target language
        self.src_sos, self.src_eos = self.src_lang_id, self.eos
        self.mask_prob, self.erm_layer = float(mask_prob), int(erm_layer)
        if not 1 <= self.erm_layer <= self.mbart.config.encoder_layers:
            raise ValueError(f"model_conf.erm_layer {erm_layer}: the mBART encoder has layers "
                             f"1..{self.mbart.config.encoder_layers}")
        self.freeze_encoder_epochs = int(freeze_encoder_epochs)
        self.encoder_frozen = self.freeze_encoder_epochs > 0
        self.set_encoder_frozen(self.encoder_frozen)

        # The teacher is not a submodule (see the module doc). It is loaded when training
        # first needs it, from the pretrained weights (decoding never loads it; a resumed
        # run gets the starting weights, not the checkpoint's); a model built from a config
        # object (random weights: benchmarks) copies its starting mBART now.
        self._teacher_source = teacher_path or mbart
        object.__setattr__(self, "_teacher", None)
        if "teacher" in self.passes and not isinstance(self._teacher_source, (str, os.PathLike)):
            self._set_teacher(copy.deepcopy(self.mbart))
        # validation BLEU over SentencePiece pieces: "▁" marks a word start
        self.mt_error_calculator = (MTErrorCalculator(self.token_list, "\u2581", "<blank>",
                                                      report_bleu) if report_bleu else None)
        # -- attributes read by Speech2Text ------------------------------------------
        self.use_multidecoder = False
        self.st_use_transducer_decoder = False
        self.ctc = None
        self._scorer = MBartScorer(self.mbart)

    def _token_id(self, token: str, what: str) -> int:
        if token not in self.token_list:
            raise ValueError(f"model comsl: {what} {token!r} is not in the token list (an "
                             f"mBART-50 language code such as en_XX, de_DE, fr_XX)")
        return self.token_list.index(token)

    @property
    def decoder(self) -> MBartScorer:
        """mBART's decoder as ESPnet's beam-search scorer (Speech2Text reads model.decoder)."""
        return self._scorer

    def _set_teacher(self, teacher) -> None:
        teacher.eval().requires_grad_(False)  # a teacher without dropout, never trained
        object.__setattr__(self, "_teacher", teacher)

    @property
    def teacher(self):
        """The frozen teacher mBART (None when no objective reads the teacher pass)."""
        if self._teacher is None and "teacher" in self.passes:
            self._set_teacher(load_mbart(self._teacher_source).to(self.mbart.device))
        return self._teacher

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if self.__dict__.get("_teacher") is not None:  # .to(device) moves the teacher too
            self._teacher._apply(fn, *args, **kwargs)
        return self

    # -- schedule ----------------------------------------------------------------------
    def set_encoder_frozen(self, frozen: bool) -> None:
        # requires_grad stays on: DDP registers the parameters that need gradients once,
        # at construction, and would never reduce the encoder's after it thaws. The
        # encoder runs under no_grad instead: its gradients stay None, so AdamW skips it
        # (no update, no weight decay); under DDP set `unused_parameters: true`.
        self.encoder_frozen = bool(frozen)

    def start_epoch(self, epoch: int) -> None:
        """Called by the trainer before each training epoch (1-based)."""
        self.set_encoder_frozen(epoch <= self.freeze_encoder_epochs)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def build_from_task_args(cls, args: argparse.Namespace, task=None) -> "ComSLModel":
        token_list = _read_tokens(args.token_list, "token_list")
        args.token_list = list(token_list)  # portable config.yaml, as ESPnet does
        model_conf = dict(getattr(args, "model_conf", None) or {})
        unknown = set(model_conf) - set(cls.model_conf_defaults())
        if unknown:
            raise ValueError(f"unknown model_conf keys for model comsl: {sorted(unknown)}; "
                             f"keys: {sorted(cls.model_conf_defaults())}")
        if getattr(args, "init", None) is not None:
            raise ValueError("model comsl starts from pretrained Whisper and mBART weights: "
                             "--init would overwrite them; remove `init` from the config")
        # the waveform is all it reads: Whisper's log-mel is computed inside the encoder
        args.frontend, args.frontend_conf = None, {}
        return cls(token_list=token_list, **model_conf)

    # -- encoders (also used by decoding) ----------------------------------------------
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mbart.model.encoder.embed_tokens(ids)

    def speech_states(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        """Whisper (no_grad while frozen) -> adapter: (B, T', d_mbart), lengths."""
        speech = speech[:, : int(speech_lengths.max())]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            states, lens = self.encoder(speech, speech_lengths)
        return self.adapter(states, lens)

    def mbart_encode(self, embeds: torch.Tensor, lens: torch.Tensor, layer: Optional[int] = None,
                     model=None):
        """mBART encoder over input embeddings; with `layer`, also that layer's states."""
        model = model or self.mbart
        out = model.model.encoder(inputs_embeds=embeds,
                                  attention_mask=key_padding(lens, embeds.size(1)),
                                  output_hidden_states=layer is not None)
        hidden = out.last_hidden_state
        return hidden, (out.hidden_states[layer] if layer is not None else None)

    def _with_lang(self, states: torch.Tensor, lens: torch.Tensor, lang: int):
        lang_emb = self._embed(states.new_full((states.size(0), 1), lang, dtype=torch.long))
        return torch.cat([lang_emb.to(states.dtype), states], dim=1), lens + 1

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
               return_int_enc: bool = False):
        """Speech -> mBART encoder output (decoder memory). Used by st_inference."""
        states, lens = self.speech_states(speech, speech_lengths)
        embeds, elens = self._with_lang(states, lens, self.src_lang_id)
        enc, _ = self.mbart_encode(embeds, elens)
        if return_int_enc:
            return enc, elens, states, lens
        return enc, elens

    def _source_ids(self, src: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """mBART-50's source format [src-lang, x, </s>] for transcript tokens."""
        ids = torch.cat([src.new_full((src.size(0), 1), self.src_lang_id),
                         src.masked_fill(src < 0, self.mbart.config.pad_token_id),
                         src.new_full((src.size(0), 1), self.mbart.config.pad_token_id)], 1)
        ids[torch.arange(ids.size(0)), lens + 1] = self.eos
        return ids, lens + 2

    # -- passes ------------------------------------------------------------------------
    def _targets(self, tokens, lens, rows, sos):
        ys, ys_lens = take(tokens, rows), take(lens, rows)
        ys = ys[:, : int(ys_lens.max())]
        ys_in, ys_out = add_sos_eos(ys, sos, self.eos, self.ignore_id)
        return ys, ys_lens, ys_in, ys_out

    def _speech_pass(self, b, out, covers):
        rows = rows_of(covers)
        states, lens = self.speech_states(take(b["speech"], rows), take(b["speech_lengths"], rows))
        embeds, elens = self._with_lang(states, lens, self.src_lang_id)
        layer = self.erm_layer if "cml" in self.passes else None  # ERM reads this layer
        enc, mid = self.mbart_encode(embeds, elens, layer)
        return PassOutput(covers, 1, dict(hidden=enc, lens=elens, adapter=states,
                                          adapter_lens=lens, mid=mid))

    def _speech_rows(self, out, covers, *fields):
        speech = out["speech"]
        pos = rows_of(covers[speech.covers])
        return [take(speech[f], pos) for f in fields]

    def _decode(self, b, out, covers, field, sos, model=None):
        enc, lens = self._speech_rows(out, covers, "hidden", "lens")
        ys, ys_lens, ys_in, ys_out = self._targets(b[field], b[f"{field}_lengths"],
                                                   rows_of(covers), sos)
        logits = decode_logits(model or self.mbart, ys_in, ys_lens + 1, enc, lens)
        return ys, ys_lens, ys_out, logits

    def _st_pass(self, b, out, covers):
        ys, ys_lens, ys_out, logits = self._decode(b, out, covers, "text", self.tgt_lang_id)
        return PassOutput(covers, 1, dict(logits=logits, target=ys_out,
                                          mask=ys_out != self.ignore_id, tokens=ys,
                                          token_lens=ys_lens))

    def _asr_att_pass(self, b, out, covers):
        _, _, ys_out, logits = self._decode(b, out, covers, "src_text", self.src_lang_id)
        return PassOutput(covers, 1, dict(logits=logits, target=ys_out))

    def _text_to_text(self, b, covers, model):
        rows = rows_of(covers)
        src, src_lens = take(b["src_text"], rows), take(b["src_text_lengths"], rows)
        ids, lens = self._source_ids(src[:, : int(src_lens.max())], src_lens)
        enc, _ = self.mbart_encode(model.model.encoder.embed_tokens(ids), lens, model=model)
        _, ys_lens, ys_in, ys_out = self._targets(b["text"], b["text_lengths"], rows,
                                                  self.tgt_lang_id)
        return decode_logits(model, ys_in, ys_lens + 1, enc, lens), ys_out

    def _mt_pass(self, b, out, covers):
        logits, ys_out = self._text_to_text(b, covers, self.mbart)
        return PassOutput(covers, 1, dict(logits=logits, target=ys_out,
                                          mask=ys_out != self.ignore_id))

    def _teacher_pass(self, b, out, covers):
        with torch.no_grad():
            logits, ys_out = self._text_to_text(b, covers, self.teacher)
        return PassOutput(covers, 1, dict(logits=logits, target=ys_out))

    def mask_tokens(self, ids: torch.Tensor, lens: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Replace `mask_prob` of the transcript tokens (not the language token or </s>)
        by <mask>: (masked ids, MLM target: the original token there, ignore_id elsewhere)."""
        pos = torch.arange(ids.size(1), device=ids.device)[None]
        maskable = (pos >= 1) & (pos < (lens - 1)[:, None])
        chosen = maskable & (torch.rand(ids.shape, device=ids.device) < self.mask_prob)
        return (ids.masked_fill(chosen, self.mask_id),
                ids.masked_fill(~chosen, self.ignore_id))

    def _cml_pass(self, b, out, covers):
        """One encoder pass over [masked transcript; speech] per row (ComSL's CML)."""
        rows = rows_of(covers)
        src, src_lens = take(b["src_text"], rows), take(b["src_text_lengths"], rows)
        ids, text_lens = self._source_ids(src[:, : int(src_lens.max())], src_lens)
        masked, mlm_target = self.mask_tokens(ids, text_lens)
        text_emb = self._embed(masked)
        speech, speech_lens, mid = self._speech_rows(out, covers, "adapter", "adapter_lens", "mid")
        n = ids.size(0)
        lens = text_lens + speech_lens
        # row i: its text_lens[i] text positions, then its speech frames, then padding
        length = int(lens.max())
        pos = torch.arange(length, device=ids.device)[None].expand(n, -1)
        in_text = pos < text_lens[:, None]
        speech_pos = (pos - text_lens[:, None]).clamp(min=0, max=speech.size(1) - 1)
        gathered = speech.gather(1, speech_pos[..., None].expand(-1, -1, speech.size(2)))
        text_part = torch.nn.functional.pad(text_emb, (0, 0, 0, max(0, length - text_emb.size(1))))
        embeds = torch.where(in_text[..., None], text_part[:, :length].to(speech.dtype), gathered)
        enc, mixed_mid = self.mbart_encode(embeds, lens, self.erm_layer)
        # ERM: the speech frames of the mixed pass against the speech-only pass (after its
        # language token)
        frames = torch.arange(speech.size(1), device=ids.device)[None]
        at = (frames + text_lens[:, None]).clamp(max=length - 1)
        mixed_speech = mixed_mid.gather(1, at[..., None].expand(-1, -1, mixed_mid.size(2)))
        erm = erm_distance(mid[:, 1: 1 + speech.size(1)], mixed_speech,
                           frames < speech_lens[:, None])
        fields = dict(erm=erm)
        for prefix, field, sos in (("st", "text", self.tgt_lang_id),
                                   ("asr", "src_text", self.src_lang_id)):
            _, ys_lens, ys_in, ys_out = self._targets(b[field], b[f"{field}_lengths"], rows, sos)
            fields[f"{prefix}_logits"] = decode_logits(self.mbart, ys_in, ys_lens + 1, enc, lens)
            fields[f"{prefix}_target"] = ys_out
        text_len = int(text_lens.max())
        fields["mlm_logits"] = (self.mbart.lm_head(enc[:, :text_len])
                                + self.mbart.final_logits_bias.to(enc.dtype))
        fields["mlm_target"] = mlm_target[:, :text_len]
        return PassOutput(covers, 1, fields)

    PASS_ORDER = (("speech", _speech_pass), ("st", _st_pass), ("asr_att", _asr_att_pass),
                  ("mt", _mt_pass), ("teacher", _teacher_pass), ("cml", _cml_pass))

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                      **kwargs) -> Dict[str, torch.Tensor]:
        return {"feats": speech, "feats_lengths": speech_lengths}

