"""Run an array of shell tasks with per-task logs (replaces Kaldi's run.pl/queue.pl/slurm.pl).

Kaldi semantics: the job variable (`JOB`) in every command argument and in the
log path is replaced by the task index; each task runs through bash and writes
everything to its own log, framed by a header (`# <command>`, `# Started at`)
and a footer (`# Accounting: ...`, `# Ended (code N) at ...`) that tools grep.

Where the tasks run is a backend (`BACKENDS`): `local` runs them as child
processes here; a cluster backend (e.g. Slurm array jobs) plugs in the same way
and maps the generic `Resources` onto its own options.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from espnet_mtl.runner.lifetime import TaskGuard, kill_process_groups

TAIL_LINES = 20


class JobsFailed(RuntimeError):
    """Some tasks exited non-zero; `logs` are their log files, in task order."""

    def __init__(self, message: str, logs: list[Path]):
        super().__init__(message)
        self.logs = logs


class JobsInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while tasks ran; they were killed before this was raised."""

    def __init__(self, message: str, signum: int = signal.SIGTERM):
        super().__init__(message)
        self.signum = signum


@dataclass
class Resources:
    """What each task asks for; backends map these onto their own options."""

    gpu: int = 0
    mem: str | None = None  # e.g. "4G"
    num_threads: int = 1
    num_nodes: int = 1
    time: str | None = None  # wall-clock limit, e.g. "2:00:00"
    extra: list[str] = field(default_factory=list)  # backend-specific free-form args

    @classmethod
    def from_dict(cls, d: dict | None) -> Resources:
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown resource(s) {sorted(unknown)}; known: "
                             f"{[f.name for f in fields(cls)]}")
        d = {k: v for k, v in d.items() if v is not None}  # None means "default"
        if isinstance(d.get("extra"), str):
            d["extra"] = shlex.split(d["extra"])
        return cls(**d)

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in asdict(self).items() if v not in (None, []))


@dataclass
class Task:
    index: int
    command: str  # a bash command line, job variable already substituted
    log_path: Path


def _now() -> str:
    return time.strftime("%a %b %d %H:%M:%S %Z %Y")


def log_header(task: Task, resources: Resources, note: str = "") -> str:
    command = "\n".join(f"# {line}" for line in task.command.splitlines() or [""])
    return (f"{command}\n# Started at {_now()}\n"
            f"# Resources: {resources.describe()}{note}\n#\n")


def log_footer(code: int, seconds: float, threads: int) -> str:
    return (f"# Accounting: time={round(seconds)} threads={threads}\n"
            f"# Ended (code {code}) at {_now()}\n")


class Backend(abc.ABC):
    """Runs an array of tasks: `submit` them all, `wait` for their exit codes
    (in task order), or `cancel` whatever still runs (on Ctrl-C / SIGTERM).

    Whatever a backend starts that could outlive this process (a process
    group, a cluster job) it registers with `self.guard` while it runs, so
    that the guard stops it if this process is killed outright.
    """

    def __init__(self, resources: Resources, max_parallel: int | None = None,
                 config: str | None = None, guard: TaskGuard | None = None):
        self.resources = resources
        self.max_parallel = max_parallel
        self.config = config  # a backend's own settings file (e.g. conf/slurm.yaml)
        self.guard = guard

    @abc.abstractmethod
    def submit(self, tasks: list[Task]) -> None: ...

    @abc.abstractmethod
    def wait(self) -> list[int]: ...

    @abc.abstractmethod
    def cancel(self) -> None: ...


BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str):
    def add(cls: type[Backend]) -> type[Backend]:
        BACKENDS[name] = cls
        return cls
    return add


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: taskset, cgroup cpusets)."""
    return len(os.sched_getaffinity(0))


def local_threads(resources: Resources, cores: int) -> int:
    """Math-library threads per local task: the task's ask (or an explicit
    OMP_NUM_THREADS), never more than the machine's cores."""
    asked = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(asked) if asked.isdigit() and int(asked) > 0 else resources.num_threads
    return max(1, min(threads, cores))


def local_parallel(tasks: int, threads: int, cores: int, max_parallel: int | None) -> int:
    """Tasks run at once: threads x tasks <= cores, so that no two tasks' math
    threads fight for a core (on 2 cores, 2 threads each would halve both)."""
    return max(1, min(tasks, max_parallel or tasks, cores // threads))


@register_backend("local")
class LocalBackend(Backend):
    """Tasks run as child processes of this one: at most `max_parallel` at a
    time, and never more than the cores allow (threads x running tasks <= cores).

    Each task gets its own session (process group), so cancelling can kill
    everything a task started, pipes included.
    """

    def submit(self, tasks: list[Task]) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen] = {}
        self._cancelled = threading.Event()
        cores = usable_cores()
        self._threads = local_threads(self.resources, cores)
        workers = local_parallel(len(tasks), self._threads, cores, self.max_parallel)
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._futures: list[Future] = [self._pool.submit(self._run, t) for t in tasks]

    def wait(self) -> list[int]:
        # A timeout keeps the main thread responsive to Ctrl-C and SIGTERM.
        while wait_futures(self._futures, timeout=0.2).not_done:
            pass
        self._pool.shutdown()
        return [f.result() for f in self._futures]

    def cancel(self) -> None:
        if not hasattr(self, "_cancelled"):
            return  # nothing was submitted
        self._cancelled.set()
        with self._lock:
            procs = list(self._running.values())
        kill_process_groups([p.pid for p in procs if p.poll() is None])
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, task: Task) -> int:
        if self._cancelled.is_set():
            return 128 + signal.SIGTERM
        r = self.resources
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(self._threads)
        note = " (gpu/mem/time are not enforced by the local backend)" if (
            r.gpu or r.mem or r.time) else ""
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(task.log_path, "w", encoding="utf-8") as log:
            log.write(log_header(task, r, note))
            log.flush()
            start = time.monotonic()
            try:
                # pipefail: a failing producer in `a | b` must fail the task.
                proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", task.command],
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
            except OSError as e:
                log.write(f"run_jobs: cannot start bash: {e}\n")
                code = 127
            else:
                with self._lock:
                    self._running[task.index] = proc
                if self.guard:
                    self.guard.add(f"task{task.index}", process_group=proc.pid)
                if self._cancelled.is_set():  # cancel() may have missed this one
                    _signal_group(proc, signal.SIGTERM)
                code = proc.wait()
                with self._lock:
                    del self._running[task.index]
                if self.guard:
                    self.guard.remove(f"task{task.index}")
                if code < 0:  # killed by a signal: report it the way bash does
                    code = 128 - code
            log.write(log_footer(code, time.monotonic() - start, self._threads))
        return code


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


# SIGHUP: the terminal running the driver was closed.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_signals_raise():
    """Turn SIGTERM / SIGHUP into JobsInterrupted so children get killed before we die."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise JobsInterrupted(f"terminated by {signal.Signals(signum).name}", signum)

    old = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"(cannot read {path}: {e})\n"


def make_tasks(command: list[str], log_path: str | os.PathLike,
               job_range: tuple[int, int] | None, job_var: str = "JOB") -> list[Task]:
    """Substitute the job variable; one shell string per task."""
    if isinstance(command, str):
        command = [command]
    if not command:
        raise ValueError("no command given")
    log_path = str(log_path)
    if job_range is None:
        shell = command[0] if len(command) == 1 else shlex.join(command)
        return [Task(1, shell, Path(log_path))]
    start, end = job_range
    if not 0 <= start <= end:
        raise ValueError(f"bad job range {job_var}={start}:{end}")
    if end > start and job_var not in log_path:
        raise ValueError(f"log path '{log_path}' does not contain {job_var}: "
                         f"the {end - start + 1} tasks would write to one log")
    tasks = []
    for i in range(start, end + 1):
        args = [a.replace(job_var, str(i)) for a in command]
        shell = args[0] if len(args) == 1 else shlex.join(args)
        tasks.append(Task(i, shell, Path(log_path.replace(job_var, str(i)))))
    return tasks


def run_jobs(command: list[str], log_path: str | os.PathLike, *,
             job_range: tuple[int, int] | None = None, backend: str = "local",
             max_parallel: int | None = None, resources: dict | None = None,
             job_var: str = "JOB", backend_config: str | None = None) -> None:
    """Run `command` once per index in `job_range` (inclusive; None: once), each
    with its own log; raise JobsFailed if any task fails.

    One argument is a bash command line (pipes work); several are shell-quoted
    and joined.  Ctrl-C / SIGTERM / SIGHUP kill every task's process group and
    re-raise; if this process is killed outright, its `TaskGuard` does it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; known: {sorted(BACKENDS)}")
    if max_parallel is not None and max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    tasks = make_tasks(command, log_path, job_range, job_var)
    with _stop_signals_raise():
        guard = TaskGuard()
        runner = BACKENDS[backend](Resources.from_dict(resources), max_parallel,
                                   backend_config, guard)
        try:
            runner.submit(tasks)
            codes = runner.wait()
        except BaseException:
            runner.cancel()
            raise
        finally:
            guard.close()
    failed = [(t, c) for t, c in zip(tasks, codes) if c != 0]
    if failed:
        listing = "\n".join(f"  {t.log_path} (code {c})" for t, c in failed)
        first = failed[0][0].log_path
        raise JobsFailed(
            f"{len(failed)} of {len(tasks)} task(s) failed:\n{listing}\n"
            f"--- last lines of {first} ---\n{_tail(first)}".rstrip("\n"),
            [t.log_path for t, _ in failed])
