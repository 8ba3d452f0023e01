"""IMTL noise on the MT source (espnet_mtl.iterators.mt_noise).

The noise function: its statistics on a fixed seed (share of noised
sentences, number of inserted blanks), its form (punctuation -> blank, blanks
only before word starts, nothing else changed), identity when off,
reproducibility. Options and tables: errors that name what to fix. End to
end: the real mixed-source iterator of our task, on a tiny fabricated data
dir through ESPnet's dataset and preprocessor, noises MT-only examples and
never ST triples (training or validation), with new noise each epoch and the
same noise with DataLoader workers.
"""

import argparse
import re

import numpy as np
import pytest
import soundfile
import yaml

from espnet_mtl.iterators.mt_noise import (
    MTNoiseError,
    MTSourceNoise,
    from_args,
    is_punctuation,
    noise_source,
    token_tables,
)

# word starts: ▁the ▁cat ▁ (and ▁, which is punctuation); punctuation: ▁, , . !? '
VOCAB = ["<blank>", "<unk>", "▁the", "▁cat", "s", "at", "▁,", ",", ".", "!?", "▁", "'",
         "a,", "<sos/eos>"]
TABLES = token_tables(VOCAB)
IDS = {t: i for i, t in enumerate(VOCAB)}


def test_tables():
    assert TABLES.blank == 0
    assert [t for t, w in zip(VOCAB, TABLES.word_start) if w] == ["▁the", "▁cat", "▁,", "▁"]
    assert [t for t, p in zip(VOCAB, TABLES.punctuation) if p] == ["▁,", ",", ".", "!?", "'"]
    assert is_punctuation("«") and is_punctuation("、") and not is_punctuation("$")


def _sentences(n, length=25, seed=0, min_word_starts=5):
    """Random sentences without blanks, each with punctuation and enough word starts."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, len(VOCAB))
    weights = np.where(TABLES.word_start[ids], 3.0, 1.0)
    out = []
    while len(out) < n:
        s = rng.choice(ids, size=length, p=weights / weights.sum())
        word_starts = TABLES.word_start[s] & ~TABLES.punctuation[s]
        if TABLES.punctuation[s].any() and word_starts.sum() >= min_word_starts:
            out.append(s)
    return out


def _inserted(ids, out):
    """Blanks inserted into `ids` to give `out`; fails unless `out` is `ids` with all
    punctuation -> blank and at most one blank added before each word start."""
    base = np.where(TABLES.punctuation[ids], TABLES.blank, ids)
    p = inserted = 0
    for tok in base:
        if TABLES.word_start[tok] and p < len(out) and out[p] == TABLES.blank:
            p, inserted = p + 1, inserted + 1
        assert p < len(out) and out[p] == tok, (ids, out)
        p += 1
    assert p == len(out), (ids, out)
    return inserted


def _noise(ids, rng, prob, max_rate):
    return noise_source(ids, TABLES.word_start, TABLES.punctuation, TABLES.blank, rng,
                        prob, max_rate)


def test_share_of_noised_sentences_and_their_form():
    rng = np.random.default_rng(0)
    noised = 0
    sentences = _sentences(3000)
    for ids in sentences:
        out = _noise(ids, rng, 0.1, 0.2)
        if np.array_equal(out, ids):  # every sentence has punctuation: unchanged = not noised
            assert out is ids
            continue
        noised += 1
        assert out.dtype == ids.dtype
        assert _inserted(ids, out) <= round(0.2 * len(ids))
        assert not TABLES.punctuation[out].any()
    assert noised / len(sentences) == pytest.approx(0.1, abs=0.02)


def test_inserted_blank_count():
    rng = np.random.default_rng(1)
    counts = [_inserted(ids, _noise(ids, rng, 1.0, 0.2)) for ids in _sentences(2000, seed=1)]
    # round(U(0, 0.2) * 25): 0..5, mean 2.5 = max_rate / 2 * n (>= 5 word starts: no cap)
    assert set(counts) == {0, 1, 2, 3, 4, 5}
    assert np.mean(counts) == pytest.approx(0.2 / 2 * 25, abs=0.15)
    rng = np.random.default_rng(2)
    counts = [_inserted(ids, _noise(ids, rng, 1.0, 0.6)) for ids in _sentences(500, seed=2)]
    assert max(counts) <= 15 and np.mean(counts) > 4


def test_inserted_blanks_are_capped_by_the_word_starts():
    rng = np.random.default_rng(3)
    one = np.array([IDS["▁cat"], IDS["s"], IDS[","], IDS["at"], IDS["s"], IDS["▁,"]] * 4)
    one[6:] = IDS["s"]
    counts = [_inserted(one, _noise(one, rng, 1.0, 1.0)) for _ in range(200)]
    assert max(counts) == 1
    none = np.array([IDS["s"], IDS["at"], IDS["."]])  # no word start: punctuation only
    assert _noise(none, rng, 1.0, 1.0).tolist() == [IDS["s"], IDS["at"], TABLES.blank]
    empty = np.zeros(0, dtype=np.int64)
    assert _noise(empty, rng, 1.0, 1.0).shape == (0,)


def test_prob_zero_is_the_identity_and_draws_nothing():
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    for ids in _sentences(50):
        assert _noise(ids, rng, 0.0, 0.2) is ids
    assert rng.bit_generator.state == state


def test_reproducible_for_a_seed():
    def run(seed):
        rng = np.random.default_rng(seed)
        return [_noise(ids, rng, 0.5, 0.2).tolist() for ids in _sentences(200)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_a_token_list_without_blank_is_refused(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("<unk>\n▁a\n,\n<sos/eos>\n")
    with pytest.raises(MTNoiseError, match=rf"--src_token_list {re.escape(str(path))} has "
                                           r"no '<blank>'.*start with '<blank>'"):
        token_tables(path)
    with pytest.raises(MTNoiseError, match=r"--src_token_list \(4 tokens: <unk>, ▁a"):
        token_tables(["<unk>", "▁a", ",", "<sos/eos>"])
    path.write_text("<blank>\n<unk>\n▁a\n,\n<sos/eos>\n")
    assert token_tables(path).punctuation.tolist() == [False, False, False, True, False]


# ------------------------------------------------------------------ options, wrapper

def _args(**kw):
    return argparse.Namespace(**{"mt_source_noise_prob": 0.5, "mt_source_noise_max_rate": 0.2,
                                 "src_token_list": VOCAB, "seed": 0, **kw})


@pytest.mark.parametrize("option,value", [
    ("mt_source_noise_prob", 1.5), ("mt_source_noise_prob", -0.1),
    ("mt_source_noise_prob", "often"), ("mt_source_noise_max_rate", 2.0),
    ("mt_source_noise_max_rate", float("nan")),
])
def test_bad_option_values(option, value):
    with pytest.raises(MTNoiseError, match=rf"--{option} must be a number in \[0, 1\]"):
        from_args(_args(**{option: value}), ["mt"])


def test_options_without_mt_data_or_tokens_are_refused():
    assert from_args(_args(mt_source_noise_prob=0.0), []) is None  # off: nothing to check
    with pytest.raises(MTNoiseError, match="--mt_source_noise_prob 0.5 noises the source of "
                                           "MT-only examples, but there are none"):
        from_args(_args(), ["asr"])
    with pytest.raises(MTNoiseError, match="needs --src_token_list"):
        from_args(_args(src_token_list=None), ["mt"])
    noise = from_args(_args(mt_source_noise_prob=1, seed=3), ["mt", "asr"])
    assert (noise.prob, noise.max_rate, noise.seed) == (1.0, 0.2, 3)


def _tokenize(uid, data):
    """Stand-in for ESPnet's preprocessor: whitespace pieces -> ids."""
    return {**data, "src_text": np.array([IDS[t] for t in data["src_text"].split()])}


SENTENCE = "▁the ▁cat s , ▁the ▁cat at ▁ s ▁the ▁cat ▁, ▁cat s . ▁the ▁cat s !?"


def test_wrapper_noise_follows_seed_epoch_and_uid():
    noise = MTSourceNoise(_tokenize, TABLES, prob=1.0, max_rate=0.5, seed=0)

    def draw(uid, epoch=0):
        noise.epoch = epoch
        data = noise(uid, {"src_text": SENTENCE, "text": np.array([5, 6])})
        assert data["text"].tolist() == [5, 6]
        _inserted(_tokenize(uid, {"src_text": SENTENCE})["src_text"], data["src_text"])
        return data["src_text"].tolist()

    uids = [f"wmt-{i:04d}" for i in range(30)]
    epoch0 = [draw(u) for u in uids]
    assert [draw(u) for u in uids] == epoch0  # a function of (seed, epoch, uid) ...
    assert [draw(u) for u in reversed(uids)] == epoch0[::-1]  # ... not of the order
    assert len({tuple(d) for d in epoch0}) > 1
    assert [draw(u, epoch=1) for u in uids] != epoch0
    noise.seed = 1
    assert [draw(u) for u in uids] != epoch0
    with pytest.raises(MTNoiseError, match="not token ids.*--src_token_type"):
        MTSourceNoise(None, TABLES, 1.0, 0.2, 0)("u1", {"src_text": "a b"})


# ------------------------------------------------------------------ end to end

SRC = ["▁the ▁cat s , ▁the at .", "▁cat ▁, ▁the s !?", "▁the ▁cat ' s ▁cat .",
       "▁cat at , ▁ s ▁the ▁cat .", "▁the , ▁cat", "▁cat s ▁the ▁cat ▁the !?",
       "▁the ▁ , ▁cat at s .", "▁cat , ▁the"]
TGT = ["▁the ▁cat", "▁cat", "▁the s", "▁cat at"]


def _write(d, name, n, speech):
    d = d / name
    d.mkdir()
    rows = {k: [] for k in ("wav.scp", "speech_shape", "text", "text_shape.word", "src_text",
                            "src_text_shape.word")}
    for i in range(n):
        uid, src, tgt = f"{name}{i:02d}", SRC[i % len(SRC)], TGT[i % len(TGT)]
        if speech:
            samples = 1600 + 160 * i
            soundfile.write(d / f"{uid}.wav", np.full(samples, 0.01, np.float32), 16000)
            rows["wav.scp"].append(f"{uid} {d / uid}.wav")
            rows["speech_shape"].append(f"{uid} {samples}")
        rows["text"].append(f"{uid} {tgt}")
        rows["text_shape.word"].append(f"{uid} {len(tgt.split())},{len(VOCAB)}")
        rows["src_text"].append(f"{uid} {src}")
        rows["src_text_shape.word"].append(f"{uid} {len(src.split())},{len(VOCAB)}")
    for fname, lines in rows.items():
        if lines:
            (d / fname).write_text("\n".join(lines) + "\n")
    return d


@pytest.fixture(scope="module")
def noise_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("mt_noise")
    (d / "tokens.txt").write_text("\n".join(VOCAB) + "\n")
    conf = {"model": "mtl_st", "model_conf": {"mt_weight": 0.5}, "batch_type": "folded",
            "batch_size": 12, "num_workers": 0, "seed": 0}
    (d / "conf.yaml").write_text(yaml.safe_dump(conf))
    return d, _write(d, "st", 4, speech=True), _write(d, "mt", 8, speech=False)


def _task_args(d, st, mt, *extra):
    """Our task's parsed options, as test_mixed_source's training command gives them,
    with SentencePiece-like pieces written out (word tokenizer: no model to train)."""
    from espnet_mtl.tasks.st import MTLSTTask

    argv = ["--config", str(d / "conf.yaml"), "--token_list", str(d / "tokens.txt"),
            "--src_token_list", str(d / "tokens.txt"), "--token_type", "word",
            "--src_token_type", "word", "--ngpu", "0", "--fold_length", "80000",
            "--fold_length", "150", "--fold_length", "150", "--mixed_source_ratio", "st=1,mt=2"]
    for split in ("train", "valid"):
        for f, name, kind in (("wav.scp", "speech", "sound"), ("text", "text", "text"),
                              ("src_text", "src_text", "text")):
            argv += [f"--{split}_data_path_and_name_and_type", f"{st}/{f},{name},{kind}"]
        for f in ("speech_shape", "text_shape.word", "src_text_shape.word"):
            argv += [f"--{split}_shape_file", f"{st}/{f}"]
    if mt is not None:
        argv += ["--train_mt_data_path_and_name_and_type", f"{mt}/src_text,src_text,text",
                 "--train_mt_data_path_and_name_and_type", f"{mt}/text,text,text",
                 "--train_mt_shape_file", f"{mt}/src_text_shape.word",
                 "--train_mt_shape_file", f"{mt}/text_shape.word"]
    return MTLSTTask, MTLSTTask.get_parser().parse_args(argv + list(extra))


def _epoch(task, args, mode="train", epoch=1):
    """uid -> src_text ids of one epoch of the task's `mode` iterator."""
    from espnet2.train.distributed_utils import DistributedOption

    options = task.build_iter_options(args, DistributedOption(), mode)
    factory = task.build_sequence_iter_factory(args, options, mode)
    out = {}
    for uids, batch in factory.build_iter(epoch):
        for uid, row, n in zip(uids, batch["src_text"], batch["src_text_lengths"]):
            out[uid] = row[:int(n)].tolist()
    return out


def _clean(i):
    return [IDS[t] for t in SRC[i % len(SRC)].split()]


def test_iterator_noises_mt_only_examples(noise_data):
    d, st, mt = noise_data
    task, args = _task_args(d, st, mt, "--mt_source_noise_prob", "1.0",
                            "--mt_source_noise_max_rate", "1.0")
    epoch1 = _epoch(task, args)
    assert sorted(epoch1) == [f"mt/mt{i:02d}" for i in range(8)] + [f"st{i:02d}" for i in range(4)]
    inserted = 0
    for uid, ids in epoch1.items():
        clean = _clean(int(uid[-2:]))
        if uid.startswith("mt/"):  # every sentence has punctuation: all changed
            assert TABLES.blank in ids and ids != clean
            inserted += _inserted(np.array(clean), np.array(ids))
        else:
            assert ids == clean, uid  # ST triples: never noised
    assert inserted > 0
    assert _epoch(task, args) == epoch1  # reproducible
    epoch2 = _epoch(task, args, epoch=2)
    assert {u: v for u, v in epoch2.items() if u.startswith("st")} == \
        {u: v for u, v in epoch1.items() if u.startswith("st")}
    assert epoch2 != epoch1  # new noise every epoch
    # DataLoader workers (copies of the dataset) draw the same noise
    args.num_workers = 2
    assert _epoch(task, args) == epoch1
    # validation is ST only and never noised
    assert _epoch(task, args, "valid") == {f"st{i:02d}": _clean(i) for i in range(4)}


def test_iterator_without_noise_is_unchanged(noise_data):
    d, st, mt = noise_data
    task, args = _task_args(d, st, mt)
    assert args.mt_source_noise_prob == 0.0 and args.mt_source_noise_max_rate == 0.2
    assert all(ids == _clean(int(uid[-2:])) for uid, ids in _epoch(task, args).items())


def test_iterator_refuses_noise_without_mt_data(noise_data):
    from espnet2.train.distributed_utils import DistributedOption

    d, st, _ = noise_data
    task, args = _task_args(d, st, None, "--mt_source_noise_prob", "0.1")
    options = task.build_iter_options(args, DistributedOption(), "train")
    with pytest.raises(MTNoiseError, match="but there are none: add MT-only data "
                                           r"\(--train_mt_data_path_and_name_and_type\)"):
        task.build_sequence_iter_factory(args, options, "train")
    task, args = _task_args(d, st, None, "--mt_source_noise_max_rate", "3")
    with pytest.raises(MTNoiseError, match=r"--mt_source_noise_max_rate must be .* got 3.0"):
        task.build_sequence_iter_factory(args, options, "train")
