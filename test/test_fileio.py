"""The one line decoder behind Kaldi tables and corpus text files: errors name file and line."""

import pytest

from espnet_mtl.corpora.textfile import read_lines
from espnet_mtl.fileio import TableError, read_table


def test_invalid_utf8_in_a_table_names_file_line_byte_and_fix(tmp_path):
    table = tmp_path / "text"
    table.write_bytes(b"utt1 gut\nutt2 bad \xff\xfe here\n")
    with pytest.raises(TableError) as e:
        read_table(table)
    msg = str(e.value)
    assert msg.startswith(f"{table}:2: not valid UTF-8 (byte 10 of the line, b'\\xff': ")
    assert "iconv" in msg and "\n" not in msg


def test_table_accepts_crlf_and_a_byte_order_mark(tmp_path):
    table = tmp_path / "text"
    table.write_bytes(b"\xef\xbb\xbfutt1 a b\r\nutt2 c\r\n")
    assert read_table(table) == {"utt1": "a b", "utt2": "c"}


def test_corpus_text_files_share_the_decoder(tmp_path):
    class CorpusError(ValueError):
        pass

    text = tmp_path / "train.de"
    text.write_bytes(b"Gr\xfc\xdfe\n")  # Latin-1
    with pytest.raises(CorpusError, match=rf"{text}:1: not valid UTF-8 \(byte 3 of the line, "
                                          r"b'\\xfc'.*iconv"):
        read_lines(text, CorpusError)
