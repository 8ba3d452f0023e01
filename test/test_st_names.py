"""The driver's derived names (espnet_mtl.runner.options.st_names), one rule for st.sh and the sweep.

Checked against the bash that st.sh used before the rule moved to Python
(kept here as the reference), on option values with the characters the rule
rewrites."""

import subprocess
import sys

import pytest

from espnet_mtl.runner import sweep
from espnet_mtl.runner.options import NAME_INPUTS, st_exp_dir, st_names

# st.sh's derived names until issue 12, verbatim.
OLD_BASH = r'''
if [ -z "${st_tag}" ]; then
    if [ -n "${st_config}" ]; then st_tag="$(basename "${st_config}" .yaml)_${feats_type}"; else st_tag="train_${feats_type}"; fi
    st_tag+="_${src_lang}_${tgt_lang}_${tgt_token_type}_${tgt_case}${tgt_nbpe}"
    [ -n "${st_args}" ] && st_tag+="$(echo "${st_args}" | sed -e 's/--/_/g' -e 's/[ |=/]//g')"
    [ -n "${speed_perturb_factors}" ] && st_tag+="_sp"
fi
[ -z "${st_exp}" ] && st_exp=${expdir}/st_${st_tag}
if [ -z "${st_stats_dir}" ]; then
    st_stats_dir=${expdir}/st_stats_${feats_type}_${src_lang}_${tgt_lang}_${tgt_token_type}${tgt_nbpe}
    [ -n "${speed_perturb_factors}" ] && st_stats_dir+="_sp"
fi
if [ -z "${inference_tag}" ]; then
    if [ -n "${inference_config}" ]; then inference_tag="$(basename "${inference_config}" .yaml)"; else inference_tag=inference; fi
    [ -n "${inference_args}" ] && inference_tag+="$(echo "${inference_args}" | sed -e 's/--/_/g' -e 's/[ |=]//g')"
    inference_tag+="_st_model_$(echo "${inference_st_model}" | sed -e 's/\//_/g' -e 's/\.[^.]*$//g')"
fi
printf '%s\0' "${st_tag}" "${st_exp}" "${st_stats_dir}" "${inference_tag}"
'''

DEFAULTS = {"expdir": "exp", "feats_type": "raw", "src_lang": "en", "tgt_lang": "de",
            "tgt_token_type": "bpe", "tgt_case": "tc", "tgt_nbpe": "4000",
            "inference_st_model": "valid.acc.ave.pth"}

CASES = [
    {},
    {"st_config": "conf/tuning/train_st_mtl.yaml", "speed_perturb_factors": "0.9 1.0 1.1"},
    {"st_config": "conf/train.yml/", "st_args": "--max_epoch 2 --optim_conf lr=0.1 --x a/b|c"},
    {"st_config": ".yaml", "st_args": "---odd  --a=b"},
    {"st_tag": "mine", "expdir": "/abs/exp_fbank", "feats_type": "fbank"},
    {"st_exp": "elsewhere/x", "st_stats_dir": "stats/here", "inference_tag": "dec"},
    {"inference_config": "conf/decode_st.yaml", "inference_args": "--beam_size 5 --x=a/b|c",
     "inference_st_model": "exp/1epoch.v2.pth"},
    {"inference_st_model": "noext", "tgt_nbpe": "8000", "tgt_case": "lc.rm"},
]


@pytest.mark.parametrize("case", CASES)
def test_names_equal_the_old_bash_rule(case):
    values = {name: "" for name in NAME_INPUTS} | DEFAULTS | case
    r = subprocess.run(["bash", "-c", OLD_BASH], env={"PATH": "/usr/bin:/bin", **values},
                       capture_output=True, text=True, check=True)
    old = dict(zip(("st_tag", "st_exp", "st_stats_dir", "inference_tag"),
                   r.stdout.split("\0")[:4]))
    assert st_names(values) == old


def test_cli_prints_assignments_for_eval():
    args = [x for kv in {**DEFAULTS, "st_args": "--max_epoch 2", "st_config": "a b/c.yaml"}.items()
            for x in kv]
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.st_names", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    shell = subprocess.run(["bash", "-c", r.stdout + 'printf "%s|" "$st_tag" "$st_exp"'],
                           capture_output=True, text=True, check=True)
    assert shell.stdout == ("c_raw_en_de_bpe_tc4000_max_epoch2|"
                            "exp/st_c_raw_en_de_bpe_tc4000_max_epoch2|")
    r = subprocess.run([sys.executable, "-m", "espnet_mtl.bin.st_names", "st_tagg", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown name(s) st_tagg" in r.stderr


def test_the_sweep_names_its_points_by_the_drivers_rule(tmp_path):
    assert st_exp_dir("exp", "sweep_t_rw0") == st_names({"expdir": "exp",
                                                         "st_tag": "sweep_t_rw0"})["st_exp"]
    assert sweep.st_exp_of(tmp_path, "exp2", "t", "rw0") == \
        tmp_path / st_names({"expdir": "exp2", "st_tag": sweep.point_st_tag("t", "rw0")})["st_exp"]
