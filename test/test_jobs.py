"""Tests for espnet_mtl.runner.jobs (run_jobs, backends) and its CLI."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from espnet_mtl.runner import jobs
from espnet_mtl.bin import run_jobs as cli
from espnet_mtl.runner.jobs import JobsFailed, run_jobs


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_job_substitution_in_args_and_log_path(tmp_path):
    run_jobs(["echo", "task JOB", "of", "JOB.txt"], str(tmp_path / "log" / "x.JOB.log"),
             job_range=(1, 3))
    for i in (1, 2, 3):
        assert f"task {i} of {i}.txt" in lines(tmp_path / "log" / f"x.{i}.log")


def test_log_header_and_footer(tmp_path):
    log = tmp_path / "deep" / "dir" / "a.log"  # parents are created
    run_jobs(["echo", "hello world"], log, resources={"mem": "4G", "gpu": 1})
    out = lines(log)
    assert out[0] == "# echo 'hello world'"
    assert out[1].startswith("# Started at ")
    assert "mem=4G" in out[2] and "gpu=1" in out[2]  # logged, not enforced locally
    assert "hello world" in out
    assert re.fullmatch(r"# Accounting: time=\d+ threads=1", out[-2])
    assert out[-1].startswith("# Ended (code 0) at ")


def test_tasks_run_in_parallel(tmp_path):
    # Each task waits for the other's marker: this only finishes if they overlap.
    cmd = (f"touch {tmp_path}/mJOB; for i in $(seq 200); do "
           f"[ -e {tmp_path}/m$((3-JOB)) ] && exit 0; sleep 0.05; done; exit 1")
    # Run one after the other, task 1 would give up after 10 s and fail.
    run_jobs([cmd], tmp_path / "log.JOB", job_range=(1, 2))


def test_max_parallel_limits_concurrency(tmp_path):
    # mkdir is atomic: a second task running at the same time would fail it.
    cmd = f"mkdir {tmp_path}/lock && sleep 0.2 && rmdir {tmp_path}/lock"
    run_jobs([cmd], tmp_path / "log.JOB", job_range=(1, 3), max_parallel=1)


def test_failure_raises_naming_logs_and_tail(tmp_path):
    cmd = "echo output of JOB; if [ JOB -ge 2 ]; then echo boom-JOB >&2; exit 3; fi"
    with pytest.raises(JobsFailed) as e:
        run_jobs([cmd], tmp_path / "x.JOB.log", job_range=(1, 3))
    msg = str(e.value)
    assert "2 of 3 task(s) failed" in msg
    assert f"{tmp_path}/x.2.log (code 3)" in msg and f"{tmp_path}/x.3.log" in msg
    assert "boom-2" in msg and "boom-3" not in msg  # tail of the first failed log
    assert e.value.logs == [tmp_path / "x.2.log", tmp_path / "x.3.log"]
    assert lines(tmp_path / "x.2.log")[-1].startswith("# Ended (code 3) at ")


def test_shell_string_pipes_and_pipefail(tmp_path):
    run_jobs(["echo hello | tr a-z A-Z"], tmp_path / "a.log")
    assert "HELLO" in lines(tmp_path / "a.log")
    with pytest.raises(JobsFailed):  # pipefail: the failing producer counts
        run_jobs(["false | cat"], tmp_path / "b.log")
    # several arguments are quoted: '|' is an argument to echo, not a pipe
    run_jobs(["echo", "a", "|", "tr", "a", "b"], tmp_path / "c.log")
    assert "a | tr a b" in lines(tmp_path / "c.log")


def test_single_task_has_no_substitution(tmp_path):
    run_jobs(["echo JOB"], tmp_path / "JOB.log")
    assert "JOB" in lines(tmp_path / "JOB.log")


def test_omp_num_threads(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(jobs, "usable_cores", lambda: 8)
    run_jobs(["echo omp=$OMP_NUM_THREADS"], tmp_path / "a.log", resources={"num_threads": 4})
    assert "omp=4" in lines(tmp_path / "a.log")
    assert re.fullmatch(r"# Accounting: time=\d+ threads=4", lines(tmp_path / "a.log")[-2])
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # an explicit setting wins
    run_jobs(["echo omp=$OMP_NUM_THREADS"], tmp_path / "b.log", resources={"num_threads": 4})
    assert "omp=7" in lines(tmp_path / "b.log")
    monkeypatch.setattr(jobs, "usable_cores", lambda: 2)  # ... up to the cores there are
    run_jobs(["echo omp=$OMP_NUM_THREADS"], tmp_path / "c.log", resources={"num_threads": 4})
    assert "omp=2" in lines(tmp_path / "c.log")


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_times_running_tasks_never_exceed_the_cores(tmp_path, monkeypatch, cores,
                                                            threads):
    # Every task records its OMP_NUM_THREADS while it runs: the sum over the
    # tasks running at any moment must stay <= cores (one task at least runs).
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(jobs, "usable_cores", lambda: cores)
    running = tmp_path / "running"
    running.mkdir()
    cmd = (f"echo $OMP_NUM_THREADS > {running}/JOB; sleep 0.3; "
           f"ls {running} | wc -l > {tmp_path}/seen.JOB; rm {running}/JOB")
    run_jobs([cmd], tmp_path / "log.JOB", job_range=(1, 6), resources={"num_threads": threads})
    used = min(threads, cores)
    peak = max(int((tmp_path / f"seen.{i}").read_text()) for i in range(1, 7))
    assert 1 <= peak * used <= max(cores, used)
    assert peak == min(6, max(1, cores // used))  # the cores are used: no task waits needlessly
    for i in range(1, 7):
        assert re.fullmatch(rf"# Accounting: time=\d+ threads={used}",
                            lines(tmp_path / f"log.{i}")[-2])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="does not contain JOB"):
        run_jobs(["true"], tmp_path / "one.log", job_range=(1, 2))
    with pytest.raises(ValueError, match="unknown backend"):
        run_jobs(["true"], tmp_path / "a.log", backend="nope")
    with pytest.raises(ValueError, match="unknown resource"):
        run_jobs(["true"], tmp_path / "a.log", resources={"gpus": 1})


def test_backend_registry():
    assert jobs.BACKENDS["local"] is jobs.LocalBackend
    assert issubclass(jobs.LocalBackend, jobs.Backend)
    with pytest.raises(TypeError):
        jobs.Backend(jobs.Resources())  # abstract


# --------------------------------------------------------------------------- CLI


def test_cli_options_and_custom_job_variable(tmp_path):
    assert cli.main(["--gpu", "0", "--max-jobs-run", "1", "--num_threads", "2", "--mem=2G",
                     "SPLIT=1:2", f"{tmp_path}/s.SPLIT.log",
                     "python3", "-c", "print('part', SPLIT)"]) == 0
    out = lines(tmp_path / "s.2.log")
    assert "part 2" in out and "mem=2G" in out[2] and "threads=2" in out[-2]


def test_cli_config_defaults(tmp_path):
    conf = tmp_path / "queue.conf"
    conf.write_text("# defaults\n--backend local\ndefault mem=3G\n")
    assert cli.main(["--config", str(conf), f"{tmp_path}/a.log", "true"]) == 0
    assert "mem=3G" in lines(tmp_path / "a.log")[2]
    conf.write_text("command qsub -cwd\n")
    with pytest.raises(SystemExit):
        cli.main(["--config", str(conf), f"{tmp_path}/a.log", "true"])


def test_cli_failure_exits_1_naming_the_log(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "espnet_mtl.bin.run_jobs", "JOB=1:2", f"{tmp_path}/log/t.JOB.log",
         "echo failing-JOB; exit $((JOB - 1))"], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{tmp_path}/log/t.2.log" in r.stderr and "1 of 2 task(s) failed" in r.stderr
    assert "failing-2" in r.stderr
    assert "Traceback" not in r.stderr


def _alive(pid: int) -> bool:
    try:  # a zombie (killed, not yet reaped by init) counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read
        return False


def _start_sleeper_task(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """run_jobs with one task that starts `sleep 60` in the background; (run_jobs, sleep pid)."""
    pidfile = tmp_path / "pid"
    p = subprocess.Popen(
        [sys.executable, "-m", "espnet_mtl.bin.run_jobs", f"{tmp_path}/t.log",
         f"sleep 60 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"],
        stderr=subprocess.PIPE, text=True,
        # A shell's background job inherits SIGINT ignored (CI may run us so):
        # restore the default so Python turns SIGINT into KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for _ in range(200):
        if pidfile.exists():
            break
        time.sleep(0.05)
    return p, int(pidfile.read_text())


def _wait_dead(pid: int, seconds: float) -> None:
    for _ in range(int(seconds / 0.05)):
        if not _alive(pid):
            return
        time.sleep(0.05)
    pytest.fail(f"task process {pid} survived")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                       (signal.SIGHUP, 129)])
def test_signal_kills_tasks(tmp_path, sig, code):
    p, sleeper = _start_sleeper_task(tmp_path)
    p.send_signal(sig)
    assert p.wait(timeout=10) == code
    assert "tasks killed" in p.stderr.read()
    _wait_dead(sleeper, 5)  # the grandchild `sleep` went with its process group
    assert lines(tmp_path / "t.log")[-1].startswith("# Ended (code 143) at ")


def test_sigkill_of_run_jobs_still_stops_its_tasks(tmp_path):
    # SIGKILL (or the OOM killer) gives run_jobs no chance to cancel: its guard does.
    p, sleeper = _start_sleeper_task(tmp_path)
    p.kill()
    p.wait(timeout=10)
    _wait_dead(sleeper, 10)
