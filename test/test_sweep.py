"""The grid sweep tool (espnet_mtl.runner.sweep, python -m espnet_mtl.bin.sweep).

Unit tests on fabricated results, and one real sweep of two points over the
demo recipe (tiny corpus, one epoch each) through the driver's stages 10-13;
a sweep over a stand-in recipe as one Slurm array job on the local cluster.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import slurm_cluster
from espnet_mtl.runner import sweep
from espnet_mtl.bin.sweep import main
from espnet_mtl.runner.recipes import ROOT, copy_recipe

BASE = ROOT / "egs2" / "mini_st" / "st1" / "conf" / "train_st_mtl.yaml"
GRID = "consistency_weight=0,1.0 rdrop_weight=0,3.0 mt_weight=0.1,0.5"


def test_expand_grid_and_tags():
    points = sweep.expand_grid(GRID)
    assert len(points) == 8
    assert [p.index for p in points] == list(range(1, 9))
    assert points[0].tag == "cw0_rw0_mw0.1" and points[-1].tag == "cw1.0_rw3.0_mw0.5"
    assert "cw1.0_rw0_mw0.5" in [p.tag for p in points]
    assert points[-1].values == {"consistency_weight": 1.0, "rdrop_weight": 3.0,
                                 "mt_weight": 0.5}
    assert isinstance(points[0].values["rdrop_weight"], int)
    assert len({p.tag for p in points}) == 8
    # Clashing initials fall back to the full key.
    assert sweep.key_abbrev(["mt_weight", "mask_width"]) == {"mt_weight": "mt_weight",
                                                             "mask_width": "mask_width"}
    for bad in ("consistency_weight", "a=", "a=1 a=2", "a=1,1", ""):
        with pytest.raises(sweep.SweepError):
            sweep.expand_grid(bad)


def test_point_configs_override_only_the_model_conf_keys(tmp_path):
    points = sweep.expand_grid(GRID)
    paths = sweep.write_point_configs(BASE, points, tmp_path / "configs")
    assert [p.name for p in paths] == [f"{p.tag}.yaml" for p in points]
    base = yaml.safe_load(BASE.read_text())
    for p, path in zip(points, paths):
        config = yaml.safe_load(path.read_text())
        assert set(config) == set(base)
        for k in base:
            if k != "model_conf":
                assert config[k] == base[k], k
        for k, v in base["model_conf"].items():
            assert config["model_conf"][k] == p.values.get(k, v), k
    assert yaml.safe_load(paths[0].read_text())["model_conf"]["rdrop_weight"] == 0


def test_dotted_keys_reach_into_the_objectives_section(tmp_path):
    base = ROOT / "egs2" / "mini_st_low" / "st1" / "conf" / "train_st_mtl.yaml"
    points = sweep.expand_grid("objectives.mt_ce=0.2,1.0 objectives.consistency.weight=0.3")
    assert [p.tag for p in points] == ["omc0.2_ocw0.3", "omc1.0_ocw0.3"]
    paths = sweep.write_point_configs(base, points, tmp_path / "configs")
    conf = yaml.safe_load(paths[1].read_text())["model_conf"]["objectives"]
    orig = yaml.safe_load(base.read_text())["model_conf"]["objectives"]
    assert conf["mt_ce"] == 1.0 and conf["consistency"]["weight"] == 0.3
    # the rest of the section is the base config's
    assert {k: v for k, v in conf["consistency"].items() if k != "weight"} == \
        {k: v for k, v in orig["consistency"].items() if k != "weight"}
    assert conf["st_ce"] == orig["st_ce"]
    # R over a dotted key the grid does not vary takes the base config's value
    r = sweep.combination_value({"objectives.mt_ce": 1.0}, {"objectives.mt_ce": 1.0,
                                "objectives.consistency.weight": 2.0},
                                yaml.safe_load(base.read_text())["model_conf"])
    assert r == 1.0 + 2.0 * orig["consistency"]["weight"]
    with pytest.raises(sweep.SweepError, match="objectives.nope.weight"):
        sweep.write_point_configs(base, sweep.expand_grid("objectives.nope.weight=1"),
                                  tmp_path / "bad")


def test_unknown_key_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(sweep.SweepError, match="unknown grid key.*'rdrop'.*mt_weight"):
        sweep.write_point_configs(BASE, sweep.expand_grid("rdrop=1,2"), tmp_path)
    recipe = copy_recipe("mini_st", tmp_path / "r")
    code = main(["--recipe", str(recipe), "--base_config", "conf/train_st_mtl.yaml",
                 "--grid", "mt_weight=0,1 nope=1", "--name", "x"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("sweep: error: unknown grid key(s) ['nope']")
    assert "consistency_weight" in err and not (recipe / "exp").exists()
    code = main(["--recipe", str(recipe), "--base_config", "conf/train_st_mtl.yaml",
                 "--grid", "mt_weight=0,1", "--name", "x", "--combination", "foo=1"])
    assert code == 1 and "unknown combination key" in capsys.readouterr().err
    code = main(["--recipe", str(recipe), "--base_config", "conf/train_st_mtl.yaml",
                 "--grid", "mt_weight=0,1", "--name", "x", "--run_args", "--st_tag y"])
    assert code == 1 and "--st_tag is set by the sweep" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--bogus"])
    assert e.value.code == 1 and "sweep: error:" in capsys.readouterr().err


def _fake_result(st_exp: Path, bleu: float, chrf: float, test_set="tst-COMMON.en-de"):
    d = st_exp / "decode_st_st_model_valid.acc.ave" / test_set / "score_bleu"
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"bleu": bleu, "chrf": chrf, "ter": 50.0}))


def test_collect_write_and_plot_with_a_missing_point(tmp_path):
    points = sweep.expand_grid("consistency_weight=0,1.0 rdrop_weight=0,3.0")
    fake = {"cw0_rw0": (10.0, 30.0), "cw0_rw3.0": (12.5, 33.0), "cw1.0_rw0": (11.0, 31.0)}
    for tag, (b, c) in fake.items():
        _fake_result(tmp_path / f"st_{tag}", b, c)
    weights = sweep.parse_combination("consistency_weight=2,rdrop_weight=1", [])
    rows = sweep.collect_results(points, lambda tag: tmp_path / f"st_{tag}", weights)
    assert [r["tag"] for r in rows] == [p.tag for p in points]
    assert [r["bleu"] for r in rows] == [10.0, 12.5, 11.0, None]
    assert rows[3]["status"] == "missing" and rows[1]["chrf"] == 33.0
    assert [r["R"] for r in rows] == [0.0, 3.0, 2.0, 5.0]

    out = tmp_path / "out"
    out.mkdir()
    tsv, md = sweep.write_results(rows, out, weights, title="sweep t")
    lines = tsv.read_text().splitlines()
    assert lines[0].split("\t")[:6] == ["index", "tag", "consistency_weight", "rdrop_weight",
                                        "R", "test_set"]
    assert len(lines) == 5 and "missing" in lines[4]
    text = md.read_text()
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert table[0].startswith("| rank | tag | consistency_weight | rdrop_weight | R |")
    assert [ln.split(" | ")[1] for ln in table[1:]] == ["cw0_rw3.0", "cw1.0_rw0", "cw0_rw0",
                                                         "cw1.0_rw3.0"]
    assert "| 1 | cw0_rw3.0 | 0 | 3.0 | 3 | tst-COMMON.en-de | 12.5 | 33 |" in text
    assert "R = 2*consistency_weight + 1*rdrop_weight" in text
    assert "Missing results (1):" in text and "- cw1.0_rw3.0: missing" in text

    png = sweep.plot_horizon(rows, out / "horizon.png", weights)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    img = matplotlib.image.imread(png)
    assert img.shape[0] > 100 and img.shape[1] > 3 * img.shape[0]  # 3 panels side by side

    # Nothing scored at all still gives a table and a plot.
    rows = sweep.collect_results(points, lambda tag: tmp_path / "none", weights)
    sweep.write_results(rows, out, weights)
    sweep.plot_horizon(rows, out / "empty.png", weights)
    assert (out / "RESULTS.md").read_text().count("missing") >= 4


TINY = ['--local_data_opts', '--tgt_lang de --n_train 160 --n_dev 16 --n_test 16',
        '--src_nbpe', '80', '--tgt_nbpe', '80']


def test_sweep_end_to_end_on_the_demo_recipe(tmp_path):
    recipe = copy_recipe("mini_st", tmp_path)
    r = subprocess.run(["./run.sh", *TINY, "--stage", "1", "--stop_stage", "9"], cwd=recipe,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]

    run_args = shlex.join([*TINY, "--st_args", "--max_epoch 1 --keep_nbest_models 1"])
    cmd = [sys.executable, "-m", "espnet_mtl.bin.sweep", "--recipe", str(recipe),
           "--base_config", "conf/train_st_mtl.yaml", "--grid", "rdrop_weight=0,1.0",
           "--name", "t", "--run_args", run_args, "--max_parallel", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    sdir = recipe / "exp" / "sweep_t"
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (sdir / "logs" / "stats.log").exists()
    for i, tag in enumerate(["rw0", "rw1.0"], start=1):
        exp = recipe / "exp" / f"st_sweep_t_{tag}"
        results = list(exp.glob("*/tst-COMMON.en-de/score_bleu/result.json"))
        assert len(results) == 1, tag
        assert 0 <= json.loads(results[0].read_text())["bleu"] <= 100
        config = yaml.safe_load((exp / "config.yaml").read_text())
        assert config["model_conf"]["rdrop_weight"] == [0, 1.0][i - 1]
        assert "# Ended (code 0)" in (sdir / "logs" / f"point.{i}.log").read_text()
    rows = (sdir / "results.tsv").read_text().splitlines()
    assert len(rows) == 3 and all("\tok\t" in row for row in rows[1:])
    assert (sdir / "horizon.png").read_bytes()[:4] == b"\x89PNG"
    assert "| rank | tag | rdrop_weight | R |" in (sdir / "RESULTS.md").read_text()

    # Reruns do not retrain: --collect_only, and a plain rerun skips scored points.
    ckpt = recipe / "exp" / "st_sweep_t_rw0" / "checkpoint.pth"
    stamps = [ckpt.stat().st_mtime_ns, (sdir / "logs" / "point.1.log").stat().st_mtime_ns]
    r = subprocess.run(cmd + ["--collect_only"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 result(s), 0 missing" in r.stdout
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and "2 already scored" in r.stdout, r.stderr[-3000:]
    assert [ckpt.stat().st_mtime_ns,
            (sdir / "logs" / "point.1.log").stat().st_mtime_ns] == stamps


FAKE_RUN = """#!/usr/bin/env bash
# Stand-in for a recipe's run.sh: records its arguments, 'scores' stage 13,
# and fails for the configs named in FAIL_TAGS.
set -eu
echo "$@" >> calls.txt
stage=; tag=; config=
while [ $# -gt 0 ]; do
  case $1 in --stage) stage=$2;; --st_tag) tag=$2;; --st_config) config=$2;; esac; shift
done
[ "$stage" = 10 ] && { mkdir -p exp/st_stats; exit 0; }
case " ${FAIL_TAGS:-} " in *" $tag "*) echo "training $tag blew up" >&2; exit 3;; esac
d=exp/st_$tag/decode/tst/score_bleu; mkdir -p $d
bleu=$(python3 -c "import sys,yaml; print(10 + 5 * yaml.safe_load(open(sys.argv[1]))['model_conf']['mt_weight'])" "$config" 2>/dev/null || echo 10)
echo "{\\"bleu\\": $bleu, \\"chrf\\": 40.0}" > $d/result.json
"""


def fake_recipe(tmp_path: Path, run_sh: str) -> Path:
    recipe = tmp_path / "recipe"
    (recipe / "conf").mkdir(parents=True)
    (recipe / "conf" / "base.yaml").write_text(BASE.read_text())
    (recipe / "run.sh").write_text(run_sh)
    (recipe / "run.sh").chmod(0o755)
    return recipe


def test_failed_point_fails_the_sweep_after_the_others_and_a_rerun_resumes(tmp_path, capsys,
                                                                          monkeypatch):
    recipe = fake_recipe(tmp_path, FAKE_RUN)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=":")
    monkeypatch.setenv("FAIL_TAGS", "sweep_f_mw0.5")
    args = ["--recipe", str(recipe), "--base_config", "conf/base.yaml",
            "--grid", "mt_weight=0,0.5,1", "--name", "f", "--max_parallel", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    sdir = recipe / "exp" / "sweep_f"
    assert "sweep: error: 1 of 3 task(s) failed" in err and str(sdir / "logs/point.2.log") in err
    assert "training sweep_f_mw0.5 blew up" in err
    # The other points ran and were collected; the failed one is listed as missing.
    text = (sdir / "RESULTS.md").read_text()
    assert "| 1 | mw1 | 1 | 1 | tst | 15 | 40 |" in text and "- mw0.5: missing" in text
    calls = (recipe / "calls.txt").read_text().splitlines()
    assert len(calls) == 4 and "--stage 10 --stop_stage 10" in calls[0]

    monkeypatch.delenv("FAIL_TAGS")
    assert main(args) == 0
    capsys.readouterr()
    calls = (recipe / "calls.txt").read_text().splitlines()[4:]
    assert len(calls) == 2 and "--st_tag sweep_f_mw0.5" in calls[1]  # stats, then point 2 only
    assert "2 already scored" not in (sdir / "logs" / "point.2.log").read_text()
    assert "already scored; skipped" in (sdir / "logs" / "point.1.log").read_text()
    rows = (sdir / "results.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[5] for r in rows] == ["10", "12.5", "15"]
    assert main(args + ["--collect_only"]) == 0
    assert len((recipe / "calls.txt").read_text().splitlines()) == 6


# ------------------------------------------------------------------------------ backends

TEMPLATE_SLURM = ROOT / "egs2" / "TEMPLATE" / "st1" / "conf" / "slurm.yaml"


def test_backend_follows_cmd_backend_unless_the_option_says_otherwise(tmp_path, monkeypatch,
                                                                      capsys):
    recipe = fake_recipe(tmp_path, "#!/bin/sh\n")
    calls = []
    monkeypatch.setattr(sweep, "run_jobs",
                        lambda command, log, **kw: calls.append((command[0], kw)))
    monkeypatch.delenv("slurm_config", raising=False)
    args = ["--recipe", str(recipe), "--base_config", "conf/base.yaml", "--grid", "mt_weight=0,1",
            "--name", "b"]

    def sweep_with(*extra):
        calls.clear()
        assert main(args + list(extra)) == 0, capsys.readouterr().err
        (stats, stats_kw), (points, kw) = calls
        return stats, stats_kw, points, kw

    monkeypatch.setenv("cmd_backend", "slurm")
    stats, stats_kw, points, kw = sweep_with("--run_args", "--ngpu 2")
    # The points: one Slurm array, GPUs = the training's --ngpu, nothing nested.
    assert kw["backend"] == "slurm" and kw["job_range"] == (1, 2) and kw["max_parallel"] is None
    assert kw["resources"] == {"gpu": 2, "num_threads": 1}
    assert kw["backend_config"] == str(TEMPLATE_SLURM)
    assert " && cmd_backend=local " in points and "--run_point JOB" in points
    # Stage 10 runs here; its run.sh sends its own tasks to Slurm.
    assert stats_kw.get("backend", "local") == "local"
    assert f"cmd_backend=slurm slurm_config={TEMPLATE_SLURM} ./run.sh" in stats
    # st.sh's default of one GPU; the recipe's conf/slurm.yaml, then $slurm_config, as cmd.sh.
    (recipe / "conf" / "slurm.yaml").write_text("partition: cpu\n")
    _, _, _, kw = sweep_with("--max_parallel", "1")
    assert kw["resources"]["gpu"] == 1 and kw["max_parallel"] == 1
    assert kw["backend_config"] == str(recipe / "conf" / "slurm.yaml")
    (recipe / "conf" / "mine.yaml").write_text("partition: cpu\n")
    monkeypatch.setenv("slurm_config", "conf/mine.yaml")
    assert sweep_with()[3]["backend_config"] == str(recipe / "conf" / "mine.yaml")
    # --backend wins over the environment; locally one point at a time by default.
    stats, _, points, kw = sweep_with("--backend", "local")
    assert kw["backend"] == "local" and kw["max_parallel"] == 1 and "gpu" not in kw["resources"]
    assert "cmd_backend=local slurm_config=" in stats and "cmd_backend=local " in points
    monkeypatch.delenv("cmd_backend")
    assert sweep_with()[3]["backend"] == "local"
    monkeypatch.setenv("cmd_backend", "sge")
    assert main(args) == 1
    assert "unknown backend 'sge'; known: local, slurm" in capsys.readouterr().err


# The stand-in recipe for Slurm: sources the real cmd.sh (so the backend its
# stages would use is what cmd.sh makes of the environment) and records it,
# with the array job and task it runs in; fails while fail_<st_tag> exists.
SLURM_RUN = """#!/usr/bin/env bash
set -eu
stage=; tag=stats
while [ $# -gt 0 ]; do case $1 in --stage) stage=$2;; --st_tag) tag=$2;; esac; shift; done
. {cmd_sh}
read -r _ _ _ _ train_backend _ <<< "$train_cmd"
echo "$stage $tag $train_backend ${{SLURM_ARRAY_JOB_ID:-none}} ${{SLURM_ARRAY_TASK_ID:-none}}" \\
    >> calls.txt
[ "$stage" = 10 ] && exit 0
[ -e "fail_$tag" ] && {{ echo "training $tag blew up" >&2; exit 3; }}
d=exp/st_$tag/decode/tst/score_bleu; mkdir -p $d
echo '{{"bleu": 20.0, "chrf": 40.0}}' > $d/result.json
""".format(cmd_sh=ROOT / "egs2" / "TEMPLATE" / "st1" / "cmd.sh")


def test_sweep_on_slurm_is_one_array_job_and_resumes(tmp_path, capsys, monkeypatch):
    slurm_cluster.cluster()
    recipe = fake_recipe(tmp_path, SLURM_RUN)
    monkeypatch.setenv("cmd_backend", "slurm")
    monkeypatch.delenv("slurm_config", raising=False)
    args = ["--recipe", str(recipe), "--base_config", "conf/base.yaml",
            "--grid", "mt_weight=0,0.5,1"]
    # By default each task asks for st.sh's one GPU: the GPU-less cluster refuses it.
    assert main(args + ["--name", "g"]) == 1
    err = capsys.readouterr().err
    assert "sbatch refused the job" in err and "--gres=gpu:1 (from --gpu 1)" in err

    args += ["--name", "s", "--run_args", "--ngpu 0"]
    (recipe / "fail_sweep_s_mw0.5").touch()
    assert main(args) == 1
    err = capsys.readouterr().err
    sdir = recipe / "exp" / "sweep_s"
    assert "1 of 3 task(s) failed" in err and f"{sdir}/logs/point.2.log (code 3)" in err
    assert "training sweep_s_mw0.5 blew up" in err
    calls = [line.split() for line in (recipe / "calls.txt").read_text().splitlines()]
    assert calls[1][:3] == ["10", "stats", "slurm"] and calls[1][3:] == ["none", "none"]
    points = sorted(calls[2:])
    assert [c[1] for c in points] == ["sweep_s_mw0", "sweep_s_mw0.5", "sweep_s_mw1"]
    assert all(c[2] == "local" for c in points)  # no nested jobs from inside a task
    assert len({c[3] for c in points}) == 1 and points[0][3] != "none"  # one array job
    assert sorted(c[4] for c in points) == ["1", "2", "3"]
    text = (sdir / "RESULTS.md").read_text()
    assert "| mw0 |" in text and "| mw1 |" in text and "- mw0.5: missing" in text

    (recipe / "fail_sweep_s_mw0.5").unlink()
    assert main(args) == 0, capsys.readouterr().err
    calls = [line.split() for line in (recipe / "calls.txt").read_text().splitlines()[5:]]
    assert [c[:3] for c in calls] == [["10", "stats", "slurm"], ["11", "sweep_s_mw0.5", "local"]]
    assert "already scored; skipped" in (sdir / "logs" / "point.1.log").read_text()
    assert "2 already scored" not in (sdir / "logs" / "point.2.log").read_text()
    rows = (sdir / "results.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[5] for r in rows] == ["20", "20", "20"]
    assert slurm_cluster.queued() == []
