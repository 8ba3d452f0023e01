#!/usr/bin/env bash
# Stage 1 of the low-resource demo: generate the ST corpus (MuST-C v1 layout)
# and, next to it in ${MINI_ST_LOW}/aux, the auxiliary data from the same
# grammar (MT-only bitext prefix files, ASR-only speech in the LibriSpeech
# layout; never a sentence of the ST splits), then read the ST corpus with the
# MuST-C reader. st.sh reads the auxiliary data itself (--aux_mt_sets,
# --aux_asr_sets), with the readers real corpora use.
set -euo pipefail
. ./db.sh

tgt_lang=de
n_train=400
n_dev=100
n_test=100
n_aux_mt=20000
n_aux_asr=1500
seed=0
while [ $# -gt 0 ]; do
    case "$1" in
        --tgt_lang|--n_train|--n_dev|--n_test|--n_aux_mt|--n_aux_asr|--seed) declare "${1#--}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: --tgt_lang --n_train --n_dev --n_test --n_aux_mt --n_aux_asr --seed)" >&2; exit 2 ;;
    esac
done

python -m espnet_mtl.bin.make_demo_corpus --out "${MINI_ST_LOW}" --tgt_langs "${tgt_lang}" \
    --n_train "${n_train}" --n_dev "${n_dev}" --n_test "${n_test}" --seed "${seed}" \
    --n_aux_mt "${n_aux_mt}" --n_aux_asr "${n_aux_asr}"
python -m espnet_mtl.bin.prepare_must_c --root "${MINI_ST_LOW}" --tgt_lang "${tgt_lang}" \
    --splits train,dev,tst-COMMON --out data
