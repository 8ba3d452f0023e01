"""Exclusive ownership of a directory or a job: one owner at a time, named when refused.

`hold_lock(path, what)` takes an advisory `flock` on `path` (created if
missing) and writes who holds it: pid, host, start time and command line.
The kernel drops an flock when its holder dies, however it dies (SIGKILL, OOM
killer, a node reboot on NFSv4), so a crashed owner never leaves the lock
stuck and there is no stale-pid guessing. A second holder is refused at once
with a `LockBusy` that names the running owner, so the user can wait for it
or stop it.

The lock file is never deleted: deleting a locked file lets a third process
lock a new file of the same name while the second still holds the old one.

The stage driver (st.sh) takes the same kind of lock with util-linux
`flock` and writes the same holder line, so both read alike.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import socket
import sys
import time
from pathlib import Path


class LockBusy(RuntimeError):
    """Someone else holds the lock; the message names them and what to do."""


def holder_line() -> str:
    """`pid=... host=... started=... command=...`: who this process is."""
    command = shlex.join([os.path.basename(sys.executable), *sys.argv]) if sys.argv else "?"
    return (f"pid={os.getpid()} host={socket.gethostname()} "
            f"started={time.strftime('%Y-%m-%dT%H:%M:%S')} command={command}\n")


def describe_holder(path: str | os.PathLike) -> str:
    """The holder line of a lock file, in words ('pid 12 on host x since ...')."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    fields = dict(part.split("=", 1) for part in text.split(" command=")[0].split() if "=" in part)
    if "pid" not in fields:
        return "another process (it has not written its pid yet)"
    command = text.split(" command=", 1)[1] if " command=" in text else "?"
    return (f"pid {fields['pid']} on host {fields.get('host', '?')} since "
            f"{fields.get('started', '?')} ({command})")


@contextlib.contextmanager
def hold_lock(path: str | os.PathLike, what: str, advice: str = ""):
    """Hold an exclusive lock on `path` for the `with` block, or raise LockBusy.

    `what` says what the lock guards ("training in exp/st_x"); `advice` is
    appended to the refusal (the default asks to wait or stop the holder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(path)
            pid = holder.split()[1] if holder.startswith("pid ") else None
            advice = advice or (f"wait for it to finish, or stop it (kill {pid} on its host) "
                                "and run again" if pid else "wait for it to finish and run again")
            raise LockBusy(f"{what} is already running: {holder} holds {path}; {advice}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_line().encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
