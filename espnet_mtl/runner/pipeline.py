"""Submit a whole recipe to Slurm as a chain of jobs, one per stage group.

    python -m espnet_mtl.bin.submit_pipeline --recipe egs2/must_c/st1 -- --tgt_lang de

Each group (`1`, `2`, ..., `6-9`, `10`, `11`, `12`, `13` by default) is one
sbatch job that runs `./run.sh --stage A --stop_stage B <run.sh options>` in
the recipe directory and depends on the previous group (`afterok`, with
`--kill-on-invalid-dep=yes`, so a failure cancels the rest of the chain
instead of leaving it pending). Nothing stays running on the login node.
Inside a job the stage's own parallel tasks run with `cmd_backend=local`
on the CPUs the job was given (`--cpus`), so no job waits on another's
allocation. GPU groups (`--gpu_stages`, default 11) go to the GPU partition
with `--gres` (conf/slurm.yaml, as for cmd_backend=slurm).

State lives in `<recipe>/<expdir>/pipeline/`: `jobs.tsv` (group, job id,
submit time), `logs/stage<A-B>.log` (each job's output), `stage<A-B>.ok`
(written when a group succeeds, holding the run.sh options it ran with) and
`timing.tsv` (start and end of every group, for the scheduling overhead).
Re-submitting with the same options resumes at the first group without an
`.ok`; different options start from the first requested group again.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from espnet_mtl.runner.jobs import Resources
from espnet_mtl.runner.slurm import SlurmConfig, SlurmError, explain_refusal, slurm_tool

DEFAULT_GROUPS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 9), (10, 10), (11, 11),
                  (12, 12), (13, 13))


@dataclass
class Group:
    first: int
    last: int
    gpu: int

    @property
    def name(self) -> str:
        return f"stage{self.first}" if self.first == self.last else f"stage{self.first}-{self.last}"


def plan_groups(stage: int, stop_stage: int, gpu_stages: set[int], gpu: int) -> list[Group]:
    if not 1 <= stage <= stop_stage <= 13:
        raise SlurmError(f"need 1 <= --stage <= --stop_stage <= 13, got {stage} and {stop_stage}")
    groups = []
    for first, last in DEFAULT_GROUPS:
        lo, hi = max(first, stage), min(last, stop_stage)
        if lo <= hi:
            uses_gpu = any(s in gpu_stages for s in range(lo, hi + 1))
            groups.append(Group(lo, hi, gpu if uses_gpu else 0))
    return groups


def signature(run_args: list[str]) -> str:
    """What a group's .ok remembers: the run.sh options (a change means redo)."""
    return hashlib.sha1(shlex.join(run_args).encode()).hexdigest()[:16] + " " + shlex.join(run_args)


def _queued(job_ids: list[str]) -> list[str]:
    if not job_ids:
        return []
    r = slurm_tool(["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)])
    return r.stdout.split() if r.returncode == 0 else []


def _job_script(recipe: Path, group: Group, run_args: list[str], state: Path, sig: str) -> str:
    run = shlex.join(["./run.sh", "--stage", str(group.first), "--stop_stage", str(group.last),
                      *run_args])
    ok = state / f"{group.name}.ok"
    timing = state / "timing.tsv"
    return "\n".join([
        "#!/bin/bash",
        f"# {group.name} of the recipe {recipe}, submitted by espnet_mtl.bin.submit_pipeline",
        "set -euo pipefail",
        f"cd {shlex.quote(str(recipe))}",
        f'echo "{group.name}\tstart\t$(date +%s.%N)" >> {shlex.quote(str(timing))}',
        # The stage's own parallel tasks run inside this job's allocation.
        f"cmd_backend=local {run}",
        f"printf '%s\\n' {shlex.quote(sig)} > {shlex.quote(str(ok))}",
        f'echo "{group.name}\tend\t$(date +%s.%N)" >> {shlex.quote(str(timing))}',
        "",
    ])


def submit_pipeline(recipe: str | os.PathLike, run_args: list[str], *, stage: int = 1,
                    stop_stage: int = 13, gpu_stages: set[int] = frozenset({11}), gpu: int = 1,
                    cpus: int = 1, mem: str | None = None, time_limit: str | None = None,
                    expdir: str = "exp", slurm_config: str | None = None,
                    dry_run: bool = False) -> list[tuple[Group, str]]:
    """Submit the chain; returns (group, job id) for each submitted group."""
    recipe = Path(recipe).resolve()
    if not (recipe / "run.sh").is_file():
        raise SlurmError(f"no run.sh in {recipe}: --recipe must be a recipe directory "
                         f"like egs2/must_c/st1")
    for opt in ("--stage", "--stop_stage"):
        if opt in run_args:
            raise SlurmError(f"give {opt} to submit_pipeline, not after '--' (each job sets it)")
    conf = SlurmConfig.load(slurm_config)
    state = recipe / expdir / "pipeline"
    (state / "logs").mkdir(parents=True, exist_ok=True)
    jobs_tsv = state / "jobs.tsv"

    previous = [line.split("\t")[1] for line in jobs_tsv.read_text().splitlines()[1:]] \
        if jobs_tsv.is_file() else []
    still = _queued(previous)
    if still:
        raise SlurmError(f"jobs of an earlier submission are still queued ({', '.join(still)}); "
                         f"wait for them or `scancel {' '.join(still)}` first")

    sig = signature(run_args)
    groups = plan_groups(stage, stop_stage, set(gpu_stages), gpu)
    # Resume: skip leading groups that already succeeded with these options.
    while groups and (state / f"{groups[0].name}.ok").is_file() and \
            (state / f"{groups[0].name}.ok").read_text().strip() == sig:
        print(f"submit_pipeline: {groups[0].name} already done with these options; skipping",
              file=sys.stderr)
        groups.pop(0)
    if not groups:
        print("submit_pipeline: every requested stage is done; nothing to submit", file=sys.stderr)
        return []
    for g in groups:  # what follows a redone stage must be redone too
        (state / f"{g.name}.ok").unlink(missing_ok=True)

    submitted: list[tuple[Group, str]] = []
    rows = ["group\tjob_id\tsubmitted"]
    for g in groups:
        script = state / f"{g.name}.sh"
        script.write_text(_job_script(recipe, g, run_args, state, sig), encoding="utf-8")
        flags = conf.flags(Resources(gpu=g.gpu, num_threads=cpus, mem=mem, time=time_limit))
        cmd = ["sbatch", "--parsable", f"--job-name={recipe.parent.name}_{g.name}",
               f"--output={state / 'logs' / g.name}.log", "--export=ALL",
               *(f for f, _ in flags)]
        if submitted:
            cmd += [f"--dependency=afterok:{submitted[-1][1]}", "--kill-on-invalid-dep=yes"]
        cmd.append(str(script))
        if dry_run:
            print(shlex.join(cmd))
            submitted.append((g, f"<{g.name}>"))
            continue
        r = slurm_tool(cmd)
        if r.returncode != 0:
            if submitted:  # do not leave a headless chain behind
                slurm_tool(["scancel", *(job for _, job in submitted)])
            raise SlurmError(f"{g.name}: " + explain_refusal(r.stderr, flags))
        job = r.stdout.strip().split(";")[0]
        submitted.append((g, job))
        rows.append(f"{g.name}\t{job}\t{time.time():.3f}")
        print(f"submit_pipeline: {g.name} -> job {job}" + (f" (after {submitted[-2][1]})"
                                                           if len(submitted) > 1 else ""),
              file=sys.stderr)
    if not dry_run:
        jobs_tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return submitted


def wait_pipeline(recipe: str | os.PathLike, submitted: list[tuple[Group, str]],
                  expdir: str = "exp", poll: float = 1.0) -> bool:
    """Block until the chain has left the queue; True when every group succeeded."""
    state = Path(recipe).resolve() / expdir / "pipeline"
    ids = [job for _, job in submitted]
    while _queued(ids):
        time.sleep(poll)
    ok = True
    for g, job in submitted:
        done = (state / f"{g.name}.ok").is_file()
        ok &= done
        print(f"submit_pipeline: {g.name} (job {job}): "
              f"{'done' if done else 'FAILED or cancelled; see ' + str(state / 'logs' / g.name) + '.log'}",
              file=sys.stderr)
    return ok


def stage_overheads(recipe: str | os.PathLike, expdir: str = "exp") -> dict[str, float]:
    """Seconds between a group's predecessor ending (or its submission) and its start."""
    state = Path(recipe).resolve() / expdir / "pipeline"
    submit = {}
    for line in (state / "jobs.tsv").read_text().splitlines()[1:]:
        name, _, t = line.split("\t")
        submit[name] = float(t)
    marks: dict[str, dict[str, float]] = {}
    for line in (state / "timing.tsv").read_text().splitlines():
        name, what, t = line.split("\t")
        marks.setdefault(name, {})[what] = float(t)
    out, prev_end = {}, None
    for name in submit:  # in submission (= chain) order
        if name not in marks or "start" not in marks[name]:
            break
        ready = submit[name] if prev_end is None else max(prev_end, submit[name])
        out[name] = round(marks[name]["start"] - ready, 3)
        prev_end = marks[name].get("end")
    return out
