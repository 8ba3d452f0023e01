"""MuST-C reader: one split of one language pair as a list of `Utterance`s.

Layout (v1.0, v1.2 and v2.0 alike)::

    <root>/en-<tgt>/data/<split>/wav/ted_<talk>.wav
    <root>/en-<tgt>/data/<split>/txt/<split>.yaml   one flow mapping per line
    <root>/en-<tgt>/data/<split>/txt/<split>.en     line i goes with entry i
    <root>/en-<tgt>/data/<split>/txt/<split>.<tgt>

Every trap listed in the design notes ends in correct output or a
`MustCError` naming the file (and line): mismatched line counts, empty texts,
duplicate or too-short segments, missing files, unparsable yaml lines.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from espnet_mtl.corpora.textfile import read_lines

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")

# English-to-X targets of each release (v1.2 adds six to v1.0; v2.0 is en-de,
# with en-ja and en-zh released later in the same layout).
TARGETS = {
    "v1": ("de", "es", "fr", "it", "nl", "pt", "ro", "ru"),
    "v1.2": ("de", "es", "fr", "it", "nl", "pt", "ro", "ru", "ar", "cs", "fa", "tr", "vi", "zh"),
    "v2": ("de", "ja", "zh"),
}

# Reasons an entry is dropped, in the order they are checked.
DROP_REASONS = ("empty_transcript", "empty_translation", "too_short", "duplicate")

_WAV_NAME = re.compile(r"ted_(\d+)\.wav")


class MustCError(ValueError):
    """The corpus on disk is not what the reader expects; says where."""


@dataclass(frozen=True, slots=True)
class Utterance:
    utt_id: str          # ted_<talk %05d>_<start ms %07d>_<end ms %07d>
    recording_id: str    # ted_<talk %05d>
    wav_path: str        # absolute path of the talk's wav file
    start: float         # seconds
    end: float           # seconds
    speaker: str         # = recording_id (one speaker per talk, ESPnet's convention)
    src_text: str        # raw transcript line
    tgt_text: str        # raw translation line


@dataclass
class ReadStats:
    """What happened to the yaml entries of one split."""

    entries: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        drops = ", ".join(f"{reason}={self.dropped[reason]}" for reason in DROP_REASONS)
        return f"kept {self.kept} of {self.entries} entries; dropped: {drops}"


def check_target(version: str, tgt_lang: str, src_lang: str = "en") -> None:
    """Refuse a pair the release does not have, before any file is read."""
    if version not in TARGETS:
        raise MustCError(f"unknown MuST-C version {version!r}: use one of {', '.join(TARGETS)}")
    if src_lang != "en" or tgt_lang not in TARGETS[version]:
        raise MustCError(
            f"MuST-C {version} has no {src_lang}-{tgt_lang} pair: its pairs are "
            f"{', '.join('en-' + t for t in TARGETS[version])}"
        )


def split_dir(root: str | os.PathLike, tgt_lang: str, split: str,
              src_lang: str = "en") -> Path:
    """Return `<root>/<src>-<tgt>/data/<split>`, or say which level is missing."""
    root = Path(root)
    if not root.is_dir():
        raise MustCError(f"MuST-C root not found: expected a directory at {root}")
    pair = f"{src_lang}-{tgt_lang}"
    pair_dir = root / pair
    if not pair_dir.is_dir():
        pairs = sorted(p.name for p in root.iterdir() if p.is_dir() and "-" in p.name)
        raise MustCError(
            f"language pair {pair} not found: expected {pair_dir}; "
            f"pairs under {root}: {', '.join(pairs) if pairs else '(none)'}"
        )
    data_dir = pair_dir / "data"
    path = data_dir / split
    if not path.is_dir():
        found = sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
        raise MustCError(
            f"split {split} not found: expected {path}; "
            f"splits under {data_dir}: {', '.join(found) if found else '(none)'}"
        )
    return path


def _parse_yaml_line(line: str, path: Path, lineno: int) -> dict[str, str]:
    """Parse `- {key: value, key: value, ...}` into a dict of strings.

    MuST-C values are plain scalars (numbers, `spk.1`, `ted_1.wav`) without
    commas, so splitting on commas is exact; anything else is an error.
    """
    s = line.strip()
    if not (s.startswith("- {") and s.endswith("}")):
        raise MustCError(
            f"{path}:{lineno}: expected one flow mapping per line like "
            f"'- {{duration: 3.5, offset: 16.08, speaker_id: spk.1, wav: ted_1.wav}}', "
            f"got {s[:100]!r}"
        )
    fields = {}
    for item in s[3:-1].split(","):
        key, sep, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise MustCError(f"{path}:{lineno}: expected 'key: value' in the mapping, got {item.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]  # a quoted scalar
        fields[key] = value
    return fields


def _seconds(fields: dict[str, str], key: str, path: Path, lineno: int) -> float:
    if key not in fields:
        raise MustCError(f"{path}:{lineno}: missing key '{key}' (keys: {', '.join(fields)})")
    try:
        value = float(fields[key])
    except ValueError:
        raise MustCError(f"{path}:{lineno}: {key} must be a number of seconds, got {fields[key]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise MustCError(f"{path}:{lineno}: {key} must be a finite, non-negative number, got {fields[key]!r}")
    return value


def read_must_c_with_stats(root: str | os.PathLike, tgt_lang: str, split: str,
                           src_lang: str = "en", min_duration: float = 0.2
                           ) -> tuple[list[Utterance], ReadStats]:
    """Read one split; return the kept utterances (sorted) and drop counts.

    Utterances are sorted by recording, then numerically by start and end.
    Drops (counted in the stats, in this order): an empty transcript or
    translation; a segment shorter than `min_duration` seconds; a duplicate
    (same wav and same start/end in ms, i.e. the same utterance id) of an
    earlier kept segment.
    """
    sdir = split_dir(root, tgt_lang, split, src_lang)
    yaml_path = sdir / "txt" / f"{split}.yaml"
    src_path = sdir / "txt" / f"{split}.{src_lang}"
    tgt_path = sdir / "txt" / f"{split}.{tgt_lang}"
    # Absolute but not resolved: keep the user's symlinked corpus path in wav.scp.
    wav_dir = Path(os.path.abspath(sdir / "wav"))
    if not yaml_path.is_file():
        raise MustCError(f"segment list not found: expected {yaml_path}")
    src_lines = read_lines(src_path, MustCError)
    tgt_lines = read_lines(tgt_path, MustCError)

    # Blank yaml lines carry no entry; keep each entry's line number for errors.
    yaml_lines = read_lines(yaml_path, MustCError)
    yaml_entries = [(i, line) for i, line in enumerate(yaml_lines, 1) if line.strip()]
    if not (len(yaml_entries) == len(src_lines) == len(tgt_lines)):
        raise MustCError(
            f"line counts differ, so entries cannot be paired with texts: "
            f"{yaml_path}: {len(yaml_entries)} entries, {src_path}: {len(src_lines)} lines, "
            f"{tgt_path}: {len(tgt_lines)} lines"
        )

    stats = ReadStats(entries=len(yaml_entries))
    wav_checked: dict[str, str] = {}  # wav name -> recording id, checked once per wav
    seen_ids: set[str] = set()
    kept: list[tuple[int, int, Utterance]] = []
    for (lineno, line), src, tgt in zip(yaml_entries, src_lines, tgt_lines):
        fields = _parse_yaml_line(line, yaml_path, lineno)
        offset = _seconds(fields, "offset", yaml_path, lineno)
        duration = _seconds(fields, "duration", yaml_path, lineno)
        wav = fields.get("wav")
        if not wav:
            raise MustCError(f"{yaml_path}:{lineno}: missing key 'wav' (keys: {', '.join(fields)})")

        rec_id = wav_checked.get(wav)
        if rec_id is None:
            m = _WAV_NAME.fullmatch(wav)
            if m is None:
                raise MustCError(f"{yaml_path}:{lineno}: expected a wav name like ted_<number>.wav, got {wav!r}")
            if not (wav_dir / wav).is_file():
                raise MustCError(f"{yaml_path}:{lineno}: wav file {wav} not found: expected {wav_dir / wav}")
            rec_id = wav_checked[wav] = f"ted_{int(m.group(1)):05d}"

        if not src.strip():
            stats.dropped["empty_transcript"] += 1
            continue
        if not tgt.strip():
            stats.dropped["empty_translation"] += 1
            continue
        if duration < min_duration:
            stats.dropped["too_short"] += 1
            continue
        start_ms = round(offset * 1000)
        end_ms = round((offset + duration) * 1000)
        utt_id = f"{rec_id}_{start_ms:07d}_{end_ms:07d}"
        if utt_id in seen_ids:
            stats.dropped["duplicate"] += 1
            continue
        seen_ids.add(utt_id)
        utt = Utterance(
            utt_id=utt_id, recording_id=rec_id, wav_path=str(wav_dir / wav),
            # Rounded to the microsecond to hide float noise of offset + duration.
            start=round(offset, 6), end=round(offset + duration, 6),
            speaker=rec_id, src_text=src, tgt_text=tgt,
        )
        kept.append((start_ms, end_ms, utt))

    # Numeric order: as strings "100.5" would sort before "20.1".
    kept.sort(key=lambda t: (t[2].recording_id, t[0], t[1]))
    utterances = [t[2] for t in kept]
    stats.kept = len(utterances)
    logger.info("MuST-C %s-%s %s: %s", src_lang, tgt_lang, split, stats.summary())
    return utterances, stats


def read_must_c(root: str | os.PathLike, tgt_lang: str, split: str,
                src_lang: str = "en", min_duration: float = 0.2) -> list[Utterance]:
    """Read one split of MuST-C; see `read_must_c_with_stats`."""
    return read_must_c_with_stats(root, tgt_lang, split, src_lang, min_duration)[0]
