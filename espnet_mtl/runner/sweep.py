"""Grid sweeps over a recipe's training config (the "regularization horizon").

A sweep expands a grid of `model_conf` coefficients (e.g. consistency_weight,
rdrop_weight, mt_weight) into points, writes one complete training config per
point, runs the recipe's stage 10 (collect stats) once and then stages 11-13
for every point as one JOB array (`espnet_mtl.runner.jobs.run_jobs`), and collects
BLEU / chrF into a table and a plot of BLEU against each coefficient and
against a linear combination R = sum_k w_k * coef_k.

Where the points train is a `run_jobs` backend, as in the recipe's cmd.sh:
`local` (processes here) or `slurm` (ONE array job, a task per point,
`%max_parallel` throttle; each task asks for the training's resources:
`--ngpu` GPUs of run_args, st.sh's default 1, through the Slurm config's GPU
settings). Stage 10 runs here with `cmd_backend=<backend>`, so its stats
tasks go to the backend; each point's `./run.sh` runs with
`cmd_backend=local`, since its task already holds the allocation (no nested
jobs). Failure naming and resume are the backend's common ones.

Layout of `<recipe>/<expdir>/sweep_<name>/`:
    sweep.json            what the tasks need (recipe, run_args, name, expdir)
    points.tsv            index, tag, one column per grid key
    configs/<tag>.yaml    the base config with the point's model_conf keys overridden
    logs/stats.log        stage 10; logs/point.<i>.log one per point
    results.tsv, RESULTS.md, horizon.png
Each point trains with `--st_tag sweep_<name>_<tag>`, so into the driver's
experiment dir for that tag (`options.st_exp_dir`: `<expdir>/st_sweep_<name>_<tag>/`).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from espnet_mtl.runner import slurm  # noqa: F401  (registers the slurm backend)
from espnet_mtl.runner.jobs import BACKENDS, run_jobs
from espnet_mtl.runner.options import st_exp_dir
from espnet_mtl.runner.recipes import ROOT


class SweepError(ValueError):
    """A user error: bad grid, unknown key, missing file."""


@dataclass
class Point:
    index: int  # 1-based, the JOB index
    tag: str
    values: dict[str, object]  # key -> parsed value (yaml scalar)
    raw: dict[str, str] = field(default_factory=dict)  # key -> value as written


# ----------------------------------------------------------------------------- grid

def parse_grid(spec: str | list[str]) -> dict[str, list[str]]:
    """'a=0,1 b=2' (or a list of 'a=0,1') -> {'a': ['0', '1'], 'b': ['2']}, in order."""
    items = shlex.split(spec) if isinstance(spec, str) else list(spec)
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"bad grid item '{item}': expected key=v1,v2,...")
        key, vals = item.split("=", 1)
        key = key.strip()
        values = [v.strip() for v in vals.split(",") if v.strip()]
        if not key or not values:
            raise SweepError(f"bad grid item '{item}': expected key=v1,v2,...")
        if key in grid:
            raise SweepError(f"grid key '{key}' given twice")
        if len(set(values)) != len(values):
            raise SweepError(f"grid key '{key}' has repeated values: {values}")
        grid[key] = values
    if not grid:
        raise SweepError("empty grid")
    return grid


def parse_combination(spec: str | None, keys: list[str]) -> dict[str, float]:
    """'a=1,b=0.5' -> {'a': 1.0, 'b': 0.5}; None -> weight 1 for every grid key."""
    if not spec:
        return {k: 1.0 for k in keys}
    weights: dict[str, float] = {}
    for item in re.split(r"[,\s]+", spec.strip()):
        if not item:
            continue
        if "=" not in item:
            raise SweepError(f"bad combination item '{item}': expected key=weight")
        k, w = item.split("=", 1)
        try:
            weights[k.strip()] = float(w)
        except ValueError:
            raise SweepError(f"bad combination weight '{w}' for '{k}'") from None
    return weights


def _parse_value(text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def key_abbrev(keys: list[str]) -> dict[str, str]:
    """consistency_weight -> cw, objectives.mt_ce -> omc (initials of the '_' and '.'
    parts); the full key on a clash."""
    abbrev = {k: "".join(p[0] for p in re.split(r"[_.]", k) if p) or k for k in keys}
    counts: dict[str, int] = {}
    for a in abbrev.values():
        counts[a] = counts.get(a, 0) + 1
    return {k: (a if counts[a] == 1 else k) for k, a in abbrev.items()}


def point_tag(raw: dict[str, str], abbrev: dict[str, str] | None = None) -> str:
    """{'consistency_weight': '1.0', 'rdrop_weight': '0'} -> 'cw1.0_rw0'."""
    abbrev = abbrev or key_abbrev(list(raw))
    parts = [f"{abbrev[k]}{v}" for k, v in raw.items()]
    return re.sub(r"[^A-Za-z0-9._+-]", "-", "_".join(parts))


def expand_grid(grid: dict[str, list[str]] | str) -> list[Point]:
    """Cartesian product of the grid, last key varying fastest; indices from 1."""
    if isinstance(grid, str):
        grid = parse_grid(grid)
    keys = list(grid)
    abbrev = key_abbrev(keys)
    points = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys)), start=1):
        raw = dict(zip(keys, combo))
        points.append(Point(i, point_tag(raw, abbrev),
                            {k: _parse_value(v) for k, v in raw.items()}, raw))
    tags = [p.tag for p in points]
    if len(set(tags)) != len(tags):
        raise SweepError(f"grid values give clashing tags: {tags}")
    return points


# --------------------------------------------------------------------------- configs

def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"no base config {path}")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config.get("model_conf"), dict):
        raise SweepError(f"{path} has no model_conf section to sweep over")
    return config


# Grid keys are model_conf keys; a dotted key reaches into nested sections
# (`objectives.consistency.weight`, `objectives.mt_ce`), as objectives are configured.
_MISSING = object()


def conf_value(model_conf: dict, key: str, default=_MISSING):
    node = model_conf
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def check_keys(config: dict, keys, what: str = "grid", source: str = "the base config") -> None:
    known = config["model_conf"]
    unknown = [k for k in keys if conf_value(known, k, None) is None]
    if unknown:
        raise SweepError(f"unknown {what} key(s) {unknown}: not in {source}'s model_conf; "
                         f"its keys are: {', '.join(sorted(known))} (a dotted key such as "
                         "objectives.consistency.weight reaches into a section)")


def point_config(base: dict, point: Point) -> dict:
    """A deep copy of the base config with the point's model_conf keys overridden."""
    config = yaml.safe_load(yaml.safe_dump(base))
    for key, value in point.values.items():
        *parents, last = key.split(".")
        node = config["model_conf"]
        for part in parents:
            node = node[part]
        node[last] = value
    return config


def write_point_configs(base_config: str | Path, points: list[Point],
                        out_dir: str | Path) -> list[Path]:
    """configs/<tag>.yaml for each point; raises SweepError on an unknown key."""
    base = load_config(base_config)
    check_keys(base, {k for p in points for k in p.values}, source=str(base_config))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for p in points:
        path = out_dir / f"{p.tag}.yaml"
        header = (f"# Sweep point {p.index}: {base_config} with model_conf "
                  + ", ".join(f"{k}={v}" for k, v in p.raw.items()) + "\n")
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(header + yaml.safe_dump(point_config(base, p), sort_keys=False,
                                                allow_unicode=True), encoding="utf-8")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def write_points(points: list[Point], path: str | Path) -> None:
    keys = list(points[0].raw)
    lines = ["\t".join(["index", "tag", *keys])]
    lines += ["\t".join([str(p.index), p.tag, *(p.raw[k] for k in keys)]) for p in points]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_points(path: str | Path) -> list[Point]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    keys = rows[0][2:]
    points = []
    for row in rows[1:]:
        raw = dict(zip(keys, row[2:]))
        points.append(Point(int(row[0]), row[1], {k: _parse_value(v) for k, v in raw.items()},
                            raw))
    return points


# ---------------------------------------------------------------------------- running

def _option(args: list[str], name: str, default: str) -> str:
    """The last value of `--name value` in run.sh arguments (later ones win)."""
    value = default
    for a, b in zip(args, args[1:]):
        if a == f"--{name}":
            value = b
    return value


def slurm_config_of(recipe: str | Path) -> Path:
    """The Slurm config the recipe's cmd.sh uses: $slurm_config (default
    conf/slurm.yaml) relative to the recipe, else the template's."""
    path = Path(recipe) / os.environ.get("slurm_config", "conf/slurm.yaml")
    return path if path.is_file() else ROOT / "egs2" / "TEMPLATE" / "st1" / "conf" / "slurm.yaml"


def sweep_dir_of(recipe: str | Path, name: str, expdir: str = "exp") -> Path:
    return Path(recipe).resolve() / expdir / f"sweep_{name}"


def point_st_tag(name: str, tag: str) -> str:
    """The `--st_tag` a point of sweep `name` trains under."""
    return f"sweep_{name}_{tag}"


def st_exp_of(recipe: Path, expdir: str, name: str, tag: str) -> Path:
    """The point's experiment dir, by the driver's own rule (`options.st_exp_dir`)."""
    return Path(recipe) / st_exp_dir(expdir, point_st_tag(name, tag))


def find_results(st_exp: Path) -> dict[str, Path]:
    """test_set -> result.json under <st_exp>/<inference_tag>/<test_set>/score_bleu/."""
    found = {}
    for p in sorted(st_exp.glob("*/*/score_bleu/result.json")):
        found.setdefault(p.parent.parent.name, p)
    return found


def _point_done(info: dict, point: Point) -> bool:
    return bool(find_results(st_exp_of(Path(info["recipe"]), info["expdir"], info["name"],
                                       point.tag)))


def run_point(sweep_dir: str | Path, index: int) -> int:
    """One JOB task: stages 11-13 of run.sh for point `index` (skipped when scored)."""
    sweep_dir = Path(sweep_dir)
    info = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    points = {p.index: p for p in read_points(sweep_dir / "points.tsv")}
    if index not in points:
        raise SweepError(f"no point {index} in {sweep_dir / 'points.tsv'}")
    point = points[index]
    if _point_done(info, point):
        print(f"sweep: point {index} ({point.tag}) already scored; skipped", flush=True)
        return 0
    config = os.path.relpath(sweep_dir / "configs" / f"{point.tag}.yaml", info["recipe"])
    cmd = ["./run.sh", *info["run_args"], "--stage", "11", "--stop_stage", "13",
           "--st_config", config, "--st_tag", point_st_tag(info["name"], point.tag)]
    print(f"sweep: point {index} ({point.tag}): {shlex.join(cmd)}", flush=True)
    return subprocess.call(cmd, cwd=info["recipe"])


def run_sweep(recipe: str | Path, base_config: str, grid: str | dict, name: str, *,
              combination: str | None = None, run_args: str | list[str] = "",
              max_parallel: int | None = None, collect_only: bool = False,
              backend: str = "local", backend_config: str | None = None,
              log=print) -> dict:
    """Prepare, run (unless collect_only) and collect a sweep; returns collect_results'.

    `backend` runs the points (see the module docstring); `backend_config` is
    its settings file (default: the recipe's, as cmd.sh finds it).
    `max_parallel` None: one point at a time locally (they share this
    machine), all at once on a cluster (its scheduler shares it).

    Raises JobsFailed (naming the failed points' logs) after every point ran,
    and after the results of the others were written.
    """
    recipe = Path(recipe).resolve()
    if not (recipe / "run.sh").is_file():
        raise SweepError(f"{recipe} is not a recipe (no run.sh)")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SweepError(f"bad sweep name '{name}': use letters, digits, '.', '_', '-'")
    run_args = shlex.split(run_args) if isinstance(run_args, str) else list(run_args)
    for banned in ("--st_tag", "--st_config", "--stage", "--stop_stage", "--st_exp"):
        if banned in run_args:
            raise SweepError(f"{banned} is set by the sweep; do not pass it in run_args")
    expdir = _option(run_args, "expdir", "exp")
    if backend not in BACKENDS:
        raise SweepError(f"unknown backend '{backend}'; known: {', '.join(sorted(BACKENDS))}")
    if backend == "local":
        max_parallel = max_parallel or 1
    backend_config = str(Path(backend_config or slurm_config_of(recipe)).resolve())
    try:
        ngpu = int(_option(run_args, "ngpu", "1"))  # st.sh's default
    except ValueError:
        raise SweepError(f"bad --ngpu in run_args: {_option(run_args, 'ngpu', '')}") from None
    base_path = Path(base_config)
    if not base_path.is_absolute():
        base_path = recipe / base_path
    points = expand_grid(grid)
    keys = list(points[0].raw)
    base = load_config(base_path)
    weights = parse_combination(combination, keys)
    check_keys(base, keys, source=str(base_config))
    check_keys(base, weights, what="combination", source=str(base_config))

    sdir = sweep_dir_of(recipe, name, expdir)
    sdir.mkdir(parents=True, exist_ok=True)
    info = {"recipe": str(recipe), "name": name, "expdir": expdir, "run_args": run_args,
            "base_config": str(base_config), "grid": {k: list(p) for k, p in
                                                      _grid_of(points).items()},
            "combination": weights}
    if (sdir / "points.tsv").exists() and not collect_only:
        old = [p.tag for p in read_points(sdir / "points.tsv")]
        if old != [p.tag for p in points]:
            raise SweepError(f"{sdir} holds another grid ({', '.join(old)}); "
                             "use another --name")
    if collect_only:
        if not (sdir / "points.tsv").exists():
            raise SweepError(f"nothing to collect: no {sdir / 'points.tsv'}")
    else:
        write_point_configs(base_path, points, sdir / "configs")
        write_points(points, sdir / "points.tsv")
        (sdir / "sweep.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        pending = [p for p in points if not _point_done(info, p)]
        log(f"sweep {name}: {len(points)} point(s), {len(points) - len(pending)} already "
            f"scored -> {sdir}")
        if pending:
            first = os.path.relpath(sdir / "configs" / f"{pending[0].tag}.yaml", recipe)
            # Stage 10 recreates the shared stats dir: once, before the points. It
            # runs here and only sequences; its own stats tasks go to the backend.
            log(f"sweep {name}: stage 10 (log: {sdir / 'logs' / 'stats.log'})")
            run_jobs([f"cd {shlex.quote(str(recipe))} && cmd_backend={backend} "
                      f"slurm_config={shlex.quote(backend_config)} ./run.sh "
                      + shlex.join([*run_args, "--stage", "10", "--stop_stage", "10",
                                    "--st_config", first])],
                     sdir / "logs" / "stats.log")
            log(f"sweep {name}: stages 11-13 for {len(points)} point(s) on {backend}, "
                f"max_parallel {max_parallel or 'all'} (logs: {sdir / 'logs'}/point.JOB.log)")
            fixed = str(recipe) + str(sdir) + sys.executable
            var = "JOB" if "JOB" not in fixed else "SWEEP_POINT_INDEX"  # paths must stay intact
            # Each point's training gets its share of this machine's cores (st.sh
            # asks for all of them, but an outer OMP_NUM_THREADS wins) ...
            resources = {"num_threads": max(1, (os.cpu_count() or 1)
                                            // min(max_parallel or len(points), len(points)))}
            if backend != "local":
                # ... but a cluster task is the training's own allocation: what
                # st.sh asks for stage 11 (--ngpu GPUs, one thread on GPU).
                resources = {"gpu": ngpu, "num_threads": 1 if ngpu else resources["num_threads"]}
            try:
                # cmd_backend=local: the point's run.sh must not submit jobs of its
                # own from inside a Slurm task (nor, locally, from a local one).
                run_jobs(["cd " + shlex.quote(str(recipe)) + " && cmd_backend=local "
                          + shlex.join([sys.executable, "-m", "espnet_mtl.bin.sweep",
                                        "--run_point", var, "--sweep_dir", str(sdir)])],
                         sdir / "logs" / f"point.{var}.log", job_range=(1, len(points)),
                         max_parallel=max_parallel, job_var=var, backend=backend,
                         backend_config=backend_config, resources=resources)
            except Exception:
                _collect_and_write(recipe, sdir, name, expdir, keys, weights, log)
                raise
    return _collect_and_write(recipe, sdir, name, expdir, keys, weights, log)


def _grid_of(points: list[Point]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for p in points:
        for k, v in p.raw.items():
            if v not in grid.setdefault(k, []):
                grid[k].append(v)
    return grid


def _collect_and_write(recipe, sdir, name, expdir, keys, weights, log) -> dict:
    points = read_points(sdir / "points.tsv")
    info_path = sdir / "sweep.json"
    if info_path.exists():  # a collect_only run uses the sweep's own combination
        weights = json.loads(info_path.read_text(encoding="utf-8")).get("combination", weights)
    base_values = {}
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        base_path = Path(info["base_config"])
        base_values = load_config(base_path if base_path.is_absolute()
                                  else Path(recipe) / base_path)["model_conf"]
    except (OSError, ValueError, KeyError):
        pass
    rows = collect_results(points, lambda tag: st_exp_of(recipe, expdir, name, tag),
                           weights, base_values)
    write_results(rows, sdir, weights, title=f"sweep {name}")
    plot_horizon(rows, sdir / "horizon.png", weights, title=f"Regularization horizon: {name}")
    missing = [r["tag"] for r in rows if r["bleu"] is None]
    log(f"sweep {name}: {len(rows) - len(missing)} result(s), {len(missing)} missing"
        + (f" ({', '.join(missing)})" if missing else "") + f" -> {sdir / 'RESULTS.md'}")
    return {"rows": rows, "missing": missing, "sweep_dir": sdir}


# ---------------------------------------------------------------------------- results

def combination_value(values: dict, weights: dict[str, float],
                      base_values: dict | None = None) -> float | None:
    """R = sum_k w_k * coef_k (a key not in the point takes the base config's value)."""
    total = 0.0
    for k, w in weights.items():
        v = values[k] if k in values else conf_value(base_values or {}, k, None)
        try:
            total += w * float(v)
        except (TypeError, ValueError):
            return None
    return total


def collect_results(points: list[Point], st_exp_for, weights: dict[str, float] | None = None,
                    base_values: dict | None = None) -> list[dict]:
    """One row per point and test set: tag, values, R, bleu, chrf, test_set, result path.

    `st_exp_for(tag)` gives the point's experiment dir. A point without a
    result.json gets one row with bleu None and status 'missing'.
    """
    weights = weights if weights is not None else {k: 1.0 for k in points[0].values}
    rows = []
    for p in points:
        common = {"index": p.index, "tag": p.tag, "values": dict(p.values), "raw": dict(p.raw),
                  "R": combination_value(p.values, weights, base_values)}
        found = find_results(Path(st_exp_for(p.tag)))
        if not found:
            rows.append({**common, "test_set": "", "bleu": None, "chrf": None,
                         "status": "missing", "result": ""})
            continue
        for test_set, path in found.items():
            try:
                r = json.loads(path.read_text(encoding="utf-8"))
                bleu, chrf, status = float(r["bleu"]), r.get("chrf"), "ok"
                chrf = None if chrf is None else float(chrf)
            except (OSError, ValueError, KeyError, TypeError) as e:
                bleu, chrf, status = None, None, f"unreadable ({type(e).__name__})"
            rows.append({**common, "test_set": test_set, "bleu": bleu, "chrf": chrf,
                         "status": status, "result": str(path)})
    return rows


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def write_results(rows: list[dict], out_dir: str | Path, weights: dict[str, float],
                  title: str = "sweep") -> tuple[Path, Path]:
    """results.tsv (point order) and RESULTS.md (sorted by BLEU, missing last)."""
    out_dir = Path(out_dir)
    keys = list(rows[0]["raw"]) if rows else []
    tsv = ["\t".join(["index", "tag", *keys, "R", "test_set", "bleu", "chrf", "status",
                      "result"])]
    for r in rows:
        tsv.append("\t".join([str(r["index"]), r["tag"], *(r["raw"][k] for k in keys),
                              _fmt(r["R"]), r["test_set"], _fmt(r["bleu"]), _fmt(r["chrf"]),
                              r["status"], r["result"]]))
    (out_dir / "results.tsv").write_text("\n".join(tsv) + "\n", encoding="utf-8")

    r_def = " + ".join(f"{_fmt(w)}*{k}" for k, w in weights.items())
    ranked = sorted(rows, key=lambda r: (r["bleu"] is None, -(r["bleu"] or 0.0), r["index"]))
    md = [f"# {title}", "", f"R = {r_def}", "",
          "| rank | tag | " + " | ".join(keys) + " | R | test set | BLEU | chrF |",
          "|---|---|" + "---|" * len(keys) + "---|---|---|---|"]
    rank = 0
    for r in ranked:
        if r["bleu"] is not None:
            rank += 1
        md.append(f"| {rank if r['bleu'] is not None else '-'} | {r['tag']} | "
                  + " | ".join(r["raw"][k] for k in keys)
                  + f" | {_fmt(r['R'])} | {r['test_set'] or '-'} | "
                  + (_fmt(r["bleu"]) if r["bleu"] is not None else r["status"])
                  + f" | {_fmt(r['chrf'])} |")
    missing = [r for r in rows if r["bleu"] is None]
    if missing:
        md += ["", f"Missing results ({len(missing)}):"]
        md += [f"- {r['tag']}: {r['status']}" for r in missing]
    (out_dir / "RESULTS.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return out_dir / "results.tsv", out_dir / "RESULTS.md"


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def plot_horizon(rows: list[dict], path: str | Path, weights: dict[str, float],
                 title: str = "Regularization horizon") -> Path:
    """One panel per coefficient (BLEU vs it, one line per setting of the others)
    and one panel BLEU vs R = sum_k w_k * coef_k."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(rows[0]["raw"]) if rows else []
    scored = [r for r in rows if r["bleu"] is not None]
    test_sets = sorted({r["test_set"] for r in scored})
    if len(test_sets) > 1:  # one curve family: the first test set
        scored = [r for r in scored if r["test_set"] == test_sets[0]]
    n = len(keys) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    axes = axes[0]
    for ax, key in zip(axes, keys):
        others = [k for k in keys if k != key]
        groups: dict[tuple, list[dict]] = {}
        for r in scored:
            groups.setdefault(tuple(r["raw"][k] for k in others), []).append(r)
        for group, members in sorted(groups.items()):
            members.sort(key=lambda r: _num(r["values"][key]))
            label = ", ".join(f"{k}={v}" for k, v in zip(others, group)) or None
            ax.plot([_num(r["values"][key]) for r in members], [r["bleu"] for r in members],
                    marker="o", label=label)
        ax.set_xlabel(key)
        ax.set_ylabel("BLEU")
        ax.set_title(f"BLEU vs {key}")
        ax.grid(alpha=0.3)
        if groups and others:
            ax.legend(fontsize=6)
    ax = axes[-1]
    pts = sorted((r for r in scored if r["R"] is not None), key=lambda r: r["R"])
    ax.plot([r["R"] for r in pts], [r["bleu"] for r in pts], "o--", color="k")
    for r in pts:
        ax.annotate(r["tag"], (r["R"], r["bleu"]), fontsize=5, alpha=0.7)
    ax.set_xlabel("R = " + " + ".join(f"{_fmt(w)}*{k}" for k, w in weights.items()))
    ax.set_ylabel("BLEU")
    ax.set_title("BLEU vs total regularization R")
    ax.grid(alpha=0.3)
    missing = len({r["tag"] for r in rows if r["bleu"] is None})
    fig.suptitle(title + (f" ({test_sets[0]})" if test_sets else "")
                 + (f" - {missing} point(s) missing" if missing else ""))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
