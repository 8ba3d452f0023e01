#!/usr/bin/env bash
# MuST-C v1.0 / v1.2 English->X speech translation (ESPnet's must_c recipe
# settings: Conformer CTC/attention, 4000/4000 BPE, lc.rm source, tc target,
# speed perturbation 0.9/1.0/1.1). Set MUST_C in db.sh, then:
#   ./run.sh                                   # en-de, stages 1-13
#   ./run.sh --tgt_lang es                     # any v1.0 target: de es fr it nl pt ro ru
#   ./run.sh --version v1.2 --tgt_lang zh      # v1.2 adds ar cs fa tr vi zh
#   ./run.sh --st_config conf/train_st_mtl.yaml --extra_decode_paths "mt asr"   # multi-task model
# Any other option goes to st.sh (./st.sh --help lists them).
set -euo pipefail

tgt_lang=de
version=v1
# --tgt_lang and --version also choose the corpus pair, so they are read here
# (the rest goes to st.sh); prepare_must_c says which pairs a version has.
. ./recipe_options.sh "tgt_lang=de|es|fr|it|nl|pt|ro|ru|ar|cs|fa|tr|vi|zh" "version=v1|v1.2" -- "$@"

pair=en-${tgt_lang}
# zh/ja: a character vocabulary needs most of the characters, not all of them.
case "${tgt_lang}" in zh|ja) tgt_char_cover=0.9995 ;; *) tgt_char_cover=1.0 ;; esac

./st.sh \
    --ngpu 1 --nj 32 --inference_nj 32 \
    --src_lang en --tgt_lang "${tgt_lang}" \
    --local_data_opts "--version ${version} --tgt_lang ${tgt_lang}" \
    --train_set "train.${pair}" --valid_set "dev.${pair}" \
    --test_sets "tst-COMMON.${pair} tst-HE.${pair}" \
    --src_case lc.rm --tgt_case tc \
    --src_nbpe 4000 --tgt_nbpe 4000 --tgt_bpe_char_cover "${tgt_char_cover}" \
    --speed_perturb_factors "0.9 1.0 1.1" \
    --feats_type raw --audio_format flac \
    --st_config conf/train_st.yaml --inference_config conf/decode_st.yaml \
    "${args[@]+"${args[@]}"}"
