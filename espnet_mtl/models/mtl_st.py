"""Multi-task speech translation model (`--model mtl_st`).

Backbone of methods.md section 0 with the regularizers of section 1:

    speech -> frontend -> specaug (train) -> normalize -> [preencoder]
           -> acoustic encoder (any ESPnet encoder choice)
           -> [Linear when sizes differ] -> textual encoder (shared)
           -> attention decoder (shared) -> target

    transcript -> embedding + positional encoding -> the SAME textual encoder
               -> the SAME decoder -> target                       (MT task)

Auxiliary heads: CTC over the source vocabulary on the acoustic-encoder
output (`asr_ctc_weight`), an optional ASR attention decoder on the acoustic
encoder (`asr_att_weight`), an optional target-side CTC `st_ctc` on the
textual-encoder output (`st_ctc_weight`; lets ESPnet's Speech2Text use CTC
prefix scoring). Regularizers: cross-modal consistency between the ST and MT
passes (`consistency_weight`, beta) and R-drop over the speech batch doubled
in one forward (`rdrop_weight`, alpha).

    L = L_ST + asr_ctc_weight * L_CTC + asr_att_weight * L_ASR
        + mt_weight * L_MT + st_ctc_weight * L_STCTC
        + consistency_weight * L_CR + rdrop_weight * L_RD

Every loss is a sum over tokens divided by the batch size (ESPnet's
`length_normalized_loss: false`), or divided by the number of tokens when
`length_normalized_loss: true`. A weight of 0 skips its computation, and the
module that only serves it is not even built (no unused parameters under
DDP).

The class keeps the interface that ESPnet's trainer, collect_stats and
`espnet2.bin.st_inference.Speech2Text` use: forward -> (loss, stats, weight),
collect_feats, encode(..., return_int_enc), decoder, st_ctc, sos/eos,
token_list, src_token_list, use_multidecoder, ...
"""

from __future__ import annotations

import argparse
import inspect
from typing import Dict, List, Optional, Tuple, Union

import torch

from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.abs_decoder import AbsDecoder
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet.nets.e2e_mt_common import ErrorCalculator as MTErrorCalculator
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask, th_accuracy
from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos
from espnet.nets.pytorch_backend.transformer.embedding import PositionalEncoding
from espnet.nets.pytorch_backend.transformer.label_smoothing_loss import (
    LabelSmoothingLoss,
)

from espnet_mtl.fileio import read_lines
from espnet_mtl.losses.consistency import (
    CONSISTENCY_KINDS,
    DIRECTIONS,
    consistency_loss,
    double_batch,
    rdrop_loss,
    split_doubled_batch,
)

#: Defaults of `textual_encoder_conf`; a user's dict is merged over these.
#: `output_size: null` = the acoustic encoder's output size.
TEXTUAL_ENCODER_DEFAULTS = dict(
    output_size=None,
    num_blocks=6,
    attention_heads=4,
    linear_units=2048,
    dropout_rate=0.1,
    positional_dropout_rate=0.1,
    attention_dropout_rate=0.0,
    normalize_before=True,
)

# The model_conf keys that decide which modules exist (read by the builder).
_WEIGHT_KEYS = ("asr_ctc_weight", "asr_att_weight", "mt_weight", "st_ctc_weight",
                "consistency_weight", "rdrop_weight")


def _merge_textual_conf(conf: Optional[dict]) -> dict:
    merged = dict(TEXTUAL_ENCODER_DEFAULTS)
    if conf:
        merged.update(conf)
    return merged


class TextualEncoder(torch.nn.Module):
    """Transformer layers shared by the speech and the MT path.

    Built from ESPnet's TransformerEncoder with `input_layer=None` (no
    embedding: inputs already have the model size). `num_blocks: 0` is the
    identity (no final LayerNorm either).
    """

    def __init__(self, size: int, conf: dict):
        super().__init__()
        conf = dict(conf)
        conf.pop("output_size", None)
        self._size = size
        if int(conf.get("num_blocks", 0)) > 0:
            self.encoder = TransformerEncoder(
                input_size=size, output_size=size, input_layer=None, **conf
            )
        else:
            self.encoder = None

    def output_size(self) -> int:
        return self._size

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.encoder is None:
            return xs, lens
        out, out_lens, _ = self.encoder(xs, lens)
        return out, out_lens


class MTLSTModel(AbsESPnetModel):
    """Conformer CTC/attention ST with shared textual encoder, MT, CR and R-drop."""

    def __init__(
        self,
        vocab_size: int,
        token_list: Union[Tuple[str, ...], List[str]],
        frontend: Optional[AbsFrontend],
        specaug: Optional[AbsSpecAug],
        normalize: Optional[AbsNormalize],
        preencoder: Optional[AbsPreEncoder],
        encoder: AbsEncoder,
        decoder: AbsDecoder,
        ctc: Optional[CTC],
        st_ctc: Optional[CTC],
        extra_asr_decoder: Optional[AbsDecoder],
        src_vocab_size: Optional[int],
        src_token_list: Optional[Union[Tuple[str, ...], List[str]]],
        textual_encoder_conf: Optional[dict] = TEXTUAL_ENCODER_DEFAULTS,
        asr_ctc_weight: float = 0.3,
        asr_att_weight: float = 0.0,
        mt_weight: float = 0.0,
        st_ctc_weight: float = 0.0,
        consistency_weight: float = 0.0,
        consistency_type: str = "softmax_kl",
        consistency_direction: str = "mt_to_st",
        consistency_detach_mt: bool = False,
        consistency_temperature: float = 1.0,
        rdrop_weight: float = 0.0,
        ignore_id: int = -1,
        lsm_weight: float = 0.0,
        length_normalized_loss: bool = False,
        report_bleu: bool = True,
        tgt_sym_space: str = "<space>",
        tgt_sym_blank: str = "<blank>",
        tgt_sym_sos: str = "<sos/eos>",
        tgt_sym_eos: str = "<sos/eos>",
        extract_feats_in_collect_stats: bool = True,
    ):
        super().__init__()
        for key, value in (("asr_ctc_weight", asr_ctc_weight),
                           ("asr_att_weight", asr_att_weight),
                           ("mt_weight", mt_weight), ("st_ctc_weight", st_ctc_weight),
                           ("consistency_weight", consistency_weight),
                           ("rdrop_weight", rdrop_weight)):
            if value < 0:
                raise ValueError(f"{key} must be >= 0, got {value}")
        if consistency_type not in CONSISTENCY_KINDS:
            raise ValueError(
                f"consistency_type must be one of {CONSISTENCY_KINDS}, got {consistency_type!r}"
            )
        if consistency_direction not in DIRECTIONS:
            raise ValueError(
                f"consistency_direction must be one of {DIRECTIONS}, "
                f"got {consistency_direction!r}"
            )

        # -- vocabularies (same conventions as ESPnetSTModel) -----------------
        token_list = list(token_list)
        self.vocab_size = vocab_size
        self.token_list = token_list
        self.sos = token_list.index(tgt_sym_sos) if tgt_sym_sos in token_list else vocab_size - 1
        self.eos = token_list.index(tgt_sym_eos) if tgt_sym_eos in token_list else vocab_size - 1
        self.src_token_list = list(src_token_list) if src_token_list is not None else None
        self.src_vocab_size = src_vocab_size
        self.src_sos = src_vocab_size - 1 if src_vocab_size else None
        self.src_eos = src_vocab_size - 1 if src_vocab_size else None
        self.ignore_id = ignore_id
        self.tgt_ignore_id = ignore_id

        # -- weights and options -----------------------------------------------
        self.asr_ctc_weight = float(asr_ctc_weight)
        self.asr_att_weight = float(asr_att_weight)
        self.mt_weight = float(mt_weight)
        self.st_ctc_weight = float(st_ctc_weight)
        self.consistency_weight = float(consistency_weight)
        self.consistency_type = consistency_type
        self.consistency_direction = consistency_direction
        self.consistency_detach_mt = bool(consistency_detach_mt)
        self.consistency_temperature = float(consistency_temperature)
        self.rdrop_weight = float(rdrop_weight)
        self.length_normalized_loss = bool(length_normalized_loss)
        self.extract_feats_in_collect_stats = extract_feats_in_collect_stats
        needs_src = (self.asr_ctc_weight > 0 or self.asr_att_weight > 0
                     or self.mt_weight > 0 or self.consistency_weight > 0)
        if needs_src and src_vocab_size is None:
            raise ValueError(
                "asr_ctc_weight / asr_att_weight / mt_weight / consistency_weight > 0 "
                "need the source vocabulary: pass --src_token_list"
            )

        # -- speech path ---------------------------------------------------------
        self.frontend = frontend
        self.specaug = specaug
        self.normalize = normalize
        self.preencoder = preencoder
        self.encoder = encoder
        conf = _merge_textual_conf(textual_encoder_conf)
        size = conf.get("output_size") or encoder.output_size()
        self.textual_encoder_conf = conf
        if encoder.output_size() != size:
            self.encoder_proj = torch.nn.Linear(encoder.output_size(), size)
        else:
            self.encoder_proj = None
        self.textual_encoder = TextualEncoder(size, conf)
        self.decoder = decoder

        # -- MT path: embedding + positions into the shared textual encoder ------
        if self.mt_weight > 0 or self.consistency_weight > 0:
            self.mt_embed = torch.nn.Embedding(src_vocab_size, size)
            self.mt_pos_enc = PositionalEncoding(
                size, conf.get("positional_dropout_rate", 0.1)
            )
        else:
            self.mt_embed = None
            self.mt_pos_enc = None

        # -- auxiliary heads (kept only when their weight is > 0) ----------------
        if self.asr_ctc_weight > 0:
            if ctc is None:
                raise ValueError("asr_ctc_weight > 0 needs a CTC module")
            self.ctc = ctc
        else:
            self.ctc = None
        if self.asr_att_weight > 0:
            if extra_asr_decoder is None:
                raise ValueError(
                    "asr_att_weight > 0 needs an ASR decoder: pass --extra_asr_decoder "
                    "(e.g. transformer) and --extra_asr_decoder_conf"
                )
            self.extra_asr_decoder = extra_asr_decoder
        else:
            self.extra_asr_decoder = None
        if self.st_ctc_weight > 0:
            if st_ctc is None:
                raise ValueError("st_ctc_weight > 0 needs an st_ctc module")
            # Absent otherwise: Speech2Text(ctc_weight > 0) then fails its own
            # `hasattr(st_model, "st_ctc")` check instead of using an untrained head.
            self.st_ctc = st_ctc

        # -- criteria --------------------------------------------------------------
        self.criterion_st = LabelSmoothingLoss(
            size=vocab_size, padding_idx=ignore_id, smoothing=lsm_weight,
            normalize_length=length_normalized_loss,
        )
        if self.asr_att_weight > 0:
            self.criterion_asr = LabelSmoothingLoss(
                size=src_vocab_size, padding_idx=ignore_id, smoothing=lsm_weight,
                normalize_length=length_normalized_loss,
            )
        self.mt_error_calculator = (
            MTErrorCalculator(token_list, tgt_sym_space, tgt_sym_blank, report_bleu)
            if report_bleu else None
        )

        # -- attributes read by Speech2Text -------------------------------------------
        self.use_multidecoder = False
        self.md_encoder = None
        self.use_speech_attn = False
        self.st_use_transducer_decoder = False
        self.st_joint_network = None
        self.hier_encoder = None
        self.postencoder = None

    # ------------------------------------------------------------------------
    # construction from the task's parsed arguments
    # ------------------------------------------------------------------------
    @classmethod
    def model_conf_defaults(cls) -> dict:
        """The model_conf keys (constructor arguments with a default) and their defaults."""
        return {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items()
                if v.default is not inspect.Parameter.empty}

    @classmethod
    def build_from_task_args(cls, args: argparse.Namespace, task=None) -> "MTLSTModel":
        from espnet2.tasks.st import (
            decoder_choices,
            encoder_choices,
            extra_asr_decoder_choices,
            frontend_choices,
            normalize_choices,
            preencoder_choices,
            specaug_choices,
        )
        from espnet2.torch_utils.initialize import initialize

        def read_tokens(value, what):
            if isinstance(value, str):
                return [line.rstrip() for line in read_lines(value)]
            if isinstance(value, (tuple, list)):
                return list(value)
            raise RuntimeError(f"{what} must be str or list")

        token_list = read_tokens(args.token_list, "token_list")
        args.token_list = list(token_list)  # portable config.yaml, as ESPnet does
        vocab_size = len(token_list)
        if getattr(args, "src_token_list", None) is not None:
            src_token_list = read_tokens(args.src_token_list, "src_token_list")
            args.src_token_list = list(src_token_list)
            src_vocab_size = len(src_token_list)
        else:
            src_token_list, src_vocab_size = None, None

        model_conf = dict(getattr(args, "model_conf", None) or {})
        defaults = cls.model_conf_defaults()
        unknown = set(model_conf) - set(defaults)
        if unknown:
            raise ValueError(f"unknown model_conf keys for model mtl_st: {sorted(unknown)}")
        weight = {k: float(model_conf.get(k, defaults[k])) for k in _WEIGHT_KEYS}

        # 1. frontend / specaug / normalize / preencoder
        if getattr(args, "input_size", None) is None:
            frontend = frontend_choices.get_class(args.frontend)(**args.frontend_conf)
            input_size = frontend.output_size()
        else:
            args.frontend = None
            args.frontend_conf = {}
            frontend = None
            input_size = args.input_size
        specaug = (specaug_choices.get_class(args.specaug)(**args.specaug_conf)
                   if getattr(args, "specaug", None) is not None else None)
        normalize = (normalize_choices.get_class(args.normalize)(**args.normalize_conf)
                     if getattr(args, "normalize", None) is not None else None)
        if getattr(args, "preencoder", None) is not None:
            preencoder = preencoder_choices.get_class(args.preencoder)(**args.preencoder_conf)
            input_size = preencoder.output_size()
        else:
            preencoder = None

        # 2. acoustic encoder, textual size
        encoder = encoder_choices.get_class(args.encoder)(
            input_size=input_size, **args.encoder_conf
        )
        acoustic_size = encoder.output_size()
        text_conf = _merge_textual_conf(model_conf.get("textual_encoder_conf"))
        text_size = text_conf.get("output_size") or acoustic_size

        # 3. decoder (shared by ST and MT)
        if args.decoder == "transducer":
            raise ValueError("decoder: transducer is not supported by model mtl_st (its "
                             "decoder is shared with the MT path); use an attention decoder "
                             "such as transformer")
        decoder = decoder_choices.get_class(args.decoder)(
            vocab_size=vocab_size, encoder_output_size=text_size, **args.decoder_conf
        )

        # 4. auxiliary heads, built only when used
        ctc_conf = dict(getattr(args, "ctc_conf", None) or {})
        ctc = None
        if weight["asr_ctc_weight"] > 0 and src_vocab_size is not None:
            ctc = CTC(odim=src_vocab_size, encoder_output_size=acoustic_size, **ctc_conf)
        st_ctc = None
        if weight["st_ctc_weight"] > 0:
            st_ctc = CTC(odim=vocab_size, encoder_output_size=text_size, **ctc_conf)
        extra_asr_decoder = None
        if (weight["asr_att_weight"] > 0 and src_vocab_size is not None
                and getattr(args, "extra_asr_decoder", None) is not None):
            extra_asr_decoder = extra_asr_decoder_choices.get_class(args.extra_asr_decoder)(
                vocab_size=src_vocab_size, encoder_output_size=acoustic_size,
                **args.extra_asr_decoder_conf,
            )

        model = cls(
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            specaug=specaug,
            normalize=normalize,
            preencoder=preencoder,
            encoder=encoder,
            decoder=decoder,
            ctc=ctc,
            st_ctc=st_ctc,
            extra_asr_decoder=extra_asr_decoder,
            src_vocab_size=src_vocab_size,
            src_token_list=src_token_list,
            **model_conf,
        )
        if getattr(args, "init", None) is not None:
            initialize(model, args.init)
        return model

    # ------------------------------------------------------------------------
    # encoders
    # ------------------------------------------------------------------------
    def _extract_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        assert speech_lengths.dim() == 1, speech_lengths.shape
        speech = speech[:, : speech_lengths.max()]
        if self.frontend is not None:
            return self.frontend(speech, speech_lengths)
        return speech, speech_lengths

    def encode_acoustic(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frontend -> specaug (train) -> normalize -> [preencoder] -> acoustic encoder."""
        with torch.autocast(device_type=speech.device.type, enabled=False):
            feats, feats_lengths = self._extract_feats(speech, speech_lengths)
            if self.specaug is not None and self.training:
                feats, feats_lengths = self.specaug(feats, feats_lengths)
            if self.normalize is not None:
                feats, feats_lengths = self.normalize(feats, feats_lengths)
        if self.preencoder is not None:
            feats, feats_lengths = self.preencoder(feats, feats_lengths)
        out, out_lens, _ = self.encoder(feats, feats_lengths)
        if isinstance(out, tuple):  # encoders with intermediate CTC outputs
            out = out[0]
        return out, out_lens

    def encode_textual(
        self, acoustic_out: torch.Tensor, acoustic_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(Linear) -> shared textual encoder, for acoustic-encoder outputs."""
        # A sub-batch (e.g. the ST rows of a mixed batch) can be padded beyond its
        # own longest row, and the encoder's mask has only max(lens) frames.
        acoustic_out = acoustic_out[:, : int(acoustic_lens.max())]
        xs = acoustic_out if self.encoder_proj is None else self.encoder_proj(acoustic_out)
        return self.textual_encoder(xs, acoustic_lens)

    def encode(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        return_int_enc: bool = False,
    ):
        """Speech -> decoder input (textual-encoder output). Used by st_inference.py.

        Returns (enc, enc_lens), or with `return_int_enc=True`
        (enc, enc_lens, acoustic_enc, acoustic_enc_lens) as ESPnetSTModel does.
        """
        acoustic_out, acoustic_lens = self.encode_acoustic(speech, speech_lengths)
        out, out_lens = self.encode_textual(acoustic_out, acoustic_lens)
        if return_int_enc:
            return out, out_lens, acoustic_out, acoustic_lens
        return out, out_lens

    def encode_text(
        self, src_text: torch.Tensor, src_text_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """MT path: transcript tokens -> embedding + positions -> textual encoder."""
        if self.mt_embed is None:
            raise RuntimeError(
                "this model has no MT path (built with mt_weight = consistency_weight = 0)"
            )
        src_text = src_text[:, : src_text_lengths.max()]
        tokens = src_text.masked_fill(src_text < 0, 0)
        xs = self.mt_pos_enc(self.mt_embed(tokens))
        return self.textual_encoder(xs, src_text_lengths)

    # ------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------
    def _norm(self, total: torch.Tensor, batch_size: int, num_tokens) -> torch.Tensor:
        """Sum over tokens -> ESPnet's normalisation (batch size or token count)."""
        if self.length_normalized_loss:
            return total / max(float(num_tokens), 1.0)
        return total / batch_size

    @staticmethod
    def _valid(lens: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        """(B, T) True on the valid frames of xs (B, T, D)."""
        return ~make_pad_mask(lens, maxlen=xs.size(1)).to(xs.device)

    def _decode(self, enc, enc_lens, ys_in_pad, ys_in_lens):
        logits, _ = self.decoder(enc, enc_lens, ys_in_pad, ys_in_lens)
        return logits

    @staticmethod
    def _rows(mask: torch.Tensor) -> Optional[torch.Tensor]:
        """Indices where mask is True; None when it is True everywhere (no copy needed)."""
        return None if bool(mask.all()) else mask.nonzero(as_tuple=True)[0]

    @staticmethod
    def _take(x: Optional[torch.Tensor], idx: Optional[torch.Tensor]):
        return x if idx is None or x is None else x.index_select(0, idx)

    @staticmethod
    def _both_copies(idx: Optional[torch.Tensor], n: int) -> Optional[torch.Tensor]:
        """Row indices of a sub-batch selected in both halves of a doubled batch."""
        return None if idx is None else torch.cat([idx, idx + n])

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        src_text: Optional[torch.Tensor] = None,
        src_text_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Losses of one batch; each example contributes the losses its fields allow.

        In a mixed-source batch (`espnet_mtl.mixed_source`) a length of 0 marks
        a missing field: MT-only examples have no speech, ASR-only examples no
        translation. ST (CE, R-drop, target CTC) uses the examples with speech
        and translation, ASR those with speech and transcript, MT those with
        transcript and translation, consistency those with all three. Each
        loss is normalised by its own example (or token) count, so a pure ST
        batch gives exactly the ST-only numbers.
        """
        assert text_lengths.dim() == 1, text_lengths.shape
        assert speech.shape[0] == speech_lengths.shape[0] == text.shape[0] == \
            text_lengths.shape[0], (speech.shape, speech_lengths.shape, text.shape,
                                    text_lengths.shape)
        batch_size = speech.shape[0]
        needs_src = (self.asr_ctc_weight > 0 or self.asr_att_weight > 0
                     or self.mt_weight > 0 or self.consistency_weight > 0)
        if needs_src and (src_text is None or src_text_lengths is None):
            raise ValueError(
                "model mtl_st: asr_ctc_weight, asr_att_weight, mt_weight or "
                "consistency_weight > 0 needs the source transcript: add src_text to the "
                "training data (--train_data_path_and_name_and_type <dir>/text.<src>,"
                "src_text,text)"
            )
        text = text.masked_fill(text == -1, self.ignore_id)
        text = text[:, : text_lengths.max()]
        if src_text is not None:
            assert src_text.shape[0] == batch_size, (src_text.shape, batch_size)
            src_text = src_text[:, : src_text_lengths.max()]

        has_speech = speech_lengths > 0
        has_tgt = text_lengths > 0
        has_src = (src_text_lengths > 0 if src_text is not None
                   else torch.zeros_like(has_speech))
        is_st = has_speech & has_tgt
        is_asr = has_speech & has_src
        is_mt = has_src & has_tgt
        is_cr = is_st & has_src
        n_st, n_asr, n_mt = int(is_st.sum()), int(is_asr.sum()), int(is_mt.sum())
        use_asr = (self.asr_ctc_weight > 0 or self.asr_att_weight > 0) and n_asr > 0
        use_mt_path = (self.mt_weight > 0 or self.consistency_weight > 0) and n_mt > 0
        rdrop = self.rdrop_weight > 0
        copies = 2 if rdrop else 1
        token_mean = "mean_tokens" if self.length_normalized_loss else "sum"

        zero = speech.new_zeros(())
        loss_st = loss_rd = loss_asr_ctc = loss_asr_att = loss_st_ctc = zero
        loss_mt = loss_cr = zero
        acc = acc_mt = acc_asr = bleu = None
        st_logits = enc = enc_lens = tgt_mask = None

        # 1. acoustic encoder over the examples with speech (twice under R-drop:
        # one forward over [batch; batch] gives two independent dropout samples)
        n_sp = int(has_speech.sum())
        if n_st > 0 or use_asr:
            sp_idx = self._rows(has_speech)
            sp, sp_lens = self._take(speech, sp_idx), self._take(speech_lengths, sp_idx)
            if rdrop:
                sp, sp_lens = double_batch(sp), double_batch(sp_lens)
            acoustic_out, acoustic_lens = self.encode_acoustic(sp, sp_lens)
            sub = lambda mask: self._rows(mask[has_speech])  # rows within the speech batch

        # 2. ST: textual encoder + shared decoder (CE averaged over the copies)
        if n_st > 0:
            st_pos = sub(has_tgt)
            st_pos2 = self._both_copies(st_pos, n_sp) if rdrop else st_pos
            enc, enc_lens = self.encode_textual(self._take(acoustic_out, st_pos2),
                                                self._take(acoustic_lens, st_pos2))
            st_idx = self._rows(is_st)
            ys, ys_lens = self._take(text, st_idx), self._take(text_lengths, st_idx)
            ys = ys[:, : ys_lens.max()]
            if rdrop:
                ys, ys_lens = double_batch(ys), double_batch(ys_lens)
            ys_in_pad, ys_out_pad = add_sos_eos(ys, self.sos, self.eos, self.ignore_id)
            st_logits = self._decode(enc, enc_lens, ys_in_pad, ys_lens + 1)
            loss_st = self.criterion_st(st_logits, ys_out_pad)
            acc = th_accuracy(st_logits.reshape(-1, self.vocab_size), ys_out_pad,
                              ignore_label=self.ignore_id)
            if not self.training and self.mt_error_calculator is not None:
                bleu = self.mt_error_calculator(st_logits.argmax(-1).cpu(), ys.cpu())
            tgt_mask = ys_out_pad != self.ignore_id

            # 3. R-drop between the two copies
            if rdrop:
                l1, l2 = split_doubled_batch(st_logits, n_st)
                m1, _ = split_doubled_batch(tgt_mask, n_st)
                loss_rd = rdrop_loss(l1, l2, m1, reduction=token_mean)
                if not self.length_normalized_loss:
                    loss_rd = loss_rd / n_st

            # 4. target-side CTC on the textual encoder
            if self.st_ctc_weight > 0:
                loss_st_ctc = self.st_ctc(enc, enc_lens, ys, ys_lens)

        # 5. ASR heads on the acoustic encoder (CTC; attention decoder)
        if use_asr:
            asr_pos = sub(has_src)
            asr_pos2 = self._both_copies(asr_pos, n_sp) if rdrop else asr_pos
            hs, hs_lens = self._take(acoustic_out, asr_pos2), self._take(acoustic_lens, asr_pos2)
            asr_idx = self._rows(is_asr)
            src, src_lens = self._take(src_text, asr_idx), self._take(src_text_lengths, asr_idx)
            src = src[:, : src_lens.max()]
            if rdrop:
                src, src_lens = double_batch(src), double_batch(src_lens)
            if self.asr_ctc_weight > 0:
                loss_asr_ctc = self.ctc(hs, hs_lens, src, src_lens)
            if self.asr_att_weight > 0:
                src_in, src_out = add_sos_eos(src, self.src_sos, self.src_eos, self.ignore_id)
                asr_logits, _ = self.extra_asr_decoder(hs, hs_lens, src_in, src_lens + 1)
                loss_asr_att = self.criterion_asr(asr_logits, src_out)
                acc_asr = th_accuracy(asr_logits.reshape(-1, self.src_vocab_size), src_out,
                                      ignore_label=self.ignore_id)

        # 6. MT through the shared textual encoder and decoder (single copy)
        if use_mt_path:
            mt_idx = self._rows(is_mt)
            mt_src = self._take(src_text, mt_idx)
            mt_src_lens = self._take(src_text_lengths, mt_idx)
            mt_enc, mt_enc_lens = self.encode_text(mt_src, mt_src_lens)
            mt_ys, mt_ys_lens = self._take(text, mt_idx), self._take(text_lengths, mt_idx)
            mt_ys = mt_ys[:, : mt_ys_lens.max()]
            mt_in, mt_out = add_sos_eos(mt_ys, self.sos, self.eos, self.ignore_id)
            mt_logits = self._decode(mt_enc, mt_enc_lens, mt_in, mt_ys_lens + 1)
            if self.mt_weight > 0:
                loss_mt = self.criterion_st(mt_logits, mt_out)
                acc_mt = th_accuracy(mt_logits.reshape(-1, self.vocab_size), mt_out,
                                     ignore_label=self.ignore_id)

            # 7. cross-modal consistency on the examples with speech, transcript
            # and translation, against every speech copy
            n_cr = int(is_cr.sum())
            if self.consistency_weight > 0 and n_cr > 0:
                if n_cr == n_st == n_mt:  # the same rows in the same order
                    st_sel = mt_sel = None
                    length = None
                else:
                    cr_rows = is_cr.nonzero(as_tuple=True)[0]
                    st_sel = (is_st.long().cumsum(0) - 1)[cr_rows]
                    mt_sel = (is_mt.long().cumsum(0) - 1)[cr_rows]
                    length = int(text_lengths[cr_rows].max()) + 1
                st_sel2 = self._both_copies(st_sel, n_st) if rdrop else st_sel
                mt_sel2 = None if mt_sel is None else (torch.cat([mt_sel, mt_sel]) if rdrop
                                                       else mt_sel)
                if self.consistency_type == "enc_mse":
                    st_h, st_h_lens = self._take(enc, st_sel2), self._take(enc_lens, st_sel2)
                    if mt_sel2 is None:
                        mt_h = double_batch(mt_enc) if rdrop else mt_enc
                        mt_h_lens = double_batch(mt_enc_lens) if rdrop else mt_enc_lens
                    else:
                        mt_h, mt_h_lens = mt_enc[mt_sel2], mt_enc_lens[mt_sel2]
                    loss_cr = consistency_loss(
                        None, None, None, kind="enc_mse",
                        detach_mt=self.consistency_detach_mt,
                        st_hidden=st_h, mt_hidden=mt_h,
                        hidden_mask=self._valid(st_h_lens, st_h),
                        mt_hidden_mask=self._valid(mt_h_lens, mt_h),
                        pool="mean", reduction=token_mean,
                    )
                else:
                    if mt_sel2 is None:
                        st_l, mt_l, mask = st_logits, mt_logits, tgt_mask
                        if rdrop:
                            mt_l = double_batch(mt_l)
                    else:
                        st_l = st_logits[st_sel2, :length]
                        mt_l = mt_logits[mt_sel2, :length]
                        mask = tgt_mask[st_sel2, :length]
                    loss_cr = consistency_loss(
                        st_l, mt_l, mask, kind=self.consistency_type,
                        direction=self.consistency_direction,
                        detach_mt=self.consistency_detach_mt,
                        temperature=self.consistency_temperature, reduction=token_mean,
                    )
                if not self.length_normalized_loss:  # else: a mean already
                    loss_cr = loss_cr / (n_cr * copies)

        loss = (
            loss_st
            + self.asr_ctc_weight * loss_asr_ctc
            + self.asr_att_weight * loss_asr_att
            + self.mt_weight * loss_mt
            + self.st_ctc_weight * loss_st_ctc
            + self.consistency_weight * loss_cr
            + self.rdrop_weight * loss_rd
        )
        if self.training and not loss.requires_grad:
            raise RuntimeError(
                f"model mtl_st: no example of this batch feeds a loss (batch of "
                f"{batch_size}: {n_st} with speech+translation, {n_asr} with "
                f"speech+transcript, {n_mt} with transcript+translation); check the "
                "mixed-source data against the model_conf weights")

        def stat(value, weight, rows):
            # A weight-0 loss reads 0; a used loss with no example in this batch
            # is missing (None: ESPnet's reporter skips it when averaging).
            return value.detach() if weight == 0 or rows > 0 else None

        stats = dict(
            loss=loss.detach(),
            loss_st=stat(loss_st, 1.0, n_st),
            loss_asr_ctc=stat(loss_asr_ctc, self.asr_ctc_weight, n_asr),
            loss_asr_att=stat(loss_asr_att, self.asr_att_weight, n_asr),
            loss_mt=stat(loss_mt, self.mt_weight, n_mt),
            loss_st_ctc=stat(loss_st_ctc, self.st_ctc_weight, n_st),
            loss_cr=stat(loss_cr, self.consistency_weight,
                         int(is_cr.sum())),
            loss_rd=stat(loss_rd, self.rdrop_weight, n_st),
            acc=acc,
            acc_mt=acc_mt,
            acc_asr=acc_asr,
            bleu=bleu,
        )
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def collect_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        src_text: Optional[torch.Tensor] = None,
        src_text_lengths: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Dict[str, torch.Tensor]:
        feats, feats_lengths = self._extract_feats(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": feats_lengths}

