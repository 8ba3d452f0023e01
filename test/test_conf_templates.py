"""The `mtl_st` config templates (seed 001) and their demo counterpart.

Paper-size templates are checked by key (ESPnet's parser, the model's
keyword arguments, the ESPnet choice names and their classes' arguments),
never built; the demo config and tiny versions of every ablation row are
built through MTLSTTask.build_model.
"""

import importlib.util
import inspect
import sys
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.tasks.abs_task import optim_classes, scheduler_classes
from espnet2.tasks.st import (
    decoder_choices,
    encoder_choices,
    frontend_choices,
    specaug_choices,
)
from espnet2.utils.get_default_kwargs import get_default_kwargs

from espnet_mtl.losses.consistency import CONSISTENCY_KINDS, DIRECTIONS
from espnet_mtl.models.mtl_st import MTLSTModel
from espnet_mtl.tasks.st import MTLSTTask

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "conf_templates" / "st"
MAIN = TEMPLATES / "train_st_mtl_regularization_horizon.yaml"
BASELINE = TEMPLATES / "train_st_conformer.yaml"
DEMO_CONF = ROOT / "egs2" / "mini_st" / "st1" / "conf"
DEMO = DEMO_CONF / "train_st_mtl.yaml"
DEMO_BASELINE = DEMO_CONF / "train_st.yaml"

TGT = ["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]
SRC = ["<blank>", "<unk>", "x", "y", "z", "w", "<sos/eos>"]


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_ablations",
                                                  TEMPLATES / "make_ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
ABLATIONS = sorted(TEMPLATES.glob(f"{GEN.PREFIX}*.yaml"))
DEMO_ABLATIONS = sorted((DEMO_CONF / "tuning").glob(f"{GEN.PREFIX}*.yaml"))
PAPER_SIZE = [MAIN] + ABLATIONS
ALL = PAPER_SIZE + [DEMO]


def _yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _kwargs(cls, drop=()):
    return set(inspect.signature(cls.__init__).parameters) - {"self", *drop}


def _token_files(tmp_path):
    (tmp_path / "tgt.txt").write_text("\n".join(TGT) + "\n")
    (tmp_path / "src.txt").write_text("\n".join(SRC) + "\n")
    return ["--token_list", str(tmp_path / "tgt.txt"),
            "--src_token_list", str(tmp_path / "src.txt")]


def _parse(config, tmp_path, monkeypatch):
    # ESPnet's ArgumentParser also looks at sys.argv (for --config): keep pytest's out.
    monkeypatch.setattr(sys, "argv", ["st_train"])
    return MTLSTTask.get_parser().parse_args(
        ["--config", str(config)] + _token_files(tmp_path))


# ---------------------------------------------------------------------------
# every template: parses, keys accepted
# ---------------------------------------------------------------------------
def test_the_expected_files_exist():
    names = {p.name for p in ABLATIONS}
    for row in ("ce_only", "mt_only", "rdrop_only", "consistency_only",
                "consistency_rdrop", "cr_enc_mse", "cr_logits_mse",
                "alpha_t_0.1", "alpha_t_0.5", "alpha_t_1.0"):
        assert f"{GEN.PREFIX}{row}.yaml" in names
    assert MAIN.exists() and DEMO.exists()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parses_with_espnet_parser(path, tmp_path, monkeypatch):
    # ESPnet's parser rejects a config key that is not an argument.
    args = _parse(path, tmp_path, monkeypatch)
    assert args.model == "mtl_st"
    assert args.model_conf == _yaml(path)["model_conf"]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_model_conf_keys_and_values(path):
    conf = _yaml(path)
    model_conf = conf["model_conf"]
    defaults = get_default_kwargs(MTLSTModel)
    assert set(model_conf) <= set(defaults), set(model_conf) - set(defaults)
    assert model_conf["consistency_type"] in CONSISTENCY_KINDS
    assert model_conf["consistency_direction"] in DIRECTIONS
    for key in ("asr_ctc_weight", "asr_att_weight", "mt_weight", "st_ctc_weight",
                "consistency_weight", "rdrop_weight", "lsm_weight"):
        assert isinstance(model_conf[key], float) and model_conf[key] >= 0, key
    # textual encoder: TextualEncoder passes these to ESPnet's TransformerEncoder
    # (it sets input_size / input_layer itself and reads output_size).
    text_keys = set(model_conf["textual_encoder_conf"])
    assert text_keys <= _kwargs(TransformerEncoder, drop=("input_size", "input_layer"))
    # the source vocabulary is needed, so the MT path / ASR CTC can be built
    assert model_conf["asr_ctc_weight"] > 0


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_choice_names_and_their_arguments(path):
    conf = _yaml(path)
    slots = [("encoder", encoder_choices), ("decoder", decoder_choices),
             ("frontend", frontend_choices), ("specaug", specaug_choices)]
    for slot, choices in slots:
        name = conf.get(slot, choices.default)
        if name is None:
            continue
        assert name in choices.choices(), (slot, name)
        keys = set(conf.get(f"{slot}_conf") or {})
        allowed = _kwargs(choices.get_class(name),
                          drop=("input_size", "vocab_size", "encoder_output_size"))
        assert keys <= allowed, (slot, keys - allowed)
    assert conf["optim"] in optim_classes
    assert set(conf["optim_conf"]) <= _kwargs(optim_classes[conf["optim"]], drop=("params",))
    assert conf["scheduler"] in scheduler_classes
    assert set(conf["scheduler_conf"]) <= _kwargs(scheduler_classes[conf["scheduler"]],
                                                  drop=("optimizer",))


# ---------------------------------------------------------------------------
# the main template against the paper / methods.md and the baseline
# ---------------------------------------------------------------------------
def test_main_template_values():
    conf = _yaml(MAIN)
    mc = conf["model_conf"]
    assert conf["model"] == "mtl_st"
    assert 0.1 <= mc["mt_weight"] <= 0.5            # paper: alpha_t peaks at 0.1-0.5
    assert mc["consistency_type"] == "softmax_kl"   # paper Table 1
    assert mc["consistency_direction"] == "mt_to_st"  # methods.md [choice]
    assert mc["consistency_weight"] > 0
    assert 3.0 <= mc["rdrop_weight"] <= 5.0         # R-drop / SimCR range
    assert mc["textual_encoder_conf"]["num_blocks"] == 6
    assert conf["decoder_conf"]["num_blocks"] == 6
    assert conf["encoder_conf"]["num_blocks"] == 12
    assert conf["encoder_conf"]["output_size"] == 256


def test_main_template_differs_from_baseline_only_in_model_and_batching():
    main, base = _yaml(MAIN), _yaml(BASELINE)
    for key in ("frontend_conf", "encoder", "encoder_conf", "decoder", "decoder_conf",
                "specaug", "specaug_conf", "optim", "optim_conf", "scheduler",
                "scheduler_conf", "max_epoch", "batch_type"):
        assert main[key] == base[key], key
    # half the bins, twice the accumulation: same utterances per update
    assert main["batch_bins"] * main["accum_grad"] == base["batch_bins"] * base["accum_grad"]


def test_demo_mirrors_demo_baseline_sizes_and_main_weights():
    demo, base, main = _yaml(DEMO), _yaml(DEMO_BASELINE), _yaml(MAIN)
    for key in ("frontend_conf", "encoder", "encoder_conf", "decoder", "decoder_conf",
                "ctc_conf", "batch_type", "batch_size", "max_epoch", "optim",
                "optim_conf", "scheduler", "scheduler_conf", "seed"):
        assert demo[key] == base[key], key
    assert demo["encoder_conf"]["num_blocks"] == 4
    assert demo["encoder_conf"]["output_size"] == 144
    assert demo["decoder_conf"]["num_blocks"] == 3
    assert demo["model_conf"]["textual_encoder_conf"]["num_blocks"] == 2
    weights = ("mt_weight", "consistency_weight", "consistency_type",
               "consistency_direction", "consistency_detach_mt",
               "consistency_temperature", "rdrop_weight", "lsm_weight",
               "length_normalized_loss")
    for key in weights:
        assert demo["model_conf"][key] == main["model_conf"][key], key
    assert "train_st_mtl_regularization_horizon.yaml" in DEMO.read_text()


# ---------------------------------------------------------------------------
# generator: committed files == generated, rows differ only where they say
# ---------------------------------------------------------------------------
def test_committed_ablations_equal_generator_output():
    wanted = GEN.outputs()
    assert sorted(wanted) == sorted(ABLATIONS + DEMO_ABLATIONS), \
        "ablation files and ROWS differ: rerun make_ablations.py"
    for path, text in wanted.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is out of date: run conf_templates/st/make_ablations.py")
    assert GEN.main(["--check"]) == 0


@pytest.mark.parametrize("row", GEN.ROWS, ids=lambda r: r[0])
def test_ablation_row_differs_from_main_only_in_its_overrides(row):
    name, overrides, _ = row
    main = _yaml(MAIN)
    ablation = _yaml(TEMPLATES / f"{GEN.PREFIX}{name}.yaml")
    expected = dict(main)
    expected["model_conf"] = {**main["model_conf"], **overrides}
    assert ablation == expected


@pytest.mark.parametrize("row", GEN.ROWS, ids=lambda r: r[0])
def test_demo_row_differs_from_demo_main_only_in_its_overrides(row):
    name, overrides, _ = row
    main = _yaml(DEMO)
    expected = dict(main)
    expected["model_conf"] = {**main["model_conf"], **overrides}
    assert _yaml(DEMO_CONF / "tuning" / f"{GEN.PREFIX}{name}.yaml") == expected


def test_generator_refuses_unknown_key():
    with pytest.raises(ValueError, match="found 0 times"):
        GEN.render("x", {"no_such_key": 1.0}, "note", MAIN.read_text())


# ---------------------------------------------------------------------------
# build the demo model (and tiny versions of every row) through the task
# ---------------------------------------------------------------------------
def _batch():
    g = torch.Generator().manual_seed(0)
    speech = torch.randn(2, 3200, generator=g)
    speech[1, 2400:] = 0.0
    return dict(
        speech=speech, speech_lengths=torch.tensor([3200, 2400]),
        text=torch.tensor([[2, 3, 4], [3, -1, -1]]), text_lengths=torch.tensor([3, 1]),
        src_text=torch.tensor([[2, 3, 4, 5], [3, 4, -1, -1]]),
        src_text_lengths=torch.tensor([4, 2]),
    )


def test_demo_config_builds_and_runs(tmp_path, monkeypatch):
    args = _parse(DEMO, tmp_path, monkeypatch)
    torch.manual_seed(0)
    model = MTLSTTask.build_model(args)
    assert isinstance(model, MTLSTModel)
    mc = _yaml(DEMO)["model_conf"]
    assert model.mt_weight == mc["mt_weight"]
    assert model.consistency_weight == mc["consistency_weight"]
    assert model.rdrop_weight == mc["rdrop_weight"]
    assert model.mt_embed is not None and model.ctc is not None
    assert model.textual_encoder.output_size() == 144
    assert len(model.textual_encoder.encoder.encoders) == 2
    assert len(model.decoder.decoders) == 3
    model.train()
    loss, stats, _ = model(**_batch())
    assert torch.isfinite(loss)
    for key in ("loss_st", "loss_mt", "loss_cr", "loss_rd", "loss_asr_ctc"):
        assert torch.isfinite(stats[key]) and stats[key] > 0, key


@pytest.mark.parametrize("row", GEN.ROWS, ids=lambda r: r[0])
def test_each_row_builds_at_demo_size(row, tmp_path, monkeypatch):
    # the row's model_conf on the demo sizes: every combination is constructible
    name, overrides, _ = row
    conf = _yaml(DEMO)
    row_conf = _yaml(TEMPLATES / f"{GEN.PREFIX}{name}.yaml")["model_conf"]
    conf["model_conf"] = {**row_conf,
                          "textual_encoder_conf": conf["model_conf"]["textual_encoder_conf"]}
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    model = MTLSTTask.build_model(_parse(path, tmp_path, monkeypatch))
    has_mt = row_conf["mt_weight"] > 0 or row_conf["consistency_weight"] > 0
    assert (model.mt_embed is not None) == has_mt
    assert model.consistency_type == row_conf["consistency_type"]
    assert model.rdrop_weight == row_conf["rdrop_weight"]


@pytest.mark.parametrize("row", ["E0", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8"])
def test_ablation_chain_configs_build(row, tmp_path, monkeypatch):
    """Issue 13's chain on the full demo: each row builds with the objectives it names."""
    path = DEMO_CONF / "tuning" / "chain" / f"{row}.yaml"
    args = _parse(path, tmp_path, monkeypatch)
    model = MTLSTTask.build_model(args)
    expected = set(_yaml(path)["model_conf"]["objectives"])
    assert set(model.objectives) == expected
    assert model.textual_encoder.num_blocks == (0 if row in ("E0", "E7", "E8") else 2)
    assert (model.mt_input_norm is not None) == (row == "E7")
    assert type(model.strategy).__name__ == ("WeightSchedule" if row == "E5" else "StaticWeights")


@pytest.mark.parametrize("path", [DEMO_CONF / "train_st_mtl_best.yaml",
                                  ROOT / "egs2" / "mini_st_low" / "st1" / "conf" / "train_st_mtl.yaml"],
                         ids=["mini_st_best", "mini_st_low"])
def test_issue13_demo_configs_build(path, tmp_path, monkeypatch):
    model = MTLSTTask.build_model(_parse(path, tmp_path, monkeypatch))
    assert set(model.objectives) == set(_yaml(path)["model_conf"]["objectives"])


@pytest.mark.parametrize("path", [DEMO_CONF / "train_st_imtl.yaml",
                                  ROOT / "egs2" / "mini_st_low" / "st1" / "conf" / "train_st_imtl.yaml"],
                         ids=["mini_st", "mini_st_low"])
def test_imtl_demo_configs_build_and_train(path, tmp_path, monkeypatch):
    """Issue 14: every IMTL part on, composed by config."""
    args = _parse(path, tmp_path, monkeypatch)
    model = MTLSTTask.build_model(args)
    conf = _yaml(path)
    assert set(model.objectives) == set(conf["model_conf"]["objectives"]) >= {"contrastive"}
    assert type(model.adapter).__name__ == "ShrinkLBMAdapter" and model.adapter._ctc is model.ctc
    assert model.block_hooks["local_to_global"].kernels == [5, 9]
    assert type(model.strategy).__name__ == "TaskNormWeights"
    assert args.mt_source_noise_prob == (0.1 if "mini_st_low" in str(path) else 0.0)
    model.train()
    loss, stats, _ = model(**_batch())
    assert torch.isfinite(loss) and stats["loss_contrastive"] > 0


# ---------------------------------------------------------------------------
# Objective Soups (issue 15): generated recipe configs
# ---------------------------------------------------------------------------
def _objective_soups():
    spec = importlib.util.spec_from_file_location(
        "make_objective_soups", TEMPLATES / "make_objective_soups.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OS = _objective_soups()
# the XLS-R ones name a hub model: test_hf_wav2vec2 builds one with a local model
OS_FILES = [path for path, _ in OS.outputs() if not path.stem.endswith("_xlsr")]


def test_objective_soups_configs_are_generated():
    r = subprocess.run([sys.executable, str(TEMPLATES / "make_objective_soups.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(OS_FILES) == 2 * len(OS.RECIPES)
    assert len(list(OS.outputs())) == len(OS_FILES) + len(OS.XLSR_RECIPES)


@pytest.mark.parametrize("path", OS_FILES, ids=lambda p: p.name)
def test_objective_soups_configs_build_their_strategy(path, tmp_path, monkeypatch):
    from espnet_mtl.training.strategies.modo import MoDo

    args = _parse(path, tmp_path, monkeypatch)
    model = MTLSTTask.build_model(args)
    conf = _yaml(path)
    assert set(model.objectives) == set(conf["model_conf"]["objectives"])
    recipe = path.name.replace("train_st_os_", "").replace("_demo", "").replace(".yaml", "")
    if conf["strategy"] == "modo":
        assert isinstance(model.strategy, MoDo)
        assert model.strategy.levels == [tuple(level) for level in OS.RECIPES[recipe][1]["levels"]]
        assert (model.strategy.gamma, model.strategy.rho) == (0.01, 0.001)
    if recipe.startswith("vm_msp"):
        model.strategy.start_epoch(1)
        assert model.strategy.etas() == pytest.approx([0.1, 0.0])
    if "_demo" not in path.name:  # the paper's optimiser: backbone and heads at their own rates
        (optim,) = MTLSTTask.build_optimizers(args, model)
        assert sorted(g["lr"] for g in optim.param_groups) == [5e-5, 5e-4]
        assert type(optim).__name__ == "AdamW"
