#!/usr/bin/env bash
# The embedded demo: a synthetic English->German speech translation corpus
# (espeak-ng voices, MuST-C layout) through all 13 stages on CPU.
#   ./run.sh                         # everything, ~8 min on 2 cores
#   ./run.sh --stage 12 --stop_stage 13
#   ./run.sh --tgt_lang es           # en-es or en-fr instead
set -euo pipefail

tgt_lang=de
# --tgt_lang also selects the corpus pair, so it is read here (the rest goes to st.sh).
. ./recipe_options.sh "tgt_lang=de|es|fr" -- "$@"

./st.sh \
    --ngpu 0 --nj 2 --inference_nj 2 \
    --src_lang en --tgt_lang "${tgt_lang}" \
    --local_data_opts "--tgt_lang ${tgt_lang}" \
    --train_set "train.en-${tgt_lang}" --valid_set "dev.en-${tgt_lang}" \
    --test_sets "tst-COMMON.en-${tgt_lang}" \
    --src_case lc.rm --tgt_case tc \
    --src_nbpe 300 --tgt_nbpe 300 \
    --feats_type raw --audio_format flac \
    --st_config conf/train_st.yaml --inference_config conf/decode_st.yaml \
    "${args[@]+"${args[@]}"}"
