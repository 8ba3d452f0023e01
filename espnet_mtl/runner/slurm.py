"""The Slurm backend of `run_jobs`: one array job per stage, waited for here.

`${train_cmd} JOB=1:N <log> <command>` with `cmd_backend=slurm` becomes one
`sbatch --array=1-N` job. Task i runs through the local backend on its
compute node (`run_jobs --backend local <log_i> <command_i>`), so its log has
the same header and footer (`# Ended (code N)`) as a local run, in the same
place. The driver polls `squeue` until the array has left the queue, reads each
task's exit code from its log footer and fails the stage naming the failed
tasks' logs. A task that never wrote its footer (cancelled, timed out, node
failure) gets Slurm's job state appended to its log and fails too. Ctrl-C or
SIGTERM of the driver cancels the job (`scancel`), and so does the
`TaskGuard` of `run_jobs` if the driver is killed outright.

Resources map onto sbatch flags through a YAML file (`conf/slurm.yaml`; see
`SlurmConfig`): --gpu N -> `--gres=gpu:N` on the GPU partition, --mem ->
`--mem`, --num_threads -> `--cpus-per-task`, --num_nodes -> `--nodes` (one
task per node, for `srun` + ESPnet's `--dist_launcher slurm`), --time ->
`--time`, plus account, QoS and extra flags. A request the cluster cannot
satisfy fails at submission with sbatch's message and the option behind it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from espnet_mtl.runner.jobs import Backend, Resources, Task, register_backend

POLL_S = (0.2, 0.5, 1.0, 2.0)  # squeue polling interval, growing while a job runs
_FOOTER = re.compile(r"^# Ended \(code (\d+)\)", re.M)


class SlurmError(RuntimeError):
    """sbatch refused a job, or Slurm's tools are missing; says which option caused it."""


@dataclass
class SlurmConfig:
    """`conf/slurm.yaml`: how the generic resources become sbatch flags."""

    partition: str | None = None          # CPU tasks (None: the cluster's default partition)
    gpu_partition: str | None = "gpu"     # tasks with --gpu > 0
    gres: str = "gpu:{gpu}"               # the --gres value for --gpu N (e.g. "gpu:a100:{gpu}")
    account: str | None = None
    qos: str | None = None
    time: str | None = None               # default wall-clock limit, e.g. "2-00:00:00"
    mem: str | None = None                # default memory per task, e.g. "8G"
    extra: list[str] = field(default_factory=list)      # added to every sbatch call
    gpu_extra: list[str] = field(default_factory=list)  # added to GPU jobs only

    @classmethod
    def load(cls, path: str | os.PathLike | None) -> SlurmConfig:
        if path is None or not Path(path).is_file():
            if path is not None:
                # A named file that is missing is a mistake worth stopping for.
                raise SlurmError(f"Slurm config {path} not found; copy "
                                 f"egs2/TEMPLATE/st1/conf/slurm.yaml there and edit it")
            return cls()
        import yaml

        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise SlurmError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SlurmError(f"{path}: unknown setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        for key in ("extra", "gpu_extra"):
            if isinstance(data.get(key), str):
                data[key] = shlex.split(data[key])
        return cls(**data)

    def flags(self, r: Resources) -> list[tuple[str, str]]:
        """(sbatch flag, the option or setting it comes from), in a stable order."""
        out: list[tuple[str, str]] = []
        if r.gpu > 0:
            if self.gpu_partition:
                out.append((f"--partition={self.gpu_partition}", "gpu_partition in the Slurm config "
                            f"(used for --gpu {r.gpu})"))
            out.append((f"--gres={self.gres.format(gpu=r.gpu)}", f"--gpu {r.gpu}"))
        elif self.partition:
            out.append((f"--partition={self.partition}", "partition in the Slurm config"))
        out.append((f"--cpus-per-task={max(r.num_threads, 1)}", f"--num_threads {r.num_threads}"))
        mem = r.mem or self.mem
        if mem:
            out.append((f"--mem={mem}", f"--mem {mem}" if r.mem else "mem in the Slurm config"))
        if r.num_nodes > 1:
            out.append((f"--nodes={r.num_nodes}", f"--num_nodes {r.num_nodes}"))
            out.append(("--ntasks-per-node=1", f"--num_nodes {r.num_nodes}"))
        limit = r.time or self.time
        if limit:
            out.append((f"--time={limit}", f"--time {limit}" if r.time else "time in the Slurm config"))
        if self.account:
            out.append((f"--account={self.account}", "account in the Slurm config"))
        if self.qos:
            out.append((f"--qos={self.qos}", "qos in the Slurm config"))
        out += [(a, "extra in the Slurm config") for a in self.extra]
        if r.gpu > 0:
            out += [(a, "gpu_extra in the Slurm config") for a in self.gpu_extra]
        out += [(a, "--extra") for a in r.extra]
        return out


# Words of sbatch's error messages -> the flag they are about.
_CULPRITS = (
    ("gres", "--gres"), ("generic resource", "--gres"), ("partition", "--partition"),
    ("cpu", "--cpus-per-task"), ("processor", "--cpus-per-task"), ("processor", "--nodes"),
    ("memory", "--mem"), ("time limit", "--time"),
    ("node", "--nodes"), ("account", "--account"), ("qos", "--qos"),
)


def explain_refusal(stderr: str, flags: list[tuple[str, str]]) -> str:
    """sbatch's own message plus the flag(s) and option(s) it points at."""
    message = stderr.strip() or "(no message)"
    low = message.lower()
    blamed = []
    for word, flag in _CULPRITS:
        if word in low:
            blamed += [(f, why) for f, why in flags if f.startswith(flag) and (f, why) not in blamed]
    if not blamed:
        blamed = flags
    listing = "; ".join(f"{f} (from {why})" for f, why in blamed)
    return f"sbatch refused the job: {message}\n  caused by: {listing}"


def slurm_tool(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found: the Slurm backend needs Slurm's client tools on "
                         f"PATH (tools/slurm/start_local_slurm.sh starts a local cluster)") from None


def job_state(job_id: str) -> str:
    """Slurm's state of one job or array task (e.g. '123_4'), or 'UNKNOWN'."""
    r = slurm_tool(["scontrol", "show", "job", "-o", job_id])
    m = re.search(r"\bJobState=(\S+)", r.stdout)
    return m.group(1) if m else "UNKNOWN"


@register_backend("slurm")
class SlurmBackend(Backend):
    """Tasks as one Slurm array job; see the module docstring."""

    job_id: str | None = None

    def submit(self, tasks: list[Task]) -> None:
        self.tasks = tasks
        self.conf = SlurmConfig.load(self.config)
        indices = [t.index for t in tasks]
        if indices != list(range(indices[0], indices[0] + len(indices))):
            raise SlurmError(f"task indices must be consecutive, got {indices}")
        qdir = tasks[0].log_path.parent / "q"
        qdir.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"\.\d+$", "", tasks[0].log_path.stem) or "run_jobs"
        script = qdir / f"{name}.sh"
        script.write_text(self._script(tasks), encoding="utf-8")
        array = f"{indices[0]}-{indices[-1]}"
        if self.max_parallel:
            array += f"%{self.max_parallel}"
        flags = self.conf.flags(self.resources)
        cmd = ["sbatch", "--parsable", f"--job-name={name}", f"--array={array}",
               f"--output={qdir}/slurm-%A_%a.out", "--export=ALL", f"--chdir={os.getcwd()}",
               *(f for f, _ in flags), str(script)]
        r = slurm_tool(cmd)
        if r.returncode != 0:
            raise SlurmError(explain_refusal(r.stderr, flags))
        self.job_id = r.stdout.strip().split(";")[0]
        if self.guard:
            self.guard.add("job", command=["scancel", self.job_id])
        print(f"run_jobs: submitted Slurm job {self.job_id} ({len(tasks)} task(s), "
              f"logs {tasks[0].log_path.parent})", file=sys.stderr)

    def _script(self, tasks: list[Task]) -> str:
        threads = max(self.resources.num_threads, 1)
        runner = [sys.executable, "-m", "espnet_mtl.bin.run_jobs", "--backend", "local",
                  "--num_threads", str(threads)]
        lines = ["#!/bin/bash", "# Written by espnet_mtl's Slurm backend: task i runs command i",
                 "# through the local backend, which writes its log (header and footer).",
                 'case "${SLURM_ARRAY_TASK_ID}" in']
        for t in tasks:
            lines.append(f"    {t.index}) exec {shlex.join(runner + [str(t.log_path), t.command])} ;;")
        lines += ["esac", 'echo "no task ${SLURM_ARRAY_TASK_ID} in this job" >&2', "exit 2", ""]
        return "\n".join(lines)

    def wait(self) -> list[int]:
        polls = 0
        while True:
            r = slurm_tool(["squeue", "-h", "-j", self.job_id, "-o", "%T"])
            # squeue fails for a job id it no longer knows: the job has finished.
            if r.returncode != 0 or not r.stdout.strip():
                break
            time.sleep(POLL_S[min(polls, len(POLL_S) - 1)])
            polls += 1
        if self.guard:
            self.guard.remove("job")
        return [self._exit_code(t) for t in self.tasks]

    def _exit_code(self, task: Task) -> int:
        try:
            text = task.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        codes = _FOOTER.findall(text)
        code = int(codes[-1]) if codes else None
        if code is not None and code < 128:
            return code
        # Killed by a signal (scancel, time limit, preemption) or gone without a
        # footer (node failure): say what Slurm did, in the log users will read.
        state = job_state(f"{self.job_id}_{task.index}")
        task.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(task.log_path, "a", encoding="utf-8") as log:
            log.write(f"# Slurm: job {self.job_id}_{task.index} ended {state} "
                      f"{'(the task was killed)' if codes else 'before the task finished'}; "
                      f"Slurm's own output: {task.log_path.parent}/q/"
                      f"slurm-{self.job_id}_{task.index}.out\n")
        if code is not None:
            return code
        return 143 if state.startswith("CANCELLED") else 1

    def cancel(self) -> None:
        if self.job_id:
            slurm_tool(["scancel", self.job_id])
            if self.guard:
                self.guard.remove("job")
            print(f"run_jobs: cancelled Slurm job {self.job_id}", file=sys.stderr)
