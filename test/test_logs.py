from espnet_mtl.runner.logs import rotate_log


def test_rotate_log_as_espnets_launcher(tmp_path):
    log = tmp_path / "train.log"
    rotate_log(log)  # nothing to keep yet
    assert not list(tmp_path.iterdir())
    for run in ("first", "second", "third"):
        rotate_log(log)
        log.write_text(run)
    assert log.read_text() == "third"
    assert (tmp_path / "train.1.log").read_text() == "second"
    assert (tmp_path / "train.2.log").read_text() == "first"
    rotate_log(log, keep=3)  # train.2.log is the last kept: the oldest goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.1.log", "train.2.log"]
    assert (tmp_path / "train.1.log").read_text() == "third"
    assert (tmp_path / "train.2.log").read_text() == "second"
