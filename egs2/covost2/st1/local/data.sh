#!/usr/bin/env bash
# Stage 1 for CoVoST 2: data/{train,dev,test}.<src>-<tgt> from ${COVOST2} (db.sh).
set -euo pipefail
. ./db.sh

src_lang=fr
tgt_lang=en
splits=train,dev,test
missing_clips=error
nj=4
while [ $# -gt 0 ]; do
    case "$1" in
        --src_lang|--tgt_lang|--splits|--missing_clips|--nj) declare "${1#--}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: --src_lang --tgt_lang --splits --missing_clips --nj)" >&2; exit 2 ;;
    esac
done

if [ -z "${COVOST2}" ]; then
    echo "local/data.sh: COVOST2 is not set: set it in db.sh (or export it) to the Common Voice v4" \
         "directory that holds ${src_lang}/clips/ and ${src_lang}/validated.tsv" >&2
    exit 1
fi
tsv_opts=()
[ -n "${COVOST2_TSV}" ] && tsv_opts=(--covost_dir "${COVOST2_TSV}")

python -m espnet_mtl.bin.prepare_covost2 --root "${COVOST2}" "${tsv_opts[@]}" \
    --src_lang "${src_lang}" --tgt_lang "${tgt_lang}" --splits "${splits}" \
    --missing_clips "${missing_clips}" --out data --nj "${nj}"
