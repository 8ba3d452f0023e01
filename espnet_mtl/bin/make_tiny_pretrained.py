"""`python -m espnet_mtl.bin.make_tiny_pretrained --out_dir D --text T [T ...]`

Writes tiny random Whisper (`D/whisper`) and mBART-50 (`D/mbart`, with an
mBART-50 tokenizer trained on the Kaldi text tables T) for ComSL's demo and tests:
no hub needed. Real use points the config at openai/whisper-* and
facebook/mbart-large-50-* instead.
"""

import argparse
import sys

from espnet_mtl.demo.tiny_pretrained import make_tiny_comsl
from espnet_mtl.prep.tokenizer import read_texts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--text", nargs="+", required=True, help="Kaldi text tables (both languages)")
    p.add_argument("--vocab_size", type=int, default=200, help="SentencePiece pieces")
    p.add_argument("--src_lang", default="en_XX", help="mBART-50 language code")
    p.add_argument("--tgt_lang", default="de_DE", help="mBART-50 language code")
    args = p.parse_args(argv)
    try:
        whisper, mbart = make_tiny_comsl(args.out_dir, read_texts(args.text), args.vocab_size,
                                         args.src_lang, args.tgt_lang)
    except (OSError, ValueError) as e:
        print(f"make_tiny_pretrained: error: {e}", file=sys.stderr)
        return 1
    print(f"{whisper}\n{mbart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
