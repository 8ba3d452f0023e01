"""A new corpus in one command: the scaffolded recipe runs stages 1-13 on manifests.

The corpus: the demo generator's speech (MuST-C layout), rewritten as our TSV
manifests with relative audio paths, plus a row ending past its audio, an
ASR-only row and an MT-only row. The recipe is created by
`egs2/TEMPLATE/st1/setup.sh` outside the repository and run at tiny size with
the demo's model config.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from espnet_mtl.corpora.must_c import read_must_c_with_stats
from espnet_mtl.runner.scaffold import ScaffoldError, create_recipe

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONF = ROOT / "egs2/mini_st/st1/conf"


def _manifests(tmp: Path) -> Path:
    corpus = tmp / "corpus"
    subprocess.run([sys.executable, "-m", "espnet_mtl.bin.make_demo_corpus", "--out", str(corpus),
                    "--tgt_langs", "de", "--n_train", "160", "--n_dev", "16", "--n_test", "16"],
                   check=True, capture_output=True)
    manifests = tmp / "manifests"
    manifests.mkdir()
    for split, name in (("train", "train"), ("dev", "dev"), ("tst-COMMON", "test")):
        utts, _ = read_must_c_with_stats(corpus, "de", split)
        (manifests / name).symlink_to(corpus / "en-de/data" / split / "wav")
        rows = [(u.utt_id, f"{name}/{os.path.basename(u.wav_path)}", f"{u.start:.3f}",
                 f"{u.end:.3f}", u.speaker, u.src_text, u.tgt_text) for u in utts]
        if name == "train":
            first = rows[0]
            rows.append(("zz_overrun", first[1], "0.000", "999.000", first[4], "too long", "zu lang"))
            rows.append(("zz_asr", first[1], "0.000", "1.000", first[4], "only speech", ""))
            rows.append(("zz_mt", "", "", "", "", "only text", "nur text"))
        with open(manifests / f"{name}.tsv", "w", encoding="utf-8") as f:
            f.write("id\taudio\tstart\tend\tspeaker\tsrc_text\ttgt_text\n")
            f.writelines("\t".join(r) + "\n" for r in rows)
    return manifests


def test_scaffolded_recipe_runs_stages_1_to_13(tmp_path):
    manifests = _manifests(tmp_path)
    recipe = tmp_path / "egs2/mycorpus/st1"
    r = subprocess.run([str(ROOT / "egs2/TEMPLATE/st1/setup.sh"), str(recipe), "--src_lang", "en",
                        "--tgt_lang", "de", "--test_sets", "test", "--manifest_dir", str(manifests),
                        "--ngpu", "0", "--nj", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (recipe / "conf/train_st_mtl.yaml").resolve().name == \
        "train_st_mtl_regularization_horizon.yaml"
    r = subprocess.run(["./run.sh", "--src_nbpe", "80", "--tgt_nbpe", "80",
                        "--st_config", str(DEMO_CONF / "train_st.yaml"),
                        "--inference_config", str(DEMO_CONF / "decode_st.yaml"),
                        "--st_args", "--max_epoch 1"], cwd=recipe, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:] + r.stdout[-2000:]
    # ids are prefixed by their speaker (the demo's talk), as Kaldi sorting needs
    assert (recipe / "data/train_asr_only.en/text.tc.en").read_text() == \
        "ted_00001-zz_asr only speech\n"
    assert (recipe / "data/train_mt_only.en-de/text.tc.de").read_text() == "zz_mt nur text\n"
    overruns = "".join(p.read_text() for p in recipe.glob("dump/raw/org/train.en-de/format.*/overruns"))
    assert overruns.startswith("ted_00001-zz_overrun") and "dropped" in overruns
    dumped = (recipe / "dump/raw/train.en-de/text.tc.de").read_text()
    assert "zz_overrun" not in dumped and dumped.count("\n") == 160
    results = list(recipe.glob("exp/*/decode_*/test.en-de/score_bleu/result.json"))
    assert len(results) == 1
    # --aux_rows: the ASR-only and MT-only rows become the auxiliary sets of multi-task training
    r = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "4", "--aux_rows", "true",
                        "--src_nbpe", "80", "--tgt_nbpe", "80"], cwd=recipe, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "zz_asr" in (recipe / "dump/raw/aux_asr/text.tc.en").read_text()
    assert "zz_mt" in (recipe / "dump/raw/aux_mt/text.tc.de").read_text()


def test_scaffold_refuses_bad_requests(tmp_path):
    ok = dict(src_lang="en", tgt_lang="de")
    recipe = create_recipe(tmp_path / "egs2/a/st1", **ok, test_sets=("tst1", "tst2"))
    run_sh = (recipe / "run.sh").read_text()
    assert '--test_sets "tst1.en-de tst2.en-de"' in run_sh and os.access(recipe / "run.sh", os.X_OK)
    assert (recipe / "st.sh").resolve() == (ROOT / "egs2/TEMPLATE/st1/st.sh").resolve()
    assert "README.md" in os.listdir(recipe) and (recipe / "local/data.sh").exists()
    with pytest.raises(ScaffoldError, match="exists"):
        create_recipe(recipe, **ok)
    with pytest.raises(ScaffoldError, match="egs2/<name>/st1"):
        create_recipe(tmp_path / "egs2/b/asr1", **ok)
    with pytest.raises(ScaffoldError, match="set names must differ"):
        create_recipe(tmp_path / "egs2/c/st1", **ok, valid_set="train")
    with pytest.raises(ScaffoldError, match="no whitespace"):
        create_recipe(tmp_path / "egs2/d/st1", src_lang="e n", tgt_lang="de")
    assert not (tmp_path / "egs2/c/st1").exists()
