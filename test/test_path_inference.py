"""MT-path and ASR-path decoding of an `mtl_st` model through ESPnet's inference."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from espnet_mtl.tasks.st import MTLSTTask

from dry_run import dry_run
from test_mtl_st_model import ALL_ON, ALL_OFF, SRC, TGT, _conf, _write


def _exp(d, model_conf):
    _write(d, _conf(model_conf))
    exp = dry_run(d, d / "conf.yaml", d / "tgt.txt", d / "src.txt")
    model, _ = MTLSTTask.build_model_from_file(exp / "config.yaml", None, "cpu")
    torch.save(model.state_dict(), exp / "model.pth")
    return exp


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    d = tmp_path_factory.mktemp("paths")
    exp = _exp(d, {**ALL_ON, "rdrop_weight": 0.0})
    (d / "src_text").write_text("utt1 x y z\nutt2 w x\n")
    rng = np.random.default_rng(0)
    wavs = []
    for uid in ("utt1", "utt2"):
        soundfile.write(d / f"{uid}.wav", rng.standard_normal(3200).astype(np.float32) * 0.1,
                        16000)
        wavs.append(f"{uid} {d / f'{uid}.wav'}")
    (d / "wav.scp").write_text("\n".join(wavs) + "\n")
    runs = {}
    for path, data, extra in (
        ("mt", f"{d}/src_text,src_text,text",
         ["--mt_train_config", f"{exp}/config.yaml", "--mt_model_file", f"{exp}/model.pth"]),
        ("asr", f"{d}/wav.scp,speech,sound",
         ["--asr_train_config", f"{exp}/config.yaml", "--asr_model_file", f"{exp}/model.pth",
          "--ctc_weight", "0.3"]),
    ):
        out = d / f"out_{path}"
        r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.path_inference", path,
                            "--data_path_and_name_and_type", data, "--output_dir", str(out),
                            "--ngpu", "0", "--beam_size", "2", "--maxlenratio", "0.5", *extra],
                           capture_output=True, text=True)
        runs[path] = (r, out)
    return d, exp, runs


@pytest.mark.parametrize("path,vocab", [("mt", TGT), ("asr", SRC)])
def test_path_decodes_every_utterance_in_its_vocabulary(decoded, path, vocab):
    _, _, runs = decoded
    r, out = runs[path]
    assert r.returncode == 0, r.stderr[-3000:]
    lines = (out / "1best_recog" / "token").read_text().splitlines()
    assert [line.split(maxsplit=1)[0] for line in lines] == ["utt1", "utt2"]
    for line in lines:
        assert all(tok in vocab for tok in line.split()[1:]), line
    assert (out / "1best_recog" / "text").exists()


def test_asr_path_ctc_only_and_missing_paths(tmp_path, decoded):
    d, exp, _ = decoded
    # no ASR attention decoder: CTC-only decoding
    e2 = _exp(tmp_path, {**ALL_OFF, "asr_ctc_weight": 0.3})
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.path_inference", "asr",
                        "--data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                        "--output_dir", str(tmp_path / "o"), "--ngpu", "0",
                        "--asr_train_config", f"{e2}/config.yaml",
                        "--asr_model_file", f"{e2}/model.pth",  # CTC-only: forced
                        "--beam_size", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len((tmp_path / "o" / "1best_recog" / "token").read_text().splitlines()) == 2
    # that model has no MT path: a clear error
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.path_inference", "mt",
                        "--data_path_and_name_and_type", f"{d}/src_text,src_text,text",
                        "--output_dir", str(tmp_path / "o2"), "--ngpu", "0",
                        "--mt_train_config", f"{e2}/config.yaml",
                        "--mt_model_file", f"{e2}/model.pth"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "has no MT path" in r.stderr


def _decode_files(path, data, model_opts, out, *extra):
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.path_inference", path,
                        "--data_path_and_name_and_type", data, "--output_dir", str(out),
                        "--ngpu", "0", "--beam_size", "3", "--ctc_weight", "0", *model_opts,
                        *extra], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return {f: (out / "1best_recog" / f).read_text() for f in ("token", "token_int", "text")}


def test_batched_path_decoding_gives_the_files_of_batch_size_1(tmp_path, decoded):
    d, exp, _ = decoded
    (tmp_path / "src_text").write_text("u1 x y z\nu2 w x\nu3 z\nu4 y y w x z\nu5 x w\n")
    rng = np.random.default_rng(1)
    wavs = []
    for i, n in enumerate((3200, 1200, 2600, 900, 2000)):  # varied lengths: padding
        soundfile.write(tmp_path / f"u{i}.wav", rng.standard_normal(n).astype(np.float32) * 0.1,
                        16000)
        wavs.append(f"u{i} {tmp_path / f'u{i}.wav'}")
    (tmp_path / "wav.scp").write_text("\n".join(wavs) + "\n")
    for path, data in (("mt", f"{tmp_path}/src_text,src_text,text"),
                       ("asr", f"{tmp_path}/wav.scp,speech,sound")):
        model = [f"--{path}_train_config", f"{exp}/config.yaml",
                 f"--{path}_model_file", f"{exp}/model.pth"]
        one = _decode_files(path, data, model, tmp_path / f"{path}1")
        three = _decode_files(path, data, model, tmp_path / f"{path}3", "--batch_size", "3")
        assert three == one, path
        assert len(one["token"].splitlines()) == 5
    # a CTC-only ASR path is decoded one utterance at a time whatever the batch size
    (tmp_path / "ctc").mkdir()
    e2 = _exp(tmp_path / "ctc", {**ALL_OFF, "asr_ctc_weight": 0.3})
    ctc = _decode_files("asr", f"{tmp_path}/wav.scp,speech,sound",
                        ["--asr_train_config", f"{e2}/config.yaml",
                         "--asr_model_file", f"{e2}/model.pth"], tmp_path / "ctc3",
                        "--batch_size", "3")
    assert len(ctc["token"].splitlines()) == 5


def test_mtl_st_batch_encodes_each_utterance_as_alone(decoded):
    """The ST encoder of a multi-task model (acoustic encoder, adapter, textual
    encoder) in one padded batch gives each utterance its lone encoding."""
    from espnet_mtl.inference.batch_encode import batch_encodable, encode_batch, encode_each

    _, exp, _ = decoded
    model, _ = MTLSTTask.build_model_from_file(exp / "config.yaml", exp / "model.pth", "cpu")
    model.eval()
    assert batch_encodable(model)
    rng = np.random.default_rng(4)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (3200, 1100, 2500)]
    for encode in (model.encode, model.encode_acoustic):  # ST and the ASR path
        alone, alone_lens = encode_each(model, waves, encode)
        batch, batch_lens = encode_batch(model, waves, encode)
        assert batch_lens.tolist() == alone_lens.tolist()
        for i, n in enumerate(alone_lens.tolist()):
            torch.testing.assert_close(batch[i, :n], alone[i, :n], atol=1e-4, rtol=1e-5)
