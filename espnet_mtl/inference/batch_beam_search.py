"""Beam search over several utterances at once (`--batch_size N` in decoding).

ESPnet's `BatchBeamSearch` batches the beam of one utterance; its `st_inference`
refuses `batch_size > 1`. This search runs the beams of N utterances in one
decoder call per step, with the encoder padding masked, and keeps ESPnet's
semantics for each utterance: the decoder's log-probabilities plus `penalty` per
token (ESPnet's length bonus), the `beam_size` best expansions of all its running
hypotheses (ESPnet's "full" pre-beam), hypotheses ending in <eos> set aside, <eos>
appended at `maxlen` (the encoder length for maxlenratio 0), ESPnet's end
detection (`end_detect`) for maxlenratio 0, and the n-best sorted by score
(divided by the number of tokens after <sos> with `normalize_length`, as ESPnet).

It needs ESPnet's incremental attention decoders (`forward_one_step` with a
memory mask and a cache: transformer and its variants); other decoders (ComSL's
mBART scorer) and CTC prefix scoring are refused with a clear error: decode them
with batch size 1.

The utterances are encoded as one padded batch where the encoder allows it
(`batch_encode.encode_batch`: each gets what it gets alone), and the decoder's
source-attention projections are computed once per utterance
(`decoder_steps.memory_projected_once`). The search itself only adds masked
positions, so the hypotheses are those of ESPnet's search up to floating-point
summation order (batched matrix products): a near-tie could resolve differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch

from espnet.nets.e2e_asr_common import end_detect
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask

from espnet_mtl.inference.decoder_steps import memory_projected_once


@dataclass
class BatchHypothesis:
    """One finished hypothesis (ESPnet's Hypothesis fields that decoding writes)."""

    yseq: torch.Tensor
    score: torch.Tensor  # a scalar, as ESPnet's (decoding writes str(score))


class UtteranceBatchBeamSearch:
    def __init__(self, decoder, sos: int, eos: int, beam_size: int, penalty: float = 0.0,
                 nbest: int = 1, normalize_length: bool = False):
        if not hasattr(decoder, "forward_one_step"):
            raise ValueError(f"batched decoding needs an incremental attention decoder "
                             f"(ESPnet's transformer decoders); {type(decoder).__name__} has "
                             f"none: decode with --batch_size 1")
        self.decoder, self.sos, self.eos = decoder, sos, eos
        self.beam_size, self.penalty, self.nbest = beam_size, penalty, nbest
        self.normalize_length = normalize_length

    @torch.no_grad()
    def __call__(self, enc: torch.Tensor, enc_lens: torch.Tensor, maxlenratio: float = 0.0,
                 minlenratio: float = 0.0) -> List[List[BatchHypothesis]]:
        n = enc.size(0)
        lens = enc_lens.tolist()
        if maxlenratio == 0:
            maxlen = lens
        elif maxlenratio < 0:
            maxlen = [-int(maxlenratio)] * n
        else:
            maxlen = [max(1, int(maxlenratio * t)) for t in lens]
        minlen = [int(minlenratio * t) for t in lens]
        memory_mask = (~make_pad_mask(enc_lens, maxlen=enc.size(1)))[:, None, :].to(enc.device)
        with memory_projected_once(self.decoder, enc) as memory_rows:
            return self._search(enc, memory_mask, memory_rows, maxlen, minlen, maxlenratio)

    def _search(self, enc, memory_mask, memory_rows, maxlen, minlen, maxlenratio):
        n = enc.size(0)
        maxlen_t = torch.tensor(maxlen, device=enc.device)
        # running rows, grouped by utterance in order
        row_utt = torch.arange(n, device=enc.device)
        ys = torch.full((n, 1), self.sos, dtype=torch.long, device=enc.device)
        scores = torch.zeros(n, device=enc.device)
        cache = None
        ended: List[list] = [[] for _ in range(n)]
        for i in range(max(maxlen)):
            tgt_mask = subsequent_mask(ys.size(1), device=enc.device).unsqueeze(0)
            if memory_rows is not None:
                memory_rows.set(row_utt)
            logp, cache = self.decoder.forward_one_step(
                ys, tgt_mask, enc if memory_rows is not None else enc[row_utt],
                memory_mask[row_utt], cache=cache)
            # ESPnet's order of additions (same rounding): decoder, length bonus, then the
            # hypothesis score
            weighted = (logp + self.penalty) + scores[:, None]
            if i < max(minlen):
                short = torch.tensor([i < m for m in minlen], device=enc.device)[row_utt]
                weighted[short, self.eos] = float("-inf")
            # the beam_size best expansions of each utterance's running hypotheses: its rows
            # (contiguous) in a -inf padded (utterances, beam x vocab) table, one topk
            utts, counts = torch.unique_consecutive(row_utt, return_counts=True)
            first = torch.cumsum(counts, 0) - counts
            slot = torch.arange(len(row_utt), device=enc.device) - torch.repeat_interleave(
                first, counts)
            group = torch.repeat_interleave(torch.arange(len(utts), device=enc.device), counts)
            vocab = weighted.size(1)
            table = weighted.new_full((len(utts), int(counts.max()), vocab), float("-inf"))
            table[group, slot] = weighted
            k = min(self.beam_size, int(counts.max()) * vocab)
            top = table.view(len(utts), -1).topk(k, dim=1)
            valid = top.values > float("-inf")  # fewer candidates than the beam (no case here)
            parents = (first[:, None] + top.indices // vocab)[valid]
            tokens = (top.indices % vocab)[valid]
            scores = top.values[valid]
            row_utt = row_utt[parents]
            ys = torch.cat([ys[parents], tokens[:, None]], dim=1)
            cache = [c[parents] for c in cache]
            # set aside the hypotheses ending in <eos> (all of them at an utterance's maxlen)
            at_maxlen = maxlen_t[row_utt] - 1 == i
            ends = (tokens == self.eos) | at_maxlen
            keep = ~ends
            if bool(ends.any()):
                ys_cpu, scores_cpu = ys.cpu(), scores.cpu()
                for r in ends.nonzero(as_tuple=True)[0].tolist():
                    u = int(row_utt[r])
                    # as ESPnet, <eos> is appended to every hypothesis at maxlen
                    yseq = torch.cat([ys_cpu[r], ys_cpu.new_tensor([self.eos])]) \
                        if bool(at_maxlen[r]) else ys_cpu[r]
                    ended[u].append(BatchHypothesis(yseq, scores_cpu[r]))
            # utterances done: at their maxlen, or ESPnet's end detection (maxlenratio 0)
            for u in torch.unique_consecutive(row_utt).tolist():
                if i >= maxlen[u] - 1 or (maxlenratio == 0.0 and end_detect(
                        [{"yseq": h.yseq, "score": float(h.score)} for h in ended[u]], i)):
                    keep &= row_utt != u
            if not bool(keep.any()):
                break
            row_utt, ys, scores = row_utt[keep], ys[keep], scores[keep]
            cache = [c[keep] for c in cache]
        out = []
        for hyps in ended:
            key = (lambda h: h.score / (len(h.yseq) - 1)) if self.normalize_length else \
                (lambda h: h.score)
            out.append(sorted(hyps, key=key, reverse=True)[: self.nbest])
        return out
