"""Generate the multilingual X->En demo corpus in the CoVoST 2 layout.

German, Spanish and French speech (espeak-ng voices of each language) with
English translations, laid out as Common Voice v4 plus the CoVoST 2 tables,
so that `espnet_mtl.corpora.covost2` (and `prepare_covost2`) read it as they
read the real corpus::

    <out>/<src>/clips/common_voice_<src>_<n>.mp3   one 48 kHz mono MP3 per utterance
    <out>/<src>/validated.tsv                      client_id path sentence up_votes ...
    <out>/<src>/covost_v2.<src>_en.tsv             path sentence translation client_id split

Sentences come from `grammar.py`, which renders one structure in every
language: the transcript is the `<src>` rendering, the translation the
English one. No sentence occurs twice in the corpus (across languages too,
so an English target seen in training never reappears in any dev or test
set), and a language's dev and test sentences are new combinations of words
of its own training sentences, in `<src>` and in English (as in
`make_corpus.py`). Consecutive clips of a split form a "session" of one
contributor (client_id) speaking with one voice, as Common Voice clips come
in batches per contributor; clips carry a short lead and tail silence over
a faint noise floor, like a browser recording.

Deterministic (same arguments -> byte-identical files) and atomic, with the
machinery of `make_corpus.py`: built in a partial sibling directory, renamed
into place with `<out>/.done` recording the arguments (a rerun with the
same arguments returns at once), one generation at a time per `<out>`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from espnet_mtl.demo import grammar
from espnet_mtl.demo.espeak import Voice, synthesize_batches
from espnet_mtl.demo.make_corpus import NOISE_STD, build_once, covered_by, draw_sentences

logger = logging.getLogger(__name__)

# Bump when a change to the sampling, voices or layout changes the output.
GENERATOR_VERSION = 1

SRC_LANGS = ("de", "es", "fr")
TGT_LANG = "en"
SPLITS = ("train", "dev", "test")  # CoVoST's split labels
CLIP_RATE = 48000                  # Common Voice clips are 48 kHz mono MP3

# Four "speakers" per language: espeak-ng voices of that language (regional
# variants where espeak-ng has them), with variant, rate and pitch.
VOICES = {
    "de": (Voice("de", 160, 50), Voice("de+f2", 150, 60), Voice("de+m3", 170, 45),
           Voice("de+f4", 155, 55)),
    "es": (Voice("es", 165, 50), Voice("es-419+f2", 155, 60), Voice("es+m3", 170, 45),
           Voice("es-419+f4", 150, 65)),
    "fr": (Voice("fr", 160, 50), Voice("fr-be+f2", 150, 60), Voice("fr+m3", 170, 45),
           Voice("fr-ch+f4", 155, 55)),
}

SESSION_SIZE = (4, 12)      # clips per contributor session
LEAD_SILENCE = (0.2, 0.6)   # seconds before the speech
TAIL_SILENCE = (0.2, 0.5)   # seconds after it

# The columns of Common Voice v4's validated.tsv and of the extracted CoVoST 2 table.
CV_COLUMNS = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent")
COVOST_COLUMNS = ("path", "sentence", "translation", "client_id", "split")


@dataclass
class Clip:
    path: str         # common_voice_<src>_<n>.mp3
    sentence: str     # transcript, in the source language
    translation: str  # English


@dataclass
class Session:
    lang: str
    split: str
    client_id: str
    voice: Voice
    clips: list[Clip]


def check_src_langs(src_langs: Sequence[str]) -> tuple[str, ...]:
    """The distinct source languages in a canonical (sorted) order, so the corpus
    does not depend on the order they were given in; ValueError if unsupported."""
    langs = tuple(sorted(set(src_langs)))
    bad = [lang for lang in langs if lang not in SRC_LANGS]
    if not langs or bad:
        raise ValueError(f"src_langs must be a non-empty subset of {', '.join(SRC_LANGS)}, "
                         f"got {list(src_langs)}")
    return langs


def sample_language_splits(src_langs: Sequence[str], n_train: int, n_dev: int, n_test: int,
                           seed: int = 0) -> dict[str, dict[str, list[grammar.Sentence]]]:
    """Per source language and split, unique sentences (see the module docstring)."""
    rng = random.Random(f"covost-{seed}")
    seen: set[str] = set()  # one pool for all languages: no sentence in two places
    hint = f"use more training sentences (n_train={n_train})"
    out = {lang: {"train": draw_sentences(rng, n_train, seen, None, f"{lang} train")}
           for lang in src_langs}
    for lang in src_langs:
        covered = covered_by(out[lang]["train"], (lang, TGT_LANG))
        out[lang]["dev"] = draw_sentences(rng, n_dev, seen, covered, f"{lang} dev", hint)
        out[lang]["test"] = draw_sentences(rng, n_test, seen, covered, f"{lang} test", hint)
    return out


def client_id(lang: str, session: int) -> str:
    """A Common Voice style client_id (128 hex digits), fixed by language and session."""
    return hashlib.sha512(f"espnet_mtl-demo-{lang}-{session}".encode()).hexdigest()


def plan_sessions(sentences: dict[str, dict[str, list[grammar.Sentence]]], seed: int = 0
                  ) -> list[Session]:
    """Cut each language's splits into sessions; clip numbers run per language."""
    rng = random.Random(f"sessions-{seed}")
    sessions: list[Session] = []
    for lang, splits in sentences.items():
        voices = VOICES[lang]
        n_clip = n_session = 0
        for split in SPLITS:
            todo = splits[split]
            i = 0
            while i < len(todo):
                size = rng.randint(*SESSION_SIZE)
                clips = []
                for s in todo[i:i + size]:
                    n_clip += 1
                    clips.append(Clip(f"common_voice_{lang}_{n_clip}.mp3", grammar.render(s, lang),
                                      grammar.render(s, TGT_LANG)))
                i += size
                n_session += 1
                sessions.append(Session(lang, split, client_id(lang, n_session),
                                        voices[(n_session - 1) % len(voices)], clips))
    return sessions


def pad_clip(speech: np.ndarray, name: str, seed: int) -> np.ndarray:
    """Lead and tail silence over a faint noise floor (fixed by clip name and seed)."""
    rng = random.Random(f"clip-{seed}-{name}")
    lead = int(rng.uniform(*LEAD_SILENCE) * CLIP_RATE)
    tail = int(rng.uniform(*TAIL_SILENCE) * CLIP_RATE)
    audio = np.random.default_rng(rng.getrandbits(64)).normal(0.0, NOISE_STD,
                                                             lead + len(speech) + tail)
    audio[lead:lead + len(speech)] += speech
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


def write_mp3(path: Path, samples: np.ndarray) -> None:
    """48 kHz mono MP3 (libsndfile's LAME encoder, bundled with the soundfile wheel)."""
    import soundfile

    soundfile.write(path, samples, CLIP_RATE, format="MP3")


def _write_tsv(path: Path, columns: Sequence[str], rows: list[dict[str, str]]) -> None:
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _build(tmp: Path, sessions: list[Session], langs: Sequence[str], seed: int, workers: int
           ) -> None:
    for lang in langs:
        (tmp / lang / "clips").mkdir(parents=True)
    cv_rows: dict[str, list[dict]] = {lang: [] for lang in langs}
    covost_rows: dict[str, list[dict]] = {lang: [] for lang in langs}
    jobs = ((s.voice, [c.sentence for c in s.clips]) for s in sessions)
    n_clips = sum(len(s.clips) for s in sessions)
    with tqdm(total=n_clips, desc="synthesising", unit="clip", dynamic_ncols=True) as bar:
        batches = synthesize_batches(jobs, workers=workers, sample_rate=CLIP_RATE)
        for session, audio in zip(sessions, batches):
            gender = "female" if "+f" in session.voice.name else "male"
            for clip, speech in zip(session.clips, audio):
                write_mp3(tmp / session.lang / "clips" / clip.path, pad_clip(speech, clip.path, seed))
                common = {"client_id": session.client_id, "path": clip.path,
                          "sentence": clip.sentence}
                cv_rows[session.lang].append({**common, "up_votes": 2, "down_votes": 0,
                                              "gender": gender})
                covost_rows[session.lang].append({**common, "translation": clip.translation,
                                                  "split": session.split})
            bar.update(len(session.clips))
    for lang in langs:
        _write_tsv(tmp / lang / "validated.tsv", CV_COLUMNS, cv_rows[lang])
        _write_tsv(tmp / lang / f"covost_v2.{lang}_{TGT_LANG}.tsv", COVOST_COLUMNS,
                   covost_rows[lang])


def corpus_stats(out_dir: str | os.PathLike, src_langs: Sequence[str]) -> dict[str, dict]:
    """Per language and split: utterances, speakers (client_ids) and hours of audio."""
    import soundfile

    stats: dict[str, dict] = {}
    for lang in src_langs:
        ldir = Path(out_dir) / lang
        lines = (ldir / f"covost_v2.{lang}_{TGT_LANG}.tsv").read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        per = {split: {"utterances": 0, "speakers": set(), "hours": 0.0} for split in SPLITS}
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t")))
            st = per[row["split"]]
            st["utterances"] += 1
            st["speakers"].add(row["client_id"])
            st["hours"] += soundfile.info(str(ldir / "clips" / row["path"])).duration / 3600
        stats[lang] = {split: {**st, "speakers": len(st["speakers"])} for split, st in per.items()}
    return stats


def make_covost_corpus(out_dir: str | os.PathLike, src_langs: Sequence[str] = SRC_LANGS,
                       n_train: int = 500, n_dev: int = 50, n_test: int = 50, seed: int = 0,
                       workers: int = 2) -> dict:
    """Write the corpus under `out_dir` (see the module docstring); return a summary.

    `n_train`, `n_dev` and `n_test` are utterances per source language. The
    summary has `out`, `skipped` (True when an identical complete corpus was
    already there) and `stats` (per language and split). `workers` only
    changes the speed, never the output.
    """
    langs = check_src_langs(src_langs)
    if n_train < 1 or n_dev < 1 or n_test < 1:
        # CoVoST has all three splits; the reader refuses a split without rows.
        raise ValueError(f"need n_train, n_dev and n_test >= 1 (each split needs clips); "
                         f"got {n_train}, {n_dev}, {n_test}")
    out = Path(out_dir)
    args = {"version": GENERATOR_VERSION, "layout": "covost2", "src_langs": list(langs),
            "n_train": n_train, "n_dev": n_dev, "n_test": n_test, "seed": seed}

    def build(tmp: Path) -> None:
        sentences = sample_language_splits(langs, n_train, n_dev, n_test, seed)
        sessions = plan_sessions(sentences, seed)
        logger.info("sampled %d/%d/%d sentences per language (%s) in %d sessions; synthesising "
                    "with %d worker(s)", n_train, n_dev, n_test, ", ".join(langs), len(sessions),
                    workers)
        _build(tmp, sessions, langs, seed, workers)

    skipped = build_once(out, args, build)
    return {"out": str(out), "skipped": skipped, "stats": corpus_stats(out, langs)}
