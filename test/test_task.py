"""Our ESPnet task: the model choice, config round trip, registration."""

import sys

import yaml

from espnet_mtl.tasks.st import MTLSTTask, model_choices

from dry_run import dry_run


def _write_minimal(tmp_path):
    tokens = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n")
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
    dry_run(d, d / "conf.yaml", d / "tokens.txt", d / "tokens.txt")
    saved = yaml.safe_load((d / "exp" / "config.yaml").read_text())
    assert saved["model"] == "espnet"
    assert saved["model_conf"]["asr_weight"] == 0.3
    assert saved["encoder_conf"]["output_size"] == 16
    # The saved config builds the same model class through our task.
    model, args = MTLSTTask.build_model_from_file(d / "exp" / "config.yaml", None, "cpu")
    assert type(model).__name__ == "ESPnetSTModel"
    assert model.src_token_list == ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]


def test_inference_entry_point_binds_our_task_only_while_it_runs(monkeypatch, tmp_path):
    import espnet2.bin.st_inference as st_inference
    from espnet2.tasks.st import STTask

    from espnet_mtl.bin import st_inference as ours

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("model: mtl_st\n")
    seen = []
    monkeypatch.setattr(st_inference, "inference", lambda **kw: seen.append(st_inference.STTask))
    ours.main(["--output_dir", "x", "--data_path_and_name_and_type", "a,speech,sound",
               "--st_train_config", "c.yaml"])
    assert seen == [MTLSTTask]                 # bound while decoding
    assert st_inference.STTask is STTask       # and ESPnet's again afterwards
    # the module-level names of ESPnet's bin modules
    assert ours.get_parser().parse_args(["--output_dir", "o", "--data_path_and_name_and_type",
                                         "a,b,c", "--task", "mt"]).task == "mt"
    assert issubclass(ours.Speech2Text, st_inference.Speech2Text)
