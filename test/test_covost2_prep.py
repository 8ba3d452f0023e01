"""CoVoST 2 stage 1 (prepare_covost2) and stage 3 (mp3 dump) on a tiny fabricated corpus.

The clips are real 48 kHz mono MP3s written by soundfile (libsndfile >= 1.1
encodes and decodes MP3), so the whole path clip -> data dir -> 16 kHz dump
is exercised without any external tool.
"""

import hashlib
import logging
import math

import numpy as np
import pytest
import soundfile as sf

from espnet_mtl.prep.audio_dump import AudioError, dump_audio
from espnet_mtl.bin import prepare_covost2
from espnet_mtl.corpora.covost2 import Utterance
from espnet_mtl.corpora.must_c import Utterance as MustCUtterance
from espnet_mtl.corpora.writer import DataDirError, write_st_data_dir
from espnet_mtl.prep.datadir import validate_data_dir
from espnet_mtl.fileio import read_table

CV_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
COVOST_HEADER = ["path", "sentence", "translation", "client_id", "split"]
CLIP_FS = 48000
CLIP_SAMPLES = 14400  # 0.3 s
FS = 16000


def spk(name):
    return hashlib.sha512(name.encode()).hexdigest()


def write_tsv(path, header, rows):
    lines = ["\t".join(header)] + ["\t".join(str(r.get(c, "")) for c in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_clip(path, freq):
    t = np.arange(CLIP_SAMPLES) / CLIP_FS
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), CLIP_FS, format="MP3")


ROWS = [
    # n, speaker, sentence, translation, split, tone (Hz)
    (30, "b", "Guten Morgen.", "Good morning.", "train", 440),
    (4, "a", "Wie geht's?", "How are you?", "train_covost", 550),
    (100, "a", "Guten Morgen.", "Good morning!", "train", 660),  # same sentence, other speaker
    (5, "a", "Weg damit.", "REMOVE", "train", 770),              # dropped: remove_translation
    (7, "c", "Tschüss!", "Bye!", "dev", 880),
    (8, "c", "Bis bald.", "See you soon.", "test", 990),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("covost") / "cv4"
    lang = root / "de"
    (lang / "clips").mkdir(parents=True)
    rows = []
    for n, who, sentence, translation, split, freq in ROWS:
        name = f"common_voice_de_{n}.mp3"
        write_clip(lang / "clips" / name, freq)
        rows.append({"path": name, "client_id": spk(who), "sentence": sentence,
                     "translation": translation, "split": split, "up_votes": 2, "down_votes": 0})
    # A 0-byte clip the reader drops (and counts) before it reaches the data dir.
    (lang / "clips" / "common_voice_de_9.mp3").write_bytes(b"")
    rows.append({"path": "common_voice_de_9.mp3", "client_id": spk("b"), "sentence": "Leer.",
                 "translation": "Empty.", "split": "train"})
    write_tsv(lang / "validated.tsv", CV_HEADER, rows)
    write_tsv(lang / "covost_v2.de_en.tsv", COVOST_HEADER, rows)
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "data"
    rc = prepare_covost2.main(["--root", str(corpus), "--src_lang", "de", "--tgt_lang", "en",
                               "--out", str(out)])
    assert rc == 0
    return out


def utt(n, who):
    return f"{spk(who)}-common_voice_de_{n}"


def test_cli_writes_data_dirs_without_segments(prepared, corpus):
    assert sorted(p.name for p in prepared.iterdir()) == ["dev.de-en", "test.de-en", "train.de-en"]
    for d in prepared.iterdir():
        counts = validate_data_dir(d)
        assert counts["warnings"] == 0
        assert not (d / "segments").exists()
        ids = list(read_table(d / "utt2spk"))
        assert ids == sorted(ids, key=lambda s: s.encode("utf-8"))
        assert list(read_table(d / "wav.scp")) == ids  # wav.scp keyed by utterance
        for name in ("text", *(f"text.{c}.{lang}" for c in ("tc", "lc", "lc.rm") for lang in ("de", "en"))):
            assert list(read_table(d / name)) == ids, name
    train = prepared / "train.de-en"
    assert list(read_table(train / "utt2spk")) == sorted(
        [utt(4, "a"), utt(100, "a"), utt(30, "b")], key=lambda s: s.encode())
    wav = read_table(train / "wav.scp")
    assert wav[utt(30, "b")] == str(corpus / "de" / "clips" / "common_voice_de_30.mp3")
    assert read_table(train / "text")[utt(100, "a")] == "Good morning!"
    assert read_table(train / "text.lc.rm.en")[utt(100, "a")] == "good morning"
    assert read_table(train / "text.tc.de")[utt(4, "a")] == "Wie geht's?"
    assert read_table(prepared / "dev.de-en" / "text.lc.en") == {utt(7, "c"): "bye!"}


def test_cli_logs_drop_counts(corpus, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        rc = prepare_covost2.main(["--root", str(corpus), "--src_lang", "de", "--tgt_lang", "en",
                                   "--splits", "train", "--out", str(tmp_path / "data")])
    assert rc == 0
    assert "kept 3 of 5 rows" in caplog.text
    assert "remove_translation=1" in caplog.text and "empty_clip=1" in caplog.text


def test_cli_bad_direction(corpus, tmp_path, capsys):
    rc = prepare_covost2.main(["--root", str(corpus), "--src_lang", "de", "--tgt_lang", "fr",
                               "--out", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("prepare_covost2: error: CoVoST 2 has no direction de->fr")
    assert "Traceback" not in err and not (tmp_path / "data").exists()


def test_dump_mp3_to_16k_mono(prepared, tmp_path):
    stats = dump_audio(prepared / "train.de-en", tmp_path / "dump", audio_format="flac", fs=FS)
    assert stats["utterances"] == 3
    out = tmp_path / "dump"
    lengths = read_table(out / "utt2num_samples")
    assert set(lengths.values()) == {str(CLIP_SAMPLES * FS // CLIP_FS)}  # 0.3 s at 16 kHz
    assert read_table(out / "utt2dur")[utt(30, "b")] == "0.300"
    audio, fs = sf.read(read_table(out / "wav.scp")[utt(30, "b")], dtype="float32")
    assert fs == FS and audio.ndim == 1 and len(audio) == 4800
    # The decoded tone survives mp3 + resampling: 440 Hz dominates.
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * FS / len(audio) - 440) < 10
    assert validate_data_dir(out)["utterances"] == 3
    assert read_table(out / "text.lc.rm.en") == read_table(prepared / "train.de-en" / "text.lc.rm.en")


def test_dump_fbank_keeps_source_without_segments(prepared, tmp_path):
    dump_audio(prepared / "dev.de-en", tmp_path / "dump", feats_type="fbank", n_mels=40)
    out = tmp_path / "dump"
    assert read_table(out / "utt2num_frames") == {utt(7, "c"): "28"}  # 0.3 s, 25 ms window, 10 ms shift
    assert read_table(out / "wav.scp") == read_table(prepared / "dev.de-en" / "wav.scp")
    assert not (out / "segments").exists()


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"ID3\x04\x00\x00" + bytes(range(256)) * 8, "not a readable audio file"),
])
def test_dump_bad_mp3_names_utterance(corpus, tmp_path, content, reason):
    clips = tmp_path / "clips"
    clips.mkdir()
    good, bad = clips / "common_voice_de_1.mp3", clips / "common_voice_de_2.mp3"
    write_clip(good, 440)
    bad.write_bytes(content)
    utts = [Utterance(utt(n, "a"), utt(n, "a"), str(p), 0.0, math.inf, spk("a"), "Hallo.", "Hello.")
            for n, p in ((1, good), (2, bad))]
    d = write_st_data_dir(tmp_path / "data", utts, "de", "en")
    with pytest.raises(AudioError) as e:
        dump_audio(d, tmp_path / "dump")
    msg = str(e.value)
    assert msg.startswith(f"utterance {utt(2, 'a')} ({bad}): cannot read audio: {reason}")


# ---- writer: whole-recording utterances --------------------------------------

def _whole(n, rec=None):
    u = utt(n, "a")
    return Utterance(u, rec or u, f"/c/{n}.mp3", 0.0, math.inf, spk("a"), "Ja.", "Yes.")


def test_writer_rejects_mixed_kinds(tmp_path):
    seg = MustCUtterance(spk("a") + "-seg", spk("a") + "-rec", "/r.wav", 0.0, 1.0, spk("a"), "Ja.", "Yes.")
    with pytest.raises(DataDirError, match=f"utterance {spk('a')}-seg is a segment .*unlike utterance "
                                           f"{utt(1, 'a')}"):
        write_st_data_dir(tmp_path / "d", [_whole(1), seg], "de", "en")
    with pytest.raises(DataDirError, match=f"utterance {utt(1, 'a')} is a whole recording"):
        write_st_data_dir(tmp_path / "d", [seg, _whole(1)], "de", "en")
    assert not (tmp_path / "d").exists()


def test_writer_whole_needs_recording_id_equal_utt_id(tmp_path):
    with pytest.raises(DataDirError, match="recording id must equal the utterance id"):
        write_st_data_dir(tmp_path / "d", [_whole(1, rec="other")], "de", "en")
