"""Decode one path of an `mtl_st` model with ESPnet's own inference programs.

    python -m espnet_mtl.bin.path_inference mt  <espnet2.bin.mt_inference options>
    python -m espnet_mtl.bin.path_inference asr <espnet2.bin.asr_inference options>

`mt` reads transcripts (`--data_path_and_name_and_type <dir>/text.<src>,src_text,text`)
and takes `--mt_train_config/--mt_model_file`; `asr` reads speech and takes
`--asr_train_config/--asr_model_file`; a model without an ASR attention
decoder (asr_att_weight 0) is decoded with its CTC alone (`--ctc_weight 1.0`
is then forced, one utterance at a time). `--batch_size N` (N > 1, which ESPnet
refuses) decodes N utterances per search (`espnet_mtl.inference.batched_decoding`).
Outputs are ESPnet's: `<output_dir>/1best_recog/text`.
"""

import logging
import sys

from espnet_mtl.inference.batched_decoding import (batched_asr_path_inference,
                                                   batched_mt_path_inference, run_parsed)
from espnet_mtl.inference.path_inference import ASRPathTask, MTPathTask, has_asr_decoder
from espnet_mtl.inference.speech2text import bound_task

USAGE = __doc__


def _has_asr_decoder(argv) -> bool:
    config = None
    for a, b in zip(argv, argv[1:]):
        if a == "--asr_train_config":
            config = b
    return config is None or has_asr_decoder(config)  # no config: ESPnet reports it


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("mt", "asr"):
        sys.exit(f"usage: first argument 'mt' or 'asr'\n{USAGE}")
    path, rest = argv[0], argv[1:]
    if path == "mt":
        import espnet2.bin.mt_inference as inference

        task_name, task, batched = "MTTask", MTPathTask, batched_mt_path_inference
    else:
        import espnet2.bin.asr_inference as inference

        task_name, task, batched = "ASRTask", ASRPathTask, batched_asr_path_inference
        if not _has_asr_decoder(rest):
            logging.basicConfig(level=logging.INFO)
            logging.info("no ASR attention decoder in this model: CTC-only decoding "
                         "(--ctc_weight 1.0), one utterance at a time")
            rest += ["--ctc_weight", "1.0", "--batch_size", "1"]
    args = inference.get_parser().parse_args(rest)
    if args.batch_size > 1:  # ESPnet refuses; ours batches utterances
        return run_parsed(batched, args, f"path_inference {path}")
    # ESPnet's program looks its task up by module-level name: ours while it runs
    with bound_task(inference, task_name, task):
        inference.main(rest)


if __name__ == "__main__":
    main()
