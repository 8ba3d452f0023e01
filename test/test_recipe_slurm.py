"""The demo recipe's stages 1-13 with cmd_backend=slurm on a real local Slurm cluster.

Every stage's parallel tasks become Slurm array jobs (run_jobs --backend
slurm): the run must give the same kind of outputs as the local backend, with
each task's log in its usual place.
"""

import json
import os
import re
import subprocess

import pytest

import slurm_cluster
from espnet_mtl.runner.recipes import copy_recipe

SMALL = ["--local_data_opts", "--tgt_lang de --n_train 120 --n_dev 12 --n_test 12",
         "--src_nbpe", "80", "--tgt_nbpe", "80", "--st_tag", "slurm",
         "--st_args", "--max_epoch 1 --keep_nbest_models 1"]


def run(recipe, *args, backend="slurm"):
    return subprocess.run(["./run.sh", *SMALL, *args], cwd=recipe, capture_output=True, text=True,
                          env={**os.environ, "cmd_backend": backend}, timeout=1800)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    slurm_cluster.cluster()
    recipe = copy_recipe("mini_st", tmp_path_factory.mktemp("slurm"))
    return recipe, run(recipe)


def test_demo_stages_1_to_13_on_slurm(demo_run):
    recipe, r = demo_run
    assert r.returncode == 0, r.stderr[-5000:]
    jobs = re.findall(r"submitted Slurm job (\d+) \((\d+) task\(s\), logs (\S+)\)", r.stderr)
    where = " ".join(d for _, _, d in jobs)
    for stage_logs in ("dump/raw/org/train.en-de/logs", "exp/st_stats_raw_en_de_bpe80/logs",
                       "exp/st_slurm", "exp/st_slurm/decode_st_st_model_valid.acc.ave/"
                       "tst-COMMON.en-de/logs"):
        assert stage_logs in where, (stage_logs, where)  # stages 3, 10, 11, 12 went through Slurm
    train_log = (recipe / "exp" / "st_slurm" / "train.log").read_text()
    assert "# Ended (code 0)" in train_log and "1epoch results" in train_log
    result = json.loads(next(recipe.glob("exp/st_slurm/*/tst-COMMON.en-de/score_bleu/result.json"))
                        .read_text())
    assert result["num_sentences"] == 12 and 0 <= result["bleu"] <= 100
    assert slurm_cluster.queued() == []


def test_multi_node_training_asks_slurm_for_one_task_per_node(demo_run):
    recipe, _ = demo_run
    # The one-node test cluster cannot give 2 nodes: sbatch refuses at once,
    # naming the flags st.sh derived from --num_nodes.
    r = run(recipe, "--stage", "11", "--stop_stage", "11", "--st_tag", "nodes", "--num_nodes", "2")
    assert r.returncode != 0
    # (Slurm says "More processors requested than permitted": 2 nodes x 2 CPUs.)
    assert "sbatch refused the job" in r.stderr and "processors" in r.stderr
    assert "--nodes=2 (from --num_nodes 2)" in r.stderr
    assert "--cpus-per-task=2 (from --num_threads 2)" in r.stderr
    assert not (recipe / "exp" / "st_nodes" / ".done").exists()
    r = run(recipe, "--stage", "11", "--stop_stage", "11", "--num_nodes", "2", backend="local")
    assert r.returncode != 0 and "--num_nodes 2 needs cmd_backend=slurm" in r.stderr


def test_demo_as_a_chain_of_jobs(tmp_path):
    """submit_pipeline: the demo's stages 1-13 as dependent jobs, nothing on the login node."""
    import sys

    from espnet_mtl.runner.pipeline import stage_overheads

    slurm_cluster.cluster()
    recipe = copy_recipe("mini_st", tmp_path)
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.submit_pipeline", "--recipe",
                        str(recipe), "--cpus", "2", "--gpu_stages", "", "--wait", "--", *SMALL],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:] + (recipe / "exp/pipeline/logs").as_posix()
    assert len(re.findall(r"-> job \d+ \(after \d+\)", r.stderr)) == 9  # 10 groups, 9 dependencies
    assert next(recipe.glob("exp/st_slurm/*/tst-COMMON.en-de/score_bleu/result.json")).exists()
    assert len(stage_overheads(recipe)) == 10
    assert slurm_cluster.queued() == []
