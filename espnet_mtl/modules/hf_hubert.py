"""HuBERT through Hugging Face Transformers as an ESPnet encoder (`encoder: hf_hubert`).

The code serves every HF speech encoder of this layout (conv waveform encoder +
Transformer): a `ModelFamily` names the model classes; `hf_wav2vec2`
(`espnet_mtl.modules.hf_wav2vec2`) is the same encoder on wav2vec 2.0 / XLS-R.

IMTL's acoustic encoder (methods.md section 2): HuBERT-base -> Linear 768->512
-> dropout 0.1 [code], HuBERT frozen for the first 3000 updates [code].

Contract: `forward(wav (B, T), wav_lengths (B,))` -> `(out (B, T', D), out_lengths,
None)`, the raw 16 kHz waveform in, HuBERT's ~50 Hz frames out (20 ms, 320
samples per frame for the base conv stack); `out_lengths` are the conv feature
extractor's output lengths, and padded frames are zero. Padding is exact: in eval
a padded utterance gives the same valid frames as the utterance alone (see
`_MaskedGroupNorm` for the one place where HF's batched forward is not).

Training config (the waveform must reach the encoder unchanged):

    input_size: 1              # no frontend: ESPnet feeds (B, T) samples
    normalize: null            # ESPnet's default utterance_mvn would shift them
    specaug: null              # ESPnet's SpecAug wants (B, T, D) features; HuBERT
                               # masks its own frames (config mask_time_prob)
    encoder: hf_hubert
    encoder_conf:
        model_name_or_path: /path/to/hubert-base-ls960   # save_pretrained dir or hub name
        output_size: 512                 # Linear 768 -> 512 [code]
        dropout_rate: 0.1                # [code]
        freeze_updates: 3000             # [code]
        freeze_feature_extractor: true   # [choice]
        config_overrides: {layerdrop: 0.1, mask_time_prob: 0.05}   # HubertConfig fields

Options:
    model_name_or_path  a directory written by `HubertModel.save_pretrained` (or any
        HuBERT checkpoint directory: `HubertForCTC` ones load too), or a hub name where
        a hub is reachable. Decoding rebuilds the model from config.yaml, so the
        directory must exist there too (the fine-tuned weights then come from the
        ESPnet checkpoint).
    output_size         Linear projection of HuBERT's hidden size to this size (null: none).
    dropout_rate        dropout on the output (after the projection).
    freeze_updates      HuBERT (not the projection) gets no gradient for the first N
        training forwards, as fairseq's `freeze_finetune_updates` and ESPnet's own
        hubert encoder count them: N updates x accum_grad. The count is the
        `num_updates` buffer, saved in checkpoints, so a resumed run unfreezes on time.
        Under DDP the frozen parameters are unused: set `unused_parameters: true`
        (HuBERT's layerdrop needs it as well).
    freeze_feature_extractor  the CNN waveform encoder never trains [choice: fairseq's
        HuBERT/wav2vec 2.0 fine-tuning configs set feature_grad_mult 0.0, and HF's
        fine-tuning recipes call freeze_feature_encoder()].
    normalize_waveform  per-utterance zero mean, unit variance over the valid samples.
        null (auto): `do_normalize` of the checkpoint's preprocessor_config.json where it
        has one, otherwise true only for a layer-norm conv stack (feat_extract_norm
        "layer"): fairseq pre-trained HuBERT-base (group norm) on raw waveforms
        (`task.normalize: false`, "must be consistent with extractor") and the
        large/xlarge models (layer norm) on normalised ones.
    config_overrides    HubertConfig fields to change (dropouts, layerdrop, masking).

ESPnet's `--init` re-initialises every parameter of the model; this encoder then
reloads the pretrained weights (`reload_pretrained_parameters`, which ESPnet's
`initialize` calls, and `espnet_initialization_fn` for `init: chainer`, which does not).

`transformers` is imported only when this encoder is built.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, List, Optional, Tuple

import torch

from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

INSTALL_HINT = ("`bash tools/setup.sh` (transformers is pinned in tools/requirements.txt) "
                "or `pip install transformers`")
#: HF's Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm: population variance + 1e-7
NORM_EPS = 1e-7


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise ImportError(f"encoders hf_hubert and hf_wav2vec2 need the transformers package: "
                          f"run {INSTALL_HINT}") from e
    return transformers


def _is_local(name: str) -> bool:
    """A path rather than a hub id ('name' or 'org/name')."""
    return (os.path.exists(name) or os.path.isabs(name) or name.startswith((".", "~"))
            or name.count("/") > 1 or os.sep != "/" and os.sep in name)


def _hf_config(name: str, family: "ModelFamily"):
    """The checkpoint's config of the family's model type; errors name the path and what
    to pass."""
    transformers = _transformers()
    what = (f"a directory written by transformers' {family.model_class}.save_pretrained "
            f"(config.json with model_type '{family.model_type}' + model.safetensors), or a "
            f"hub name such as {family.example} where a hub is reachable")
    if _is_local(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"encoder_conf.model_name_or_path: {path} is not a directory; pass {what}")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ValueError(f"encoder_conf.model_name_or_path: {path} has no config.json, "
                             f"so it is not a Hugging Face checkpoint; pass {what}")
        model_type = json.loads(config_file.read_text()).get("model_type")
        if model_type != family.model_type:
            raise ValueError(f"encoder_conf.model_name_or_path: {config_file} has model_type "
                             f"{model_type!r}, not '{family.model_type}'; pass {what}")
        return getattr(transformers, family.config_class).from_pretrained(
            str(path), local_files_only=True)
    try:
        config = transformers.AutoConfig.from_pretrained(name)
    except OSError as e:
        raise OSError(f"encoder_conf.model_name_or_path: {name!r} is not a local directory "
                      f"and could not be loaded from the hub ({e}); pass {what}") from e
    if config.model_type != family.model_type:
        raise ValueError(f"encoder_conf.model_name_or_path: {name!r} is a "
                         f"{config.model_type!r} model, not '{family.model_type}'; pass {what}")
    return config


def _auto_normalize(name: str, config) -> bool:
    """`do_normalize` of the checkpoint's feature extractor, else the conv-norm rule."""
    if _is_local(name):
        file = Path(name).expanduser() / "preprocessor_config.json"
        if file.is_file():
            return bool(json.loads(file.read_text()).get("do_normalize", False))
    else:
        try:
            extractor = _transformers().AutoFeatureExtractor.from_pretrained(name)
            return bool(getattr(extractor, "do_normalize", False))
        except (OSError, ValueError):
            pass
    return config.feat_extract_norm == "layer"


class _MaskedGroupNorm(torch.nn.GroupNorm):
    """GroupNorm over the valid time steps only (same parameters as nn.GroupNorm).

    HuBERT-base's first conv layer normalises each channel over the whole time
    axis, padding included, so a padded utterance would see other statistics
    than alone (HF's docs warn of this for group-norm checkpoints). With
    `lengths` set (the valid steps of its input), mean and variance
    come from the valid steps; without, this is nn.GroupNorm.
    """

    lengths: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, T)
        if self.lengths is None:
            return super().forward(x)
        b, c, t = x.shape
        g = self.num_groups
        valid = (torch.arange(t, device=x.device)[None, :] < self.lengths[:, None].to(x.device))
        valid = valid[:, None, None, :].float()  # (B, 1, 1, T)
        # in float32 as nn.GroupNorm under autocast: fp16 sums over ~50k steps overflow
        xg = x.float().reshape(b, g, c // g, t)
        count = valid.sum(dim=-1, keepdim=True).clamp(min=1) * (c // g)  # (B, 1, 1, 1)
        mean = (xg * valid).sum(dim=(2, 3), keepdim=True) / count
        var = (((xg - mean) * valid) ** 2).sum(dim=(2, 3), keepdim=True) / count  # biased
        y = ((xg - mean) / torch.sqrt(var + self.eps)).reshape(b, c, t)
        if self.affine:
            y = y * self.weight[None, :, None] + self.bias[None, :, None]
        return y


@dataclass(frozen=True)
class ModelFamily:
    """What differs between the Hugging Face speech encoders this module wraps: they share
    the conv waveform encoder + Transformer layout (`feature_extractor.conv_layers`,
    `last_hidden_state`)."""

    choice: str  # the ESPnet encoder choice
    model_type: str  # config.json's model_type
    model_class: str  # transformers class names
    config_class: str
    attribute: str  # the submodule's name: its state_dict prefix in checkpoints
    label: str  # for messages
    example: str  # a hub name


HUBERT = ModelFamily("hf_hubert", "hubert", "HubertModel", "HubertConfig", "hubert", "HuBERT",
                     "facebook/hubert-base-ls960")


class HFHubertEncoder(AbsEncoder):
    """`transformers.HubertModel` on the raw waveform, + optional Linear + dropout."""

    family: ClassVar[ModelFamily] = HUBERT

    def __init__(
        self,
        input_size: int = 1,
        model_name_or_path: Optional[str] = None,
        output_size: Optional[int] = None,
        dropout_rate: float = 0.1,
        freeze_updates: int = 0,
        freeze_feature_extractor: bool = True,
        normalize_waveform: Optional[bool] = None,
        config_overrides: Optional[dict] = None,
    ):
        super().__init__()
        if input_size != 1:
            raise ValueError(
                f"encoder {self.family.choice} reads the raw waveform, but its input size is "
                f"{input_size} "
                "(a frontend's feature size?): set `input_size: 1` (no frontend), "
                "`normalize: null` and `specaug: null` in the training config")
        if not model_name_or_path:
            raise ValueError(f"encoder {self.family.choice} needs encoder_conf.model_name_or_path:"
                             f" a directory written by {self.family.model_class}.save_pretrained"
                             " or a hub name")
        if freeze_updates < 0:
            raise ValueError(f"encoder_conf.freeze_updates must be >= 0, got {freeze_updates}")
        self.model_name_or_path = str(model_name_or_path)
        self.config_overrides = dict(config_overrides or {})
        self.freeze_updates = int(freeze_updates)
        self.freeze_feature_extractor = bool(freeze_feature_extractor)

        setattr(self, self.family.attribute, self._load_pretrained())
        config = self.backbone.config
        self.conv_kernel = list(config.conv_kernel)
        self.conv_stride = list(config.conv_stride)
        self.normalize_waveform = (_auto_normalize(self.model_name_or_path, config)
                                   if normalize_waveform is None else bool(normalize_waveform))
        self._group_norm_at = self._mask_group_norms()
        if self.freeze_feature_extractor:
            extractor = self.backbone.feature_extractor
            for p in extractor.parameters():
                p.requires_grad_(False)
            extractor._requires_grad = False  # HF: no requires_grad on its input either

        hidden = config.hidden_size
        self.proj = torch.nn.Linear(hidden, output_size) if output_size else None
        self._output_size = int(output_size) if output_size else hidden
        self.dropout = torch.nn.Dropout(dropout_rate)
        #: training forwards so far (checkpointed: a resumed run unfreezes on time)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    # -- loading ---------------------------------------------------------------
    @property
    def backbone(self) -> torch.nn.Module:
        """The pretrained model (`self.hubert` for HuBERT: the checkpoints' key prefix)."""
        return getattr(self, self.family.attribute)

    def _load_pretrained(self):
        transformers = _transformers()
        name = self.model_name_or_path
        family = self.family
        config = _hf_config(name, family)
        unknown = sorted(k for k in self.config_overrides if not hasattr(config, k))
        if unknown:
            raise ValueError(f"encoder_conf.config_overrides: {unknown} are not "
                             f"{family.config_class} fields")
        for key, value in self.config_overrides.items():
            setattr(config, key, value)
        local = _is_local(name)
        source = str(Path(name).expanduser()) if local else name
        try:
            model = getattr(transformers, family.model_class).from_pretrained(
                source, config=config, local_files_only=local)
        except OSError as e:
            raise OSError(f"encoder_conf.model_name_or_path: could not load {family.label} "
                          f"weights from {source} ({e}); pass a directory written by "
                          f"{family.model_class}.save_pretrained") from e
        return model.float()

    def reload_pretrained_parameters(self):
        """Put the pretrained weights back (after ESPnet's `--init`)."""
        self.backbone.load_state_dict(self._load_pretrained().state_dict())
        logging.info(f"{self.family.choice}: pretrained weights reloaded from "
                     f"{self.model_name_or_path}")

    # `init: chainer` calls this on every module but not reload_pretrained_parameters
    espnet_initialization_fn = reload_pretrained_parameters

    def _mask_group_norms(self) -> List[Tuple[int, str]]:
        """Swap the conv stack's GroupNorms for `_MaskedGroupNorm` (same state_dict keys);
        returns (conv layer index, attribute name) of each (looked up at each forward, so
        replicas and copies of the model find their own)."""
        layers = getattr(self.backbone.feature_extractor, "conv_layers", None)
        found = []
        for i, layer in enumerate(layers if layers is not None else ()):
            for child_name, child in list(layer.named_children()):
                if isinstance(child, torch.nn.GroupNorm):
                    masked = _MaskedGroupNorm(child.num_groups, child.num_channels, child.eps,
                                              child.affine)
                    masked.load_state_dict(child.state_dict())
                    setattr(layer, child_name, masked)
                    found.append((i, child_name))
        if self.backbone.config.feat_extract_norm == "group" and not found:
            raise RuntimeError(
                f"{self.family.choice}: no GroupNorm found in "
                f"{self.family.model_class}.feature_extractor.conv_layers; "
                "this transformers version is not the one pinned in tools/requirements.txt")
        return found

    # -- shapes ----------------------------------------------------------------
    def output_size(self) -> int:
        return self._output_size

    def conv_lengths(self, lengths: torch.Tensor) -> List[torch.Tensor]:
        """Valid steps after each conv layer (no padding: floor((L - k) / s) + 1)."""
        out = []
        for k, s in zip(self.conv_kernel, self.conv_stride):
            lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
            out.append(lengths)
        return out

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.conv_lengths(lengths)[-1]

    @property
    def frozen(self) -> bool:
        """Whether the next training forward leaves the pretrained model without gradient."""
        return int(self.num_updates) < self.freeze_updates

    # -- forward ---------------------------------------------------------------
    def _normalize(self, wav: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor):
        n = lengths.to(wav.dtype)[:, None]
        mean = wav.sum(dim=1, keepdim=True) / n  # padding is zero here
        var = (((wav - mean) * valid) ** 2).sum(dim=1, keepdim=True) / n
        return ((wav - mean) / torch.sqrt(var + NORM_EPS)).masked_fill(~valid, 0.0)

    def forward(
        self,
        xs_pad: torch.Tensor,
        ilens: torch.Tensor,
        prev_states: torch.Tensor = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        if xs_pad.dim() == 3 and xs_pad.size(-1) == 1:
            xs_pad = xs_pad.squeeze(-1)
        if xs_pad.dim() != 2:
            raise ValueError(
                f"encoder {self.family.choice} takes the waveform (batch, samples), got shape "
                f"{tuple(xs_pad.shape)}: set `input_size: 1` (no frontend) in the config")
        ilens = ilens.to(xs_pad.device)
        wav = xs_pad[:, : int(ilens.max())].float()
        valid = torch.arange(wav.size(1), device=wav.device)[None, :] < ilens[:, None]
        wav = wav.masked_fill(~valid, 0.0)
        if self.normalize_waveform:
            wav = self._normalize(wav, valid, ilens)
        lengths = self.conv_lengths(ilens)
        olens = lengths[-1]
        if int(olens.min()) < 1:
            short = int(ilens[olens < 1].min())
            limit = 1  # the receptive field of one output frame
            for k, s in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
                limit = (limit - 1) * s + k
            raise TooShortUttError(f"{self.family.choice}: an utterance of {short} samples is "
                                   f"shorter than {self.family.label}'s first frame ({limit} "
                                   "samples)", short, limit)

        frozen = False
        if self.training:
            frozen = self.frozen
            self.num_updates.add_(1)  # in place: kept by DataParallel's device-0 replica
            if int(self.num_updates) == self.freeze_updates + 1 and self.freeze_updates > 0:
                logging.info(f"{self.family.choice}: {self.family.label} trains from now on (after "
                             f"{self.freeze_updates} frozen forwards)")
        norms = [(i, getattr(self.backbone.feature_extractor.conv_layers[i], name))
                 for i, name in self._group_norm_at]
        for i, norm in norms:  # a norm of layer i sees that conv's output
            norm.lengths = lengths[i]
        try:
            with torch.no_grad() if frozen else contextlib.nullcontext():
                hidden = self.backbone(input_values=wav, attention_mask=valid.long()
                                     ).last_hidden_state
        finally:
            for _, norm in norms:
                norm.lengths = None
        hidden = hidden[:, : int(olens.max())]
        if self.proj is not None:
            hidden = self.proj(hidden)
        hidden = self.dropout(hidden)
        frames = torch.arange(hidden.size(1), device=hidden.device)[None, :] < olens[:, None]
        return hidden.masked_fill(~frames[..., None], 0.0), olens, None
