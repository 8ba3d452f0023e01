"""Stage 2: speed-perturbed copies of a data dir."""

import pytest

from espnet_mtl.prep.datadir import validate_data_dir
from espnet_mtl.fileio import read_table
from espnet_mtl.prep.speed_perturb import speed_perturb


def _data_dir(tmp_path):
    d = tmp_path / "train"
    d.mkdir()
    (d / "wav.scp").write_text("ted_00001 /corpus/ted_1.wav\n")
    (d / "segments").write_text("ted_00001_0000500_0001500 ted_00001 0.5 1.5\n"
                                "ted_00001_0002000_0003300 ted_00001 2.0 3.3\n")
    (d / "utt2spk").write_text("ted_00001_0000500_0001500 ted_00001\n"
                               "ted_00001_0002000_0003300 ted_00001\n")
    (d / "text.tc.de").write_text("ted_00001_0000500_0001500 Hallo.\n"
                                  "ted_00001_0002000_0003300 Welt.\n")
    (d / "utt2num_samples").write_text("ted_00001_0000500_0001500 16000\n"
                                       "ted_00001_0002000_0003300 20800\n")
    return d


def test_factors_prefix_ids_and_scale_segments(tmp_path):
    out = tmp_path / "train_sp"
    n = speed_perturb(_data_dir(tmp_path), out, [0.9, 1.0, 1.1])
    assert n == 6
    validate_data_dir(out)
    segments = read_table(out / "segments")
    assert segments["ted_00001_0000500_0001500"] == "ted_00001 0.5 1.5"
    assert segments["sp0.9-ted_00001_0000500_0001500"] == "sp0.9-ted_00001 0.556 1.667"
    assert segments["sp1.1-ted_00001_0002000_0003300"] == "sp1.1-ted_00001 1.818 3.000"
    assert read_table(out / "reco2speed") == {
        "sp0.9-ted_00001": "0.9", "sp1.1-ted_00001": "1.1", "ted_00001": "1.0"}
    assert read_table(out / "utt2spk")["sp1.1-ted_00001_0002000_0003300"] == "sp1.1-ted_00001"
    assert read_table(out / "text.tc.de")["sp0.9-ted_00001_0002000_0003300"] == "Welt."
    # Sample counts no longer hold after perturbation; stage 3 recomputes them.
    assert not (out / "utt2num_samples").exists()


def test_bad_factor_and_double_perturbation_are_errors(tmp_path):
    d = _data_dir(tmp_path)
    with pytest.raises(ValueError, match="positive"):
        speed_perturb(d, tmp_path / "x", [0.0])
    speed_perturb(d, tmp_path / "sp", [0.9, 1.0])
    with pytest.raises(ValueError, match="already speed-perturbed"):
        speed_perturb(tmp_path / "sp", tmp_path / "sp2", [1.1])
