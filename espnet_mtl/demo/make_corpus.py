"""Generate the synthetic speech-translation demo corpus in the MuST-C v1 layout.

For each requested pair en-<tgt>::

    <out>/en-<tgt>/data/{train,dev,tst-COMMON}/wav/ted_<talk>.wav
    <out>/en-<tgt>/data/<split>/txt/<split>.yaml     one flow mapping per line
    <out>/en-<tgt>/data/<split>/txt/<split>.en       line i goes with yaml entry i
    <out>/en-<tgt>/data/<split>/txt/<split>.<tgt>

Sentences come from `grammar.py` (unique; dev and test sentences are new
combinations of words seen in training), audio from espeak-ng (`espeak.py`).
Consecutive utterances form a "talk": one 16 kHz mono PCM16 wav per talk,
spoken by one voice, with short pauses between the utterances. The audio is
synthesised once and hard-linked into every pair.

Deterministic (same arguments -> byte-identical files) and atomic: the corpus
is built in a temporary sibling directory, renamed into place at the end, and
`<out>/.done` records the arguments, so a rerun with the same arguments returns
at once and an interrupted run is rebuilt from scratch. One generation at a
time per `<out>`: a second one is refused (LockBusy, naming the first) while
the lock file `.<out name>.lock` next to `<out>` is held.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from espnet_mtl.demo import grammar
from espnet_mtl.demo.espeak import SAMPLE_RATE, Voice, synthesize_batches
from espnet_mtl.runner.locks import hold_lock

logger = logging.getLogger(__name__)

# Bump when a change to the grammar, voices or layout changes the output:
# a corpus made by another version is then rebuilt instead of reused.
GENERATOR_VERSION = 1

SPLITS = ("train", "dev", "tst-COMMON")
TGT_LANGS = ("de", "es", "fr")
DONE_MARKER = ".done"

# One voice/rate/pitch per talk, in turn: eight "speakers".
SPEAKERS = (
    Voice("en-us", 165, 50),
    Voice("en-gb+f2", 155, 60),
    Voice("en-gb-scotland+m3", 170, 45),
    Voice("en-gb-x-rp+f4", 160, 55),
    Voice("en-029+m1", 150, 40),
    Voice("en-us-nyc+f1", 175, 60),
    Voice("en-gb-x-gbclan+m7", 160, 50),
    Voice("en-us+f3", 150, 65),
)

TALK_SIZE = (8, 16)          # utterances per talk
LEAD_SILENCE = (0.5, 1.5)    # seconds before the first utterance
GAP_SILENCE = (0.2, 0.8)     # seconds between utterances
TAIL_SILENCE = 0.5           # seconds after the last one
NOISE_STD = 2.0              # a faint noise floor (int16 units) instead of digital silence
ALIGN = SAMPLE_RATE // 1000  # offsets and durations are whole milliseconds: exact in the yaml
MAX_TRIES_PER_SENTENCE = 5000  # draws per wanted sentence before giving up


@dataclass
class Talk:
    talk_id: int
    split: str
    voice: Voice
    texts: list[dict[str, str]]  # one {lang: text} per utterance


def _done_args(tgt_langs, n_train, n_dev, n_test, seed) -> dict:
    return {"version": GENERATOR_VERSION, "tgt_langs": list(tgt_langs), "n_train": n_train,
            "n_dev": n_dev, "n_test": n_test, "seed": seed}


def draw_sentences(rng: random.Random, n: int, seen: set[str], accept=None, what: str = "",
                   hint: str = "ask for fewer") -> list[grammar.Sentence]:
    """`n` grammar sentences whose English form is not in `seen` (which gains them) and
    that `accept` takes (None: any); a ValueError ending in `hint` if too few turn up."""
    out: list[grammar.Sentence] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > MAX_TRIES_PER_SENTENCE * (n + 10):
            rule = "" if accept is None else " and use only training words"
            raise ValueError(f"could only find {len(out)} of {n} {what} sentences that are "
                             f"new{rule}; {hint}")
        s = grammar.sample_sentence(rng)
        key = grammar.render(s, "en")
        if key not in seen and (accept is None or accept(s)):
            seen.add(key)
            out.append(s)
    return out


def covered_by(train: Sequence[grammar.Sentence], langs: Sequence[str]):
    """A test: does a sentence use, in each of `langs`, only words of the `train` sentences?"""
    vocab = {lang: set() for lang in langs}
    for s in train:
        for lang in langs:
            vocab[lang].update(grammar.words(grammar.render(s, lang)))

    def covered(s: grammar.Sentence) -> bool:
        return all(set(grammar.words(grammar.render(s, lang))) <= vocab[lang] for lang in langs)

    return covered


def sample_splits(n_train: int, n_dev: int, n_test: int, seed: int = 0
                  ) -> dict[str, list[grammar.Sentence]]:
    """Unique sentences per split; dev/test are unseen sentences whose words
    (in every language) all occur in the training sentences."""
    rng = random.Random(seed)
    seen: set[str] = set()
    hint = f"use more training sentences (n_train={n_train})"
    splits = {"train": draw_sentences(rng, n_train, seen, None, "train")}
    covered = covered_by(splits["train"], grammar.LANGS)
    splits["dev"] = draw_sentences(rng, n_dev, seen, covered, "dev", hint)
    splits["tst-COMMON"] = draw_sentences(rng, n_test, seen, covered, "tst-COMMON", hint)
    return splits


def plan_talks(splits: dict[str, list[grammar.Sentence]], seed: int = 0) -> list[Talk]:
    """Cut each split into talks of consecutive utterances; ids are unique across splits."""
    rng = random.Random(f"talks-{seed}")
    talks: list[Talk] = []
    for split in SPLITS:
        sentences = splits[split]
        i = 0
        while i < len(sentences):
            size = rng.randint(*TALK_SIZE)
            chunk = sentences[i:i + size]
            i += size
            talk_id = len(talks) + 1
            texts = [{lang: grammar.render(s, lang) for lang in grammar.LANGS} for s in chunk]
            talks.append(Talk(talk_id, split, SPEAKERS[(talk_id - 1) % len(SPEAKERS)], texts))
    return talks


def _ms_samples(rng: random.Random, low: float, high: float) -> int:
    return int(rng.uniform(low, high) * 1000) * ALIGN


def assemble_talk(utterances: Sequence[np.ndarray], talk_id: int, seed: int
                  ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Concatenate a talk's utterances with pauses; return int16 audio and
    (start, length) in samples of each utterance (whole milliseconds)."""
    rng = random.Random(f"silence-{seed}-{talk_id}")
    segments = []
    pos = _ms_samples(rng, *LEAD_SILENCE)
    for k, utt in enumerate(utterances):
        if k:
            pos += _ms_samples(rng, *GAP_SILENCE)
        length = -(-len(utt) // ALIGN) * ALIGN  # round up to whole milliseconds
        segments.append((pos, length))
        pos += length
    total = pos + int(TAIL_SILENCE * SAMPLE_RATE)
    noise = np.random.default_rng([seed, talk_id]).normal(0.0, NOISE_STD, total)
    audio = noise
    for (start, _), utt in zip(segments, utterances):
        audio[start:start + len(utt)] += utt
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16), segments


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16 kHz mono PCM16 wav with a plain 44-byte header (nothing time-dependent)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def _yaml_line(start: int, length: int, talk_id: int) -> str:
    return (f"- {{duration: {length / SAMPLE_RATE:.6f}, offset: {start / SAMPLE_RATE:.6f}, "
            f"speaker_id: spk.{talk_id}, wav: ted_{talk_id}.wav}}\n")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _split_dir(root: Path, tgt: str, split: str) -> Path:
    return root / f"en-{tgt}" / "data" / split


def _build(tmp: Path, talks: list[Talk], tgt_langs: Sequence[str], seed: int, workers: int) -> None:
    first = tgt_langs[0]
    for tgt in tgt_langs:
        for split in SPLITS:
            (_split_dir(tmp, tgt, split) / "wav").mkdir(parents=True, exist_ok=True)
            (_split_dir(tmp, tgt, split) / "txt").mkdir(parents=True, exist_ok=True)
    # Text files are written line by line as talks complete (talks come back in order).
    files = {}
    for tgt in tgt_langs:
        for split in SPLITS:
            txt = _split_dir(tmp, tgt, split) / "txt"
            for ext in ("yaml", "en", tgt):
                files[tgt, split, ext] = open(txt / f"{split}.{ext}", "w", encoding="utf-8", newline="\n")
    try:
        jobs = ((talk.voice, [t["en"] for t in talk.texts]) for talk in talks)
        n_utts = sum(len(t.texts) for t in talks)
        with tqdm(total=n_utts, desc="synthesising", unit="utt", dynamic_ncols=True) as bar:
            for talk, utterances in zip(talks, synthesize_batches(jobs, workers=workers)):
                audio, segments = assemble_talk(utterances, talk.talk_id, seed)
                name = f"ted_{talk.talk_id}.wav"
                wav_path = _split_dir(tmp, first, talk.split) / "wav" / name
                write_wav(wav_path, audio)
                for tgt in tgt_langs:
                    if tgt != first:
                        _link_or_copy(wav_path, _split_dir(tmp, tgt, talk.split) / "wav" / name)
                    for (start, length), text in zip(segments, talk.texts):
                        files[tgt, talk.split, "yaml"].write(_yaml_line(start, length, talk.talk_id))
                        files[tgt, talk.split, "en"].write(text["en"] + "\n")
                        files[tgt, talk.split, tgt].write(text[tgt] + "\n")
                bar.update(len(talk.texts))
    finally:
        for f in files.values():
            f.close()


def corpus_stats(out_dir: str | os.PathLike, tgt_lang: str) -> dict[str, dict]:
    """Utterances, talks, speech hours (sum of segments) and audio hours per split."""
    stats = {}
    for split in SPLITS:
        sdir = _split_dir(Path(out_dir), tgt_lang, split)
        speech = 0.0
        n = 0
        for line in (sdir / "txt" / f"{split}.yaml").read_text(encoding="utf-8").splitlines():
            fields = dict(item.split(": ", 1) for item in line.strip()[3:-1].split(", "))
            speech += float(fields["duration"])
            n += 1
        audio, talks = 0.0, 0
        for wav_path in sorted((sdir / "wav").glob("ted_*.wav")):
            with wave.open(str(wav_path), "rb") as w:
                audio += w.getnframes() / w.getframerate()
            talks += 1
        stats[split] = {"utterances": n, "talks": talks, "speech_hours": speech / 3600,
                        "audio_hours": audio / 3600}
    return stats


def make_corpus(out_dir: str | os.PathLike, tgt_langs: Sequence[str] = ("de",), n_train: int = 1500,
                n_dev: int = 100, n_test: int = 100, seed: int = 0, workers: int = 2) -> dict:
    """Write the corpus under `out_dir` (see the module docstring); return a summary.

    The summary has `out`, `skipped` (True when an identical complete corpus
    was already there) and `stats` (per split, for the first target language).
    `workers` only changes the speed, never the output.
    """
    tgt_langs = tuple(dict.fromkeys(tgt_langs))  # drop duplicates, keep order
    bad = [t for t in tgt_langs if t not in TGT_LANGS]
    if not tgt_langs or bad:
        raise ValueError(f"tgt_langs must be a non-empty subset of {', '.join(TGT_LANGS)}, "
                         f"got {list(tgt_langs)}")
    if n_train < 1 or n_dev < 0 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_dev, n_test >= 0; got {n_train}, {n_dev}, {n_test}")
    out = Path(out_dir)
    args = _done_args(tgt_langs, n_train, n_dev, n_test, seed)

    def build(tmp: Path) -> None:
        splits = sample_splits(n_train, n_dev, n_test, seed)
        talks = plan_talks(splits, seed)
        logger.info("sampled %s sentences in %d talks; synthesising with %d worker(s)",
                    "/".join(str(len(splits[s])) for s in SPLITS), len(talks), workers)
        _build(tmp, talks, tgt_langs, seed, workers)

    skipped = build_once(out, args, build)
    return {"out": str(out), "skipped": skipped, "stats": corpus_stats(out, tgt_langs[0])}


def build_once(out_dir: str | os.PathLike, args: dict, build: Callable[[Path], None],
               what: str = "demo corpus generation") -> bool:
    """Make `out_dir` by `build(tmp)` unless it already holds a complete build
    with the same `args`; return True when there was nothing to do.

    `build` fills a fresh partial directory beside `out_dir`; its `.done`
    marker (the `args`) is added and the tree renamed into place, all under
    the lock `lock_path(out_dir)` (a second build into `out_dir` raises LockBusy).
    """
    out = Path(out_dir)
    # Checked without the lock: a corpus only ever appears at `out` by the rename
    # of a finished tree that already holds its marker, so a matching marker
    # means a complete corpus.
    if _read_done(out) == args:
        logger.info("%s is complete for these arguments; nothing to do", out)
        return True
    out.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(lock_path(out), f"{what} into {out}"):
        # Another run may have finished it since the check above.
        done = _read_done(out)
        if done == args:
            logger.info("%s was completed by another run; nothing to do", out)
            return True
        if done is not None:
            logger.info("%s was made with other arguments (%s); rebuilding", out, done)
        elif out.exists():
            logger.info("%s is incomplete (no %s); rebuilding", out, DONE_MARKER)
        _generate(out, args, build)
        return False


def lock_path(out_dir: str | os.PathLike) -> Path:
    """The lock file of generations into `out_dir`: beside it, so that it is
    neither part of the corpus nor moved with it."""
    out = Path(out_dir)
    return out.parent / f".{out.name}.lock"


def _read_done(out: Path) -> dict | None:
    """The arguments recorded in `out`'s marker; None if absent or unreadable
    (including a marker renamed away by a concurrent rebuild while reading)."""
    try:
        return json.loads((out / DONE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _generate(out: Path, args: dict, build: Callable[[Path], None]) -> None:
    """Build the corpus in a partial directory and swap it into place; the caller
    holds the lock, so partial directories left beside `out` are from killed runs."""
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    # os.mkdir (not mkdtemp) so the corpus gets the usual permissions, not 0700.
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / DONE_MARKER).write_text(json.dumps(args, sort_keys=True) + "\n", encoding="utf-8")
        # Swap into place: the old tree (if any) is moved aside first, then removed.
        old = out.parent / f".{out.name}.partial-old-{os.getpid()}"
        if out.exists() or out.is_symlink():
            os.rename(out, old)
        os.rename(tmp, out)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
