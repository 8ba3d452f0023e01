"""ComSL through the demo recipe: stages 1-13 with a model that brings its own tokenizer.

Tiny random Whisper / mBART-50 models are written after stage 4 (their tokenizer
trained on the corpus text, `espnet_mtl.bin.make_tiny_pretrained`); stage 5 then
writes the mBART-50 tokenizer's vocabulary instead of training SentencePiece, and
ESPnet's trainer, inference and our scoring run the composite model.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

from espnet_mtl.runner.recipes import copy_recipe

SMALL = ["--local_data_opts", "--tgt_lang de --n_train 160 --n_dev 16 --n_test 16"]
COMSL = ["--st_config", "conf/train_st_comsl_tiny.yaml",
         "--inference_config", "conf/decode_st_comsl.yaml",
         "--src_token_type", "hugging_face", "--tgt_token_type", "hugging_face",
         "--hugging_face_model_name_or_path", "pretrained/comsl/mbart",
         "--feats_normalize", "none", "--st_tag", "comsl",
         "--st_args", "--max_epoch 3 --keep_nbest_models 3"]


def run(recipe, *args):
    r = subprocess.run(["./run.sh", *SMALL, *args], cwd=recipe, capture_output=True, text=True)
    assert r.returncode == 0, f"run.sh {args} failed:\n{r.stderr[-4000:]}\n{r.stdout[-3000:]}"
    return r


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    recipe = copy_recipe("mini_st", tmp_path_factory.mktemp("comsl_recipe"))
    run(recipe, "--stop_stage", "4")
    dump = recipe / "dump/raw/train.en-de"
    subprocess.run([sys.executable, "-m", "espnet_mtl.bin.make_tiny_pretrained", "--out_dir",
                    "pretrained/comsl", "--text", str(dump / "text.lc.rm.en"),
                    str(dump / "text.tc.de")], cwd=recipe, check=True, capture_output=True)
    run(recipe, "--stage", "5", *COMSL)
    return recipe


def test_stage5_takes_the_models_tokenizer(recipe):
    tokens = (recipe / "data/en_de_token_list/hugging_face_mbart/tokens.txt").read_text().split("\n")
    tok = transformers.AutoTokenizer.from_pretrained(str(recipe / "pretrained/comsl/mbart"))
    assert tokens[:-1] == tok.convert_ids_to_tokens(list(range(len(tok))))
    assert not list((recipe / "data/en_de_token_list").glob("**/bpe.model"))


def test_trains_with_the_encoder_frozen_first_and_decodes(recipe):
    exp = recipe / "exp/st_comsl"
    log = (exp / "train.log").read_text()
    for key in ("loss_asr_att", "loss_st_guided", "loss_mt_teacher", "loss_cml", "loss_erm"):
        assert key in log
    first = torch.load(exp / "1epoch.pth", map_location="cpu")
    second = torch.load(exp / "2epoch.pth", map_location="cpu")
    pretrained = transformers.WhisperModel.from_pretrained(
        str(recipe / "pretrained/comsl/whisper")).encoder.state_dict()
    whisper = {k[len("encoder.whisper."):]: v for k, v in first.items()
               if k.startswith("encoder.whisper.")}
    assert whisper and all(torch.equal(v, pretrained[k]) for k, v in whisper.items())
    assert any(not torch.equal(second[f"encoder.whisper.{k}"], v) for k, v in whisper.items())
    assert not any(k.startswith("teacher") for k in first)  # the teacher is not checkpointed
    decode = exp / "decode_st_comsl_st_model_valid.acc.ave/tst-COMMON.en-de"
    assert len((decode / "text").read_text().splitlines()) == 16
    result = json.loads((decode / "score_bleu/result.json").read_text())
    assert result["num_sentences"] == 16 and "bleu" in result
    assert "tst-COMMON" in (exp / "RESULTS.md").read_text()


def test_hugging_face_tokens_need_both_sides_and_a_tokenizer(recipe):
    r = subprocess.run(["./run.sh", *SMALL, "--stage", "5", "--stop_stage", "5",
                        "--tgt_token_type", "hugging_face"], cwd=recipe, capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert "--src_token_type hugging_face and --tgt_token_type hugging_face go together" in \
        r.stdout + r.stderr


def test_packed_comsl_loads_anywhere_with_its_pretrained_parts(recipe, tmp_path, monkeypatch):
    """Stage 14 packs the Whisper / mBART directories and the tokenizer the config names;
    the zip decodes in another directory as stage 12 did."""
    import shutil
    import zipfile

    import soundfile

    from espnet_mtl.inference.pretrained import load_pretrained

    run(recipe, "--stage", "14", "--stop_stage", "14", *COMSL)
    exp = recipe / "exp/st_comsl"
    packed = exp / "st_comsl_valid.acc.ave.zip"
    names = zipfile.ZipFile(packed).namelist()
    for part in ("pretrained/comsl/whisper/config.json", "pretrained/comsl/mbart/config.json",
                 "pretrained/comsl/mbart/sentencepiece.bpe.model", "exp/st_comsl/config.yaml"):
        assert part in names, part
    shutil.copy(packed, tmp_path / "comsl.zip")
    monkeypatch.chdir(tmp_path)
    s2t = load_pretrained(tmp_path / "comsl.zip", beam_size=5, ctc_weight=0.0, lm_weight=0.0)
    decode = exp / "decode_st_comsl_st_model_valid.acc.ave/tst-COMMON.en-de"
    utt, path = (recipe / "dump/raw/tst-COMMON.en-de/wav.scp").read_text().split("\n")[0].split()
    stage12 = dict((line.split(maxsplit=1) + [""])[:2]
                   for line in (decode / "text").read_text().splitlines())
    speech = soundfile.read(recipe / path, dtype="float32")[0]
    assert (s2t(speech)[0][0] or "") == stage12[utt]
