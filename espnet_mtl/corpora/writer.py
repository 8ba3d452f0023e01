"""Write utterance records as ESPnet data directories (ST, ASR-only, MT-only).

`write_st_data_dir`: ``data/<set>.<src>-<tgt>/`` gets ``wav.scp segments utt2spk
spk2utt text`` and ``text.{tc,lc,lc.rm}.{src,tgt}`` (``text`` is
``text.tc.<tgt>``).

`write_asr_data_dir` (auxiliary ASR data, e.g. LibriSpeech, TED-LIUM): the
same audio tables, optionally ``spk2gender``, and ``text.{tc,lc,lc.rm}.<lang>``
with ``text`` = ``text.tc.<lang>``; no target-language text.

`write_mt_data_dir` (auxiliary MT data, e.g. WMT bitext): only
``text.{tc,lc,lc.rm}.<src>`` and ``text.{tc,lc,lc.rm}.<tgt>``, every file with
the same keys; no audio tables. Pairs are streamed (a bitext can be tens of
millions of lines), so they must come sorted by id.

Every table is sorted by key in C-locale (byte) order. A directory is built
next to its final place and renamed into it, so an interrupted run never
leaves a half-written data directory that a later stage would trust.

Whole-recording utterances (e.g. a Common Voice clip) have ``start == 0``,
``end == math.inf`` and ``recording_id == utt_id``: the directory then has no
``segments`` file and ``wav.scp`` maps each utterance id to its audio file
(the Kaldi convention). One call writes either kind, never a mix.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import multiprocessing
import os
import re
import secrets
import shutil
from collections import defaultdict, deque
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from espnet_mtl.prep.datadir import DataDirError
from espnet_mtl.fileio import write_table
from espnet_mtl.prep.text_norm import CASES, normalize_lines

logger = logging.getLogger(__name__)

# Below this many lines a worker pool costs more than it saves.
_MIN_LINES_FOR_POOL = 20000
_CHUNK = 5000
# Jobs in flight per worker: keeps the workers busy while bounding how far a
# streamed input is read ahead of what has been written.
_JOBS_PER_WORKER = 3


class STRecord(Protocol):
    """What the writer needs from a record (e.g. `must_c.Utterance`)."""

    utt_id: str
    recording_id: str
    wav_path: str
    start: float
    end: float
    speaker: str
    src_text: str
    tgt_text: str


class ASRRecord(Protocol):
    """What the ASR-only writer needs from a record (e.g. `librispeech.Utterance`)."""

    utt_id: str
    recording_id: str
    wav_path: str
    start: float
    end: float
    speaker: str
    text: str


def format_time(seconds: float) -> str:
    """Seconds with 3 decimals, or up to 6 when the time is finer than 1 ms."""
    text = f"{seconds:.3f}"
    if abs(float(text) - seconds) > 5e-7:
        text = f"{seconds:.6f}".rstrip("0")
    return text


def _normalize_jobs(jobs: Iterable[tuple[list[str], str]], workers: int
                    ) -> Iterator[list[tuple[str, str, str]]]:
    """Yield `normalize_lines(texts, lang)` for each job, in job order.

    With `workers` > 1, a process pool starts once the jobs seen hold
    `_MIN_LINES_FOR_POOL` lines (fewer: no pool); a few jobs per worker are in
    flight at a time, so a lazily produced `jobs` is never read far ahead.
    """
    jobs = iter(jobs)
    if workers <= 1:
        for texts, lang in jobs:
            yield normalize_lines(texts, lang)
        return
    head, n_lines = [], 0
    for job in jobs:
        head.append(job)
        n_lines += len(job[0])
        if n_lines >= _MIN_LINES_FOR_POOL:
            break
    else:  # the jobs ran out first: too few lines for a pool
        for texts, lang in head:
            yield normalize_lines(texts, lang)
        return
    with multiprocessing.Pool(workers) as pool:
        pending: deque = deque()
        for job in itertools.chain(head, jobs):
            pending.append(pool.apply_async(normalize_lines, job))
            if len(pending) >= workers * _JOBS_PER_WORKER:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _normalize_groups(groups: list[tuple[list[str], str]], workers: int
                      ) -> list[list[tuple[str, str, str]]]:
    """Normalise each (texts, lang) group; results keep input order whatever `workers` is."""
    if workers <= 1 or sum(len(texts) for texts, _ in groups) < _MIN_LINES_FOR_POOL:
        return [normalize_lines(texts, lang) for texts, lang in groups]
    jobs, owner = [], []
    for g, (texts, lang) in enumerate(groups):
        for i in range(0, len(texts), _CHUNK):
            jobs.append((texts[i:i + _CHUNK], lang))
            owner.append(g)
    out: list[list[tuple[str, str, str]]] = [[] for _ in groups]
    for g, rows in zip(owner, _normalize_jobs(jobs, workers)):
        out[g].extend(rows)
    return out


def _is_whole(u: STRecord) -> bool:
    return u.start == 0 and u.end == math.inf


def _check(utterances: list[STRecord]) -> bool:
    """Validate the records; return True when they are whole-recording utterances."""
    if not utterances:
        raise DataDirError("no utterances to write")
    whole = _is_whole(utterances[0])
    seen: set[str] = set()
    wav_of: dict[str, str] = {}
    for u in utterances:
        if u.utt_id in seen:
            raise DataDirError(f"duplicate utterance id {u.utt_id}")
        seen.add(u.utt_id)
        if wav_of.setdefault(u.recording_id, u.wav_path) != u.wav_path:
            raise DataDirError(
                f"recording {u.recording_id} points at two files: {wav_of[u.recording_id]} and {u.wav_path}"
            )
        # Kaldi needs utt2spk and spk2utt sorted the same way, which holds only
        # when every utterance id starts with its speaker id.
        if not u.utt_id.startswith(u.speaker):
            raise DataDirError(f"utterance id {u.utt_id} does not start with its speaker id {u.speaker}")
        if _is_whole(u) != whole:
            kind = "a whole recording (start 0, end inf)" if _is_whole(u) else \
                f"a segment [{u.start}, {u.end}]"
            raise DataDirError(
                f"utterance {u.utt_id} is {kind}, unlike utterance {utterances[0].utt_id}; "
                f"whole-recording and segmented utterances cannot share a data directory"
            )
        if whole:
            if u.recording_id != u.utt_id:
                raise DataDirError(f"utterance {u.utt_id} covers a whole recording, so its recording "
                                   f"id must equal the utterance id, got {u.recording_id}")
        elif not (0 <= u.start < u.end and math.isfinite(u.end)):
            raise DataDirError(f"utterance {u.utt_id}: need 0 <= start < end, got {u.start} and {u.end}")
    return whole


def _replace_dir(new: Path, target: Path) -> None:
    """Put directory `new` at `target`, replacing an older `target` directory."""
    if target.exists() or target.is_symlink():
        if not target.is_dir() or target.is_symlink():
            raise DataDirError(f"{target} exists and is not a directory; remove it first")
        old = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)


@contextlib.contextmanager
def _staged_dir(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden directory next to `out_dir`, renamed onto it when the block succeeds.

    On any exception (or a kill before the rename) `out_dir` keeps its old
    content, or stays absent, and the temporary directory is removed.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir (not mkdtemp) so the directory gets the usual umask permissions.
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.mkdir(tmp)
    try:
        yield tmp
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_tables(out_dir: Path, tables: dict[str, list[tuple[str, str]] | dict[str, str]]
                 ) -> None:
    """Write each table as `out_dir/<name>`, all at once (staged, then renamed into place)."""
    with _staged_dir(out_dir) as tmp:
        for name, rows in tables.items():
            write_table(tmp / name, rows)  # sorts by key bytes (C locale)


def _audio_tables(utterances: list, whole: bool) -> dict[str, list[tuple[str, str]]]:
    """wav.scp, segments (unless whole recordings), utt2spk and spk2utt."""
    tables: dict[str, list[tuple[str, str]]] = {
        "wav.scp": sorted({(u.recording_id, u.wav_path) for u in utterances}),
    }
    if not whole:
        tables["segments"] = [(u.utt_id, f"{u.recording_id} {format_time(u.start)} {format_time(u.end)}")
                              for u in utterances]
    tables["utt2spk"] = [(u.utt_id, u.speaker) for u in utterances]
    spk2utt: dict[str, list[str]] = defaultdict(list)
    for u in utterances:
        spk2utt[u.speaker].append(u.utt_id)
    tables["spk2utt"] = [(spk, " ".join(sorted(utts, key=lambda s: s.encode("utf-8"))))
                         for spk, utts in spk2utt.items()]
    return tables


def _add_texts(tables: dict[str, list[tuple[str, str]]], ids: list[str], lang: str,
               rows: list[tuple[str, str, str]]) -> None:
    for i, case in enumerate(CASES):
        tables[f"text.{case}.{lang}"] = [(utt, row[i]) for utt, row in zip(ids, rows)]


def write_st_data_dir(out_dir: str | os.PathLike, utterances: Iterable[STRecord],
                      src_lang: str, tgt_lang: str, workers: int = 1) -> Path:
    """Write an ESPnet ST data directory at `out_dir`; returns its path.

    `workers` > 1 normalises texts in a process pool; output is identical.
    """
    out_dir = Path(out_dir)
    utterances = list(utterances)
    whole = _check(utterances)
    src_cases, tgt_cases = _normalize_groups(
        [([u.src_text for u in utterances], src_lang), ([u.tgt_text for u in utterances], tgt_lang)],
        workers)
    tables = _audio_tables(utterances, whole)
    ids = [u.utt_id for u in utterances]
    _add_texts(tables, ids, src_lang, src_cases)
    _add_texts(tables, ids, tgt_lang, tgt_cases)
    tables["text"] = tables[f"text.tc.{tgt_lang}"]
    write_tables(out_dir, tables)
    logger.info("wrote %s: %d utterances, %d recordings", out_dir, len(utterances), len(tables["wav.scp"]))
    return out_dir


def write_asr_data_dir(out_dir: str | os.PathLike, records: Iterable[ASRRecord], lang: str,
                       workers: int = 1, spk2gender: Mapping[str, str] | None = None) -> Path:
    """Write an ASR-only data directory (transcripts in `lang`, no translation).

    Files: ``wav.scp``, ``segments`` (only for segmented utterances),
    ``utt2spk``, ``spk2utt``, ``text.{tc,lc,lc.rm}.<lang>``, ``text`` (=
    ``text.tc.<lang>``) and, when `spk2gender` is given, ``spk2gender`` for the
    speakers used (each must be in it, with ``m`` or ``f``: Kaldi's checks and
    `espnet_mtl.prep.datadir` want every speaker in a ``spk2*`` table).
    """
    out_dir = Path(out_dir)
    records = list(records)
    whole = _check(records)
    (cases,) = _normalize_groups([([r.text for r in records], lang)], workers)
    tables = _audio_tables(records, whole)
    if spk2gender is not None:
        speakers = {r.speaker for r in records}
        missing = sorted(speakers - spk2gender.keys())
        if missing:
            raise DataDirError(f"spk2gender lacks speaker {missing[0]} ({len(missing)} of "
                               f"{len(speakers)} speakers): it must list every speaker")
        for spk in sorted(speakers):
            if spk2gender[spk] not in ("m", "f"):
                raise DataDirError(f"spk2gender: speaker {spk}: expected m or f, got {spk2gender[spk]!r}")
        tables["spk2gender"] = [(spk, spk2gender[spk]) for spk in speakers]
    _add_texts(tables, [r.utt_id for r in records], lang, cases)
    tables["text"] = tables[f"text.tc.{lang}"]
    write_tables(out_dir, tables)
    logger.info("wrote %s: %d utterances, %d recordings, %d speakers", out_dir, len(records),
                len(tables["wav.scp"]), len(tables["spk2utt"]))
    return out_dir


_ID = re.compile(r"[^\s]+")


def _checked_chunks(pairs: Iterable[tuple[str, str, str]], ids_out: deque
                    ) -> Iterator[tuple[list[str], list[str]]]:
    """Cut (id, src, tgt) pairs into chunks; push each chunk's ids to `ids_out`.

    Ids must be single tokens in strictly increasing C (byte) order: then the
    streamed files come out sorted and without duplicates.
    """
    prev = None
    it = iter(pairs)
    while True:
        chunk = list(itertools.islice(it, _CHUNK))
        if not chunk:
            return
        ids, src, tgt = [], [], []
        for key, s, t in chunk:
            if _ID.fullmatch(key) is None:
                raise DataDirError(f"sentence pair id {key!r} must be one token without whitespace")
            # str order on code points is the UTF-8 byte order of `LC_ALL=C sort`.
            if prev is not None and key <= prev:
                raise DataDirError(f"sentence pair ids must come in strictly increasing C order: "
                                   f"{key!r} after {prev!r}")
            prev = key
            ids.append(key)
            src.append(s)
            tgt.append(t)
        ids_out.append(ids)
        yield src, tgt


def write_mt_data_dir(out_dir: str | os.PathLike, pairs: Iterable[tuple[str, str, str]],
                      src_lang: str, tgt_lang: str, workers: int = 1) -> int:
    """Write an MT-only data directory from (id, src_text, tgt_text); returns the pair count.

    Files: ``text.{tc,lc,lc.rm}.<src_lang>`` and ``text.{tc,lc,lc.rm}.<tgt_lang>``,
    every one with the same keys. `pairs` is consumed lazily, a chunk at a
    time, and must come sorted by id (C order, no repeats); `workers` > 1
    normalises in a process pool with identical output.
    """
    out_dir = Path(out_dir)
    if src_lang == tgt_lang:
        raise DataDirError(f"source and target language are both {src_lang!r}")
    names = [f"text.{case}.{lang}" for lang in (src_lang, tgt_lang) for case in CASES]
    chunk_ids: deque = deque()

    def jobs() -> Iterator[tuple[list[str], str]]:
        for src, tgt in _checked_chunks(pairs, chunk_ids):
            yield src, src_lang
            yield tgt, tgt_lang

    count = 0
    # Exits in reverse order: the files are closed (flushed) before the rename.
    with _staged_dir(out_dir) as tmp, contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(tmp / name, "w", encoding="utf-8", newline="\n"))
                 for name in names]
        # closing(): an error below stops the worker pool at once, not at garbage collection.
        results = stack.enter_context(contextlib.closing(_normalize_jobs(jobs(), workers)))
        for src_rows, tgt_rows in zip(results, results):  # src and tgt jobs alternate
            ids = chunk_ids.popleft()
            count += len(ids)
            for side, rows in enumerate((src_rows, tgt_rows)):
                for i in range(len(CASES)):
                    files[side * len(CASES) + i].write("".join(
                        [f"{key} {row[i]}\n" if row[i] else f"{key}\n" for key, row in zip(ids, rows)]))
        if not count:
            raise DataDirError("no sentence pairs to write")
    logger.info("wrote %s: %d sentence pairs", out_dir, count)
    return count


def check_dir_name(name: str) -> str:
    """Return `name` if it can name a data dir and prefix ids (the `--name` of the aux-data CLIs)."""
    if not name or name.startswith(".") or "/" in name or os.sep in name or \
            any(c.isspace() for c in name):
        raise DataDirError(f"--name must be a plain directory name (no '/', no whitespace, not "
                           f"starting with '.'), got {name!r}")
    return name


def prepare_splits(splits: str, read_split: Callable[[str], tuple[list, object]],
                   out: str | os.PathLike, src_lang: str, tgt_lang: str, *,
                   workers: int = 1, error: type[Exception] = DataDirError) -> None:
    """The corpus CLIs' stage 1: `<out>/<split>.<src>-<tgt>` for each split in "a,b,c".

    `read_split(split)` returns (utterances, stats with .summary()). Every split
    is read (and so validated) before any is written, so a bad split leaves no
    half-prepared set behind. `error` is the corpus's error class.
    """
    names = [s for s in splits.split(",") if s]
    if not names:
        raise error("--splits is empty")
    loaded = []
    for split in names:
        utts, stats = read_split(split)
        if not utts:
            raise error(f"split {split}: no utterance left ({stats.summary()})")
        loaded.append((split, utts))
    # The reader has logged each split's counts (kept, dropped per reason).
    for split, utts in loaded:
        write_st_data_dir(Path(out) / f"{split}.{src_lang}-{tgt_lang}", utts, src_lang,
                          tgt_lang, workers=workers)
