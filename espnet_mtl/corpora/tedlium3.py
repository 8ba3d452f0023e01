"""TED-LIUM release 3 reader: one split as segmented ASR utterances.

Layout::

    TEDLIUM_release-3/legacy/{train,dev,test}/{sph,stm}/<talk>.{sph,stm}
    TEDLIUM_release-3/speaker-adaptation/{train,dev,test}/{sph,stm}/...
    TEDLIUM_release-3/data/{sph,stm}/...      the full 452 h training set (layout "data", split train)

Audio: NIST SPHERE, 16 kHz mono PCM16, read by libsndfile (bundled with the
soundfile wheel; stage 3 cuts the segments out of it). Shorten-compressed
SPHERE is not readable by libsndfile and would fail in stage 3, naming the
recording.

STM lines: ``<file> <channel> <speaker> <start> <end> [<label>] words...``
(label like ``<o,f0,male>``), ``;;`` comment lines. The ``<file>`` field
names the audio, ``sph/<file>.sph``, whatever the stm file is called.

Utterance ids: ``<speaker>-<start cs %07d>-<end cs %07d>`` (times in
centiseconds, rounded, as in Kaldi's TED-LIUM recipe) when the speaker field
equals the file field, as it does throughout TED-LIUM; otherwise
``<speaker>-<file>-<start cs %07d>-<end cs %07d>``. Either way the id starts
with the speaker id and is unique per (file, start, end). Recording id = the
file field; speaker = the speaker field.

Text cleaning (TED-LIUM transcripts are lower case, with markup):

- tokens in ``<...>``, ``{...}``, ``[...]`` are removed (``<sil>``, ``<unk>``,
  ``{NOISE}``, ``{SMACK}``, ``{BREATH}``, ``{UH}``, ...), and so are
  stand-alone ``(...)`` tokens (utterance names at the end of some train lines);
- pronunciation-variant suffixes go: ``word(2)`` -> ``word``;
- split contractions are rejoined as in Kaldi's join_suffix.py: a token
  starting with an apostrophe is glued to the word before it (``it 's`` ->
  ``it's``, ``don 't`` -> ``don't``); at the start of a segment it stays a word.

Dropped and counted, in this order: segments whose text is
``ignore_time_segment_in_scoring`` (``ignored``), segments with no word left
after cleaning (``empty_text``), segments shorter than `min_duration`
(``too_short``), repeats of an earlier kept (file, start, end) at centisecond
precision (``duplicate``). Errors (`TedliumError`, naming file and line): a
malformed line, bad times or end <= start, a missing sph file.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from espnet_mtl.corpora.textfile import iter_lines

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
LAYOUTS = ("legacy", "speaker-adaptation", "data")
IGNORE = "ignore_time_segment_in_scoring"

DROP_REASONS = ("ignored", "empty_text", "too_short", "duplicate")

_MARKUP = re.compile(r"<[^<>]*>|\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)")
_VARIANT = re.compile(r"(.+?)\(\d+\)")


class TedliumError(ValueError):
    """The corpus on disk is not what the reader expects; says where."""


@dataclass(frozen=True, slots=True)
class Utterance:
    utt_id: str          # <speaker>-<start cs %07d>-<end cs %07d> (see the module notes)
    recording_id: str    # the stm <file> field
    wav_path: str        # absolute path of sph/<file>.sph
    start: float         # seconds
    end: float           # seconds
    speaker: str         # the stm <speaker> field
    text: str            # cleaned words, lower case as in the corpus
    gender: str          # "m" / "f" from the stm label, "" when it says neither


@dataclass
class ReadStats:
    """What happened to the stm segments of one split."""

    segments: int = 0    # non-comment stm lines
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        drops = ", ".join(f"{reason}={self.dropped[reason]}" for reason in DROP_REASONS)
        return f"kept {self.kept} of {self.segments} segments; dropped: {drops}"


def split_dir(root: str | os.PathLike, split: str, layout: str = "legacy") -> Path:
    """The directory holding sph/ and stm/ for a split and layout, or a clear error."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise TedliumError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    if split not in SPLITS:
        raise TedliumError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise TedliumError(f"TED-LIUM 3 root not found: expected a directory at {root}")
    if layout == "data":
        if split != "train":
            raise TedliumError(f"layout 'data' holds only the train split (the full 452 h set), "
                               f"not {split}: use --layout legacy or speaker-adaptation")
        path = root / "data"
    else:
        path = root / layout / split
    for sub in ("stm", "sph"):
        if not (path / sub).is_dir():
            parent = path if path.is_dir() else root
            found = sorted(p.name for p in parent.iterdir() if p.is_dir())
            hint = ""
            if not path.is_dir() and (root / "TEDLIUM_release-3").is_dir():
                hint = f" ({root / 'TEDLIUM_release-3'} exists: pass it as the root)"
            raise TedliumError(f"{path / sub} not found{hint}; directories under {parent}: "
                               f"{', '.join(found) if found else '(none)'}")
    return path


def clean_words(words: list[str]) -> str:
    """Cleaned transcript of an stm line's words (see the module notes)."""
    out: list[str] = []
    for w in words:
        if _MARKUP.fullmatch(w):
            continue
        m = _VARIANT.fullmatch(w)
        if m:
            w = m.group(1)
        if w.startswith("'") and out:
            out[-1] += w
        else:
            out.append(w)
    return " ".join(out)


def _gender(label: str) -> str:
    parts = {p.strip().lower() for p in label[1:-1].split(",")}
    if "female" in parts:
        return "f"
    if "male" in parts:
        return "m"
    return ""


def _seconds(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TedliumError(f"{where}: {what} time must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise TedliumError(f"{where}: {what} time must be finite and non-negative, got {text!r}")
    return value


def read_tedlium3_with_stats(root: str | os.PathLike, split: str, layout: str = "legacy",
                             min_duration: float = 0.2) -> tuple[list[Utterance], ReadStats]:
    """Read one split; return the kept utterances (by recording, then time) and drop counts."""
    sdir = split_dir(root, split, layout)
    # Absolute but not resolved: keep the user's symlinked corpus path in wav.scp.
    sph_dir = Path(os.path.abspath(sdir / "sph"))
    stm_files = sorted((sdir / "stm").glob("*.stm"))
    if not stm_files:
        raise TedliumError(f"no .stm files in {sdir / 'stm'}")
    stats = ReadStats()
    sph_checked: set[str] = set()
    seen: set[tuple[str, int, int]] = set()   # (file, start cs, end cs) kept
    ids: dict[str, str] = {}
    kept: list[tuple[str, float, float, Utterance]] = []
    for stm in stm_files:
        for lineno, line in iter_lines(stm, TedliumError, "stm file"):
            fields = line.split()
            if not fields or fields[0].startswith(";;"):
                continue
            where = f"{stm}:{lineno}"
            if len(fields) < 5:
                raise TedliumError(f"{where}: expected '<file> <channel> <speaker> <start> <end> "
                                   f"[<label>] words...', got {line[:100]!r}")
            stats.segments += 1
            rec, speaker = fields[0], fields[2]
            start = _seconds(fields[3], "start", where)
            end = _seconds(fields[4], "end", where)
            if end <= start:
                raise TedliumError(f"{where}: end {fields[4]} is not after start {fields[3]}")
            if rec not in sph_checked:
                if not (sph_dir / f"{rec}.sph").is_file():
                    raise TedliumError(f"{where}: audio of {rec} not found: expected "
                                       f"{sph_dir / (rec + '.sph')}")
                if rec != stm.stem:
                    logger.info("%s: file field %s differs from the stm name; audio %s.sph is used",
                                where, rec, rec)
                sph_checked.add(rec)
            words = fields[5:]
            label = ""
            if words and words[0].startswith("<") and words[0].endswith(">") and len(words[0]) > 2:
                label, words = words[0], words[1:]
            if len(words) == 1 and words[0].lower() == IGNORE:
                stats.dropped["ignored"] += 1
                continue
            text = clean_words(words)
            if not text:
                stats.dropped["empty_text"] += 1
                continue
            if end - start < min_duration:
                stats.dropped["too_short"] += 1
                continue
            start_cs, end_cs = round(start * 100), round(end * 100)
            if (rec, start_cs, end_cs) in seen:
                stats.dropped["duplicate"] += 1
                continue
            seen.add((rec, start_cs, end_cs))
            middle = "" if speaker == rec else f"{rec}-"
            utt_id = f"{speaker}-{middle}{start_cs:07d}-{end_cs:07d}"
            if utt_id in ids:  # only possible with "-" inside speaker or file names
                raise TedliumError(f"{where}: utterance id {utt_id} is also made by {ids[utt_id]}")
            ids[utt_id] = where
            utt = Utterance(utt_id=utt_id, recording_id=rec, wav_path=str(sph_dir / f"{rec}.sph"),
                            start=start, end=end, speaker=speaker, text=text,
                            gender=_gender(label) if label else "")
            kept.append((rec, start, end, utt))
    kept.sort(key=lambda t: t[:3])  # numeric times: as strings "100.5" < "20.1"
    utterances = [t[3] for t in kept]
    stats.kept = len(utterances)
    logger.info("TED-LIUM 3 %s %s: %s", layout, split, stats.summary())
    return utterances, stats


def read_tedlium3(root: str | os.PathLike, split: str, layout: str = "legacy",
                  min_duration: float = 0.2) -> list[Utterance]:
    """Read one split of TED-LIUM 3; see `read_tedlium3_with_stats`."""
    return read_tedlium3_with_stats(root, split, layout, min_duration)[0]


def speaker_genders(utterances: list[Utterance]) -> dict[str, str] | None:
    """spk2gender from the stm labels, or None unless every speaker has exactly one of m/f."""
    genders: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        genders[u.speaker].add(u.gender)
    unclear = sorted(s for s, g in genders.items() if len(g) != 1 or "" in g)
    if unclear:
        logger.info("no spk2gender: the stm labels give no single gender for %d of %d speakers "
                    "(e.g. %s)", len(unclear), len(genders), unclear[0])
        return None
    return {s: g.pop() for s, g in genders.items()}
