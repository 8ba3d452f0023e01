"""Our ESPnet task: the model choice, config round trip, registration."""

import subprocess
import sys

import yaml

from espnet_mtl.tasks.st import MTLSTTask, model_choices


def _write_minimal(tmp_path):
    tokens = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (tmp_path / "wav.scp").write_text("u1 /dev/null\n")
    (tmp_path / "text").write_text("u1 a b\n")
    (tmp_path / "shape").write_text("u1 16000\n")
    conf = {
        "model": "espnet",
        "model_conf": {"asr_weight": 0.3, "mtlalpha": 1.0},
        "encoder": "conformer",
        "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                         "num_blocks": 1, "cnn_module_kernel": 3},
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "frontend_conf": {"n_fft": 128, "hop_length": 64, "n_mels": 8},
    }
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(conf))
    return tmp_path


def test_parser_has_model_choice_with_espnet_default(monkeypatch):
    # ESPnet's ArgumentParser also looks at sys.argv (for --config): keep pytest's out.
    monkeypatch.setattr(sys, "argv", ["st_train"])
    parser = MTLSTTask.get_parser()
    args = parser.parse_args(["--token_list", "x"])
    assert args.model == "espnet"
    assert "espnet" in model_choices.choices()
    # model_conf defaults follow the chosen model (ESPnetSTModel's keyword args).
    assert "asr_weight" in MTLSTTask.get_default_config()["model_conf"]


def test_dry_run_config_round_trip(tmp_path):
    d = _write_minimal(tmp_path)
    cmd = [sys.executable, "-m", "espnet_mtl.bin.st_train", "--dry_run", "true",
           "--config", str(d / "conf.yaml"), "--token_list", str(d / "tokens.txt"),
           "--src_token_list", str(d / "tokens.txt"), "--token_type", "char",
           "--src_token_type", "char",
           "--train_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
           "--train_data_path_and_name_and_type", f"{d}/text,text,text",
           "--valid_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
           "--valid_data_path_and_name_and_type", f"{d}/text,text,text",
           "--train_shape_file", f"{d}/shape", "--valid_shape_file", f"{d}/shape",
           "--output_dir", str(d / "exp"), "--ngpu", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    saved = yaml.safe_load((d / "exp" / "config.yaml").read_text())
    assert saved["model"] == "espnet"
    assert saved["model_conf"]["asr_weight"] == 0.3
    assert saved["encoder_conf"]["output_size"] == 16
    # The saved config builds the same model class through our task.
    model, args = MTLSTTask.build_model_from_file(d / "exp" / "config.yaml", None, "cpu")
    assert type(model).__name__ == "ESPnetSTModel"
    assert model.src_token_list == ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]


def test_inference_entry_point_binds_our_task():
    import espnet2.bin.st_inference as st_inference

    from espnet_mtl.bin import st_inference as ours

    original = st_inference.STTask
    try:
        try:
            ours.main(["--help"])
        except SystemExit:
            pass
        assert st_inference.STTask is MTLSTTask
    finally:
        st_inference.STTask = original
