#!/usr/bin/env bash
# Stage 1 for MuST-C: data/{train,dev,tst-COMMON,tst-HE}.en-<tgt> from the
# corpus named in db.sh (MUST_C for v1 / v1.2, MUST_C_V2 for v2).
set -euo pipefail
. ./db.sh

tgt_lang=de
version=v1
splits=train,dev,tst-COMMON,tst-HE
nj=4
while [ $# -gt 0 ]; do
    case "$1" in
        --tgt_lang|--version|--splits|--nj) declare "${1#--}=$2"; shift 2 ;;
        *) echo "local/data.sh: unknown option $1 (valid: --tgt_lang --version --splits --nj)" >&2; exit 2 ;;
    esac
done

if [ "${version}" = v2 ]; then var=MUST_C_V2; else var=MUST_C; fi
root=${!var}
if [ -z "${root}" ]; then
    echo "local/data.sh: ${var} is not set: set it in db.sh (or export it) to the MuST-C ${version}" \
         "directory that holds en-${tgt_lang}/data/train/" >&2
    exit 1
fi

python -m espnet_mtl.bin.prepare_must_c --root "${root}" --version "${version}" \
    --tgt_lang "${tgt_lang}" --splits "${splits}" --out data --nj "${nj}"
