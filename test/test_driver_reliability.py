"""The stage driver under kills, concurrent runs, interrupted stages and bad options (issue 10).

A tiny copy of the demo recipe (stages 1-2 once per module). Where a stage's
task must stay busy long enough to be killed, `--python` points at a stand-in
that sleeps instead of running stage 3's dump (everything else goes to the
real python), so the kills go through the real driver, job runner and guard.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from espnet_mtl.runner.recipes import ROOT, copy_recipe
from espnet_mtl.runner.stage_marks import StageError, check_input, done, start

from test_jobs import _alive

TINY = ["--local_data_opts", "--tgt_lang de --n_train 24 --n_dev 4 --n_test 4",
        "--src_nbpe", "60", "--tgt_nbpe", "60", "--nj", "2"]
# Stage 3's dump tasks sleep (recording their pids); the tokenizer of the
# target side fails when FAIL_TGT_TOKENIZER is set; the rest is real python.
STAND_IN = """#!/usr/bin/env bash
if [ "$1 $2 $3" = "-m espnet_mtl.bin.dump_audio --in_dir" ] && [ -n "${TASK_PIDS:-}" ]; then
    sleep 300 & echo $! >> "${TASK_PIDS}"; echo $$ >> "${TASK_PIDS}"; wait; exit 1
fi
if [ "$1 $2" = "-m espnet_mtl.bin.train_tokenizer" ] && [ -n "${FAIL_TGT_TOKENIZER:-}" ]; then
    case "$*" in *tgt_bpe*) echo "stand-in: killed while training the target tokenizer" >&2; exit 137 ;; esac
fi
exec python "$@"
"""


def run(recipe, *args, env=None, check=True):
    r = subprocess.run(["./run.sh", *TINY, *args], cwd=recipe, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if check:
        assert r.returncode == 0, f"run.sh {args} failed:\n{r.stderr[-4000:]}"
    return r


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    recipe = copy_recipe("mini_st", tmp_path_factory.mktemp("driver"))
    stand_in = recipe / "stand_in_python"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    run(recipe, "--stage", "1", "--stop_stage", "2")
    return recipe


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while not condition():
        if time.time() >= deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


def _ps(pids) -> str:
    """What became of these processes (for a failure message)."""
    r = subprocess.run(["ps", "-o", "pid,ppid,pgid,stat,etime,args", "-p",
                        ",".join(map(str, pids))], capture_output=True, text=True)
    return r.stdout


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_killed_driver_takes_its_tasks_along_and_a_rerun_neither_doubles_nor_trusts(
        recipe, tmp_path, sig):
    pids = tmp_path / "task_pids"
    proc = subprocess.Popen(["./run.sh", *TINY, "--stage", "3", "--stop_stage", "3",
                             "--python", "./stand_in_python"], cwd=recipe,
                            env={**os.environ, "TASK_PIDS": str(pids)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True,
                            # a driver started from a terminal: SIGHUP at its default even
                            # when this test runs under nohup (ignored signals are inherited)
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        # Both tasks of the first set are busy: 2 x (task shell, its sleep).
        _wait_for(lambda: pids.exists() and len(pids.read_text().split()) >= 4, 60, "the tasks")
        lock = recipe / "dump" / "raw" / "org" / ".train.en-de.lock"
        driver = int(re.search(r"pid=(\d+)", lock.read_text()).group(1))

        # A second run of the same stage is refused, naming the running one.
        r = run(recipe, "--stage", "3", "--stop_stage", "3", check=False)
        assert r.returncode == 1
        assert "is being written by another run (pid=%d host=" % driver in r.stderr

        os.kill(driver, sig)  # the driver alone, as SIGKILL, the OOM killer or a closed terminal
        tasks = [int(p) for p in pids.read_text().split()]
        _wait_for(lambda: not any(_alive(p) for p in tasks), 30,
                  lambda: f"tasks {tasks} to die:\n" + _ps(tasks + [driver]))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # Nothing of the killed run is left: neither run.sh, st.sh nor run_jobs (the tasks
    # ran in sessions of their own, checked above).
    _wait_for(lambda: not _group_alive(proc.pid), 15, "the killed run's processes to exit")

    # The half-written output is refused downstream, and a rerun redoes it.
    r = run(recipe, "--stage", "4", "--stop_stage", "4", check=False)
    assert r.returncode == 1 and "org/train.en-de is missing or incomplete" in r.stderr
    run(recipe, "--stage", "3", "--stop_stage", "3")
    assert (recipe / "dump" / "raw" / "org" / "train.en-de" / ".done").exists()


def test_an_interrupted_stage5_leaves_no_token_pair_that_stage10_accepts(recipe):
    run(recipe, "--stage", "3", "--stop_stage", "5")
    tokens = recipe / "data" / "en_de_token_list"
    assert (tokens / "src_bpe_unigram60" / ".done").exists()
    assert (tokens / "tgt_bpe_unigram60" / ".done").exists()
    # Killed while training the target model: the new source list is next to no target list.
    r = run(recipe, "--stage", "5", "--stop_stage", "5", "--python", "./stand_in_python",
            env={"FAIL_TGT_TOKENIZER": "1"}, check=False)
    assert r.returncode != 0
    assert (tokens / "src_bpe_unigram60" / "tokens.txt").exists()  # the new source list...
    for side in ("src", "tgt"):  # ...but neither side is marked complete
        assert not (tokens / f"{side}_bpe_unigram60" / ".done").exists()
    r = run(recipe, "--stage", "10", "--stop_stage", "10", check=False)
    assert r.returncode == 1
    assert "data/en_de_token_list/src_bpe_unigram60 is missing or incomplete" in r.stderr
    assert not list((recipe / "exp").glob("st_stats_*/.done"))


def test_training_killed_with_its_driver_then_resumed_by_one_trainer(recipe, tmp_path):
    run(recipe, "--stage", "3", "--stop_stage", "10")
    exp = recipe / "exp" / "st_kill11"
    common = ["--stage", "11", "--stop_stage", "11", "--st_tag", "kill11"]
    proc = subprocess.Popen(["./run.sh", *TINY, *common, "--st_args", "--max_epoch 100"],
                            cwd=recipe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait_for(lambda: (exp / "1epoch.pth").exists(), 300, "the first epoch")
        trainer = int(re.search(r"pid=(\d+)", (exp / ".trainer.lock").read_text()).group(1))
        driver = int(re.search(r"pid=(\d+)", (recipe / "exp" / ".st_kill11.lock").read_text())
                     .group(1))
        # While it trains, a second stage 11 of the same experiment is refused.
        r = run(recipe, *common, check=False)
        assert r.returncode == 1 and f"is being written by another run (pid={driver} " in r.stderr
        os.kill(driver, signal.SIGKILL)
        _wait_for(lambda: not _alive(trainer), 20, f"the trainer {trainer} to die")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _wait_for(lambda: not _group_alive(proc.pid), 20, "the killed run's processes to exit")
    assert not (exp / ".done").exists()
    # The rerun resumes (one trainer: the lock is free again) for one more epoch.
    trained = max(int(p.name[:-len("epoch.pth")]) for p in exp.glob("*epoch.pth"))
    run(recipe, *common, "--st_args", f"--max_epoch {trained + 1}")
    assert "resumed" in (exp / "train.log").read_text()
    assert (exp / ".done").exists() and (exp / f"{trained + 1}epoch.pth").exists()


def test_experiment_names_carry_the_vocabulary_and_speed_perturbation(recipe):
    r = run(recipe, "--stage", "13", "--stop_stage", "13", "--tgt_nbpe", "8000", check=False)
    assert "exp/st_train_st_raw_en_de_bpe_tc8000/" in r.stderr
    r = run(recipe, "--stage", "11", "--stop_stage", "11", "--tgt_nbpe", "8000",
            "--speed_perturb_factors", "0.9 1.0 1.1", check=False)
    assert r.returncode == 1
    assert "exp/st_stats_raw_en_de_bpe8000_sp is missing" in r.stderr
    assert "-> exp/st_train_st_raw_en_de_bpe_tc8000_sp " in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--stage", "5", "--stop_stage", "3"], "nothing to run: --stage 5 is after --stop_stage 3"),
    (["--stage", "abc"], "--stage takes an integer, got 'abc'"),
    (["--nj", "0"], "--nj must be >= 1, got 0"),
    (["--nj", "abc"], "--nj takes an integer, got 'abc'"),
    (["--inference_nj", "-2"], "--inference_nj must be >= 1, got -2"),
    (["--feats_type", "fbnak"], "--feats_type takes one of raw, fbank, got 'fbnak'"),
    (["--tgt_bpe_char_cover", "2"], "--tgt_bpe_char_cover must be between 0 and 1, got 2"),
    (["--extra_decode_paths", "mt lm"], "'lm' is not one of mt, asr"),
    (["--fs", "abc"], "--fs takes a sampling rate such as 16k or 16000, got 'abc'"),
    (["--skip_eval", "true", "--stage", "12"], "nothing to run: --stage 12 is after --stop_stage 11"),
    (["--tgt_lang"], "option --tgt_lang needs a value"),
    (["--tgt_lang", "xx"], "--tgt_lang takes one of de|es|fr (got 'xx')"),
])
def test_bad_options_stop_before_any_stage_runs(tmp_path, args, message):
    recipe = copy_recipe("mini_st", tmp_path)
    r = subprocess.run(["./run.sh", *args], cwd=recipe, capture_output=True, text=True)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert "unbound variable" not in r.stderr and "Traceback" not in r.stderr
    assert not (recipe / "data").exists() and not (recipe / "exp").exists()


@pytest.mark.parametrize("corpus, option", [
    ("must_c", "--tgt_lang"), ("must_c", "--version"), ("must_c_v2", "--tgt_lang"),
    ("covost2", "--src_lang"), ("europarl_st", "--train_noisy"),
])
def test_recipe_options_without_a_value(tmp_path, corpus, option):
    recipe = copy_recipe(corpus, tmp_path)
    r = subprocess.run(["./run.sh", "--stage", "1", option], cwd=recipe, capture_output=True,
                       text=True)
    assert r.returncode == 2 and f"option {option} needs a value" in r.stderr
    assert "unbound variable" not in r.stderr


def test_readme_lists_what_each_stage_reads_and_writes():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| stage | what | reads (must be complete) | writes"):]
    for stage in range(1, 14):
        if 6 <= stage <= 9:
            continue
        assert re.search(rf"^\| {stage} \|", table, re.M), stage


def test_marks_refuse_missing_incomplete_and_stale_inputs(tmp_path):
    data, tokens, stats = (str(tmp_path / n) for n in ("data", "tokens", "stats"))
    start([], [data], [])
    os.mkdir(data)
    with pytest.raises(StageError, match="data is missing or incomplete"):
        start([data], [tokens], [])
    done(1, [], [data])
    start([data], [tokens], [])
    os.mkdir(tokens)
    done(5, [data], [tokens])
    start([tokens], [stats], [])
    os.mkdir(stats)
    done(10, [tokens], [stats])
    check_input(stats)
    start([data], [tokens], [])  # stage 5 again: the tokens lose their mark...
    with pytest.raises(StageError, match="stats was made from .*tokens, which is now incomplete"):
        check_input(stats)
    done(5, [data], [tokens])  # ...and get a new stamp: stats made from the old ones are stale
    with pytest.raises(StageError, match="stats was made from .*tokens, which has been remade"):
        check_input(stats)
    # Resumed outputs keep their content; fresh ones are emptied.
    Path(stats, "keep").write_text("x")
    start([tokens], [], [stats])
    assert Path(stats, "keep").exists() and not Path(stats, ".done").exists()
    start([tokens], [stats], [])
    assert not os.path.exists(stats)
