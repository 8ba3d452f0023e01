"""Stage 5: SentencePiece models and ESPnet token lists (Python API, no CLI tools).

Token list layout, as ESPnet expects: `<blank>` (id 0, the CTC blank),
`<unk>`, the model's pieces in id order, and `<sos/eos>` last.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

from espnet_mtl.fileio import atomic_open, iter_table

log = logging.getLogger(__name__)

BLANK, UNK, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"


def read_texts(files: Iterable[str | os.PathLike]) -> list[str]:
    """The values of Kaldi text tables (utterance ids dropped), empty lines skipped."""
    lines = []
    for path in files:
        lines.extend(value for _, _, value in iter_table(path) if value)
    return lines


def train_sentencepiece(texts: list[str], out_dir: str | os.PathLike, *, vocab_size: int,
                        model_type: str = "unigram", character_coverage: float = 1.0,
                        input_sentence_size: int = 100_000_000,
                        user_defined_symbols: Iterable[str] = ()) -> Path:
    """Train `<out_dir>/bpe.model` and write `<out_dir>/tokens.txt`; returns out_dir."""
    import sentencepiece as spm

    if not texts:
        raise ValueError(f"{out_dir}: no training text for SentencePiece (all lines empty?)")
    out_dir = Path(out_dir)
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    train_txt = tmp_dir / "train.txt"
    with open(train_txt, "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in texts)
    # hard_vocab_limit=False: a small corpus may not support the requested
    # size; SentencePiece then stops earlier instead of failing.
    try:
        spm.SentencePieceTrainer.train(
            input=str(train_txt), model_prefix=str(tmp_dir / "bpe"), vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage,
            input_sentence_size=input_sentence_size, shuffle_input_sentence=True,
            hard_vocab_limit=False, user_defined_symbols=list(user_defined_symbols),
            unk_surface="<unk>", minloglevel=2, num_threads=1, seed_sentencepiece_size=1_000_000,
        )
    except RuntimeError as e:
        import re
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)
        sizes = re.search(r"(\d+) vs (\d+)", str(e))
        if "smaller than required_chars" not in str(e) or not sizes:
            raise
        # The text has more distinct characters than the vocabulary has room for.
        raise ValueError(
            f"{out_dir}: vocabulary size {vocab_size} has no room for the {sizes.group(2)} "
            f"distinct characters and special pieces to cover; raise --src_nbpe / "
            f"--tgt_nbpe, or lower --src_bpe_char_cover / --tgt_bpe_char_cover (e.g. 0.9995 "
            f"for zh / ja)") from None
    sp = spm.SentencePieceProcessor(model_file=str(tmp_dir / "bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
              if not (sp.is_control(i) or sp.is_unknown(i))]
    with atomic_open(tmp_dir / "tokens.txt") as f:
        f.writelines(t + "\n" for t in [BLANK, UNK, *pieces, SOS_EOS])
    train_txt.unlink()
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp_dir.rename(out_dir)  # the directory appears complete or not at all
    log.info("%s: %d pieces (asked for %d), token list of %d", out_dir, len(pieces),
             vocab_size, len(pieces) + 3)
    return out_dir


def write_pretrained_token_list(name_or_path: str, out_dir: str | os.PathLike) -> Path:
    """Stage 5 for a model that brings its own tokenizer (`--tgt_token_type hugging_face`):
    `<out_dir>/tokens.txt` is the Hugging Face tokenizer's vocabulary in id order, which
    ESPnet's TokenIDConverter then maps exactly as the pretrained model does."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as e:
        raise ValueError(f"--hugging_face_model_name_or_path {name_or_path}: no Hugging Face "
                         f"tokenizer there ({e})") from None
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    seen = {}
    for i, token in enumerate(tokens):
        if token in seen:
            raise ValueError(f"{name_or_path}: the tokenizer maps ids {seen[token]} and {i} to "
                             f"one token {token!r}; ESPnet's token list needs unique tokens")
        seen[token] = i
    if UNK not in seen:
        raise ValueError(f"{name_or_path}: the tokenizer has no {UNK} token, which ESPnet's "
                         f"token list needs")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / "tokens.txt") as f:
        f.writelines(t + "\n" for t in tokens)
    log.info("%s: token list of %d from the tokenizer of %s", out_dir, len(tokens), name_or_path)
    return out_dir
