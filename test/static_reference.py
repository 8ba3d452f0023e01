"""Reference training numbers of `mtl_st`, recorded before the composable-core refactor.

`python test/static_reference.py` (run once, on the code before issue 12's
refactor) trains tiny `mtl_st` models for a few SGD steps on fixed seeds and
writes every reported loss of every step, a checksum of every parameter
after the last step, and the state-dict keys to `test/data/static_reference.json`.
`test_static_strategy.py` repeats the same steps through the static training
strategy and compares: the refactor must not change training. A fidelity
fix that changes these numbers on purpose regenerates them in its own commit
(`python test/static_reference.py --only CASE`) and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from test_mixed_source import _mixed_batch  # noqa: E402
from test_mtl_st_model import ALL_ON, _batch, _build  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "static_reference.json"
STEPS = 3

#: case -> (model_conf, batch maker, extra build kwargs)
CASES = {
    # every term, R-drop and consistency on, dropout on (default rates)
    "all_terms": (dict(ALL_ON), lambda: _batch(), {}),
    # a mixed-source batch: ST, MT-only, ASR-only and ST rows
    "mixed_sources": ({**ALL_ON, "rdrop_weight": 0.0}, lambda: _mixed_batch(), {}),
    # R-drop with mixed rows, encoder-state consistency, token-normalised losses
    "enc_mse_token_norm": ({**ALL_ON, "consistency_type": "enc_mse",
                            "length_normalized_loss": True},
                           lambda: _mixed_batch(), {}),
}


class _Patch:
    """A minimal monkeypatch for building models outside pytest."""

    def setattr(self, obj, name, value):
        setattr(obj, name, value)


def default_step(model, batch) -> dict:
    """One training step's forward + backward; returns the reported stats."""
    loss, stats, _ = model(**batch)
    loss.backward()
    return stats


def run_case(name: str, tmp: Path, step=default_step, monkeypatch=None) -> dict:
    """Train case `name` for STEPS SGD steps; stats per step and parameter checksums."""
    model_conf, make_batch, kw = CASES[name]
    tmp.mkdir(parents=True, exist_ok=True)
    model = _build(tmp, monkeypatch or _Patch(), model_conf, seed=0, **kw)
    model.train()
    # SGD, not Adam: Adam's per-parameter normalisation turns float-rounding noise in
    # gradients that are ~0 by symmetry (attention key biases) into lr-sized steps,
    # so any reordering of float sums would read as a changed parameter.
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1234)  # dropout and SpecAugment draws
    steps = []
    for _ in range(STEPS):
        optim.zero_grad()
        stats = step(model, make_batch())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        steps.append({k: (None if v is None else float(v)) for k, v in sorted(stats.items())
                      if k != "bleu"})
    params = {n: [float(p.detach().double().sum()), float(p.detach().double().abs().sum())]
              for n, p in model.named_parameters()}
    return {"steps": steps, "params": params, "state_dict_keys": sorted(model.state_dict())}


def main(argv=None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="regenerate only these cases")
    args = parser.parse_args(argv)
    old = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or CASES:
            old[name] = run_case(name, Path(tmp) / name)
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
