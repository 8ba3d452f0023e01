"""Submit a recipe's stages to Slurm as a chain of dependent jobs (see espnet_mtl.runner.pipeline).

    python -m espnet_mtl.bin.submit_pipeline --recipe egs2/must_c/st1 --cpus 8 \\
        --gpu 4 --gpu_stages 11 -- --tgt_lang de --ngpu 4
    # after a failure, the same command resubmits from the failed stage

Everything after `--` goes to the recipe's run.sh in every job.
"""

from __future__ import annotations

import argparse
import sys

from espnet_mtl.runner.cli import run_main
from espnet_mtl.runner.pipeline import stage_overheads, submit_pipeline, wait_pipeline
from espnet_mtl.runner.slurm import SlurmError

PROG = "submit_pipeline"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=".", help="recipe directory (default: .)")
    p.add_argument("--stage", type=int, default=1)
    p.add_argument("--stop_stage", type=int, default=13)
    p.add_argument("--gpu_stages", default="11",
                   help="stages that run on the GPU partition, e.g. '11' or '11 12' (default: 11)")
    p.add_argument("--gpu", type=int, default=1, help="GPUs per GPU job (default: 1)")
    p.add_argument("--cpus", type=int, default=1,
                   help="CPUs per job: the stage's --nj tasks share them (default: 1)")
    p.add_argument("--mem", default=None, help="memory per job, e.g. 16G")
    p.add_argument("--time", default=None, help="wall-clock limit per job, e.g. 1-00:00:00")
    p.add_argument("--expdir", default="exp", help="the recipe's --expdir (default: exp)")
    p.add_argument("--slurm_config", default=None,
                   help="sbatch settings (default: <recipe>/conf/slurm.yaml, else the template's)")
    p.add_argument("--dry_run", action="store_true", help="print the sbatch commands only")
    p.add_argument("--wait", action="store_true",
                   help="wait for the chain and report each stage and its scheduling overhead")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then run.sh options")
    return p


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from espnet_mtl.runner.recipes import ROOT

    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    config = args.slurm_config
    if config is None:
        local = Path(args.recipe) / "conf" / "slurm.yaml"
        config = str(local if local.is_file() else ROOT / "egs2/TEMPLATE/st1/conf/slurm.yaml")
    gpu_stages = {int(s) for s in args.gpu_stages.replace(",", " ").split()}
    submitted = submit_pipeline(args.recipe, run_args, stage=args.stage,
                                stop_stage=args.stop_stage, gpu_stages=gpu_stages, gpu=args.gpu,
                                cpus=args.cpus, mem=args.mem, time_limit=args.time,
                                expdir=args.expdir, slurm_config=config, dry_run=args.dry_run)
    if args.wait and submitted and not args.dry_run:
        ok = wait_pipeline(args.recipe, submitted, args.expdir)
        for name, seconds in stage_overheads(args.recipe, args.expdir).items():
            print(f"submit_pipeline: {name}: {seconds:.2f} s from ready to started", file=sys.stderr)
        if not ok:
            raise SlurmError("the chain did not finish; resubmit the same command to resume")


def main(argv: list[str] | None = None) -> int:
    return run_main(PROG, get_parser(), run, (SlurmError,), argv)


if __name__ == "__main__":
    sys.exit(main())
