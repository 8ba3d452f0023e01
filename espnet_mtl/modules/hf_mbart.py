"""mBART-50 through Hugging Face Transformers: loading, and its decoder as ESPnet's scorer.

ComSL's text model (seed 004): the mBART-50 encoder reads the adapter's speech
states (with the source-language token in front) or transcript tokens, the
decoder writes the target language. ESPnet's beam search (`Speech2Text`) scores
hypotheses with `model.decoder`; `MBartScorer` is that decoder: ESPnet's
hypotheses start with `sos`, which for this model is the target-language token
(mBART-50's forced first token), and the scorer puts mBART's decoder start token
(</s>) in front, so the decoder sees exactly mBART-50's
`[</s>, lang, y1, ...]` and ESPnet's output (yseq[1:-1]) is the text alone.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

import torch

from espnet.nets.scorer_interface import BatchScorerInterface


def load_mbart(name_or_config: Union[str, object]):
    """MBartForConditionalGeneration from a directory / hub name, or random from a config."""
    from transformers import MBartConfig, MBartForConditionalGeneration

    if isinstance(name_or_config, MBartConfig):
        return MBartForConditionalGeneration(name_or_config)
    try:
        return MBartForConditionalGeneration.from_pretrained(str(name_or_config))
    except (OSError, ValueError) as e:  # ValueError: not a directory nor a hub name
        raise OSError(f"mbart: cannot load an mBART model from {name_or_config!r} (a directory "
                      f"written by save_pretrained, or a hub name where the hub is "
                      f"reachable): {e}") from None


def key_padding(lens: torch.Tensor, length: int) -> torch.Tensor:
    """(B, length) long mask, 1 on valid positions (HF's attention_mask)."""
    return (torch.arange(length, device=lens.device)[None] < lens[:, None]).long()


def decode_logits(mbart, ys_in: torch.Tensor, ys_in_lens: torch.Tensor, enc: torch.Tensor,
                  enc_lens: Optional[torch.Tensor]) -> torch.Tensor:
    """Teacher-forced logits for ESPnet-style inputs ys_in = [lang, y1..yn] (padding
    any id; `ys_in_lens` = n + 1); position t predicts ys_out[t] (= y_{t+1}, then </s>)."""
    start = ys_in.new_full((ys_in.size(0), 1), mbart.config.decoder_start_token_id)
    ids = torch.cat([start, ys_in.masked_fill(ys_in < 0, mbart.config.pad_token_id)], dim=1)
    hidden = mbart.model.decoder(
        input_ids=ids, attention_mask=key_padding(ys_in_lens + 1, ids.size(1)),
        encoder_hidden_states=enc,
        encoder_attention_mask=None if enc_lens is None else key_padding(enc_lens, enc.size(1)),
        use_cache=False).last_hidden_state
    logits = mbart.lm_head(hidden[:, 1:]) + mbart.final_logits_bias.to(hidden.dtype)
    return logits


class MBartScorer(BatchScorerInterface):
    """ESPnet scorer over mBART's decoder (full recomputation per step, no cache)."""

    def __init__(self, mbart):
        self.mbart = mbart

    def init_state(self, x: torch.Tensor) -> Any:
        return None

    def score(self, y: torch.Tensor, state: Any, x: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        logp, _ = self.batch_score(y[None], [state], x[None])
        return logp[0], None

    def batch_score(self, ys: torch.Tensor, states: List[Any], xs: torch.Tensor
                    ) -> Tuple[torch.Tensor, List[Any]]:
        lens = ys.new_full((ys.size(0),), ys.size(1))
        logits = decode_logits(self.mbart, ys, lens, xs, None)[:, -1]
        return torch.log_softmax(logits.float(), dim=-1), [None] * ys.size(0)
