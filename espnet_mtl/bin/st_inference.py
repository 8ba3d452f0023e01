"""Decoding entry point: `python -m espnet_mtl.bin.st_inference`.

Same options and outputs as ESPnet's `espnet2.bin.st_inference`, and the same
module-level names (`get_parser`, `main`, `Speech2Text`, `inference`), so ESPnet's
scripts and tests run against this module. ESPnet's inference module looks its
task up through its module-level name `STTask`; `main` binds that name to our
task while it runs (and restores it), so `Speech2Text` builds the model chosen by
`model:` in the training config (ESPnet's own code path otherwise).
`--batch_size N` (N > 1, which ESPnet refuses) decodes N utterances per beam
search (`espnet_mtl.inference.batched_decoding`).

`--task asr|mt` decodes the model's ASR or MT path instead (a multi-task or
task-aware model: one checkpoint, three tasks) through
`espnet_mtl.bin.path_inference`: `--st_train_config` / `--st_model_file` are
passed on as `--asr_*` / `--mt_*`; MT reads transcripts, so give
`--data_path_and_name_and_type <dir>/text.<src>,src_text,text`. `--task st`
(the default) is ESPnet's ST decoding.
"""

import sys

import espnet2.bin.st_inference as espnet_st_inference

from espnet_mtl.inference.speech2text import Speech2Text, bound_task  # noqa: F401 (module API)

inference = espnet_st_inference.inference

TASKS = ("st", "asr", "mt")


def _pop_task(argv):
    """(task, the other arguments) from `--task X` / `--task=X`."""
    task, rest, i = "st", [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--task":
            if i + 1 >= len(argv):
                sys.exit("--task needs a value: st, asr or mt")
            task, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--task="):
            task = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    if task not in TASKS:
        sys.exit(f"--task {task}: choose one of {', '.join(TASKS)}")
    return task, rest


def main(cmd=None):
    argv = list(sys.argv[1:] if cmd is None else cmd)
    task, argv = _pop_task(argv)
    if task != "st":
        from espnet_mtl.bin import path_inference

        renamed = [f"--{task}_" + a[len("--st_"):] if a in ("--st_train_config",
                                                            "--st_model_file") else a
                   for a in argv]
        return path_inference.main([task, *renamed])
    # ESPnet's inference() builds `Speech2Text` by its module-level name: ours, for now
    with bound_task(), bound_task(espnet_st_inference, "Speech2Text", Speech2Text):
        args = espnet_st_inference.get_parser().parse_args(argv)
        if args.batch_size > 1:  # ESPnet refuses; ours batches utterances
            from espnet_mtl.inference.batched_decoding import batched_st_inference, run_parsed

            return run_parsed(batched_st_inference, args, "st_inference")
        espnet_st_inference.main(argv)


def get_parser():
    """ESPnet's st_inference parser, with our `--task st|asr|mt`."""
    parser = espnet_st_inference.get_parser()
    parser.add_argument("--task", choices=TASKS, default="st",
                        help="decode the ST path (default), or a multi-task model's ASR or MT "
                             "path (through espnet_mtl.bin.path_inference)")
    return parser


if __name__ == "__main__":
    main()
