"""`python -m espnet_mtl.bin.score_st`: stage 13 scoring of one test set, then RESULTS.md.

`--metric bleu` (default; ST and the MT path) or `--metric wer` (the ASR
path of an mtl_st model: WER/CER against the source transcript).
"""

import argparse
import os
import sys

from espnet_mtl.fileio import TableError
from espnet_mtl.inference.scoring import (
    ScoringError,
    remove_result,
    score_asr,
    score_st,
    write_result,
    write_results_md,
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hyp", required=True, help="Kaldi text: <utt> <detokenized hypothesis>")
    p.add_argument("--ref", required=True, help="Kaldi text: <utt> <reference>")
    p.add_argument("--tgt_lang", help="target language (BLEU tokenizer); needed for bleu")
    p.add_argument("--metric", default="bleu", choices=["bleu", "wer"])
    p.add_argument("--out_dir", required=True, help="writes result.json and result.txt here")
    p.add_argument("--remove_tags", default="false", choices=["true", "false"])
    p.add_argument("--moses_detok", default="false", choices=["true", "false"])
    p.add_argument("--st_exp", help="also rewrite <st_exp>/RESULTS.md")
    args = p.parse_args(argv)
    if args.metric == "bleu" and not args.tgt_lang:
        p.error("--tgt_lang is required with --metric bleu")
    try:
        # The previous result goes first: a failed rescoring must not leave it looking current.
        remove_result(args.out_dir)
        if args.metric == "wer":
            result = score_asr(args.hyp, args.ref)
        else:
            result = score_st(args.hyp, args.ref, args.tgt_lang,
                              remove_tags=args.remove_tags == "true",
                              moses_detok=args.moses_detok == "true")
        out = write_result(result, args.out_dir)
    except BaseException as e:
        if args.st_exp and os.path.isdir(args.st_exp):
            write_results_md(args.st_exp)  # without the removed result's row
        if isinstance(e, (ScoringError, TableError, OSError)):
            print(f"score_st: error: {e}", file=sys.stderr)
            return 1
        raise
    if args.metric == "wer":
        print(f"{out}: WER {result['wer']} CER {result['cer']}")
    else:
        print(f"{out}: BLEU {result['bleu']} chrF {result['chrf']} TER {result['ter']} "
              f"BLEU(lc.rm) {result['bleu_lc_rm']} [{result['bleu_signature']}]")
    if args.st_exp:
        print(f"wrote {write_results_md(args.st_exp)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
