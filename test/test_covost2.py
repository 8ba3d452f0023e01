"""CoVoST 2 reader on tiny fabricated Common Voice v4 + CoVoST 2 trees."""

import hashlib
import logging
import math
import os

import pytest

from espnet_mtl.corpora.covost2 import (
    EN_XX_TARGETS, PAIRS, XX_EN_SOURCES, CoVoST2Error, Utterance, check_pair, read_covost2,
    read_covost2_with_stats,
)
from espnet_mtl.corpora.writer import STRecord

# Real headers: Common Voice v4 validated.tsv, and the extracted covost_v2.<src>_<tgt>.tsv.
CV_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
COVOST_HEADER = ["path", "sentence", "translation", "client_id", "split"]


def spk(name):
    """A client_id as Common Voice writes it: 128 hex digits."""
    return hashlib.sha512(name.encode()).hexdigest()


def clip(n, lang="de"):
    return f"common_voice_{lang}_{n}.mp3"


def write_tsv(path, header, rows):
    lines = ["\t".join(header)] + ["\t".join(str(r.get(c, "")) for c in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_corpus(tmp_path, rows, src="de", tgt="en", *, cv_rows=None, clips=None, empty_clips=(),
                cv_header=CV_HEADER, covost_header=COVOST_HEADER):
    """Write <root>/<src>/{clips/,validated.tsv,covost_v2.<src>_<tgt>.tsv}; returns root.

    `rows` are dicts with path, client_id, sentence, translation, split; they
    fill both tables unless `cv_rows` gives validated.tsv its own rows.
    Clips are tiny non-empty placeholders (the reader never decodes them).
    """
    root = tmp_path / "cv4"
    lang = root / src
    (lang / "clips").mkdir(parents=True, exist_ok=True)
    if cv_rows is None:
        cv_rows = [dict(r, up_votes=2, down_votes=0) for r in rows]
    write_tsv(lang / "validated.tsv", cv_header, cv_rows)
    write_tsv(lang / f"covost_v2.{src}_{tgt}.tsv", covost_header, rows)
    if clips is None:
        clips = {r["path"] for r in cv_rows}
    for name in clips:
        (lang / "clips" / name).write_bytes(b"ID3\x04")
    for name in empty_clips:
        (lang / "clips" / name).write_bytes(b"")
    return root


def row(n, speaker, sentence, translation, split="train", lang="de"):
    return {"path": clip(n, lang), "client_id": spk(speaker), "sentence": sentence,
            "translation": translation, "split": split}


@pytest.fixture
def corpus(tmp_path):
    rows = [
        row(30, "b", "Guten Morgen.", "Good morning."),
        row(4, "a", "Wie geht's?", "How are you?", split="train_covost"),
        row(100, "a", "Danke.", "Thanks."),
        row(7, "c", "Tschüss!", "Bye!", split="dev"),
        row(8, "c", "Bis bald.", "See you soon.", split="test"),
        row(9, "c", "Nicht hier.", "Not here.", split="excluded"),
    ]
    return make_corpus(tmp_path, rows)


# ---- happy path ---------------------------------------------------------------

def test_read_ids_order_and_fields(corpus, caplog):
    with caplog.at_level(logging.INFO):
        utts, stats = read_covost2_with_stats(corpus, "de", "en", "train")
    ids = [u.utt_id for u in utts]
    assert ids == sorted(ids, key=str.encode) and len(set(ids)) == len(ids) == 3
    # train = labels train + train_covost; ids are <client_id>-<clip without .mp3>
    assert ids == sorted([f"{spk('b')}-common_voice_de_30", f"{spk('a')}-common_voice_de_4",
                          f"{spk('a')}-common_voice_de_100"])
    u = next(u for u in utts if u.utt_id.endswith("_4"))
    assert isinstance(u, Utterance)
    assert u.speaker == spk("a") and u.utt_id.startswith(u.speaker + "-")
    assert u.recording_id == u.utt_id
    assert u.wav_path == str(corpus / "de" / "clips" / "common_voice_de_4.mp3")
    assert os.path.isabs(u.wav_path)
    assert (u.start, u.end) == (0.0, math.inf)
    assert (u.src_text, u.tgt_text) == ("Wie geht's?", "How are you?")
    for name in STRecord.__annotations__:  # what the data-dir writer reads
        assert hasattr(u, name)
    assert (stats.rows, stats.kept, sum(stats.dropped.values())) == (3, 3, 0)
    assert stats.ignored_labels == {"excluded": 1}
    assert "kept 3 of 3 rows" in caplog.text and "excluded=1" in caplog.text

    dev = read_covost2(corpus, "de", "en", "dev")
    test = read_covost2(corpus, "de", "en", "test")
    assert [u.tgt_text for u in dev] == ["Bye!"] and [u.tgt_text for u in test] == ["See you soon."]


def test_separate_covost_dir_and_region_codes(tmp_path):
    rows = [row(1, "a", "Hello.", "你好。", lang="en"), row(2, "b", "Yes.", "是。", lang="en")]
    root = make_corpus(tmp_path, rows, src="en", tgt="zh-CN")
    other = tmp_path / "covost_tables"
    other.mkdir()
    (root / "en" / "covost_v2.en_zh-CN.tsv").rename(other / "covost_v2.en_zh-CN.tsv")
    with pytest.raises(CoVoST2Error, match=r"covost_v2\.en_zh-CN\.tsv"):
        read_covost2(root, "en", "zh-CN", "train")
    utts = read_covost2(root, "en", "zh-CN", "train", covost_dir=other)
    assert sorted(u.tgt_text for u in utts) == sorted(["你好。", "是。"])

    rows = [row(1, "a", "Hej.", "Hi.", lang="sv-SE")]
    root = make_corpus(tmp_path / "sv", rows, src="sv-SE", tgt="en")
    assert [u.utt_id for u in read_covost2(root, "sv-SE", "en", "train")] == [f"{spk('a')}-common_voice_sv-SE_1"]


# ---- language pairs and arguments -------------------------------------------------

def test_all_official_pairs_accepted():
    assert len(XX_EN_SOURCES) == 21 and len(EN_XX_TARGETS) == 15 and len(PAIRS) == 36
    for src, tgt in PAIRS:
        check_pair(src, tgt)


def test_bad_pair_lists_valid_pairs(corpus):
    for src, tgt in (("en", "fr"), ("fr", "de"), ("en", "en"), ("xx", "en")):
        with pytest.raises(CoVoST2Error) as e:
            read_covost2(corpus, src, tgt, "train")
        msg = str(e.value)
        assert f"no direction {src}->{tgt}" in msg
        assert "X->en for X in fr, de, es, ca" in msg and "en->X for X in de, ca, zh-CN" in msg
    with pytest.raises(CoVoST2Error, match="did you mean zh-CN for zh"):
        check_pair("zh", "en")
    with pytest.raises(CoVoST2Error, match="did you mean sv-SE for sv-se"):
        check_pair("en", "sv-se")


def test_unknown_split(corpus):
    with pytest.raises(CoVoST2Error, match="unknown split 'tst-COMMON'; CoVoST 2 splits: train, dev, test"):
        read_covost2(corpus, "de", "en", "tst-COMMON")


# ---- traps ---------------------------------------------------------------------

def test_quotes_are_literal(tmp_path):
    # With csv quoting on, the first field would run on into the following rows.
    rows = [row(1, "a", '"Ja," sagte er.', '"Yes," he said.'),
            row(2, "a", "Ein \"Zitat", "A 'quote"),
            row(3, "b", "Normal.", "Normal.")]
    utts = read_covost2(make_corpus(tmp_path, rows), "de", "en", "train")
    texts = {u.utt_id.rsplit("_", 1)[1]: (u.src_text, u.tgt_text) for u in utts}
    assert texts == {"1": ('"Ja," sagte er.', '"Yes," he said.'), "2": ('Ein "Zitat', "A 'quote"),
                     "3": ("Normal.", "Normal.")}


def test_na_is_text(tmp_path):
    rows = [row(1, "a", "NA", "NA"), row(2, "a", "null", "N/A"), row(3, "b", "nan", "None")]
    utts = read_covost2(make_corpus(tmp_path, rows), "de", "en", "train")
    assert sorted((u.src_text, u.tgt_text) for u in utts) == [("NA", "NA"), ("nan", "None"), ("null", "N/A")]


def test_columns_by_name_extra_and_reordered(tmp_path):
    # A later Common Voice release: more columns, another order; a minimal CoVoST table.
    cv_header = ["path", "locale", "sentence", "segment", "gender", "client_id", "age", "up_votes",
                 "down_votes", "accent"]
    rows = [row(1, "a", "Eins.", "One."), row(2, "b", "Zwei.", "Two.")]
    cv_rows = [dict(r, locale="de", segment="") for r in rows]
    root = make_corpus(tmp_path, rows, cv_rows=cv_rows, cv_header=cv_header,
                       covost_header=["split", "translation", "path"])
    utts = read_covost2(root, "de", "en", "train")
    assert [(u.speaker, u.src_text, u.tgt_text) for u in utts] == sorted(
        [(spk("a"), "Eins.", "One."), (spk("b"), "Zwei.", "Two.")])


def test_missing_columns(tmp_path):
    rows = [row(1, "a", "Eins.", "One.")]
    root = make_corpus(tmp_path, rows, covost_header=["path", "sentence", "client_id", "split"])
    with pytest.raises(CoVoST2Error) as e:
        read_covost2(root, "de", "en", "train")
    msg = str(e.value)
    assert "covost_v2.de_en.tsv:1: header lacks column(s) translation" in msg
    assert "including path, translation, split" in msg

    root = make_corpus(tmp_path / "b", rows, cv_header=["path", "sentence", "up_votes"])
    with pytest.raises(CoVoST2Error, match=r"validated\.tsv:1: header lacks column\(s\) client_id; "
                                           r"expected tab-separated columns including path, client_id, sentence"):
        read_covost2(root, "de", "en", "train")


def test_field_count_mismatch_names_line(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei\tmit Tab.", "Two."), row(3, "a", "Drei.", "Three.")]
    root = make_corpus(tmp_path, rows, cv_rows=[dict(r) for r in rows[:1]] + [
        {"client_id": spk("a"), "path": clip(2), "sentence": "Zwei."}, dict(rows[2])])
    with pytest.raises(CoVoST2Error, match=r"covost_v2\.de_en\.tsv:3: 6 tab-separated fields, but the header has 5"):
        read_covost2(root, "de", "en", "train")


def test_empty_translations_dropped_and_counted(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei.", ""), row(3, "b", "Drei.", "   "),
            row(4, "b", " ", "Four.")]
    utts, stats = read_covost2_with_stats(make_corpus(tmp_path, rows), "de", "en", "train")
    assert [u.tgt_text for u in utts] == ["One."]
    assert stats.dropped["empty_translation"] == 2 and stats.dropped["empty_transcript"] == 1
    assert (stats.rows, stats.kept) == (4, 1)


def test_remove_translations_dropped_and_counted(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei.", "REMOVE"), row(3, "b", "Drei.", "Three REMOVE.")]
    utts, stats = read_covost2_with_stats(make_corpus(tmp_path, rows), "de", "en", "train")
    assert [u.tgt_text for u in utts] == ["One."] and stats.dropped["remove_translation"] == 2
    assert "remove_translation=2" in stats.summary()


def test_clip_not_in_validated_dropped(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei.", "Two.")]
    root = make_corpus(tmp_path, rows, cv_rows=[dict(rows[0])], clips={clip(1), clip(2)})
    utts, stats = read_covost2_with_stats(root, "de", "en", "train")
    assert [u.src_text for u in utts] == ["Eins."] and stats.dropped["not_in_validated"] == 1


def test_no_clip_in_validated_is_error(tmp_path):
    rows = [row(1, "a", "Eins.", "One.")]
    root = make_corpus(tmp_path, rows, cv_rows=[row(77, "a", "Anders.", "-")])
    with pytest.raises(CoVoST2Error, match=r"none of the 1 train clips .* is listed in .*validated\.tsv"):
        read_covost2(root, "de", "en", "train")


def test_duplicate_rows_dropped_and_counted(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(1, "a", "Eins.", "One again."), row(2, "b", "Zwei.", "Two.")]
    cv_rows = [dict(rows[0]), dict(rows[0]), dict(rows[2])]  # an identical repeat in validated.tsv too
    utts, stats = read_covost2_with_stats(make_corpus(tmp_path, rows, cv_rows=cv_rows), "de", "en", "train")
    assert sorted(u.tgt_text for u in utts) == ["One.", "Two."]  # the first row wins
    assert stats.dropped["duplicate"] == 1 and (stats.rows, stats.kept) == (3, 2)
    assert stats.validated_duplicates == 1


def test_clip_in_two_splits_is_error(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(1, "a", "Eins.", "One.", split="test")]
    with pytest.raises(CoVoST2Error, match=r"covost_v2\.de_en\.tsv:3: clip common_voice_de_1\.mp3 is in split "
                                           r"test, but line 2 already put it in split train"):
        read_covost2(make_corpus(tmp_path, rows), "de", "en", "train")


def test_conflicting_validated_rows_is_error(tmp_path):
    rows = [row(1, "a", "Eins.", "One.")]
    cv_rows = [dict(rows[0]), dict(rows[0], sentence="Etwas anderes.")]
    with pytest.raises(CoVoST2Error, match=r"validated\.tsv:3: clip common_voice_de_1\.mp3 is listed again "
                                           r"with a different speaker or sentence than at line 2"):
        read_covost2(make_corpus(tmp_path, rows, cv_rows=cv_rows), "de", "en", "train")


def test_one_sentence_many_speakers_all_kept(tmp_path):
    rows = [row(1, "a", "Hallo Welt.", "Hello world."), row(2, "b", "Hallo Welt.", "Hello world."),
            row(3, "c", "Hallo Welt.", "Hello world."), row(4, "a", "Hallo Welt.", "Hello world.")]
    utts, stats = read_covost2_with_stats(make_corpus(tmp_path, rows), "de", "en", "train")
    assert len(utts) == 4 and len({u.utt_id for u in utts}) == 4 and stats.dropped["duplicate"] == 0
    assert sorted(u.speaker for u in utts) == sorted([spk("a"), spk("a"), spk("b"), spk("c")])


def test_missing_clip_is_error_naming_clip_and_line(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei.", "Two."), row(3, "a", "Drei.", "Three.")]
    root = make_corpus(tmp_path, rows, clips={clip(1), clip(3)})
    with pytest.raises(CoVoST2Error) as e:
        read_covost2(root, "de", "en", "train")
    msg = str(e.value)
    assert "covost_v2.de_en.tsv:3: clip common_voice_de_2.mp3 (validated.tsv line 3) not found" in msg
    assert f"expected {root / 'de' / 'clips' / clip(2)}" in msg and "missing_clips='drop'" in msg
    utts, stats = read_covost2_with_stats(root, "de", "en", "train", missing_clips="drop")
    assert [u.src_text for u in utts] == ["Eins.", "Drei."] and stats.dropped["missing_clip"] == 1


def test_empty_clips_dropped_and_counted(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei.", "Two.")]
    root = make_corpus(tmp_path, rows, clips={clip(1)}, empty_clips={clip(2)})
    utts, stats = read_covost2_with_stats(root, "de", "en", "train")
    assert [u.src_text for u in utts] == ["Eins."] and stats.dropped["empty_clip"] == 1
    assert len(read_covost2(root, "de", "en", "train", check_empty_clips=False)) == 2


def test_other_split_labels_ignored_and_missing_split_is_error(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "a", "Zwei.", "Two.", split="other")]
    root = make_corpus(tmp_path, rows)
    utts, stats = read_covost2_with_stats(root, "de", "en", "train")
    assert len(utts) == 1 and stats.ignored_labels == {"other": 1} and stats.rows == 1
    with pytest.raises(CoVoST2Error, match=r"no rows labelled dev in column 'split' \(labels found: other=1, train=1\)"):
        read_covost2(root, "de", "en", "dev")


def test_bom_crlf_and_blank_lines(tmp_path):
    rows = [row(1, "a", "Eins.", "One."), row(2, "b", "Zwei.", "Two.")]
    root = make_corpus(tmp_path, rows)
    for name in ("validated.tsv", "covost_v2.de_en.tsv"):
        p = root / "de" / name
        text = p.read_text(encoding="utf-8")
        p.write_bytes(b"\xef\xbb\xbf" + (text + "\n").replace("\n", "\r\n").encode())
    utts = read_covost2(root, "de", "en", "train")
    assert sorted((u.src_text, u.tgt_text) for u in utts) == [("Eins.", "One."), ("Zwei.", "Two.")]


def test_bad_client_id_is_error(tmp_path):
    rows = [dict(row(1, "a", "Eins.", "One."), client_id="")]
    with pytest.raises(CoVoST2Error, match=r"validated\.tsv:2: client_id '' cannot be a speaker id"):
        read_covost2(make_corpus(tmp_path, rows), "de", "en", "train")


# ---- missing files ---------------------------------------------------------------

def test_missing_root(tmp_path):
    with pytest.raises(CoVoST2Error, match=f"expected a directory at {tmp_path / 'nope'}"):
        read_covost2(tmp_path / "nope", "de", "en", "train")


def test_missing_language_dir_lists_existing(corpus):
    with pytest.raises(CoVoST2Error) as e:
        read_covost2(corpus, "fr", "en", "train")
    assert f"expected {corpus / 'fr'} with clips/ and validated.tsv" in str(e.value)
    assert "directories under" in str(e.value) and "de" in str(e.value)
    with pytest.raises(CoVoST2Error, match="looks like one language's directory"):
        read_covost2(corpus / "de", "de", "en", "train")


def test_missing_validated_and_clips(corpus):
    os.rename(corpus / "de" / "clips", corpus / "de" / "clips_")
    with pytest.raises(CoVoST2Error, match=f"clips directory not found: expected {corpus / 'de' / 'clips'}"):
        read_covost2(corpus, "de", "en", "train")
    (corpus / "de" / "validated.tsv").unlink()
    with pytest.raises(CoVoST2Error, match=f"validated.tsv not found: expected {corpus / 'de' / 'validated.tsv'}"):
        read_covost2(corpus, "de", "en", "train")


def test_missing_covost_table(corpus):
    tsv = corpus / "de" / "covost_v2.de_en.tsv"
    tsv.rename(tsv.with_name("covost_v2.de_en.tsv.tar.gz"))  # downloaded, not extracted
    with pytest.raises(CoVoST2Error, match=r"expected .*covost_v2\.de_en\.tsv; .*tar\.gz is there, extract it"):
        read_covost2(corpus, "de", "en", "train")
    tsv.with_name("covost_v2.de_en.tsv.tar.gz").unlink()
    with pytest.raises(CoVoST2Error, match=r"CoVoST 2 table not found: expected .*covost_v2\.de_en\.tsv"):
        read_covost2(corpus, "de", "en", "train")
