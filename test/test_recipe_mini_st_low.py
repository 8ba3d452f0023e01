"""The demo's low-resource setting (egs2/mini_st_low/st1) end to end, at a tiny size.

One run of `./run.sh` (stages 1-13, both systems) in a private copy of the
recipe: the generated auxiliary data goes through the real readers
(`--aux_mt_sets bitext:...`, `--aux_asr_sets librispeech:...`), the token
lists are trained on the ST and auxiliary text, the baseline trains on the ST
triples only and mtl_st on all three sources, and both are decoded and scored.
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from espnet_mtl.runner.recipes import copy_recipe

TINY = ["--local_data_opts",
        "--tgt_lang de --n_train 80 --n_dev 8 --n_test 8 --n_aux_mt 300 --n_aux_asr 24",
        "--src_nbpe", "60", "--tgt_nbpe", "60",
        "--st_args", "--max_epoch 1 --keep_nbest_models 1"]


def run(recipe, *args):
    return subprocess.run(["./run.sh", *args], cwd=recipe, capture_output=True, text=True)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    recipe = copy_recipe("mini_st_low", tmp_path_factory.mktemp("mini_st_low"))
    r = run(recipe, *TINY)
    assert r.returncode == 0, f"run.sh failed:\n{r.stderr[-4000:]}"
    recipe.joinpath("run.stderr").write_text(r.stderr)
    return recipe


def test_auxiliary_data_reaches_stage_1_through_the_readers(recipe):
    aux = recipe / "downloads" / "mini_st_low" / "aux"
    assert (aux / "bitext" / "demo_mt.en").read_text().count("\n") == 300
    assert len(list((aux / "LibriSpeech" / "train-clean-100").rglob("*.flac"))) == 24
    mt = (recipe / "dump" / "raw" / "aux_mt" / "text.lc.rm.en").read_text().splitlines()
    asr = (recipe / "dump" / "raw" / "aux_asr" / "text.lc.rm.en").read_text().splitlines()
    assert len(mt) == 300 and len(asr) == 24
    # no test sentence among the auxiliary source text
    test = {line.split(" ", 1)[1] for line in
            (recipe / "dump" / "raw" / "tst-COMMON.en-de" / "text.lc.rm.en").read_text().splitlines()}
    aux_text = {line.split(" ", 1)[1] for line in mt + asr}
    assert test and not test & aux_text


def test_token_lists_are_trained_on_the_st_and_auxiliary_text(recipe):
    log = recipe.joinpath("run.stderr").read_text()
    line = next(x for x in log.splitlines() if "Stage 5: SentencePiece models on" in x)
    assert "dump/raw/aux_mt/text.lc.rm.en" in line and "dump/raw/aux_asr/text.lc.rm.en" in line
    assert "dump/raw/aux_mt/text.tc.de" in line


def test_baseline_trains_on_st_only_and_mtl_st_on_every_source(recipe):
    base = yaml.safe_load((recipe / "exp" / "st_baseline" / "config.yaml").read_text())
    mtl = yaml.safe_load((recipe / "exp" / "st_mtl_st" / "config.yaml").read_text())
    assert base["model"] == "espnet"
    assert not base.get("train_mt_data_path_and_name_and_type")
    assert not base.get("train_asr_data_path_and_name_and_type")
    assert mtl["model"] == "mtl_st"
    assert any("aux_mt" in p[0] for p in mtl["train_mt_data_path_and_name_and_type"])
    assert any("aux_asr" in p[0] for p in mtl["train_asr_data_path_and_name_and_type"])
    # both share the token lists of stage 5
    assert base["token_list"] == mtl["token_list"]


def test_both_systems_are_decoded_and_scored(recipe):
    for system in ("baseline", "mtl_st"):
        found = list((recipe / "exp" / f"st_{system}").glob("*/tst-COMMON.en-de/score_bleu/result.json"))
        assert len(found) == 1, system
        assert 0.0 <= json.loads(found[0].read_text())["bleu"] <= 100.0


def test_imtl_config_trains_shrinks_decodes_and_scores_through_the_recipe(recipe):
    """Issue 14: conf/train_st_imtl.yaml (every IMTL part) through stages 11-13."""
    import torch

    r = run(recipe, "--system", "mtl_st", "--stage", "11", "--st_config",
            "conf/train_st_imtl.yaml", "--st_tag", "imtl", *TINY[:-1],
            "--max_epoch 2 --keep_nbest_models 1 --model_conf adapter_conf.warmup_steps=3")
    assert r.returncode == 0, f"run.sh failed:\n{r.stderr[-4000:]}"
    exp = recipe / "exp" / "st_imtl"
    conf = yaml.safe_load((exp / "config.yaml").read_text())
    assert conf["model_conf"]["adapter"] == "shrink_lbm" and conf["strategy"] == "task_norm"
    assert conf["mt_source_noise_prob"] == 0.1
    # trained past the shrinking warm-up: the decoded model shrinks
    state = torch.load(exp / "valid.acc.ave.pth", map_location="cpu")
    assert int(state["adapter.updates"]) >= 3
    found = list(exp.glob("*/tst-COMMON.en-de/score_bleu/result.json"))
    assert len(found) == 1 and 0.0 <= json.loads(found[0].read_text())["bleu"] <= 100.0


@pytest.mark.parametrize("args, message", [
    (["--system", "both_of_them"], "--system takes one of both|baseline|mtl_st"),
    (["--stage", "ten"], "--stage takes a stage number"),
])
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, message):
    recipe = copy_recipe("mini_st_low", tmp_path)
    r = run(recipe, *args)
    assert r.returncode == 2 and message in r.stderr
    assert not (recipe / "data").exists()


def test_bpe_train_aux_without_auxiliary_data_is_refused(tmp_path):
    recipe = copy_recipe("mini_st", tmp_path)
    r = run(recipe, "--bpe_train_aux", "true", "--stage", "5", "--stop_stage", "5")
    assert r.returncode == 2 and "--bpe_train_aux true needs auxiliary data" in r.stderr
