"""Read corpus text files line by line, and list corpus directories, with errors
that name the file (and line).

Every corpus reader needs the same care: UTF-8 with an error at the line
holding a bad byte, a byte-order mark dropped, CRLF line ends accepted, a
missing final newline accepted, and lines split on "\\n" only. The decoding is
`fileio.decode_lines`, shared with the Kaldi table reader. Files ending in
`.gz` are read through gzip. `error` is the calling reader's exception class.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from espnet_mtl.fileio import decode_lines

_BLOCK = 1 << 20


def _open(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _check_file(path: Path, error: type[Exception], what: str) -> None:
    if not path.is_file():
        raise error(f"{what} not found: expected a file at {path}")


def _gzip_error(path: Path, lineno: int, e: Exception, error: type[Exception]) -> Exception:
    return error(f"{path}:{lineno}: cannot decompress (corrupt or truncated gzip file): {e}")


def iter_lines(path: str | os.PathLike, error: type[Exception], what: str = "text file"
               ) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, line without its line end) for a UTF-8 text file."""
    path = Path(path)
    _check_file(path, error, what)
    lineno = 0
    try:
        with _open(path) as f:
            for lineno, line in decode_lines(f, path, error):
                yield lineno, line
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise _gzip_error(path, lineno + 1, e, error) from None


def read_lines(path: str | os.PathLike, error: type[Exception], what: str = "text file") -> list[str]:
    """All lines of a UTF-8 text file (see `iter_lines`)."""
    return [line for _, line in iter_lines(path, error, what)]


def count_lines(path: str | os.PathLike, error: type[Exception], what: str = "text file") -> int:
    """Number of lines `iter_lines` yields, counted fast on the raw bytes."""
    path = Path(path)
    _check_file(path, error, what)
    n, last = 0, b"\n"
    try:
        with _open(path) as f:
            while block := f.read(_BLOCK):
                n += block.count(b"\n")
                last = block[-1:]
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise _gzip_error(path, n + 1, e, error) from None
    return n + (last != b"\n")  # a last line without a final newline still counts


def list_names(directory: str | os.PathLike, error: type[Exception], what: str,
               holding: str) -> set[str]:
    """Names of the entries of `directory` (one listing, no per-file stat). For the
    error when it is missing: `what` directory it is, and what it should hold."""
    directory = Path(directory)
    try:
        with os.scandir(directory) as it:
            return {entry.name for entry in it}
    except FileNotFoundError:
        raise error(f"{what} directory not found: expected {directory} holding {holding}"
                    ) from None
    except NotADirectoryError:
        raise error(f"{directory} is not a directory; expected {holding} there") from None
