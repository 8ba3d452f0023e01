"""Build `mtl_st` from the task's parsed arguments (ESPnet's component choices).

Which optional heads are built follows the objectives that are on (and the
adapter: CTC shrinking reads the CTC head): a head nothing uses is not built
(no unused parameters under DDP).
"""

from __future__ import annotations

import argparse

from espnet2.asr.ctc import CTC

from espnet_mtl import registry
from espnet_mtl.fileio import read_lines
from espnet_mtl.modules.textual_encoder import merge_textual_conf


def _read_tokens(value, what):
    if isinstance(value, str):
        return [line.rstrip() for line in read_lines(value)]
    if isinstance(value, (tuple, list)):
        return list(value)
    raise RuntimeError(f"{what} must be str or list")


def build_mtl_st(cls, args: argparse.Namespace):
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

    token_list = _read_tokens(args.token_list, "token_list")
    args.token_list = list(token_list)  # portable config.yaml, as ESPnet does
    vocab_size = len(token_list)
    if getattr(args, "src_token_list", None) is not None:
        src_token_list = _read_tokens(args.src_token_list, "src_token_list")
        args.src_token_list = list(src_token_list)
        src_vocab_size = len(src_token_list)
    else:
        src_token_list, src_vocab_size = None, None

    model_conf = dict(getattr(args, "model_conf", None) or {})
    unknown = set(model_conf) - set(cls.model_conf_defaults())
    if unknown:
        raise ValueError(f"unknown model_conf keys for model mtl_st: {sorted(unknown)}")
    heads = {h for name in cls.objectives_on(model_conf)
             for h in registry.get("objective", name).heads}
    adapter = registry.get("adapter", model_conf.get("adapter", "linear"), key="model_conf.adapter")
    heads |= set(getattr(adapter, "heads", ()))  # e.g. CTC length shrinking reads the CTC head

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
    encoder = encoder_choices.get_class(args.encoder)(input_size=input_size, **args.encoder_conf)
    acoustic_size = encoder.output_size()
    text_conf = merge_textual_conf(model_conf.get("textual_encoder_conf"))
    text_size = text_conf.get("output_size") or acoustic_size

    # 3. decoder (shared by ST and MT)
    if args.decoder == "transducer":
        raise ValueError("decoder: transducer is not supported by model mtl_st (its "
                         "decoder is shared with the MT path); use an attention decoder "
                         "such as transformer")
    decoder = decoder_choices.get_class(args.decoder)(
        vocab_size=vocab_size, encoder_output_size=text_size, **args.decoder_conf)

    # 4. heads, built only when an objective uses them
    ctc_conf = dict(getattr(args, "ctc_conf", None) or {})
    ctc = st_ctc = extra_asr_decoder = None
    if "ctc" in heads and src_vocab_size is not None:
        ctc = CTC(odim=src_vocab_size, encoder_output_size=acoustic_size, **ctc_conf)
    if "st_ctc" in heads:
        st_ctc = CTC(odim=vocab_size, encoder_output_size=text_size, **ctc_conf)
    if ("extra_asr_decoder" in heads and src_vocab_size is not None
            and getattr(args, "extra_asr_decoder", None) is not None):
        extra_asr_decoder = extra_asr_decoder_choices.get_class(args.extra_asr_decoder)(
            vocab_size=src_vocab_size, encoder_output_size=acoustic_size,
            **args.extra_asr_decoder_conf)

    model = cls(
        vocab_size=vocab_size, token_list=token_list, frontend=frontend, specaug=specaug,
        normalize=normalize, preencoder=preencoder, encoder=encoder, decoder=decoder,
        ctc=ctc, st_ctc=st_ctc, extra_asr_decoder=extra_asr_decoder,
        src_vocab_size=src_vocab_size, src_token_list=src_token_list, **model_conf)
    if getattr(args, "init", None) is not None:
        initialize(model, args.init)
    return model

