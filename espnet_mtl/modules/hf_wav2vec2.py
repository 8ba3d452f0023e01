"""wav2vec 2.0 / XLS-R through Hugging Face Transformers as an ESPnet encoder
(`encoder: hf_wav2vec2`).

Objective Soups' self-supervised backbones (methods.md section 3: "Conformer,
wav2vec2/XLSR, Whisper"). The same encoder as `hf_hubert` (the waveform in,
~50 Hz frames out, exact padding, optional Linear + dropout, freezing, options
and config) on `transformers.Wav2Vec2Model`: HuBERT and wav2vec 2.0 share the
conv waveform encoder and the Transformer, and differ only in pre-training.
See `espnet_mtl.modules.hf_hubert` for every option.

    input_size: 1
    normalize: null
    specaug: null
    encoder: hf_wav2vec2
    encoder_conf:
        model_name_or_path: /path/to/wav2vec2-xls-r-300m   # save_pretrained dir or hub name
        output_size: 256
        freeze_updates: 0

XLS-R and wav2vec2-large-lv60 use a layer-norm conv stack and were
pre-trained on normalised waveforms (their preprocessor_config.json says
`do_normalize: true`, which `normalize_waveform: null` follows);
wav2vec2-base uses group norm and raw waveforms.
"""

from __future__ import annotations

from typing import ClassVar

from espnet_mtl.modules.hf_hubert import HFHubertEncoder, ModelFamily

WAV2VEC2 = ModelFamily("hf_wav2vec2", "wav2vec2", "Wav2Vec2Model", "Wav2Vec2Config",
                       "wav2vec2", "wav2vec 2.0", "facebook/wav2vec2-xls-r-300m")


class HFWav2Vec2Encoder(HFHubertEncoder):
    """`transformers.Wav2Vec2Model` on the raw waveform, + optional Linear + dropout."""

    family: ClassVar[ModelFamily] = WAV2VEC2
