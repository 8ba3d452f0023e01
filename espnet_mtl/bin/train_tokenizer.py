"""`python -m espnet_mtl.bin.train_tokenizer`: SentencePiece model + ESPnet token list.

With `--hugging_face NAME_OR_DIR` no model is trained: the token list is that
pretrained tokenizer's vocabulary (a model that brings its own tokenizer, ComSL's mBART-50).
"""

import argparse
import logging
import sys

from espnet_mtl.prep.tokenizer import read_texts, train_sentencepiece, write_pretrained_token_list


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--text", nargs="+", help="Kaldi text tables to train on")
    p.add_argument("--hugging_face", help="write the token list of this pretrained Hugging "
                                          "Face tokenizer (directory or hub name) instead")
    p.add_argument("--out_dir", required=True, help="writes bpe.model and tokens.txt here")
    p.add_argument("--vocab_size", type=int)
    p.add_argument("--model_type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--input_sentence_size", type=int, default=100_000_000)
    p.add_argument("--user_defined_symbols", default="", help="comma-separated")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    if args.hugging_face is None and (args.text is None or args.vocab_size is None):
        p.error("--text and --vocab_size are required (or --hugging_face)")
    try:
        if args.hugging_face is not None:
            write_pretrained_token_list(args.hugging_face, args.out_dir)
            return 0
        train_sentencepiece(
            read_texts(args.text), args.out_dir, vocab_size=args.vocab_size,
            model_type=args.model_type, character_coverage=args.character_coverage,
            input_sentence_size=args.input_sentence_size,
            user_defined_symbols=[s for s in args.user_defined_symbols.split(",") if s])
    except (ValueError, OSError) as e:
        print(f"train_tokenizer: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
