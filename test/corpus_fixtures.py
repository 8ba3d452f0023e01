"""Tiny corpora fabricated in the real on-disk layouts (../shared/design/corpora.md).

Shared by the recipe tests (stages 1-5 through each recipe's run.sh) and the
data-preparation benchmarks. Audio is real (sine tones written by
soundfile), texts are varied enough to train small SentencePiece models, and
each corpus carries the traps its reader must survive; the functions return
what a correct reader should keep, so tests can compare.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import soundfile as sf

EN_WORDS = ("the a we you they this that people world water music city story idea "
            "time brain energy climate design children women problem future science "
            "really actually different something thousand because when would could").split()
XX_WORDS = {
    "de": "der die das und ist wir nicht Welt Wasser Musik Stadt Idee Zeit Gehirn Energie "
          "Klima Kinder Frauen Problem Zukunft wirklich anders etwas tausend weil wenn".split(),
    "es": "el la los y es nosotros no mundo agua música ciudad idea tiempo cerebro energía "
          "clima niños mujeres problema futuro realmente diferente algo mil porque".split(),
    "fr": "le la les et est nous pas monde eau musique ville idée temps cerveau énergie "
          "climat enfants femmes problème avenir vraiment différent quelque mille parce".split(),
}


def sentence(rng: random.Random, words, n_min=4, n_max=10, cap=True) -> str:
    text = " ".join(rng.choice(words) for _ in range(rng.randint(n_min, n_max)))
    return (text[0].upper() + text[1:] + rng.choice(".?!")) if cap else text


def tone(seconds: float, fs: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    x = (0.2 * np.sin(2 * np.pi * freq * t) + 0.01 * np.sin(2 * np.pi * 37 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


# ----------------------------------------------------------------------------- MuST-C


def make_must_c(root: Path, tgt: str = "de", version: str = "v1", *, talks: int = 3,
                segments_per_talk: int = 8, seed: int = 0) -> dict[str, int]:
    """`<root>/en-<tgt>/data/{train,dev,tst-COMMON,tst-HE}/{wav,txt}`.

    The train split carries the traps: a duplicate segment, a segment shorter
    than 0.2 s, an empty translation, offsets that sort wrongly as strings
    (9.x before 10.x), a speaker_id unlike the wav name, and no final newline
    in the translation file. Returns the number of segments a correct reader
    keeps per split.
    """
    rng = random.Random(seed)
    words = XX_WORDS.get(tgt, XX_WORDS["de"])
    kept = {}
    for s_i, split in enumerate(("train", "dev", "tst-COMMON", "tst-HE")):
        base = root / f"en-{tgt}" / "data" / split
        (base / "wav").mkdir(parents=True)
        (base / "txt").mkdir(parents=True)
        yaml_lines, en, xx = [], [], []
        n_kept = 0
        for t in range(talks):
            talk = 100 * (s_i + 1) + t + 1
            wav = f"ted_{talk}.wav"
            offset = 0.5
            for k in range(segments_per_talk):
                dur = round(rng.uniform(0.8, 1.6), 2)
                extra = f" rW: {rng.randint(3, 12)}, uW: 0," if version == "v2" else ""
                yaml_lines.append(f"- {{duration: {dur:.6f}, offset: {offset:.6f},{extra} "
                                  f"speaker_id: spk.{talk + 7}, wav: {wav}}}")
                en.append(sentence(rng, EN_WORDS))
                xx.append(sentence(rng, words))
                n_kept += 1
                offset = round(offset + dur + 0.3, 2)
                if split == "train" and t == 0 and k == 0:
                    offset = 9.4  # next offsets 9.4 .. 10.x: string order would be wrong
            sf.write(base / "wav" / wav, tone(offset + 0.5, 16000, 200 + 40 * t), 16000,
                     subtype="PCM_16")
        if split == "train":
            first = yaml_lines[0]
            yaml_lines.append(first)  # duplicate of the first segment
            en.append(en[0])
            xx.append(xx[0])
            yaml_lines.append("- {duration: 0.100000, offset: 0.200000, speaker_id: spk.1, "
                              "wav: ted_101.wav}")  # too short
            en.append("Short.")
            xx.append("Kurz.")
            yaml_lines.append("- {duration: 1.000000, offset: 3.000000, speaker_id: spk.1, "
                              "wav: ted_101.wav}")  # empty translation
            en.append("Nothing comes back.")
            xx.append("")
            # A last, kept segment: an empty last line without a final newline
            # could not be told apart from no line at all.
            yaml_lines.append("- {duration: 1.000000, offset: 5.000000, speaker_id: spk.1, "
                              "wav: ted_101.wav}")
            en.append("The last one.")
            xx.append("Der letzte.")
            n_kept += 1
        (base / "txt" / f"{split}.yaml").write_text("\n".join(yaml_lines) + "\n", encoding="utf-8")
        (base / "txt" / f"{split}.en").write_text("\n".join(en) + "\n", encoding="utf-8")
        # No final newline on the translation file (a trap of the real corpus).
        (base / "txt" / f"{split}.{tgt}").write_text("\n".join(xx), encoding="utf-8")
        kept[split] = n_kept
    return kept


# ----------------------------------------------------------------------------- CoVoST 2

CV_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
COVOST_HEADER = ["path", "sentence", "translation", "client_id", "split"]


def _client(name: str) -> str:
    return hashlib.sha512(name.encode()).hexdigest()


def make_covost2(root: Path, src: str = "fr", tgt: str = "en", *, n_train: int = 24,
                 n_dev: int = 6, n_test: int = 6, seed: int = 0) -> dict[str, int]:
    """`<root>/<src>/{clips/*.mp3, validated.tsv, covost_v2.<src>_<tgt>.tsv}`.

    Traps: a `REMOVE` translation, an empty translation, a clip listed in the
    CoVoST table but absent from validated.tsv (inner join drops it), the
    sentence `NA`, a sentence starting with a double quote, one sentence read
    by two speakers, a `train_covost` label and an unknown split label.
    Returns the utterances a correct reader keeps per split.
    """
    rng = random.Random(seed)
    src_words = XX_WORDS.get(src, EN_WORDS)
    tgt_words = EN_WORDS if tgt == "en" else XX_WORDS.get(tgt, XX_WORDS["de"])
    d = root / src
    (d / "clips").mkdir(parents=True)
    validated, covost = [], []
    kept = {"train": 0, "dev": 0, "test": 0}
    n = 0
    for split, count in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        for i in range(count):
            n += 1
            clip = f"common_voice_{src}_{1000 + n}.mp3"
            who = _client(f"speaker{n % 4}")
            text = sentence(rng, src_words)
            translation = sentence(rng, tgt_words)
            if split == "train" and i == 0:
                text = "NA"
            if split == "train" and i == 1:
                text = '"Bonjour" dit-il.'
            label = "train_covost" if split == "train" and i == 2 else split
            sf.write(d / "clips" / clip, tone(rng.uniform(0.6, 1.2), 48000, 300 + 10 * (n % 20)),
                     48000, format="MP3")
            validated.append({"client_id": who, "path": clip, "sentence": text, "up_votes": 2,
                              "down_votes": 0, "age": "", "gender": "", "accent": ""})
            covost.append({"path": clip, "sentence": text, "translation": translation,
                           "client_id": who, "split": label})
            kept[split] += 1
    # One sentence read by a second speaker (kept: a different clip and speaker).
    n += 1
    clip = f"common_voice_{src}_{1000 + n}.mp3"
    sf.write(d / "clips" / clip, tone(0.8, 48000, 500), 48000, format="MP3")
    first = validated[5]
    validated.append({**first, "client_id": _client("another reader"), "path": clip})
    covost.append({"path": clip, "sentence": first["sentence"], "translation": covost[5]["translation"],
                   "client_id": _client("another reader"), "split": "train"})
    kept["train"] += 1
    # Dropped rows: REMOVE, empty translation, not in validated.tsv, unknown split label.
    for trap, translation, in_validated, label in (("remove", "REMOVE", True, "train"),
                                                   ("empty", "", True, "train"),
                                                   ("unvalidated", "Lost.", False, "train"),
                                                   ("label", "Other.", True, "excluded")):
        n += 1
        clip = f"common_voice_{src}_{1000 + n}.mp3"
        sf.write(d / "clips" / clip, tone(0.7, 48000, 600), 48000, format="MP3")
        row = {"client_id": _client(trap), "path": clip, "sentence": f"Phrase {trap}.",
               "up_votes": 2, "down_votes": 0, "age": "", "gender": "", "accent": ""}
        if in_validated:
            validated.append(row)
        covost.append({"path": clip, "sentence": row["sentence"], "translation": translation,
                       "client_id": row["client_id"], "split": label})
    _write_tsv(d / "validated.tsv", CV_HEADER, validated)
    _write_tsv(d / f"covost_v2.{src}_{tgt}.tsv", COVOST_HEADER, covost)
    return kept


def _write_tsv(path: Path, header, rows) -> None:
    lines = ["\t".join(header)] + ["\t".join(str(r.get(c, "")) for c in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- Europarl-ST


def write_m4a(path: Path, seconds: float, freq: float) -> None:
    """44.1 kHz stereo AAC in an .m4a, encoded by the ffmpeg stage 3 decodes with."""
    import subprocess

    from espnet_mtl.prep.audio_dump import ffmpeg_exe

    wav = path.with_name(path.name + ".wav")
    sf.write(wav, tone(seconds, 44100, freq, channels=2), 44100, subtype="PCM_16")
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac",
                    "-b:a", "64k", str(path)], check=True)
    wav.unlink()


def make_europarl_st(root: Path, src: str = "en", tgt: str = "de", *, speeches: int = 2,
                     segments: int = 6, seed: int = 0) -> dict[str, int]:
    """`<root>/<src>/audios/<speech_id>.m4a` + `<root>/<src>/<tgt>/<split>/segments.*`.

    Speech ids carry dots, and one is a prefix of another. Traps: a segment
    ending 0.4 s after its audio (dropped at stage 3), an empty translation, a
    duplicate segment, and a train-noisy split that stays out by default.
    Returns the segments a correct reader keeps per split.
    """
    rng = random.Random(seed)
    src_words = EN_WORDS if src == "en" else XX_WORDS[src]
    tgt_words = EN_WORDS if tgt == "en" else XX_WORDS[tgt]
    (root / src / "audios").mkdir(parents=True)
    kept = {}
    n = 0
    for split in ("train", "dev", "test", "train-noisy"):
        d = root / src / tgt / split
        d.mkdir(parents=True)
        segs, s_lines, t_lines = [], [], []
        kept[split] = 0
        for k in range(speeches):
            n += 1
            speech = f"{src}.2008092{n}.31.3-24" + ("3" if k % 2 else "")
            start = 0.4
            for _ in range(segments):
                end = round(start + rng.uniform(0.8, 1.5), 2)
                segs.append(f"{speech} {start:.2f} {end:.2f}")
                s_lines.append(sentence(rng, src_words))
                t_lines.append(sentence(rng, tgt_words))
                kept[split] += 1
                start = round(end + 0.2, 2)
            audio_end = start + 0.3
            if split == "train" and k == 0:
                segs.append(f"{speech} {start:.2f} {audio_end + 0.4:.2f}")  # ends after the audio
                s_lines.append(sentence(rng, src_words))
                t_lines.append(sentence(rng, tgt_words))
                kept[split] += 1
                segs.append(segs[0])  # duplicate
                s_lines.append(s_lines[0])
                t_lines.append(t_lines[0])
                segs.append(f"{speech} 0.40 0.90")  # empty translation
                s_lines.append("Nothing.")
                t_lines.append("")
            write_m4a(root / src / "audios" / f"{speech}.m4a", audio_end, 200 + 50 * n)
        for name, lines in (("segments.lst", segs), (f"segments.{src}", s_lines),
                            (f"segments.{tgt}", t_lines)):
            (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        (d / "speeches.lst").write_text("\n".join(sorted({x.split()[0] for x in segs})) + "\n")
    return kept


# ----------------------------------------------------------------------------- auxiliary data


def make_librispeech(root: Path, subset: str = "train-clean-5", *, speakers: int = 2,
                     chapters: int = 1, utts: int = 5, seed: int = 0) -> int:
    """`<root>/LibriSpeech/<subset>/<spk>/<chap>/*.flac` + trans.txt + SPEAKERS.TXT."""
    rng = random.Random(seed)
    base = root / "LibriSpeech"
    n = 0
    speaker_lines = [";ID  |SEX| SUBSET           |MINUTES| NAME"]
    for s in range(speakers):
        spk = 100 + s
        speaker_lines.append(f"{spk:<4}| {'FM'[s % 2]} | {subset:<16} | 25.00 | Reader {s} | the Elder")
        for c in range(chapters):
            chap = 2000 + c
            d = base / subset / str(spk) / str(chap)
            d.mkdir(parents=True)
            lines = []
            for u in range(utts):
                utt = f"{spk}-{chap}-{u:04d}"
                sf.write(d / f"{utt}.flac", tone(rng.uniform(0.6, 1.2), 16000, 250 + 20 * u), 16000)
                lines.append(f"{utt} {sentence(rng, EN_WORDS, cap=False).upper()}")
                n += 1
            (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (base / "SPEAKERS.TXT").write_text("\n".join(speaker_lines) + "\n", encoding="utf-8")
    return n


def make_tedlium3(root: Path, split: str = "train", *, talks: int = 2, segments: int = 5,
                  seed: int = 0) -> int:
    """`<root>/TEDLIUM_release-3/legacy/<split>/{sph,stm}/` with NIST SPHERE audio."""
    rng = random.Random(seed)
    base = root / "TEDLIUM_release-3" / "legacy" / split
    (base / "sph").mkdir(parents=True)
    (base / "stm").mkdir(parents=True)
    kept = 0
    for t in range(talks):
        name = f"Speaker{t}_2010"
        lines, start = [], 0.3
        for k in range(segments):
            end = round(start + rng.uniform(0.8, 1.4), 2)
            words = sentence(rng, EN_WORDS, cap=False)
            lines.append(f"{name} 1 {name} {start:.2f} {end:.2f} <o,f0,male> {words} it 's <sil>")
            kept += 1
            start = round(end + 0.2, 2)
        lines.append(f"{name} 1 inter_segment_gap {start:.2f} {start + 0.5:.2f} <o,,unknown> "
                     f"ignore_time_segment_in_scoring")
        sf.write(base / "sph" / f"{name}.sph", tone(start + 1.0, 16000, 330 + 30 * t), 16000,
                 format="NIST", subtype="PCM_16")
        (base / "stm" / f"{name}.stm").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return kept


def make_bitext(prefix: Path, src: str = "en", tgt: str = "de", *, n: int = 40,
                seed: int = 0) -> int:
    """`<prefix>.<src>` and `<prefix>.<tgt>`, line-aligned; two blank pairs to drop."""
    rng = random.Random(seed)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    s_lines = [sentence(rng, EN_WORDS) for _ in range(n)]
    t_lines = [sentence(rng, XX_WORDS.get(tgt, XX_WORDS["de"])) for _ in range(n)]
    s_lines[3], t_lines[7] = "", ""
    Path(f"{prefix}.{src}").write_text("\n".join(s_lines) + "\n", encoding="utf-8")
    Path(f"{prefix}.{tgt}").write_text("\n".join(t_lines) + "\n", encoding="utf-8")
    return n - 2
