"""Grid sweep over a recipe's model_conf coefficients (the regularization horizon).

    python -m espnet_mtl.bin.sweep --recipe egs2/mini_st/st1 \
        --base_config conf/train_st_mtl.yaml \
        --grid "consistency_weight=0,1.0 rdrop_weight=0,3.0 mt_weight=0.1,0.5" \
        --name horizon [--combination "consistency_weight=1,rdrop_weight=1,mt_weight=1"] \
        [--max_parallel N] [--run_args '--st_args "--max_epoch 1"'] [--collect_only]

    # on Slurm: stages 11-13 of every point as ONE array job (a task per point)
    cmd_backend=slurm python -m espnet_mtl.bin.sweep ... --run_args "--ngpu 1"

Writes <recipe>/exp/sweep_<name>/{configs/,points.tsv,logs/,results.tsv,RESULTS.md,
horizon.png}; each point trains into <recipe>/exp/st_sweep_<name>_<tag>/.
A rerun skips the points already scored; --collect_only only collects.
--backend (default $cmd_backend, else local, as in cmd.sh) says where the
points train: local processes, or one Slurm array job whose tasks ask for
--ngpu GPUs of --run_args (default 1) through --backend_config (default
$slurm_config, else the recipe's conf/slurm.yaml, else the template's). Inside
a task the point's run.sh runs with cmd_backend=local: no nested jobs.
(--run_point JOB --sweep_dir DIR is what each JOB task runs.)
"""

from __future__ import annotations

import argparse
import os
import sys

from espnet_mtl.runner.jobs import JobsFailed
from espnet_mtl.runner.slurm import SlurmError
from espnet_mtl.runner.sweep import SweepError, run_point, run_sweep


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # `sweep: error: ...`, exit 1 (argparse's default is 2)
        self.print_usage(sys.stderr)
        print(f"sweep: error: {message}", file=sys.stderr)
        sys.exit(1)


def get_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sweep", allow_abbrev=False, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="recipe dir (with run.sh)")
    p.add_argument("--base_config", help="training config, relative to the recipe or absolute")
    p.add_argument("--grid", help='"key=v1,v2 key2=v3,v4": model_conf keys and their values')
    p.add_argument("--name", help="sweep name: <recipe>/exp/sweep_<name>")
    p.add_argument("--combination", default=None,
                   help='weights of R = sum_k w_k*coef_k, "key=w,key2=w2" (default: all 1)')
    p.add_argument("--max_parallel", type=int, default=None,
                   help="points trained at once (default: 1 locally, all on Slurm)")
    p.add_argument("--run_args", default="", help="extra options for run.sh (one string)")
    p.add_argument("--backend", default=os.environ.get("cmd_backend") or "local",
                   help="local | slurm: where the points train (default: $cmd_backend, else local)")
    p.add_argument("--backend_config", default=None,
                   help="Slurm settings (default: $slurm_config, else <recipe>/conf/slurm.yaml, "
                        "else the template's)")
    p.add_argument("--collect_only", action="store_true",
                   help="only collect the results and redraw the plot")
    p.add_argument("--run_point", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--sweep_dir", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)

    def fail(msg: str) -> int:
        print(f"sweep: error: {msg}", file=sys.stderr)
        return 1

    try:
        if args.run_point is not None:
            if not args.sweep_dir:
                return fail("--run_point needs --sweep_dir")
            return run_point(args.sweep_dir, args.run_point)
        missing = [o for o in ("recipe", "base_config", "grid", "name") if not getattr(args, o)]
        if missing:
            return fail("missing " + ", ".join(f"--{o}" for o in missing))
        if args.max_parallel is not None and args.max_parallel < 1:
            return fail(f"--max_parallel must be >= 1, got {args.max_parallel}")
        result = run_sweep(args.recipe, args.base_config, args.grid, args.name,
                           combination=args.combination, run_args=args.run_args,
                           max_parallel=args.max_parallel, collect_only=args.collect_only,
                           backend=args.backend, backend_config=args.backend_config,
                           log=lambda m: print(m, flush=True))
    except (SweepError, SlurmError) as e:
        return fail(str(e))
    except JobsFailed as e:
        return fail(f"{e}\n(the results of the other points were collected; fix and rerun "
                    "to train the failed points only)")
    print((result["sweep_dir"] / "RESULTS.md").read_text(encoding="utf-8"), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
