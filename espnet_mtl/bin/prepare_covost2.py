"""Stage 1 for CoVoST 2: write `data/<split>.<src>-<tgt>/` for each split.

    python -m espnet_mtl.bin.prepare_covost2 --root /corpora/cv-corpus-4 --src_lang fr \\
        --tgt_lang en --splits train,dev,test --out data

Data dirs are named as in ESPnet's egs2/covost2 recipe: `train.<src>-<tgt>`,
`dev.<src>-<tgt>`, `test.<src>-<tgt>` (language codes as CoVoST writes them,
e.g. `train.zh-CN-en`). Each Common Voice clip is one utterance, so the dirs
have no `segments` file: `wav.scp` maps the utterance id to its mp3, which
stage 3 decodes (libsndfile, bundled with the soundfile wheel) to 16 kHz
mono. Clip durations are unknown until then; stage 4 filters on them.

Several source languages (multilingual X->En, e.g. the Fr/De/Es/Ca->En of
Objective Soups) go into one data dir per split:

    python -m espnet_mtl.bin.prepare_covost2 --root /corpora/cv-corpus-4 --src_lang fr,de,es,ca \
        --tgt_lang en --lang_splits test --out data

writes `data/<split>.fr_de_es_ca-en/` with the utterances of every language
(ids stay unique: Common Voice clip names carry the language), the
transcripts as `text.<case>.fr_de_es_ca` (each normalised by the rules of
its own language) and `utt2lang` (utterance id -> source language, kept by
the later stages). Each split of --lang_splits also gets one data dir per
language, `data/<split>_<lang>.fr_de_es_ca-en/` (same file names), for
per-language scores.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from espnet_mtl.corpora.covost2 import (
    CoVoST2Error, Utterance, multilingual_tag, parse_src_langs, read_covost2_multilingual,
    read_covost2_with_stats,
)
from espnet_mtl.corpora.writer import prepare_splits, write_st_data_dir, write_tables
from espnet_mtl.fileio import read_table
from espnet_mtl.runner.cli import run_main

PROG = "prepare_covost2"
logger = logging.getLogger(PROG)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True,
                        help="Common Voice v4 root holding <src_lang>/clips/ and <src_lang>/validated.tsv")
    parser.add_argument("--src_lang", required=True,
                        help="source language, e.g. fr, zh-CN or en; or a comma-separated list "
                             "of X->en sources (fr,de,es,ca) for one multilingual data dir")
    parser.add_argument("--tgt_lang", required=True, help="target language, e.g. en or de")
    parser.add_argument("--covost_dir", default=None,
                        help="directory holding covost_v2.<src>_<tgt>.tsv (default: <root>/<src_lang>)")
    parser.add_argument("--splits", default="train,dev,test",
                        help="comma-separated splits (default: train,dev,test)")
    parser.add_argument("--missing_clips", choices=("error", "drop"), default="error",
                        help="a clip listed but absent from clips/: stop (default) or drop and count it")
    parser.add_argument("--lang_splits", default="",
                        help="several source languages only: comma-separated splits that also "
                             "get one data dir per language, <split>_<lang>.<tag>-<tgt> "
                             "(default: none)")
    parser.add_argument("--out", default="data", help="parent of the data dirs (default: data)")
    parser.add_argument("--nj", type=int, default=1,
                        help="processes for text normalisation (default: 1)")
    return parser


def run(args: argparse.Namespace) -> None:
    langs = parse_src_langs(args.src_lang, args.tgt_lang)
    if len(langs) > 1:
        prepare_multilingual(args, langs)
        return
    if args.lang_splits:
        raise CoVoST2Error("--lang_splits needs several source languages in --src_lang")
    prepare_splits(args.splits,
                   lambda split: read_covost2_with_stats(
                       args.root, langs[0], args.tgt_lang, split,
                       covost_dir=args.covost_dir, missing_clips=args.missing_clips),
                   args.out, langs[0], args.tgt_lang, workers=args.nj, error=CoVoST2Error)


def prepare_multilingual(args: argparse.Namespace, langs: tuple[str, ...]) -> None:
    """One data dir per split for all of `langs` (see the module docstring)."""
    tag = multilingual_tag(langs)
    splits = [s for s in args.splits.split(",") if s]
    if not splits:
        raise CoVoST2Error("--splits is empty")
    lang_splits = [s for s in args.lang_splits.split(",") if s]
    unknown = [s for s in lang_splits if s not in splits]
    if unknown:
        raise CoVoST2Error(f"--lang_splits {','.join(unknown)}: not among --splits {args.splits}")
    # Every split of every language is read (and so validated) before any is written.
    loaded = []
    for split in splits:
        utts, stats = read_covost2_multilingual(args.root, langs, args.tgt_lang, split,
                                                covost_dir=args.covost_dir,
                                                missing_clips=args.missing_clips)
        for lang in langs:
            if not utts[lang]:
                raise CoVoST2Error(f"split {split}: no {lang} utterance left ({stats[lang].summary()})")
        loaded.append((split, utts))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, utts in loaded:
        tables = multilingual_tables(utts, args.tgt_lang, tag, out, workers=args.nj)
        write_tables(out / f"{split}.{tag}-{args.tgt_lang}", tables)
        logger.info("wrote %s: %d utterances (%s)", out / f"{split}.{tag}-{args.tgt_lang}",
                    len(tables["utt2spk"]), ", ".join(f"{lang} {len(u)}" for lang, u in utts.items()))
        if split in lang_splits:
            for lang in langs:
                keep = {u.utt_id for u in utts[lang]}
                # Whole-clip utterances: every table (wav.scp too) is keyed by utterance.
                part = {name: {k: v for k, v in table.items() if k in keep}
                        for name, table in tables.items() if name != "spk2utt"}
                write_tables(out / f"{split}_{lang}.{tag}-{args.tgt_lang}", _with_spk2utt(part))


def multilingual_tables(utts: dict[str, list[Utterance]], tgt_lang: str, tag: str, tmp_parent: Path,
                        workers: int = 1) -> dict[str, dict[str, str]]:
    """The tables of one data dir holding every language of `utts` (lang -> utterances).

    Each language is written by the ordinary writer (its checks, and text
    normalisation by that language's rules) into a scratch dir; the tables
    are then merged, `text.<case>.<lang>` renamed to `text.<case>.<tag>` so
    that every language's transcripts share one name, plus `utt2lang`.
    """
    merged: dict[str, dict[str, str]] = {"utt2lang": {}}
    with tempfile.TemporaryDirectory(dir=tmp_parent, prefix=".per_language-") as tmp:
        for lang, part in utts.items():
            d = write_st_data_dir(Path(tmp) / lang, part, lang, tgt_lang, workers=workers)
            for path in sorted(d.iterdir()):
                name = path.name
                if name == "spk2utt":
                    continue  # rebuilt from the merged utt2spk
                if name.startswith("text.") and name.endswith(f".{lang}"):
                    name = name[:-len(lang)] + tag
                merged.setdefault(name, {}).update(read_table(path))
            merged["utt2lang"].update((u.utt_id, lang) for u in part)
    return _with_spk2utt(merged)


def _with_spk2utt(tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """`tables` plus spk2utt from its utt2spk (utterances in C order, as the writer does)."""
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in sorted(tables["utt2spk"].items(), key=lambda kv: kv[0].encode("utf-8")):
        spk2utt.setdefault(spk, []).append(utt)
    return {**tables, "spk2utt": {spk: " ".join(us) for spk, us in spk2utt.items()}}


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (CoVoST2Error,), argv)


if __name__ == "__main__":
    sys.exit(main())
