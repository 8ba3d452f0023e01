#!/usr/bin/env bash
# CoVoST 2 speech translation: the 21 X->En and 15 En->X directions, from
# Common Voice v4 clips (MP3, decoded to 16 kHz mono at stage 3 by the
# libsndfile that the soundfile wheel bundles) and the covost_v2 tables.
# Set COVOST2 (and COVOST2_TSV if the tables live elsewhere) in db.sh, then:
#   ./run.sh                                   # fr-en, stages 1-13
#   ./run.sh --src_lang en --tgt_lang de       # any of the 36 directions
#   ./run.sh --src_lang zh-CN --tgt_lang en    # language codes as CoVoST writes them
# zh-CN and ja targets are scored with sacreBLEU's zh and ja-mecab tokenizers.
# Any other option goes to st.sh (./st.sh --help lists them).
set -euo pipefail

src_lang=fr
tgt_lang=en
# The languages also choose the corpus direction, so they are read here (the
# rest goes to st.sh); prepare_covost2 names the directions CoVoST 2 has.
. ./recipe_options.sh src_lang tgt_lang -- "$@"

pair=${src_lang}-${tgt_lang}
# Character-based scripts: cover most characters, not every rare one.
char_cover() { case "$1" in zh-CN|ja) echo 0.9995 ;; *) echo 1.0 ;; esac; }

./st.sh \
    --ngpu 1 --nj 32 --inference_nj 32 \
    --src_lang "${src_lang}" --tgt_lang "${tgt_lang}" \
    --local_data_opts "--src_lang ${src_lang} --tgt_lang ${tgt_lang}" \
    --train_set "train.${pair}" --valid_set "dev.${pair}" --test_sets "test.${pair}" \
    --src_case lc.rm --tgt_case tc \
    --src_nbpe 1000 --tgt_nbpe 1000 \
    --src_bpe_char_cover "$(char_cover "${src_lang}")" --tgt_bpe_char_cover "$(char_cover "${tgt_lang}")" \
    --speed_perturb_factors "0.9 1.0 1.1" \
    --feats_type raw --audio_format flac \
    --st_config conf/train_st.yaml --inference_config conf/decode_st.yaml \
    "${args[@]+"${args[@]}"}"
