"""The Slurm backend of run_jobs and the pipeline submitter, on a real local Slurm cluster."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import slurm_cluster
from espnet_mtl.runner.jobs import Resources
from espnet_mtl.runner.pipeline import plan_groups, stage_overheads
from espnet_mtl.runner.slurm import SlurmConfig, SlurmError, explain_refusal

RUN_JOBS = [sys.executable, "-m", "espnet_mtl.bin.run_jobs", "--backend", "slurm"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    slurm_cluster.cluster()


def run_jobs(tmp_path, *args, **kw):
    return subprocess.run([*RUN_JOBS, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, **kw)


def test_array_job_runs_every_task_with_its_log(tmp_path):
    r = run_jobs(tmp_path, "--num_threads", "1", "JOB=1:3", "log/task.JOB.log",
                 "echo task JOB on $(hostname) threads $OMP_NUM_THREADS array $SLURM_ARRAY_TASK_ID")
    assert r.returncode == 0, r.stderr
    assert "submitted Slurm job" in r.stderr
    for i in (1, 2, 3):
        log = (tmp_path / "log" / f"task.{i}.log").read_text()
        assert f"task {i} on " in log and "threads 1" in log and f"array {i}" in log
        assert log.splitlines()[-1].startswith("# Ended (code 0)")
    assert (tmp_path / "log" / "q" / "task.sh").exists()  # the submitted script, for debugging


def test_failing_task_fails_the_stage_naming_its_log(tmp_path):
    r = run_jobs(tmp_path, "JOB=1:3", "log/t.JOB.log", "echo working on JOB; [ JOB -ne 2 ] || exit 3")
    assert r.returncode == 1
    assert "1 of 3 task(s) failed" in r.stderr and "log/t.2.log (code 3)" in r.stderr
    assert "--- last lines of log/t.2.log ---" in r.stderr and "working on 2" in r.stderr


@pytest.mark.parametrize("args, option, slurm_says", [
    (["--gpu", "1"], "--gres=gpu:1 (from --gpu 1)", "Invalid generic resource"),
    (["--num_threads", "999"], "--cpus-per-task=999 (from --num_threads 999)",
     "More processors requested than permitted"),
])
def test_unsatisfiable_request_fails_at_submission(tmp_path, args, option, slurm_says):
    before = slurm_cluster.queued()
    r = run_jobs(tmp_path, *args, "log/x.log", "echo never")
    assert r.returncode == 1
    assert "sbatch refused the job" in r.stderr and slurm_says in r.stderr and option in r.stderr
    assert slurm_cluster.queued() == before and not (tmp_path / "log" / "x.log").exists()


def test_unknown_partition_names_the_config_setting(tmp_path):
    conf = tmp_path / "slurm.yaml"
    conf.write_text("partition: nosuchpartition\n")
    r = run_jobs(tmp_path, "--backend_config", str(conf), "log/x.log", "echo never")
    assert r.returncode == 1
    assert "invalid partition" in r.stderr.lower()
    assert "--partition=nosuchpartition (from partition in the Slurm config)" in r.stderr


def test_bad_config_file_is_an_error(tmp_path):
    conf = tmp_path / "slurm.yaml"
    conf.write_text("partiton: cpu\n")
    r = run_jobs(tmp_path, "--backend_config", str(conf), "log/x.log", "echo never")
    assert r.returncode == 1 and "unknown setting(s) partiton" in r.stderr
    r = run_jobs(tmp_path, "--backend_config", str(tmp_path / "none.yaml"), "log/x.log", "echo")
    assert r.returncode == 1 and "none.yaml not found" in r.stderr


def _job_running(log_dir: Path, timeout=60) -> str:
    deadline = time.time() + timeout
    while True:
        out = subprocess.run(["squeue", "-h", "-o", "%i %T %j"], capture_output=True,
                             text=True).stdout
        rows = [line.split() for line in out.splitlines() if line.endswith(" sleeper")]
        if rows and rows[0][1] == "RUNNING" and any(log_dir.glob("*.log")):
            return rows[0][0].split("_")[0]
        assert time.time() < deadline, f"the job did not start: {out}"
        time.sleep(0.1)


def test_scancel_mid_stage_fails_cleanly_and_a_rerun_completes(tmp_path):
    proc = subprocess.Popen([*RUN_JOBS, "JOB=1:2", "log/sleeper.JOB.log", "sleep 60"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = _job_running(tmp_path / "log")
    subprocess.run(["scancel", job], check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "task(s) failed" in err and "ended CANCELLED" in err
    slurm_cluster.wait_gone(job)
    # The rerun (what rerunning the stage does) completes and rewrites the logs.
    r = run_jobs(tmp_path, "JOB=1:2", "log/sleeper.JOB.log", "echo done JOB")
    assert r.returncode == 0, r.stderr
    assert "done 1" in (tmp_path / "log" / "sleeper.1.log").read_text()


def test_driver_terminated_cancels_its_job(tmp_path):
    proc = subprocess.Popen([*RUN_JOBS, "log/sleeper.log", "sleep 60"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = _job_running(tmp_path / "log")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and f"cancelled Slurm job {job}" in err
    slurm_cluster.wait_gone(job, timeout=30)


def test_driver_killed_outright_still_cancels_its_job(tmp_path):
    # SIGKILL (or the OOM killer) leaves run_jobs no chance: its guard runs scancel.
    proc = subprocess.Popen([*RUN_JOBS, "log/sleeper.log", "sleep 60"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = _job_running(tmp_path / "log")
    proc.kill()
    proc.communicate(timeout=30)
    slurm_cluster.wait_gone(job, timeout=30)


def test_resources_map_onto_sbatch_flags():
    conf = SlurmConfig(partition="cpu", gpu_partition="gpu", gres="gpu:a100:{gpu}",
                       account="lab", time="1:00:00", extra=["--exclude=n1"],
                       gpu_extra=["--constraint=a100"])
    flags = [f for f, _ in conf.flags(Resources(gpu=4, mem="32G", num_threads=8, num_nodes=2))]
    assert flags == ["--partition=gpu", "--gres=gpu:a100:4", "--cpus-per-task=8", "--mem=32G",
                     "--nodes=2", "--ntasks-per-node=1", "--time=1:00:00", "--account=lab",
                     "--exclude=n1", "--constraint=a100"]
    assert [f for f, _ in conf.flags(Resources())] == [
        "--partition=cpu", "--cpus-per-task=1", "--time=1:00:00", "--account=lab", "--exclude=n1"]
    msg = explain_refusal("sbatch: error: Invalid account or account/partition combination",
                          conf.flags(Resources()))
    # The message names both: both settings are listed, nothing else.
    assert msg.endswith("caused by: --partition=cpu (from partition in the Slurm config); "
                        "--account=lab (from account in the Slurm config)")


# ----------------------------------------------------------------------------- pipeline

FAKE_RUN_SH = """#!/usr/bin/env bash
# A stand-in recipe: each stage appends its number to stages.txt; stage 3 fails
# while the file fail_at_3 exists (a transient failure, e.g. a node crash).
set -euo pipefail
stage=1; stop_stage=13; tag=
while [ $# -gt 0 ]; do
    case "$1" in --stage) stage=$2;; --stop_stage) stop_stage=$2;; --tag) tag=$2;; esac; shift 2
done
for s in $(seq "$stage" "$stop_stage"); do
    if [ "$s" = 3 ] && [ -e fail_at_3 ]; then echo "stage 3 failed" >&2; exit 1; fi
    echo "$s $tag ${cmd_backend}" >> stages.txt
done
"""


def fake_recipe(tmp_path):
    recipe = tmp_path / "egs2" / "fake" / "st1"
    recipe.mkdir(parents=True)
    (recipe / "run.sh").write_text(FAKE_RUN_SH)
    (recipe / "run.sh").chmod(0o755)
    return recipe


def submit(recipe, *args):
    return subprocess.run([sys.executable, "-m", "espnet_mtl.bin.submit_pipeline", "--recipe",
                           str(recipe), "--gpu_stages", "", *args], capture_output=True,
                          text=True, timeout=300)


def test_pipeline_chain_runs_in_order_with_dependencies(tmp_path):
    recipe = fake_recipe(tmp_path)
    r = submit(recipe, "--stop_stage", "11", "--wait", "--", "--tag", "a")
    assert r.returncode == 0, r.stderr
    lines = (recipe / "stages.txt").read_text().split("\n")
    assert [line.split()[0] for line in lines if line] == [str(s) for s in range(1, 12)]
    assert all(line.endswith(" a local") for line in lines if line)  # tasks run inside the job
    assert "(after " in r.stderr  # each job depends on the one before
    overheads = stage_overheads(recipe)
    assert list(overheads) == [g.name for g in plan_groups(1, 11, set(), 1)]
    assert all(0 <= s < 30 for s in overheads.values())


def test_pipeline_failure_cancels_the_rest_and_resubmission_resumes(tmp_path):
    recipe = fake_recipe(tmp_path)
    (recipe / "fail_at_3").touch()
    r = submit(recipe, "--stop_stage", "6", "--wait", "--", "--tag", "b")
    assert r.returncode == 1 and "stage3 (job" in r.stderr and "FAILED or cancelled" in r.stderr
    assert slurm_cluster.queued() == []  # the dependents were cancelled, not left pending
    assert (recipe / "stages.txt").read_text().split() [::3] == ["1", "2"]
    (recipe / "fail_at_3").unlink()
    r = submit(recipe, "--stop_stage", "6", "--wait", "--", "--tag", "b")
    assert r.returncode == 0, r.stderr
    assert "stage1 already done" in r.stderr and "stage2 already done" in r.stderr
    assert [line.split()[0] for line in (recipe / "stages.txt").read_text().splitlines()] == \
        ["1", "2", "3", "4", "5", "6"]
    # Different run.sh options: nothing is trusted, the chain starts again.
    r = submit(recipe, "--stop_stage", "2", "--wait", "--", "--tag", "c")
    assert r.returncode == 0 and "already done" not in r.stderr


def test_pipeline_refuses_a_second_chain_while_one_is_queued(tmp_path):
    recipe = fake_recipe(tmp_path)
    (recipe / "run.sh").write_text(FAKE_RUN_SH.replace("set -euo pipefail", "set -euo pipefail\nsleep 5"))
    r = submit(recipe, "--stop_stage", "2")
    assert r.returncode == 0, r.stderr
    again = submit(recipe, "--stop_stage", "2")
    assert again.returncode == 1 and "still queued" in again.stderr
    subprocess.run(["scancel", *slurm_cluster.queued()])


def test_pipeline_dry_run_puts_training_on_the_gpu_partition(tmp_path):
    recipe = fake_recipe(tmp_path)
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.submit_pipeline", "--recipe",
                        str(recipe), "--dry_run", "--gpu", "4", "--cpus", "8", "--", "--ngpu", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cmds = {line.split("--job-name=")[1].split()[0].split("_")[-1]: line
            for line in r.stdout.splitlines()}
    assert "--gres=gpu:4" in cmds["stage11"] and "--partition=gpu" in cmds["stage11"]
    assert "--gres" not in cmds["stage10"] and "--cpus-per-task=8" in cmds["stage10"]
    assert "--dependency=afterok:<stage10>" in cmds["stage11"]


def test_pipeline_bad_arguments():
    with pytest.raises(SlurmError, match="--stage <= --stop_stage"):
        plan_groups(5, 3, set(), 1)
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.submit_pipeline", "--recipe", "/",
                        "--", "--stage", "3"], capture_output=True, text=True)
    assert r.returncode == 1 and "no run.sh" in r.stderr
