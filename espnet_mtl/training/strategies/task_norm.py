"""`task_norm`: IMTL's task-norm-based weight decrease (seed 000; methods.md section 2).

    strategy: task_norm
    strategy_conf:
        interval: 5000          # K: check every K updates (k = t // K)
        reference: st_ce        # the main task
        min_weight: 0.1         # below this a task is dropped: no longer computed
        decrease_only: true     # a ratio above 1 leaves the weight as it is [choice]
        rules:                  # (these are the defaults, the authors' code [code])
            asr_ctc: {groups: [encoder], until: 20000, exponent: 1.0}
            mt_ce: {groups: [textual_encoder, decoder], until: 30000, exponent: 0.5}

Every K updates, for each rule whose objective is on and not dropped, while
the due update k*K < `until`: g_group^task = the mean L2 norm of the gradient
on the attention output projections (parameters matching `projections`,
ESPnet's MultiHeadedAttention `linear_out.weight`: the decoder has a
self_attn and a src_attn one per layer) among the parameters whose name
starts with `<group>.`; ratio = max over the rule's groups of
g^task / g^reference; then w <- w * ratio ** (k * exponent). With
`decrease_only` (default) the ratio is capped at 1 [choice]: the method is a
weight *decrease*, and the uncapped formula compounds a ratio above 1 into
an exploding weight (the low-resource demo's CTC, whose summed loss has
~6x the ST gradient norm in the acoustic encoder, went 0.3 -> 12.5 -> 432 in
two checks and stalled ST training); `decrease_only: false` is the formula
as written. A task whose
weight falls below `min_weight` is dropped: its weight is 0 from then on and
`dropped()` lists it, so the model stops computing it and the passes only it
reads (e.g. the MT path). Every check is logged (`logging.info`).

The gradients are per task, of the UNWEIGHTED losses, taken with
`torch.autograd.grad` on just those projections (`gradients.objective_gradients`,
averaged across DDP ranks, so every rank takes the same decision); `.grad`
is neither read nor written. The authors' code instead reads `.grad`
accumulated over all tasks' weighted losses; we do not reproduce that
(methods.md section 2 says why). The gradients are extra work only on check
steps; every step returns the plain weighted sum of the current weights
(one backward), so this is not a `needs_gradients` strategy.

The weights that an update uses are the ones `stats()` reports before it
(as the trainer logs them): a check runs after the step's weighted sum is
formed, so its new weights apply from the next update. If the reference's
or the task's loss is None in the batch of a due check (no row of it feeds
that objective, e.g. an MT-only batch of a mixed-source run, on any DDP
rank), the check is postponed to the next batch that has both, and the log
says so at the due update (k is then that batch's t // K: a check postponed
past the next multiple of K merges into that one). Likewise when neither
loss has a gradient on a group's projections in that forward (an encoder
frozen for its first updates, e.g. HuBERT's `freeze_updates`). When only one
of the two has none, its loss does not reach the group: a `StrategyError`
(a configuration mistake, not a weight of 0 or a division by 0); so is a
group with no matching parameter, raised at the first training step.

The update count, the current weights (as current / configured), the last
check done and the dropped flags are buffers: checkpointed with the model
(as `strategy.*`), so a resumed run continues where the killed one stopped.
`stats()` reports `weight_<objective>` for every ruled objective each step,
which ESPnet's reporter averages per epoch and draws as images/weight_*.png
(`espnet_mtl.training.curves`).

The count advances once per training batch (`combine` in train mode): with
`--accum_grad N`, give `interval` and `until` in batches (N x updates).
The rules apply to the objectives that are on: the default rules skip those
that are off; rules given in the config must name objectives that are on.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Dict, List, Optional, Sequence

import torch

from espnet_mtl import registry
from espnet_mtl.training import gradients
from espnet_mtl.training.strategies.base import Strategy, StrategyError

#: the authors' rules [code]: ASR vs ST in the acoustic encoder until 20k updates,
#: MT vs ST in the textual encoder and decoder (max over the two) until 30k
DEFAULT_RULES = {
    "asr_ctc": {"groups": ["encoder"], "until": 20000, "exponent": 1.0},
    "mt_ce": {"groups": ["textual_encoder", "decoder"], "until": 30000, "exponent": 0.5},
}
#: attention output projections: ESPnet's MultiHeadedAttention (`self_attn`, `src_attn`,
#: `attn`) `linear_out`, and fairseq / torchaudio attention's `out_proj` (HuBERT encoders)
DEFAULT_PROJECTIONS = r"(attn|attention)\.(linear_out|out_proj)\.weight$"


def _refresh_after_load(module: "TaskNormWeights", _incompatible_keys) -> None:
    module._refresh()


class _Rule:
    def __init__(self, name: str, spec, key: str):
        if not isinstance(spec, dict):
            raise StrategyError(f"{key}: expected {{groups: [<module>, ...], until: <update>, "
                                f"exponent: <float>}}, got {spec!r}")
        unknown = set(spec) - {"groups", "until", "exponent"}
        if unknown:
            raise StrategyError(f"{key}.{sorted(unknown)[0]}: unknown key; expected groups, "
                                "until, exponent")
        groups = spec.get("groups")
        if (not isinstance(groups, (list, tuple)) or not groups
                or not all(isinstance(g, str) and g.strip(".") for g in groups)):
            raise StrategyError(f"{key}.groups: expected a non-empty list of module names "
                                f"(parameter-name prefixes, e.g. [encoder]), got {groups!r}")
        until = spec.get("until")
        try:
            until = math.inf if until is None else int(until)
            exponent = float(spec.get("exponent", 1.0))
        except (TypeError, ValueError):
            raise StrategyError(f"{key}: until must be an update count (or null: no end) and "
                                f"exponent a number, got {spec!r}") from None
        if until <= 0:
            raise StrategyError(f"{key}.until: must be > 0 (or null: no end), got {until}")
        if not exponent > 0:
            raise StrategyError(f"{key}.exponent: must be > 0, got {exponent}")
        self.name, self.key = name, key
        self.groups = [g.strip(".") for g in groups]
        self.until, self.exponent = until, exponent


class TaskNormWeights(Strategy):
    may_drop_objectives = True

    def __init__(self, weights: Dict[str, float], interval: int = 5000,
                 reference: str = "st_ce", min_weight: float = 0.1,
                 rules: Optional[Dict[str, dict]] = None,
                 projections: str = DEFAULT_PROJECTIONS, decrease_only: bool = True):
        super().__init__(weights)
        self.decrease_only = bool(decrease_only)
        try:
            self.interval = int(interval)
        except (TypeError, ValueError):
            self.interval = 0
        if self.interval < 1 or self.interval != interval:
            raise StrategyError(f"strategy_conf.interval: must be a whole number of updates "
                                f">= 1, got {interval!r}")
        if reference not in weights:
            raise StrategyError(f"strategy_conf.reference: '{reference}' is not an objective "
                                f"that is on; choices: {', '.join(weights)}")
        self.reference = reference
        try:
            self.min_weight = float(min_weight)
        except (TypeError, ValueError):
            self.min_weight = -1.0
        if not self.min_weight >= 0:
            raise StrategyError(f"strategy_conf.min_weight: must be a number >= 0, "
                                f"got {min_weight!r}")
        try:
            self.projections = re.compile(projections)
        except (TypeError, re.error) as e:
            raise StrategyError(f"strategy_conf.projections: not a regular expression "
                                f"({e}): {projections!r}") from None
        self.rules = self._rules(rules, weights)
        n = len(self.rules)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        #: current weight / configured weight: 1 until the first check, so the weights are
        #: exactly the configured ones until then (a float buffer holds float32 at most)
        self.register_buffer("rule_scales", torch.ones(n, dtype=torch.float32))
        #: the k of each rule's last check (k = t // K of the update it ran at)
        self.register_buffer("rule_checked", torch.zeros(n, dtype=torch.long))
        self.register_buffer("rule_dropped", torch.zeros(n, dtype=torch.bool))
        # Python copies of the buffers: reading a CUDA buffer every step would stall
        # the step (a device sync between forward and backward). Loading a state dict
        # refreshes them; combine writes both.
        self._refresh()
        self.register_load_state_dict_post_hook(_refresh_after_load)
        self._group_names: Optional[Dict[str, List[str]]] = None  # group -> param names

    def _rules(self, rules, weights) -> List[_Rule]:
        if rules is None:  # the defaults, for the objectives that are on
            specs = {n: s for n, s in DEFAULT_RULES.items() if n in weights}
        elif not isinstance(rules, dict):
            raise StrategyError(f"strategy_conf.rules: expected {{<objective>: {{groups: [...], "
                                f"until: ..., exponent: ...}}}}, got {rules!r}")
        else:
            specs = rules
        out = []
        for name, spec in specs.items():
            key = f"strategy_conf.rules.{name}"
            if name not in registry.OBJECTIVES:
                raise StrategyError(f"{key}: unknown objective '{name}'; choices: "
                                    f"{', '.join(registry.OBJECTIVES)}")
            if name not in weights:
                raise StrategyError(f"{key}: '{name}' is not an objective that is on; "
                                    f"on: {', '.join(weights)}")
            if name == self.reference:
                raise StrategyError(f"{key}: the reference objective has no rule of its own")
            out.append(_Rule(name, spec, key))
        return out

    def _refresh(self) -> None:
        self._t = int(self.updates)
        self._scale = [float(s) for s in self.rule_scales]
        self._checked = [int(k) for k in self.rule_checked]
        self._dropped = [bool(d) for d in self.rule_dropped]

    def _weight(self, i: int) -> float:
        return self.configured[self.rules[i].name] * self._scale[i]

    # -- what the trainer and the model ask ------------------------------------------
    def current_weights(self) -> Dict[str, float]:
        weights = dict(self.configured)
        for i, rule in enumerate(self.rules):
            weights[rule.name] = 0.0 if self._dropped[i] else self._weight(i)
        return weights

    def dropped(self):
        return tuple(r.name for r, d in zip(self.rules, self._dropped) if d)

    def stats(self):
        weights = self.current_weights()
        return {f"weight_{r.name}": weights[r.name] for r in self.rules}

    def combine(self, losses, model):
        total = super().combine(losses, model)  # this update: the weights stats() reported
        if not self.training:
            return total
        if self._group_names is None and self.rules:  # fail at the first step, not at t=K
            self._group_names = self._find_groups(model)
        n = self._t + 1  # this is update n
        k = n // self.interval
        due = [i for i, r in enumerate(self.rules)
               if not self._dropped[i] and k > self._checked[i] and k * self.interval < r.until]
        if due:
            self._check(due, k, n, losses, model)
        self._t = n
        self.updates.fill_(n)
        return total

    # -- the check ---------------------------------------------------------------------
    def _find_groups(self, model) -> Dict[str, List[str]]:
        found = [name for name, _ in model.named_parameters() if self.projections.search(name)]
        groups = {}
        for rule in self.rules:
            for group in rule.groups:
                names = [p for p in found if p.startswith(group + ".")]
                if not names:
                    existing = sorted({p.split(".", 1)[0] for p in found})
                    raise StrategyError(
                        f"{rule.key}.groups: '{group}' holds no attention output projection "
                        f"(parameter matching {self.projections.pattern!r}) in this model; "
                        f"groups that hold some: {', '.join(existing) or 'none'}")
                groups[group] = names
        return groups

    def _present_everywhere(self, names: Sequence[str], losses, model) -> Dict[str, bool]:
        """Whether each loss is there on every DDP rank (ranks then run the same collectives)."""
        present = {n: losses.get(n) is not None for n in names}
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            device = next(model.parameters()).device
            flags = torch.tensor([float(present[n]) for n in names], device=device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MIN)
            present = {n: bool(f) for n, f in zip(names, flags.tolist())}
        return present

    def _check(self, due: List[int], k: int, n: int, losses, model) -> None:
        present = self._present_everywhere(
            [self.reference] + [self.rules[i].name for i in due], losses, model)
        if not present[self.reference]:
            due = []
        due = [i for i in due if present[self.rules[i].name]]
        if not due:
            if n % self.interval == 0:
                logging.info(f"task_norm: update {n}: check k={k} postponed to the next batch "
                             f"with both losses (this one lacks {self.reference} or the task's)")
            return
        params_by_name = dict(model.named_parameters())
        groups = sorted({g for i in due for g in self.rules[i].groups})
        members = {g: [p for p in self._group_names[g] if params_by_name[p].requires_grad]
                   for g in groups}
        for i in due:
            for g in self.rules[i].groups:
                if not members[g]:
                    raise StrategyError(f"{self.rules[i].key}.groups: '{g}' has no trainable "
                                        "attention output projection (all frozen)")
        names = [p for g in groups for p in members[g]]
        index = {p: j for j, p in enumerate(names)}
        wanted = {self.reference: losses[self.reference],
                  **{self.rules[i].name: losses[self.rules[i].name] for i in due}}
        # the step's backward still needs the graph: keep it (a loss that reaches no
        # trainable parameter at all has no graph: no gradient anywhere)
        grads = gradients.objective_gradients(
            {t: l for t, l in wanted.items() if l.requires_grad},
            [params_by_name[p] for p in names], keep_graph=True)
        grads.update({t: [None] * len(names) for t in wanted if t not in grads})

        def norm(task: str, group: str) -> float:
            gs = [grads[task][index[p]] for p in members[group]]
            return sum(0.0 if g is None else float(g.norm()) for g in gs) / len(gs)

        for i in due:
            rule = self.rules[i]
            norms = {g: (norm(rule.name, g), norm(self.reference, g)) for g in rule.groups}
            silent = [g for g, (a, b) in norms.items() if a == 0.0 and b == 0.0]
            if silent:
                # no loss reaches the group in this forward (e.g. an encoder frozen for
                # its first updates): try again at the next batch
                if n % self.interval == 0:
                    logging.info(f"task_norm: update {n}: {rule.name} check k={k} postponed: "
                                 f"no gradient on the projections of {', '.join(silent)}")
                continue
            for g, (a, b) in norms.items():
                if a == 0.0 or b == 0.0:
                    task = rule.name if a == 0.0 else self.reference
                    raise StrategyError(
                        f"{rule.key}.groups: the gradient of {task} on the attention output "
                        f"projections of '{g}' is zero: its loss does not reach them")
            ratio = max(a / b for a, b in norms.values())
            applied = min(ratio, 1.0) if self.decrease_only else ratio
            old, scale = self._weight(i), self._scale[i] * applied ** (k * rule.exponent)
            new = self.configured[rule.name] * scale
            drop = new < self.min_weight
            self.rule_scales[i] = scale
            self.rule_checked[i] = k
            self.rule_dropped[i] = drop
            # the buffer's precision, so that a resumed run goes on bit for bit alike
            self._scale[i], self._checked[i], self._dropped[i] = float(self.rule_scales[i]), k, drop
            shown = ", ".join(f"{g} {a:.4g} / {b:.4g}" for g, (a, b) in norms.items())
            logging.info(
                f"task_norm: update {n} (k={k}): {rule.name} / {self.reference} gradient norm "
                f"on attention output projections: {shown}; ratio {ratio:.4g}"
                + (" (capped at 1: decrease_only)" if applied != ratio else "")
                + f" ** {k * rule.exponent:g}; weight {old:.4g} -> {new:.4g}"
                + (f"; below min_weight {self.min_weight:g}: {rule.name} dropped "
                   "(no longer computed)" if drop else ""))
            if drop and torch.distributed.is_available() and torch.distributed.is_initialized():
                logging.warning(
                    f"task_norm: {rule.name} dropped: parameters only it trained (e.g. the "
                    "MT embedding) get no gradient from now on; DDP needs "
                    "--unused_parameters true for that")
