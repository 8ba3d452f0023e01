"""Run a command as an array of logged tasks (what cmd.sh puts in train_cmd etc.).

    run_jobs [options] [JOB=1:N] <log> <command...>

e.g. `python -m espnet_mtl.bin.run_jobs --max_jobs_run 4 JOB=1:8 exp/x/log/dump.JOB.log
python -m foo --part JOB`.  The variable name is any uppercase word (JOB, SPLIT, ...)
and is replaced in the command and the log path.  Options must come before the
JOB spec (everything after the log path belongs to the command).  A --config file
holds default options, one or more per line (e.g. `--backend local`, `--mem 4G`,
or Kaldi-style `default mem=4G`); command-line options override it.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from espnet_mtl.runner import slurm  # noqa: F401  (registers the slurm backend)
from espnet_mtl.fileio import read_lines
from espnet_mtl.runner.jobs import BACKENDS, JobsFailed, JobsInterrupted, run_jobs

JOB_SPEC = re.compile(r"^([A-Z][A-Z0-9_]*)=(\d+)(?::(\d+))?$")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_jobs", description=__doc__, allow_abbrev=False,
                                usage="%(prog)s [options] [JOB=1:N] <log> <command...>",
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    def opt(name: str, **kw) -> None:  # --foo_bar and Kaldi's --foo-bar
        names = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])
        p.add_argument(*names, dest=name, **kw)

    opt("backend", choices=sorted(BACKENDS), default=None)
    opt("config", metavar="FILE", help="file of default options")
    opt("backend_config", metavar="FILE",
        help="the backend's settings, e.g. conf/slurm.yaml for --backend slurm")
    opt("gpu", type=int, help="GPUs per task (0: none)")
    opt("mem", help="memory per task, e.g. 4G")
    opt("num_threads", type=int, help="CPU threads per task (sets OMP_NUM_THREADS)")
    opt("num_nodes", type=int)
    opt("time", help="wall-clock limit per task")
    opt("max_jobs_run", type=int, metavar="N", help="at most N tasks at a time")
    opt("extra", action="append", metavar="ARGS", help="backend-specific arguments")
    return p


def split_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Options (each takes a value, as `--opt v` or `--opt=v`) vs. the rest."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] == "--":
            return argv[:i], argv[i + 1:]
        i += 1 if ("=" in argv[i] or argv[i] in ("-h", "--help")) else 2
    return argv[:i], argv[i:]


def read_config(path: str) -> list[str]:
    args = []
    for lineno, line in enumerate(read_lines(path), 1):  # TableError (a ValueError): file:line
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "default" and len(words) == 2 and "=" in words[1]:
            key, value = words[1].split("=", 1)
            args += [f"--{key}", value]
        elif words[0].startswith("--"):
            args += words
        else:
            # Kaldi's grid-engine `command`/`option` lines have no meaning here.
            raise ValueError(f"{path}:{lineno}: expected options like '--mem 4G' or "
                             f"'default mem=4G', got '{line.strip()}'")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    opt_args, rest = split_options(argv)
    opts = parser.parse_args(opt_args)
    if opts.config:
        try:
            opts = parser.parse_args(read_config(opts.config) + opt_args)
        except (OSError, ValueError) as e:
            parser.error(str(e))

    job_var, job_range = "JOB", None
    if rest and (m := JOB_SPEC.match(rest[0])):
        job_var = m.group(1)
        start = int(m.group(2))
        job_range = (start, int(m.group(3)) if m.group(3) else start)
        rest = rest[1:]
    if len(rest) < 2:
        parser.error("expected [JOB=1:N] <log> <command...>")

    resources = {"gpu": opts.gpu, "mem": opts.mem, "num_threads": opts.num_threads,
                 "num_nodes": opts.num_nodes, "time": opts.time,
                 "extra": [a for x in opts.extra or [] for a in shlex.split(x)]}
    try:
        run_jobs(rest[1:], rest[0], job_range=job_range, backend=opts.backend or "local",
                 max_parallel=opts.max_jobs_run, resources=resources, job_var=job_var,
                 backend_config=opts.backend_config)
    except JobsFailed as e:
        print(f"run_jobs: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError, slurm.SlurmError) as e:  # bad arguments, unwritable log dir,
        # a request the cluster refuses
        print(f"run_jobs: error: {e}", file=sys.stderr)
        return 1
    except JobsInterrupted as e:
        print(f"run_jobs: {e}; tasks killed", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("run_jobs: interrupted; tasks killed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
