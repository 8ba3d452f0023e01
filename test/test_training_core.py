"""The composable core's training side: strategies in ESPnet's loop, per-objective
gradients, strategy state in checkpoints, the gradient-conflict probe."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.reporter import Reporter

from espnet_mtl.tasks.st import MTLSTTask
from espnet_mtl.training import gradients
from espnet_mtl.training.probes import grad_conflict
from espnet_mtl.training.strategies import StrategyError, build_strategy
from espnet_mtl.training.strategies.base import Strategy
from espnet_mtl.training.trainer import MTLTrainer

import static_reference as ref
from test_mixed_source import _train_cmd, mixed_data  # noqa: F401 (fixture)

REFERENCE = json.loads(ref.REFERENCE.read_text())


def _espnet_epoch(model, tmp_path, case, *options):
    """ref.STEPS updates of ESPnet's train_one_epoch (our Trainer) with SGD, as the reference."""
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(tmp_path / "conf.yaml"), "--token_list", str(tmp_path / "tgt.txt"),
         "--src_token_list", str(tmp_path / "src.txt"), "--output_dir", str(tmp_path / "exp"),
         "--grad_clip", "5", *options])
    trainer_options = MTLTrainer.build_options(args)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    reporter = Reporter()
    reporter.set_epoch(1)
    make_batch = ref.CASES[case][1]
    batches = [([f"u{i}"], make_batch()) for i in range(ref.STEPS)]
    torch.manual_seed(1234)
    with reporter.observe("train") as sub:
        MTLTrainer.train_one_epoch(model, batches, [optim], [None], None, sub, None,
                                   trainer_options, DistributedOption(distributed=False))
    return reporter


def _params_match(model, expected, rtol):
    for name, (total, abs_total) in expected["params"].items():
        p = dict(model.named_parameters())[name.replace("encoder_proj.", "adapter.proj.")]
        got = p.detach().double()
        assert float(got.sum()) == pytest.approx(total, rel=rtol, abs=rtol), name
        assert float(got.abs().sum()) == pytest.approx(abs_total, rel=rtol, abs=rtol), name


@pytest.mark.parametrize("case", list(ref.CASES))
def test_static_reproduces_the_pre_refactor_training(case, tmp_path, monkeypatch):
    expected = REFERENCE[case]
    # the model's forward (what ESPnet's loop back-propagates) step by step
    got = ref.run_case(case, tmp_path / "forward", monkeypatch=monkeypatch)
    for step, (a, b) in enumerate(zip(got["steps"], expected["steps"])):
        assert set(a) == set(b), step
        for key, value in b.items():
            if value is None:
                assert a[key] is None, (step, key)
            else:
                assert a[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, key)
    renamed = sorted(k.replace("encoder_proj.", "adapter.proj.") for k in expected["state_dict_keys"])
    assert got["state_dict_keys"] == renamed
    # and ESPnet's train_one_epoch under --strategy static: the same parameters
    model_conf, _, kw = ref.CASES[case]
    model = ref._build(tmp_path, monkeypatch, model_conf, seed=0, **kw)
    _espnet_epoch(model, tmp_path, case)
    _params_match(model, expected, rtol=1e-5)


def test_gradient_sum_gives_the_static_update(tmp_path, monkeypatch):
    case = "all_terms"
    model_conf, _, kw = ref.CASES[case]
    model = ref._build(tmp_path, monkeypatch, model_conf, seed=0, **kw)
    model.strategy = build_strategy("gradient_sum", None, {
        n: w for n, w in model.objective_weights.items() if n in model.objectives})
    _espnet_epoch(model, tmp_path, case, "--strategy", "gradient_sum")
    _params_match(model, REFERENCE[case], rtol=1e-4)


def test_objective_gradients_equal_one_loss_at_a_time():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    head = torch.nn.Linear(4, 1)  # only the second loss reaches it
    x = torch.randn(5, 3)

    def losses():
        h = net[1](net[0](x))
        return {"a": net[2](h).pow(2).sum(), "b": head(h).sin().sum(), "c": None}

    params = list(net.parameters()) + list(head.parameters())
    by_hand = {}
    for name in ("a", "b"):
        for p in params:
            p.grad = None
        losses()[name].backward()
        by_hand[name] = [None if p.grad is None else p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    got = gradients.objective_gradients(losses(), params)
    assert set(got) == {"a", "b"}  # a None loss has no gradient
    for name in ("a", "b"):
        for g, h in zip(got[name], by_hand[name]):
            assert (g is None) == (h is None)
            if g is not None:
                assert torch.allclose(g, h, atol=1e-7)
    assert all(p.grad is None for p in params)  # .grad untouched
    # the surrogate's backward adds exactly the combined gradient
    combined = gradients.weighted_sum(got, {"a": 0.5, "b": 2.0})
    gradients.surrogate_loss(params, combined).backward()
    for p, g, ga, gb in zip(params, combined, by_hand["a"], by_hand["b"]):
        expect = 0.5 * (ga if ga is not None else 0) + 2.0 * (gb if gb is not None else 0)
        assert torch.allclose(p.grad, torch.as_tensor(expect).expand_as(p.grad), atol=1e-6)


def test_weight_schedule_ramps_and_survives_resume(mixed_data, tmp_path):
    d, sets = mixed_data
    out = tmp_path / "exp"
    schedule = "schedule={consistency: {start: 0.0, warmup_steps: 4}}"
    cmd = _train_cmd(d, sets, out, "--strategy", "weight_schedule", "--strategy_conf", schedule)
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    epoch1 = [line for line in r.stderr.splitlines() if "1epoch results" in line][0]
    first = torch.load(out / "checkpoint.pth", weights_only=False)["model"]
    per_epoch = int(first["strategy.updates"])
    assert per_epoch > 0
    # resume for a second epoch: the ramp continues from the saved update count
    r = subprocess.run(cmd + ["--max_epoch", "2", "--resume", "true"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "The training was resumed" in r.stderr
    second = torch.load(out / "checkpoint.pth", weights_only=False)["model"]
    assert int(second["strategy.updates"]) == 2 * per_epoch
    logged = [line for line in r.stderr.splitlines() if "2epoch results" in line]
    assert logged and "weight_consistency=" in logged[0]
    # the logged epoch means lie on the ramp 0.5 * min(t / 4, 1) (ESPnet's reporter
    # weights each update by its batch size, hence the tolerance)
    for line, steps in ((epoch1, range(per_epoch)), (logged[0], range(per_epoch, 2 * per_epoch))):
        mean = float(line.split("weight_consistency=")[1].split(",")[0])
        expect = sum(0.5 * min(t / 4, 1.0) for t in steps) / per_epoch
        assert mean == pytest.approx(expect, abs=0.02), (line, expect)


def test_probe_hook_writes_csv_and_plots(mixed_data, tmp_path):
    d, sets = mixed_data
    out = tmp_path / "exp"
    r = subprocess.run(_train_cmd(d, sets, out, "--grad_probe_interval", "1"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = grad_conflict.read_rows(out / grad_conflict.CSV_NAME)
    assert {r["objective"] for r in rows} == {"asr_ctc", "mt_ce", "consistency"}
    modules = {r["name"] for r in rows if r["scope"] == "module"}
    # (the adapter is the identity here: equal sizes, no parameters)
    assert modules == {"acoustic encoder", "textual encoder", "decoder"}
    # ASR CTC reaches only the acoustic encoder: no cosine on the decoder
    ctc_dec = [r for r in rows if r["objective"] == "asr_ctc" and r["name"] == "decoder"]
    assert ctc_dec and all(r["cosine"] != r["cosine"] for r in ctc_dec)  # NaN = empty
    # MT CE and ST CE share the decoder: a real cosine in [-1, 1]
    mt_dec = [r["cosine"] for r in rows if r["objective"] == "mt_ce" and r["name"] == "decoder"]
    assert mt_dec and all(-1 <= c <= 1 for c in mt_dec)
    for png in ("grad_conflict_layers.png", "grad_conflict_training.png"):
        assert (out / "images" / png).stat().st_size > 1000


def test_probe_cosine_on_known_gradients():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    names = ["decoder.decoders.0.w", "encoder.encoders.1.w"]
    grads = {"st_ce": [torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])],
             "mt_ce": [torch.tensor([-2.0, 0.0]), None],
             "asr_ctc": [None, torch.tensor([0.0, 0.0, 3.0])]}
    rows = {(r["objective"], r["scope"], r["name"]): r["cosine"]
            for r in grad_conflict.conflicts(grads, names, params, "st_ce")}
    assert rows[("mt_ce", "module", "decoder")] == pytest.approx(-1.0)
    assert rows[("mt_ce", "layer", "decoder.0")] == pytest.approx(-1.0)
    assert rows[("mt_ce", "module", "acoustic encoder")] is None  # not reached
    assert rows[("asr_ctc", "layer", "encoder.1")] == pytest.approx(0.0)
    # with both parameters in one module the cosine is over the joined vector
    joined = grad_conflict.conflicts(grads, names, params, "st_ce",
                                     modules={"all": ("decoder.", "encoder.")})
    cos = {r["objective"]: r["cosine"] for r in joined if r["scope"] == "module"}
    assert cos["mt_ce"] == pytest.approx(-2.0 / (3 ** 0.5 * 2.0))


def test_bad_strategy_options_are_refused():
    class NoAccum(Strategy):
        supports_accum_grad = False

    with pytest.raises(StrategyError, match="--accum_grad"):
        NoAccum.check(accum_grad=2, use_amp=False, name="no_accum")
    from espnet_mtl.training.strategies.gradient_sum import GradientSum

    with pytest.raises(StrategyError, match="--use_amp"):
        GradientSum.check(accum_grad=1, use_amp=True, name="gradient_sum")
    with pytest.raises(ValueError, match="choices: gradient_sum, modo, static, task_norm, "
                                         "weight_schedule"):
        build_strategy("pcgrad", None, {"st_ce": 1.0})
    with pytest.raises(StrategyError, match="schedule.mt_ce: not an objective that is on"):
        build_strategy("weight_schedule", {"schedule": {"mt_ce": {"warmup_steps": 3}}},
                       {"st_ce": 1.0})


def test_objective_without_a_source_is_refused_at_start(mixed_data, tmp_path):
    d, sets = mixed_data
    cmd = _train_cmd(d, sets, tmp_path / "exp", "--model_conf", "asr_att_weight=0.0",
                     mt=False, asr=False)
    # drop the ST data's transcript: mt_ce and consistency then have no source
    i = cmd.index(f"{sets['st']}/src_text,src_text,text")
    del cmd[i - 1:i + 1]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0
    assert "objective 'asr_ctc' reads speech, src_text, but no training source" in r.stderr


def test_probe_cli_on_a_trained_checkpoint(mixed_data, tmp_path):
    d, sets = mixed_data
    out = tmp_path / "exp"
    r = subprocess.run(_train_cmd(d, sets, out, mt=False, asr=False),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    cmd = [sys.executable, "-m", "espnet_mtl.bin.grad_probe", "--config",
           str(out / "config.yaml"), "--model_file", str(out / "1epoch.pth"), "--batches", "2",
           "--batch_size", "3"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = grad_conflict.read_rows(out / "grad_probe" / grad_conflict.CSV_NAME)
    assert {r["step"] for r in rows} == {1, 2}
    assert {r["objective"] for r in rows} == {"asr_ctc", "mt_ce", "consistency"}
    assert (out / "grad_probe" / "grad_conflict_layers.png").exists()
    r = subprocess.run(cmd[:-4] + ["--model_file", str(out / "missing.pth")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "missing.pth does not exist" in r.stderr


def test_validation_skips_rdrop_doubling_and_the_mt_pass(tmp_path, monkeypatch):
    model = ref._build(tmp_path, monkeypatch, dict(ref.ALL_ON), seed=0)
    seen = {"encoder_rows": [], "decoder": 0, "mt_embed": 0}
    model.encoder.register_forward_hook(
        lambda m, i, o: seen["encoder_rows"].append(int(i[0].shape[0])))
    model.decoder.register_forward_hook(lambda *a: seen.__setitem__("decoder", seen["decoder"] + 1))
    model.mt_embed.register_forward_hook(lambda *a: seen.__setitem__("mt_embed", seen["mt_embed"] + 1))
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(tmp_path / "conf.yaml"), "--token_list", str(tmp_path / "tgt.txt"),
         "--src_token_list", str(tmp_path / "src.txt"), "--output_dir", str(tmp_path / "exp")])
    reporter = Reporter()
    reporter.set_epoch(1)
    with reporter.observe("valid") as sub:
        MTLTrainer.validate_one_epoch(model, [(["u0", "u1"], ref._batch())], sub,
                                      MTLTrainer.build_options(args),
                                      DistributedOption(distributed=False))
    assert seen == {"encoder_rows": [2], "decoder": 1, "mt_embed": 0}
    assert not model.validating
    # training still doubles the speech rows and runs the MT path
    seen.update(encoder_rows=[], decoder=0, mt_embed=0)
    model.train()
    model(**ref._batch())
    assert seen == {"encoder_rows": [4], "decoder": 2, "mt_embed": 1}


def _ddp_worker(rank, world, init_file, result_file):
    """Rank `rank` of a 2-process gloo group: per-objective gradients are averaged across
    ranks, and the surrogate through DDP leaves the averaged combined gradient in .grad."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}",
                                         rank=rank, world_size=world)
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    data = [torch.randn(4, 3, generator=torch.Generator().manual_seed(10 + r))
            for r in range(world)]

    def losses(module, x):
        y = module(x)
        return {"a": y[:, 0].pow(2).sum(), "b": y[:, 1].sin().sum()}

    params = list(net.parameters())
    got = gradients.objective_gradients(losses(ddp, data[rank]), params)
    combined = gradients.weighted_sum(got, {"a": 1.0, "b": 0.5})
    gradients.surrogate_loss(params, combined).backward()
    # expected: each rank's gradients computed alone, averaged
    ref_net = torch.nn.Linear(3, 2)
    ref_net.load_state_dict(net.state_dict())
    expect = {}
    for name in ("a", "b"):
        per_rank = [torch.autograd.grad(losses(ref_net, x)[name], list(ref_net.parameters()))
                    for x in data]
        expect[name] = [sum(g[j] for g in per_rank) / world for j in range(len(params))]
    ok = all(torch.allclose(got[n][j], expect[n][j], atol=1e-6)
             for n in ("a", "b") for j in range(len(params)))
    ok_grad = all(torch.allclose(p.grad, expect["a"][j] + 0.5 * expect["b"][j], atol=1e-6)
                  for j, p in enumerate(params))
    if rank == 0:
        Path(result_file).write_text(json.dumps({"per_objective": ok, "dot_grad": ok_grad}))
    torch.distributed.destroy_process_group()


def test_objective_gradients_are_averaged_across_ddp_ranks(tmp_path):
    import torch.multiprocessing as mp

    result = tmp_path / "result.json"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(result)), nprocs=2, join=True)
    assert json.loads(result.read_text()) == {"per_objective": True, "dot_grad": True}
