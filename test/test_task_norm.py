"""`--strategy task_norm`: IMTL's task-norm-based weight decrease (methods.md section 2).

The weight updates and the drop rule against hand values on a tiny module whose
gradient norms are known exactly; `.grad` untouched; the state through a state
dict; the model's seam (a dropped objective is not computed) on a real `mtl_st`;
ESPnet's training loop logging the weights; config errors naming their key.
"""

import logging
import math

import pytest
import torch

from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.reporter import Reporter

from espnet_mtl import registry
from espnet_mtl.tasks.st import MTLSTTask
from espnet_mtl.training.strategies import StrategyError, build_strategy
from espnet_mtl.training.strategies.task_norm import TaskNormWeights
from espnet_mtl.training.trainer import MTLTrainer

from test_mtl_st_model import ALL_OFF, _batch, _build, _count_calls

ENC = "encoder.encoders.0.self_attn.linear_out.weight"
TXT = "textual_encoder.encoder.encoders.0.self_attn.linear_out.weight"
DEC_SELF = "decoder.decoders.0.self_attn.linear_out.weight"
DEC_SRC = "decoder.decoders.0.src_attn.linear_out.weight"
ENC_FF = "encoder.encoders.0.feed_forward.w_1.weight"  # in the group, not a projection
#: loss = sum over params of c * sum(param): the gradient on a 2x2 param is c * ones,
#: its norm 2|c|. Group norms: ST encoder 4, textual 2, decoder (2 + 2) / 2 = 2;
#: ASR encoder 2 (ratio 0.5); MT textual 0.64 (0.32), decoder (0.5 + 1.5) / 2 = 1 (0.5).
#: The feed-forward terms would change every ratio if they counted.
COEF = {"st_ce": {ENC: 2.0, TXT: 1.0, DEC_SELF: 1.0, DEC_SRC: 1.0, ENC_FF: 100.0},
        "asr_ctc": {ENC: 1.0, ENC_FF: 1000.0},
        "mt_ce": {TXT: 0.32, DEC_SELF: 0.25, DEC_SRC: 0.75}}
WEIGHTS = {"st_ce": 1.0, "asr_ctc": 1.0, "mt_ce": 1.0}
CONF = {"interval": 2, "reference": "st_ce", "min_weight": 0.1,
        "rules": {"asr_ctc": {"groups": ["encoder"], "until": 5, "exponent": 1.0},
                  "mt_ce": {"groups": ["textual_encoder", "decoder"], "until": 100,
                            "exponent": 0.5}}}


def _layer(*attentions):
    layer = torch.nn.Module()
    for name in attentions:
        attn = torch.nn.Module()
        attn.linear_out = torch.nn.Linear(2, 2, bias=False)
        setattr(layer, name, attn)
    layer.feed_forward = torch.nn.Module()
    layer.feed_forward.w_1 = torch.nn.Linear(2, 2, bias=False)
    return layer


class Tiny(torch.nn.Module):
    """Parameter names as in mtl_st (see the constants above)."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.encoders = torch.nn.ModuleList([_layer("self_attn")])
        self.textual_encoder = torch.nn.Module()
        self.textual_encoder.encoder = torch.nn.Module()
        self.textual_encoder.encoder.encoders = torch.nn.ModuleList([_layer("self_attn")])
        self.decoder = torch.nn.Module()
        self.decoder.decoders = torch.nn.ModuleList([_layer("self_attn", "src_attn")])
        for p in self.parameters():
            torch.nn.init.constant_(p, 1.0)

    def losses(self, absent=(), frozen=()):
        """`frozen`: parameters no loss reaches (as under torch.no_grad)."""
        params = {n: p.detach() if n in frozen else p for n, p in self.named_parameters()}
        return {task: None if task in absent else
                sum(c * params[name].sum() for name, c in coef.items())
                for task, coef in COEF.items()}


def _strategy(conf=CONF, weights=WEIGHTS):
    return build_strategy("task_norm", conf, dict(weights))


def _weighted(losses, weights):
    return sum(weights[n] * float(l.detach()) for n, l in losses.items() if l is not None)


def test_registered_with_the_papers_defaults():
    assert "task_norm" in registry.STRATEGIES
    s = build_strategy("task_norm", None, {"st_ce": 0.7, "asr_ctc": 0.3, "mt_ce": 1.0})
    assert isinstance(s, TaskNormWeights) and not s.needs_gradients
    assert (s.interval, s.reference, s.min_weight) == (5000, "st_ce", 0.1)
    rules = {r.name: (r.groups, r.until, r.exponent) for r in s.rules}
    assert rules == {"asr_ctc": (["encoder"], 20000, 1.0),
                     "mt_ce": (["textual_encoder", "decoder"], 30000, 0.5)}
    assert s.stats() == {"weight_asr_ctc": 0.3, "weight_mt_ce": 1.0}
    # the default rules keep those of the objectives that are on
    s = build_strategy("task_norm", None, {"st_ce": 1.0, "asr_ctc": 0.3})
    assert [r.name for r in s.rules] == ["asr_ctc"]


def test_weights_follow_the_hand_computed_norms_and_mt_is_dropped(caplog):
    net, s = Tiny(), _strategy()
    # weights in use at update n (a check at update n applies from n + 1):
    # ASR: ratio 0.5, exponent 1, checks at n = 2 (k=1), 4 (k=2); none at 6 (6 >= until 5)
    # MT: ratio max(0.32, 0.5) = 0.5, exponent 0.5: 0.5 ** (0.5 * (1 + ... + k))
    asr = [1.0, 1.0, 0.5, 0.5, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125]
    mt = [1.0, 1.0, 0.5 ** 0.5, 0.5 ** 0.5, 0.5 ** 1.5, 0.5 ** 1.5, 0.125, 0.125, 0.0, 0.0]
    with caplog.at_level(logging.INFO):
        for n in range(1, 11):
            for p in net.parameters():  # garbage in .grad: it is neither read nor written
                p.grad = torch.full_like(p, 7.0)
            grads = [p.grad for p in net.parameters()]
            weights = s.current_weights()
            assert weights == pytest.approx(
                {"st_ce": 1.0, "asr_ctc": asr[n - 1], "mt_ce": mt[n - 1]}), n
            assert s.stats() == pytest.approx(
                {"weight_asr_ctc": asr[n - 1], "weight_mt_ce": mt[n - 1]}), n
            losses = net.losses(absent=s.dropped())  # the model skips dropped objectives
            total = s.combine(losses, net)
            expect = _weighted(losses, weights)
            assert float(total.detach()) == pytest.approx(expect, rel=1e-6), n
            for p, g in zip(net.parameters(), grads):
                assert p.grad is g and bool((g == 7.0).all()), n
            total.backward()  # the graph is still there for the step's backward
            assert s.dropped() == (("mt_ce",) if n >= 8 else ()), n
    assert int(s.updates) == 10
    assert s.rule_checked.tolist() == [2, 4]  # the last k checked
    assert s.rule_dropped.tolist() == [False, True]
    assert s.rule_scales.tolist() == pytest.approx([0.125, 0.5 ** 5])  # (configured 1)
    logged = [r.getMessage() for r in caplog.records if "task_norm" in r.getMessage()]
    assert len(logged) == 6  # ASR at n = 2, 4; MT at n = 2, 4, 6, 8
    assert "update 4 (k=2): asr_ctc / st_ce" in logged[2] and "encoder 2 / 4" in logged[2]
    assert "weight 0.5 -> 0.125" in logged[2]
    assert "textual_encoder 0.64 / 2, decoder 1 / 2" in logged[-1]
    assert "-> 0.03125; below min_weight 0.1: mt_ce dropped" in logged[-1]


def test_a_missing_loss_postpones_the_check():
    net, s = Tiny(), _strategy()
    s.combine(net.losses(), net)
    s.combine(net.losses(absent=("asr_ctc",)), net)  # n = 2: MT checked, ASR postponed
    assert s.current_weights() == pytest.approx(
        {"st_ce": 1.0, "asr_ctc": 1.0, "mt_ce": 0.5 ** 0.5})
    s.combine(net.losses(absent=("st_ce",)), net)  # n = 3: no reference, still postponed
    assert s.current_weights()["asr_ctc"] == 1.0
    s.combine(net.losses(), net)  # n = 4: both there: k = 2, not the postponed k = 1
    assert s.current_weights()["asr_ctc"] == pytest.approx(0.5 ** 2)
    assert s.current_weights()["mt_ce"] == pytest.approx(0.5 ** 1.5)
    # a postponed check keeps its k
    net, s = Tiny(), _strategy()
    for absent in ((), ("asr_ctc",), ()):  # n = 1, 2 (due, postponed), 3 (k = 1)
        s.combine(net.losses(absent=absent), net)
    assert s.current_weights()["asr_ctc"] == pytest.approx(0.5)
    s.combine(net.losses(), net)  # n = 4: k = 2
    assert s.current_weights()["asr_ctc"] == pytest.approx(0.5 * 0.5 ** 2)
    # an encoder that no loss reaches yet (frozen): the ASR check waits, MT's runs
    net, s = Tiny(), _strategy()
    for frozen in ((), (ENC,), ()):  # n = 1, 2 (due, postponed), 3 (k = 1)
        s.combine(net.losses(frozen=frozen), net)
        if frozen:
            assert s.current_weights()["asr_ctc"] == 1.0
            assert s.current_weights()["mt_ce"] == pytest.approx(0.5 ** 0.5)
    assert s.current_weights()["asr_ctc"] == pytest.approx(0.5)


def test_eval_mode_neither_counts_nor_checks():
    net, s = Tiny(), _strategy()
    s.eval()
    for _ in range(4):
        s.combine(net.losses(), net)
    assert int(s.updates) == 0 and s.current_weights() == WEIGHTS


def test_state_survives_a_state_dict_round_trip():
    net, s = Tiny(), _strategy()
    for n in range(1, 9):  # through the drop at n = 8
        s.combine(net.losses(absent=s.dropped()), net)
    state = s.state_dict()
    assert set(state) == {"updates", "rule_scales", "rule_checked", "rule_dropped"}
    resumed = _strategy()
    resumed.load_state_dict(state)
    assert int(resumed.updates) == 8
    assert resumed.current_weights() == s.current_weights()
    assert resumed.dropped() == ("mt_ce",)
    # mid-run: both continue alike (the resumed one checks at n = 4 with k = 2)
    a, b = _strategy(), _strategy()
    for _ in range(3):
        a.combine(net.losses(), net)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        a.combine(net.losses(), net)
        b.combine(net.losses(), net)
    assert b.current_weights() == pytest.approx(a.current_weights())
    assert b.current_weights()["asr_ctc"] == pytest.approx(0.125)


@pytest.mark.parametrize("conf, key", [
    ({"interval": 0}, "strategy_conf.interval"),
    ({"interval": 2.5}, "strategy_conf.interval"),
    ({"reference": "asr_att"}, "strategy_conf.reference"),
    ({"min_weight": -1}, "strategy_conf.min_weight"),
    ({"projections": "("}, "strategy_conf.projections"),
    ({"rules": {"mt_ce": {"groups": "decoder"}}}, "strategy_conf.rules.mt_ce.groups"),
    ({"rules": {"mt_ce": {"groups": []}}}, "strategy_conf.rules.mt_ce.groups"),
    ({"rules": {"mt_ce": {"until": 10}}}, "strategy_conf.rules.mt_ce.groups"),
    ({"rules": {"mt_ce": {"groups": ["decoder"], "until": 0}}},
     "strategy_conf.rules.mt_ce.until"),
    ({"rules": {"mt_ce": {"groups": ["decoder"], "exponent": 0}}},
     "strategy_conf.rules.mt_ce.exponent"),
    ({"rules": {"mt_ce": {"groups": ["decoder"], "every": 2}}},
     "strategy_conf.rules.mt_ce.every"),
    ({"rules": {"mt_ce": 0.5}}, "strategy_conf.rules.mt_ce"),
    ({"rules": {"mt": {"groups": ["decoder"]}}}, "strategy_conf.rules.mt: unknown objective"),
    ({"rules": {"asr_att": {"groups": ["decoder"]}}},
     "strategy_conf.rules.asr_att: 'asr_att' is not an objective that is on"),
    ({"rules": {"st_ce": {"groups": ["decoder"]}}}, "strategy_conf.rules.st_ce"),
    ({"rules": ["mt_ce"]}, "strategy_conf.rules"),
    ({"intervall": 2}, "--strategy_conf for strategy task_norm"),
])
def test_bad_config_names_its_key(conf, key):
    with pytest.raises(StrategyError, match=key.replace(".", r"\.")):
        _strategy(conf)


def test_a_group_without_projections_fails_at_the_first_step():
    conf = {**CONF, "rules": {"mt_ce": {"groups": ["decoder", "adapter"]}}}
    s = _strategy(conf)
    with pytest.raises(StrategyError, match=r"strategy_conf\.rules\.mt_ce\.groups: 'adapter' "
                       r".*groups that hold some: decoder, encoder, textual_encoder"):
        s.combine(Tiny().losses(), Tiny())
    # a task whose loss does not reach the group: an error, not a weight of 0
    s = _strategy({**CONF, "rules": {"asr_ctc": {"groups": ["decoder"]}}})
    net = Tiny()
    s.combine(net.losses(), net)
    with pytest.raises(StrategyError, match=r"rules\.asr_ctc\.groups: .*asr_ctc .* 'decoder' "
                       "is zero"):
        s.combine(net.losses(), net)


MODEL_CONF = {**ALL_OFF, "asr_ctc_weight": 0.3, "mt_weight": 0.5}


def _projection_norm(loss, model, prefix):
    names = [n for n, _ in model.named_parameters()
             if n.startswith(prefix) and n.endswith("attn.linear_out.weight")]
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, [params[n] for n in names], retain_graph=True,
                                allow_unused=True)
    return sum(0.0 if g is None else float(g.norm()) for g in grads) / len(names), len(names)


def test_real_model_groups_and_a_dropped_task_is_not_computed(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, MODEL_CONF)
    model.train()
    weights = {n: w for n, w in model.objective_weights.items() if n in model.objectives}
    # the default rules on mtl_st's own parameter names, checked at update 1
    # (decrease_only off: the formula as written, whichever side of 1 the ratio is)
    model.strategy = build_strategy("task_norm", {"interval": 1, "min_weight": 0.0,
                                                  "decrease_only": False}, weights)
    out = model(**_batch(), return_objectives=True)
    losses = out["objectives"]
    norms, counts = {}, {}
    for task in ("st_ce", "asr_ctc", "mt_ce"):
        for group in ("encoder.", "textual_encoder.", "decoder."):
            norms[task, group], counts[group] = _projection_norm(losses[task], model, group)
    assert counts == {"encoder.": 1, "textual_encoder.": 1, "decoder.": 2}  # self + src attn
    model.strategy.combine(losses, model).backward()
    asr = 0.3 * norms["asr_ctc", "encoder."] / norms["st_ce", "encoder."]
    mt = 0.5 * max(norms["mt_ce", g] / norms["st_ce", g]
                   for g in ("textual_encoder.", "decoder.")) ** 0.5
    assert model.strategy.current_weights() == pytest.approx(
        {"st_ce": 1.0, "asr_ctc": asr, "mt_ce": mt}, rel=1e-5)
    # the default caps each ratio at 1: a weight only ever goes down
    model.strategy = build_strategy("task_norm", {"interval": 1, "min_weight": 0.0}, weights)
    model.strategy.combine(model(**_batch(), return_objectives=True)["objectives"], model)
    current = model.strategy.current_weights()
    assert all(current[n] <= weights[n] for n in weights)
    assert asr <= 0.3 or current["asr_ctc"] == 0.3  # here the CTC ratio is above 1
    # a strategy that drops MT at its first check: the MT pass is no longer run
    model.strategy = build_strategy(
        "task_norm", {"interval": 1, "min_weight": 1e6,
                      "rules": {"mt_ce": {"groups": ["textual_encoder", "decoder"]}}}, weights)
    model.strategy.combine(model(**_batch(), return_objectives=True)["objectives"], model)
    assert model.strategy.dropped() == ("mt_ce",)
    calls = {}
    _count_calls(model.mt_embed, calls, "mt_embed")
    _count_calls(model.decoder, calls, "decoder")
    out = model(**_batch(), return_objectives=True)
    assert set(out["objectives"]) == {"st_ce", "asr_ctc"}
    assert out["stats"]["loss_mt"] is None and out["stats"]["loss_asr_ctc"] is not None
    assert calls == {"decoder": 1}  # the ST decoder pass only: no MT pass


def test_espnet_loop_logs_the_weights(tmp_path, monkeypatch):
    model = _build(tmp_path, monkeypatch, MODEL_CONF)
    weights = {n: w for n, w in model.objective_weights.items() if n in model.objectives}
    model.strategy = build_strategy("task_norm", {"interval": 2, "decrease_only": False}, weights)
    args = MTLSTTask.get_parser().parse_args(
        ["--config", str(tmp_path / "conf.yaml"), "--token_list", str(tmp_path / "tgt.txt"),
         "--src_token_list", str(tmp_path / "src.txt"), "--output_dir", str(tmp_path / "exp"),
         "--strategy", "task_norm"])
    options = MTLTrainer.build_options(args)
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    reporter = Reporter()
    reporter.set_epoch(1)
    batches = [([f"u{i}"], _batch(seed=i)) for i in range(3)]
    with reporter.observe("train") as sub:
        MTLTrainer.train_one_epoch(model, batches, [optim], [None], None, sub, None, options,
                                   DistributedOption(distributed=False))
    s = model.strategy
    assert int(s.updates) == 3 and s.rule_checked.tolist() == [1, 1]  # checked at update 2
    # the epoch means of the weights each update used: configured twice, then the new
    for name, configured in (("asr_ctc", 0.3), ("mt_ce", 0.5)):
        logged = reporter.get_value("train", f"weight_{name}", 1)
        new = s.current_weights()[name]
        assert new != configured
        assert logged == pytest.approx((2 * configured + new) / 3, rel=1e-5)
        assert math.isfinite(logged)


def test_several_gpus_need_unused_parameters(monkeypatch):
    # a dropped objective's own parameters get no gradient: DDP must be told at start
    import sys

    from espnet_mtl.tasks.st import MTLSTTask
    from espnet_mtl.training.trainer import MTLTrainer

    monkeypatch.setattr(sys, "argv", ["st_train"])
    parser = MTLSTTask.get_parser()
    args = parser.parse_args(["--strategy", "task_norm", "--ngpu", "2"])
    with pytest.raises(ValueError, match="--unused_parameters true"):
        MTLTrainer.build_options(args)
    args = parser.parse_args(["--strategy", "task_norm", "--ngpu", "2",
                              "--unused_parameters", "true"])
    assert MTLTrainer.build_options(args).strategy == "task_norm"
    args = parser.parse_args(["--strategy", "task_norm", "--mixed_source_mode", "round_robin"])
    with pytest.raises(ValueError, match="--mixed_source_mode ratio"):
        MTLTrainer.build_options(args)
