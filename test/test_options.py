"""The driver's option parser (Kaldi parse_options semantics)."""

import subprocess
import sys

import pytest

from espnet_mtl.runner.options import OptionError, parse_options

DEFAULTS = {"stage": "1", "stop_stage": "13", "use_lm": "false", "st_args": "", "test_sets": ""}


def test_values_and_equals_form_and_dashes():
    values, pos, help_ = parse_options(DEFAULTS, ["--stage", "3", "--stop-stage=5", "--st_args",
                                                  "--max_epoch 2 --seed 1"])
    assert values["stage"] == "3" and values["stop_stage"] == "5"
    assert values["st_args"] == "--max_epoch 2 --seed 1"
    assert pos == [] and not help_


def test_later_occurrence_wins():
    values, _, _ = parse_options(DEFAULTS, ["--stage", "3", "--stage", "7"])
    assert values["stage"] == "7"


def test_unknown_option_lists_valid_ones():
    with pytest.raises(OptionError) as e:
        parse_options(DEFAULTS, ["--stag", "3"])
    msg = str(e.value)
    assert "--stag" in msg and "--stage" in msg and "--stop_stage" in msg


def test_boolean_options_take_true_or_false():
    with pytest.raises(OptionError, match="true or false"):
        parse_options(DEFAULTS, ["--use_lm", "yes"])
    assert parse_options(DEFAULTS, ["--use_lm", "true"])[0]["use_lm"] == "true"


def test_missing_value_is_an_error():
    with pytest.raises(OptionError, match="needs a value"):
        parse_options(DEFAULTS, ["--stage"])


def test_config_file(tmp_path):
    cfg = tmp_path / "opts.conf"
    cfg.write_text("# comment\nstage=4\n--test_sets='tst-COMMON tst-HE'\n")
    values, _, _ = parse_options(DEFAULTS, ["--config", str(cfg), "--stop_stage", "9"])
    assert values["stage"] == "4" and values["test_sets"] == "tst-COMMON tst-HE"
    cfg.write_text("bogus=1\n")
    with pytest.raises(OptionError, match=r"opts.conf:1: unknown option 'bogus'"):
        parse_options(DEFAULTS, ["--config", str(cfg)])


def _run_in_bash(args: list[str]) -> subprocess.CompletedProcess:
    """Drive the CLI the way st.sh does: eval its output in bash."""
    script = (
        'stage=1; st_args=""; use_lm=false\n'
        f'out=$("{sys.executable}" -m espnet_mtl.bin.parse_options stage "$stage" '
        'st_args "$st_args" use_lm "$use_lm" --usage "Usage: st.sh" -- "$@") || exit 1\n'
        'eval "$out"\n'
        'printf "%s|%s|%s|%s\\n" "$stage" "$st_args" "$use_lm" "$*"\n'
    )
    return subprocess.run(["bash", "-c", script, "st.sh", *args], capture_output=True, text=True)


def test_cli_round_trip_through_bash_keeps_quoting():
    r = _run_in_bash(["--stage", "5", "--st_args", "--max_epoch 2 --note 'it''s'", "pos1"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "5|--max_epoch 2 --note 'it''s'|false|pos1\n"


def test_cli_unknown_option_fails_with_usage():
    r = _run_in_bash(["--nope", "1"])
    assert r.returncode == 1 and r.stdout == ""
    assert "unknown option --nope" in r.stderr and "--st_args" in r.stderr
    assert "Usage: st.sh" in r.stderr


def test_cli_help_exits_zero():
    r = _run_in_bash(["--help"])
    assert r.returncode == 0 and r.stdout == ""
    assert "--stage ('1')" in r.stderr


def test_config_file_that_is_not_utf8_names_file_and_line(tmp_path):
    cfg = tmp_path / "opts.conf"
    cfg.write_bytes(b"stage=3\ntest_sets=fran\xe7ais\n")
    with pytest.raises(OptionError, match=rf"--config {cfg}:2: not valid UTF-8"):
        parse_options(DEFAULTS, ["--config", str(cfg)])
