"""Learning-rate schedulers added to ESPnet's `--scheduler` choices.

`warmuppolylr`: linear warmup to each parameter group's lr over `warmup_steps`,
then polynomial decay to `end_lr` at `total_steps` (and `end_lr` after), as
fairseq's `polynomial_decay` that ComSL's recipe uses [code: warmup 5000, end lr
1e-7, power 1]. Stepped per update (ESPnet's AbsBatchStepScheduler), per group,
so it composes with `--lr_groups`.
"""

from __future__ import annotations

from torch.optim.lr_scheduler import _LRScheduler

from espnet2.schedulers.abs_scheduler import AbsBatchStepScheduler


class WarmupPolynomialLR(_LRScheduler, AbsBatchStepScheduler):
    def __init__(self, optimizer, warmup_steps: int = 5000, total_steps: int = 100000,
                 end_lr: float = 1e-7, power: float = 1.0, last_epoch: int = -1):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"scheduler_conf: need 0 <= warmup_steps < total_steps, got "
                             f"{warmup_steps} and {total_steps}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.end_lr, self.power = float(end_lr), float(power)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, step: int) -> float:
        if self.warmup_steps > 0 and step <= self.warmup_steps:
            return base_lr * step / self.warmup_steps
        if step >= self.total_steps:
            return self.end_lr
        left = 1.0 - (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return (base_lr - self.end_lr) * left ** self.power + self.end_lr

    def get_lr(self):
        step = self.last_epoch + 1
        return [self.lr_at(lr, step) for lr in self.base_lrs]
