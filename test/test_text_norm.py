"""Text normalisation: hand-written expected outputs for each rule."""


import pytest

from espnet_mtl.prep.text_norm import CASES, normalize, remove_punctuation, remove_tags


def test_cases_keys():
    assert tuple(normalize("Hello.", "en")) == CASES == ("tc", "lc", "lc.rm")


def test_curly_quotes_and_apostrophes():
    out = normalize("He said, \u201cIt\u2019s fine.\u201d", "en")
    assert out["tc"] == 'He said, "It\'s fine."'
    assert out["lc"] == 'he said, "it\'s fine."'
    assert out["lc.rm"] == "he said it's fine"


def test_applause_tag():
    out = normalize("Thank you. (Applause)", "en")
    assert out["tc"] == "Thank you. (Applause)"
    assert out["lc"] == "thank you. (applause)"
    assert out["lc.rm"] == "thank you"
    assert normalize("(Laughter)", "en")["lc.rm"] == ""
    assert normalize("(Applaus)", "de") == {"tc": "(Applaus)", "lc": "(applaus)", "lc.rm": ""}


def test_lowercase_aside_is_speech_not_a_tag():
    assert normalize("I was (and still am) happy.", "en")["lc.rm"] == "i was and still am happy"


def test_music_signs():
    out = normalize("\u266b Oh, say can you see \u266b", "en")
    assert out["tc"] == "\u266b Oh, say can you see \u266b"
    assert out["lc.rm"] == "oh say can you see"
    assert normalize("(Music) \u266a\u266a", "en")["lc.rm"] == ""


def test_double_dash():
    out = normalize("It was -- you know -- great--really.", "en")
    assert out["tc"] == "It was -- you know -- great--really."
    assert out["lc.rm"] == "it was you know great really"


def test_em_dash_and_ellipsis():
    assert normalize("Wait\u2014what\u2026", "en")["tc"] == "Wait - what..."


def test_apostrophes_inside_words():
    assert normalize("Don't do that.", "en")["lc.rm"] == "don't do that"
    assert normalize("C\u2019est l\u2019homme.", "fr")["lc.rm"] == "c'est l'homme"
    # Quote-like apostrophes go; the inner ones stay.
    assert normalize("The 'rock'n'roll' students'", "en")["lc.rm"] == "the rock'n'roll students"


def test_accents_kept():
    de = normalize("\u201eSch\u00f6n\u201c, sagte der Gro\u00dfvater \u00fcbrigens.", "de")
    assert de["tc"] == '"Sch\u00f6n", sagte der Gro\u00dfvater \u00fcbrigens.'
    assert de["lc.rm"] == "sch\u00f6n sagte der gro\u00dfvater \u00fcbrigens"
    fr = normalize("\u00c9t\u00e9 \u00e0 la pla\u00e7e, \u00ab\u00a0tr\u00e8s\u00a0\u00bb b\u00eate\u202f!", "fr")
    assert fr["tc"] == '\u00c9t\u00e9 \u00e0 la pla\u00e7e, "tr\u00e8s" b\u00eate!'
    assert fr["lc"] == '\u00e9t\u00e9 \u00e0 la pla\u00e7e, "tr\u00e8s" b\u00eate!'
    assert fr["lc.rm"] == "\u00e9t\u00e9 \u00e0 la pla\u00e7e tr\u00e8s b\u00eate"
    es = normalize("\u00bfQu\u00e9 pas\u00f3, se\u00f1or? \u00a1Ni\u00f1o!", "es")
    assert es["tc"] == "\u00bfQu\u00e9 pas\u00f3, se\u00f1or? \u00a1Ni\u00f1o!"
    assert es["lc.rm"] == "qu\u00e9 pas\u00f3 se\u00f1or ni\u00f1o"


def test_abbreviations_and_numbers():
    out = normalize("The U.S. spent 1,000 dollars, 50% more.", "en")
    assert out["lc.rm"] == "the us spent 1000 dollars 50 more"


def test_odd_spaces_and_control_characters():
    assert normalize(" a\tb\u2009c\u00a0 d\u200b\ufeff  ", "en")["tc"] == "a b c d"
    # A thin space is a space to Moses' rules (which drop a space before ":").
    assert normalize("Note\u2009: this", "en")["tc"] == "Note: this"


@pytest.mark.parametrize("text", ["", "   ", "\t"])
def test_empty_input(text):
    assert normalize(text, "en") == {"tc": "", "lc": "", "lc.rm": ""}


def test_remove_tags():
    assert remove_tags("Thank you. (Applause) (Laughter)") == "Thank you."
    assert remove_tags("\u266b la la \u266b (Music ends)") == "la la"
    assert remove_tags("keep (this aside) here") == "keep (this aside) here"
    assert remove_tags("\u6211\u4eec\uff08\u638c\u58f0\uff09\u597d") == "\u6211\u4eec \u597d"
    assert remove_tags("") == ""


def test_remove_punctuation_keeps_combining_marks():
    # Devanagari vowel signs are marks, not punctuation.
    assert remove_punctuation("\u0928\u092e\u0938\u094d\u0924\u0947, \u0926\u0941\u0928\u093f\u092f\u093e!") == \
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e"
