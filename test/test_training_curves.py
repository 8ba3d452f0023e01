"""Training curves drawn once from checkpoint.pth (training_curves, bin/plot_training)."""

from __future__ import annotations

import subprocess
import sys

import torch
from espnet2.train.reporter import Reporter

from espnet_mtl.training.curves import draw_training_curves


def _checkpoint(exp_dir, epochs=3):
    reporter = Reporter()
    for epoch in range(1, epochs + 1):
        reporter.set_epoch(epoch)
        for split in ("train", "valid"):
            with reporter.observe(split) as sub:
                sub.register({"loss": 10.0 / epoch, "acc": 0.3 * epoch})
                sub.next()
    exp_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"reporter": reporter.state_dict(), "model": {}}, exp_dir / "checkpoint.pth")


def test_draws_one_png_per_metric_from_the_checkpoint(tmp_path):
    _checkpoint(tmp_path / "exp")
    images = draw_training_curves(tmp_path / "exp")
    assert sorted(p.name for p in images.glob("*.png")) == ["acc.png", "loss.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in images.glob("*.png"))


def test_cli_draws_and_names_a_missing_checkpoint(tmp_path):
    _checkpoint(tmp_path / "exp")
    cmd = [sys.executable, "-m", "espnet_mtl.bin.plot_training"]
    r = subprocess.run(cmd + [str(tmp_path / "exp")], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "exp" / "images" / "loss.png").exists()
    r = subprocess.run(cmd + [str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode != 0
    assert f"{tmp_path / 'none' / 'checkpoint.pth'}: no checkpoint yet" in r.stderr
