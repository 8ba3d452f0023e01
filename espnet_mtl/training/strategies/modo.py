"""`modo`: Objective Soups' multilevel MoDo update (seed 002; methods.md section 3).

    strategy: modo
    strategy_conf:
        levels:                  # VM-MSP, ordering UAS (ASR, then ST, then self-supervised)
            - [asr_ctc]
            - [st_ce]
            - [cpc]
        penalties:               # eta_1, eta_2: one per level after the first, per epoch
            - {start: 0.1, step: 0.02, max: 1.5}
            - {start: 0.0, step: 0.02, max: 1.5}
        gamma: 0.01              # MoDo's step size on lambda [code]
        lambda_gradient: objective_soups   # or modo: how G G^T lambda is estimated (below)
        rho: 0.001               # its pull of lambda toward uniform [code]
        conflict_threshold: null # layer-wise selection: MoDo only on tensors whose mean
                                 # pairwise gradient cosine is below this (paper: 0.0)
        non_conflicting: weighted_sum   # or skip (the authors' skeleton; see below)
        log_interval: 50         # updates between rows of <output_dir>/modo_layers.csv

Each training batch is split by the trainer into two independent halves
(its even and odd rows [choice]: the paper draws two mini-batches; ESPnet's
loop hands us one, whose rows are already a random draw of similar length).
On the first half, the gradient of every objective on every trainable
parameter (`G1`, exact per objective, averaged across DDP ranks). Then:

- **heads**, parameters that only one objective reaches (the CTC head, the
  decoder of ST, CPC's predictor), get that objective's gradient as it is;
- **shared** parameters (reached by two or more objectives, the backbone) get
      d = sum_l c_l * G1_l^T lambda_l,   c_1 = 1, c_l = eta_1 * ... * eta_{l-1}
  where level l's weights are updated first, with the second half's
  gradients G2 on the same parameters:
      lambda_l <- Proj_simplex(lambda_l - gamma (G2_l G1_l^T lambda_l + rho (lambda_l - 1/M_l)))
  A level of one objective has lambda = [1]: its gradient (the penalty term
  of VC-MSP and VM-MSP). lambda starts uniform [code].

`lambda_gradient` chooses the estimate of the lambda gradient G G^T lambda
from the two independent halves; both are unbiased, they differ in cost:
`objective_soups` (default, the authors' code and the issue's formula:
G2 G1^T lambda, every objective's gradient on the second half too, M backward
passes there) and `modo` (the update of MoDo itself, Chen et al., NeurIPS
2023: grad F(z1)^T grad F(z2) lambda = G1 (G2^T lambda), only the
lambda-weighted gradient of the second half, one backward pass per level)
[choice offered for speed].

The recipes of the paper are level layouts: VS-MSP one level of every
objective; VC-MSP [supervised objectives] then [cpc] with one penalty eta
(from 0, +0.02 per epoch); VM-MSP three levels, UAS = [asr_ctc], [st_ce],
[cpc] and USA = [st_ce], [asr_ctc], [cpc]. The penalties are per epoch:
eta_i(epoch) = min(max, start + step * (epoch - 1)).

**Layer-wise conflict selection** (`conflict_threshold`): per shared tensor,
the mean pairwise cosine of the objectives' G1 rows on it; only tensors
below the threshold get the MoDo direction and take part in the lambda
update, so the second half's backward covers only them (autograd skips the
weight gradients of the others, and stops below the lowest of them). The
others get the plain weighted sum sum_l c_l sum_k w_k/W_l g_k with the
configured model_conf weights, normalised within each level to MoDo's
scale (`non_conflicting: weighted_sum`, [choice]). The authors' skeleton
skips them (no update at all, `non_conflicting: skip`): that freezes every
non-conflicting backbone tensor, which looks like a bug; it is kept only to
reproduce their code.

The second half is run only when some lambda is updated (a level of 2 or
more objectives with selected tensors); a level whose objectives are not all
present in both halves (a mixed-source batch without MT rows in one half)
keeps its lambda for that batch (`modo_skipped` counts these). The weights,
the update count and the epoch are buffers, checkpointed with the model (as
`strategy.*`): a killed run resumes with its lambdas and penalties. Logged
per update: `lambda_<objective>`, `eta_<i>`, `modo_selected` (the share of
shared tensors selected).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from espnet_mtl.training import gradients
from espnet_mtl.training.probes import layer_conflict
from espnet_mtl.training.strategies.base import Strategy, StrategyError

#: the paper's MoDo step sizes [code]
GAMMA, RHO = 0.01, 0.001
#: how the lambda gradient G G^T lambda is estimated from the two halves (module docstring)
LAMBDA_GRADIENTS = ("objective_soups", "modo")


def project_to_simplex(v: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of a vector onto {x >= 0, sum(x) = 1} (sort-based)."""
    u, _ = torch.sort(v, descending=True)
    cumulative = u.cumsum(0) - 1.0
    k = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    support = (u - cumulative / k) > 0  # true for the first rho entries
    last = int(support.nonzero().max())
    theta = cumulative[last] / (last + 1)
    return (v - theta).clamp(min=0.0)


def coupling_per_objective(lam: torch.Tensor, g1: Sequence[Sequence[Optional[torch.Tensor]]],
                           g2: Sequence[Sequence[Optional[torch.Tensor]]]) -> torch.Tensor:
    """G2 G1^T lambda (the authors' code). g1[k][j], g2[k][j]: objective k's gradient on
    tensor j (None: 0); summed tensor by tensor, never one long flat vector."""
    m = lam.numel()
    coupling = lam.new_zeros(m)
    for j in range(len(g1[0]) if m else 0):
        mixed = None  # (G1^T lambda) on tensor j
        for k in range(m):
            if g1[k][j] is not None:
                term = lam[k] * g1[k][j].double()
                mixed = term if mixed is None else mixed + term
        if mixed is None:
            continue
        for k in range(m):
            if g2[k][j] is not None:
                coupling[k] += (g2[k][j].double() * mixed).sum().to(coupling.dtype)
    return coupling


def coupling_weighted(g1: Sequence[Sequence[Optional[torch.Tensor]]],
                      mixed2: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
    """G1 (G2^T lambda) (MoDo's own form): mixed2[j] is the lambda-weighted gradient of the
    second half on tensor j (one backward), dotted with each objective's first-half one."""
    coupling = torch.zeros(len(g1), dtype=torch.float64)
    for k, rows in enumerate(g1):
        for g, mixed in zip(rows, mixed2):
            if g is not None and mixed is not None:
                coupling[k] += (g.double() * mixed.double()).sum().cpu()
    return coupling


def lambda_step(lam: torch.Tensor, coupling: torch.Tensor, gamma: float, rho: float
                ) -> torch.Tensor:
    """lambda <- Proj_simplex(lambda - gamma (coupling + rho (lambda - 1/M)))."""
    m = lam.numel()
    return project_to_simplex(lam - gamma * (coupling.to(lam) + rho * (lam - 1.0 / m)))


def modo_lambda_step(lam: torch.Tensor, g1: Sequence[Sequence[Optional[torch.Tensor]]],
                     g2: Sequence[Sequence[Optional[torch.Tensor]]], gamma: float,
                     rho: float) -> torch.Tensor:
    """One MoDo weight update with the authors' G2 G1^T lambda."""
    return lambda_step(lam, coupling_per_objective(lam, g1, g2), gamma, rho)


def penalty_value(spec: Dict[str, float], epoch: int) -> float:
    """eta at an epoch (1-based): start + step * (epoch - 1), capped at max."""
    return min(spec["max"], spec["start"] + spec["step"] * (epoch - 1))


def _check_penalty(spec, key: str) -> Dict[str, float]:
    if not isinstance(spec, dict) or set(spec) - {"start", "step", "max"} or "start" not in spec:
        raise StrategyError(f"{key}: expected {{start: <eta at epoch 1>, step: <per epoch>, "
                            f"max: <cap>}}, got {spec!r}")
    try:
        out = {"start": float(spec["start"]), "step": float(spec.get("step", 0.0)),
               "max": float(spec.get("max", float("inf")))}
    except (TypeError, ValueError):
        raise StrategyError(f"{key}: start, step and max must be numbers, got {spec!r}") from None
    if out["start"] < 0 or out["max"] < 0:
        raise StrategyError(f"{key}: a penalty must be >= 0, got {spec!r}")
    return out


def _mean_pairwise_cosine(rows: List[torch.Tensor]) -> float:
    stacked = torch.stack([r.reshape(-1).double() for r in rows])
    unit = torch.nn.functional.normalize(stacked, dim=1)
    gram = unit @ unit.t()
    m = len(rows)
    return float((gram.sum() - gram.diagonal().sum()) / (m * (m - 1)))


class MoDo(Strategy):
    needs_gradients = True
    batches_per_step = 2

    def __init__(self, weights: Dict[str, float], levels: Optional[list] = None,
                 penalties: Optional[list] = None, gamma: float = GAMMA, rho: float = RHO,
                 conflict_threshold: Optional[float] = None,
                 non_conflicting: str = "weighted_sum", lambda_gradient: str = "objective_soups",
                 log_interval: int = 50):
        super().__init__(weights)
        levels = [list(self.names)] if levels is None else levels
        if (not isinstance(levels, (list, tuple)) or not levels
                or not all(isinstance(l, (list, tuple)) and l for l in levels)):
            raise StrategyError(f"strategy_conf.levels: expected a list of non-empty lists of "
                                f"objectives (e.g. [[asr_ctc], [st_ce], [cpc]]), got {levels!r}")
        seen = []
        for i, level in enumerate(levels):
            for name in level:
                if name not in weights:
                    raise StrategyError(f"strategy_conf.levels[{i}]: {name} is not an objective "
                                        f"that is on; on: {', '.join(self.names)}")
                if name in seen:
                    raise StrategyError(f"strategy_conf.levels: {name} is in two levels")
                seen.append(name)
        missing = [n for n in self.names if n not in seen]
        if missing:
            raise StrategyError(f"strategy_conf.levels: objectives {missing} are on but in no "
                                "level; add them to a level (or set their weight to 0)")
        self.levels = [tuple(level) for level in levels]
        penalties = [] if penalties is None and len(levels) == 1 else penalties
        if not isinstance(penalties, (list, tuple)) or len(penalties) != len(levels) - 1:
            raise StrategyError(
                f"strategy_conf.penalties: one {{start, step, max}} per level after the first "
                f"({len(levels) - 1} for {len(levels)} levels), got {penalties!r}; the paper's: "
                "eta_1 {start: 0.1, step: 0.02, max: 1.5}, eta_2 {start: 0.0, step: 0.02, max: 1.5}")
        self.penalties = [_check_penalty(p, f"strategy_conf.penalties[{i}]")
                          for i, p in enumerate(penalties)]
        self.gamma, self.rho = float(gamma), float(rho)
        if self.gamma <= 0 or self.rho < 0:
            raise StrategyError(f"strategy_conf: gamma must be > 0 and rho >= 0, got "
                                f"gamma={gamma}, rho={rho}")
        self.conflict_threshold = None if conflict_threshold is None else float(conflict_threshold)
        if non_conflicting not in ("weighted_sum", "skip"):
            raise StrategyError(f"strategy_conf.non_conflicting: weighted_sum or skip, got "
                                f"{non_conflicting!r}")
        self.non_conflicting = non_conflicting
        if lambda_gradient not in LAMBDA_GRADIENTS:
            raise StrategyError(f"strategy_conf.lambda_gradient: one of "
                                f"{', '.join(LAMBDA_GRADIENTS)}, got {lambda_gradient!r}")
        self.lambda_gradient = lambda_gradient
        self.log_interval = int(log_interval)
        for i, level in enumerate(self.levels):
            self.register_buffer(f"lambda_{i}", torch.full((len(level),), 1.0 / len(level),
                                                           dtype=torch.float64))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("epoch", torch.ones((), dtype=torch.long))
        self.register_buffer("skipped", torch.zeros((), dtype=torch.long))
        self._reached: Dict[str, set] = {}  # parameter -> objectives seen reaching it
        self._selected_share = 1.0
        self._log_path: Optional[Path] = None

    # -- schedule and state -------------------------------------------------------------
    def start_epoch(self, epoch: int, output_dir=None, is_writer: bool = True) -> None:
        self.epoch.fill_(int(epoch))
        if output_dir is not None and is_writer and self.log_interval > 0:
            self._log_path = Path(output_dir) / layer_conflict.CSV_NAME

    def etas(self) -> List[float]:
        return [penalty_value(p, int(self.epoch)) for p in self.penalties]

    def level_coefficients(self) -> List[float]:
        coefficients, running = [1.0], 1.0
        for eta in self.etas():
            running *= eta
            coefficients.append(running)
        return coefficients

    def lambdas(self) -> Dict[str, float]:
        return {name: float(getattr(self, f"lambda_{i}")[k])
                for i, level in enumerate(self.levels) for k, name in enumerate(level)}

    def stats(self) -> Dict[str, float]:
        out = {f"lambda_{n}": v for i, level in enumerate(self.levels) if len(level) > 1
               for n, v in self.lambdas().items() if n in level}
        out.update({f"eta_{i + 1}": eta for i, eta in enumerate(self.etas())})
        if self.conflict_threshold is not None:
            out["modo_selected"] = self._selected_share
        return out

    # -- the update ---------------------------------------------------------------------
    def combine(self, losses, model):
        raise StrategyError("strategy modo takes two half-batches per update (the trainer's "
                            "StrategyStep calls combine_two)")

    def combine_two(self, first, second, model):
        named = gradients.trainable(model)
        names, params = [n for n, _ in named], [p for _, p in named]
        g1 = gradients.objective_gradients(
            {n: l for n, l in first.items() if n in self.configured}, params)
        order = [n for level in self.levels for n in level]
        reach = []  # objectives reaching each tensor: in this batch, and ever (structure)
        for j, name in enumerate(names):
            here = {k for k in g1 if g1[k][j] is not None and bool(g1[k][j].any())}
            self._reached.setdefault(name, set()).update(here)
            reach.append(here)
        shared = [j for j, name in enumerate(names) if len(self._reached[name]) > 1]
        cosines = {j: (_mean_pairwise_cosine([g1[k][j] for k in sorted(reach[j])])
                       if len(reach[j]) > 1 else None) for j in shared}
        if self.conflict_threshold is None:
            selected = list(shared)
        else:
            selected = [j for j in shared
                        if cosines[j] is not None and cosines[j] < self.conflict_threshold]
        self._selected_share = len(selected) / len(shared) if shared else 0.0
        if self.training:
            self._update_lambdas(g1, second, params, selected)
        lams = self.lambdas()
        coefficients = self.level_coefficients()
        factor = {n: coefficients[i] for i, level in enumerate(self.levels) for n in level}
        fixed = {}
        for i, level in enumerate(self.levels):
            total = sum(self.configured[n] for n in level)
            fixed.update({n: coefficients[i] * self.configured[n] / total for n in level})
        chosen = set(selected)
        direction: List[Optional[torch.Tensor]] = []
        for j, name in enumerate(names):
            if len(self._reached[name]) <= 1:  # a head: its objective's own gradient
                weights = {k: 1.0 for k in reach[j]}
            elif j in chosen:
                weights = {k: factor[k] * lams[k] for k in order}
            elif self.non_conflicting == "weighted_sum":
                weights = fixed
            else:
                weights = {}
            d = None
            for k, w in weights.items():
                g = g1.get(k, [None] * len(names))[j]
                if g is not None and w != 0.0:
                    d = w * g if d is None else d + w * g
            direction.append(d)
        if self.training:
            self.updates += 1
            if self._log_path is not None and int(self.updates) % self.log_interval == 0:
                layer_conflict.write_rows(self._log_path, layer_conflict.layer_rows(
                    int(self.epoch), int(self.updates), [names[j] for j in shared],
                    [cosines[j] for j in shared], [j in chosen for j in shared]))
        return gradients.surrogate_loss(params, direction)

    def _update_lambdas(self, g1, second, params, selected) -> None:
        levels = [i for i, level in enumerate(self.levels) if len(level) > 1]
        if not levels or not selected:
            return
        second_losses = second()
        if second_losses is None:  # a batch of one row: no second half
            self.skipped += 1
            return
        sub = [params[j] for j in selected]
        if self.lambda_gradient == "modo":  # one backward per level: its weighted loss
            mixed = {}
            for i in levels:
                parts = [second_losses.get(n) for n in self.levels[i]]
                lam = getattr(self, f"lambda_{i}")
                mixed[f"level_{i}"] = (None if any(l is None for l in parts) else
                                       sum(float(w) * l for w, l in zip(lam, parts)))
            g2 = gradients.objective_gradients(mixed, sub)
        else:  # one backward per objective
            wanted = {n for i in levels for n in self.levels[i]}
            g2 = gradients.objective_gradients(
                {n: l for n, l in second_losses.items() if n in wanted}, sub)
        for i in levels:
            level = self.levels[i]
            have = (f"level_{i}" in g2 if self.lambda_gradient == "modo"
                    else all(n in g2 for n in level))
            if not (have and all(n in g1 for n in level)):
                self.skipped += 1
                continue
            lam = getattr(self, f"lambda_{i}")
            first = [[g1[n][j] for j in selected] for n in level]
            if self.lambda_gradient == "modo":
                coupling = coupling_weighted(first, g2[f"level_{i}"])
            else:
                coupling = coupling_per_objective(lam, first, [g2[n] for n in level])
            new = lambda_step(lam, coupling, self.gamma, self.rho)
            if not torch.isfinite(new).all():
                raise StrategyError(f"strategy modo: lambda of level {level} is not finite "
                                    f"({new.tolist()}); the gradients overflowed")
            lam.copy_(new)
        logging.debug("modo lambdas %s", self.lambdas())
