"""Auxiliary data for the demo's low-resource setting, in real corpus layouts.

Next to the ST triples of `make_corpus.py`, multi-task training reads MT-only
bitext and ASR-only speech. This writes both from the same grammar, in the
layouts our readers already read, so the demo exercises `--aux_mt_sets` and
`--aux_asr_sets` end to end:

    <out>/bitext/demo_mt.en, <out>/bitext/demo_mt.<tgt>      prefix files (bitext:<out>/bitext/demo_mt)
    <out>/LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>-<utt %04d>.flac
    <out>/LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>.trans.txt
    <out>/LibriSpeech/SPEAKERS.TXT

Every sentence is new: none is a sentence of the ST corpus (any split),
so the test set never leaks in through the auxiliary text. The ASR
transcripts follow LibriSpeech (upper case, no punctuation besides
apostrophes); speakers are the ST corpus's espeak-ng voices, one chapter of
up to `CHAPTER_SIZE` utterances per voice in turn.

Deterministic (same arguments -> same files); written into a temporary
sibling directory and renamed into place, with `<out>/.done` recording the
arguments, so a rerun with the same arguments returns at once.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from espnet_mtl.demo import grammar
from espnet_mtl.demo.espeak import SAMPLE_RATE, synthesize_batches
from espnet_mtl.demo.make_corpus import MAX_TRIES_PER_SENTENCE, SPEAKERS

AUX_VERSION = 1
SUBSET = "train-clean-100"
BITEXT_PREFIX = "demo_mt"
CHAPTER_SIZE = 50
DONE = ".done"


def st_sentences(st_root: str | Path, tgt_lang: str) -> set[str]:
    """The English sentences of every split of the ST corpus (to keep out of the aux data)."""
    found = set()
    for path in sorted(Path(st_root, f"en-{tgt_lang}", "data").glob("*/txt/*.en")):
        found.update(line.rstrip("\n") for line in path.open(encoding="utf-8"))
    if not found:
        raise ValueError(f"no ST sentences under {st_root}/en-{tgt_lang}/data/*/txt/*.en: "
                         "generate the ST corpus first")
    return found


def sample_new(n: int, exclude: set[str], rng: random.Random, what: str) -> list[grammar.Sentence]:
    """n grammar sentences, unique, none of whose English form is in `exclude`."""
    out, seen, tries = [], set(exclude), 0
    while len(out) < n:
        tries += 1
        if tries > MAX_TRIES_PER_SENTENCE * (n + 10):
            raise ValueError(f"could only find {len(out)} of {n} new {what} sentences; "
                             "the grammar has run out: ask for fewer")
        s = grammar.sample_sentence(rng)
        key = grammar.render(s, "en")
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def librispeech_transcript(text: str) -> str:
    """LibriSpeech's form: upper case, punctuation removed (apostrophes kept)."""
    return " ".join(re.sub(r"[^\w' ]", " ", text).upper().split())


def _write_bitext(out: Path, sentences: Sequence[grammar.Sentence], tgt_lang: str) -> None:
    d = out / "bitext"
    d.mkdir(parents=True)
    for lang in ("en", tgt_lang):
        with open(d / f"{BITEXT_PREFIX}.{lang}", "w", encoding="utf-8") as f:
            f.writelines(grammar.render(s, lang) + "\n" for s in sentences)


def _chapters(n: int) -> Iterable[tuple[int, int, int, range]]:
    """(chapter index, speaker id, chapter id, utterance range) covering n utterances."""
    for c, start in enumerate(range(0, n, CHAPTER_SIZE)):
        yield c, 100 + c % len(SPEAKERS), 1000 + c, range(start, min(start + CHAPTER_SIZE, n))


def _write_librispeech(out: Path, sentences: Sequence[grammar.Sentence], workers: int) -> None:
    import soundfile

    root = out / "LibriSpeech"
    subset = root / SUBSET
    chapters = list(_chapters(len(sentences)))
    jobs = [(SPEAKERS[c % len(SPEAKERS)], [grammar.render(sentences[i], "en") for i in rng])
            for c, _, _, rng in chapters]
    speakers = {}
    for (c, spk, chap, rng), audio in zip(chapters, synthesize_batches(jobs, workers=workers)):
        d = subset / str(spk) / str(chap)
        d.mkdir(parents=True)
        lines = []
        for k, (i, samples) in enumerate(zip(rng, audio)):
            utt = f"{spk}-{chap}-{k:04d}"
            soundfile.write(d / f"{utt}.flac", np.asarray(samples, dtype=np.int16), SAMPLE_RATE,
                            subtype="PCM_16")
            lines.append(f"{utt} {librispeech_transcript(grammar.render(sentences[i], 'en'))}\n")
        (d / f"{spk}-{chap}.trans.txt").write_text("".join(lines), encoding="utf-8")
        voice = SPEAKERS[c % len(SPEAKERS)]
        sex = "F" if "+f" in voice.name else "M"
        speakers[spk] = f"{spk:<5}| {sex} | {SUBSET:<16} | 1.00 | {voice.name}\n"
    header = ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
    (root / "SPEAKERS.TXT").write_text(header + "".join(speakers[k] for k in sorted(speakers)))


def make_aux_corpus(out_dir: str | Path, st_root: str | Path, tgt_lang: str = "de",
                    n_mt: int = 20000, n_asr: int = 1500, seed: int = 1, workers: int = 2
                    ) -> dict:
    """Write the MT-only bitext and the ASR-only speech; returns a summary."""
    out = Path(out_dir)
    args = {"version": AUX_VERSION, "tgt_lang": tgt_lang, "n_mt": n_mt, "n_asr": n_asr,
            "seed": seed}
    done = out / DONE
    if done.exists() and json.loads(done.read_text()) == args:
        return {"out": str(out), "skipped": True, **args}
    exclude = st_sentences(st_root, tgt_lang)
    rng = random.Random(f"aux-{seed}")
    mt = sample_new(n_mt, exclude, rng, "MT")
    asr = sample_new(n_asr, exclude | {grammar.render(s, "en") for s in mt}, rng, "ASR")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_bitext(tmp, mt, tgt_lang)
    _write_librispeech(tmp, asr, workers)
    (tmp / DONE).write_text(json.dumps(args))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return {"out": str(out), "skipped": False, **args}
