"""Shared by the task and model tests: a `--dry_run` of our training entry point.

ESPnet's dry run builds the model and writes config.yaml without training;
it needs a one-utterance data set, which this writes next to the config.
"""

import subprocess
import sys
from pathlib import Path


def dry_run(d: Path, config: Path, token_list: Path, src_token_list: Path, *extra: str,
            check: bool = True):
    """Run st_train --dry_run in a subprocess; returns the output dir (check=False: the
    CompletedProcess)."""
    (d / "wav.scp").write_text("u1 /dev/null\n")
    (d / "text").write_text("u1 a b\n")
    (d / "shape").write_text("u1 16000\n")
    cmd = [sys.executable, "-m", "espnet_mtl.bin.st_train", "--dry_run", "true",
           "--config", str(config), "--token_list", str(token_list),
           "--src_token_list", str(src_token_list), "--token_type", "char",
           "--src_token_type", "char", "--ngpu", "0", "--output_dir", str(d / "exp")]
    for split in ("train", "valid"):
        cmd += [f"--{split}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
                f"--{split}_data_path_and_name_and_type", f"{d}/text,text,text",
                f"--{split}_shape_file", f"{d}/shape"]
    r = subprocess.run(cmd + list(extra), capture_output=True, text=True)
    if not check:
        return r
    assert r.returncode == 0, r.stderr[-3000:]
    return d / "exp"
