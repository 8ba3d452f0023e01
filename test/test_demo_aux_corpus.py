"""The demo's auxiliary data (low-resource setting): MT-only bitext and ASR-only speech
in real layouts, read back through our readers, never containing an ST sentence."""

import pytest

from espnet_mtl.corpora.bitext import read_bitext_with_stats
from espnet_mtl.corpora.librispeech import read_librispeech, read_speaker_genders
from espnet_mtl.demo.aux_corpus import librispeech_transcript, make_aux_corpus, st_sentences

from test_demo_corpus import small_corpus  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def aux(small_corpus, tmp_path_factory):  # noqa: F811
    st_root = small_corpus[0]
    out = tmp_path_factory.mktemp("aux") / "aux"
    summary = make_aux_corpus(out, st_root, tgt_lang="de", n_mt=40, n_asr=12, seed=2)
    return st_root, out, summary


def test_sizes_layouts_and_no_st_sentence(aux):
    st_root, out, summary = aux
    assert not summary["skipped"]
    st = st_sentences(st_root, "de")
    pairs, _ = read_bitext_with_stats(out / "bitext" / "demo_mt.en", out / "bitext" / "demo_mt.de",
                                      "en", "de", "demo_mt")
    assert len(pairs) == 40
    mt_en = {src for _, src, _ in pairs}
    assert not mt_en & st  # no ST sentence (test set included) in the MT text
    utts = read_librispeech(out / "LibriSpeech", ["train-clean-100"])
    assert len(utts) == 12
    st_asr = {librispeech_transcript(s) for s in st}
    assert not {u.text for u in utts} & st_asr  # nor in the ASR transcripts
    assert all(u.utt_id.startswith(u.speaker + "-") for u in utts)
    genders = read_speaker_genders(out / "LibriSpeech" / "SPEAKERS.TXT")
    assert {u.speaker for u in utts} <= set(genders)
    import soundfile

    info = soundfile.info(utts[0].wav_path)
    assert info.samplerate == 16000 and info.channels == 1 and info.frames > 1600


def test_rerun_is_a_noop(aux):
    st_root, out, _ = aux
    again = make_aux_corpus(out, st_root, tgt_lang="de", n_mt=40, n_asr=12, seed=2)
    assert again["skipped"]


def test_missing_st_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="generate the ST corpus first"):
        make_aux_corpus(tmp_path / "aux", tmp_path / "nothing", n_mt=2, n_asr=1)
