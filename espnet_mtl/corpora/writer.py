"""Write utterance records as an ESPnet speech-translation data directory.

`data/<set>.<src>-<tgt>/` gets ``wav.scp segments utt2spk spk2utt text`` and
``text.{tc,lc,lc.rm}.{src,tgt}`` (``text`` is ``text.tc.<tgt>``), every table
sorted by key in C-locale order. The directory is built next to its final
place and renamed into it, so an interrupted run never leaves a half-written
data directory that a later stage would trust.

Whole-recording utterances (e.g. a Common Voice clip) have ``start == 0``,
``end == math.inf`` and ``recording_id == utt_id``: the directory then has no
``segments`` file and ``wav.scp`` maps each utterance id to its audio file
(the Kaldi convention). One call writes either kind, never a mix.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import secrets
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Protocol

from espnet_mtl.datadir import DataDirError
from espnet_mtl.fileio import write_table
from espnet_mtl.text_norm import CASES, normalize_lines

logger = logging.getLogger(__name__)

# Below this many lines a worker pool costs more than it saves.
_MIN_LINES_FOR_POOL = 20000
_CHUNK = 5000


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


def format_time(seconds: float) -> str:
    """Seconds with 3 decimals, or up to 6 when the time is finer than 1 ms."""
    text = f"{seconds:.3f}"
    if abs(float(text) - seconds) > 5e-7:
        text = f"{seconds:.6f}".rstrip("0")
    return text


def _normalize_both(src_texts: list[str], src_lang: str, tgt_texts: list[str], tgt_lang: str,
                    workers: int) -> tuple[list, list]:
    """Normalise both sides; results keep input order whatever `workers` is."""
    if workers <= 1 or len(src_texts) + len(tgt_texts) < _MIN_LINES_FOR_POOL:
        return normalize_lines(src_texts, src_lang), normalize_lines(tgt_texts, tgt_lang)
    jobs = [(src_texts[i:i + _CHUNK], src_lang) for i in range(0, len(src_texts), _CHUNK)]
    n_src_jobs = len(jobs)
    jobs += [(tgt_texts[i:i + _CHUNK], tgt_lang) for i in range(0, len(tgt_texts), _CHUNK)]
    with multiprocessing.Pool(workers) as pool:
        results = pool.starmap(normalize_lines, jobs)  # starmap returns results in job order
    src = [row for chunk in results[:n_src_jobs] for row in chunk]
    tgt = [row for chunk in results[n_src_jobs:] for row in chunk]
    return src, tgt


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


def write_st_data_dir(out_dir: str | os.PathLike, utterances: Iterable[STRecord],
                      src_lang: str, tgt_lang: str, workers: int = 1) -> Path:
    """Write an ESPnet ST data directory at `out_dir`; returns its path.

    `workers` > 1 normalises texts in a process pool; output is identical.
    """
    out_dir = Path(out_dir)
    utterances = list(utterances)
    whole = _check(utterances)
    src_cases, tgt_cases = _normalize_both(
        [u.src_text for u in utterances], src_lang, [u.tgt_text for u in utterances], tgt_lang, workers
    )

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
    ids = [u.utt_id for u in utterances]
    for lang, rows in ((src_lang, src_cases), (tgt_lang, tgt_cases)):
        for i, case in enumerate(CASES):
            tables[f"text.{case}.{lang}"] = [(utt, row[i]) for utt, row in zip(ids, rows)]
    tables["text"] = tables[f"text.tc.{tgt_lang}"]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir (not mkdtemp) so the directory gets the usual umask permissions.
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.mkdir(tmp)
    try:
        for name, rows in tables.items():
            write_table(tmp / name, rows)  # sorts by key bytes (C locale)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s: %d utterances, %d recordings", out_dir, len(utterances), len(tables["wav.scp"]))
    return out_dir


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
