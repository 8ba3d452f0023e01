"""A generic manifest reader: your own corpus as a TSV or JSON Lines table.

One manifest per split, one row per utterance, columns by name:

    id        utterance id (no whitespace)                                   required
    audio     audio file, absolute or relative to the manifest's directory  (empty: MT-only row)
    start     segment start in seconds                                        optional column
    end       segment end in seconds                                          optional column
    speaker   speaker id                                                      optional column
    src_text  transcript                                                      (empty: no transcript)
    tgt_text  translation                                                     (empty: no translation)

TSV: a header line naming the columns (any order, extra columns ignored), tab
separated, quoting off (a `"` is text), UTF-8 with or without a BOM. JSON Lines:
one object per line with those keys (null or absent = empty); tabs and line
breaks inside a text become spaces. `--columns id=utt,audio=path` maps other
header names onto ours.

Each row is one of (`Rows`):
    st        audio + transcript + translation   -> data/<split>.<src>-<tgt>
    asr_only  audio + transcript                 -> data/<split>_asr_only.<src> (auxiliary ASR)
    mt_only   transcript + translation, no audio -> data/<split>_mt_only.<src>-<tgt> (auxiliary MT)
and anything else is dropped and counted (`no_transcript`: audio and a translation
but no transcript; `empty`). A row repeated exactly is dropped and counted
(`duplicate`); one id with two different contents is an error naming both lines.

Ids: with a speaker, Kaldi wants utterance ids that start with it (so utt2spk and
spk2utt sort alike): an id that does not is written `<speaker>-<id>`. Without a
speaker column each utterance is its own speaker. Rows with times are segments of
a recording named by its audio path (relative to the manifest, without the
extension, `/` -> `-`); rows without are whole files (no `segments`). A manifest
mixing the two gives whole-file rows the file's length as their end (read from
the audio header). Times past the audio's end are left to stage 3, which clamps
them within `--segment_overrun_tolerance` and otherwise drops and lists them (or
stops, `--segment_overrun error`), as for every corpus.

Errors (`ManifestError`) name the file and line: a header without the id, audio,
src_text or tgt_text column; a row with the wrong number of fields (a tab inside
a text: use JSON Lines); bad JSON; an id with whitespace; times that are not
numbers, negative, or end <= start; a missing audio file (or `missing_audio=drop`:
dropped and counted); a recording id shared by two different files.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)

COLUMNS = ("id", "audio", "start", "end", "speaker", "src_text", "tgt_text")
REQUIRED = ("id", "audio", "src_text", "tgt_text")
KINDS = ("st", "asr_only", "mt_only")
DROP_REASONS = ("duplicate", "no_transcript", "empty", "missing_audio")


class ManifestError(ValueError):
    """The manifest is not what the reader expects; says where and what to do."""


@dataclass(frozen=True, slots=True)
class Row:
    """One utterance (the writer's STRecord / ASRRecord; MT-only rows use the texts)."""

    utt_id: str
    recording_id: str
    wav_path: str
    start: float
    end: float
    speaker: str
    src_text: str
    tgt_text: str

    @property
    def text(self) -> str:  # ASRRecord
        return self.src_text


@dataclass
class Rows:
    """A manifest's rows by kind, with what was dropped."""

    path: Path
    st: list = field(default_factory=list)
    asr_only: list = field(default_factory=list)
    mt_only: list = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        kept = ", ".join(f"{k} {len(getattr(self, k))}" for k in KINDS)
        drops = ", ".join(f"{r}={self.dropped[r]}" for r in DROP_REASONS)
        return f"{self.path}: {kept}; dropped: {drops}"


def parse_columns(text: str | None) -> dict[str, str]:
    """`id=utt,audio=path` -> {header name: our column}."""
    mapping = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        ours, _, theirs = item.partition("=")
        if ours not in COLUMNS or not theirs:
            raise ManifestError(f"--columns {text}: each item is <our column>=<your header name>, "
                                f"our columns being {', '.join(COLUMNS)}; got {item!r}")
        mapping[theirs] = ours
    return mapping


def _tsv(path: Path, renames: dict[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ManifestError(f"{path}: empty file; expected a header line naming the columns "
                                f"{', '.join(REQUIRED)} (and optionally start, end, speaker)")
        header = [renames.get(h.strip(), h.strip()) for h in header]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ManifestError(
                f"{path}:1: header lacks column(s) {', '.join(missing)}; found: "
                f"{', '.join(header)}. Name the columns {', '.join(COLUMNS)} (tab-separated), or "
                f"map yours with --columns {missing[0]}=<your name>")
        repeated = sorted({c for c in header if c in COLUMNS and header.count(c) > 1})
        if repeated:
            raise ManifestError(f"{path}:1: header names column(s) {', '.join(repeated)} twice")
        index = [(c, header.index(c)) for c in COLUMNS if c in header]
        width = len(header)
        try:
            for row in reader:
                if len(row) != width:
                    if not row:
                        continue
                    raise ManifestError(
                        f"{path}:{reader.line_num}: {len(row)} tab-separated fields, but the header "
                        f"has {width}; a tab inside a text? Remove it, or write the manifest as "
                        f"JSON Lines (.jsonl), where texts may hold any character")
                yield reader.line_num, {c: row[i] for c, i in index}
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}:{reader.line_num + 1}: not valid UTF-8 ({e.reason})") from None


def _jsonl(path: Path, renames: dict[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, encoding="utf-8-sig") as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ManifestError(f"{path}:{lineno}: not a JSON object ({e.msg} at column "
                                        f"{e.colno})") from None
                if not isinstance(obj, dict):
                    raise ManifestError(f"{path}:{lineno}: expected a JSON object, got "
                                        f"{type(obj).__name__}")
                obj = {renames.get(k, k): v for k, v in obj.items()}
                if "id" not in obj:
                    raise ManifestError(f"{path}:{lineno}: no \"id\"; every row needs one (keys: "
                                        f"{', '.join(COLUMNS)})")
                yield lineno, {c: "" if obj.get(c) is None else " ".join(str(obj[c]).split())
                               if c in ("src_text", "tgt_text") else str(obj[c])
                               for c in COLUMNS if c in obj}
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}: not valid UTF-8 ({e.reason})") from None


def _seconds(value: str, what: str, where: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ManifestError(f"{where}: {what} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ManifestError(f"{where}: {what} {value!r} must be >= 0 seconds")
    return seconds


def _recording_id(audio: str, base: Path) -> str:
    rel = os.path.relpath(audio, base) if os.path.isabs(audio) else audio
    if rel.startswith(".."):
        rel = audio.lstrip("/")
    stem = os.path.splitext(rel)[0]
    return "-".join(stem.replace(os.sep, "/").split("/")).replace(" ", "_")


def read_manifest(path: str | os.PathLike, *, columns: str | None = None,
                  missing_audio: str = "error") -> Rows:
    """Read one manifest (`.tsv` or `.jsonl`, by extension) into its rows by kind."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    renames = parse_columns(columns)
    if path.suffix == ".jsonl":
        rows = _jsonl(path, renames)
    elif path.suffix in (".tsv", ".txt"):
        rows = _tsv(path, renames)
    else:
        raise ManifestError(f"{path}: a manifest is .tsv (tab-separated, with a header) or .jsonl "
                            f"(JSON Lines)")
    collector = RowCollector(path, missing_audio)
    for lineno, fields in rows:
        collector.add(f"{path}:{lineno}", fields)
    return collector.finish()


class RowCollector:
    """Checks and sorts rows into `Rows`; shared by the manifest and the lhotse import.

    `add(where, fields)` takes one row's fields (our column names, strings) and names
    it `where` (file:line) in errors; `recording_id` overrides the one derived from the
    audio path (lhotse names its recordings).
    """

    def __init__(self, path: Path, missing_audio: str = "error"):
        if missing_audio not in ("error", "drop"):
            raise ValueError(f"missing_audio must be 'error' or 'drop', got {missing_audio!r}")
        self.out = Rows(path)
        self.base = path.parent
        self.missing_audio = missing_audio
        self.seen: dict[str, tuple[str, tuple]] = {}
        self.recordings: dict[str, str] = {}
        self.exists: dict[str, bool] = {}
        self.whole_rows: list[int] = []
        self.timed = False

    def add(self, where: str, r: dict, recording_id: str | None = None) -> None:
        out = self.out
        uid = r.get("id", "")
        if uid.split() != [uid]:
            raise ManifestError(f"{where}: id {uid!r} must be non-empty without whitespace")
        audio, src, tgt = r.get("audio", "").strip(), r.get("src_text", ""), r.get("tgt_text", "")
        start_text, end_text = r.get("start", "").strip(), r.get("end", "").strip()
        speaker = r.get("speaker", "").strip()
        content = (audio, start_text, end_text, speaker, src, tgt)
        prev = self.seen.get(uid)
        if prev is not None:
            if prev[1] != content:
                raise ManifestError(f"{where}: id {uid} again, with other content than at "
                                    f"{prev[0]}; ids must be unique")
            out.dropped["duplicate"] += 1
            return
        self.seen[uid] = (where, content)
        if speaker and speaker.split() != [speaker]:
            raise ManifestError(f"{where}: speaker {speaker!r} contains whitespace")
        has_src, has_tgt = bool(src.strip()), bool(tgt.strip())
        if not audio:
            if has_src and has_tgt:
                out.mt_only.append(Row(uid, "", "", 0.0, 0.0, "", src, tgt))
            else:
                out.dropped["empty"] += 1
            return
        if not has_src:
            out.dropped["no_transcript" if has_tgt else "empty"] += 1
            return
        wav = os.path.abspath(audio if os.path.isabs(audio) else os.path.join(self.base, audio))
        if wav not in self.exists:
            self.exists[wav] = os.path.isfile(wav)
        if not self.exists[wav]:
            if self.missing_audio == "drop":
                out.dropped["missing_audio"] += 1
                return
            raise ManifestError(f"{where}: audio {audio!r} not found (looked for {wav}; relative "
                                f"paths are relative to the manifest's directory). Fix the path, "
                                f"or pass --missing_audio drop to drop and count")
        if bool(start_text) != bool(end_text):
            raise ManifestError(f"{where}: give both start and end (or neither, for the whole "
                                f"file)")
        utt_id = uid if not speaker or uid.startswith(speaker) else f"{speaker}-{uid}"
        spk = speaker or utt_id
        if start_text:
            start = _seconds(start_text, "start", where)
            end = _seconds(end_text, "end", where)
            if end <= start:
                raise ManifestError(f"{where}: end {end_text} is not after start {start_text}")
            rec = recording_id or _recording_id(audio, self.base)
            if rec.split() != [rec]:
                raise ManifestError(f"{where}: recording id {rec!r} contains whitespace")
            other = self.recordings.setdefault(rec, wav)
            if other != wav:
                raise ManifestError(f"{where}: {wav} and {other} both give recording id {rec}; "
                                    f"rename one of them")
            self.timed = True
        else:
            start, end, rec = 0.0, math.inf, utt_id
            self.whole_rows.append(len(out.st) if has_tgt else -1 - len(out.asr_only))
        (out.st if has_tgt else out.asr_only).append(
            Row(utt_id, rec, wav, start, end, spk, src, tgt))

    def finish(self) -> Rows:
        out = self.out
        if self.timed and self.whole_rows:
            _whole_files_as_segments(out, self.whole_rows)
        for kind in KINDS:
            getattr(out, kind).sort(key=lambda u: u.utt_id.encode("utf-8"))
        logger.info("%s", out.summary())
        return out


def _whole_files_as_segments(out: Rows, positions: list[int]) -> None:
    """A manifest mixing segments and whole files: whole files become one segment each."""
    import soundfile

    for pos in positions:
        rows = out.st if pos >= 0 else out.asr_only
        i = pos if pos >= 0 else -1 - pos
        r = rows[i]
        try:
            duration = soundfile.info(r.wav_path).duration
        except RuntimeError as e:
            raise ManifestError(f"{out.path}: utterance {r.utt_id}: cannot read the length of "
                                f"{r.wav_path} ({e})") from None
        rows[i] = Row(r.utt_id, r.utt_id, r.wav_path, 0.0, duration, r.speaker, r.src_text,
                      r.tgt_text)
