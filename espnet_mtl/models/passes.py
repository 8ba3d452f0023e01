"""What every model of ours shares: passes over batch rows, objectives over the passes.

A model class names its passes in four class tables and implements one method
per pass; this base turns the configured objectives (`model_conf.objectives`,
`espnet_mtl.objectives`) into the passes to run, runs them over the rows that
carry their fields, and returns ESPnet's (loss, stats, weight) with the
configured weighted sum, or with `return_objectives=True` each objective's loss
with its graph for the training strategies (`espnet_mtl.training.strategies`).

    PASS_FIELDS    pass -> the batch fields its rows must carry
    PASS_PROVIDES  pass -> the fields it computes (what objectives read as "pass.field")
    PASS_INPUTS    pass -> the passes it builds on
    PASS_ORDER     (pass, method) in the order they run (the order dropout draws are taken)

`mtl_st` (`models/mtl_st.py`, with `task_aware` on it) and `comsl`
(`models/comsl.py`) are such models: an objective that reads passes both
compute (e.g. `guided_st`: st.logits and mt.logits) works on both.
"""

from __future__ import annotations

import inspect
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_mtl import objectives as objective_table
from espnet_mtl.objectives import ObjectiveContext, ObjectiveError, PassOutput


def rows_of(mask: torch.Tensor) -> Optional[torch.Tensor]:
    """Indices where mask is True; None when it is True everywhere (no copy needed)."""
    return None if bool(mask.all()) else mask.nonzero(as_tuple=True)[0]


def take(x: Optional[torch.Tensor], idx: Optional[torch.Tensor]):
    return x if idx is None or x is None else x.index_select(0, idx)


_NO_CONTEXT = ObjectiveContext(ignore_id=-1, vocab_size=2, src_vocab_size=2, lsm_weight=0.0,
                               length_normalized=False)


class PassModel(AbsESPnetModel):
    """Objectives over passes; subclasses set the tables and the pass methods."""

    #: the `--model` name, for messages
    model_name: str = "?"
    PASS_FIELDS: Dict[str, Tuple[str, ...]] = {}
    PASS_PROVIDES: Dict[str, Tuple[str, ...]] = {}
    PASS_INPUTS: Dict[str, Tuple[str, ...]] = {}
    PASS_ORDER: tuple = ()
    #: the objectives when model_conf lists none (None: the seed-001 flat keys decide)
    DEFAULT_OBJECTIVES: Optional[dict] = None

    @classmethod
    def model_conf_defaults(cls) -> dict:
        """The model_conf keys (constructor arguments with a default) and their defaults."""
        return {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items()
                if v.default is not inspect.Parameter.empty}

    # -- objectives -----------------------------------------------------------------
    def setup_objectives(self, objectives: Optional[dict], flat: dict,
                         ctx: ObjectiveContext) -> None:
        """Build the objectives that are on and decide the passes they need."""
        if objectives is None:
            objectives = self.DEFAULT_OBJECTIVES
        self._listed = objective_table.resolve(objectives, flat)
        #: the configured weight of every listed objective (0 = off: not built)
        self.objective_weights = {n: spec["weight"] for n, spec in self._listed.items()}
        self._listed_classes = {n: objective_table.registry.get("objective", n)
                                for n in self._listed}
        self.objectives = objective_table.build(self._listed, ctx)
        self.check_needs(self.objectives)
        self.passes = self.passes_of(self.objectives)
        self._validation_passes = self.passes_of(
            {n: o for n, o in self.objectives.items() if not o.train_only})
        self.speech_copies = max([o.speech_copies for o in self.objectives.values()] or [1])
        #: set by the trainer during validation: objectives marked `train_only` (the MT
        #: path, consistency, R-drop) are pure overhead there and are skipped
        self.validating = False

    @classmethod
    def check_needs(cls, active) -> None:
        for name, objective in active.items():
            for need in objective.needs:
                pass_name, _, field = need.partition(".")
                if field not in cls.PASS_PROVIDES.get(pass_name, ()):
                    computed = ", ".join(f"{p}.{f}" for p, fs in cls.PASS_PROVIDES.items()
                                         for f in fs)
                    raise ObjectiveError(
                        f"model_conf.objectives.{name} needs '{need}', which model "
                        f"{cls.model_name} does not compute; it computes {computed}")

    @classmethod
    def passes_of(cls, active) -> set:
        """Every pass the objectives read, with the passes those build on."""
        todo = [p for o in active.values() for p in o.passes]
        needed = set()
        while todo:
            p = todo.pop()
            if p not in needed:
                needed.add(p)
                todo.extend(cls.PASS_INPUTS.get(p, ()))
        return needed

    @classmethod
    def objectives_on(cls, model_conf: Optional[dict], every: bool = False
                      ) -> Dict[str, Tuple[str, ...]]:
        """Objective -> the batch fields its examples must carry, for the objectives on
        (`every`: for every registered objective this model can compute, with its
        default options)."""
        conf = dict(model_conf or {})
        if every:
            listed = {name: {"weight": 1.0} for name in objective_table.registry.OBJECTIVES}
        else:
            flat = {k: conf.get(k) for k in objective_table.legacy_keys()}
            objectives = conf.get("objectives")
            listed = objective_table.resolve(
                cls.DEFAULT_OBJECTIVES if objectives is None else objectives, flat)
        out = {}
        for name, objective in objective_table.build(listed, _NO_CONTEXT).items():
            if every and any(p not in cls.PASS_FIELDS for p in objective.passes):
                continue  # another model's objective
            fields = {f for p in objective.passes for f in cls.PASS_FIELDS[p]}
            out[name] = tuple(sorted(fields))
        return out

    @classmethod
    def consumes(cls, fields: Sequence[str], model_conf: Optional[dict],
                 every: bool = False) -> List[str]:
        """The objectives on that examples carrying only `fields` feed (data sources ask)."""
        return [n for n, need in cls.objectives_on(model_conf, every).items()
                if set(need) <= set(fields)]

    def uses_src(self) -> List[str]:
        return [n for n, o in self.objectives.items()
                if any("src_text" in self.PASS_FIELDS[p] for p in o.passes)]

    def active_objectives(self) -> dict:
        """The objectives this forward computes: validation skips the `train_only` ones,
        and none that the training strategy has dropped (e.g. task-norm weighting)."""
        strategy = getattr(self, "strategy", None)
        dropped = strategy.dropped() if strategy is not None else ()
        if not self.validating and not dropped:
            return self.objectives
        return {n: o for n, o in self.objectives.items()
                if n not in dropped and not (self.validating and o.train_only)}

    # -- passes ----------------------------------------------------------------------
    def compute_passes(self, b: dict, active: Optional[dict] = None) -> Dict[str, PassOutput]:
        """Every pass the active objectives read, over the rows that carry its fields."""
        if active is not None and len(active) < len(self.objectives) and not self.validating:
            passes = self.passes_of(active)  # some objectives dropped by the strategy
        else:
            passes = self._validation_passes if self.validating else self.passes
        read = {p for o in (active or self.objectives).values() for p in o.passes}
        covers = {}
        for name in passes:
            covers[name] = b["has"][self.PASS_FIELDS[name][0]]
            for f in self.PASS_FIELDS[name][1:]:
                covers[name] = covers[name] & b["has"][f]
        out = {}
        for name, run in self.PASS_ORDER:
            if name not in passes:
                continue
            users = [p for p in passes if name in self.PASS_INPUTS.get(p, ())]
            users += [name] if name in read else []  # read itself (cpc reads speech)
            if not any(bool(covers[p].any()) for p in users or [name]):
                continue  # no row of this batch for it (or for the passes that read it)
            if any(p not in out for p in self.PASS_INPUTS.get(name, ())):
                continue
            out[name] = run(self, b, out, covers[name])
        return out

    # -- training ----------------------------------------------------------------------
    def make_batch(self, speech, speech_lengths, text, text_lengths, src_text,
                   src_text_lengths) -> dict:
        """The batch trimmed to its lengths, with which rows carry which field.

        In a mixed-source batch (`espnet_mtl.iterators`) a length of 0 marks a
        missing field: MT-only examples have no speech, ASR-only ones no translation.
        """
        assert text_lengths.dim() == 1, text_lengths.shape
        assert speech.shape[0] == speech_lengths.shape[0] == text.shape[0] == \
            text_lengths.shape[0], (speech.shape, speech_lengths.shape, text.shape,
                                    text_lengths.shape)
        uses_src = self.uses_src()
        if uses_src and (src_text is None or src_text_lengths is None):
            raise ValueError(
                f"model {self.model_name}: objectives {uses_src} need the source transcript: "
                "add src_text to the training data (--train_data_path_and_name_and_type "
                "<dir>/text.<src>,src_text,text)")
        text = text.masked_fill(text == -1, self.ignore_id)[:, : text_lengths.max()]
        has_speech = speech_lengths > 0
        if src_text is not None:
            assert src_text.shape[0] == speech.shape[0], (src_text.shape, speech.shape)
            src_text = src_text[:, : src_text_lengths.max()]
        has_src = (src_text_lengths > 0 if src_text is not None
                   else torch.zeros_like(has_speech))
        return dict(speech=speech, speech_lengths=speech_lengths, text=text,
                    text_lengths=text_lengths, src_text=src_text,
                    src_text_lengths=src_text_lengths,
                    has={"speech": has_speech, "text": text_lengths > 0, "src_text": has_src})

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        src_text: Optional[torch.Tensor] = None,
        src_text_lengths: Optional[torch.Tensor] = None,
        return_objectives: bool = False,
        **kwargs,
    ):
        """Losses of one batch; each example feeds the objectives its fields allow.

        Each objective is normalised by its own example (or token) count, so a
        pure ST batch gives exactly the ST-only numbers. Returns ESPnet's
        (loss, stats, weight) with loss = the configured weighted sum; with
        `return_objectives` a dict of those plus `objectives`: name -> loss with
        its graph (None when no row of this batch feeds it), for the trainer.
        """
        b = self.make_batch(speech, speech_lengths, text, text_lengths, src_text,
                            src_text_lengths)
        active = self.active_objectives()
        out = self.compute_passes(b, active)
        losses, stats = {}, {}
        for name, objective in active.items():
            losses[name], metrics = objective(out, self)
            stats.update(metrics)
        loss = speech.new_zeros(())
        for name, value in losses.items():
            if value is not None:
                loss = loss + self.objective_weights[name] * value
        if self.training and not loss.requires_grad:
            has = b["has"]
            raise RuntimeError(
                f"model {self.model_name}: no example of this batch feeds a loss (batch of "
                f"{speech.shape[0]}: {int((has['speech'] & has['text']).sum())} with "
                f"speech+translation, {int((has['speech'] & has['src_text']).sum())} with "
                f"speech+transcript, {int((has['src_text'] & has['text']).sum())} with "
                f"transcript+translation); check the mixed-source data against the "
                f"objectives on: {', '.join(self.objectives)}")
        stats = {"loss": loss.detach(), **self._loss_stats(losses), **stats}
        calculator = getattr(self, "mt_error_calculator", None)
        if not self.training and calculator is not None and "st" in out:
            st = out["st"]
            stats["bleu"] = calculator(st["logits"].argmax(-1).cpu(), st["tokens"].cpu())
        loss, stats, weight = force_gatherable((loss, stats, speech.shape[0]), loss.device)
        if return_objectives:
            return dict(loss=loss, stats=stats, weight=weight, objectives=losses)
        return loss, stats, weight

    def _loss_stats(self, losses) -> dict:
        """Every listed objective's stats key: 0 when off, None when no row fed it."""
        stats = {}
        for name, cls in self._listed_classes.items():
            if name not in self.objectives:
                stats[cls.stat] = torch.zeros(())
            else:
                value = losses.get(name)
                stats[cls.stat] = None if value is None else value.detach()
            for key in cls.metrics:
                stats.setdefault(key, None)
        stats.setdefault("bleu", None)
        return stats
