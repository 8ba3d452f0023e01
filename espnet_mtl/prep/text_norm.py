"""Text normalisation shared by data preparation and scoring.

ESPnet's speech-translation recipes keep three casings of every text:

- ``tc``: true case, the original text after Moses punctuation normalisation
  (curly quotes, odd dashes and spaces become plain ASCII punctuation);
- ``lc``: ``tc`` lowercased;
- ``lc.rm``: lowercased with non-verbal tags such as ``(Applause)`` and music
  signs removed, punctuation removed (apostrophes inside words are kept) and
  whitespace collapsed: what ASR WER and punctuation-free BLEU are computed on.

Rules of ``lc.rm`` beyond ESPnet's ``remove_punctuation.pl``:

- a ``.`` or ``,`` between two word characters is deleted, so ``U.S.`` gives
  ``us`` and ``1,000`` gives ``1000`` (what ESPnet's deletion does);
- every other punctuation or symbol character becomes a space, so ``well-known``
  and ``word--word`` do not glue two words together;
- an apostrophe survives only between two word characters (``don't``,
  ``l'homme``); quote-like apostrophes become spaces.

sacremoses is imported lazily (it takes ~0.3 s), and one normaliser per
language is cached, so a call costs only the regex passes (>= 10k lines/s).
"""

from __future__ import annotations

import re

import regex  # installed with sacremoses; gives Unicode property classes (\p{P})

CASES = ("tc", "lc", "lc.rm")

# Applied before Moses. Exotic spaces become a plain space so that Moses' space
# rules (e.g. no space before "?") see them; the narrow no-break space becomes
# the no-break space that Moses' French rules know; invisible or control
# characters are dropped. ZWNJ/ZWJ (U+200C/D) are kept: Persian spelling uses them.
_PRE_TABLE = {cp: " " for cp in (0x09, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x1F, 0x85,
                                  0x1680, 0x2028, 0x2029, 0x205F, 0x3000)}
_PRE_TABLE.update({cp: " " for cp in range(0x2000, 0x200B)})  # en quad .. hair space
_PRE_TABLE[0x202F] = "\u00a0"
_PRE_TABLE.update({cp: None for cp in (0x200B, 0xFEFF, 0x7F)})
_PRE_TABLE.update({cp: None for cp in range(0x00, 0x09)})
_PRE_TABLE.update({cp: None for cp in range(0x0E, 0x1C)})
_PRE_TABLE.update({cp: None for cp in range(0x80, 0xA0) if cp != 0x85})
_PRE_TABLE[0x0D] = " "  # a stray CR inside a line separates words

# Non-verbal tags: a parenthesised span (ASCII or full-width parentheses, as in
# Chinese subtitles) whose first letter is not lowercase; see _drop_tag.
_PAREN = re.compile(r"[(\uff08]([^()\uff08\uff09]*)[)\uff09]")
_MUSIC = re.compile("[\u2669\u266a\u266b\u266c]")  # ♩ ♪ ♫ ♬

# lc.rm passes (the `regex` module: its \w includes combining marks, so Indic
# vowel signs or Arabic diacritics do not count as punctuation).
_INNER_DOT_COMMA = regex.compile(r"(?<=\w)[.,](?=\w)")
_PUNCT = regex.compile(r"[\p{P}\p{S}--[']]+", flags=regex.V1)
_STRAY_APOSTROPHE = regex.compile(r"(?<!\w)'|'(?!\w)")

_moses_cache: dict = {}


def _moses(lang: str):
    """One MosesPunctNormalizer per language (building one compiles nothing,
    but creating it per line would still cost an object and list copies)."""
    normalizer = _moses_cache.get(lang)
    if normalizer is None:
        from sacremoses import MosesPunctNormalizer

        normalizer = _moses_cache[lang] = MosesPunctNormalizer(lang=lang)
    return normalizer


def _collapse(text: str) -> str:
    # str.split() splits on every Unicode space, including a leftover NBSP.
    return " ".join(text.split())


def true_case(text: str, lang: str) -> str:
    """The ``tc`` form: Moses punctuation normalisation plus space clean-up."""
    text = text.translate(_PRE_TABLE)
    if not text.strip():
        return ""
    return _collapse(_moses(lang).normalize(text))


def _drop_tag(match: re.Match) -> str:
    # "(Applause)", "(Lachen)", "(Music ends)", "（掌声）" are tags; a
    # lowercase aside such as "(and still am)" is speech and stays.
    inner = match.group(1).lstrip()
    first = inner[:1]
    if first.isalpha() and not first.islower():
        return " "
    return match.group(0)


def remove_tags(text: str) -> str:
    """Remove non-verbal tags like ``(Applause)`` and music signs (♪ ♫).

    A tag is a parenthesised span without nested parentheses whose first
    character is a letter that is not lowercase (so caseless scripts count).
    Whitespace is collapsed. Used for ``lc.rm`` and, behind a flag, by scoring.
    """
    if "(" in text or "\uff08" in text:
        text = _PAREN.sub(_drop_tag, text)
    text = _MUSIC.sub(" ", text)
    return _collapse(text)


def remove_punctuation(text: str) -> str:
    """Drop punctuation and symbols; keep apostrophes inside words."""
    text = _INNER_DOT_COMMA.sub("", text)
    text = _PUNCT.sub(" ", text)
    if "'" in text:
        text = _STRAY_APOSTROPHE.sub(" ", text)
    return _collapse(text)


def normalize(text: str, lang: str) -> dict[str, str]:
    """Return ``{"tc": ..., "lc": ..., "lc.rm": ...}`` for one line of text."""
    tc = true_case(text, lang)
    lc = tc.lower()
    # Tags are recognised by their capital letter, so look for them in tc.
    rm = remove_punctuation(remove_tags(tc).lower())
    return {"tc": tc, "lc": lc, "lc.rm": rm}


def normalize_lines(texts: list[str], lang: str) -> list[tuple[str, str, str]]:
    """Normalise many lines; returns ``(tc, lc, lc.rm)`` tuples in input order.

    A top-level function so that multiprocessing workers can run it on chunks.
    """
    out = []
    for text in texts:
        cases = normalize(text, lang)
        out.append((cases["tc"], cases["lc"], cases["lc.rm"]))
    return out
