"""Tiny random "pretrained" Whisper and mBART-50 models, saved locally.

ComSL starts from pretrained Whisper and mBART-50 (hub names in the paper
configs). Nothing here reaches a hub: tests and the demo recipe use models with
the real classes and file formats (`save_pretrained`: config.json and weights;
the mBART-50 tokenizer's `sentencepiece.bpe.model` and tokenizer_config.json),
with tiny sizes and random weights, loaded back through `from_pretrained`. The
tokenizer is a SentencePiece model trained on the given text, wrapped in
mBART-50's tokenizer (ids 0-3 <s> <pad> </s> <unk>, the pieces, the 52 language
codes, <mask>), so the vocabulary covers the corpus.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Tuple

#: tiny sizes (d_model, layers, heads, ffn); mBART needs >= 4 encoder layers for ERM layer 4
TINY = dict(d_model=32, layers=4, heads=2, ffn=64)


def make_mbart50_tokenizer(texts: Iterable[str], out_dir: str | os.PathLike, vocab_size: int,
                           src_lang: str = "en_XX", tgt_lang: str = "de_DE"):
    """Train a SentencePiece model on `texts` and save it as an mBART-50 tokenizer."""
    import sentencepiece as spm
    from transformers import MBart50Tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp, "text.txt")
        corpus.write_text("".join(t + "\n" for t in texts if t.strip()), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp, "spm")), vocab_size=vocab_size,
            model_type="bpe", character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
            num_threads=1)
        tokenizer = MBart50Tokenizer(vocab_file=str(Path(tmp, "spm.model")), src_lang=src_lang,
                                     tgt_lang=tgt_lang)
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def make_tiny_mbart(out_dir: str | os.PathLike, texts: Iterable[str], vocab_size: int = 200,
                    src_lang: str = "en_XX", tgt_lang: str = "de_DE", seed: int = 0,
                    **sizes) -> Path:
    import torch
    from transformers import MBartConfig, MBartForConditionalGeneration

    size = {**TINY, **sizes}
    tokenizer = make_mbart50_tokenizer(texts, out_dir, vocab_size, src_lang, tgt_lang)
    config = MBartConfig(
        vocab_size=len(tokenizer), d_model=size["d_model"], encoder_layers=size["layers"],
        decoder_layers=size["layers"], encoder_attention_heads=size["heads"],
        decoder_attention_heads=size["heads"], encoder_ffn_dim=size["ffn"],
        decoder_ffn_dim=size["ffn"], max_position_embeddings=1024, scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.convert_tokens_to_ids(tgt_lang))
    torch.manual_seed(seed)
    MBartForConditionalGeneration(config).save_pretrained(str(out_dir))
    return Path(out_dir)


def make_tiny_whisper(out_dir: str | os.PathLike, seed: int = 0, max_seconds: int = 30,
                      **sizes) -> Path:
    import torch
    from transformers import WhisperConfig, WhisperModel

    size = {**TINY, **sizes}
    config = WhisperConfig(
        vocab_size=64, num_mel_bins=80, d_model=size["d_model"], encoder_layers=size["layers"],
        decoder_layers=1, encoder_attention_heads=size["heads"],
        decoder_attention_heads=size["heads"], encoder_ffn_dim=size["ffn"],
        decoder_ffn_dim=size["ffn"], max_source_positions=50 * max_seconds,
        pad_token_id=1, bos_token_id=2, eos_token_id=3, decoder_start_token_id=2)
    torch.manual_seed(seed)
    WhisperModel(config).save_pretrained(str(out_dir))
    return Path(out_dir)


def make_tiny_comsl(out_dir: str | os.PathLike, texts: Iterable[str], vocab_size: int = 200,
                    src_lang: str = "en_XX", tgt_lang: str = "de_DE") -> Tuple[Path, Path]:
    """`<out_dir>/whisper` and `<out_dir>/mbart` (with its tokenizer)."""
    out_dir = Path(out_dir)
    return (make_tiny_whisper(out_dir / "whisper"),
            make_tiny_mbart(out_dir / "mbart", list(texts), vocab_size, src_lang, tgt_lang))
