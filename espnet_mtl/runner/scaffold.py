"""Recipe scaffolding: a new corpus's `egs2/<name>/st1` in one command.

ESPnet's convention (`egs2/TEMPLATE/st1/setup.sh egs2/<name>/st1`), implemented
here; `egs2/TEMPLATE/st1/setup.sh` calls `python -m espnet_mtl.bin.setup_recipe`.
The recipe reads one manifest per split (`espnet_mtl.corpora.manifest`, or lhotse
manifests with `--input lhotse`) from its `manifest_dir`, and is otherwise a
corpus recipe like the others:

    run.sh            the language pair, set names, sizes; options: --manifest_dir,
                      --input manifest|lhotse, --aux_rows true (train on the ASR-only /
                      MT-only rows too); everything else goes to st.sh
    local/data.sh     stage 1: python -m espnet_mtl.bin.prepare_manifest
    conf/             train_st.yaml (Conformer baseline), train_st_mtl.yaml (mtl_st),
                      decode_st.yaml: links to conf_templates/st (copies with --copy_conf)
    st.sh cmd.sh db.sh path.sh recipe_options.sh    links to the shared driver
    README.md         what to put where, and the commands

A recipe outside the repository's egs2/ gets absolute links (it still uses
this checkout's driver and package).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "egs2" / "TEMPLATE" / "st1"
SHARED = ("st.sh", "cmd.sh", "db.sh", "path.sh", "recipe_options.sh")
CONFIGS = {"train_st.yaml": "train_st_conformer.yaml",
           "train_st_mtl.yaml": "train_st_mtl_regularization_horizon.yaml",
           "decode_st.yaml": "decode_st_conformer.yaml"}


class ScaffoldError(ValueError):
    """The recipe cannot be created as asked."""


RUN_SH = """#!/usr/bin/env bash
# {name}: {src}->{tgt} speech translation from your own manifests (created by
# egs2/TEMPLATE/st1/setup.sh; see README.md here). Put one manifest per split in
# the manifest directory: {manifests} (TSV with a header
# id, audio, [start, end, speaker,] src_text, tgt_text; or JSON Lines), then:
#   ./run.sh                                   # stages 1-13
#   ./run.sh --manifest_dir /path/to/manifests
#   ./run.sh --input lhotse --manifest_dir /path/to/lhotse/manifests
#   ./run.sh --st_config conf/train_st_mtl.yaml --extra_decode_paths "mt asr"   # multi-task
#   ./run.sh --aux_rows true    # also train on the ASR-only / MT-only rows of the train manifest
# Any other option goes to st.sh (./st.sh --help lists them).
set -euo pipefail

manifest_dir={manifest_dir}
input=manifest
aux_rows=false
. ./recipe_options.sh manifest_dir "input=manifest|lhotse" "aux_rows=false|true" -- "$@"

aux=()
if "${{aux_rows}}"; then
    # written by stage 1 when the train manifest has such rows
    aux=(--aux_asr_sets "dir:data/{train}_asr_only.{src}" --aux_mt_sets "dir:data/{train}_mt_only.{pair}")
fi

./st.sh \\
    --ngpu {ngpu} --nj {nj} --inference_nj {nj} \\
    --src_lang {src} --tgt_lang {tgt} \\
    --local_data_opts "--manifest_dir ${{manifest_dir}} --input ${{input}} --splits {splits}" \\
    --train_set "{train}.{pair}" --valid_set "{valid}.{pair}" \\
    --test_sets "{tests}" \\
    --src_case lc.rm --tgt_case tc \\
    --src_nbpe {nbpe} --tgt_nbpe {nbpe} \\
    --feats_type raw --audio_format flac \\
    --st_config conf/train_st.yaml --inference_config conf/decode_st.yaml \\
    "${{aux[@]+"${{aux[@]}}"}}" "${{args[@]+"${{args[@]}}"}}"
"""

DATA_SH = """#!/usr/bin/env bash
# Stage 1: data/<split>.{pair}/ from one manifest per split (espnet_mtl.corpora.manifest),
# or from lhotse manifests (--input lhotse).
set -euo pipefail

manifest_dir=
input=manifest
splits={splits}
nj=4
while [ $# -gt 0 ]; do
    case "$1" in
        --manifest_dir|--input|--splits|--nj) declare "${{1#--}}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: --manifest_dir --input --splits --nj)" >&2; exit 2 ;;
    esac
done
if [ -z "${{manifest_dir}}" ]; then
    echo "local/data.sh: no manifest directory: ./run.sh --manifest_dir DIR (holding ${{splits//,/.tsv, }}.tsv)" >&2
    exit 1
fi

python -m espnet_mtl.bin.prepare_manifest --manifest_dir "${{manifest_dir}}" --input "${{input}}" \\
    --splits "${{splits}}" --src_lang {src} --tgt_lang {tgt} --out data --nj "${{nj}}"
"""

README = """# {name}: {src}->{tgt} speech translation

Created by `egs2/TEMPLATE/st1/setup.sh`. Stage 1 reads one manifest per split
from the manifest directory (`./run.sh --manifest_dir DIR`, default
`{manifest_dir}`): {manifests}.

A manifest is a TSV file with a header (or JSON Lines with the same keys):

| column | |
|---|---|
| `id` | utterance id, no whitespace |
| `audio` | audio file (wav, flac, mp3, m4a, ...), absolute or relative to the manifest |
| `start`, `end` | segment times in seconds (optional columns: without them a row is the whole file) |
| `speaker` | optional |
| `src_text` | transcript ({src}) |
| `tgt_text` | translation ({tgt}) |

Rows without a translation are ASR-only data and rows without audio are MT-only
data: stage 1 writes them to `data/<split>_asr_only.{src}` and
`data/<split>_mt_only.{pair}`, and `./run.sh --aux_rows true` trains a multi-task
model (`--st_config conf/train_st_mtl.yaml`) on them too. Other header names:
add `--columns id=utt,audio=path,...` to the `prepare_manifest` line of local/data.sh.

lhotse manifests instead (`./run.sh --input lhotse --manifest_dir DIR`):
`*cuts_<split>.jsonl.gz`, or `*recordings_<split>.jsonl.gz` and
`*supervisions_<split>.jsonl.gz`, with the translation in the supervisions'
`custom` field `translation`.

Sets: train `{train}`, valid `{valid}`, test `{test_list}`. Configs in `conf/` are
links to `conf_templates/st/` (the Conformer baseline, `mtl_st`, beam search).
"""


def _link(target: Path, link: Path, inside: bool, copy: bool = False) -> None:
    if copy:
        shutil.copy2(target, link)
    elif inside:
        link.symlink_to(os.path.relpath(target, link.parent))
    else:
        link.symlink_to(target)


def create_recipe(recipe_dir: str | os.PathLike, *, src_lang: str, tgt_lang: str,
                  train_set: str = "train", valid_set: str = "dev",
                  test_sets: tuple[str, ...] = ("test",), manifest_dir: str | None = None,
                  nbpe: int = 1000, ngpu: int = 1, nj: int = 8, copy_conf: bool = False) -> Path:
    """Create the recipe folder; returns it. Refuses to touch an existing folder."""
    recipe = Path(recipe_dir)
    if recipe.exists():
        raise ScaffoldError(f"{recipe} exists; the scaffold creates new recipes only")
    if recipe.name != "st1":
        raise ScaffoldError(f"{recipe}: a recipe folder is egs2/<name>/st1 (ESPnet's layout)")
    name = recipe.parent.name
    sets = [train_set, valid_set, *test_sets]
    for value, what in [(src_lang, "--src_lang"), (tgt_lang, "--tgt_lang"), *(
            (s, "a set name") for s in sets)]:
        if not value or any(c.isspace() or c in "/.,\"'$`\\" for c in value):
            raise ScaffoldError(f"{what} {value!r}: no whitespace, '/', '.', ',' or quotes")
    if len(set(sets)) != len(sets):
        raise ScaffoldError(f"set names must differ: {', '.join(sets)}")
    if src_lang == tgt_lang:
        raise ScaffoldError(f"--src_lang and --tgt_lang are both {src_lang}")
    pair = f"{src_lang}-{tgt_lang}"
    manifest_dir = manifest_dir or f"downloads/{name}/manifests"
    values = dict(name=name, src=src_lang, tgt=tgt_lang, pair=pair, train=train_set,
                  valid=valid_set, tests=" ".join(f"{t}.{pair}" for t in test_sets),
                  test_list=", ".join(test_sets), splits=",".join(sets),
                  manifests=", ".join(f"{s}.tsv" for s in sets), manifest_dir=manifest_dir,
                  nbpe=nbpe, ngpu=ngpu, nj=nj)
    inside = recipe.resolve().parent.parent == (ROOT / "egs2").resolve()
    tmp = recipe.with_name(".st1.scaffold")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "conf").mkdir(parents=True)
    (tmp / "local").mkdir()
    try:
        for shared in SHARED:
            if shared == "path.sh" and not inside:
                # the template's path.sh finds the repository from its own location
                (tmp / shared).write_text(f". {TEMPLATE / shared}\n")
            else:
                _link(TEMPLATE / shared, tmp / shared, inside)
        for conf, template in CONFIGS.items():
            _link(ROOT / "conf_templates" / "st" / template, tmp / "conf" / conf, inside,
                  copy_conf)
        for path, text in ((tmp / "run.sh", RUN_SH), (tmp / "local" / "data.sh", DATA_SH)):
            path.write_text(text.format(**values))
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        (tmp / "README.md").write_text(README.format(**values))
        tmp.rename(recipe)  # the recipe appears complete or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return recipe
