"""Objective Soups' MoDo strategy (seed 002): simplex projection, the lambda update, toy
quadratics, penalty schedules, layer-wise conflict selection, the trainer's half-batches,
per-group learning rates, resume and DDP."""

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from espnet_mtl.tasks.st import MTLSTTask
from espnet_mtl.training.probes import layer_conflict
from espnet_mtl.training.strategies import StrategyError, build_strategy
from espnet_mtl.training.strategies.modo import (
    MoDo,
    coupling_per_objective,
    coupling_weighted,
    lambda_step,
    modo_lambda_step,
    penalty_value,
    project_to_simplex,
)
from espnet_mtl.training.trainer import split_rows

import ddp_modo_worker
from test_mixed_source import _train_cmd, mixed_data  # noqa: F401 (fixture)

PAPER_PENALTIES = [{"start": 0.1, "step": 0.02, "max": 1.5},
                   {"start": 0.0, "step": 0.02, "max": 1.5}]


@pytest.mark.parametrize("v,expected", [
    ([0.5, 0.5], [0.5, 0.5]),
    ([2.0, 0.0], [1.0, 0.0]),
    ([0.6, 0.6], [0.5, 0.5]),
    # sorted u = (.2, .1, -.5); u_i - (sum_{<=i} u - 1)/i = 1.0, .45, -.1 -> rho = 2,
    # theta = (.3 - 1)/2 = -.35 -> (.55, .45, 0)
    ([0.2, 0.1, -0.5], [0.55, 0.45, 0.0]),
    ([-1.0, 3.0, 0.0], [0.0, 1.0, 0.0]),
])
def test_simplex_projection_hand_values(v, expected):
    got = project_to_simplex(torch.tensor(v, dtype=torch.float64))
    assert got.tolist() == pytest.approx(expected, abs=1e-12)


def test_lambda_step_hand_value():
    # G1 = G2 = diag(2, 1), lambda = (.5, .5): G1^T lambda = (1, .5); G2 (...) = (2, .5);
    # lambda - .1 * (2, .5) = (.3, .45) -> projected (+.125 each) = (.425, .575)
    g = [[torch.tensor([2.0]), torch.tensor([0.0])], [torch.tensor([0.0]), torch.tensor([1.0])]]
    lam = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert modo_lambda_step(lam, g, g, gamma=0.1, rho=0.0).tolist() == pytest.approx([0.425, 0.575])
    # rho pulls toward uniform: (.3, .45) - .1 * .5 * (0, 0) stays at lambda = 1/M
    assert modo_lambda_step(lam, g, g, 0.1, 1.0).tolist() == pytest.approx([0.425, 0.575])
    # a None gradient is 0: only objective 0 reaches tensor 0
    g_none = [[torch.tensor([2.0]), None], [None, torch.tensor([1.0])]]
    assert modo_lambda_step(lam, g_none, g_none, 0.1, 0.0).tolist() == pytest.approx([0.425, 0.575])


def test_the_two_lambda_gradient_estimates_hand_values():
    # rows = objectives, columns = parameters: G1 = [[2, 0], [0, 1]], G2 = [[1, 1], [0, 1]]
    g1 = [[torch.tensor([2.0]), torch.tensor([0.0])], [torch.tensor([0.0]), torch.tensor([1.0])]]
    g2 = [[torch.tensor([1.0]), torch.tensor([1.0])], [torch.tensor([0.0]), torch.tensor([1.0])]]
    lam = torch.tensor([0.5, 0.5], dtype=torch.float64)
    # objective_soups: G1^T lambda = (1, .5); G2 (1, .5) = (1.5, .5)
    soups = coupling_per_objective(lam, g1, g2)
    assert soups.tolist() == pytest.approx([1.5, 0.5])
    # modo: G2^T lambda = (.5, 1) (the weighted second-half gradient); G1 (.5, 1) = (1, 1)
    mixed2 = [torch.tensor([0.5]), torch.tensor([1.0])]
    assert coupling_weighted(g1, mixed2).tolist() == pytest.approx([1.0, 1.0])
    # (.5, .5) - .1 * (1.5, .5) = (.35, .45) -> + .1 each; - .1 * (1, 1) -> uniform again
    assert lambda_step(lam, soups, 0.1, 0.0).tolist() == pytest.approx([0.45, 0.55])
    assert lambda_step(lam, coupling_weighted(g1, mixed2), 0.1, 0.0).tolist() == pytest.approx(
        [0.5, 0.5])


def test_modo_form_takes_one_second_half_backward_per_level(monkeypatch):
    from espnet_mtl.training import gradients

    calls = []
    real = gradients.objective_gradients

    def counting(losses, params, **kw):
        calls.append(sorted(n for n, l in losses.items() if l is not None))
        return real(losses, params, **kw)

    monkeypatch.setattr(gradients, "objective_gradients", counting)
    for form, second_half in (("objective_soups", ["a", "b"]), ("modo", ["level_0"])):
        model, calls[:] = _Layers(), []
        strategy = build_strategy("modo", {"lambda_gradient": form}, {"a": 1.0, "b": 1.0})
        strategy.train()
        strategy.combine_two(model.losses(), lambda: model.losses(scale=2.0), model).backward()
        assert calls == [["a", "b"], second_half]
    with pytest.raises(StrategyError, match="lambda_gradient"):
        build_strategy("modo", {"lambda_gradient": "mgda"}, {"a": 1.0, "b": 1.0})


class _Toy(torch.nn.Module):
    """x is shared by both objectives; each has a head of its own."""

    def __init__(self):
        super().__init__()
        self.x = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
        self.head_a = torch.nn.Parameter(torch.tensor([1.0]))
        self.head_b = torch.nn.Parameter(torch.tensor([1.0]))

    def losses(self, a, b):
        return {"f1": (self.x - a).pow(2).sum() + self.head_a.pow(2).sum(),
                "f2": (self.x - b).pow(2).sum() + 0.5 * self.head_b.pow(2).sum()}


def _step(strategy, model, a, b, lr):
    model.zero_grad()
    loss = strategy.combine_two(model.losses(a, b), lambda: model.losses(a, b), model)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad


@pytest.mark.parametrize("form", ["objective_soups", "modo"])
def test_modo_on_toy_quadratics_reaches_a_pareto_stationary_point(form):
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    model = _Toy()
    strategy = build_strategy("modo", {"gamma": 0.05, "lambda_gradient": form},
                              {"f1": 1.0, "f2": 1.0})
    strategy.train()
    for _ in range(600):
        _step(strategy, model, a, b, lr=0.05)
    x = model.x.detach()
    # Pareto set of |x-a|^2, |x-b|^2: the segment [a, b]
    t = float(torch.dot(x - a, b - a) / (b - a).pow(2).sum())
    assert 0 <= t <= 1
    assert float((a + t * (b - a) - x).norm()) < 1e-3
    # Pareto-stationary: the min-norm point of the gradients' convex hull is 0
    g1, g2 = 2 * (x - a), 2 * (x - b)
    lam = float(torch.clamp(torch.dot(g2 - g1, g2) / (g2 - g1).pow(2).sum(), 0, 1))
    assert float((lam * g1 + (1 - lam) * g2).norm()) < 1e-3
    # the heads went to their own minimum with their own gradient (no lambda on them)
    assert abs(float(model.head_a.detach())) < 1e-6 and abs(float(model.head_b.detach())) < 1e-3
    assert sum(strategy.lambdas().values()) == pytest.approx(1.0)


@pytest.mark.parametrize("form", ["objective_soups", "modo"])
def test_modo_direction_is_a_common_descent_direction_where_static_is_not(form):
    # conflicting gradients (cos < 0) with a common descent direction
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.9, 0.1])
    static = 0.5 * (g1 + g2)
    assert float(static @ g2) < 0  # equal weights increase objective 2
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(2))
    strategy = build_strategy("modo", {"gamma": 0.5, "rho": 0.0, "lambda_gradient": form},
                              {"o1": 1.0, "o2": 1.0})
    strategy.train()

    def losses():  # linear losses: constant gradients g1, g2 on the shared w
        return {"o1": model.w @ g1, "o2": model.w @ g2}

    for _ in range(3000):
        model.w.grad = None
        strategy.combine_two(losses(), losses, model).backward()
    d = model.w.grad
    assert float(d @ g1) > 0 and float(d @ g2) > 0
    # and it is MGDA's min-norm point: lambda_1 = (g2 - g1).g2 / |g2 - g1|^2 = 1.72 / 3.62
    assert strategy.lambdas()["o1"] == pytest.approx(1.72 / 3.62, abs=1e-3)


@pytest.mark.parametrize("epoch,eta1,eta2", [(1, 0.1, 0.0), (2, 0.12, 0.02), (11, 0.3, 0.2),
                                              (71, 1.5, 1.4), (76, 1.5, 1.5), (200, 1.5, 1.5)])
def test_penalty_schedule_per_epoch(epoch, eta1, eta2):
    assert penalty_value(PAPER_PENALTIES[0], epoch) == pytest.approx(eta1)
    assert penalty_value(PAPER_PENALTIES[1], epoch) == pytest.approx(eta2)
    strategy = build_strategy("modo", {"levels": [["asr_ctc"], ["st_ce"], ["cpc"]],
                                       "penalties": PAPER_PENALTIES},
                              {"st_ce": 1.0, "asr_ctc": 0.3, "cpc": 0.1})
    strategy.start_epoch(epoch)
    assert strategy.level_coefficients() == pytest.approx([1.0, eta1, eta1 * eta2])
    assert strategy.stats() == pytest.approx({"eta_1": eta1, "eta_2": eta2})


class _Layers(torch.nn.Module):
    """Two shared tensors (one where the objectives conflict, one where they agree) and
    a head per objective."""

    def __init__(self):
        super().__init__()
        self.conflict = torch.nn.Parameter(torch.zeros(3))
        self.agree = torch.nn.Parameter(torch.zeros(3))
        self.head_a = torch.nn.Parameter(torch.ones(2))
        self.head_b = torch.nn.Parameter(torch.ones(2))

    def losses(self, scale=1.0):
        u = torch.tensor([1.0, 2.0, 3.0]) * scale
        return {"a": self.conflict @ u + self.agree @ u + self.head_a.pow(2).sum(),
                "b": -(self.conflict @ u) + 2 * (self.agree @ u) + self.head_b.pow(2).sum()}


@pytest.mark.parametrize("mode", ["weighted_sum", "skip"])
def test_layer_selection_picks_exactly_the_conflicting_tensors(mode, tmp_path):
    model = _Layers()
    strategy = build_strategy("modo", {"conflict_threshold": 0.0, "non_conflicting": mode,
                                       "gamma": 0.1, "rho": 0.0, "log_interval": 1},
                              {"a": 3.0, "b": 1.0})
    strategy.train()
    strategy.start_epoch(1, tmp_path)
    asked = []

    def second():
        asked.append(1)
        return model.losses(scale=2.0)

    strategy.combine_two(model.losses(), second, model).backward()
    assert asked == [1]
    assert strategy.stats()["modo_selected"] == 0.5
    u = torch.tensor([1.0, 2.0, 3.0])
    # the lambda update reads `conflict` only: G1 = (u, -u), G2 = (2u, -2u); at (.5, .5)
    # G1^T lambda = 0 and rho = 0, so lambda stays uniform
    lam = strategy.lambdas()
    assert lam == pytest.approx({"a": 0.5, "b": 0.5})
    assert torch.allclose(model.conflict.grad, lam["a"] * u - lam["b"] * u)
    if mode == "weighted_sum":  # configured weights 3 : 1, normalised: .75 u + .25 * 2u
        assert torch.allclose(model.agree.grad, 0.75 * u + 0.25 * 2 * u)
    else:
        assert torch.equal(model.agree.grad, torch.zeros(3))
    assert torch.allclose(model.head_a.grad, 2 * torch.ones(2))  # own gradient, weight 1
    assert torch.allclose(model.head_b.grad, 2 * torch.ones(2))
    rows = layer_conflict.read_rows(tmp_path / layer_conflict.CSV_NAME)
    by_layer = {r["layer"]: r for r in rows}
    assert by_layer["conflict"]["selected"] == 1 and by_layer["conflict"]["mean_cosine"] == pytest.approx(-1)
    assert by_layer["agree"]["selected"] == 0 and by_layer["agree"]["mean_cosine"] == pytest.approx(1)
    assert set(by_layer) == {"conflict", "agree"}  # heads are not shared
    assert layer_conflict.plot(tmp_path / layer_conflict.CSV_NAME).stat().st_size > 1000


def test_no_conflict_means_no_second_half():
    model = _Layers()
    strategy = build_strategy("modo", {"conflict_threshold": -0.5}, {"a": 1.0, "b": 1.0})
    strategy.train()
    calls = []
    # threshold -0.5: `conflict` (cos -1) is selected...
    strategy.combine_two(model.losses(), lambda: calls.append(1) or model.losses(), model)
    assert calls == [1]
    # ...threshold -1.5: nothing is, so the second half is never run
    strategy.conflict_threshold = -1.5
    strategy.combine_two(model.losses(), lambda: calls.append(2) or model.losses(), model)
    assert calls == [1]


def test_levels_lambdas_and_a_missing_objective():
    model = _Layers()
    strategy = build_strategy("modo", {"levels": [["a"], ["b"]], "penalties": [
        {"start": 0.5, "step": 0.0, "max": 1.0}]}, {"a": 1.0, "b": 1.0})
    strategy.train()
    calls = []
    strategy.combine_two(model.losses(), lambda: calls.append(1), model).backward()
    assert calls == []  # one objective per level: no lambda to update, no second half
    u = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(model.conflict.grad, u - 0.5 * u)  # a + eta_1 * b
    # a level of two whose objective is missing in the second half keeps its lambda
    strategy = build_strategy("modo", {}, {"a": 1.0, "b": 1.0})
    strategy.train()
    before = dict(strategy.lambdas())
    strategy.combine_two(model.losses(), lambda: {"a": model.losses()["a"], "b": None}, model)
    assert strategy.lambdas() == before and int(strategy.skipped) == 1


@pytest.mark.parametrize("conf,key", [
    ({"levels": [["st_ce"], ["nope"]], "penalties": [{"start": 0.1}]}, "levels[1]"),
    ({"levels": [["st_ce"]]}, "asr_ctc"),
    ({"levels": [["st_ce"], ["asr_ctc"]]}, "penalties"),
    ({"levels": [["st_ce", "asr_ctc"], ["st_ce"]], "penalties": [{"start": 0}]}, "two levels"),
    ({"levels": [["st_ce"], ["asr_ctc"]], "penalties": [{"begin": 0}]}, "penalties[0]"),
    ({"non_conflicting": "freeze"}, "non_conflicting"),
    ({"gamma": 0}, "gamma"),
    ({"eta": 1}, "strategy modo"),
])
def test_bad_config_names_its_key(conf, key):
    with pytest.raises(StrategyError, match=key.replace("[", r"\[").replace("]", r"\]")):
        build_strategy("modo", conf, {"st_ce": 1.0, "asr_ctc": 0.3})


def test_state_is_in_the_state_dict():
    strategy = build_strategy("modo", {"levels": [["a", "b"], ["c"]], "penalties": [
        {"start": 0.1, "step": 0.02, "max": 1.5}]}, {"a": 1.0, "b": 1.0, "c": 1.0})
    strategy.lambda_0.copy_(torch.tensor([0.2, 0.8], dtype=torch.float64))
    strategy.start_epoch(7)
    again = build_strategy("modo", {"levels": [["a", "b"], ["c"]], "penalties": [
        {"start": 0.1, "step": 0.02, "max": 1.5}]}, {"a": 1.0, "b": 1.0, "c": 1.0})
    again.load_state_dict(strategy.state_dict())
    assert again.lambdas() == pytest.approx({"a": 0.2, "b": 0.8, "c": 1.0})
    assert again.etas() == pytest.approx([0.22])


def test_split_rows_even_and_odd_rows_trimmed():
    batch = {"speech": torch.arange(4 * 5, dtype=torch.float32).reshape(4, 5),
             "speech_lengths": torch.tensor([5, 2, 3, 1]),
             "text": torch.tensor([[1, 2, -1], [3, -1, -1], [4, 5, 6], [7, -1, -1]]),
             "text_lengths": torch.tensor([2, 1, 3, 1])}
    first, second = split_rows(batch)
    assert first["speech"].shape == (2, 5) and second["speech"].shape == (2, 2)
    assert second["speech"].tolist() == [[5.0, 6.0], [15.0, 16.0]]
    assert first["text"].tolist() == [[1, 2, -1], [4, 5, 6]]
    assert second["text"].tolist() == [[3], [7]]
    one = {k: v[:1] for k, v in batch.items()}
    assert split_rows(one) == (one, None)


def test_lr_groups_give_their_parameters_their_own_rate(tmp_path, monkeypatch):
    import static_reference as ref

    model = ref._build(tmp_path, monkeypatch, dict(ref.ALL_ON), seed=0)
    parser = MTLSTTask.get_parser()
    args = parser.parse_args(["--optim", "adamw", "--optim_conf", "lr=0.0005",
                              "--lr_groups", "encoder=5e-5", "--model", "mtl_st"])
    (optim,) = MTLSTTask.build_optimizers(args, model)
    lrs = {id(p): g["lr"] for g in optim.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert lrs[id(p)] == (5e-5 if name.startswith("encoder.") else 5e-4), name
    assert len(lrs) == len(list(model.parameters()))
    args = parser.parse_args(["--optim", "adam", "--lr_groups", "encodr=1e-4", "--model", "mtl_st"])
    with pytest.raises(ValueError, match="--lr_groups: no parameter of model mtl_st starts with 'encodr'"):
        MTLSTTask.build_optimizers(args, model)


def _lambdas(ckpt):
    state = torch.load(ckpt, weights_only=False)["model"]
    return {k: v.tolist() for k, v in state.items() if k.startswith("strategy.")}


def test_espnet_loop_trains_and_resume_continues_lambdas_and_schedule(mixed_data, tmp_path):
    d, sets = mixed_data
    conf = ("{levels: [[st_ce, asr_ctc], [mt_ce, consistency]], "
            "penalties: [{start: 0.1, step: 0.02, max: 1.5}], "
            "conflict_threshold: 0.0, log_interval: 1, gamma: 0.5}")
    strategy = ["--strategy", "modo", "--strategy_conf", conf]
    # killed after epoch 1 (its checkpoint) and resumed, against two epochs in one go
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    r = subprocess.run(_train_cmd(d, sets, resumed, *strategy), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    first = _lambdas(resumed / "checkpoint.pth")
    assert first["strategy.epoch"] == 1 and first["strategy.updates"] > 0
    assert first["strategy.lambda_0"] != [0.5, 0.5]  # MoDo moved it
    assert sum(first["strategy.lambda_0"]) == pytest.approx(1.0)
    r = subprocess.run(_train_cmd(d, sets, resumed, *strategy, "--max_epoch", "2", "--resume",
                                  "true"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "The training was resumed" in r.stderr
    line = [x for x in r.stderr.splitlines() if "2epoch results" in x][0]
    assert "eta_1=0.120" in line and "lambda_st_ce=" in line and "modo_selected=" in line
    r = subprocess.run(_train_cmd(d, sets, straight, *strategy, "--max_epoch", "2"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _lambdas(resumed / "checkpoint.pth"), _lambdas(straight / "checkpoint.pth")
    assert a["strategy.updates"] == 2 * first["strategy.updates"]
    assert a["strategy.epoch"] == 2
    assert a["strategy.lambda_0"] == pytest.approx(b["strategy.lambda_0"], abs=1e-6)
    rows = layer_conflict.read_rows(resumed / layer_conflict.CSV_NAME)
    assert {r["epoch"] for r in rows} == {"1", "2"}
    assert (resumed / "images" / "modo_layers.png").stat().st_size > 1000


def test_modo_under_ddp_with_two_cpu_processes(tmp_path):
    import torch.multiprocessing as mp

    result = tmp_path / "result.json"
    # the workers import only torch and the strategy (ddp_modo_worker.py), not ESPnet
    mp.spawn(ddp_modo_worker.run, args=(2, str(tmp_path / "init"), str(result)), nprocs=2,
             join=True)
    got = json.loads(result.read_text())
    assert got["matches_reference"] and got["ranks_agree"], got
    assert not math.isclose(got["lambda"]["a"], 0.5)
