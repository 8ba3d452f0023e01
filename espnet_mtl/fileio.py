"""Small file helpers shared by every stage: atomic writes and Kaldi tables.

Every stage output goes through `atomic_open` so that a stage killed midway
never leaves a half-written file that a rerun would trust.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class TableError(ValueError):
    """A malformed Kaldi-style table; the message names file and line."""


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file next to `path`; rename it over `path` on success.

    On an exception (or a kill) the temporary file is removed or left with a
    `.tmp` suffix, and `path` keeps its old content (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "b" in mode:
        encoding = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600 files; give the result the usual umask permissions
    # (experiment dirs are shared between users on clusters).
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def decode_lines(raw_lines: Iterable[bytes], path: str | os.PathLike,
                 error: type[Exception] = TableError) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, line without its line end) from the binary lines
    of a UTF-8 text file; the one decoder of every table and corpus text reader.

    Give it a file opened in binary mode, so lines split on b"\\n" only: text
    mode would also split at a lone CR, and str.splitlines() at U+2028, U+0085
    or a form feed inside a sentence, shifting every later line of a
    line-aligned file. CRLF line ends, a byte-order mark and a missing final
    newline are accepted. Invalid UTF-8 raises `error` naming file, line, byte
    offset and the bad bytes, instead of a UnicodeDecodeError with no file.
    """
    for lineno, raw in enumerate(raw_lines, 1):
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        elif raw.endswith(b"\r"):
            raw = raw[:-1]  # a CRLF file without its final LF
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(
                f"{path}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line, "
                f"{raw[e.start:e.end]!r}: {e.reason}); the file is not UTF-8 text: re-encode "
                f"it with `iconv -f <its encoding, e.g. ISO-8859-1> -t UTF-8`"
            ) from None
        if lineno == 1 and line.startswith("\ufeff"):
            line = line[1:]  # byte-order mark
        yield lineno, line


def read_lines(path: str | os.PathLike) -> list[str]:
    """Every line of a UTF-8 text file (token lists, option files); bad UTF-8 names file:line."""
    with open(path, "rb") as f:
        return [line for _, line in decode_lines(f, path)]


def iter_table(path: str | os.PathLike) -> Iterator[tuple[int, str, str]]:
    """Yield (line_number, key, value) from a Kaldi table `<key> <value...>`.

    The value is everything after the first run of whitespace (it may be empty,
    e.g. an empty transcript). Blank lines are an error: Kaldi tools reject them.
    A missing file raises FileNotFoundError; bad UTF-8 a TableError (file:line).
    """
    with open(path, "rb") as f:
        for lineno, line in decode_lines(f, path):
            if not line.strip():
                raise TableError(f"{path}:{lineno}: empty line; remove it")
            parts = line.split(maxsplit=1)
            yield lineno, parts[0], (parts[1].strip() if len(parts) > 1 else "")


def read_table(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi table into an ordered dict; duplicate keys are an error."""
    table: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for lineno, key, value in iter_table(path):
        if key in table:
            raise TableError(
                f"{path}:{lineno}: duplicate key '{key}' (first on line {first_seen[key]})"
            )
        table[key] = value
        first_seen[key] = lineno
    return table


def write_table(path: str | os.PathLike, items: Iterable[tuple[str, str]] | dict[str, str],
                sort: bool = True) -> None:
    """Write `<key> <value>` lines atomically, sorted by key in C-locale order."""
    if isinstance(items, dict):
        items = items.items()
    items = list(items)
    if sort:
        # Python's str order on UTF-8 keys equals `LC_ALL=C sort` byte order.
        items.sort(key=lambda kv: kv[0].encode("utf-8"))
    with atomic_open(path) as f:
        for key, value in items:
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")
