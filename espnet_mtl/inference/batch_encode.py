"""Encoding several utterances as one padded batch, each getting what it gets alone.

Three parts of an ESPnet speech encoder see padding in a batch:
- the STFT frontend pads a waveform's end by reflection when it is alone and sees
  the batch's zeros when it is padded: `encode_batch` runs the frontend on each
  utterance alone (the cheap part) and the rest of the encoder on the batch;
- the Conformer convolution module convolves over the padded frames (ESPnet masks
  attention, not the convolution): while encoding, the input of each depthwise
  convolution is zeroed on padded frames, which is what the convolution's own zero
  padding gives an utterance alone.
- the subsampling (conv2d*) derives its output mask by slicing the input mask,
  which gives an utterance shorter than the batch one frame more than it has alone
  (a frame computed from padding, then attended to): while encoding, the mask is
  recomputed from each utterance's length through the subsampling convolutions.
Attention is then masked exactly, and the subsampling convolutions have no padding,
so valid outputs never read padded input. Valid frames are then those of the
one-utterance encoder up to floating-point summation order.

Models with another acoustic encoder are encoded one utterance at a time
(`encode_each`): their padding behaviour is not checked here.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Sequence

import torch

from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

#: acoustic encoders whose valid frames do not depend on padding (with the masking here)
PADDING_EXACT_ENCODERS = (TransformerEncoder, ConformerEncoder)


def _as_batch(model, waves: Sequence) -> list:
    device = next(model.parameters()).device
    return [torch.as_tensor(w, dtype=torch.float32, device=device) for w in waves]


def _padded(outs: list) -> tuple:
    lens = torch.tensor([o.size(0) for o in outs], device=outs[0].device)
    return torch.nn.utils.rnn.pad_sequence(outs, batch_first=True), lens


@torch.no_grad()
def encode_each(model, waves: Sequence, encode: Callable | None = None) -> tuple:
    """Each waveform through `encode` (default `model.encode`; e.g. a path's encoder
    reading the model's modules) alone, the outputs padded into a batch."""
    encode = encode or model.encode
    outs = []
    for w in _as_batch(model, waves):
        enc, _ = encode(w[None], torch.tensor([w.size(0)], device=w.device))
        outs.append(enc[0])
    return _padded(outs)


def batch_encodable(model) -> bool:
    """Whether `encode_batch` gives this model's one-utterance encodings."""
    return isinstance(getattr(model, "encoder", None), PADDING_EXACT_ENCODERS) and \
        hasattr(model, "frontend")


class _EachUtterance(torch.nn.Module):
    """A frontend run on each utterance of the batch alone, its features padded."""

    def __init__(self, frontend: torch.nn.Module):
        super().__init__()
        self.frontend = frontend

    def forward(self, speech: torch.Tensor, lengths: torch.Tensor):
        feats = [self.frontend(speech[i: i + 1, :n], lengths[i: i + 1])[0][0]
                 for i, n in enumerate(lengths.tolist())]
        return _padded(feats)


def _exact_subsampling_mask(encoder) -> list:
    embed = getattr(encoder, "embed", None)
    convs = [m for m in embed.modules() if isinstance(m, torch.nn.Conv2d)] if embed else []
    if not convs:
        return []

    def exact_mask(_, args, output):
        if len(args) < 2 or args[1] is None:
            return output
        lens = args[1].sum(-1).squeeze(1)  # input lengths, (B,)
        for c in convs:  # the time axis of each convolution, as alone
            lens = (lens + 2 * c.padding[0] - c.dilation[0] * (c.kernel_size[0] - 1) - 1) \
                // c.stride[0] + 1
        xs, mask = output
        valid = torch.arange(mask.size(-1), device=mask.device)[None, :] < lens[:, None]
        return xs, valid[:, None, :]

    return [embed.register_forward_hook(exact_mask)]


def _zero_padded_frames_before_depthwise_convs(encoder) -> list:
    handles = []
    for layer in encoder.modules():
        conv = getattr(getattr(layer, "conv_module", None), "depthwise_conv", None)
        if conv is None:
            continue
        masks = {}

        def keep_mask(_, args, kwargs, masks=masks):
            masks["valid"] = args[1] if len(args) > 1 else kwargs["mask"]  # (B, 1, T)

        def zero_padding(_, args, masks=masks):
            return (args[0].masked_fill(~masks["valid"], 0.0),) + args[1:]

        handles.append(layer.register_forward_pre_hook(keep_mask, with_kwargs=True))
        handles.append(conv.register_forward_pre_hook(zero_padding))
    return handles


@contextmanager
def _padding_exact(model):
    frontend = model.frontend
    handles = _exact_subsampling_mask(model.encoder) + \
        _zero_padded_frames_before_depthwise_convs(model.encoder)
    try:
        if frontend is not None:
            model.frontend = _EachUtterance(frontend)
        yield
    finally:
        for h in handles:
            h.remove()
        if frontend is not None:
            model.frontend = frontend


@torch.no_grad()
def encode_batch(model, waves: Sequence, encode: Callable | None = None) -> tuple:
    """`encode_each`'s result from one batched `encode` (default `model.encode`) where
    the model's encoder allows (`batch_encodable`), else `encode_each`."""
    if not batch_encodable(model):
        return encode_each(model, waves, encode)
    speech, lens = _padded(_as_batch(model, waves))
    with _padding_exact(model):
        enc, enc_lens = (encode or model.encode)(speech, lens)
    return enc, enc_lens
