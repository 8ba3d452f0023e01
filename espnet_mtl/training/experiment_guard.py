"""One trainer per experiment directory, and no resuming into a different model.

- `own_experiment(output_dir)`: an exclusive lock (`espnet_mtl.runner.locks`) on
  `<output_dir>/.trainer.lock` for the whole training run. A second trainer
  in the same directory (an orphan of a killed driver still running, a rerun
  of stage 11 in another terminal, a second Slurm job) is refused at start
  with the running one's pid and host, instead of both overwriting
  `checkpoint.pth` and `<N>epoch.pth`. The lock dies with its holder.
- `check_resumable(args, output_dir)`: `--resume true` into a directory whose
  `config.yaml` describes another model or other token lists (e.g. the same
  experiment name after `--tgt_nbpe` changed) would load a checkpoint that
  does not fit, or worse, one that fits by shape and decodes with the wrong
  vocabulary. Refuse, naming the field that differs.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import yaml

from espnet_mtl.fileio import read_lines
from espnet_mtl.runner.locks import hold_lock

# What a checkpoint's meaning depends on: the vocabularies and the network.
# Optimiser, schedule, batch and epoch options may change on resume.
MODEL_FIELDS = ("token_type", "src_token_type", "model", "model_conf", "input_size",
                "frontend", "frontend_conf", "normalize", "preencoder", "preencoder_conf",
                "encoder", "encoder_conf", "postencoder", "postencoder_conf",
                "decoder", "decoder_conf", "extra_asr_decoder", "extra_asr_decoder_conf",
                "extra_mt_decoder", "extra_mt_decoder_conf")
TOKEN_LISTS = {"token_list": "target token list", "src_token_list": "source token list"}


class ExperimentMismatch(RuntimeError):
    pass


def _tokens(value) -> list[str] | None:
    """A token list as ESPnet holds it: a file path (command line) or a list (config.yaml)."""
    if value is None or isinstance(value, list):
        return value
    return read_lines(value)


def _plain(value):
    """Compare like config.yaml stores it (tuples as lists, etc.)."""
    return yaml.safe_load(yaml.safe_dump(value))


def check_resumable(args: argparse.Namespace, output_dir: str | Path) -> None:
    """Raise ExperimentMismatch if resuming `output_dir` would load a checkpoint of another model."""
    output_dir = Path(output_dir)
    config = output_dir / "config.yaml"
    if not (output_dir / "checkpoint.pth").exists() or not config.exists():
        return  # nothing to resume: a fresh start
    with open(config, encoding="utf-8") as f:
        trained = yaml.safe_load(f) or {}
    advice = (f"its checkpoint does not fit this run. Give this run its own experiment "
              f"(st.sh: --st_tag NAME; ESPnet: --output_dir DIR), or remove {output_dir} "
              "to train it again from scratch")
    for name, what in TOKEN_LISTS.items():
        old, new = _tokens(trained.get(name)), _tokens(getattr(args, name, None))
        if old != new:
            sizes = f"{len(old or [])} tokens in {config}, {len(new or [])} in this run's " \
                    f"{getattr(args, name, None)}"
            detail = "same size, different tokens" if len(old or []) == len(new or []) else sizes
            raise ExperimentMismatch(f"{output_dir} was trained with a different {what} "
                                     f"({detail}): {advice}")
    # With input_size set there is no frontend: the build writes frontend None and
    # frontend_conf {} into config.yaml, while a fresh parse still says 'default'.
    no_frontend = getattr(args, "input_size", None) is not None
    for name in MODEL_FIELDS:
        if name not in trained and not hasattr(args, name):
            continue
        old, new = trained.get(name), _plain(getattr(args, name, None))
        if no_frontend and name in ("frontend", "frontend_conf"):
            new = None if name == "frontend" else {}
        if old != new:
            raise ExperimentMismatch(f"{output_dir} was trained with {name}: {old!r} "
                                     f"({config}), but this run has {name}: {new!r}: {advice}")


@contextlib.contextmanager
def own_experiment(output_dir: str | Path):
    """Hold `<output_dir>/.trainer.lock` for the block (raises locks.LockBusy if taken)."""
    output_dir = Path(output_dir)
    with hold_lock(output_dir / ".trainer.lock", f"training in {output_dir}",
                   advice="two trainers would overwrite each other's checkpoints: wait for "
                          "that one to finish, or stop it and run again (training resumes "
                          "from checkpoint.pth)"):
        yield
