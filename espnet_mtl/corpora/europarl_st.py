"""Europarl-ST v1.1 reader: one split of one direction as a list of `Utterance`s.

Layout::

    <root>/<src>/audios/<speech_id>.m4a              one 44.1 kHz AAC file per speech
    <root>/<src>/<tgt>/<split>/segments.lst          `<speech_id> <start_s> <end_s>` per line
    <root>/<src>/<tgt>/<split>/segments.<src>        line i goes with line i of segments.lst
    <root>/<src>/<tgt>/<split>/segments.<tgt>

Splits: train, dev, test and train-noisy (the automatically aligned, noisier
extra training data: read only when asked for).

Speech ids contain dots (``en.20080924.31.3-243``), so file names are built
by appending ``.m4a`` to the id, never with suffix-stripping path helpers.
Segment times are start and end in seconds (not a duration).  A segment may
end after its audio does: stage 3 (`espnet_mtl.prep.audio_dump`), which knows
the audio's length, clamps it there within a tolerance (0.1 s) and drops it
beyond, naming it in the stage's summary.

Every trap listed in the design notes ends in correct output or a
`EuroparlSTError` naming the file (and line): see `read_europarl_st_with_stats`.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from espnet_mtl.corpora.textfile import list_names, read_lines

logger = logging.getLogger(__name__)

LANGS = ("en", "fr", "de", "it", "es", "pt", "pl", "ro", "nl")
# Every direction between two different languages: 9 * 8 = 72.
PAIRS = tuple((src, tgt) for src in LANGS for tgt in LANGS if src != tgt)
SPLITS = ("train", "dev", "test", "train-noisy")
DEFAULT_SPLITS = ("train", "dev", "test")  # train-noisy only when asked for

AUDIO_DIR = "audios"
AUDIO_EXT = ".m4a"
SEGMENTS = "segments.lst"

# Reasons a segment is dropped, in the order they are checked.
DROP_REASONS = ("empty_transcript", "empty_translation", "too_short", "duplicate")


class EuroparlSTError(ValueError):
    """The corpus on disk is not what the reader expects; says where."""


@dataclass(frozen=True, slots=True)
class Utterance:
    utt_id: str          # <speech_id>_<start ms %07d>_<end ms %07d>
    recording_id: str    # speech_id
    wav_path: str        # absolute path of <root>/<src>/audios/<speech_id>.m4a
    start: float         # seconds
    end: float           # seconds (may lie after the audio end: clamped or dropped at stage 3)
    speaker: str         # <speech_id>_ (one speaker per speech; see below)
    src_text: str        # raw transcript line
    tgt_text: str        # raw translation line


@dataclass
class ReadStats:
    """What happened to the segments of one split."""

    segments: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        drops = ", ".join(f"{reason}={self.dropped[reason]}" for reason in DROP_REASONS)
        return f"kept {self.kept} of {self.segments} segments; dropped: {drops}"


# --------------------------------------------------------------------------- checks


def check_pair(src_lang: str, tgt_lang: str) -> None:
    """Raise `EuroparlSTError` unless src->tgt is one of the 72 Europarl-ST directions."""
    if (src_lang, tgt_lang) in PAIRS:
        return
    if src_lang == tgt_lang:
        why = "source and target are the same language"
    else:
        unknown = [lang for lang in (src_lang, tgt_lang) if lang not in LANGS]
        why = f"unknown language code {', '.join(repr(u) for u in unknown)}"
    raise EuroparlSTError(
        f"Europarl-ST has no direction {src_lang}->{tgt_lang} ({why}); its directions are "
        f"every src->tgt with src != tgt among {' '.join(LANGS)}"
    )


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise EuroparlSTError(f"unknown split {split!r}; Europarl-ST splits: {', '.join(SPLITS)}")


def _pairs_under(root: Path) -> list[str]:
    """`<src>-<tgt>` for every <root>/<src>/<tgt>/ directory (audios/ aside)."""
    found = []
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for sub in sorted(p for p in lang_dir.iterdir() if p.is_dir() and p.name != AUDIO_DIR):
            found.append(f"{lang_dir.name}-{sub.name}")
    return found


def pair_dir(root: str | os.PathLike, src_lang: str, tgt_lang: str) -> Path:
    """Return `<root>/<src>/<tgt>`, or say what is missing and which pairs exist."""
    root = Path(root)
    if not root.is_dir():
        raise EuroparlSTError(f"Europarl-ST root not found: expected a directory at {root} "
                              f"holding one directory per source language (e.g. {root / src_lang})")
    if (root / AUDIO_DIR).is_dir():
        raise EuroparlSTError(
            f"{root} looks like one source language's directory (it holds {AUDIO_DIR}/); pass its "
            f"parent as the root: the reader expects {root / src_lang / tgt_lang}"
        )
    path = root / src_lang / tgt_lang
    if not path.is_dir():
        pairs = _pairs_under(root)
        raise EuroparlSTError(
            f"language pair {src_lang}-{tgt_lang} not found: expected {path}; "
            f"pairs under {root}: {', '.join(pairs) if pairs else '(none)'}"
        )
    return path


def split_dir(root: str | os.PathLike, src_lang: str, tgt_lang: str, split: str) -> Path:
    """Return `<root>/<src>/<tgt>/<split>`, or say which level is missing."""
    pdir = pair_dir(root, src_lang, tgt_lang)
    path = pdir / split
    if not path.is_dir():
        found = sorted(p.name for p in pdir.iterdir() if p.is_dir())
        raise EuroparlSTError(
            f"split {split} not found: expected {path}; "
            f"splits under {pdir}: {', '.join(found) if found else '(none)'}"
        )
    return path


# --------------------------------------------------------------------------- files


def _parse_segment(line: str, path: Path, lineno: int) -> tuple[str, float, float]:
    """`<speech_id> <start_s> <end_s>` -> (speech_id, start, end), checked."""
    fields = line.split()
    if len(fields) != 3:
        raise EuroparlSTError(
            f"{path}:{lineno}: expected '<speech_id> <start_s> <end_s>' "
            f"(3 fields), got {len(fields)}: {line.strip()[:100]!r}"
        )
    speech_id, start_s, end_s = fields
    if "/" in speech_id or speech_id in (".", ".."):
        raise EuroparlSTError(f"{path}:{lineno}: {speech_id!r} is not a speech id")
    times = []
    for name, value in (("start", start_s), ("end", end_s)):
        try:
            t = float(value)
        except ValueError:
            raise EuroparlSTError(f"{path}:{lineno}: {name} time must be a number of seconds, "
                                  f"got {value!r}") from None
        if not math.isfinite(t) or t < 0:
            raise EuroparlSTError(f"{path}:{lineno}: {name} time must be a finite, non-negative "
                                  f"number of seconds, got {value!r}")
        times.append(t)
    start, end = times
    if start >= end:
        raise EuroparlSTError(f"{path}:{lineno}: start {start_s} is not before end {end_s} "
                              f"(the third field is the end time, not a duration)")
    return speech_id, start, end


# --------------------------------------------------------------------------- reader


def read_europarl_st_with_stats(root: str | os.PathLike, src_lang: str, tgt_lang: str,
                                split: str, min_duration: float = 0.2
                                ) -> tuple[list[Utterance], ReadStats]:
    """Read one split of one direction; return the kept utterances (sorted) and drop counts.

    Utterances are sorted by speech, then numerically by start and end.
    Drops (counted in the stats, in this order): an empty or blank
    transcript or translation; a segment shorter than `min_duration`
    seconds; a duplicate (same speech and same start/end in ms, i.e. the same
    utterance id) of an earlier kept segment (the first is kept).

    Errors (`EuroparlSTError`, naming file and line where there is one): an
    unknown direction or split; a missing root, pair, split, audios/
    directory or text file; line counts that differ between segments.lst and
    the two text files; a segments.lst line without exactly three fields,
    with a time that is not a non-negative number, or with start >= end; a
    speech whose audio file is missing; text that is not UTF-8.
    """
    check_pair(src_lang, tgt_lang)
    check_split(split)
    sdir = split_dir(root, src_lang, tgt_lang, split)
    seg_path = sdir / SEGMENTS
    src_path = sdir / f"segments.{src_lang}"
    tgt_path = sdir / f"segments.{tgt_lang}"
    # Absolute but not resolved: keep the user's symlinked corpus path in wav.scp.
    audio_dir = Path(os.path.abspath(Path(root) / src_lang / AUDIO_DIR))
    if not seg_path.is_file():
        raise EuroparlSTError(f"segment list not found: expected {seg_path}")
    seg_lines = read_lines(seg_path, EuroparlSTError)
    src_lines = read_lines(src_path, EuroparlSTError)
    tgt_lines = read_lines(tgt_path, EuroparlSTError)
    if not (len(seg_lines) == len(src_lines) == len(tgt_lines)):
        raise EuroparlSTError(
            f"line counts differ, so segments cannot be paired with texts: "
            f"{seg_path}: {len(seg_lines)} lines, {src_path}: {len(src_lines)} lines, "
            f"{tgt_path}: {len(tgt_lines)} lines"
        )
    audios = list_names(audio_dir, EuroparlSTError, "audio", f"<speech_id>{AUDIO_EXT} files")

    stats = ReadStats(segments=len(seg_lines))
    audio_checked: set[str] = set()
    seen_ids: set[str] = set()
    kept: list[tuple[str, int, int, Utterance]] = []
    for lineno, (line, src, tgt) in enumerate(zip(seg_lines, src_lines, tgt_lines), 1):
        speech_id, start, end = _parse_segment(line, seg_path, lineno)
        # The speech id is a whole name plus ".m4a": it holds dots of its own.
        audio_name = speech_id + AUDIO_EXT
        if speech_id not in audio_checked:
            if audio_name not in audios:
                raise EuroparlSTError(f"{seg_path}:{lineno}: audio of speech {speech_id} not "
                                      f"found: expected {audio_dir / audio_name}")
            audio_checked.add(speech_id)

        if not src.strip():
            stats.dropped["empty_transcript"] += 1
            continue
        if not tgt.strip():
            stats.dropped["empty_translation"] += 1
            continue
        # Rounded: 1.2 - 1.0 is 0.19999999999999996 in floats.
        if round(end - start, 6) < min_duration:
            stats.dropped["too_short"] += 1
            continue
        start_ms, end_ms = round(start * 1000), round(end * 1000)
        utt_id = f"{speech_id}_{start_ms:07d}_{end_ms:07d}"
        if utt_id in seen_ids:
            stats.dropped["duplicate"] += 1
            continue
        seen_ids.add(utt_id)
        utt = Utterance(
            utt_id=utt_id, recording_id=speech_id, wav_path=str(audio_dir / audio_name),
            # Speaker "<speech_id>_": with "_" kept, sorting by utterance id and by
            # speaker agree (Kaldi's rule) even when one speech id is a prefix of
            # another (en...3-24 / en...3-243: "_" sorts after digits).
            start=start, end=end, speaker=f"{speech_id}_", src_text=src, tgt_text=tgt,
        )
        kept.append((speech_id, start_ms, end_ms, utt))

    # Numeric order: as strings "100.5" would sort before "20.1".
    kept.sort(key=lambda t: t[:3])
    utterances = [t[3] for t in kept]
    stats.kept = len(utterances)
    logger.info("Europarl-ST %s-%s %s: %s", src_lang, tgt_lang, split, stats.summary())
    return utterances, stats


def read_europarl_st(root: str | os.PathLike, src_lang: str, tgt_lang: str, split: str,
                     min_duration: float = 0.2) -> list[Utterance]:
    """Read one split of Europarl-ST; see `read_europarl_st_with_stats`."""
    return read_europarl_st_with_stats(root, src_lang, tgt_lang, split, min_duration)[0]
