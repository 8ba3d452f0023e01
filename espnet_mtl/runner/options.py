"""Kaldi parse_options.sh semantics for the stage driver, in Python.

The driver declares its options as shell variables with defaults, passes
`name default` pairs and its command line here, and evals the assignments we
print. Rules (as Kaldi's parse_options.sh):
- `--name value` or `--name=value`; dashes in names map to underscores;
- an option is valid only if the driver declared it; an unknown option is an
  error listing the valid ones;
- an option whose default is true/false only accepts true/false;
- later occurrences override earlier ones (run.sh passes recipe defaults,
  then the user's "$@");
- `--config file` sources `name=value` lines from a file (shell syntax);
- `--help` prints the usage and every option with its default.
The remaining positional arguments are returned too.

The driver's derived names (the experiment dir `st_exp` and its tag, the
stats dir, the decoding tag) are made here too (`st_names`, CLI
`python -m espnet_mtl.bin.st_names`), so that st.sh and the tools that find
its outputs (the sweep) share one rule.

Beyond Kaldi, the driver declares a rule per numeric or enumerated option
(`RULE_FORMS`), checked on the final values, so that `--nj 0`, `--stage abc`
or `--feats_type fbnak` stop before any stage runs instead of failing (or
doing nothing) later.
"""

from __future__ import annotations

import re
import shlex
import sys
from typing import Mapping

from espnet_mtl.fileio import TableError, read_lines


class OptionError(ValueError):
    pass


# A rule is `name=<form>`:
#   int | int:LO.. | int:LO..HI      an integer, optionally bounded (inclusive)
#   float | float:LO.. | float:LO..HI
#   rate                             a sampling rate: 16000 or 16k
#   a|b|c                            one of these words
#   word list: a|b|c                 space-separated words, each one of these (may be empty)
RULE_FORMS = "int[:LO..[HI]] | float[:LO..[HI]] | rate | a|b|c | list:a|b|c"
_NUMBER = re.compile(r"^(int|float)(?::(-?[0-9.]+)?\.\.(-?[0-9.]+)?)?$")


def parse_rules(spec: str, defaults: dict[str, str]) -> dict[str, str]:
    """`name=form name=form ...` -> {name: form}; a rule for an undeclared option is a bug."""
    rules = {}
    for item in spec.split():
        name, sep, form = item.partition("=")
        if not sep or not form:
            raise OptionError(f"bad option rule {item!r}; expected name=({RULE_FORMS})")
        if name not in defaults:
            raise OptionError(f"option rule for undeclared option --{name}")
        rules[name] = form
    return rules


def _check_number(name: str, value: str, kind: str, lo: str | None, hi: str | None) -> str | None:
    try:
        number = int(value) if kind == "int" else float(value)
    except ValueError:
        return f"--{name} takes {'an integer' if kind == 'int' else 'a number'}, got {value!r}"
    low = None if lo is None else float(lo)
    high = None if hi is None else float(hi)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (f"between {lo} and {hi}" if low is not None and high is not None else
                  f">= {lo}" if low is not None else f"<= {hi}")
        return f"--{name} must be {bounds}, got {value}"
    return None


def check_value(name: str, value: str, form: str) -> str | None:
    """The error message for `--name value` under rule `form`, or None if it is fine."""
    if m := _NUMBER.match(form):
        return _check_number(name, value, m.group(1), m.group(2), m.group(3))
    if form == "rate":
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?k|[0-9]+", value.lower()) and float(value.lower().rstrip("k")) > 0:
            return None
        return f"--{name} takes a sampling rate such as 16k or 16000, got {value!r}"
    if form.startswith("list:"):
        choices = form[len("list:"):].split("|")
        bad = [w for w in value.split() if w not in choices]
        if bad:
            return f"--{name} {value!r}: {bad[0]!r} is not one of {', '.join(choices)}"
        return None
    choices = form.split("|")
    if value not in choices:
        return f"--{name} takes one of {', '.join(choices)}, got {value!r}"
    return None


def check_rules(values: dict[str, str], rules: dict[str, str]) -> None:
    """Raise OptionError listing every option whose value breaks its rule."""
    errors = [e for name, form in rules.items() if (e := check_value(name, values[name], form))]
    if errors:
        raise OptionError("\n".join(errors))


def _format_valid(defaults: dict[str, str]) -> str:
    return "\n".join(f"  --{name} ({default!r})" for name, default in sorted(defaults.items()))


def _read_config(path: str, defaults: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = read_lines(path)
    except OSError as e:
        raise OptionError(f"--config {path}: cannot read: {e.strerror}") from e
    except TableError as e:
        raise OptionError(f"--config {e}") from None
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("--"):
            line = line[2:]
        name, sep, value = line.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise OptionError(f"{path}:{lineno}: expected name=value, got {line!r}")
        if name not in defaults:
            raise OptionError(f"{path}:{lineno}: unknown option '{name}'; valid options:\n"
                              + _format_valid(defaults))
        parts = shlex.split(value)
        values[name] = " ".join(parts) if parts else ""
    return values


def parse_options(defaults: dict[str, str], argv: list[str]) -> tuple[dict[str, str], list[str], bool]:
    """Return (values, positional_args, help_requested)."""
    values = dict(defaults)
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1:])
            break
        if arg in ("--help", "-h"):
            return values, positional, True
        if not arg.startswith("--"):
            positional.append(arg)
            i += 1
            continue
        name, eq, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if not eq:
            if i + 1 >= len(argv):
                raise OptionError(f"option --{name} needs a value")
            value = argv[i + 1]
            i += 1
        i += 1
        if name == "config":
            values.update(_read_config(value, defaults))
            continue
        if name not in defaults:
            raise OptionError(f"unknown option --{name}; valid options:\n" + _format_valid(defaults))
        if defaults[name] in ("true", "false") and value not in ("true", "false"):
            raise OptionError(f"option --{name} takes true or false, got {value!r}")
        values[name] = value
    return values, positional, False


def main(argv: list[str] | None = None) -> int:
    """CLI: `parse_options NAME DEFAULT ... [--rules SPEC] [--usage TEXT] -- ARGS...`.

    Prints shell assignments for eval; on error prints the message on stderr
    and exits 1; on --help prints the usage on stderr and `exit 0` for eval.
    """
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("parse_options: usage: NAME DEFAULT ... [--usage TEXT] -- ARGS...", file=sys.stderr)
        return 2
    split = argv.index("--")
    spec, args = argv[:split], argv[split + 1:]
    usage, rules_spec = "", ""
    while len(spec) >= 2 and spec[-2] in ("--usage", "--rules"):
        if spec[-2] == "--usage":
            usage = spec[-1]
        else:
            rules_spec = spec[-1]
        spec = spec[:-2]
    if len(spec) % 2:
        print("parse_options: NAME DEFAULT pairs expected", file=sys.stderr)
        return 2
    defaults = dict(zip(spec[0::2], spec[1::2]))
    try:
        rules = parse_rules(rules_spec, defaults)
        values, positional, want_help = parse_options(defaults, args)
        if not want_help:
            check_rules(values, rules)
    except OptionError as e:
        print(f"{usage.splitlines()[0] if usage else ''}\nerror: {e}".lstrip(), file=sys.stderr)
        return 1
    if want_help:
        print(usage, file=sys.stderr)
        print("Options (default):\n" + _format_valid(defaults), file=sys.stderr)
        print("exit 0")
        return 0
    for name, value in values.items():
        if value != defaults[name]:
            print(f"{name}={shlex.quote(value)}")
    print("set -- " + " ".join(shlex.quote(p) for p in positional))
    return 0


# ------------------------------------------------------------------ derived names

def st_exp_dir(expdir: str, st_tag: str) -> str:
    """The experiment dir of stages 11-13 for `--st_tag` (ESPnet's `<expdir>/st_<tag>`)."""
    return f"{expdir}/st_{st_tag}"


def _tag_of_args(args: str, drop: str) -> str:
    """ESPnet's `echo "$args" | sed -e 's/--/_/g' -e 's/[<drop>]//g'`."""
    return re.sub(f"[{re.escape(drop)}]", "", args.replace("--", "_"))


def _stem(path: str, suffix: str) -> str:
    """`basename path suffix`."""
    name = path.rstrip("/").rsplit("/", 1)[-1] or ("/" if path else "")
    return name[:-len(suffix)] if name.endswith(suffix) and name != suffix else name


NAME_INPUTS = ("expdir", "st_tag", "st_exp", "st_stats_dir", "st_config", "st_args",
               "feats_type", "src_lang", "tgt_lang", "tgt_token_type", "tgt_case", "tgt_nbpe",
               "speed_perturb_factors", "inference_tag", "inference_config", "inference_args",
               "inference_st_model")


def st_names(values: Mapping[str, str]) -> dict[str, str]:
    """st.sh's derived names from its option values (names in `NAME_INPUTS`; absent = "").

    Returns `st_tag`, `st_exp`, `st_stats_dir` and `inference_tag`; one given
    as an option is kept as given. ESPnet's conventions: the vocabulary size
    and speed perturbation are part of the experiment (and stats) name, so
    changing them starts a new experiment instead of resuming another one.
    """
    v = {name: values.get(name, "") for name in NAME_INPUTS}
    st_tag = v["st_tag"]
    if not st_tag:
        st_tag = (f"{_stem(v['st_config'], '.yaml')}_{v['feats_type']}" if v["st_config"]
                  else f"train_{v['feats_type']}")
        st_tag += f"_{v['src_lang']}_{v['tgt_lang']}_{v['tgt_token_type']}_{v['tgt_case']}{v['tgt_nbpe']}"
        if v["st_args"]:
            st_tag += _tag_of_args(v["st_args"], " |=/")
        if v["speed_perturb_factors"]:
            st_tag += "_sp"
    st_stats_dir = v["st_stats_dir"]
    if not st_stats_dir:
        st_stats_dir = (f"{v['expdir']}/st_stats_{v['feats_type']}_{v['src_lang']}_{v['tgt_lang']}"
                        f"_{v['tgt_token_type']}{v['tgt_nbpe']}")
        if v["speed_perturb_factors"]:
            st_stats_dir += "_sp"
    inference_tag = v["inference_tag"]
    if not inference_tag:
        inference_tag = (_stem(v["inference_config"], ".yaml") if v["inference_config"]
                         else "inference")
        if v["inference_args"]:
            inference_tag += _tag_of_args(v["inference_args"], " |=")
        model = re.sub(r"\.[^.]*$", "", v["inference_st_model"].replace("/", "_"))
        inference_tag += f"_st_model_{model}"
    return {"st_tag": st_tag, "st_exp": v["st_exp"] or st_exp_dir(v["expdir"], st_tag),
            "st_stats_dir": st_stats_dir, "inference_tag": inference_tag}


def names_main(argv: list[str] | None = None) -> int:
    """CLI: `st_names NAME VALUE ...` (names from `NAME_INPUTS`) -> shell assignments for eval."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) % 2:
        print("st_names: NAME VALUE pairs expected", file=sys.stderr)
        return 2
    values = dict(zip(argv[0::2], argv[1::2]))
    unknown = sorted(set(values) - set(NAME_INPUTS))
    if unknown:
        print(f"st_names: unknown name(s) {', '.join(unknown)}; known: {' '.join(NAME_INPUTS)}",
              file=sys.stderr)
        return 2
    for name, value in st_names(values).items():
        print(f"{name}={shlex.quote(value)}")
    return 0
