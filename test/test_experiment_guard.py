"""One trainer per experiment directory; no resuming into a different model (issue 10, defects 1 and 3)."""

import argparse
import os
import signal
import socket
import subprocess
import sys

import pytest
import yaml

from espnet_mtl.training.experiment_guard import ExperimentMismatch, check_resumable

from dry_run import dry_run
from test_task import _write_minimal

HOLD = ("import sys, time\n"
        "from espnet_mtl.training.experiment_guard import own_experiment\n"
        "with own_experiment(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(300)\n")


def _args(d):
    d = _write_minimal(d)
    return d, d / "conf.yaml", d / "tokens.txt"


def test_second_trainer_is_refused_naming_the_first_and_a_killed_one_leaves_no_lock(tmp_path):
    d, conf, tokens = _args(tmp_path)
    exp = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(exp)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = dry_run(d, conf, tokens, tokens, check=False)
        assert r.returncode == 1
        err = r.stderr.strip().splitlines()[-1]
        assert err.startswith(f"st_train: error: training in {exp} is already running: "
                              f"pid {holder.pid} on host {socket.gethostname()} since ")
        assert "overwrite each other's checkpoints" in err and "Traceback" not in r.stderr
        assert not (exp / "config.yaml").exists()  # refused before ESPnet wrote anything
    finally:
        holder.send_signal(signal.SIGKILL)  # a crashed owner: the kernel drops its lock
        holder.wait()
    assert dry_run(d, conf, tokens, tokens) == exp


def test_resuming_with_another_token_list_is_refused(tmp_path):
    d, conf, tokens = _args(tmp_path)
    exp = dry_run(d, conf, tokens, tokens)
    (exp / "checkpoint.pth").write_bytes(b"")  # something to resume from
    bigger = tmp_path / "tokens8000.txt"
    bigger.write_text(tokens.read_text().replace("<sos/eos>", "d\n<sos/eos>"))
    r = dry_run(d, conf, bigger, tokens, "--resume", "true", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (f"st_train: error: {exp} was trained with a different target token list "
            f"(6 tokens in {exp}/config.yaml, 7 in this run's {bigger})") in r.stderr
    assert "--st_tag" in r.stderr


def _trained(tmp_path, **conf):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "checkpoint.pth").write_bytes(b"")
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\na\n<sos/eos>\n")
    config = {"token_list": ["<blank>", "a", "<sos/eos>"], "src_token_list": None,
              "model": "mtl_st", "model_conf": {"mt_weight": 0.5}, "encoder": "conformer",
              "encoder_conf": {"num_blocks": 4}, "max_epoch": 20, "optim_conf": {"lr": 0.002}}
    config.update(conf)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    args = argparse.Namespace(**{**config, "token_list": str(tokens)})
    return exp, args


def test_what_may_change_on_resume_and_what_may_not(tmp_path):
    exp, args = _trained(tmp_path)
    check_resumable(args, exp)  # same model
    check_resumable(argparse.Namespace(**{**vars(args), "max_epoch": 40,
                                          "optim_conf": {"lr": 1e-3}}), exp)  # schedule: fine
    for name, value in (("encoder_conf", {"num_blocks": 6}), ("model", "espnet"),
                        ("model_conf", {"mt_weight": 0.0})):
        with pytest.raises(ExperimentMismatch, match=f"was trained with {name}: "):
            check_resumable(argparse.Namespace(**{**vars(args), name: value}), exp)
    (tmp_path / "tokens.txt").write_text("<blank>\nb\n<sos/eos>\n")
    with pytest.raises(ExperimentMismatch, match="different target token list "
                                                 r"\(same size, different tokens\)"):
        check_resumable(args, exp)
    os.unlink(exp / "checkpoint.pth")
    check_resumable(args, exp)  # nothing to resume: a fresh start may change anything


def test_a_run_without_frontend_resumes(tmp_path):
    # input_size set (raw waveform into hf_hubert): config.yaml holds frontend None
    # and frontend_conf {}, while a fresh parse of the same config says 'default'
    exp, args = _trained(tmp_path, input_size=1, frontend=None, frontend_conf={})
    check_resumable(argparse.Namespace(**{**vars(args), "frontend": "default",
                                          "frontend_conf": {"n_fft": 512}}), exp)
    with pytest.raises(ExperimentMismatch, match="was trained with input_size: 1"):
        check_resumable(argparse.Namespace(**{**vars(args), "input_size": None,
                                              "frontend": "default"}), exp)
