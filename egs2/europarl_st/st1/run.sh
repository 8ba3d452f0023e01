#!/usr/bin/env bash
# Europarl-ST v1.1 speech translation: every direction between en fr de it
# es pt pl ro nl (72). The m4a (AAC) speeches are decoded at stage 3 by the
# ffmpeg binary of the imageio-ffmpeg wheel (installed by tools/setup.sh).
# Set EUROPARL_ST in db.sh, then:
#   ./run.sh                                   # en-de, stages 1-13
#   ./run.sh --src_lang fr --tgt_lang en
#   ./run.sh --train_noisy true                # add the train-noisy split to training
# Any other option goes to st.sh (./st.sh --help lists them).
set -euo pipefail

src_lang=en
tgt_lang=de
train_noisy=false
# These choose the corpus direction and training set, so they are read here (the rest goes to st.sh).
. ./recipe_options.sh "src_lang=en|fr|de|it|es|pt|pl|ro|nl" "tgt_lang=en|fr|de|it|es|pt|pl|ro|nl" \
    "train_noisy=true|false" -- "$@"

pair=${src_lang}-${tgt_lang}
if [ "${train_noisy}" = true ]; then train_set=train_with_noisy.${pair}; else train_set=train.${pair}; fi

./st.sh \
    --ngpu 1 --nj 32 --inference_nj 32 \
    --src_lang "${src_lang}" --tgt_lang "${tgt_lang}" \
    --local_data_opts "--src_lang ${src_lang} --tgt_lang ${tgt_lang} --train_noisy ${train_noisy}" \
    --train_set "${train_set}" --valid_set "dev.${pair}" --test_sets "test.${pair}" \
    --src_case lc.rm --tgt_case tc \
    --src_nbpe 1000 --tgt_nbpe 1000 \
    --speed_perturb_factors "0.9 1.0 1.1" \
    --feats_type raw --audio_format flac \
    --st_config conf/train_st.yaml --inference_config conf/decode_st.yaml \
    "${args[@]+"${args[@]}"}"
