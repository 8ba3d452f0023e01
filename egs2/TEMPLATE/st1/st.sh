#!/usr/bin/env bash
# The speech-translation stage driver of espnet_mtl (written from scratch;
# stage numbers and option names follow ESPnet's egs2/TEMPLATE/st1/st.sh).
#
#  1 data preparation (local/data.sh)     8  (n-gram LM: skipped, use_ngram=false)
#  2 speed perturbation                    9  (LM perplexity: skipped, use_lm=false)
#  3 audio formatting / fbank dumping     10 ST collect stats
#  4 filtering (duration, empty text)     11 ST training (resumes from its checkpoint)
#  5 SentencePiece token lists            12 decoding (inference_nj parallel jobs)
#  6 (LM collect stats: skipped)          13 scoring (sacreBLEU -> result.json, RESULTS.md)
#  7 (LM training: skipped)
#
# Every stage runs Python CLIs from espnet_mtl/bin; this file only parses
# options and sequences them. Options are checked (types, ranges, choices)
# before any stage runs. Each stage declares its inputs and outputs
# (`stage_start N --in ... --fresh|--resume ...` ... `stage_end`):
# - one run at a time per output directory (a lock that dies with its holder;
#   a second run is refused, naming the first one's pid and host);
# - inputs must be marked complete (`.done`) and made from current inputs
#   (espnet_mtl/runner/stage_marks.py); outputs lose their mark when the stage starts
#   and get it back, with the inputs' stamps, when it ends;
# - every Python process it starts stops when this script dies, however it
#   dies (SIGKILL and closed terminals included; espnet_mtl/runner/lifetime.py).
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}
min() { local a b; a=$1; for b in "$@"; do [ "$b" -lt "$a" ] && a=$b; done; echo "$a"; }
SECONDS=0
# Our CLIs die with this driver (espnet_mtl.runner.lifetime), on this host only.
export ESPNET_MTL_DRIVER="${HOSTNAME:-$(uname -n)}:$$"

help_message="Usage: $0 --train_set <train_set_name> --valid_set <valid_set_name> --test_sets <test_set_names> --src_lang en --tgt_lang de [options]"

# Variables declared before this line are not options.
_non_options=" $(compgen -v | tr '\n' ' ') "

# General configuration
stage=1                # Processes starts from the specified stage.
stop_stage=13          # Processes is stopped at the specified stage.
skip_data_prep=false   # Skip data preparation stages (1-5).
skip_train=false       # Skip training stages (6-11).
skip_eval=false        # Skip decoding and evaluation stages (12-13).
skip_packing=false     # Skip packing the model (stage 14).
skip_upload_hf=true    # Skip uploading it to the Hugging Face Hub (stage 15).
hf_repo=               # Hub repository of stage 15: <user or organisation>/<name>.
hf_dry_run=false       # Stage 15 stages the repository folder and lists it, uploads nothing.
hf_local_dir=          # Stage 15 copies the repository folder here instead of the Hub.
ngpu=1                 # The number of gpus ("0" uses cpu, otherwise use gpu).
num_nodes=1            # The number of nodes.
nj=32                  # The number of parallel jobs.
inference_nj=32        # The number of parallel jobs in decoding.
gpu_inference=false    # Whether to perform gpu decoding.
dumpdir=dump           # Directory to dump features.
expdir=exp             # Directory to save experiments.
python=python3         # Specify python to execute espnet commands.

# Data preparation related
local_data_opts=       # The options given to local/data.sh.

# Auxiliary data for multi-task models (model mtl_st; espnet_mtl/prep/aux_data.py).
# Prepared at stage 1 into data/aux_asr and data/aux_mt, formatted and
# filtered at stages 3-4 (not speed-perturbed), shape files at stage 10, and
# mixed into the training batches at stage 11.
aux_asr_sets=          # ASR-only speech, e.g. "librispeech:train-clean-100,train-clean-360 tedlium3:train dir:<data dir>"
aux_mt_sets=           # MT-only bitext, e.g. "bitext:/data/wmt/europarl-v7.de-en" (files <prefix>.<src_lang>, <prefix>.<tgt_lang>)
aux_mixing=ratio       # ratio: each batch mixes the sources; round_robin: whole batches in turn
aux_ratio=             # batch share per source, e.g. "st=2,mt=1,asr=1" (empty: 1 each)

# Speed perturbation related
speed_perturb_factors= # perturbation factors, e.g. "0.9 1.0 1.1" (separated by space).

# Feature extraction related
feats_type=raw         # raw (audio files, features in the model) or fbank (kaldiio ark/scp).
audio_format=flac      # Audio format for feats_type=raw: flac or wav.
fs=16k                 # Sampling rate.
n_mels=80              # Filterbank dimension for feats_type=fbank.
min_wav_duration=0.1   # Minimum duration in second.
max_wav_duration=20    # Maximum duration in second.
segment_overrun_tolerance=0.1 # Seconds a segment may end after its audio and be cut at the audio end (time rounding, codec padding).
segment_overrun=drop   # A segment ending further past its audio: drop (and list it) or error.

# Tokenization related
token_joint=false      # One SentencePiece model and token list for source and target.
src_token_type=bpe     # Tokenization type (bpe = SentencePiece; hugging_face = the pretrained
tgt_token_type=bpe     # tokenizer of --hugging_face_model_name_or_path: no SentencePiece training).
hugging_face_model_name_or_path= # Tokenizer of a model that brings its own (ComSL: the mBART-50 directory).
src_nbpe=30            # The number of BPE vocabulary for source language.
tgt_nbpe=30            # The number of BPE vocabulary for target language.
src_bpemode=unigram    # Mode of BPE for source language (unigram or bpe).
tgt_bpemode=unigram    # Mode of BPE for target language (unigram or bpe).
src_bpe_input_sentence_size=100000000 # Size of input sentence for BPE for source language.
tgt_bpe_input_sentence_size=100000000 # Size of input sentence for BPE for target language.
src_bpe_nlsyms=        # Non-linguistic symbols list, separated by a comma, for source BPE.
tgt_bpe_nlsyms=        # Non-linguistic symbols list, separated by a comma, for target BPE.
src_bpe_char_cover=1.0 # Character coverage when modeling BPE for source language.
tgt_bpe_char_cover=1.0 # Character coverage when modeling BPE for target language.

# Language model related (stages 6-9; not available yet, see below)
use_lm=false           # Use language model for ST decoding.
use_ngram=false        # Use n-gram language model for ST decoding.

# ST model related
st_tag=                # Suffix to the result dir for st model training.
st_exp=                # Specify the directory path for ST experiment.
st_stats_dir=          # Specify the directory path for ST statistics.
st_config=             # Config for st model training.
st_args=               # Arguments for st model training, e.g., "--max_epoch 10".
feats_normalize=global_mvn # Normalization layer type.
st_speech_fold_length=800 # fold_length for speech data during ST training (x100 for raw audio).
st_text_fold_length=150   # fold_length for text data during ST training.
st_model=espnet        # The --model choice of our task when st_config does not set one.

# Decoding related
inference_tag=         # Suffix to the result dir for decoding.
inference_config=      # Config for decoding.
inference_args=        # Arguments for decoding, e.g., "--lm_weight 0.1".
extra_decode_paths=    # mtl_st models: "mt", "asr" or "mt asr": also decode the MT path (transcript in)
                       # and the ASR path (stage 12), scored with BLEU and WER (stage 13).
inference_st_model=valid.acc.ave.pth # ST model path for decoding.
batch_size=1           # Utterances decoded together in stage 12 (ESPnet's option; > 1: our batched beam search, attention decoders only; a CTC-only ASR path is decoded one at a time).
remove_tags=false      # Remove (Applause)-style tags before scoring.

# Language and corpus related
src_lang=en            # source language abbrev. id (e.g., en)
tgt_lang=de            # target language abbrev. id (e.g., de)
src_case=lc.rm         # Source case: tc, lc or lc.rm.
tgt_case=tc            # Target case: tc, lc or lc.rm.
train_set=             # Name of training set.
valid_set=             # Name of validation set used for monitoring/tuning network training.
test_sets=             # Names of test sets. Multiple items (e.g., both dev and eval sets) can be specified.
src_bpe_train_text=    # Text file path of bpe training set for source language.
tgt_bpe_train_text=    # Text file path of bpe training set for target language.
bpe_train_aux=false    # Stage 5 also reads the auxiliary sets' text: source from the MT
                       # bitext and ASR transcripts, target from the MT bitext.


# Numeric and enumerated options, checked before any stage runs (forms: espnet_mtl/runner/options.py).
_option_rules="stage=int:1..15 batch_size=int:1.. stop_stage=int:1.. ngpu=int:0.. num_nodes=int:1.. nj=int:1..
    inference_nj=int:1.. feats_type=raw|fbank audio_format=flac|wav fs=rate n_mels=int:1..
    min_wav_duration=float:0.. max_wav_duration=float:0.. segment_overrun_tolerance=float:0..
    segment_overrun=drop|error aux_mixing=ratio|round_robin src_token_type=bpe|hugging_face
    tgt_token_type=bpe|hugging_face
    src_nbpe=int:1.. tgt_nbpe=int:1.. src_bpemode=unigram|bpe tgt_bpemode=unigram|bpe
    src_bpe_input_sentence_size=int:1.. tgt_bpe_input_sentence_size=int:1..
    src_bpe_char_cover=float:0..1 tgt_bpe_char_cover=float:0..1 src_case=tc|lc|lc.rm
    tgt_case=tc|lc|lc.rm st_speech_fold_length=int:1.. st_text_fold_length=int:1..
    feats_normalize=global_mvn|utterance_mvn|none extra_decode_paths=list:mt|asr
    bpe_train_aux=true|false skip_packing=true|false skip_upload_hf=true|false
    hf_dry_run=true|false"

# Options: every variable declared since _non_options, parsed by Python with
# Kaldi's parse_options semantics (unknown option -> error listing valid ones).
_option_pairs=()
for _name in $(compgen -v); do
    case "${_non_options}_non_options _option_pairs _option_rules " in *" ${_name} "*) continue ;; esac
    _option_pairs+=("${_name}" "${!_name}")
done

log "$0 $*"
_cmdline="$0 $*"  # named in the locks this run takes
_orig_args=("$@")  # for ${st_exp}/run.sh
[ -f ./path.sh ] && . ./path.sh
[ -f ./cmd.sh ] && . ./cmd.sh
command -v flock > /dev/null || { log "Error: flock not found: install util-linux (it locks stage outputs)"; exit 1; }
_assign=$(${python} -m espnet_mtl.bin.parse_options "${_option_pairs[@]}" \
    --rules "${_option_rules}" --usage "${help_message}" -- "$@") || exit 1
eval "${_assign}"
if [ $# -ne 0 ]; then
    log "Error: unexpected positional arguments: $*"; log "${help_message}"; exit 2
fi

[ -z "${train_set}" ] && { log "Error: --train_set is required"; exit 2; }
[ -z "${valid_set}" ] && { log "Error: --valid_set is required"; exit 2; }
[ -z "${test_sets}" ] && { log "Error: --test_sets is required"; exit 2; }
if "${skip_data_prep}"; then [ "${stage}" -lt 6 ] && stage=6; fi
if "${skip_train}"; then [ "${stage}" -ge 6 ] && [ "${stage}" -le 11 ] && stage=12; fi
if "${skip_eval}"; then [ "${stop_stage}" -ge 12 ] && stop_stage=11; fi
if [ "${stage}" -gt "${stop_stage}" ]; then
    log "Error: nothing to run: --stage ${stage} is after --stop_stage ${stop_stage} (after --skip_data_prep/--skip_train/--skip_eval)"
    exit 2
fi

# Derived names (ESPnet's conventions).
fs_hz=$(${python} -c "import sys; s=sys.argv[1].lower(); print(int(float(s[:-1])*1000) if s.endswith('k') else int(s))" "${fs}")
data_feats=${dumpdir}/${feats_type}
src_text_name=text.${src_case}.${src_lang}
tgt_text_name=text.${tgt_case}.${tgt_lang}
token_listdir=data/${src_lang}_${tgt_lang}_token_list
if "${token_joint}"; then
    tgt_nbpe=${src_nbpe}; tgt_bpemode=${src_bpemode}
    src_bpedir=${token_listdir}/bpe_${src_bpemode}${src_nbpe}
    tgt_bpedir=${src_bpedir}
else
    src_bpedir=${token_listdir}/src_bpe_${src_bpemode}${src_nbpe}
    tgt_bpedir=${token_listdir}/tgt_bpe_${tgt_bpemode}${tgt_nbpe}
fi
src_bpemodel=${src_bpedir}/bpe.model
tgt_bpemodel=${tgt_bpedir}/bpe.model
if [ "${src_token_type}" = hugging_face ] || [ "${tgt_token_type}" = hugging_face ]; then
    if [ "${src_token_type}" != "${tgt_token_type}" ] || [ -z "${hugging_face_model_name_or_path}" ]; then
        log "Error: --src_token_type hugging_face and --tgt_token_type hugging_face go together (one pretrained vocabulary for both sides), with --hugging_face_model_name_or_path <tokenizer directory or hub name>"
        exit 2
    fi
    token_joint=true
    src_bpedir=${token_listdir}/hugging_face_$(basename "${hugging_face_model_name_or_path}")
    tgt_bpedir=${src_bpedir}
    src_bpemodel=${hugging_face_model_name_or_path}
    tgt_bpemodel=${hugging_face_model_name_or_path}
fi
src_token_list=${src_bpedir}/tokens.txt
tgt_token_list=${tgt_bpedir}/tokens.txt
# st_tag, st_exp, st_stats_dir and inference_tag (the ones not given as options), by
# ESPnet's rule: espnet_mtl.runner.options.st_names, which the tools that find a run's outputs
# (the sweep) call too.
_names=()
for _name in expdir st_tag st_exp st_stats_dir st_config st_args feats_type src_lang tgt_lang \
        tgt_token_type tgt_case tgt_nbpe speed_perturb_factors inference_tag inference_config \
        inference_args inference_st_model; do
    _names+=("${_name}" "${!_name}")
done
_assign=$(${python} -m espnet_mtl.bin.st_names "${_names[@]}") || exit 1
eval "${_assign}"
if [ -n "${speed_perturb_factors}" ]; then _train_set=${train_set}_sp; else _train_set=${train_set}; fi
_aux_kinds=
[ -n "${aux_asr_sets}" ] && _aux_kinds+=" asr"
[ -n "${aux_mt_sets}" ] && _aux_kinds+=" mt"
if "${bpe_train_aux}" && [ -z "${_aux_kinds}" ]; then
    log "Error: --bpe_train_aux true needs auxiliary data: give --aux_mt_sets and/or --aux_asr_sets"; exit 2
fi
# Speech sets formatted at stage 3: train and valid (then filtered at stage 4), tests.
_format_sets="${_train_set} ${valid_set} ${test_sets}"
[ -n "${aux_asr_sets}" ] && _format_sets+=" aux_asr"

# Stage bookkeeping (see the header): stage_start N [--in DIR...] [--fresh DIR...]
# [--resume DIR...] locks and unmarks the outputs after checking the inputs;
# stage_end marks the outputs complete and releases the locks.
_stage= _stage_in=() _stage_out=() _stage_lock_fds=()
stage_start() {
    _stage=$1; shift
    local _mode= _arg _fresh=() _resume=()
    _stage_in=() _stage_out=()
    for _arg in "$@"; do
        case "${_arg}" in
            --in|--fresh|--resume) _mode=${_arg} ;;
            *) case "${_mode}" in
                   --in) _stage_in+=("${_arg}") ;;
                   --fresh) _fresh+=("${_arg}"); _stage_out+=("${_arg}") ;;
                   --resume) _resume+=("${_arg}"); _stage_out+=("${_arg}") ;;
               esac ;;
        esac
    done
    for _arg in "${_stage_out[@]}"; do lock_output "${_arg}"; done
    ${python} -m espnet_mtl.bin.stage_marks start --in "${_stage_in[@]}" \
        --fresh "${_fresh[@]}" --resume "${_resume[@]}" || exit 1
}
stage_end() {
    ${python} -m espnet_mtl.bin.stage_marks done --stage "${_stage}" --in "${_stage_in[@]}" \
        --out "${_stage_out[@]}"
    local _fd
    for _fd in "${_stage_lock_fds[@]}"; do exec {_fd}>&-; done
    _stage_lock_fds=()
}
# One run at a time per output directory: an flock on a hidden file next to
# it, released by the kernel when its holders (this script and the children
# that inherited it) are gone, so a killed run never leaves it stuck.
lock_output() {
    local _lock _fd
    _lock="$(dirname "$1")/.$(basename "$1").lock"
    mkdir -p "$(dirname "$1")"
    exec {_fd}<>"${_lock}"
    if ! flock -n "${_fd}"; then
        log "Error: stage ${_stage}: $1 is being written by another run ($(cat "${_lock}")); wait for it to finish, or stop it and run again"
        exit 1
    fi
    echo "pid=$$ host=${HOSTNAME:-$(uname -n)} started=$(date '+%Y-%m-%dT%H:%M:%S') command=${_cmdline}" > "${_lock}"
    _stage_lock_fds+=("${_fd}")
}
run_stage() { [ "${stage}" -le "$1" ] && [ "${stop_stage}" -ge "$1" ]; }
data_dir() { ${python} -m espnet_mtl.bin.data_dir "$@"; }

# Where stage 3 writes each set: train, valid and auxiliary sets go to org/
# for stage 4 filtering; test sets are final.
format_dir() {
    case "$1" in
        "${_train_set}"|"${valid_set}"|aux_asr) echo "${data_feats}/org/$1" ;;
        *) echo "${data_feats}/$1" ;;
    esac
}
_aux_dump=()  # auxiliary sets after stage 4
for _kind in ${_aux_kinds}; do _aux_dump+=("${data_feats}/aux_${_kind}"); done
# How stages 10 and 11 name them (espnet_mtl.prep.aux_data.DriverLayout).
_aux_layout=(--kinds="${_aux_kinds}" --data_feats="${data_feats}" --stats_dir="${st_stats_dir}"
    --src_text_name="${src_text_name}" --tgt_text_name="${tgt_text_name}"
    --src_token_type="${src_token_type}" --tgt_token_type="${tgt_token_type}")
if "${token_joint}"; then _token_dirs=("${src_bpedir}"); else _token_dirs=("${src_bpedir}" "${tgt_bpedir}"); fi

if run_stage 1; then
    log "Stage 1: Data preparation for data/${train_set}, data/${valid_set}, etc."
    _outs=()
    for dset in "${train_set}" "${valid_set}" ${test_sets}; do _outs+=("data/${dset}"); done
    for _kind in ${_aux_kinds}; do _outs+=("data/aux_${_kind}"); done
    stage_start 1 --fresh "${_outs[@]}"
    # local/data.sh writes data/<set>; each set it makes is validated here.
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    for dset in "${train_set}" "${valid_set}" ${test_sets}; do data_dir validate "data/${dset}"; done
    for _kind in ${_aux_kinds}; do
        _sets=aux_${_kind}_sets
        log "Stage 1: Auxiliary ${_kind} data (${!_sets}) -> data/aux_${_kind}"
        # Corpus roots (LIBRISPEECH, TEDLIUM3) come from db.sh.
        # shellcheck disable=SC1091
        ( [ -f ./db.sh ] && . ./db.sh; export LIBRISPEECH TEDLIUM3
          # shellcheck disable=SC2086
          ${python} -m espnet_mtl.bin.aux_data prepare --kind "${_kind}" --src_lang "${src_lang}" \
              --tgt_lang "${tgt_lang}" --out data --nj "${nj}" ${!_sets} )
    done
    stage_end
fi

if run_stage 2; then
    if [ -n "${speed_perturb_factors}" ]; then
        log "Stage 2: Speed perturbation: data/${train_set} -> data/${_train_set}"
        stage_start 2 --in "data/${train_set}" --fresh "data/${_train_set}"
        # shellcheck disable=SC2086
        ${python} -m espnet_mtl.bin.speed_perturb --in_dir "data/${train_set}" \
            --out_dir "data/${_train_set}" --factors ${speed_perturb_factors}
        stage_end
    else
        log "Stage 2: Skip speed perturbation (--speed_perturb_factors is empty)"
    fi
fi

if run_stage 3; then
    log "Stage 3: Format audio (feats_type=${feats_type}): data/ -> ${data_feats}"
    _ins=() _outs=()
    for dset in ${_format_sets}; do _ins+=("data/${dset}"); _outs+=("$(format_dir "${dset}")"); done
    stage_start 3 --in "${_ins[@]}" --fresh "${_outs[@]}"
    for dset in ${_format_sets}; do
        out=$(format_dir "${dset}")
        # Split by recording: each job reads each of its long recordings once.
        _nrec=$(wc -l < "data/${dset}/wav.scp")
        _nj=$(min "${nj}" "${_nrec}")
        data_dir split "data/${dset}" "${_nj}" --by recording > /dev/null
        ${train_cmd} JOB=1:"${_nj}" "${out}/logs/format.JOB.log" \
            ${python} -m espnet_mtl.bin.dump_audio --in_dir "data/${dset}/split${_nj}rec/JOB" \
                --out_dir "${out}/format.JOB" --feats_type "${feats_type}" \
                --audio_format "${audio_format}" --fs "${fs_hz}" --n_mels "${n_mels}" \
                --overrun_tolerance "${segment_overrun_tolerance}" --overrun_action "${segment_overrun}"
        _parts=()
        for n in $(seq "${_nj}"); do _parts+=("${out}/format.${n}"); done
        # --skip_empty: a job whose every segment ended past its audio (dropped) has none left.
        data_dir combine --skip_empty "${out}" "${_parts[@]}"
        # Segments cut at (or dropped for ending past) their audio end, by name.
        ${python} -m espnet_mtl.bin.dump_audio --summarize_overruns --name "${dset}" \
            --overrun_tolerance "${segment_overrun_tolerance}" "${_parts[@]}" >&2
        echo "${feats_type}" > "${out}/feats_type"
    done
    stage_end
fi

if run_stage 4; then
    log "Stage 4: Remove utterances outside [${min_wav_duration}, ${max_wav_duration}] s or with empty text"
    _ins=("${data_feats}/org/${_train_set}" "${data_feats}/org/${valid_set}")
    [ -n "${aux_asr_sets}" ] && _ins+=("${data_feats}/org/aux_asr")
    [ -n "${aux_mt_sets}" ] && _ins+=(data/aux_mt)
    stage_start 4 --in "${_ins[@]}" --fresh "${data_feats}/${_train_set}" "${data_feats}/${valid_set}" "${_aux_dump[@]}"
    for dset in "${_train_set}" "${valid_set}"; do
        data_dir filter "${data_feats}/org/${dset}" "${data_feats}/${dset}" \
            --min_dur "${min_wav_duration}" --max_dur "${max_wav_duration}" --fs "${fs_hz}" \
            --nonempty_text "${src_text_name}" "${tgt_text_name}"
    done
    if [ -n "${aux_asr_sets}" ]; then
        data_dir filter "${data_feats}/org/aux_asr" "${data_feats}/aux_asr" \
            --min_dur "${min_wav_duration}" --max_dur "${max_wav_duration}" --fs "${fs_hz}" \
            --nonempty_text "${src_text_name}"
    fi
    if [ -n "${aux_mt_sets}" ]; then
        ${python} -m espnet_mtl.bin.aux_data filter_text data/aux_mt "${data_feats}/aux_mt" \
            "${src_text_name}" "${tgt_text_name}"
    fi
    stage_end
fi

if run_stage 5; then
    _src_text=("${src_bpe_train_text:-${data_feats}/${_train_set}/${src_text_name}}")
    _tgt_text=("${tgt_bpe_train_text:-${data_feats}/${_train_set}/${tgt_text_name}}")
    _ins=()
    if [ -z "${src_bpe_train_text}" ] || [ -z "${tgt_bpe_train_text}" ]; then _ins=("${data_feats}/${_train_set}"); fi
    if "${bpe_train_aux}"; then
        _ins+=("${_aux_dump[@]}")
        for _kind in ${_aux_kinds}; do _src_text+=("${data_feats}/aux_${_kind}/${src_text_name}"); done
        [ -n "${aux_mt_sets}" ] && _tgt_text+=("${data_feats}/aux_mt/${tgt_text_name}")
    fi
    stage_start 5 --in "${_ins[@]}" --fresh "${_token_dirs[@]}"
    if [ "${tgt_token_type}" = hugging_face ]; then
        log "Stage 5: the model brings its tokenizer: token list of ${hugging_face_model_name_or_path} -> ${src_bpedir}"
        ${python} -m espnet_mtl.bin.train_tokenizer --hugging_face "${hugging_face_model_name_or_path}" \
            --out_dir "${src_bpedir}"
    elif "${token_joint}"; then
        log "Stage 5: Joint SentencePiece model (${src_bpemode}, ${src_nbpe}) on ${_src_text[*]} ${_tgt_text[*]} -> ${src_bpedir}"
        ${python} -m espnet_mtl.bin.train_tokenizer --text "${_src_text[@]}" "${_tgt_text[@]}" \
            --out_dir "${src_bpedir}" --vocab_size "${src_nbpe}" --model_type "${src_bpemode}" \
            --character_coverage "${src_bpe_char_cover}" \
            --input_sentence_size "${src_bpe_input_sentence_size}" --user_defined_symbols "${src_bpe_nlsyms}"
    else
        log "Stage 5: SentencePiece models on ${_src_text[*]} / ${_tgt_text[*]}: source (${src_bpemode}, ${src_nbpe}) -> ${src_bpedir}, target (${tgt_bpemode}, ${tgt_nbpe}) -> ${tgt_bpedir}"
        ${python} -m espnet_mtl.bin.train_tokenizer --text "${_src_text[@]}" --out_dir "${src_bpedir}" \
            --vocab_size "${src_nbpe}" --model_type "${src_bpemode}" --character_coverage "${src_bpe_char_cover}" \
            --input_sentence_size "${src_bpe_input_sentence_size}" --user_defined_symbols "${src_bpe_nlsyms}"
        ${python} -m espnet_mtl.bin.train_tokenizer --text "${_tgt_text[@]}" --out_dir "${tgt_bpedir}" \
            --vocab_size "${tgt_nbpe}" --model_type "${tgt_bpemode}" --character_coverage "${tgt_bpe_char_cover}" \
            --input_sentence_size "${tgt_bpe_input_sentence_size}" --user_defined_symbols "${tgt_bpe_nlsyms}"
    fi
    stage_end
fi

# Stages 6-9 keep ESPnet's numbers; LM fusion is not implemented yet, so
# asking for it is an error rather than a silently ignored option.
if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 6 ]; then
    if "${use_lm}" || "${use_ngram}"; then
        log "Error: --use_lm/--use_ngram true: LM and n-gram training (stages 6-9) are not available in espnet_mtl yet; run with --use_lm false --use_ngram false"
        exit 2
    fi
    log "Stages 6-9: Skip LM collect stats, training, perplexity and n-gram (use_lm=false, use_ngram=false)"
fi

if [ "${feats_type}" = raw ]; then
    _scp=wav.scp; _type=sound
    _fold_length=$((st_speech_fold_length * 100))  # samples, not frames
    _input_opts=(--frontend_conf "fs=${fs}")
else
    _scp=feats.scp; _type=kaldi_ark
    _fold_length=${st_speech_fold_length}
    _input_opts=(--input_size "${n_mels}")
fi
_data_opts() {  # data options for training / collect stats
    local split=$1 dir=$2
    echo "--${split}_data_path_and_name_and_type ${dir}/${_scp},speech,${_type}" \
         "--${split}_data_path_and_name_and_type ${dir}/${tgt_text_name},text,text" \
         "--${split}_data_path_and_name_and_type ${dir}/${src_text_name},src_text,text"
}
_token_opts=(--use_preprocessor true --token_type "${tgt_token_type}" --token_list "${tgt_token_list}"
    --bpemodel "${tgt_bpemodel}" --src_token_type "${src_token_type}"
    --src_token_list "${src_token_list}" --src_bpemodel "${src_bpemodel}"
    --non_linguistic_symbols none --cleaner none --g2p none)
_config_opts=()
[ -n "${st_config}" ] && _config_opts=(--config "${st_config}")
if ! grep -qs '^model:' "${st_config:-/dev/null}"; then _config_opts+=(--model "${st_model}"); fi

# What training reads: stage 10 and 11 inputs.
_train_inputs=("${data_feats}/${_train_set}" "${data_feats}/${valid_set}" "${_aux_dump[@]}" "${_token_dirs[@]}")

if run_stage 10; then
    log "Stage 10: ST collect stats -> ${st_stats_dir}"
    stage_start 10 --in "${_train_inputs[@]}" --fresh "${st_stats_dir}"
    _nj=$(min "${nj}" "$(wc -l < "${data_feats}/${_train_set}/${_scp}")" "$(wc -l < "${data_feats}/${valid_set}/${_scp}")")
    data_dir split "${data_feats}/${_train_set}" "${_nj}" > /dev/null
    data_dir split "${data_feats}/${valid_set}" "${_nj}" > /dev/null
    # shellcheck disable=SC2046,SC2086
    ${train_cmd} JOB=1:"${_nj}" "${st_stats_dir}/logs/stats.JOB.log" \
        ${python} -m espnet_mtl.bin.st_train --collect_stats true --ngpu 0 --num_workers 0 \
            "${_token_opts[@]}" "${_config_opts[@]}" "${_input_opts[@]}" \
            $(_data_opts train "${data_feats}/${_train_set}") \
            $(_data_opts valid "${data_feats}/${valid_set}") \
            --train_shape_file "${data_feats}/${_train_set}/split${_nj}/JOB/${_scp}" \
            --valid_shape_file "${data_feats}/${valid_set}/split${_nj}/JOB/${_scp}" \
            --output_dir "${st_stats_dir}/stats.JOB" ${st_args}
    _inputs=()
    for n in $(seq "${_nj}"); do _inputs+=(--input_dir "${st_stats_dir}/stats.${n}"); done
    ${python} -m espnet2.bin.aggregate_stats_dirs "${_inputs[@]}" --output_dir "${st_stats_dir}"
    ${python} -m espnet_mtl.bin.add_vocab_dim "${st_stats_dir}" "${tgt_token_type}" "text_shape=${tgt_token_list}"
    ${python} -m espnet_mtl.bin.add_vocab_dim "${st_stats_dir}" "${src_token_type}" "src_text_shape=${src_token_list}"
    # Auxiliary sets: shape files named like the ST ones (collect stats needs speech and a translation).
    if [ -n "${_aux_kinds}" ]; then
        ${python} -m espnet_mtl.bin.aux_data driver_shapes "${_aux_layout[@]}" \
            --feats_type "${feats_type}" --n_mels "${n_mels}" \
            --src_token_dir "${src_bpedir}" --tgt_token_dir "${tgt_bpedir}"
    fi
    stage_end
fi

if run_stage 11; then
    log "Stage 11: ST training -> ${st_exp} (log: ${st_exp}/train.log; a rerun resumes from ${st_exp}/checkpoint.pth)"
    stage_start 11 --in "${st_stats_dir}" "${_train_inputs[@]}" --resume "${st_exp}"
    _norm_opts=()
    if [ "${feats_normalize}" = global_mvn ]; then
        # Only at training time: collect stats cannot read a stats file it is making.
        _norm_opts=(--normalize global_mvn --normalize_conf "stats_file=${st_stats_dir}/train/feats_stats.npz")
    elif [ -n "${feats_normalize}" ] && [ "${feats_normalize}" != none ]; then
        _norm_opts=(--normalize "${feats_normalize}")
    fi
    # Several GPUs: ESPnet's own DDP launcher (one process per GPU). Several
    # nodes: one srun task per node (cmd_backend=slurm asks --ntasks-per-node=1),
    # ESPnet's --dist_launcher slurm, and a rendezvous file in the experiment dir,
    # which every node must see (a shared file system).
    _dist_opts=()
    _srun=()
    if [ "${num_nodes}" -gt 1 ]; then
        [ "${cmd_backend:-local}" = slurm ] || { log "Error: --num_nodes ${num_nodes} needs cmd_backend=slurm (see cmd.sh)"; exit 2; }
        _srun=(srun --export=ALL)
        _dist_opts=(--multiprocessing_distributed true --dist_launcher slurm
                    --dist_init_method "file://$(cd "${st_exp}" && pwd)/.dist_init_$(date +%s%N)")
        [ "${ngpu}" -eq 0 ] && _dist_opts+=(--dist_backend gloo)
    elif [ "${ngpu}" -gt 1 ]; then
        _dist_opts=(--multiprocessing_distributed true)
    fi
    # Auxiliary sets (espnet_mtl.prep.aux_data.train_args): their data and shape files, mixing.
    _aux_opts=()
    if [ -n "${_aux_kinds}" ]; then
        _aux_out=$(${python} -m espnet_mtl.bin.aux_data train_args "${_aux_layout[@]}" \
            --speech_scp "${_scp}" --speech_type "${_type}" --mixing "${aux_mixing}" \
            --ratio="${aux_ratio}") || exit 1
        mapfile -t _aux_opts <<< "${_aux_out}"
    fi
    # As ESPnet: ${st_exp}/run.sh reruns this experiment from stage 11 with the same options,
    # and a rerun keeps the earlier log as train.1.log (train.2.log, ...).
    mkdir -p "${st_exp}"
    { echo "#!/usr/bin/env bash"
      echo "# Written by st.sh stage 11: rerun this experiment from stage 11 with its options."
      printf 'cd %q && ' "$(pwd)"; printf '%q ' "$0" "${_orig_args[@]}"; echo '--stage 11 "$@"'
    } > "${st_exp}/run.sh"
    chmod +x "${st_exp}/run.sh"
    ${python} -m espnet_mtl.bin.rotate_log "${st_exp}/train.log"
    # On CPU, training gets every core of the machine it runs on.
    _threads=1
    [ "${ngpu}" -eq 0 ] && _threads=$(nproc)
    # shellcheck disable=SC2046,SC2086
    ${cuda_cmd} --gpu "${ngpu}" --num_nodes "${num_nodes}" --num_threads "${_threads}" "${st_exp}/train.log" \
        "${_srun[@]}" ${python} -m espnet_mtl.bin.st_train --ngpu "${ngpu}" "${_dist_opts[@]}" \
            "${_token_opts[@]}" "${_config_opts[@]}" "${_input_opts[@]}" "${_norm_opts[@]}" \
            $(_data_opts train "${data_feats}/${_train_set}") \
            $(_data_opts valid "${data_feats}/${valid_set}") \
            --train_shape_file "${st_stats_dir}/train/speech_shape" \
            --train_shape_file "${st_stats_dir}/train/text_shape.${tgt_token_type}" \
            --train_shape_file "${st_stats_dir}/train/src_text_shape.${src_token_type}" \
            --valid_shape_file "${st_stats_dir}/valid/speech_shape" \
            --valid_shape_file "${st_stats_dir}/valid/text_shape.${tgt_token_type}" \
            --valid_shape_file "${st_stats_dir}/valid/src_text_shape.${src_token_type}" \
            --fold_length "${_fold_length}" --fold_length "${st_text_fold_length}" \
            --fold_length "${st_text_fold_length}" \
            "${_aux_opts[@]}" --resume true --output_dir "${st_exp}" ${st_args}
    [ -e "${st_exp}/${inference_st_model}" ] || { log "Error: training finished without ${st_exp}/${inference_st_model}"; exit 1; }
    stage_end
fi

if run_stage 12; then
    log "Stage 12: Decoding -> ${st_exp}/${inference_tag}"
    if "${gpu_inference}"; then _cmd=${cuda_cmd}; _ngpu=1; else _cmd=${decode_cmd}; _ngpu=0; fi
    _inf_opts=()
    [ -n "${inference_config}" ] && _inf_opts=(--config "${inference_config}")
    _ins=("${st_exp}") _outs=()
    for dset in ${test_sets}; do _ins+=("${data_feats}/${dset}"); _outs+=("${st_exp}/${inference_tag}/${dset}"); done
    stage_start 12 --in "${_ins[@]}" --fresh "${_outs[@]}"
    for dset in ${test_sets}; do
        _data=${data_feats}/${dset}
        _dir=${st_exp}/${inference_tag}/${dset}
        _n=$(wc -l < "${_data}/${_scp}")
        _nj=$(min "${inference_nj}" "${_n}")
        data_dir split "${_data}" "${_nj}" > /dev/null
        # shellcheck disable=SC2086
        ${_cmd} --gpu "${_ngpu}" JOB=1:"${_nj}" "${_dir}/logs/st_inference.JOB.log" \
            ${python} -m espnet_mtl.bin.st_inference --batch_size "${batch_size}" --ngpu "${_ngpu}" \
                --data_path_and_name_and_type "${_data}/${_scp},speech,${_type}" \
                --key_file "${_data}/split${_nj}/JOB/${_scp}" \
                --st_train_config "${st_exp}/config.yaml" \
                --st_model_file "${st_exp}/${inference_st_model}" \
                --output_dir "${_dir}/output.JOB" "${_inf_opts[@]}" ${inference_args}
        ${python} -m espnet_mtl.bin.merge_decode_outputs "${_dir}" "${_nj}"
        for _path in ${extra_decode_paths}; do
            _pdir=${_dir}/${_path}_path
            _model_opts=(--"${_path}"_train_config "${st_exp}/config.yaml"
                         --"${_path}"_model_file "${st_exp}/${inference_st_model}")
            if [ "${_path}" = mt ]; then
                _pdata="${_data}/${src_text_name},src_text,text"
            else
                _pdata="${_data}/${_scp},speech,${_type}"
            fi
            log "Stage 12: ${_path} path of ${dset} -> ${_pdir}"
            # shellcheck disable=SC2086
            ${_cmd} --gpu "${_ngpu}" JOB=1:"${_nj}" "${_pdir}/logs/${_path}_inference.JOB.log" \
                ${python} -m espnet_mtl.bin.path_inference "${_path}" --batch_size "${batch_size}" \
                    --ngpu "${_ngpu}" --data_path_and_name_and_type "${_pdata}" \
                    --key_file "${_data}/split${_nj}/JOB/${_scp}" "${_model_opts[@]}" \
                    --output_dir "${_pdir}/output.JOB" "${_inf_opts[@]}" ${inference_args}
            ${python} -m espnet_mtl.bin.merge_decode_outputs "${_pdir}" "${_nj}"
        done
    done
    stage_end
fi

if run_stage 13; then
    log "Stage 13: Scoring (sacreBLEU) -> ${st_exp}/RESULTS.md"
    _ins=() _outs=()
    for dset in ${test_sets}; do
        _dir=${st_exp}/${inference_tag}/${dset}
        _ins+=("${_dir}" "${data_feats}/${dset}")
        _outs+=("${_dir}/score_bleu")
        for _path in ${extra_decode_paths}; do
            if [ "${_path}" = mt ]; then _outs+=("${_dir}/mt_path/score_bleu"); else _outs+=("${_dir}/asr_path/score_wer"); fi
        done
    done
    # Old scores go first: a failed rescoring must not leave them looking current.
    stage_start 13 --in "${_ins[@]}" --fresh "${_outs[@]}"
    for dset in ${test_sets}; do
        _dir=${st_exp}/${inference_tag}/${dset}
        ${python} -m espnet_mtl.bin.score_st --hyp "${_dir}/text" \
            --ref "${data_feats}/${dset}/${tgt_text_name}" --tgt_lang "${tgt_lang}" \
            --remove_tags "${remove_tags}" --out_dir "${_dir}/score_bleu" --st_exp "${st_exp}"
        for _path in ${extra_decode_paths}; do
            if [ "${_path}" = mt ]; then
                ${python} -m espnet_mtl.bin.score_st --hyp "${_dir}/mt_path/text" \
                    --ref "${data_feats}/${dset}/${tgt_text_name}" --tgt_lang "${tgt_lang}" \
                    --remove_tags "${remove_tags}" --out_dir "${_dir}/mt_path/score_bleu" \
                    --st_exp "${st_exp}"
            else
                ${python} -m espnet_mtl.bin.score_st --metric wer --hyp "${_dir}/asr_path/text" \
                    --ref "${data_feats}/${dset}/${src_text_name}" \
                    --out_dir "${_dir}/asr_path/score_wer" --st_exp "${st_exp}"
            fi
        done
    done
    stage_end
    cat "${st_exp}/RESULTS.md"
fi

packed_model=${st_exp}/${st_exp##*/}_${inference_st_model%.*}.zip
if run_stage 14 && ! "${skip_packing}"; then
    log "Stage 14: Pack model: ${packed_model}"
    ${python} -m espnet_mtl.bin.pack_model pack --st_exp "${st_exp}" \
        --model_file "${inference_st_model}" --outpath "${packed_model}"
fi

if run_stage 15 && ! "${skip_upload_hf}"; then
    [ -z "${hf_repo}" ] && { log "Error: stage 15 needs --hf_repo <user>/<name>"; exit 2; }
    log "Stage 15: Upload ${packed_model} to the Hugging Face Hub: ${hf_repo}"
    _hf_opts=()
    "${hf_dry_run}" && _hf_opts+=(--dry_run)
    [ -n "${hf_local_dir}" ] && _hf_opts+=(--local_dir "${hf_local_dir}")
    ${python} -m espnet_mtl.bin.pack_model upload --packed "${packed_model}" \
        --hf_repo "${hf_repo}" "${_hf_opts[@]}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
