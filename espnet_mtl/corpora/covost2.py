"""CoVoST 2 reader: one split of one direction as a list of `Utterance`s.

Layout (Common Voice v4 plus the CoVoST 2 translation tables)::

    <root>/<src>/clips/common_voice_<src>_<n>.mp3   one clip per utterance
    <root>/<src>/validated.tsv                      client_id path sentence ...
    <covost_dir>/covost_v2.<src>_<tgt>.tsv          path translation split ...

`covost_dir` defaults to `<root>/<src>`.  The two tables are joined on `path`
(inner join, as the official CoVoST scripts do): `sentence` and `client_id`
come from validated.tsv, `translation` and `split` from the CoVoST table.
Columns are found by header name, never by position, so later Common Voice
releases with extra columns (locale, segment, ...) read the same way.

TSVs are read with quoting disabled (a field starting with `"` is plain text
and never swallows the rows after it) and without any NA conversion (the text
`NA` is a sentence).  Every trap in the design notes ends in correct output
or a `CoVoST2Error` naming the file and line: see `read_covost2_with_stats`.

Utterance ids follow the Kaldi/ESPnet Common Voice convention,
``<client_id>-<clip name without .mp3>``: deterministic, unique per clip and
prefixed by the speaker (client_id), so utt2spk and spk2utt sort alike.  Each
clip is its own recording (recording id = utterance id) covering the whole
file: ``start`` is 0 and ``end`` is ``math.inf`` because a clip's length is
only known once the mp3 is decoded.

Several source languages into one set (multilingual X->En, e.g. Fr/De/Es/Ca):
`read_covost2_multilingual` reads each language's split and checks that the
utterance ids stay unique across languages (Common Voice clip names carry
the language, ``common_voice_<src>_<n>``); `multilingual_tag` names the
combined source side (``de_es_fr``) in data-dir and text-file names.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Iterator

from espnet_mtl.corpora.textfile import list_names

logger = logging.getLogger(__name__)

# The official CoVoST 2 directions (facebookresearch/covost, version 2).
XX_EN_SOURCES = ("fr", "de", "es", "ca", "it", "ru", "zh-CN", "pt", "fa", "et", "mn",
                 "nl", "tr", "ar", "sv-SE", "lv", "sl", "ta", "ja", "id", "cy")
EN_XX_TARGETS = ("de", "ca", "zh-CN", "fa", "et", "mn", "tr", "ar", "sv-SE", "lv",
                 "sl", "ta", "ja", "id", "cy")
PAIRS = tuple((src, "en") for src in XX_EN_SOURCES) + tuple(("en", tgt) for tgt in EN_XX_TARGETS)

SPLITS = ("train", "dev", "test")
# CoVoST split labels that make up each split; any other label is ignored.
SPLIT_LABELS = {"train": ("train", "train_covost"), "dev": ("dev",), "test": ("test",)}
_LABEL_TO_SPLIT = {label: split for split, labels in SPLIT_LABELS.items() for label in labels}

COVOST_COLUMNS = ("path", "translation", "split")
VALIDATED_COLUMNS = ("path", "client_id", "sentence")

# Placeholder left by translators in rows that should have been removed.
REMOVE_MARK = "REMOVE"

# Reasons a row of the requested split is dropped, in the order they are checked.
DROP_REASONS = ("duplicate", "not_in_validated", "empty_transcript", "empty_translation",
                "remove_translation", "missing_clip", "empty_clip")


class CoVoST2Error(ValueError):
    """The corpus on disk is not what the reader expects; says where and what to do."""


@dataclass(frozen=True, slots=True)
class Utterance:
    utt_id: str          # <client_id>-<clip name without .mp3>
    recording_id: str    # = utt_id: each clip is its own recording
    wav_path: str        # absolute path of <root>/<src>/clips/<path> (an mp3)
    start: float         # 0.0
    end: float           # math.inf: the whole clip (its length is unknown until decoded)
    speaker: str         # client_id
    src_text: str        # `sentence` from validated.tsv, as is
    tgt_text: str        # `translation` from the CoVoST tsv, as is


@dataclass
class ReadStats:
    """What happened to the CoVoST rows labelled for one split."""

    rows: int = 0                     # rows of the CoVoST tsv labelled for this split
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    ignored_labels: Counter = field(default_factory=Counter)  # rows with a label of no split
    validated_duplicates: int = 0     # identical repeated rows of validated.tsv (harmless)

    def summary(self) -> str:
        drops = ", ".join(f"{reason}={self.dropped[reason]}" for reason in DROP_REASONS)
        text = f"kept {self.kept} of {self.rows} rows; dropped: {drops}"
        if self.ignored_labels:
            labels = ", ".join(f"{k or '(empty)'}={v}" for k, v in sorted(self.ignored_labels.items()))
            text += f"; ignored rows with other split labels: {labels}"
        return text


# --------------------------------------------------------------------------- checks


def _describe_pairs() -> str:
    return (f"X->en for X in {', '.join(XX_EN_SOURCES)}; "
            f"en->X for X in {', '.join(EN_XX_TARGETS)}")


def check_pair(src_lang: str, tgt_lang: str) -> None:
    """Raise `CoVoST2Error` unless src->tgt is one of the 36 CoVoST 2 directions."""
    if (src_lang, tgt_lang) in PAIRS:
        return
    hint = ""
    codes = set(XX_EN_SOURCES) | {"en"}
    suggestions = []
    for given in (src_lang, tgt_lang):
        if given in codes:
            continue
        close = [c for c in sorted(codes) if c.lower() == given.lower() or c.split("-")[0] == given]
        if close:
            suggestions.append(f"{close[0]} for {given}")
    if suggestions:
        hint = f" (did you mean {', '.join(suggestions)}? codes carry their region)"
    raise CoVoST2Error(
        f"CoVoST 2 has no direction {src_lang}->{tgt_lang}{hint}; valid directions: {_describe_pairs()}"
    )


def _lang_dir(root: Path, src_lang: str) -> Path:
    if not root.is_dir():
        raise CoVoST2Error(f"Common Voice root not found: expected a directory at {root} "
                           f"holding one directory per language (e.g. {root / src_lang})")
    lang_dir = root / src_lang
    if not lang_dir.is_dir():
        if (root / "validated.tsv").is_file() and (root / "clips").is_dir():
            raise CoVoST2Error(
                f"{root} looks like one language's directory (it holds clips/ and validated.tsv); "
                f"pass its parent as the root: the reader expects {lang_dir}"
            )
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise CoVoST2Error(
            f"Common Voice {src_lang} not found: expected {lang_dir} with clips/ and validated.tsv; "
            f"directories under {root}: {', '.join(found) if found else '(none)'}"
        )
    return lang_dir


def _covost_tsv(covost_dir: Path, src_lang: str, tgt_lang: str) -> Path:
    name = f"covost_v2.{src_lang}_{tgt_lang}.tsv"
    path = covost_dir / name
    if path.is_file():
        return path
    archive = covost_dir / f"{name}.tar.gz"
    if archive.is_file():
        raise CoVoST2Error(f"CoVoST 2 table not found: expected {path}; {archive} is there, "
                           f"extract it first: tar -xzf {archive} -C {covost_dir}")
    found = sorted(p.name for p in covost_dir.glob("covost_v2.*.tsv")) if covost_dir.is_dir() else []
    raise CoVoST2Error(
        f"CoVoST 2 table not found: expected {path} (from {name}.tar.gz); "
        f"CoVoST tables in {covost_dir}: {', '.join(found) if found else '(none)'}"
    )


# --------------------------------------------------------------------------- tsv


def _tsv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Yield (line number, values of `columns`) for each data row of a TSV.

    Quoting is disabled (quotes are text) and nothing is converted (`NA`,
    `null` and empty fields are strings).  Blank lines are skipped.  A row
    whose field count differs from the header's is an error: a stray tab or a
    truncated line would otherwise shift every later column.
    """
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader, None)
            if header is None:
                raise CoVoST2Error(f"{path}: empty file; expected a header line naming the columns "
                                   f"{', '.join(columns)}")
            missing = [c for c in columns if c not in header]
            if missing:
                raise CoVoST2Error(
                    f"{path}:1: header lacks column(s) {', '.join(missing)}; expected tab-separated "
                    f"columns including {', '.join(columns)}, found: {', '.join(header)}. "
                    f"Is this the right file (and tab-separated)?"
                )
            repeated = sorted({c for c in columns if header.count(c) > 1})
            if repeated:
                raise CoVoST2Error(f"{path}:1: header names column(s) {', '.join(repeated)} more than once")
            pick = itemgetter(*(header.index(c) for c in columns))
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row:
                        continue
                    raise CoVoST2Error(
                        f"{path}:{reader.line_num}: {len(row)} tab-separated fields, but the header has "
                        f"{width} ({', '.join(header)}); a tab inside a field or a truncated line? "
                        f"Fix or remove that line, or re-extract the file"
                    )
                yield reader.line_num, pick(row)
        except UnicodeDecodeError as e:
            raise CoVoST2Error(f"{path}:{reader.line_num + 1}: not valid UTF-8 ({e.reason}) "
                               f"near this line") from None
        except csv.Error as e:
            raise CoVoST2Error(f"{path}:{reader.line_num}: unreadable TSV line ({e})") from None


# --------------------------------------------------------------------------- reader


def read_covost2_with_stats(root: str | os.PathLike, src_lang: str, tgt_lang: str, split: str, *,
                            covost_dir: str | os.PathLike | None = None,
                            missing_clips: str = "error", check_empty_clips: bool = True,
                            ) -> tuple[list[Utterance], ReadStats]:
    """Read one split of one CoVoST 2 direction; return utterances (sorted by id) and stats.

    `root` holds `<src_lang>/clips/` and `<src_lang>/validated.tsv`; the
    CoVoST table `covost_v2.<src>_<tgt>.tsv` is read from `covost_dir`
    (default `<root>/<src_lang>`).  `split` is train (rows labelled `train` or
    `train_covost`), dev or test; rows with other labels are ignored and
    counted in `stats.ignored_labels`.

    Rows of the split are dropped and counted (in this order) when: the path
    was already seen in the split (`duplicate`, the first row is kept); the
    path is not in validated.tsv (`not_in_validated`, inner join); the
    sentence or the translation is empty or blank; the translation contains
    the placeholder `REMOVE`; the clip is missing from clips/ and
    `missing_clips="drop"` (with the default "error" a missing clip is an
    error naming it and its lines); the clip is a 0-byte file (only checked
    when `check_empty_clips`: one stat per kept clip).  A sentence read by many
    speakers is not a duplicate: every clip is its own utterance.

    Errors (`CoVoST2Error`): an unknown direction or split; a missing root,
    language directory, validated.tsv, clips/ or CoVoST table; a header
    without the needed columns; a row with the wrong number of fields; a
    path in two different splits; a path listed twice in validated.tsv with
    different speakers or sentences; a split with no rows, or with rows of
    which none is in validated.tsv; an unusable client_id or path.
    """
    check_pair(src_lang, tgt_lang)
    if split not in SPLITS:
        raise CoVoST2Error(f"unknown split {split!r}; CoVoST 2 splits: {', '.join(SPLITS)}")
    if missing_clips not in ("error", "drop"):
        raise ValueError(f"missing_clips must be 'error' or 'drop', got {missing_clips!r}")
    lang_dir = _lang_dir(Path(root), src_lang)
    validated_tsv = lang_dir / "validated.tsv"
    if not validated_tsv.is_file():
        raise CoVoST2Error(f"validated.tsv not found: expected {validated_tsv} "
                           f"(from the Common Voice v4 {src_lang} archive)")
    covost_tsv = _covost_tsv(Path(covost_dir) if covost_dir is not None else lang_dir,
                             src_lang, tgt_lang)
    # Absolute but not resolved: keep the user's symlinked corpus path in wav.scp.
    clips_dir = Path(os.path.abspath(lang_dir / "clips"))
    stats = ReadStats()

    # 1. The CoVoST rows of this split, first row per path; a path in two splits is an error.
    first_seen: dict[str, tuple[int, str]] = {}  # path -> (line, split) over all known splits
    rows: dict[str, tuple[int, str]] = {}        # path -> (line, translation) for this split
    labels_seen: Counter = Counter()
    for lineno, (path, translation, label) in _tsv_rows(covost_tsv, COVOST_COLUMNS):
        labels_seen[label] += 1
        row_split = _LABEL_TO_SPLIT.get(label)
        if row_split is None:
            stats.ignored_labels[label] += 1
            continue
        if not path:
            raise CoVoST2Error(f"{covost_tsv}:{lineno}: empty path; every row must name its clip")
        if row_split == split:
            stats.rows += 1
        prev = first_seen.get(path)
        if prev is not None:
            if prev[1] != row_split:
                raise CoVoST2Error(
                    f"{covost_tsv}:{lineno}: clip {path} is in split {row_split}, but line {prev[0]} "
                    f"already put it in split {prev[1]}; a clip in two splits would leak between "
                    f"training and evaluation: fix the table (re-extract {covost_tsv.name}.tar.gz)"
                )
            if row_split == split:
                stats.dropped["duplicate"] += 1
            continue
        first_seen[path] = (lineno, row_split)
        if row_split == split:
            rows[path] = (lineno, translation)
    del first_seen
    if not rows:
        found = ", ".join(f"{k or '(empty)'}={v}" for k, v in sorted(labels_seen.items()))
        raise CoVoST2Error(
            f"{covost_tsv}: no rows labelled {' or '.join(SPLIT_LABELS[split])} in column 'split' "
            f"(labels found: {found or '(no rows)'}); is this the complete CoVoST 2 table?"
        )

    # 2. validated.tsv rows of those paths.
    speech: dict[str, tuple[int, str, str]] = {}  # path -> (line, client_id, sentence)
    for lineno, (path, client_id, sentence) in _tsv_rows(validated_tsv, VALIDATED_COLUMNS):
        if path not in rows:
            continue
        prev = speech.get(path)
        if prev is not None:
            if (prev[1], prev[2]) != (client_id, sentence):
                raise CoVoST2Error(
                    f"{validated_tsv}:{lineno}: clip {path} is listed again with a different speaker "
                    f"or sentence than at line {prev[0]}; fix validated.tsv so each clip appears once"
                )
            stats.validated_duplicates += 1
            continue
        speech[path] = (lineno, client_id, sentence)
    if not speech:
        raise CoVoST2Error(
            f"none of the {len(rows)} {split} clips of {covost_tsv} is listed in {validated_tsv}; "
            f"CoVoST 2 needs the validated.tsv of Common Voice v4 ({src_lang})"
        )

    # 3. Join, filter, and check the clips against one listing of clips/.
    clip_names = list_names(clips_dir, CoVoST2Error, "clips",
                            "the mp3 clips of the Common Voice release")
    clip_prefix = os.path.join(clips_dir, "")  # a str ending in the separator
    kept: list[Utterance] = []
    missing: list[tuple[str, int, int]] = []
    for path, (lineno, translation) in rows.items():
        hit = speech.get(path)
        if hit is None:
            stats.dropped["not_in_validated"] += 1
            continue
        cv_line, client_id, sentence = hit
        if not sentence.strip():
            stats.dropped["empty_transcript"] += 1
            continue
        if not translation.strip():
            stats.dropped["empty_translation"] += 1
            continue
        if REMOVE_MARK in translation:
            stats.dropped["remove_translation"] += 1
            continue
        if path not in clip_names:
            missing.append((path, lineno, cv_line))
            continue
        if client_id.split() != [client_id]:
            raise CoVoST2Error(f"{validated_tsv}:{cv_line}: client_id {client_id!r} cannot be a "
                               f"speaker id (it must be non-empty without whitespace)")
        if path.split() != [path]:
            raise CoVoST2Error(f"{covost_tsv}:{lineno}: clip name {path!r} contains whitespace, "
                               f"so it cannot be part of an utterance id")
        stem = path[:-4] if path.endswith(".mp3") else path
        utt_id = f"{client_id}-{stem}"
        kept.append(Utterance(
            utt_id=utt_id, recording_id=utt_id, wav_path=clip_prefix + path,
            start=0.0, end=math.inf, speaker=client_id, src_text=sentence, tgt_text=translation,
        ))

    if missing:
        if missing_clips == "error":
            path, lineno, cv_line = missing[0]
            raise CoVoST2Error(
                f"{covost_tsv}:{lineno}: clip {path} (validated.tsv line {cv_line}) not found: "
                f"expected {clips_dir / path}; {len(missing)} of the {split} clips are missing. "
                f"Re-extract the Common Voice {src_lang} archive, or pass missing_clips='drop' "
                f"to drop and count them"
            )
        stats.dropped["missing_clip"] += len(missing)
        logger.warning("CoVoST 2 %s-%s %s: %d clips missing from %s, dropped (first: %s)",
                       src_lang, tgt_lang, split, len(missing), clips_dir, missing[0][0])

    if check_empty_clips:
        # 0-byte mp3s cannot be decoded; one stat per kept clip (not the whole clips/).
        nonempty = [u for u in kept if os.stat(u.wav_path).st_size > 0]
        stats.dropped["empty_clip"] += len(kept) - len(nonempty)
        kept = nonempty

    # Byte order of the ids (C locale), the order of every data-dir table.
    kept.sort(key=lambda u: u.utt_id.encode("utf-8"))
    for a, b in zip(kept, kept[1:]):
        if a.utt_id == b.utt_id:
            raise CoVoST2Error(f"{covost_tsv}: clips {os.path.basename(a.wav_path)} and "
                               f"{os.path.basename(b.wav_path)} give the same utterance id {a.utt_id}")
    stats.kept = len(kept)
    if stats.ignored_labels:
        logger.warning("CoVoST 2 %s: ignored rows with split labels %s", covost_tsv,
                       dict(sorted(stats.ignored_labels.items())))
    logger.info("CoVoST 2 %s-%s %s: %s", src_lang, tgt_lang, split, stats.summary())
    return kept, stats


def read_covost2(root: str | os.PathLike, src_lang: str, tgt_lang: str, split: str, *,
                 covost_dir: str | os.PathLike | None = None, missing_clips: str = "error",
                 check_empty_clips: bool = True) -> list[Utterance]:
    """Read one split of one CoVoST 2 direction; see `read_covost2_with_stats`."""
    return read_covost2_with_stats(root, src_lang, tgt_lang, split, covost_dir=covost_dir,
                                   missing_clips=missing_clips, check_empty_clips=check_empty_clips)[0]


# --------------------------------------------------------------------------- multilingual


def parse_src_langs(text: str, tgt_lang: str) -> tuple[str, ...]:
    """Source languages from a comma-separated list ("fr,de,es,ca"), each checked
    against `tgt_lang` as a CoVoST 2 direction; order kept, repeats are an error."""
    langs = tuple(lang.strip() for lang in text.split(","))
    if not text.strip() or any(not lang for lang in langs):
        raise CoVoST2Error(f"source languages {text!r}: expected one code or a comma-separated "
                           f"list such as fr,de,es,ca (no empty items)")
    repeated = sorted({lang for lang in langs if langs.count(lang) > 1})
    if repeated:
        raise CoVoST2Error(f"source languages {text!r}: {', '.join(repeated)} listed more than once")
    for lang in langs:
        check_pair(lang, tgt_lang)
    return langs


def multilingual_tag(src_langs: tuple[str, ...] | list[str]) -> str:
    """The name of a combined source side: the codes joined by '_' (no CoVoST code has one),
    e.g. de_es_fr; one language is its own code."""
    return "_".join(src_langs)


def read_covost2_multilingual(root: str | os.PathLike, src_langs: tuple[str, ...] | list[str],
                              tgt_lang: str, split: str, **kwargs
                              ) -> tuple[dict[str, list[Utterance]], dict[str, ReadStats]]:
    """One split of several X->`tgt_lang` directions: utterances and stats per source language.

    Each language is read by `read_covost2_with_stats` (keyword arguments are
    passed on); an utterance id found in two languages is an error, since the
    languages go into one data dir.
    """
    utts: dict[str, list[Utterance]] = {}
    stats: dict[str, ReadStats] = {}
    owner: dict[str, str] = {}
    for lang in src_langs:
        utts[lang], stats[lang] = read_covost2_with_stats(root, lang, tgt_lang, split, **kwargs)
        for u in utts[lang]:
            other = owner.setdefault(u.utt_id, lang)
            if other != lang:
                raise CoVoST2Error(
                    f"utterance id {u.utt_id} ({u.wav_path}) is in both {other} and {lang}; ids "
                    f"come from <client_id>-<clip name>, and Common Voice clip names carry their "
                    f"language (common_voice_{lang}_<n>.mp3): rename the clips of one language")
    return utts, stats
