"""Task Characteristics Networks (task-aware MTL, seed 003; methods.md section 4).

A TCN maps a task to its task embedding te in R^{2d}, which FiLM turns into
(delta_gamma, beta) on every block (`espnet_mtl.modules.film`).

`explicit`: te = FFN(e), e the one-hot task id (paper eq. 1): one feed-forward
layer without bias [choice], s x 2d weights; 3 x 512 = 1,536 for d = 256,
the paper's "roughly 1500 new parameters". Its weights start at zero
[choice]: every task embedding is 0, FiLM the identity, so training starts
from the unmodulated network; each task's row then learns from that task's
examples only.

`implicit`: te from the source and target sequences of another example of
the same task (paper eqs. 2-5; `ImplicitTCN`), ~1M parameters at the paper's
size; at decoding, each task's stored average.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

#: the tasks of one model, in their one-hot order
TASKS = ("st", "asr", "mt")


def task_index(task: str) -> int:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    return TASKS.index(task)


class ExplicitTCN(torch.nn.Module):
    """One-hot task id -> Linear (no bias) -> te (2d)."""

    def __init__(self, size: int, tasks: Sequence[str] = TASKS):
        super().__init__()
        self.tasks = tuple(tasks)
        self.ffn = torch.nn.Linear(len(self.tasks), 2 * size, bias=False)
        self.espnet_initialization_fn()

    def espnet_initialization_fn(self) -> None:
        """Zero weights; ESPnet's `--init` calls this after re-initialising everything."""
        torch.nn.init.zeros_(self.ffn.weight)

    def forward(self, task_ids: torch.Tensor) -> torch.Tensor:
        """task_ids (B,) -> te (B, 2d)."""
        one_hot = torch.nn.functional.one_hot(task_ids, len(self.tasks)).to(
            self.ffn.weight.dtype)
        return self.ffn(one_hot)

    def inference_embedding(self, task: str) -> torch.Tensor:
        """te (1, 2d) of a task, for decoding (FiLM asks at every block and step: the
        weight column that forward's one-hot product selects, no product)."""
        return self.ffn.weight[:, task_index(task)][None]


class _CausalBlocks(torch.nn.Module):
    """Uni-directional Transformer encoder blocks (the paper's TE and TE_u)."""

    def __init__(self, size: int, heads: int, ffn: int, blocks: int, dropout: float):
        super().__init__()
        from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
        from espnet.nets.pytorch_backend.transformer.encoder_layer import EncoderLayer
        from espnet.nets.pytorch_backend.transformer.positionwise_feed_forward import (
            PositionwiseFeedForward,
        )

        self.blocks = torch.nn.ModuleList(
            EncoderLayer(size, MultiHeadedAttention(heads, size, dropout),
                         PositionwiseFeedForward(size, ffn, dropout), dropout)
            for _ in range(blocks))
        self.norm = torch.nn.LayerNorm(size)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), valid (B, T) -> (B, T, D); position t sees valid positions <= t."""
        t = x.size(1)
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=x.device))
        mask = causal[None] & valid[:, None, :]
        for block in self.blocks:
            x, _ = block(x, mask)
        return self.norm(x)


def _bi_attention(queries, keys, key_valid):
    """Dot-product attention of each query position over the valid keys (Luong et al.)."""
    scores = queries @ keys.transpose(1, 2)  # (B, Tq, Tk)
    scores = scores.masked_fill(~key_valid[:, None, :], float("-inf"))
    return scores.softmax(-1) @ keys


class ImplicitTCN(torch.nn.Module):
    """Source and target sequences of an example -> te (2d) (paper eqs. 2-5).

    Each side is embedded by the TCN's own front (speech: ESPnet's Conv2d 4x
    subsampling of the model's features; text: a token embedding per vocabulary),
    then: TE (uni-directional Transformer) on each side -> bi-directional
    dot-product attention (target-aware source, source-aware target) -> TE_u on
    each -> the last valid position of each (it has seen the whole sequence) ->
    FFN([x_s; y_s]) -> te. The FFN's output layer starts at zero [choice]: te = 0,
    FiLM the identity, at the start of training.

    Decoding has no target: it uses `stored[task]`, each task's embedding
    averaged over the training examples (exponential moving average, momentum
    `store_momentum`, updated in every training forward [choice]; a buffer, so
    it is checkpointed and averaged with the model).
    """

    def __init__(self, size: int, feat_size: int, src_vocab_size: int, tgt_vocab_size: int,
                 hidden: int = 256, heads: int = 4, ffn: int = 1024, blocks: int = 1,
                 dropout: float = 0.1, store_momentum: float = 0.01,
                 tasks: Sequence[str] = TASKS):
        super().__init__()
        from espnet.nets.pytorch_backend.transformer.subsampling import Conv2dSubsampling

        self.tasks = tuple(tasks)
        self.speech_front = Conv2dSubsampling(feat_size, hidden, dropout)
        self.src_embed = torch.nn.Embedding(src_vocab_size, hidden)
        self.tgt_embed = torch.nn.Embedding(tgt_vocab_size, hidden)
        self.represent_source = _CausalBlocks(hidden, heads, ffn, blocks, dropout)
        self.represent_target = _CausalBlocks(hidden, heads, ffn, blocks, dropout)
        self.summarize_source = _CausalBlocks(hidden, heads, ffn, blocks, dropout)
        self.summarize_target = _CausalBlocks(hidden, heads, ffn, blocks, dropout)
        self.ffn = torch.nn.Sequential(torch.nn.Linear(2 * hidden, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, 2 * size))
        self.store_momentum = float(store_momentum)
        self.register_buffer("stored", torch.zeros(len(self.tasks), 2 * size))
        self.register_buffer("stored_count", torch.zeros(len(self.tasks), dtype=torch.long))
        self.espnet_initialization_fn()

    def espnet_initialization_fn(self) -> None:
        """Zero output layer; ESPnet's `--init` calls this after re-initialising everything."""
        torch.nn.init.zeros_(self.ffn[-1].weight)
        torch.nn.init.zeros_(self.ffn[-1].bias)

    def embed_speech(self, feats: torch.Tensor, lens: torch.Tensor):
        valid = torch.arange(feats.size(1), device=feats.device)[None] < lens[:, None]
        x, _ = self.speech_front(feats.masked_fill(~valid[..., None], 0.0), None)
        # frames whose receptive field is all valid input: two kernel-3 stride-2 convs
        # (ESPnet's subsampled mask counts one more for some lengths, which sees padding)
        out_lens = (((lens - 1) // 2 - 1) // 2).clamp(min=1)
        return x, torch.arange(x.size(1), device=x.device)[None] < out_lens[:, None]

    @staticmethod
    def _valid(tokens: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return torch.arange(tokens.size(1), device=tokens.device)[None] < lens[:, None]

    def embed_tokens(self, tokens: torch.Tensor, lens: torch.Tensor, vocab: str):
        """Tokens of the source ("src": transcripts) or target ("tgt") vocabulary."""
        embed = self.src_embed if vocab == "src" else self.tgt_embed
        return embed(tokens.clamp(min=0)), self._valid(tokens, lens)

    def forward(self, src: torch.Tensor, src_valid: torch.Tensor, tgt: torch.Tensor,
                tgt_valid: torch.Tensor) -> torch.Tensor:
        """Embedded source (B, M, h) and target (B, N, h) with their valid masks -> (B, 2d)."""
        xs = self.represent_source(src, src_valid)
        ys = self.represent_target(tgt, tgt_valid)
        x_at = _bi_attention(xs, ys, tgt_valid)
        y_as = _bi_attention(ys, xs, src_valid)
        x_sum = self.summarize_source(x_at, src_valid)
        y_sum = self.summarize_target(y_as, tgt_valid)
        rows = torch.arange(src.size(0), device=src.device)
        last_x = x_sum[rows, src_valid.sum(1) - 1]
        last_y = y_sum[rows, tgt_valid.sum(1) - 1]
        return self.ffn(torch.cat([last_x, last_y], dim=-1))

    @torch.no_grad()
    def store(self, task: str, te: torch.Tensor) -> None:
        """Fold a batch's embeddings of one task into its stored (decoding) embedding."""
        i = task_index(task)
        mean = te.detach().float().mean(0)
        if int(self.stored_count[i]) == 0:
            self.stored[i] = mean
        else:
            self.stored[i].lerp_(mean, self.store_momentum)
        self.stored_count[i] += te.size(0)

    def inference_embedding(self, task: str) -> torch.Tensor:
        return self.stored[task_index(task)][None]


def same_task_partners(tasks: torch.Tensor, generator: Optional[torch.Generator] = None
                       ) -> torch.Tensor:
    """For each row, another row of the same task (a random derangement within each task;
    a task with one row in the batch pairs it with itself [choice])."""
    partner = torch.arange(tasks.numel(), device=tasks.device)
    for task in tasks.unique():
        rows = (tasks == task).nonzero(as_tuple=True)[0]
        n = rows.numel()
        if n < 2:
            continue
        # a random cyclic shift of a random order: nobody is their own partner
        order = rows[torch.randperm(n, generator=generator).to(rows.device)]
        shift = int(torch.randint(1, n, (1,), generator=generator))
        partner[order] = order.roll(shift)
    return partner
