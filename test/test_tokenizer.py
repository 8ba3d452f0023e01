"""Stage 5: SentencePiece training and ESPnet token lists."""

import sentencepiece as spm

from espnet_mtl.prep.tokenizer import read_texts, train_sentencepiece

TEXT = ["the red dog sees a small cat", "two old men are eating bread",
        "my sister does not like the cold soup today"] * 20


def test_token_list_layout_and_model(tmp_path):
    text = tmp_path / "text"
    text.write_text("".join(f"u{i} {t}\n" for i, t in enumerate(TEXT)) + "u_empty\n")
    assert len(read_texts([text])) == len(TEXT)  # the empty transcript is skipped
    out = train_sentencepiece(read_texts([text]), tmp_path / "bpe", vocab_size=40)
    tokens = (out / "tokens.txt").read_text().split("\n")[:-1]
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-1] == "<sos/eos>"
    assert len(tokens) == len(set(tokens))
    sp = spm.SentencePieceProcessor(model_file=str(out / "bpe.model"))
    pieces = sp.encode("the red cat", out_type=str)
    assert all(p in tokens for p in pieces)
    assert sp.decode(pieces) == "the red cat"
    assert not (tmp_path / "bpe.tmp").exists()


def test_too_large_vocabulary_does_not_fail(tmp_path):
    out = train_sentencepiece(TEXT, tmp_path / "bpe", vocab_size=5000)
    assert len((out / "tokens.txt").read_text().split()) < 5000
