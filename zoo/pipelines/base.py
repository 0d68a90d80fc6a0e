"""What every model family's pipeline shares: a denoiser under a schedule, the device it
runs on, the optimized step times its checkpoint may carry, and one sampler call that
places the networks (inside the GPU call on ZeroGPU, zoo.gpu) and counts network passes.

    class MyPipeline(Pipeline):
        def __call__(self, n, **sampling):
            out, passes = self.sample((n, *shape), **sampling)   # x0, nfe, seconds; passes of the net
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from zoo.diffusion.sampling import Counted, SampleOutput, sample_info
from zoo.gpu import place


class Pipeline:
    optimized_times = None  # {solver: {steps: times}} from config.json's sampling section (spacing "optimized")

    def __init__(self, denoiser, schedule: str, description: str = "", card: Optional[dict] = None):
        self.denoiser, self.schedule = denoiser, schedule  # schedule: a name, as checkpoints give it
        self.description, self.card = description, card or {}

    @property
    def device(self) -> torch.device:
        """Where the network is now (the CPU for an exact denoiser, which has none)."""
        params = self.denoiser.parameters() if isinstance(self.denoiser, torch.nn.Module) else iter(())
        return next(params, torch.empty(0)).device

    def sample(self, shape, guide: Optional[Callable] = None, extra: tuple = (), steps: int = 20,
               solver: str = "dpmpp_2m", spacing: str = "logsnr", seed: int = 0, callback=None,
               **options) -> tuple[SampleOutput, int]:
        """(the solver's output, network passes): the denoiser (wrapped by `guide`, which
        takes the counted network and returns the denoiser to solve with: guidance) on
        `shape`, with the networks (and the `extra` modules, a classifier say) placed on
        the run's device first."""
        device = place(self.denoiser, *extra)
        net = Counted(self.denoiser)
        d = guide(net) if guide is not None else net
        out = sample_info(d, shape, schedule=self.schedule, steps=steps, solver=solver, spacing=spacing, seed=seed,
                          callback=callback, device=device, optimized_times=self.optimized_times, **options)
        return out, net.calls
