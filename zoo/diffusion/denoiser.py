"""One wrapper turns any network into the denoiser D(x_t, t, **cond) -> x0_hat.

The network sees a unit-variance input: x_t * c_in with
c_in = 1 / sqrt(alpha^2 sigma_data^2 + sigma^2), the input preconditioning of EDM
(Karras et al. 2022, Table 1), which matters for VE where sigma reaches 50. With the `edm`
parameterisation the output is preconditioned too (x0_hat = c_skip x_t + c_out F, with
sigma_data in c_skip and c_out: zoo.diffusion.params). Training (`diffusion_loss`) and
sampling both go through this wrapper, so they agree.

`clip_x0` clamps x0_hat to [-clip, clip]: the "clipped" DDPM sampler of Ho et al.'s code
and diffusers' `clip_sample` / `clip_sample_range`. Those schedulers clip x0_hat and then
step with it; the DDPM posterior mean is written in (x_t, x0_hat), and DDIM with
`use_clipped_model_output=True` recomputes eps_hat from the clipped x0_hat, which is what
every solver here does, since each derives eps_hat from x0_hat. Clipping inside the
denoiser is therefore the same sampler for every solver. (diffusers' DDIMPipeline default,
use_clipped_model_output=False, pairs the clipped x0_hat with the unclipped eps_hat, which
no single D(x_t, t) -> x0_hat can express; it agrees with this whenever nothing is clipped.)
"""
import math

import torch
from torch import nn

from zoo.diffusion.params import Coeffs, check_parameterisation, to_x0
from zoo.diffusion.schedules import get_schedule


def broadcast_t(t, x: torch.Tensor) -> torch.Tensor:
    """t as a (batch,) tensor in x's dtype, from a float, a 0-d or a (batch,) tensor."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


class Denoiser(nn.Module):
    """D(x_t, t, **cond) = x0_hat for a network trained with `parameterisation`."""

    def __init__(self, net: nn.Module, schedule, parameterisation: str = "eps", sigma_data: float = 1.0,
                 clip_x0: float | None = None):
        super().__init__()
        self.net = net
        self.schedule = get_schedule(schedule)
        self.parameterisation = check_parameterisation(parameterisation)
        self.sigma_data = float(sigma_data)
        if clip_x0 is not None and not (clip_x0 > 0 and math.isfinite(clip_x0)):
            raise ValueError(f"clip_x0 must be a positive finite number or None, got {clip_x0!r}")
        self.clip_x0 = None if clip_x0 is None else float(clip_x0)

    def raw(self, x: torch.Tensor, t, **cond):
        """The network's own prediction and the coefficients at t."""
        t = broadcast_t(t, x)
        c = Coeffs.at(self.schedule, t, x, derivatives=self.parameterisation == "flow", sigma_data=self.sigma_data)
        c_in = torch.rsqrt(c.alpha**2 * self.sigma_data**2 + c.sigma**2)
        return self.net(x * c_in, t, **cond), c

    def forward(self, x: torch.Tensor, t, **cond) -> torch.Tensor:
        pred, c = self.raw(x, t, **cond)
        x0 = to_x0(pred, x, c, self.parameterisation)
        return x0 if self.clip_x0 is None else x0.clamp(-self.clip_x0, self.clip_x0)
