#!/usr/bin/env bash
# Stage 1 of the demo: generate the synthetic corpus (MuST-C v1 layout) once,
# then read it with the MuST-C reader that real data uses.
set -euo pipefail
. ./db.sh

tgt_lang=de
n_train=1500
n_dev=100
n_test=100
seed=0
while [ $# -gt 0 ]; do
    case "$1" in
        --tgt_lang|--n_train|--n_dev|--n_test|--seed) declare "${1#--}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: --tgt_lang --n_train --n_dev --n_test --seed)" >&2; exit 2 ;;
    esac
done

python -m espnet_mtl.bin.make_demo_corpus --out "${MINI_ST}" --tgt_langs "${tgt_lang}" \
    --n_train "${n_train}" --n_dev "${n_dev}" --n_test "${n_test}" --seed "${seed}"
python -m espnet_mtl.bin.prepare_must_c --root "${MINI_ST}" --tgt_lang "${tgt_lang}" \
    --splits train,dev,tst-COMMON --out data
