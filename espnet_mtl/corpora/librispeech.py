"""LibriSpeech reader: chosen subsets as whole-file ASR utterances.

Layout::

    LibriSpeech/<subset>/<spk>/<chap>/<spk>-<chap>-<utt %04d>.flac
    LibriSpeech/<subset>/<spk>/<chap>/<spk>-<chap>.trans.txt   "<utt-id> UPPERCASE TEXT" per line
    LibriSpeech/SPEAKERS.TXT    ";"-comment lines, then "ID | SEX | SUBSET | MINUTES | NAME"

Each flac is one utterance covering the whole file (no ``segments``):
recording id = utterance id = ``<spk>-<chap>-<utt>``, speaker = ``<spk>``, so
every utterance id starts with its speaker id. The text is the transcript as
given (upper case, no punctuation besides apostrophes).

Every trap ends in correct output or a `LibriSpeechError` naming the file
(and line): an unknown subset (the error lists the subsets found), a
malformed transcript line or one whose id belongs to another chapter, an
utterance id seen twice (in one file or across subsets), a transcript line
whose flac is missing (an error, or dropped and counted with
``missing_audio="drop"``). Dropped and counted: flacs without a transcript
line (``no_transcript``, also a whole chapter without its trans.txt, with a
warning), empty transcripts (``empty_text``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from espnet_mtl.corpora.textfile import iter_lines

logger = logging.getLogger(__name__)

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
           "test-clean", "test-other")

DROP_REASONS = ("missing_audio", "empty_text", "no_transcript")

_DIGITS = re.compile(r"\d+")


class LibriSpeechError(ValueError):
    """The corpus on disk is not what the reader expects; says where."""


@dataclass(frozen=True, slots=True)
class Utterance:
    utt_id: str          # <spk>-<chap>-<utt>, as in the corpus
    recording_id: str    # = utt_id: each flac is its own recording
    wav_path: str        # absolute path of the flac
    start: float         # 0.0
    end: float           # math.inf: the whole file
    speaker: str         # <spk>
    text: str            # the transcript as given


@dataclass
class ReadStats:
    """What happened to the transcript lines and flacs of the chosen subsets."""

    transcripts: int = 0   # transcript lines
    audio_files: int = 0   # flacs found
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        drops = ", ".join(f"{reason}={self.dropped[reason]}" for reason in DROP_REASONS)
        return (f"kept {self.kept} of {self.transcripts} transcript lines "
                f"({self.audio_files} flac files); dropped: {drops}")


def _subdirs(path: Path) -> list[os.DirEntry]:
    """Visible subdirectories, sorted by name; other entries are ignored."""
    with os.scandir(path) as it:
        return sorted((e for e in it if not e.name.startswith(".") and e.is_dir()),
                      key=lambda e: e.name)


def _numbered(path: Path, what: str) -> list[os.DirEntry]:
    """Subdirectories named by a number (speakers, chapters); warn about others."""
    out = []
    for e in _subdirs(path):
        if _DIGITS.fullmatch(e.name):
            out.append(e)
        else:
            logger.warning("%s: not a LibriSpeech %s directory (expected a number); skipped",
                           e.path, what)
    return out


def subset_dirs(root: str | os.PathLike, subsets: list[str]) -> list[Path]:
    """`<root>/<subset>` for each subset, or an error naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise LibriSpeechError(f"LibriSpeech root not found: expected a directory at {root}")
    if not subsets:
        raise LibriSpeechError("no subset given (e.g. train-clean-100,train-clean-360,train-other-500)")
    repeated = sorted({s for s in subsets if subsets.count(s) > 1})
    if repeated:
        raise LibriSpeechError(f"subset {repeated[0]} is listed twice")
    out = []
    for subset in subsets:
        path = root / subset
        if not path.is_dir():
            found = [e.name for e in _subdirs(root)]
            hint = ""
            if (root / "LibriSpeech").is_dir():
                hint = f" ({root / 'LibriSpeech'} exists: pass it as the root)"
            raise LibriSpeechError(
                f"subset {subset} not found: expected {path}{hint}; subsets under {root}: "
                f"{', '.join(found) if found else '(none)'}")
        out.append(path)
    return out


def read_librispeech_with_stats(root: str | os.PathLike, subsets: list[str] | str,
                                missing_audio: str = "error"
                                ) -> tuple[list[Utterance], ReadStats]:
    """Read the given subsets; return the utterances (sorted by id) and drop counts.

    `subsets` is a list or a comma-separated string. `missing_audio`:
    "error" (default) or "drop" a transcript line whose flac is missing.
    """
    if missing_audio not in ("error", "drop"):
        raise ValueError(f"missing_audio must be 'error' or 'drop', got {missing_audio!r}")
    if isinstance(subsets, str):
        subsets = [s for s in subsets.split(",") if s]
    stats = ReadStats()
    seen: dict[str, str] = {}   # utterance id -> "file:line" where it was first read
    utterances: list[Utterance] = []
    for sdir in subset_dirs(root, subsets):
        # Absolute but not resolved: keep the user's symlinked corpus path in wav.scp.
        sdir = Path(os.path.abspath(sdir))
        for spk in _numbered(sdir, "speaker"):
            for chap in _numbered(Path(spk.path), "chapter"):
                utterances += _read_chapter(Path(chap.path), spk.name, chap.name, stats, seen,
                                            missing_audio)
    utterances.sort(key=lambda u: u.utt_id)  # str order = C byte order
    stats.kept = len(utterances)
    logger.info("LibriSpeech %s: %s", ",".join(subsets), stats.summary())
    return utterances, stats


def _read_chapter(cdir: Path, spk: str, chap: str, stats: ReadStats, seen: dict[str, str],
                  missing_audio: str) -> list[Utterance]:
    prefix = f"{spk}-{chap}-"
    trans_name = f"{spk}-{chap}.trans.txt"
    flacs: set[str] = set()
    others: list[str] = []
    with os.scandir(cdir) as it:
        for e in it:
            if e.name.endswith(".flac"):
                flacs.add(e.name[:-5])
            elif e.name.endswith(".trans.txt") and e.name != trans_name:
                others.append(e.name)
    stats.audio_files += len(flacs)
    if others:
        raise LibriSpeechError(f"{cdir / sorted(others)[0]}: unexpected transcript file: the "
                               f"chapter directory {cdir} takes {trans_name}")
    trans = cdir / trans_name
    if not trans.is_file():
        if flacs:
            logger.warning("%s: missing, so the %d flac files of %s are dropped", trans,
                           len(flacs), cdir)
            stats.dropped["no_transcript"] += len(flacs)
        return []

    out = []
    listed: set[str] = set()
    for lineno, line in iter_lines(trans, LibriSpeechError, "transcript"):
        if not line.strip():
            continue  # a blank line carries no utterance
        parts = line.split(maxsplit=1)
        utt = parts[0]
        where = f"{trans}:{lineno}"
        if not (utt.startswith(prefix) and _DIGITS.fullmatch(utt, len(prefix))):
            raise LibriSpeechError(
                f"{where}: expected '<utterance-id> TEXT' with an id {prefix}<number> of this "
                f"chapter, got {line[:100]!r}")
        stats.transcripts += 1
        if utt in seen:
            raise LibriSpeechError(f"{where}: utterance {utt} was already read at {seen[utt]}")
        seen[utt] = where
        listed.add(utt)
        if utt not in flacs:
            if missing_audio == "error":
                raise LibriSpeechError(f"{where}: audio of {utt} not found: expected "
                                       f"{cdir / (utt + '.flac')} (--missing_audio drop skips it)")
            stats.dropped["missing_audio"] += 1
            continue
        text = parts[1].strip() if len(parts) > 1 else ""
        if not text:
            stats.dropped["empty_text"] += 1
            continue
        out.append(Utterance(utt_id=utt, recording_id=utt, wav_path=str(cdir / f"{utt}.flac"),
                             start=0.0, end=math.inf, speaker=spk, text=text))
    unlisted = flacs - listed
    if unlisted:
        logger.warning("%s: %d flac file(s) without a transcript line (e.g. %s.flac) dropped",
                       cdir, len(unlisted), min(unlisted))
        stats.dropped["no_transcript"] += len(unlisted)
    return out


def read_librispeech(root: str | os.PathLike, subsets: list[str] | str,
                     missing_audio: str = "error") -> list[Utterance]:
    """Read subsets of LibriSpeech; see `read_librispeech_with_stats`."""
    return read_librispeech_with_stats(root, subsets, missing_audio)[0]


def read_speaker_genders(path: str | os.PathLike) -> dict[str, str]:
    """Speaker id -> "m" / "f" from SPEAKERS.TXT.

    Columns are found by name in the last ";" comment line naming ID and SEX
    (``;ID  |SEX| SUBSET           |MINUTES| NAME``); without such a header,
    the documented order ID, SEX, SUBSET, MINUTES, NAME is assumed. A line is
    split on "|" at most (columns - 1) times, so the last field (NAME) may
    itself contain "|". A short line, an unknown SEX or a repeated ID is an
    error naming the line.
    """
    path = Path(path)
    columns = ["ID", "SEX", "SUBSET", "MINUTES", "NAME"]
    genders: dict[str, str] = {}
    first: dict[str, int] = {}
    for lineno, line in iter_lines(path, LibriSpeechError, "speaker list"):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(";"):
            names = [c.strip().upper() for c in stripped[1:].split("|")]
            if "ID" in names and "SEX" in names:
                columns = names
            continue
        fields = [f.strip() for f in stripped.split("|", len(columns) - 1)]
        if len(fields) < len(columns):
            raise LibriSpeechError(f"{path}:{lineno}: expected {len(columns)} '|'-separated fields "
                                   f"({' | '.join(columns)}), got {len(fields)}: {line[:100]!r}")
        spk, sex = fields[columns.index("ID")], fields[columns.index("SEX")].upper()
        if sex not in ("M", "F"):
            raise LibriSpeechError(f"{path}:{lineno}: speaker {spk}: SEX must be M or F, got {sex!r}")
        if spk in first:
            raise LibriSpeechError(f"{path}:{lineno}: speaker {spk} is listed twice "
                                   f"(first on line {first[spk]})")
        first[spk] = lineno
        genders[spk] = sex.lower()
    return genders


def speaker_genders(root: str | os.PathLike, speakers: set[str]) -> dict[str, str] | None:
    """spk2gender for `speakers` from <root>/SPEAKERS.TXT, or None (absent, or a speaker missing).

    Kaldi's validate_data_dir.sh and `espnet_mtl.prep.datadir` want every speaker in
    spk2gender, so a list that misses some speakers is not written at all.
    """
    path = Path(root) / "SPEAKERS.TXT"
    if not path.is_file():
        logger.info("%s not found: no spk2gender", path)
        return None
    genders = read_speaker_genders(path)
    missing = sorted(speakers - genders.keys(), key=int)
    if missing:
        logger.warning("%s lacks %d of the %d speakers used (e.g. %s): no spk2gender written",
                       path, len(missing), len(speakers), missing[0])
        return None
    return {spk: genders[spk] for spk in speakers}
