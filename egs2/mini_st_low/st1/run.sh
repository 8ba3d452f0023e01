#!/usr/bin/env bash
# The demo's low-resource setting: does multi-task training pay off when ST
# data is scarce? 400 synthetic ST triples (en->de, espeak-ng voices, MuST-C
# layout; the full demo has 1,500), plus from the same grammar 20,000 MT-only
# sentence pairs (bitext prefix files) and 1,500 ASR-only utterances
# (LibriSpeech layout), none of them a sentence of the ST splits.
#
# Two systems on the same prepared data and token lists:
#   baseline  ESPnet's ST model on the 400 ST triples only (conf/train_st.yaml)
#   mtl_st    our multi-task model, ST triples + the MT and ASR data (conf/train_st_mtl.yaml)
#
#   ./run.sh                                  # stages 1-10 once, then 11-13 for both systems
#   ./run.sh --system mtl_st --stage 11       # one system (baseline, mtl_st or both)
#   ./run.sh --system mtl_st --stage 11 --st_config conf/my.yaml --st_tag my
#   python bench/bench_mtl_gain.py --setting low_resource   # both at an equal time budget
set -euo pipefail

tgt_lang=de
system=both
stage=1
stop_stage=13
# Read here: the systems share stages 1-10 and then run 11-13 each (the rest goes to st.sh).
. ./recipe_options.sh "tgt_lang=de|es|fr" "system=both|baseline|mtl_st" stage stop_stage -- "$@"
for _n in stage stop_stage; do
    case "${!_n}" in ''|*[!0-9]*) echo "$0: --${_n} takes a stage number (got '${!_n}')" >&2; exit 2 ;; esac
done
. ./db.sh

# Stage 1 reads the ASR-only speech from here (the LibriSpeech reader's root).
export LIBRISPEECH=${MINI_ST_LOW}/aux/LibriSpeech
st=(./st.sh
    --ngpu 0 --nj 2 --inference_nj 2
    --src_lang en --tgt_lang "${tgt_lang}"
    --local_data_opts "--tgt_lang ${tgt_lang}"
    --train_set "train.en-${tgt_lang}" --valid_set "dev.en-${tgt_lang}"
    --test_sets "tst-COMMON.en-${tgt_lang}"
    --src_case lc.rm --tgt_case tc
    --src_nbpe 300 --tgt_nbpe 300
    --feats_type raw --audio_format flac
    --inference_config conf/decode_st.yaml)
aux=(--aux_mt_sets "bitext:${MINI_ST_LOW}/aux/bitext/demo_mt"
     --aux_asr_sets "librispeech:train-clean-100"
     # Both systems use these token lists: trained on the ST and the auxiliary
     # text, so the comparison measures the training data, not the vocabulary.
     --bpe_train_aux true)

if [ "${stage}" -le 10 ]; then
    # The stats of stage 10 include the auxiliary sets' shapes; the baseline ignores them.
    "${st[@]}" "${aux[@]}" --stage "${stage}" --stop_stage "$((stop_stage < 10 ? stop_stage : 10))" \
        --st_config conf/train_st_mtl.yaml "${args[@]+"${args[@]}"}"
fi
[ "${stop_stage}" -ge 11 ] || exit 0
_from=$((stage > 11 ? stage : 11))
if [ "${system}" != baseline ]; then
    "${st[@]}" "${aux[@]}" --stage "${_from}" --stop_stage "${stop_stage}" \
        --st_config conf/train_st_mtl.yaml --st_tag mtl_st "${args[@]+"${args[@]}"}"
fi
if [ "${system}" != mtl_st ]; then
    "${st[@]}" --stage "${_from}" --stop_stage "${stop_stage}" \
        --st_config conf/train_st.yaml --st_tag baseline "${args[@]+"${args[@]}"}"
fi
