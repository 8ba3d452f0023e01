#!/usr/bin/env bash
# MuST-C v2.0 English->German speech translation (ESPnet's must_c recipe
# settings: Conformer CTC/attention, 4000/4000 BPE, lc.rm source, tc target,
# speed perturbation 0.9/1.0/1.1). Set MUST_C_V2 in db.sh, then:
#   ./run.sh                                   # en-de, stages 1-13
#   ./run.sh --tgt_lang ja                     # the later en-ja / en-zh releases, same layout
#   ./run.sh --st_config conf/train_st_mtl.yaml --extra_decode_paths "mt asr"   # multi-task model
# Any other option goes to st.sh (./st.sh --help lists them).
set -euo pipefail

tgt_lang=de
version=v2
# --tgt_lang and --version also choose the corpus pair, so they are read here (the rest goes to st.sh).
. ./recipe_options.sh "tgt_lang=de|ja|zh" "version=v2" -- "$@"

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
