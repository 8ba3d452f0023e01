"""No job outlives its driver, whatever kills the driver.

Two mechanisms, because a process killed by SIGKILL can do nothing for its children:

- `die_with_driver()`: the stage driver (st.sh) exports
  `ESPNET_MTL_DRIVER=<host>:<pid>`; every `python -m espnet_mtl.bin.*`
  started under it calls this at import. A direct child of the driver gets
  Linux's parent-death signal (SIGTERM the moment the driver dies, even by
  SIGKILL); a deeper descendant (under local/data.sh, a `$(...)` subshell or a
  job task) polls the driver's pid once a second and sends itself SIGTERM
  when it is gone. On another host (a Slurm task) the variable is ignored.
- `TaskGuard`: `run_jobs` starts its tasks in their own sessions (so that
  cancelling kills pipes too), which also takes them out of the reach of
  signals sent to the driver. The guard is a small process in a session of
  its own, holding the read end of a pipe from `run_jobs`; `run_jobs` tells it
  what to kill for each running task (its process group, or `scancel <job>`),
  and when the pipe reaches end-of-file without those entries removed, the
  owner died (SIGKILL, OOM killer, ...) and the guard kills what is left:
  SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

DRIVER_ENV = "ESPNET_MTL_DRIVER"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
KILL_GRACE_S = 5.0


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _exists(send_signal, target: int) -> bool:
    """Whether a process (os.kill) or process group (os.killpg) still exists."""
    try:
        send_signal(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def _alive(pid: int) -> bool:
    return _exists(os.kill, pid)


def _stop_because_driver_died(pid: int) -> None:
    print(f"{os.path.basename(sys.argv[0] or 'espnet_mtl')}: the stage driver (pid {pid}) is "
          "gone; stopping", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def _watch_driver(pid: int, poll_s: float) -> None:
    while _alive(pid):
        time.sleep(poll_s)
    _stop_because_driver_died(pid)


def driver_pid() -> int | None:
    """The pid of the stage driver this process runs under, on this host; else None."""
    host, _, pid = os.environ.get(DRIVER_ENV, "").rpartition(":")
    if not pid.isdigit() or host != socket.gethostname():
        return None
    return int(pid)


def die_with_driver(poll_s: float = 1.0) -> None:
    """Terminate this process (SIGTERM to itself) when the stage driver dies."""
    pid = driver_pid()
    if pid is None or pid == os.getpid():
        return
    if os.getppid() == pid and set_parent_death_signal():
        if os.getppid() != pid:  # the driver died before prctl took effect
            _stop_because_driver_died(pid)
        return
    if not _alive(pid):
        _stop_because_driver_died(pid)
        return
    threading.Thread(target=_watch_driver, args=(pid, poll_s), daemon=True,
                     name="die-with-driver").start()


class TaskGuard:
    """The owner side of the guard process (see the module docstring).

    `add(key, process_group=pgid)` or `add(key, command=[...])` registers what
    to do if this process dies while `key` runs; `remove(key)` when it ended;
    `close()` at the end (nothing left: the guard exits doing nothing).
    """

    def __init__(self):
        env = {k: v for k, v in os.environ.items() if k != DRIVER_ENV}  # it must outlive us
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "espnet_mtl.runner.lifetime"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, env=env, start_new_session=True, text=True)

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc.stdin is None or self._proc.stdin.closed:
                return
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()

    def add(self, key: str, *, process_group: int | None = None,
            command: list[str] | None = None) -> None:
        if process_group is not None:
            self._send(f"add {key} pg {process_group}")
        elif command:
            self._send(f"add {key} cmd {shlex.join(command)}")

    def remove(self, key: str) -> None:
        self._send(f"del {key}")

    def close(self) -> None:
        with self._lock:
            if self._proc.stdin and not self._proc.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=KILL_GRACE_S + 5)


def kill_process_groups(pgids: list[int]) -> None:
    """SIGTERM every group, then SIGKILL the groups still alive after the grace period."""
    alive = []
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
            alive.append(pgid)
    deadline = time.monotonic() + KILL_GRACE_S
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pgid for pgid in alive if _exists(os.killpg, pgid)]
    for pgid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def guard_main() -> int:
    """The guard process: read registrations until end-of-file, then clean up."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # outlive the terminal and the owner's group
    pending: dict[str, tuple[str, str]] = {}
    for line in sys.stdin:
        parts = line.rstrip("\n").split(" ", 3)
        if parts[0] == "add" and len(parts) == 4:
            pending[parts[1]] = (parts[2], parts[3])
        elif parts[0] == "del" and len(parts) >= 2:
            pending.pop(parts[1], None)
    if not pending:
        return 0
    print(f"espnet_mtl guard: the owner of {len(pending)} running task(s) died; stopping them",
          file=sys.stderr, flush=True)
    for kind, what in pending.values():
        if kind == "cmd":
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(shlex.split(what), timeout=60, stdout=subprocess.DEVNULL)
    kill_process_groups([int(what) for kind, what in pending.values() if kind == "pg"])
    return 0


if __name__ == "__main__":
    sys.exit(guard_main())
