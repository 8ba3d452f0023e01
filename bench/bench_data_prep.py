"""Benchmark stage 1 (data preparation) on fabricated full-size metadata.

MuST-C (default): a 230k-segment en-de train split: train.yaml, train.en,
train.de with TED-like sentences, and one tiny header-only wav per talk
(the reader checks that each wav exists), untimed; then `prepare_must_c` is
timed in-process, and, as a baseline, a naive `yaml.safe_load` of the yaml.

CoVoST 2 (`--corpus covost2`): fr-en with 200k rows: validated.tsv,
covost_v2.fr_en.tsv and one 1-byte placeholder clip per row (the reader lists
clips/ and skips empty clips), untimed; then `prepare_covost2` is timed, and
as a baseline `csv.DictReader` over the two tables (parse only).

    tools/venv/bin/python bench/bench_data_prep.py [--segments 230000] [--out results.json]
    tools/venv/bin/python bench/bench_data_prep.py --corpus covost2 [--segments 200000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import wave
from pathlib import Path

from espnet_mtl.bin import prepare_must_c
from espnet_mtl.corpora.must_c import read_must_c_with_stats
from espnet_mtl.fileio import atomic_open

TARGET = 2000  # segments per second, stage 1 on 2 cores

EN_WORDS = ("the and of to a in that it is we I you this was for on are with they be "
            "as have at what so can if about people all do one there but from our like "
            "just world would know think really because going when more these very time "
            "years brain water children energy climate design music story women city "
            "technology problem idea actually different thousand percent something").split()
DE_WORDS = ("der die und das ist ich wir nicht zu es sie ein eine Sie in mit auf für "
            "sind war dass wenn aber Menschen Welt Jahre wirklich über können Kinder "
            "Gehirn Wasser Energie Klima Musik Geschichte Frauen Stadt Technologie "
            "Problem Idee tatsächlich größer schön natürlich Größe Mädchen Lösung "
            "Tausend Prozent etwas müssen würde").split()
EN_CONTRACTIONS = ["don\u2019t", "it\u2019s", "we\u2019re", "I\u2019m", "can't", "that's", "they\u2019ve"]
EN_TAGS = ["(Laughter)", "(Applause)", "(Music)"]
DE_TAGS = ["(Lachen)", "(Applaus)", "(Musik)"]


def sentence(rng: random.Random, words: list[str], lang: str) -> str:
    """A 10-25 word TED-like line with commas, quotes, dashes and tags."""
    n = rng.randint(10, 25)
    toks = [rng.choice(words) for _ in range(n)]
    if lang == "en" and rng.random() < 0.5:
        toks[rng.randrange(n)] = rng.choice(EN_CONTRACTIONS)
    toks[0] = toks[0].capitalize()
    for _ in range(rng.randint(0, 2)):
        i = rng.randrange(1, n)
        toks[i] += ","
    if rng.random() < 0.2:
        i = rng.randrange(1, n - 2)
        toks[i] = ("\u201c" if lang == "en" else "\u201e") + toks[i]
        toks[i + 2] += "\u201d" if lang == "en" else "\u201c"
    if rng.random() < 0.1:
        toks.insert(rng.randrange(1, n), "--")
    text = " ".join(toks) + rng.choice([".", ".", ".", "?", "!", "\u2026"])
    r = rng.random()
    if r < 0.08:
        text += " " + rng.choice(EN_TAGS if lang == "en" else DE_TAGS)
    elif r < 0.1:
        text = f"\u266b {text} \u266b"
    return text


def fabricate(root: Path, segments: int, talks: int, seed: int = 0) -> Path:
    """Write <root>/en-de/data/train/{txt,wav}; returns the yaml path."""
    rng = random.Random(seed)
    split_dir = root / "en-de" / "data" / "train"
    (split_dir / "txt").mkdir(parents=True)
    (split_dir / "wav").mkdir()
    talk_ids = rng.sample(range(1, 4 * talks), talks)
    per_talk = [segments // talks + (1 if i < segments % talks else 0) for i in range(talks)]
    yaml_lines, en_lines, de_lines = [], [], []
    for talk, count in zip(talk_ids, per_talk):
        offset = rng.uniform(5, 15)
        for _ in range(count):
            duration = round(rng.uniform(0.3, 15.0), 6)
            yaml_lines.append(f"- {{duration: {duration:.6f}, offset: {offset:.6f}, "
                              f"speaker_id: spk.{talk}, wav: ted_{talk}.wav}}\n")
            en_lines.append(sentence(rng, EN_WORDS, "en") + "\n")
            de_lines.append(sentence(rng, DE_WORDS, "de") + "\n")
            offset += duration + rng.uniform(0.0, 1.0)
        with wave.open(str(split_dir / "wav" / f"ted_{talk}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)  # a header-only, valid 16 kHz PCM16 file
    for name, lines in (("train.yaml", yaml_lines), ("train.en", en_lines), ("train.de", de_lines)):
        (split_dir / "txt" / name).write_text("".join(lines), encoding="utf-8")
    return split_dir / "txt" / "train.yaml"


def fabricate_covost2(root: Path, rows: int, seed: int = 0) -> list[Path]:
    """Write <root>/fr/{validated.tsv, covost_v2.fr_en.tsv, clips/}; returns the two tables."""
    rng = random.Random(seed)
    lang_dir = root / "fr"
    (lang_dir / "clips").mkdir(parents=True)
    speakers = [f"{rng.getrandbits(256):064x}" for _ in range(max(1, rows // 40))]
    labels = ["train"] * 8 + ["dev", "test"]
    v_lines = ["client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\n"]
    c_lines = ["path\tsentence\ttranslation\tclient_id\tsplit\n"]
    for i in range(rows):
        clip = f"common_voice_fr_{17000000 + i}.mp3"
        who = rng.choice(speakers)
        src = sentence(rng, DE_WORDS, "de")  # any Latin-script source text will do
        tgt = sentence(rng, EN_WORDS, "en")
        v_lines.append(f"{who}\t{clip}\t{src}\t2\t0\t\t\t\n")
        c_lines.append(f"{clip}\t{src}\t{tgt}\t{who}\t{rng.choice(labels)}\n")
        with open(lang_dir / "clips" / clip, "wb") as f:
            f.write(b"\0")
    tables = [lang_dir / "validated.tsv", lang_dir / "covost_v2.fr_en.tsv"]
    for path, lines in zip(tables, (v_lines, c_lines)):
        path.write_text("".join(lines), encoding="utf-8")
    return tables


def bench_covost2(args) -> dict:
    import csv

    from espnet_mtl.bin import prepare_covost2

    with tempfile.TemporaryDirectory(prefix="bench_covost2.") as tmp:
        root = Path(tmp) / "cv4"
        tables = fabricate_covost2(root, args.segments)
        out = Path(tmp) / "data"
        logging.disable(logging.INFO)
        t0 = time.perf_counter()
        rc = prepare_covost2.main(["--root", str(root), "--src_lang", "fr", "--tgt_lang", "en",
                                   "--splits", "train,dev,test", "--out", str(out),
                                   "--nj", str(args.nj)])
        seconds = time.perf_counter() - t0
        if rc != 0:
            sys.exit(f"bench_data_prep: prepare_covost2 failed with exit code {rc}")
        kept = sum(sum(1 for _ in open(out / f"{s}.fr-en" / "utt2spk", encoding="utf-8"))
                   for s in ("train", "dev", "test"))
        t0 = time.perf_counter()
        for path in tables:
            with open(path, encoding="utf-8", newline="") as f:
                for _ in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    pass
        base = time.perf_counter() - t0
    return {
        "benchmark": "data_prep_covost2_fr_en",
        "rows": args.segments,
        "kept": kept,
        "workers": args.nj,
        "cpu_count": os.cpu_count(),
        "seconds": round(seconds, 3),
        "segments_per_second": round(args.segments / seconds, 1),
        "target_segments_per_second": TARGET,
        "ratio_vs_target": round(args.segments / seconds / TARGET, 2),
        "baseline": {"method": "csv.DictReader over validated.tsv and the CoVoST table "
                               "(parse only, no join, no texts, no output)",
                     "seconds": round(base, 3)},
        "stage1_time_vs_parse_only": round(seconds / base, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("must_c", "covost2"), default="must_c")
    parser.add_argument("--segments", type=int, default=None,
                        help="segments (MuST-C, default 230000) or rows (CoVoST 2, default 200000)")
    parser.add_argument("--talks", type=int, default=2500)
    parser.add_argument("--nj", type=int, default=2, help="normalisation processes (default: 2 cores)")
    parser.add_argument("--no_baseline", action="store_true", help="skip the slow yaml.safe_load baseline")
    parser.add_argument("--out", help="also write the JSON result here")
    args = parser.parse_args()
    if args.segments is None:
        args.segments = 230000 if args.corpus == "must_c" else 200000
    if args.corpus == "covost2":
        emit(bench_covost2(args), args.out)
        return
    talks = max(1, min(args.talks, args.segments))

    with tempfile.TemporaryDirectory(prefix="bench_must_c.") as tmp:
        root = Path(tmp) / "MUSTC"
        yaml_path = fabricate(root, args.segments, talks)
        out = Path(tmp) / "data"

        logging.disable(logging.INFO)  # keep the JSON on stdout readable
        t0 = time.perf_counter()
        rc = prepare_must_c.main(["--root", str(root), "--tgt_lang", "de", "--splits", "train",
                                  "--out", str(out), "--nj", str(args.nj)])
        seconds = time.perf_counter() - t0
        if rc != 0:
            sys.exit(f"bench_data_prep: prepare_must_c failed with exit code {rc}")
        kept = sum(1 for _ in open(out / "train.en-de" / "segments", encoding="utf-8"))

        # Reader alone (yaml + texts + wav checks), comparable with the baseline.
        t0 = time.perf_counter()
        read_must_c_with_stats(root, "de", "train")
        reader_seconds = time.perf_counter() - t0

        result = {
            "benchmark": "data_prep_must_c",
            "segments": args.segments,
            "kept": kept,
            "talks": talks,
            "workers": args.nj,
            "cpu_count": os.cpu_count(),
            "seconds": round(seconds, 3),
            "segments_per_second": round(args.segments / seconds, 1),
            "target_segments_per_second": TARGET,
            "ratio_vs_target": round(args.segments / seconds / TARGET, 2),
            "reader_only_seconds": round(reader_seconds, 3),
        }
        if not args.no_baseline:
            import yaml

            t0 = time.perf_counter()
            with open(yaml_path, encoding="utf-8") as f:
                entries = yaml.safe_load(f)
            base = time.perf_counter() - t0
            assert len(entries) == args.segments
            result["baseline"] = {
                "method": "yaml.safe_load of train.yaml (parse only, no texts, no output)",
                "seconds": round(base, 3),
                "segments_per_second": round(args.segments / base, 1),
            }
            # Whole stage 1 against parsing alone, and our reader against the same parse.
            result["speedup_vs_yaml_safe_load"] = round(base / seconds, 2)
            result["reader_speedup_vs_yaml_safe_load"] = round(base / reader_seconds, 2)

    emit(result, args.out)


def emit(result: dict, out: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with atomic_open(out) as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
