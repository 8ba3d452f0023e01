"""Resuming after a kill during ESPnet's checkpoint saving."""

import torch

from espnet_mtl.training.checkpoints import is_complete, repair_interrupted_checkpoints


def _save_run(exp, epoch):
    model = {"w": torch.full((3,), float(epoch))}
    torch.save({"model": model, "reporter": {"epoch": epoch, "stats": {}}, "optimizers": [],
                "schedulers": [], "scaler": None}, exp / "checkpoint.pth")
    for e in range(1, epoch + 1):
        torch.save({"w": torch.full((3,), float(e))}, exp / f"{e}epoch.pth")


def _truncate(path, keep=100):
    path.write_bytes(path.read_bytes()[:keep])


def test_complete_files_are_left_alone(tmp_path):
    _save_run(tmp_path, 2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert repair_interrupted_checkpoints(tmp_path) == []
    assert before == {p.name: p.read_bytes() for p in tmp_path.iterdir()}


def test_snapshot_truncated_after_checkpoint_is_rebuilt(tmp_path):
    _save_run(tmp_path, 2)
    (tmp_path / "2epoch.pth").write_bytes(b"")  # killed right after checkpoint.pth
    actions = repair_interrupted_checkpoints(tmp_path)
    assert len(actions) == 1 and "rewritten" in actions[0]
    assert torch.equal(torch.load(tmp_path / "2epoch.pth")["w"], torch.full((3,), 2.0))


def test_other_truncated_snapshot_is_removed(tmp_path):
    _save_run(tmp_path, 2)
    _truncate(tmp_path / "1epoch.pth")
    assert "removed" in repair_interrupted_checkpoints(tmp_path)[0]
    assert not (tmp_path / "1epoch.pth").exists() and (tmp_path / "2epoch.pth").exists()


def test_truncated_checkpoint_is_moved_aside(tmp_path):
    _save_run(tmp_path, 2)
    _truncate(tmp_path / "checkpoint.pth")
    assert not is_complete(tmp_path / "checkpoint.pth")
    actions = repair_interrupted_checkpoints(tmp_path)
    assert "restarts from epoch 1" in actions[0]
    assert not (tmp_path / "checkpoint.pth").exists()
    assert (tmp_path / "checkpoint.pth.truncated").exists()
