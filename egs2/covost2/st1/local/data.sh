#!/usr/bin/env bash
# Stage 1 for CoVoST 2: data/{train,dev,test}.<src>-<tgt> from ${COVOST2} (db.sh).
# --src_lang fr,de,es,ca: one multilingual set per split, data/<split>.fr_de_es_ca-<tgt>
#   (utt2lang: each utterance's language), and per language data/<split>_<lang>.fr_de_es_ca-<tgt>
#   for the splits of --lang_splits.
# --demo true: first generate the synthetic X->En demo corpus (espeak-ng speech in the
#   CoVoST 2 layout; languages out of de,es,fr; sizes per language) into ${COVOST2_DEMO},
#   then read it instead of ${COVOST2}, with the reader real data uses.
set -euo pipefail
. ./db.sh

src_lang=fr
tgt_lang=en
splits=train,dev,test
lang_splits=
missing_clips=error
nj=4
demo=false
n_train=500
n_dev=50
n_test=50
seed=0
_valid="--src_lang --tgt_lang --splits --lang_splits --missing_clips --nj --demo --n_train --n_dev --n_test --seed"
while [ $# -gt 0 ]; do
    case "$1" in
        --src_lang|--tgt_lang|--splits|--lang_splits|--missing_clips|--nj|--demo|--n_train|--n_dev|--n_test|--seed)
            [ $# -ge 2 ] || { echo "local/data.sh: option $1 needs a value" >&2; exit 2; }
            declare "${1#--}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: ${_valid})" >&2; exit 2 ;;
    esac
done
case "${demo}" in true|false) ;; *) echo "local/data.sh: --demo takes true or false (got '${demo}')" >&2; exit 2 ;; esac

if "${demo}"; then
    # The demo corpus's home (like MINI_ST in db.sh); generated once, reused while the
    # arguments stay the same.
    COVOST2_DEMO=${COVOST2_DEMO:-downloads/covost2_demo}
    python -m espnet_mtl.bin.make_demo_corpus --layout covost2 --out "${COVOST2_DEMO}" \
        --src_langs "${src_lang}" --n_train "${n_train}" --n_dev "${n_dev}" --n_test "${n_test}" \
        --seed "${seed}"
    COVOST2=${COVOST2_DEMO}
    COVOST2_TSV=
fi
if [ -z "${COVOST2}" ]; then
    echo "local/data.sh: COVOST2 is not set: set it in db.sh (or export it) to the Common Voice v4" \
         "directory that holds ${src_lang%%,*}/clips/ and ${src_lang%%,*}/validated.tsv" \
         "(or run the synthetic demo: --demo true)" >&2
    exit 1
fi
tsv_opts=()
[ -n "${COVOST2_TSV}" ] && tsv_opts=(--covost_dir "${COVOST2_TSV}")
lang_opts=()
[ -n "${lang_splits}" ] && lang_opts=(--lang_splits "${lang_splits}")

python -m espnet_mtl.bin.prepare_covost2 --root "${COVOST2}" "${tsv_opts[@]+"${tsv_opts[@]}"}" \
    --src_lang "${src_lang}" --tgt_lang "${tgt_lang}" --splits "${splits}" \
    "${lang_opts[@]+"${lang_opts[@]}"}" --missing_clips "${missing_clips}" --out data --nj "${nj}"
