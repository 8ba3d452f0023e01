"""Stage 1 for auxiliary data: read a corpus and write its data dir, in one call.

The library behind `bin/prepare_{librispeech,tedlium3,bitext}` and
`espnet_mtl.prep.aux_data`: each function takes the corpus location as arguments
(nothing from the environment), reads with the corpus reader, validates, and
writes with `espnet_mtl.corpora.writer`. Errors are the reader's
(`LibriSpeechError`, `TedliumError`, `BitextError`) or the writer's
(`DataDirError`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from espnet_mtl.corpora import librispeech, tedlium3
from espnet_mtl.corpora.bitext import ReadStats, iter_bitext
from espnet_mtl.corpora.writer import check_dir_name, write_asr_data_dir, write_mt_data_dir

logger = logging.getLogger(__name__)

def librispeech_dir(root: str | os.PathLike, subsets: str | list[str], out: str | os.PathLike,
                    name: str, *, lang: str = "en", missing_audio: str = "error",
                    nj: int = 1) -> Path:
    """LibriSpeech `subsets` ("a,b" or a list) as one ASR-only data dir `<out>/<name>`."""
    name = check_dir_name(name)
    utts, stats = librispeech.read_librispeech_with_stats(root, subsets, missing_audio)
    if not utts:
        raise librispeech.LibriSpeechError(f"no utterance left ({stats.summary()})")
    spk2gender = librispeech.speaker_genders(root, {u.speaker for u in utts})
    return write_asr_data_dir(Path(out) / name, utts, lang, workers=nj, spk2gender=spk2gender)


def tedlium3_dir(root: str | os.PathLike, split: str, out: str | os.PathLike,
                 name: str | None = None, *, layout: str = "legacy", lang: str = "en",
                 min_duration: float = 0.2, nj: int = 1) -> Path:
    """One TED-LIUM 3 split as an ASR-only data dir `<out>/<name>` (default `tedlium3_<split>`)."""
    name = check_dir_name(name or f"tedlium3_{split}")
    utts, stats = tedlium3.read_tedlium3_with_stats(root, split, layout, min_duration)
    if not utts:
        raise tedlium3.TedliumError(f"no utterance left ({stats.summary()})")
    return write_asr_data_dir(Path(out) / name, utts, lang, workers=nj,
                              spk2gender=tedlium3.speaker_genders(utts))


def bitext_dir(src: str | os.PathLike, tgt: str | os.PathLike, src_lang: str, tgt_lang: str,
               out: str | os.PathLike, name: str, *, nj: int = 1, **limits) -> ReadStats:
    """A line-aligned bitext as an MT-only data dir `<out>/<name>`; returns the drop counts.

    `limits`: `max_len_ratio`, `max_words`, `max_chars` of `iter_bitext` (its defaults
    when absent).
    """
    name = check_dir_name(name)
    stats = ReadStats()
    pairs = iter_bitext(src, tgt, src_lang, tgt_lang, name, stats=stats, **limits)
    t0 = time.perf_counter()
    write_mt_data_dir(Path(out) / name, pairs, src_lang, tgt_lang, workers=nj)
    elapsed = time.perf_counter() - t0
    logger.info("%d lines in %.1f s (%.0f lines/s)", stats.lines, elapsed,
                stats.lines / elapsed if elapsed else float("inf"))
    return stats
