"""`--batch_size N` decoding for ESPnet's inference programs, which refuse N > 1.

The same options and output files as ESPnet's `inference()` of `st_inference`
(our ST models), `mt_inference` (the MT path of a multi-task model) and
`asr_inference` (its ASR path, with an ASR attention decoder):
`<output_dir>/<n>best_recog/{text,token,token_int,score}`. Each batch of N
utterances is encoded at once (`batch_encode`) and searched together
(`batch_beam_search`); the decoder object of ESPnet's program (Speech2Text,
Text2Text) is built as ESPnet builds it, for its model, converter and tokenizer.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

import torch

from espnet_mtl.inference.batch_beam_search import UtteranceBatchBeamSearch
from espnet_mtl.inference.batch_encode import encode_batch


def run_parsed(decode: Callable, args: argparse.Namespace, program: str) -> None:
    """`decode(**options)` with the options ESPnet's parser gave; what the batched
    search cannot do exits with the program's error message."""
    kwargs = vars(args)
    kwargs.pop("config", None)
    try:
        decode(**kwargs)
    except ValueError as e:
        sys.exit(f"{program}: error: {e}")


def _refuse_what_the_search_lacks(ctc_weight, ngpu, lm_train_config=None, ngram_file=None,
                                  **_):
    if ctc_weight > 0 or lm_train_config is not None or ngram_file is not None:
        raise ValueError("batched decoding (--batch_size > 1) runs the attention decoder alone: "
                         "CTC prefix scoring (--ctc_weight > 0) and LM / n-gram fusion need "
                         "--batch_size 1")
    if ngpu > 1:
        raise ValueError("only single GPU decoding is supported")


def _between_sos_and_eos(model, yseq: torch.Tensor) -> list:
    """The tokens ESPnet's ST and ASR programs write: <sos> and the last token (<eos>)
    cut off, blanks (0) removed."""
    return [t for t in yseq[1:-1].tolist() if t != 0]


def _without_sos_eos(model, yseq: torch.Tensor) -> list:
    """The tokens ESPnet's MT program writes: every <sos>, <eos> and blank removed."""
    return [t for t in yseq.tolist() if t not in (model.sos, model.eos, 0)]


def _decode(opts: dict, decoder_obj, model, encode: Callable, loader,
            tokens_of: Callable = _between_sos_and_eos) -> None:
    """Every batch of `loader` encoded by `encode(batch)`, searched, and written."""
    from espnet2.fileio.datadir_writer import DatadirWriter

    if getattr(model, "decoder", None) is None:
        raise ValueError("this model path has no attention decoder (CTC only): decode it "
                         "with --batch_size 1")
    search = UtteranceBatchBeamSearch(model.decoder, model.sos, model.eos, opts["beam_size"],
                                      opts["penalty"], opts["nbest"], opts["normalize_length"])
    done = 0
    with DatadirWriter(opts["output_dir"]) as writer:
        for keys, batch in loader:
            with torch.no_grad():
                enc, enc_lens = encode(batch)
            for key, hyps in zip(keys, search(enc, enc_lens, opts["maxlenratio"],
                                              opts["minlenratio"])):
                for n, hyp in enumerate(hyps, 1):
                    token_int = tokens_of(model, hyp.yseq)
                    token = decoder_obj.converter.ids2tokens(token_int)
                    out = writer[f"{n}best_recog"]
                    out["token"][key] = " ".join(token)
                    out["token_int"][key] = " ".join(map(str, token_int))
                    out["score"][key] = str(hyp.score)
                    if decoder_obj.tokenizer is not None:
                        out["text"][key] = decoder_obj.tokenizer.tokens2text(token)
            done += len(keys)
            logging.info("decoded %d utterances", done)


def _setup(opts: dict) -> str:
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed

    _refuse_what_the_search_lacks(**opts)
    logging.basicConfig(level=opts["log_level"],
                        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    set_all_random_seed(opts["seed"])
    return "cuda" if opts["ngpu"] >= 1 else "cpu"


def _decoder_kwargs(opts: dict, prefix: str, device: str) -> dict:
    return dict({f"{prefix}_train_config": opts[f"{prefix}_train_config"],
                 f"{prefix}_model_file": opts[f"{prefix}_model_file"]},
                device=device, dtype=opts["dtype"], beam_size=opts["beam_size"],
                ctc_weight=0.0, lm_weight=0.0, penalty=opts["penalty"], nbest=opts["nbest"],
                maxlenratio=opts["maxlenratio"], minlenratio=opts["minlenratio"],
                normalize_length=opts["normalize_length"], token_type=opts["token_type"],
                bpemodel=opts["bpemodel"])


def _loader(task, opts: dict, train_args):
    return task.build_streaming_iterator(
        opts["data_path_and_name_and_type"], dtype=opts["dtype"],
        batch_size=opts["batch_size"], key_file=opts["key_file"],
        num_workers=opts["num_workers"], preprocess_fn=task.build_preprocess_fn(train_args, False),
        collate_fn=task.build_collate_fn(train_args, False),
        allow_variable_data_keys=opts["allow_variable_data_keys"], inference=True)


def _speech_encoder(model, encode=None):
    def encode_speech(batch):
        speech, lens = batch["speech"], batch["speech_lengths"]
        return encode_batch(model, [speech[i, : lens[i]] for i in range(len(lens))], encode)
    return encode_speech


def batched_st_inference(**opts) -> None:
    """ESPnet's `st_inference.inference(**opts)` with `batch_size` utterances a search."""
    from espnet_mtl.inference.speech2text import Speech2Text
    from espnet_mtl.tasks.st import MTLSTTask

    device = _setup(opts)
    s2t = Speech2Text.from_pretrained(opts["model_tag"], **_decoder_kwargs(opts, "st", device))
    _decode(opts, s2t, s2t.st_model, _speech_encoder(s2t.st_model),
            _loader(MTLSTTask, opts, s2t.st_train_args))


def batched_mt_path_inference(**opts) -> None:
    """ESPnet's `mt_inference.inference(**opts)` on a multi-task model's MT path, batched."""
    import espnet2.bin.mt_inference as mt_inference

    from espnet_mtl.inference.path_inference import MTPathTask
    from espnet_mtl.inference.speech2text import bound_task

    device = _setup(opts)
    with bound_task(mt_inference, "MTTask", MTPathTask):
        t2t = mt_inference.Text2Text.from_pretrained(opts["model_tag"],
                                                     **_decoder_kwargs(opts, "mt", device))
    view = t2t.mt_model
    _decode(opts, t2t, view, lambda b: view.encode(b["src_text"], b["src_text_lengths"]),
            _loader(MTPathTask, opts, t2t.mt_train_args), _without_sos_eos)


def batched_asr_path_inference(**opts) -> None:
    """ESPnet's `asr_inference.inference(**opts)` on a multi-task model's ASR path (its
    ASR attention decoder), batched."""
    import espnet2.bin.asr_inference as asr_inference

    from espnet_mtl.inference.path_inference import ASRPathTask
    from espnet_mtl.inference.speech2text import bound_task

    device = _setup(opts)
    with bound_task(asr_inference, "ASRTask", ASRPathTask):
        s2t = asr_inference.Speech2Text.from_pretrained(opts["model_tag"],
                                                        **_decoder_kwargs(opts, "asr", device))
    view = s2t.asr_model
    _decode(opts, s2t, view, _speech_encoder(view.model, view.encode),
            _loader(ASRPathTask, opts, s2t.asr_train_args))
