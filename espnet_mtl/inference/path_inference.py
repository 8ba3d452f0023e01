"""Decode the MT path and the ASR path of a trained `mtl_st` model (analysis).

ESPnet's `espnet2.bin.mt_inference` (Text2Text) and `espnet2.bin.asr_inference`
(Speech2Text) decode any model that looks like an MT or ASR model. We give
them a view of one path of our model, through the same binding trick as our
ST entry point: their module-level task names point at the tasks below, whose
`build_model_from_file` builds the `mtl_st` model and returns the view.

    MT  path: transcript tokens -> embedding -> shared textual encoder ->
              shared decoder (target vocabulary)
    ASR path: speech -> acoustic encoder -> source CTC (and the ASR attention
              decoder when the model has one: asr_att_weight > 0)

The views share the model's modules (no copy); the training config gives
the tokenizers: the target's for MT output, the source's for ASR output.
"""

from __future__ import annotations

import argparse
import copy

import torch
import yaml

from espnet_mtl.models.mtl_st import MTLSTModel
from espnet_mtl.tasks.st import MTLSTTask


def has_asr_decoder(config_file) -> bool:
    """Whether the model of this training config has an ASR attention decoder (else its
    ASR path is decoded with CTC alone); the objectives that are on, whether given as a
    table or with the flat keys."""
    with open(config_file, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    return "asr_att" in MTLSTModel.objectives_on(conf.get("model_conf"))


def _load_mtl_st(config_file, model_file, device):
    model, args = MTLSTTask.build_model_from_file(config_file, model_file, device)
    if not isinstance(model, MTLSTModel):
        raise ValueError(
            f"{config_file}: model '{getattr(args, 'model', 'espnet')}' has no separate MT "
            "or ASR path; MT/ASR path decoding needs a model trained with `model: mtl_st`")
    return model, args


class MTPathView(torch.nn.Module):
    """What ESPnet's Text2Text reads from an MT model."""

    def __init__(self, model: MTLSTModel):
        super().__init__()
        if model.mt_embed is None:
            raise ValueError("this mtl_st model has no MT path (trained with mt_weight = "
                             "consistency_weight = 0): there is nothing to decode")
        self.model = model
        if hasattr(model, "decode_task"):  # task-aware models: FiLM with the MT embedding
            model.decode_task = "mt"
        self.decoder = model.decoder
        self.ctc = None  # no target CTC on the MT path: use --ctc_weight 0
        self.token_list = model.token_list
        self.sos, self.eos = model.sos, model.eos

    def encode(self, src_text: torch.Tensor, src_text_lengths: torch.Tensor):
        return self.model.encode_text(src_text, src_text_lengths)


class ASRPathView(torch.nn.Module):
    """What ESPnet's (ASR) Speech2Text reads from an ASR model."""

    def __init__(self, model: MTLSTModel):
        super().__init__()
        if model.ctc is None:
            raise ValueError("this mtl_st model has no ASR CTC head (trained with "
                             "asr_ctc_weight = 0): there is nothing to decode")
        self.model = model
        if hasattr(model, "decode_task"):  # task-aware models: FiLM with the ASR embedding
            model.decode_task = "asr"
        self.ctc = model.ctc
        # None without an ASR attention decoder: decode with --ctc_weight 1.0
        self.decoder = model.extra_asr_decoder
        self.token_list = model.src_token_list
        self.sos, self.eos = model.src_sos, model.src_eos
        self.blank_id = 0
        self.use_transducer_decoder = False
        self.joint_network = None

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor):
        return self.model.encode_acoustic(speech, speech_lengths)


class MTPathTask(MTLSTTask):
    """For espnet2.bin.mt_inference: data is `src_text` only; output in the target vocab."""

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False):
        return ("src_text",)

    @classmethod
    def build_model_from_file(cls, config_file=None, model_file=None, device="cpu"):
        model, args = _load_mtl_st(config_file, model_file, device)
        return MTPathView(model), args


class ASRPathTask(MTLSTTask):
    """For espnet2.bin.asr_inference: the source tokenizer writes the output."""

    @classmethod
    def build_model_from_file(cls, config_file=None, model_file=None, device="cpu"):
        model, args = _load_mtl_st(config_file, model_file, device)
        args = argparse.Namespace(**copy.deepcopy(vars(args)))
        args.token_type = args.src_token_type
        args.bpemodel = args.src_bpemodel
        args.token_list = args.src_token_list
        return ASRPathView(model), args
