"""A real single-node Slurm cluster for the tests (tools/slurm/start_local_slurm.sh).

`cluster()` starts it once per test session (installing the Debian packages
on first use). Tests are skipped, with the reason, only when this machine
cannot run it at all (not root, or neither apt-get nor Slurm installed); a
start that fails anyway (packages, daemons) fails the tests, with the
script's output, rather than hiding the failure.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time

import pytest

from espnet_mtl.runner.recipes import ROOT

START = ROOT / "tools" / "slurm" / "start_local_slurm.sh"


@functools.lru_cache(maxsize=1)
def _start() -> tuple[str, str] | None:
    """None when the cluster is up, else ("skip" or "fail", why)."""
    if os.geteuid() != 0:
        return "skip", "the local Slurm cluster needs root (it installs Debian packages and runs daemons)"
    if not shutil.which("apt-get") and not shutil.which("sbatch"):
        return "skip", "no apt-get to install Slurm and no sbatch on PATH"
    r = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or "slurm ready" not in r.stdout:
        return "fail", f"tools/slurm/start_local_slurm.sh failed:\n{r.stderr[-2000:]}"
    return None


def cluster() -> None:
    problem = _start()
    if problem:
        (pytest.skip if problem[0] == "skip" else pytest.fail)(problem[1])


def wait_gone(job_id: str, timeout: float = 60) -> None:
    """Until the job (all its array tasks) has left the queue."""
    deadline = time.time() + timeout
    while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True,
                         text=True).stdout.strip():
        assert time.time() < deadline, f"job {job_id} still queued after {timeout} s"
        time.sleep(0.2)


def queued() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
