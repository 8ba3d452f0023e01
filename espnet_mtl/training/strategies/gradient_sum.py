"""`gradient_sum`: one backward per objective, the update is the weighted sum of the gradients.

The same update as `static` (up to float rounding), at the cost of one
backward per objective: the reference for gradient-based strategies
(task-norm weighting, MoDo), and the template they follow: take the
per-objective gradients, combine them, hand the result back as a surrogate.
"""

from __future__ import annotations

from espnet_mtl.training import gradients
from espnet_mtl.training.strategies.base import Strategy


class GradientSum(Strategy):
    needs_gradients = True

    def combine(self, losses, model):
        params = [p for _, p in gradients.trainable(model)]
        weights = self.current_weights()
        # None losses stay in: under DDP every rank names the same objectives
        grads = gradients.objective_gradients(
            {n: l for n, l in losses.items() if n in weights}, params)
        return gradients.surrogate_loss(params, gradients.weighted_sum(grads, weights))
