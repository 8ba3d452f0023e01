#!/usr/bin/env bash
# CoVoST 2 speech translation: the 21 X->En and 15 En->X directions, from
# Common Voice v4 clips (MP3, decoded to 16 kHz mono at stage 3 by the
# libsndfile that the soundfile wheel bundles) and the covost_v2 tables.
# Set COVOST2 (and COVOST2_TSV if the tables live elsewhere) in db.sh, then:
#   ./run.sh                                   # fr-en, stages 1-13
#   ./run.sh --src_lang en --tgt_lang de       # any of the 36 directions
#   ./run.sh --src_lang zh-CN --tgt_lang en    # language codes as CoVoST writes them
#   ./run.sh --src_lang fr,de,es,ca            # multilingual X->En: one model, ASR in each source
#                                              # language (Objective Soups' Fr/De/Es/Ca->En)
#   ./run.sh --demo true                       # multilingual De/Es/Fr->En on the synthetic demo,
#                                              # CPU, ~20 min on 2 cores (conf/tuning/*_demo.yaml)
# zh-CN and ja targets are scored with sacreBLEU's zh and ja-mecab tokenizers.
# Any other option goes to st.sh (./st.sh --help lists them).
#
# Several source languages (comma-separated) make one data dir per split,
# data/<split>.fr_de_es_ca-en: the transcripts of all of them as
# text.<case>.fr_de_es_ca (one joint source SentencePiece model: the ASR CTC
# covers every language), utt2lang naming each utterance's language; the
# test set is also prepared and scored per language (test_<lang>.<...>), for
# BLEU and, through the ASR path (--extra_decode_paths asr), WER. The config
# is conf/train_st_multilingual.yaml.
#
# --demo true generates the corpus first (local/data.sh --demo true, into
# ${COVOST2_DEMO:-downloads/covost2_demo}: espeak-ng voices, CoVoST 2 layout;
# default --src_lang de,es,fr) and trains the small model of
# conf/tuning/train_st_multilingual_demo.yaml on CPU, into dump_demo/ and
# exp_demo/. Its data/ dirs have the names a real run of the same languages
# uses: a real run after it starts at stage 1 (which rewrites them).
set -euo pipefail

src_lang=
tgt_lang=en
demo=false
# The languages also choose the corpus direction, so they are read here (the
# rest goes to st.sh); prepare_covost2 names the directions CoVoST 2 has.
. ./recipe_options.sh src_lang tgt_lang "demo=false|true" -- "$@"
if [ -z "${src_lang}" ]; then
    if "${demo}"; then src_lang=de,es,fr; else src_lang=fr; fi
fi
case "${src_lang}" in
    *[[:space:]]*|,*|*,|*,,*)
        echo "$0: --src_lang takes one code or a comma-separated list without spaces, e.g. fr,de,es,ca (got '${src_lang}')" >&2
        exit 2 ;;
esac

# Several source languages: one combined source side named by its codes (de_es_fr).
IFS=, read -r -a src_langs <<< "${src_lang}"
src_tag=${src_lang//,/_}
pair=${src_tag}-${tgt_lang}
# Character-based scripts: cover most characters, not every rare one.
char_cover=1.0
for _l in "${src_langs[@]}"; do case "${_l}" in zh-CN|ja) char_cover=0.9995 ;; esac; done
tgt_char_cover=1.0
case "${tgt_lang}" in zh-CN|ja) tgt_char_cover=0.9995 ;; esac

local_data_opts="--src_lang ${src_lang} --tgt_lang ${tgt_lang}"
if [ "${#src_langs[@]}" -gt 1 ]; then
    local_data_opts+=" --lang_splits test"
    test_sets=
    for _l in "${src_langs[@]}"; do test_sets+=" test_${_l}.${pair}"; done
    st_config=conf/train_st_multilingual.yaml
    decode_paths=asr  # WER of each source language next to its BLEU
    # ESPnet's CoVoST 2 recipe: 1000 source pieces per direction; here per source language.
    src_nbpe=$((1000 * ${#src_langs[@]}))
else
    test_sets=test.${pair}
    st_config=conf/train_st.yaml
    decode_paths=
    src_nbpe=1000
fi
opts=(--ngpu 1 --nj 32 --inference_nj 32 --src_nbpe "${src_nbpe}" --tgt_nbpe 1000
      --speed_perturb_factors "0.9 1.0 1.1" --st_config "${st_config}"
      --inference_config conf/decode_st.yaml)
if "${demo}"; then
    local_data_opts+=" --demo true"
    # The grammar's lexicon is a few hundred words per language: small vocabularies.
    opts=(--ngpu 0 --nj 2 --inference_nj 2 --src_nbpe $((150 * ${#src_langs[@]})) --tgt_nbpe 200
          --speed_perturb_factors "" --st_config conf/tuning/train_st_multilingual_demo.yaml
          --inference_config conf/tuning/decode_st_demo.yaml
          --dumpdir dump_demo --expdir exp_demo)
fi

./st.sh \
    --src_lang "${src_tag}" --tgt_lang "${tgt_lang}" \
    --local_data_opts "${local_data_opts}" \
    --train_set "train.${pair}" --valid_set "dev.${pair}" --test_sets "${test_sets# }" \
    --src_case lc.rm --tgt_case tc \
    --src_bpe_char_cover "${char_cover}" --tgt_bpe_char_cover "${tgt_char_cover}" \
    --feats_type raw --audio_format flac --extra_decode_paths "${decode_paths}" \
    "${opts[@]}" \
    "${args[@]+"${args[@]}"}"
