"""Line-aligned parallel text (WMT style) as sentence pairs for an MT-only data dir.

Input: two UTF-8 files, `<path>.<src>` and `<path>.<tgt>` (either may be
gzip-compressed, `.gz`), where line i of one translates line i of the other.
Read as a stream (a WMT bitext can be tens of millions of lines) by
`textfile.iter_lines`: CRLF, a byte-order mark and a missing final newline are
fine, and only "\\n" ends a line (a U+2028 inside a sentence does not).

Pair ids are ``<name>_<line number %09d>`` with the 1-based line number in the
input files, so an id points at its source line, and ids sort in line order.

Errors (`BitextError`, naming the files, and the line where there is one):
files with different line counts (checked before any work), invalid UTF-8,
no pair left after filtering. Dropped and counted, in
this order:

- ``blank``: either side empty or whitespace only;
- ``too_long``: a side longer than `max_words` words, or `max_chars`
  characters for a language written without spaces (zh, ja);
- ``length_ratio``: (longer + 1) / (shorter + 1) > `max_len_ratio`, lengths
  in words, or in characters for zh / ja sides;
- ``duplicate``: the same (source line, target line) as an earlier kept pair,
  byte for byte (line ends aside); the first is kept.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from espnet_mtl.corpora.textfile import count_lines, iter_lines

logger = logging.getLogger(__name__)

DROP_REASONS = ("blank", "too_long", "length_ratio", "duplicate")

# Languages written without spaces between words: lengths count characters.
CHAR_LANGS = ("zh", "ja")

_MAX_LINES = 10**9 - 1  # ids carry %09d line numbers; more would not sort


class BitextError(ValueError):
    """The bitext on disk is not what the reader expects; says where."""


@dataclass
class ReadStats:
    """What happened to the lines of one bitext."""

    lines: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        drops = ", ".join(f"{reason}={self.dropped[reason]}" for reason in DROP_REASONS)
        return f"kept {self.kept} of {self.lines} lines; dropped: {drops}"


def counts_characters(lang: str) -> bool:
    """True when lengths in `lang` count characters (zh, zh-CN, ja, ...), not words."""
    return lang.replace("_", "-").split("-")[0].lower() in CHAR_LANGS


def _word_len(text: str) -> int:
    return len(text.split())


def _char_len(text: str) -> int:
    return len("".join(text.split()))  # characters other than whitespace


def iter_bitext(src_path: str | os.PathLike, tgt_path: str | os.PathLike, src_lang: str,
                tgt_lang: str, name: str, *, max_len_ratio: float = 9.0, max_words: int = 250,
                max_chars: int = 1000, stats: ReadStats | None = None
                ) -> Iterator[tuple[str, str, str]]:
    """Yield the kept (id, source line, target line) in line order; fills `stats`.

    `max_len_ratio`, `max_words` or `max_chars` of 0 turn that filter off.
    The line counts are compared before the first pair is yielded.
    """
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    stats = stats if stats is not None else ReadStats()
    if max_len_ratio and max_len_ratio < 1:
        raise BitextError(f"max_len_ratio must be >= 1 (or 0 for no limit), got {max_len_ratio}")
    n_src = count_lines(src_path, BitextError, "source text")
    n_tgt = count_lines(tgt_path, BitextError, "target text")
    if n_src != n_tgt:
        raise BitextError(f"line counts differ, so lines cannot be paired: {src_path}: {n_src} "
                          f"lines, {tgt_path}: {n_tgt} lines")
    if n_src > _MAX_LINES:
        raise BitextError(f"{src_path}: {n_src} lines; at most {_MAX_LINES} fit the "
                          f"<name>_<line %09d> ids: split the file")

    lens = [_char_len if counts_characters(lang) else _word_len for lang in (src_lang, tgt_lang)]
    limits = [max_chars if counts_characters(lang) else max_words for lang in (src_lang, tgt_lang)]
    src_len, tgt_len = lens
    src_max = limits[0] or float("inf")
    tgt_max = limits[1] or float("inf")
    ratio = max_len_ratio or float("inf")
    seen: set[bytes] = set()
    dropped = stats.dropped
    blake2b = hashlib.blake2b
    src_lines = iter_lines(src_path, BitextError, "source text")
    tgt_lines = iter_lines(tgt_path, BitextError, "target text")
    for a, b in itertools.zip_longest(src_lines, tgt_lines):
        if a is None or b is None:  # a file changed since it was counted
            raise BitextError(f"line counts differ, so lines cannot be paired: {src_path} and "
                              f"{tgt_path} end at different lines (one ends after "
                              f"{(b or a)[0] - 1} lines)")
        lineno, src = a
        tgt = b[1]
        stats.lines = lineno
        if not src or not tgt or src.isspace() or tgt.isspace():
            dropped["blank"] += 1
            continue
        n, m = src_len(src), tgt_len(tgt)
        if n > src_max or m > tgt_max:
            dropped["too_long"] += 1
            continue
        if (n + 1) > ratio * (m + 1) or (m + 1) > ratio * (n + 1):
            dropped["length_ratio"] += 1
            continue
        # 128-bit digests: a collision (a pair wrongly dropped) is beyond unlikely.
        key = blake2b(f"{src}\n{tgt}".encode("utf-8"), digest_size=16).digest()
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        stats.kept += 1
        yield f"{name}_{lineno:09d}", src, tgt
    logger.info("bitext %s / %s: %s", src_path, tgt_path, stats.summary())
    if not stats.kept:
        raise BitextError(f"no sentence pair left in {src_path} / {tgt_path} ({stats.summary()})")


def read_bitext_with_stats(src_path: str | os.PathLike, tgt_path: str | os.PathLike,
                           src_lang: str, tgt_lang: str, name: str, **limits
                           ) -> tuple[list[tuple[str, str, str]], ReadStats]:
    """All kept pairs in memory, with the drop counts (for small files and tests)."""
    stats = ReadStats()
    pairs = list(iter_bitext(src_path, tgt_path, src_lang, tgt_lang, name, stats=stats, **limits))
    return pairs, stats
