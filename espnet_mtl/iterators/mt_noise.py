"""Noise injection on the MT source (IMTL, seed 000; methods.md section 2).

What: with probability `prob` per sentence, the source token ids of an
MT-only training example are noised in two steps [code]:

  1. every punctuation piece becomes the CTC blank;
  2. n = round(U(0, max_rate) * n_tokens) blanks are inserted, each before a
     different word-start piece ("▁..."), chosen at random without
     replacement (n is capped at the number of word starts).

Paper values [code]: prob 0.1, max_rate 0.2 (`PAPER_PROB`, `PAPER_MAX_RATE`).
Ours default to off (`--mt_source_noise_prob 0.0`); `--mt_source_noise_max_rate`
defaults to the paper's 0.2.

Why: in IMTL the textual encoder reads the speech after CTC shrinking, which
keeps one frame per run of CTC labels, blank runs included. Shrunk speech
therefore looks like the transcript without punctuation (rarely spoken) and
with blanks between words. Noising the MT source the same way brings the MT
input closer to the ST input of the same encoder.

Only MT-only examples are noised (the paper noises its MT batches). The
transcript of an ST triple is never noised: it is also the CTC target of the
same row's speech, which must stay the clean transcript. Validation is never
noised.

Parts, pure first:
    noise_source(ids, word_start, punctuation, blank, rng, prob, max_rate)
    token_tables(token_list)       -> TokenTables (built once per vocabulary)
    MTSourceNoise(preprocess, ...) an ESPnet preprocess_fn wrapper for the MT data
    from_args(args, sources, preprocess) -> MTSourceNoise, or None when off
    EpochIterFactory               tells the noise the epoch of each DataLoader
"""

from __future__ import annotations

import argparse
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import numpy as np

from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

#: methods.md section 2 [code]: noise 10% of the MT sentences ...
PAPER_PROB = 0.1
#: ... inserting round(U(0, 0.2) * n_tokens) blanks.
PAPER_MAX_RATE = 0.2
BLANK = "<blank>"
WORD_START = "▁"  # SentencePiece's word-boundary mark (U+2581)
PROB_OPTION = "--mt_source_noise_prob"
RATE_OPTION = "--mt_source_noise_max_rate"


class MTNoiseError(ValueError):
    """A configuration error of the MT-source noise options."""


# --- the noise itself -----------------------------------------------------------
def noise_source(ids: np.ndarray, word_start: np.ndarray, punctuation: np.ndarray,
                 blank: int, rng: np.random.Generator, prob: float = PAPER_PROB,
                 max_rate: float = PAPER_MAX_RATE) -> np.ndarray:
    """One sentence's source ids, noised with probability `prob` (see module doc).

    `word_start` and `punctuation` are boolean tables over the vocabulary
    (`token_tables`). Returns `ids` itself when the sentence is not noised, a
    new array of the same dtype otherwise. Draws from `rng`: one uniform for
    the coin, then (if noised) the rate and the insertion points.
    """
    ids = np.asarray(ids)
    if prob <= 0.0 or rng.random() >= prob:
        return ids
    out = np.where(punctuation[ids], blank, ids).astype(ids.dtype, copy=False)
    n = int(round(rng.uniform(0.0, max_rate) * len(ids)))
    # Word starts after step 1: a punctuation piece "▁," is now a blank.
    starts = np.flatnonzero(word_start[out])
    n = min(n, len(starts))
    if n == 0:
        return out
    # np.insert puts one blank before each chosen (distinct) original position.
    return np.insert(out, np.sort(rng.choice(starts, size=n, replace=False)), blank)


@dataclass(frozen=True)
class TokenTables:
    """Per-vocabulary-id tables for `noise_source`."""

    word_start: np.ndarray   # bool (V,): the piece begins with "▁"
    punctuation: np.ndarray  # bool (V,): the piece without "▁" is non-empty, all punctuation
    blank: int               # id of "<blank>"


def is_punctuation(piece: str) -> bool:
    """'▁,' and '...' are punctuation; '▁', '<unk>' ('<' is a math symbol) and 'a,' not."""
    text = piece.replace(WORD_START, "")
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


def token_tables(token_list: Union[str, Path, Sequence[str]]) -> TokenTables:
    """Tables for an ESPnet token list: a file (one token a line) or the list itself.

    ESPnet's STTask.build_model replaces a --src_token_list path by the list it
    read, so both forms reach us.
    """
    if isinstance(token_list, (str, Path)):
        where = f"--src_token_list {token_list}"
        with open(token_list, encoding="utf-8") as f:
            # as ESPnet's TokenIDConverter reads it, so the ids agree
            tokens = [line[0] + line[1:].rstrip() for line in f]
    else:
        tokens = list(token_list)
        where = f"--src_token_list ({len(tokens)} tokens: {', '.join(tokens[:4])}, ...)"
    if BLANK not in tokens:
        raise MTNoiseError(
            f"{PROB_OPTION} replaces source tokens by the CTC blank '{BLANK}', but {where} "
            f"has no '{BLANK}': use the source token list of the CTC vocabulary (ESPnet's "
            f"token lists start with '{BLANK}') or set {PROB_OPTION} 0")
    word_start = np.array([t.startswith(WORD_START) for t in tokens], dtype=bool)
    if not word_start.any():
        logging.warning(f"{where}: no token starts with '{WORD_START}' (not a SentencePiece "
                        f"vocabulary?): MT-source noise will replace punctuation but insert "
                        f"no blanks")
    return TokenTables(word_start=word_start,
                       punctuation=np.array([is_punctuation(t) for t in tokens], dtype=bool),
                       blank=tokens.index(BLANK))


# --- in the data pipeline -----------------------------------------------------------
class MTSourceNoise:
    """ESPnet preprocess_fn(uid, data) -> data that also noises data['src_text'].

    Wrap only the preprocess of the MT-only dataset: every example it sees is
    noised with probability `prob`. ESPnet's preprocess runs first and turns
    the source text into ids.

    Randomness: each example draws from its own Generator seeded by
    (seed, epoch, uid). Reproducible for a fixed --seed, new noise every
    epoch, and the same noise whatever the number of DataLoader workers,
    their order, the batch composition or the DDP world size (ESPnet's
    per-worker seeding of numpy's global state, seed + epoch + worker_id,
    would tie the noise to all of these). The epoch is set by
    `EpochIterFactory.build_iter` before the epoch's DataLoader starts its
    workers, which then get copies carrying it. One consequence: a sentence
    drawn twice in one epoch (a small MT corpus cycled) is noised alike both
    times.
    """

    def __init__(self, preprocess: Optional[Callable[[str, Dict], Dict]],
                 tables: TokenTables, prob: float, max_rate: float, seed: int):
        self.preprocess = preprocess
        self.tables = tables
        self.prob = prob
        self.max_rate = max_rate
        self.seed = seed
        self.epoch = 0

    def rng(self, uid: str) -> np.random.Generator:
        # SeedSequence takes non-negative integers of any size: the uid's bytes
        # as one integer cannot collide with another uid's.
        key = int.from_bytes(uid.encode("utf-8"), "little")
        return np.random.default_rng([self.seed % 2**64, self.epoch, key])

    def __call__(self, uid: str, data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if self.preprocess is not None:
            data = self.preprocess(uid, data)
        src = data.get("src_text")
        if not (isinstance(src, np.ndarray) and np.issubdtype(src.dtype, np.integer)):
            raise MTNoiseError(
                f"{PROB_OPTION}: the MT source of '{uid}' is {type(src).__name__}, not token "
                f"ids; MT-source noise needs ESPnet's preprocessor to tokenize src_text "
                f"(--use_preprocessor true, --src_token_type, --src_token_list)")
        t = self.tables
        data["src_text"] = noise_source(src, t.word_start, t.punctuation, t.blank,
                                        self.rng(uid), self.prob, self.max_rate)
        return data

    def __repr__(self):
        return (f"{self.__class__.__name__}(prob={self.prob}, max_rate={self.max_rate}, "
                f"blank={self.tables.blank}, preprocess={self.preprocess})")


class EpochIterFactory(SequenceIterFactory):
    """ESPnet's SequenceIterFactory that sets `noise.epoch` for each epoch's iterator."""

    def __init__(self, noise: MTSourceNoise, **kwargs):
        super().__init__(**kwargs)
        self.noise = noise

    def build_iter(self, epoch: int, shuffle: bool = None):
        # DataLoader workers start (fork, or pickle the dataset) when the
        # trainer iterates the loader returned here: they copy this epoch.
        self.noise.epoch = epoch
        return super().build_iter(epoch, shuffle)


# --- options ------------------------------------------------------------------------
def add_arguments(group) -> None:
    group.add_argument(
        PROB_OPTION, type=float, default=0.0,
        help=f"IMTL noise on the source of MT-only examples: the probability that a "
             f"sentence is noised (punctuation -> CTC blank, blanks inserted at word "
             f"starts). 0 = off; paper: {PAPER_PROB}. ST triples are never noised.")
    group.add_argument(
        RATE_OPTION, type=float, default=PAPER_MAX_RATE,
        help=f"Blanks inserted into a noised sentence: round(U(0, rate) * n_tokens) "
             f"(paper: {PAPER_MAX_RATE}).")


def _checked(option: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise MTNoiseError(f"{option} must be a number in [0, 1], got {value!r}")
    return number


def from_args(args: argparse.Namespace, sources: Sequence[str],
              preprocess: Optional[Callable[[str, Dict], Dict]] = None
              ) -> Optional[MTSourceNoise]:
    """The MT data's noising preprocess (around `preprocess`), or None when off.

    Checks the options for the training `sources`; called for every training
    iterator, so noise asked for without MT-only data is refused, not ignored.
    """
    # Values from a --config file skip argparse's type: check here, not there.
    prob = _checked(PROB_OPTION, getattr(args, "mt_source_noise_prob", 0.0))
    max_rate = _checked(RATE_OPTION, getattr(args, "mt_source_noise_max_rate", PAPER_MAX_RATE))
    if prob == 0.0:
        return None
    if "mt" not in sources:
        raise MTNoiseError(
            f"{PROB_OPTION} {prob} noises the source of MT-only examples, but there are "
            f"none: add MT-only data (--train_mt_data_path_and_name_and_type) or set "
            f"{PROB_OPTION} 0 (ST triples are never noised)")
    if getattr(args, "src_token_list", None) is None:
        raise MTNoiseError(f"{PROB_OPTION} needs --src_token_list (the CTC vocabulary, "
                           f"with '{BLANK}')")
    return MTSourceNoise(preprocess, token_tables(args.src_token_list), prob, max_rate,
                         seed=int(getattr(args, "seed", 0) or 0))
