"""`python -m espnet_mtl.bin.train_tokenizer`: SentencePiece model + ESPnet token list."""

import argparse
import logging
import sys

from espnet_mtl.prep.tokenizer import read_texts, train_sentencepiece


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--text", nargs="+", required=True, help="Kaldi text tables to train on")
    p.add_argument("--out_dir", required=True, help="writes bpe.model and tokens.txt here")
    p.add_argument("--vocab_size", type=int, required=True)
    p.add_argument("--model_type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--input_sentence_size", type=int, default=100_000_000)
    p.add_argument("--user_defined_symbols", default="", help="comma-separated")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    try:
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
