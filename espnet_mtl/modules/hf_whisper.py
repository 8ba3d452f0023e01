"""Whisper's encoder through Hugging Face Transformers, batched with padding masks.

ComSL's speech encoder (seed 004; methods.md section 5: Whisper medium, 24 blocks,
or large, 32). Waveforms (B, T) at 16 kHz in, encoder states (B, T', D) out, one
state per 20 ms.

HF's `WhisperEncoder.forward` wants every input padded to 30 s and takes no
attention mask (so did the authors' code: one utterance per GPU). Here the
encoder's own modules run on the valid length of each utterance: the log-mel
features are Whisper's (`WhisperLogMel`, computed in torch, equal to HF's
feature extractor), padded frames are zeroed before each convolution (exactly
the convolutions' zero padding of the utterance alone), the positional
embeddings are the first T' rows, and the self-attention masks the padded
frames. A padded batch gives each utterance the states it gets alone (tested);
a batch costs its longest utterance rather than 30 s.

`gradient_checkpointing` recomputes each block in the backward pass (memory for
time; benchmarked in bench/bench_comsl.py). Loading: `from_pretrained` of a
directory written by `save_pretrained` (WhisperModel or
WhisperForConditionalGeneration) or a hub name where a hub is reachable.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160


def load_whisper_encoder(name_or_config: Union[str, object], overrides: Optional[dict] = None):
    """The encoder of a Whisper model: from a directory / hub name, or random from a config."""
    from transformers import WhisperConfig, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if isinstance(name_or_config, WhisperConfig):
        return WhisperEncoder(name_or_config)
    try:
        model = WhisperModel.from_pretrained(str(name_or_config), **(overrides or {}))
    except (OSError, ValueError) as e:  # ValueError: not a directory nor a hub name
        raise OSError(f"whisper: cannot load a Whisper model from {name_or_config!r} (a "
                      f"directory written by save_pretrained, or a hub name where the hub "
                      f"is reachable): {e}") from None
    encoder = model.encoder
    del model.decoder
    return encoder


class WhisperLogMel(torch.nn.Module):
    """Whisper's log-mel features of each utterance over its valid samples.

    STFT (n_fft 400, hop 160, Hann), power, Slaney mel filters, log10 clamped at
    1e-10, floored at the utterance's maximum - 8, then (x + 4) / 4; N samples give
    N // 160 frames (Whisper drops the STFT's last frame). Per utterance, so the
    reflect padding at its end is its own (padding changes nothing).
    """

    def __init__(self, n_mels: int = 80):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        filters = mel_filter_bank(num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels,
                                  min_frequency=0.0, max_frequency=8000.0,
                                  sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        self.register_buffer("filters", torch.tensor(filters, dtype=torch.float32).T,
                             persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        frames = torch.div(lens, HOP, rounding_mode="floor")
        out = wav.new_zeros(wav.size(0), int(frames.max()), self.filters.size(0),
                            dtype=torch.float32)
        for i in range(wav.size(0)):
            n = int(frames[i])
            if n == 0:
                continue
            spec = torch.stft(wav[i, : int(lens[i])].float(), N_FFT, HOP, window=self.window,
                              return_complex=True)[:, :-1].abs() ** 2
            logmel = (self.filters @ spec).clamp(min=1e-10).log10()
            logmel = torch.maximum(logmel, logmel.max() - 8.0)
            out[i, :n] = ((logmel + 4.0) / 4.0).T
        return out, frames


class WhisperSpeechEncoder(torch.nn.Module):
    """Waveform -> Whisper encoder states, with masks; `output_size()` as ESPnet encoders."""

    def __init__(self, name_or_config, gradient_checkpointing: bool = False,
                 overrides: Optional[dict] = None):
        super().__init__()
        self.whisper = load_whisper_encoder(name_or_config, overrides)
        self.features = WhisperLogMel(self.whisper.config.num_mel_bins)
        self.gradient_checkpointing = bool(gradient_checkpointing)

    def output_size(self) -> int:
        return self.whisper.config.d_model

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        w = self.whisper
        feats, flens = self.features(wav, lens)
        dtype = w.conv1.weight.dtype
        x = feats.to(dtype).transpose(1, 2)  # (B, n_mels, T)
        valid = torch.arange(x.size(2), device=x.device)[None] < flens[:, None]
        x = torch.nn.functional.gelu(w.conv1(x.masked_fill(~valid[:, None], 0.0)))
        x = torch.nn.functional.gelu(w.conv2(x.masked_fill(~valid[:, None], 0.0)))
        out_lens = torch.div(flens - 1, 2, rounding_mode="floor") + 1
        x = x.transpose(1, 2)
        if x.size(1) > w.embed_positions.num_embeddings:
            raise ValueError(
                f"whisper: an utterance of {int(lens.max()) / SAMPLE_RATE:.1f} s is longer "
                f"than the encoder's {w.embed_positions.num_embeddings * 2 * HOP / SAMPLE_RATE:.0f}"
                f" s (max_source_positions {w.embed_positions.num_embeddings}); drop or "
                f"segment longer utterances in data preparation")
        x = x + w.embed_positions.weight[: x.size(1)].to(x.dtype)
        x = torch.nn.functional.dropout(x, p=w.dropout, training=self.training)
        keep = torch.arange(x.size(1), device=x.device)[None] < out_lens[:, None]
        mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~keep, torch.finfo(x.dtype).min)[:, None, None, :].expand(-1, 1, x.size(1), -1)
        for layer in w.layers:
            if self.training and w.layerdrop > 0 and torch.rand([]) < w.layerdrop:
                continue
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, mask, None, use_reentrant=False)[0]
            else:
                x = layer(x, mask, None)[0]
        x = w.layer_norm(x)
        return x.masked_fill(~keep[..., None], 0.0), out_lens
