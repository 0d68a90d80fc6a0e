"""Learning-rate schedule shared by the in-process toy trainer and trainers/common.py.

A pure function of the step (no scheduler state), so a resumed run continues exactly."""
import math

import torch
from zoo.checks import check_choice

LR_DECAYS = ("none", "cosine")


def learning_rate(base: float, step: int, total: int, warmup: int = 0, decay: str = "none") -> float:
    """lr at optimizer step `step` (0-based): linear warm-up over `warmup` steps, then
    constant or cosine decay to 0 at `total` (SGDR, Loshchilov & Hutter 2017)."""
    check_choice(decay, LR_DECAYS, "lr decay")
    scale = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if decay == "cosine":
        scale *= 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return base * scale


def ema_decay_at(decay: float, updates: int) -> float:
    """EMA decay with warm-up, min(decay, (1 + n) / (10 + n)) after n updates (as in
    TensorFlow's ExponentialMovingAverage with num_updates): a short run's EMA is not
    dominated by its first, untrained weights."""
    return min(decay, (1 + updates) / (10 + updates))


def ema_multi_avg_fn(decay: float):
    """multi_avg_fn for torch.optim.swa_utils.AveragedModel (parameters only): in-place EMA
    with warm-up."""
    @torch.no_grad()
    def update(ema_params, current_params, num_averaged):
        torch._foreach_lerp_(ema_params, current_params, 1.0 - ema_decay_at(decay, int(num_averaged)))
    return update
