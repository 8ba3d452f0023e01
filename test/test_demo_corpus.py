"""Tests of the synthetic demo corpus: grammar, espeak-ng synthesis, MuST-C layout."""

from __future__ import annotations

import filecmp
import json
import random
import re
import wave
from pathlib import Path

import numpy as np
import pytest

from espnet_mtl.demo import grammar
from espnet_mtl.demo.grammar import NP, Sentence, render

# ---------------------------------------------------------------------------
# Grammar: hand-checked translations
# ---------------------------------------------------------------------------

CASES = [
    (Sentence("tr", NP("dog", "the", adj="red"), "see", obj=NP("cat", "a", adj="small"),
              place=NP("garden")),
     "The red dog sees a small cat in the garden.",
     "Der rote Hund sieht eine kleine Katze im Garten.",
     "El perro rojo ve un gato pequeño en el jardín.",
     "Le chien rouge voit un petit chat dans le jardin."),
    (Sentence("tr", NP("man", "num", plural=True, num=2, adj="old"), "eat", obj=NP("bread", "bare"),
              prog=True),
     "Two old men are eating bread.",
     "Zwei alte Männer essen Brot.",
     "Dos hombres viejos están comiendo pan.",
     "Deux vieux hommes mangent du pain."),
    (Sentence("like", NP("sister", "my"), "like", obj=NP("soup", "the", adj="cold"), time="today",
              neg=True),
     "My sister does not like the cold soup today.",
     "Meine Schwester mag heute die kalte Suppe nicht.",
     "A mi hermana no le gusta la sopa fría hoy.",
     "Ma sœur n'aime pas la soupe froide aujourd'hui."),
    (Sentence("like", NP("cat", "num", plural=True, num=3), "like", obj=NP("milk", "bare")),
     "Three cats like milk.",
     "Drei Katzen mögen Milch.",
     "A tres gatos les gusta la leche.",
     "Trois chats aiment le lait."),
    (Sentence("like", NP("dog", "the"), "like", obj=NP("flower", "the", plural=True)),
     "The dog likes the flowers.",
     "Der Hund mag die Blumen.",
     "Al perro le gustan las flores.",
     "Le chien aime les fleurs."),
    (Sentence("give", NP("woman"), "give", obj=NP("apple", "a"), recipient=NP("child", plural=True)),
     "The woman gives the children an apple.",
     "Die Frau gibt den Kindern einen Apfel.",
     "La mujer les da una manzana a los niños.",
     "La femme donne une pomme aux enfants."),
    (Sentence("give", NP("brother", "my"), "bring", obj=NP("water", "bare"), recipient=NP("dog")),
     "My brother brings the dog water.",
     "Mein Bruder bringt dem Hund Wasser.",
     "Mi hermano le trae agua al perro.",
     "Mon frère apporte de l'eau au chien."),
    (Sentence("exist", NP("water", "bare", adj="cold"), place=NP("kitchen", "my")),
     "There is cold water in my kitchen.",
     "In meiner Küche ist kaltes Wasser.",
     "Hay agua fría en mi cocina.",
     "Il y a de l'eau froide dans ma cuisine."),
    (Sentence("exist", NP("bird", "a", adj="beautiful"), place=NP("garden")),
     "There is a beautiful bird in the garden.",
     "Im Garten ist ein schöner Vogel.",
     "Hay un pájaro hermoso en el jardín.",
     "Il y a un bel oiseau dans le jardin."),
    (Sentence("pred", NP("dog", plural=True), adj="hungry", time="now", neg=True),
     "The dogs are not hungry now.",
     "Die Hunde sind jetzt nicht hungrig.",
     "Los perros no tienen hambre ahora.",
     "Les chiens n'ont pas faim maintenant."),
    (Sentence("pred", NP("car", "my"), adj="new"),
     "My car is new.",
     "Mein Auto ist neu.",
     "Mi coche es nuevo.",
     "Ma voiture est neuve."),
    (Sentence("pred", NP("soup", adj="fresh"), adj="hot"),
     "The fresh soup is hot.",
     "Die frische Suppe ist heiß.",
     "La sopa fresca está caliente.",
     "La soupe fraîche est chaude."),
    (Sentence("tr", NP("teacher"), "drink", obj=NP("coffee", "bare", adj="hot"), time="morning",
              neg=True),
     "The teacher does not drink hot coffee in the morning.",
     "Der Lehrer trinkt am Morgen keinen heißen Kaffee.",
     "El profesor no bebe café caliente por la mañana.",
     "Le professeur ne boit pas de café chaud le matin."),
    (Sentence("tr", NP("child", "a"), "see", obj=NP("man", adj="old"), place=NP("school", "my")),
     "A child sees the old man at my school.",
     "Ein Kind sieht den alten Mann in meiner Schule.",
     "Un niño ve al hombre viejo en mi escuela.",
     "Un enfant voit le vieil homme à mon école."),
    (Sentence("tr", NP("cook", "my", plural=True), "buy", obj=NP("egg", "num", plural=True, num=4),
              place=NP("market", adj="big")),
     "My cooks buy four eggs at the big market.",
     "Meine Köche kaufen vier Eier auf dem großen Markt.",
     "Mis cocineros compran cuatro huevos en el mercado grande.",
     "Mes cuisiniers achètent quatre œufs au grand marché."),
    (Sentence("intr", NP("bird", plural=True, adj="yellow"), "sing", place=NP("park", adj="big"),
              time="every_day"),
     "The yellow birds sing in the big park every day.",
     "Die gelben Vögel singen jeden Tag im großen Park.",
     "Los pájaros amarillos cantan en el parque grande todos los días.",
     "Les oiseaux jaunes chantent dans le grand parc tous les jours."),
    (Sentence("intr", NP("girl", adj="tired"), "sleep", neg=True, prog=True),
     "The tired girl is not sleeping.",
     "Das müde Mädchen schläft nicht.",
     "La niña cansada no está durmiendo.",
     "La fille fatiguée ne dort pas."),
    (Sentence("intr", NP("horse", "num", plural=True, num=5, adj="white"), "run",
              place=NP("field"), time="night"),
     "Five white horses run in the field at night.",
     "Fünf weiße Pferde rennen nachts auf dem Feld.",
     "Cinco caballos blancos corren en el campo por la noche.",
     "Cinq chevaux blancs courent dans le champ la nuit."),
    (Sentence("tr", NP("sheep", plural=True), "eat", obj=NP("grass", "bare"), prog=True, neg=True),
     "The sheep are not eating grass.",
     "Die Schafe fressen kein Gras.",
     "Las ovejas no están comiendo hierba.",
     "Les moutons ne mangent pas d'herbe."),
    (Sentence("intr", NP("father", "my"), "swim", place=NP("lake"), time="sundays"),
     "My father swims in the lake on Sundays.",
     "Mein Vater schwimmt sonntags im See.",
     "Mi padre nada en el lago los domingos.",
     "Mon père nage dans le lac le dimanche."),
    (Sentence("give", NP("queen", "a"), "show", obj=NP("umbrella", "num", plural=True, num=2,
                                                        adj="dirty"),
              recipient=NP("girl", plural=True), time="afternoon"),
     "A queen shows the girls two dirty umbrellas in the afternoon.",
     "Eine Königin zeigt am Nachmittag den Mädchen zwei schmutzige Regenschirme.",
     "Una reina les muestra dos paraguas sucios a las niñas por la tarde.",
     "Une reine montre deux parapluies sales aux filles l'après-midi."),
]


@pytest.mark.parametrize("sentence,en,de,es,fr", CASES, ids=[c[1] for c in CASES])
def test_grammar_renders_hand_checked_translations(sentence, en, de, es, fr):
    assert [render(sentence, lang) for lang in ("en", "de", "es", "fr")] == [en, de, es, fr]


def test_render_rejects_unknown_language():
    with pytest.raises(ValueError, match="unsupported language"):
        render(CASES[0][0], "it")


def test_sampling_is_deterministic_and_well_formed():
    def draw(seed, n=300):
        rng = random.Random(seed)
        return [grammar.sample_sentence(rng) for _ in range(n)]

    a, b = draw(7), draw(7)
    assert a == b
    assert draw(8) != a
    for s in draw(1, 2000):
        if s.kind == "pred" and s.subj.adj:  # no "the hot tea is cold"
            assert {s.adj, s.subj.adj} not in grammar._OPPOSITES
        en = render(s, "en")
        assert 3 <= len(en.split()) <= grammar.MAX_WORDS
        for lang in grammar.LANGS:
            text = render(s, lang)
            assert text[0].isupper() and text.endswith(".") and not text.endswith("..")
            assert "  " not in text and " ." not in text and "' " not in text
        # Contractions and elisions were applied everywhere.
        assert not re.search(r"\ba [aeiou]", en.lower()), en
        es = render(s, "es").lower()
        assert not re.search(r"\b(a|de) el\b", es), es
        fr = render(s, "fr").lower()
        assert not re.search(r"\b(le|la|de|ne|ma) [aeiouéèêœh]|\b(à|de) les?\b", fr), fr


def test_splits_are_unique_disjoint_and_covered_by_training_words():
    from espnet_mtl.demo.make_corpus import sample_splits

    splits = sample_splits(200, 40, 40, seed=5)
    texts = {name: [render(s, "en") for s in sents] for name, sents in splits.items()}
    assert [len(texts[n]) for n in ("train", "dev", "tst-COMMON")] == [200, 40, 40]
    all_texts = sum(texts.values(), [])
    assert len(set(all_texts)) == len(all_texts)  # unique within and across splits
    for lang in grammar.LANGS:
        vocab = {w for s in splits["train"] for w in grammar.words(render(s, lang))}
        for name in ("dev", "tst-COMMON"):
            for s in splits[name]:
                assert set(grammar.words(render(s, lang))) <= vocab, render(s, lang)
    assert sample_splits(200, 40, 40, seed=5) == splits


# ---------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------

def test_synthesis_is_deterministic():
    from espnet_mtl.demo.espeak import SAMPLE_RATE, Voice, synthesize, synthesize_batches

    text = "The red dog sees a small cat in the garden."
    a = synthesize(text, "en-gb+f2", rate=160, pitch=60)
    b = synthesize(text, Voice("en-gb+f2", 160, 60))
    assert a.dtype == np.int16 and 1.0 < len(a) / SAMPLE_RATE < 5.0
    assert np.abs(a).max() > 3000  # speech, not silence
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, synthesize(text, "en-us", rate=160, pitch=60))
    # Batches run in fresh processes: the order of jobs does not matter.
    jobs = [(Voice("en-029+m1", 150, 40), ["Two old men are eating bread.", text]),
            (Voice("en-us", 175, 50), [text])]
    forward = list(synthesize_batches(jobs, workers=2))
    backward = list(synthesize_batches(jobs[::-1], workers=1))[::-1]
    for x, y in zip(sum(forward, []), sum(backward, [])):
        np.testing.assert_array_equal(x, y)


def test_unknown_voice_is_a_clear_error():
    from espnet_mtl.demo.espeak import EspeakError, synthesize

    with pytest.raises(EspeakError, match="no voice 'xx-nonexistent'"):
        synthesize("hello", "xx-nonexistent")


def test_missing_voice_data_is_a_clear_error(monkeypatch):
    import espeakng_loader

    from espnet_mtl.demo.espeak import EspeakError, synthesize

    # Synthesis runs in a forked child, which inherits this patch.
    monkeypatch.setattr(espeakng_loader, "get_data_path", lambda: "/nonexistent/espeak-ng-data")
    with pytest.raises(EspeakError, match="voice data not found"):
        synthesize("hello")


def test_resample_keeps_a_tone():
    from espnet_mtl.demo.espeak import resample

    t = np.arange(22050) / 22050
    y = resample(10000 * np.sin(2 * np.pi * 440 * t), 22050, 16000)
    assert len(y) == 16000
    ref = 10000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(y[200:-200] - ref[200:-200]).max() < 50  # away from the edges


# ---------------------------------------------------------------------------
# The corpus on disk
# ---------------------------------------------------------------------------

YAML_LINE = re.compile(r"- \{duration: (\d+\.\d{6}), offset: (\d+\.\d{6}), "
                       r"speaker_id: spk\.(\d+), wav: ted_(\d+)\.wav\}")


def _read_wav(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    from espnet_mtl.demo.make_corpus import make_corpus

    out = tmp_path_factory.mktemp("demo") / "corpus"
    summary = make_corpus(out, tgt_langs=("de", "fr"), n_train=30, n_dev=5, n_test=5, seed=3)
    return out, summary


def test_small_corpus_has_the_must_c_layout(small_corpus):
    out, summary = small_corpus
    assert not summary["skipped"]
    assert summary["stats"]["train"]["utterances"] == 30
    assert json.loads((out / ".done").read_text())["tgt_langs"] == ["de", "fr"]
    assert sorted(p.name for p in out.iterdir()) == [".done", "en-de", "en-fr"]
    talk_split = {}
    for tgt in ("de", "fr"):
        for split, n in (("train", 30), ("dev", 5), ("tst-COMMON", 5)):
            sdir = out / f"en-{tgt}" / "data" / split
            txt = sdir / "txt"
            assert sorted(p.name for p in txt.iterdir()) == sorted(
                [f"{split}.yaml", f"{split}.en", f"{split}.{tgt}"])
            yaml_lines = (txt / f"{split}.yaml").read_text(encoding="utf-8").splitlines()
            en = (txt / f"{split}.en").read_text(encoding="utf-8").splitlines()
            tr = (txt / f"{split}.{tgt}").read_text(encoding="utf-8").splitlines()
            assert len(yaml_lines) == len(en) == len(tr) == n
            assert all(line.strip() for line in en + tr)
            last_end: dict[int, float] = {}
            for line in yaml_lines:
                m = YAML_LINE.fullmatch(line)
                assert m, line
                duration, offset = float(m[1]), float(m[2])
                spk, talk = int(m[3]), int(m[4])
                assert spk == talk and duration > 0.3
                assert talk_split.setdefault(talk, split) == split  # talk ids unique across splits
                assert offset >= last_end.get(talk, 0.0)  # in order, no overlap
                last_end[talk] = offset + duration
                rate, channels, width, frames = _read_wav(sdir / "wav" / f"ted_{talk}.wav")
                assert (rate, channels, width) == (16000, 1, 2)
                assert offset + duration <= frames / rate
            wavs = sorted(p.name for p in (sdir / "wav").iterdir())
            assert wavs == sorted(f"ted_{t}.wav" for t in last_end)
    # The same audio in both pairs.
    for wav in (out / "en-de" / "data" / "train" / "wav").iterdir():
        assert filecmp.cmp(wav, out / "en-fr" / "data" / "train" / "wav" / wav.name, shallow=False)
    # The MuST-C reader of this package accepts it.
    from espnet_mtl.corpora.must_c import read_must_c_with_stats

    utts, stats = read_must_c_with_stats(out, "fr", "dev")
    assert stats.kept == 5


def test_rerun_is_a_noop_and_other_arguments_rebuild(small_corpus, tmp_path):
    from espnet_mtl.demo.make_corpus import make_corpus

    out, _ = small_corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = make_corpus(out, tgt_langs=("de", "fr"), n_train=30, n_dev=5, n_test=5, seed=3)
    assert again["skipped"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    # Same arguments elsewhere: byte-identical files.
    copy = tmp_path / "copy"
    make_corpus(copy, tgt_langs=("de", "fr"), n_train=30, n_dev=5, n_test=5, seed=3)
    cmp = filecmp.dircmp(out, copy)
    assert _identical_trees(out, copy), cmp.report_full_closure()

    # An interrupted build (no marker, a stale temporary tree) and different
    # arguments both rebuild.
    (tmp_path / ".copy.partial-999999").mkdir()
    (copy / ".done").unlink()
    (copy / "en-de" / "data" / "train" / "txt" / "train.de").write_text("garbage\n")
    assert not make_corpus(copy, tgt_langs=("de", "fr"), n_train=30, n_dev=5, n_test=5, seed=3)["skipped"]
    assert _identical_trees(out, copy)
    rebuilt = make_corpus(copy, tgt_langs=("es",), n_train=30, n_dev=5, n_test=5, seed=3)
    assert not rebuilt["skipped"]
    assert sorted(p.name for p in copy.iterdir()) == [".done", "en-es"]
    assert not list(tmp_path.glob(".copy.partial-*"))  # no leftovers


def _identical_trees(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*"))
    files_b = sorted(p.relative_to(b) for p in b.rglob("*"))
    return files_a == files_b and all(
        (a / f).is_dir() or filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def test_concurrent_generation_is_refused_naming_the_first(tmp_path, capsys):
    import subprocess
    import sys

    from espnet_mtl.bin.make_demo_corpus import main
    from espnet_mtl.demo.make_corpus import lock_path

    out = tmp_path / "corpus"
    # A first generation, as far as the lock is concerned: another process holding it.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom espnet_mtl.runner.locks import hold_lock\n"
         "with hold_lock(sys.argv[1], 'test'):\n    print('held', flush=True)\n    time.sleep(60)",
         str(lock_path(out))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        partial = tmp_path / f".corpus.partial-{holder.pid}"  # the first run's work in progress
        partial.mkdir()
        assert main(["--out", str(out), "--n_train", "2", "--n_dev", "0", "--n_test", "0"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"make_demo_corpus: error: demo corpus generation into {out} is "
                              f"already running: pid {holder.pid} on host ")
        assert err.count("\n") == 1 and "Traceback" not in err
        assert partial.is_dir() and not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_complete_corpus_is_reused_while_another_run_holds_the_lock(small_corpus):
    from espnet_mtl.demo.make_corpus import lock_path, make_corpus
    from espnet_mtl.runner.locks import hold_lock

    out, _ = small_corpus
    with hold_lock(lock_path(out), "a rebuild"):
        again = make_corpus(out, tgt_langs=("de", "fr"), n_train=30, n_dev=5, n_test=5, seed=3)
    assert again["skipped"]
