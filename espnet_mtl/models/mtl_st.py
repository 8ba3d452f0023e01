"""Multi-task speech translation model (`--model mtl_st`): the backbone's passes.

Backbone of methods.md section 0 (seed 001's regularizers are objectives):

    speech -> frontend -> specaug (train) -> normalize -> [preencoder]
           -> acoustic encoder (any ESPnet encoder choice)
           -> adapter (`linear`: Linear when sizes differ; `shrink_lbm`: CTC
              length shrinking + Looking-Back) -> textual encoder (with
              `block_hooks` between its blocks: `local_to_global`, ...)
           -> attention decoder (shared) -> target

    transcript -> embedding + positional encoding -> the SAME textual encoder
               -> the SAME decoder -> target                       (MT task)

The model computes *passes* over the rows of a batch that carry each pass's
fields (`espnet_mtl.objectives.base.PassOutput`):

    speech   acoustic encoder over the rows with speech      needs speech
    st       textual encoder + decoder, teacher forced       needs speech, text
    asr      acoustic states + transcript tokens             needs speech, src_text
    asr_att  the ASR attention decoder                       needs speech, src_text
    mt       transcript -> textual encoder + decoder         needs src_text, text

and only the passes that the objectives which are on read. The objectives
(`model_conf.objectives`, table in `espnet_mtl.registry`) turn pass outputs
into losses; `forward` returns ESPnet's (loss, stats, weight) with the
configured weighted sum, or with `return_objectives=True` a dict that also
holds each objective's loss with its graph, for the training strategies.
Heads and paths that no objective uses are not built (no unused parameters
under DDP). An objective may ask for two dropout copies of the speech rows
(R-drop): every speech pass then runs over [rows; rows] in one forward.

The class keeps the interface that ESPnet's trainer, collect_stats and
`espnet2.bin.st_inference.Speech2Text` use: forward -> (loss, stats, weight),
collect_feats, encode(..., return_int_enc), decoder, ctc, st_ctc, sos/eos,
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
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet.nets.e2e_mt_common import ErrorCalculator as MTErrorCalculator
from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos
from espnet.nets.pytorch_backend.transformer.embedding import PositionalEncoding

from espnet_mtl import objectives as objective_table
from espnet_mtl.fileio import read_lines
from espnet_mtl.losses.consistency import double_batch
from espnet_mtl.models.passes import PassModel, rows_of, take
from espnet_mtl.modules.adapters import build_adapter
from espnet_mtl.modules.textual_encoder import (  # noqa: F401 (re-exported)
    TEXTUAL_ENCODER_DEFAULTS,
    TextualEncoder,
    build_block_hook,
    merge_textual_conf,
)
from espnet_mtl.objectives import ObjectiveContext, PassOutput

#: pass -> the batch fields its rows must carry
PASS_FIELDS = {"speech": ("speech",), "st": ("speech", "text"),
               "asr": ("speech", "src_text"), "asr_att": ("speech", "src_text"),
               "mt": ("src_text", "text")}
#: pass -> the fields it computes (what objectives may read as "pass.field")
PASS_PROVIDES = {
    "speech": ("hidden", "lens"),
    "st": ("logits", "target", "mask", "tokens", "token_lens", "hidden", "hidden_lens"),
    "asr": ("hidden", "hidden_lens", "tokens", "token_lens", "target_in", "target"),
    "asr_att": ("logits", "target"),
    "mt": ("logits", "target", "mask", "hidden", "hidden_lens"),
}
#: pass -> the passes it builds on
PASS_INPUTS = {"st": ("speech",), "asr": ("speech",), "asr_att": ("asr",)}


_rows, _take = rows_of, take  # (task_aware imports these names)


def _both_copies(idx: Optional[torch.Tensor], n: int) -> Optional[torch.Tensor]:
    """Row indices of a sub-batch selected in both halves of a doubled batch."""
    return None if idx is None else torch.cat([idx, idx + n])


class MTLSTModel(PassModel):
    """Conformer CTC/attention ST with a shared textual encoder and an MT path."""

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
        adapter: str = "linear",
        adapter_conf: Optional[dict] = None,
        mt_input_norm: bool = False,
        block_hooks: Optional[dict] = None,
        objectives: Optional[dict] = None,
        # The seed-001 configs' flat keys (espnet_mtl.objectives explains them);
        # None = not given. New objectives are configured under `objectives`.
        asr_ctc_weight: Optional[float] = None,
        asr_att_weight: Optional[float] = None,
        mt_weight: Optional[float] = None,
        st_ctc_weight: Optional[float] = None,
        consistency_weight: Optional[float] = None,
        consistency_type: Optional[str] = None,
        consistency_direction: Optional[str] = None,
        consistency_detach_mt: Optional[bool] = None,
        consistency_temperature: Optional[float] = None,
        rdrop_weight: Optional[float] = None,
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
        flat = {k: v for k, v in locals().items() if k in objective_table.legacy_keys()}
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
        self.length_normalized_loss = bool(length_normalized_loss)
        self.extract_feats_in_collect_stats = extract_feats_in_collect_stats

        # -- objectives: which are listed, which are on, what they read ------
        self.setup_objectives(objectives, flat, ObjectiveContext(
            ignore_id=ignore_id, vocab_size=vocab_size, src_vocab_size=src_vocab_size,
            lsm_weight=lsm_weight, length_normalized=self.length_normalized_loss))
        needs_src = any("src_text" in PASS_FIELDS[p] for p in self.passes)
        if needs_src and src_vocab_size is None:
            raise ValueError(
                f"objectives {sorted(self.uses_src())} need the source vocabulary: pass "
                "--src_token_list")

        # -- speech path ---------------------------------------------------------
        self.frontend = frontend
        self.specaug = specaug
        self.normalize = normalize
        self.preencoder = preencoder
        self.encoder = encoder
        conf = merge_textual_conf(textual_encoder_conf)
        size = conf.get("output_size") or encoder.output_size()
        self.textual_encoder_conf = conf
        self.adapter = build_adapter(adapter, adapter_conf, encoder.output_size(), size)
        self.textual_encoder = TextualEncoder(size, conf)
        self.decoder = decoder

        # -- MT path: embedding + positions into the shared textual encoder ------
        if "mt" in self.passes:
            self.mt_embed = torch.nn.Embedding(src_vocab_size, size)
            self.mt_pos_enc = PositionalEncoding(size, conf.get("positional_dropout_rate", 0.1))
            # The positional encoding scales the embeddings by sqrt(size) (~12x the
            # layer-normalised acoustic encoder output at 144): the issue-13 option
            # normalises them so both paths enter the shared layers at one scale.
            self.mt_input_norm = torch.nn.LayerNorm(size) if mt_input_norm else None
        else:
            self.mt_embed = None
            self.mt_pos_enc = None
            self.mt_input_norm = None

        # -- heads, kept only when an objective uses them -------------------------
        heads = {h for o in self.objectives.values() for h in o.heads}
        heads |= set(getattr(self.adapter, "heads", ()))  # e.g. CTC length shrinking
        for name, module, missing in (
            ("ctc", ctc, "a CTC module"),
            ("extra_asr_decoder", extra_asr_decoder,
             "an ASR decoder: pass --extra_asr_decoder (e.g. transformer) and "
             "--extra_asr_decoder_conf"),
            ("st_ctc", st_ctc, "an st_ctc module"),
        ):
            if name in heads and module is None:
                users = [f"objective {n}" for n, o in self.objectives.items()
                         if name in o.heads] or [f"adapter {adapter}"]
                raise ValueError(f"{users[0]} needs {missing}")
            if name in heads:
                setattr(self, name, module)
            elif name != "st_ctc":
                # st_ctc stays absent: Speech2Text(ctc_weight > 0) then fails its own
                # `hasattr(st_model, "st_ctc")` check instead of using an untrained head.
                setattr(self, name, None)
        if hasattr(self.adapter, "bind"):  # adapters that read a head (CTC shrinking)
            self.adapter.bind(self)
        # methods acting between textual-encoder blocks (L2G before, FiLM after, ...)
        self.block_hooks = torch.nn.ModuleDict({
            name: build_block_hook(name, hook_conf, self.textual_encoder)
            for name, hook_conf in (block_hooks or {}).items()})
        # parameters an objective owns (the CPC head), only for objectives that are on:
        # no unused parameters under DDP, and no new state_dict keys without them
        self.objective_modules = torch.nn.ModuleDict({
            name: module for name, module in (
                (n, o.build_module(encoder.output_size())) for n, o in self.objectives.items())
            if module is not None})
        self.mt_error_calculator = (
            MTErrorCalculator(token_list, tgt_sym_space, tgt_sym_blank, report_bleu)
            if report_bleu else None)

        # -- attributes read by Speech2Text -------------------------------------------
        self.use_multidecoder = False
        self.md_encoder = None
        self.use_speech_attn = False
        self.st_use_transducer_decoder = False
        self.st_joint_network = None
        self.hier_encoder = None
        self.postencoder = None
        # checkpoints from before the adapter choice name its Linear `encoder_proj`
        self._register_load_state_dict_pre_hook(_rename_encoder_proj)

    # -- the seed-001 flat keys as attributes (model.mt_weight, ...) ------------------
    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            target = objective_table.legacy_keys().get(name)
            if target is None or "_listed" not in self.__dict__:
                raise
            objective, option = target
            if option == "weight":
                return self.objective_weights.get(objective, 0.0)
            if objective in self.objectives:
                return getattr(self.objectives[objective], option)
            # off: the configured value, else the objective's default
            spec = self._listed.get(objective, {})
            if option in spec:
                return spec[option]
            cls = objective_table.registry.get("objective", objective)
            return inspect.signature(cls.__init__).parameters[option].default

    def __setattr__(self, name, value):
        target = (objective_table.legacy_keys().get(name)
                  if "_listed" in self.__dict__ else None)
        if target is not None and target[1] != "weight" and target[0] in self.objectives:
            setattr(self.objectives[target[0]], target[1], value)
            return
        super().__setattr__(name, value)

    @property
    def encoder_proj(self):
        """The Linear of the `linear` adapter (None when sizes match), as before adapters."""
        return getattr(self.adapter, "proj", None)

    # ------------------------------------------------------------------------
    # construction from the task's parsed arguments
    # ------------------------------------------------------------------------
    @classmethod
    def build_from_task_args(cls, args: argparse.Namespace, task=None) -> "MTLSTModel":
        from espnet_mtl.models.build import build_mtl_st

        return build_mtl_st(cls, args)

    # ------------------------------------------------------------------------
    # encoders (also used by decoding)
    # ------------------------------------------------------------------------
    def _extract_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        assert speech_lengths.dim() == 1, speech_lengths.shape
        speech = speech[:, : speech_lengths.max()]
        if self.frontend is not None:
            return self.frontend(speech, speech_lengths)
        return speech, speech_lengths

    def encode_acoustic(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, copies: int = 1
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frontend -> specaug (train) -> normalize -> [preencoder] -> acoustic encoder.

        `copies=2` (R-drop) augments the features once and then runs them twice in
        one forward, [feats; feats]: the two copies differ by dropout only.
        """
        with torch.autocast(device_type=speech.device.type, enabled=False):
            feats, feats_lengths = self._extract_feats(speech, speech_lengths)
            if self.specaug is not None and self.training:
                feats, feats_lengths = self.specaug(feats, feats_lengths)
            if copies == 2:
                feats, feats_lengths = double_batch(feats), double_batch(feats_lengths)
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
        """Adapter -> shared textual encoder, for acoustic-encoder outputs."""
        # A sub-batch (e.g. the ST rows of a mixed batch) can be padded beyond its
        # own longest row, and the encoder's mask has only max(lens) frames.
        acoustic_out = acoustic_out[:, : int(acoustic_lens.max())]
        xs, lens = self.adapter(acoustic_out, acoustic_lens)
        return self.textual_encoder(xs, lens)

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
               return_int_enc: bool = False):
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
            raise RuntimeError("this model has no MT path (no objective on reads the MT "
                               "pass, e.g. mt_ce or consistency)")
        src_text = src_text[:, : src_text_lengths.max()]
        tokens = src_text.masked_fill(src_text < 0, 0)
        xs = self.mt_pos_enc(self.mt_embed(tokens))
        if self.mt_input_norm is not None:
            xs = self.mt_input_norm(xs)
        return self.textual_encoder(xs, src_text_lengths)

    # ------------------------------------------------------------------------
    # passes: what each computes over the rows that carry its fields
    # ------------------------------------------------------------------------
    def _teacher_forcing(self, tokens, lens, rows, copies, sos, eos):
        ys, ys_lens = _take(tokens, rows), _take(lens, rows)
        ys = ys[:, : ys_lens.max()]
        if copies == 2:
            ys, ys_lens = double_batch(ys), double_batch(ys_lens)
        ys_in, ys_out = add_sos_eos(ys, sos, eos, self.ignore_id)
        return ys, ys_lens, ys_in, ys_out

    def _speech_pass(self, b, out, covers):
        rows = _rows(covers)
        sp, sp_lens = _take(b["speech"], rows), _take(b["speech_lengths"], rows)
        copies = self.speech_copies if self.training else 1  # no dropout pair in eval
        hidden, lens = self.encode_acoustic(sp, sp_lens, copies)  # [rows; rows] if 2
        return PassOutput(covers, copies, dict(hidden=hidden, lens=lens))

    def _speech_rows(self, out, covers):
        """Acoustic states of the speech rows in `covers` (both copies)."""
        speech = out["speech"]
        pos = _rows(covers[speech.covers])
        if speech.copies == 2:
            pos = _both_copies(pos, speech.count)
        return _take(speech["hidden"], pos), _take(speech["lens"], pos)

    def _st_pass(self, b, out, covers):
        copies = out["speech"].copies
        enc, enc_lens = self.encode_textual(*self._speech_rows(out, covers))
        ys, ys_lens, ys_in, ys_out = self._teacher_forcing(
            b["text"], b["text_lengths"], _rows(covers), copies, self.sos, self.eos)
        logits, _ = self.decoder(enc, enc_lens, ys_in, ys_lens + 1)
        return PassOutput(covers, copies, dict(
            logits=logits, target=ys_out, mask=ys_out != self.ignore_id, tokens=ys,
            token_lens=ys_lens, hidden=enc, hidden_lens=enc_lens))

    def _asr_pass(self, b, out, covers):
        copies = out["speech"].copies
        hidden, lens = self._speech_rows(out, covers)
        src, src_lens, src_in, src_out = self._teacher_forcing(
            b["src_text"], b["src_text_lengths"], _rows(covers), copies,
            self.src_sos, self.src_eos)
        return PassOutput(covers, copies, dict(
            hidden=hidden, hidden_lens=lens, tokens=src, token_lens=src_lens,
            target_in=src_in, target=src_out))

    def _asr_att_pass(self, b, out, covers):
        asr = out["asr"]
        logits, _ = self.extra_asr_decoder(asr["hidden"], asr["hidden_lens"],
                                           asr["target_in"], asr["token_lens"] + 1)
        return PassOutput(asr.covers, asr.copies, dict(logits=logits, target=asr["target"]))

    def _mt_pass(self, b, out, covers):
        rows = _rows(covers)
        enc, enc_lens = self.encode_text(_take(b["src_text"], rows),
                                         _take(b["src_text_lengths"], rows))
        ys, ys_lens, ys_in, ys_out = self._teacher_forcing(
            b["text"], b["text_lengths"], rows, 1, self.sos, self.eos)
        logits, _ = self.decoder(enc, enc_lens, ys_in, ys_lens + 1)
        return PassOutput(covers, 1, dict(logits=logits, target=ys_out,
                                          mask=ys_out != self.ignore_id, hidden=enc,
                                          hidden_lens=enc_lens))

    #: pass name -> method, in the order they run (the order dropout draws are taken)
    PASS_ORDER = (("speech", _speech_pass), ("st", _st_pass), ("asr", _asr_pass),
                  ("asr_att", _asr_att_pass), ("mt", _mt_pass))
    model_name = "mtl_st"
    PASS_FIELDS, PASS_PROVIDES, PASS_INPUTS = PASS_FIELDS, PASS_PROVIDES, PASS_INPUTS


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


def _rename_encoder_proj(state_dict, prefix, *args):
    for key in [k for k in state_dict if k.startswith(prefix + "encoder_proj.")]:
        state_dict[prefix + "adapter.proj." + key[len(prefix + "encoder_proj."):]] = \
            state_dict.pop(key)
