"""Completion marks of the stage driver: a stage's output is trusted only when marked.

Every stage declares what it reads and what it writes (st.sh's `stage_start`
/ `stage_end`). Before it runs:
- each input directory must hold a `.done` mark, and must still be the one
  that the input's own inputs were when it was made (see below), else the
  stage refuses, naming the stage to rerun;
- each output loses its mark first: `fresh` outputs are removed entirely (the
  stage writes them anew; a failed one leaves nothing), `resumed` ones
  (training) keep their content. A stage
  killed halfway therefore leaves outputs without marks, which the next stage
  refuses and a rerun redoes.
When it succeeds, each output gets a `.done` holding a unique stamp and the
stamps of the inputs it was made from. A stage that reruns gives its outputs
new stamps, so anything made from the old ones (a stats dir made from an
earlier token list, a model trained on an earlier stats dir) is refused as
stale instead of being silently mixed with the new outputs.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from espnet_mtl.fileio import atomic_open

MARK = ".done"


class StageError(RuntimeError):
    """An input is missing, incomplete or stale; the message says which stage to rerun."""


def read_mark(directory: str | os.PathLike) -> tuple[str, dict[str, str]] | None:
    """(stamp, {input: stamp it had}) of a completed directory; None without a mark."""
    path = Path(directory) / MARK
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    if not lines:
        return "", {}  # a mark from before stamps existed: complete, provenance unknown
    inputs = {}
    for line in lines[1:]:
        kind, _, rest = line.partition("\t")
        if kind == "input":
            name, _, stamp = rest.rpartition("\t")
            inputs[name] = stamp
    return lines[0].split("\t")[0], inputs


def check_input(directory: str, what_makes_it: str = "the stage that makes it") -> None:
    """Raise StageError unless `directory` is complete and made from current inputs."""
    mark = read_mark(directory)
    if mark is None:
        raise StageError(f"{directory} is missing or incomplete (no {directory}/{MARK}): "
                         f"run {what_makes_it} (see --stage)")
    for source, stamp in mark[1].items():
        current = read_mark(source)
        if current is None or current[0] != stamp:
            state = "is now incomplete" if current is None else "has been remade since"
            raise StageError(f"{directory} was made from {source}, which {state}: "
                             f"rerun the stage that makes {directory} (see --stage)")


def start(inputs: list[str], fresh: list[str], resumed: list[str]) -> None:
    """Check the inputs, then unmark (and for `fresh`, empty) the outputs."""
    for directory in inputs:
        check_input(directory)
    for directory in fresh:  # the stage creates them again
        shutil.rmtree(directory, ignore_errors=True)
        if os.path.lexists(directory):  # a file or a link where a directory goes
            os.unlink(directory)
    for directory in resumed:
        os.makedirs(directory, exist_ok=True)
        Path(directory, MARK).unlink(missing_ok=True)


def done(stage: int, inputs: list[str], outputs: list[str]) -> None:
    """Mark every output complete, recording the stamps of the inputs it was made from."""
    sources = []
    for directory in inputs:
        mark = read_mark(directory)
        if mark is None:
            raise StageError(f"{directory} lost its {MARK} while stage {stage} ran")
        sources.append(f"input\t{directory}\t{mark[0]}")
    for directory in outputs:
        stamp = f"{time.strftime('%Y-%m-%dT%H:%M:%S')}-{uuid.uuid4().hex[:12]}"
        with atomic_open(Path(directory) / MARK) as f:
            f.write("\n".join([f"{stamp}\tstage {stage}", *sources]) + "\n")
