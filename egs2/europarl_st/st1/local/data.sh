#!/usr/bin/env bash
# Stage 1 for Europarl-ST: data/{train,dev,test}.<src>-<tgt> from ${EUROPARL_ST}
# (db.sh). train-noisy is left out unless --train_noisy true, which also
# writes data/train_with_noisy.<src>-<tgt> (train + train-noisy).
set -euo pipefail
. ./db.sh

src_lang=en
tgt_lang=de
train_noisy=false
nj=4
while [ $# -gt 0 ]; do
    case "$1" in
        --src_lang|--tgt_lang|--train_noisy|--nj) declare "${1#--}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: --src_lang --tgt_lang --train_noisy --nj)" >&2; exit 2 ;;
    esac
done

if [ -z "${EUROPARL_ST}" ]; then
    echo "local/data.sh: EUROPARL_ST is not set: set it in db.sh (or export it) to the Europarl-ST" \
         "v1.1 directory that holds ${src_lang}/audios/ and ${src_lang}/${tgt_lang}/train/" >&2
    exit 1
fi
pair=${src_lang}-${tgt_lang}
splits=train,dev,test
case "${train_noisy}" in
    true) splits+=,train-noisy ;;
    false) ;;
    *) echo "local/data.sh: --train_noisy ${train_noisy}: use true or false" >&2; exit 2 ;;
esac

python -m espnet_mtl.bin.prepare_europarl_st --root "${EUROPARL_ST}" \
    --src_lang "${src_lang}" --tgt_lang "${tgt_lang}" --splits "${splits}" --out data --nj "${nj}"
if [ "${train_noisy}" = true ]; then
    python -m espnet_mtl.bin.data_dir combine "data/train_with_noisy.${pair}" \
        "data/train.${pair}" "data/train-noisy.${pair}"
fi
