"""What a network predicts, and how each prediction maps to x0_hat and back.

With x_t = alpha x0 + sigma eps (alpha', sigma' the time derivatives):
  eps   : the noise eps                                  (Ho et al. 2020)
  x0    : the clean data x0
  v     : (alpha eps - sigma x0) / r, r = sqrt(alpha^2 + sigma^2)   (Salimans & Ho 2022;
          r = 1 for VP schedules, the normalisation extends it to VE and flow)
  flow  : the conditional velocity dx_t/dt = alpha' x0 + sigma' eps (Lipman et al. 2022;
          eps - x0 under the flow schedule, rectified flow)
  score : grad log p_t(x_t | x0) = -eps / sigma         (Song & Ermon 2019)
  edm   : the preconditioned output F of EDM (Karras et al. 2022, Sec. 5 and Table 1),
          x0_hat = c_skip x_t + c_out F, in this continuous-time form (see `edm_coeffs`)

EDM in terms of alpha and sigma. EDM writes x~ = x0 + s n with s = sigma / alpha, so
x~ = x_t / alpha, and D(x~; s) = c_skip(s) x~ + c_out(s) F(c_in(s) x~, c_noise(s)) with
c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2)
(sd = sigma_data). Substituting s = sigma / alpha and x~ = x_t / alpha, with
r = sqrt(alpha^2 sd^2 + sigma^2):
  x0_hat = (alpha sd^2 / r^2) x_t + (sigma sd / r) F,    net input x_t / r,
  target F* = (x0 - c_skip x_t) / c_out = (sigma x0 - alpha sd^2 eps) / (sd r),
and EDM's loss weight lambda(s) = (s^2 + sd^2) / (s sd)^2 = 1 / c_out^2 on |D - x0|^2 is
weight 1 on |F - F*|^2 (its point: unit-variance target and unit weight at every noise
level). The net input x_t / r is the Denoiser's c_in, shared by every parameterisation.
On a VP schedule with sd = 1, r = 1 and F* = sigma x0 - alpha eps = -v: the v objective
is EDM's preconditioning with sigma_data = 1.
"""
from dataclasses import dataclass

import torch
from zoo.checks import check_choice

PARAMETERISATIONS = ("eps", "x0", "v", "flow", "score", "edm")


@dataclass
class Coeffs:
    """alpha, sigma and their t-derivatives, shaped to broadcast against x, and the data
    scale sigma_data (only the edm parameterisation reads it)."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor
    sigma_data: float = 1.0

    @classmethod
    def at(cls, schedule, t: torch.Tensor, like: torch.Tensor, derivatives: bool = True,
           sigma_data: float = 1.0) -> "Coeffs":
        """Coefficients at times t (batch,). Derivatives (autograd) only when asked:
        only the flow parameterisation needs them."""
        t64 = t.to(torch.float64)
        alpha, sigma = schedule.alpha_sigma(t64)
        d_alpha, d_sigma = schedule.derivatives(t64) if derivatives else (alpha * 0, sigma * 0)
        shape = (-1,) + (1,) * (like.dim() - 1)
        cast = lambda v: v.to(like.dtype).reshape(shape)
        return cls(cast(alpha), cast(sigma), cast(d_alpha), cast(d_sigma), float(sigma_data))


def edm_coeffs(c: Coeffs) -> tuple:
    """(c_skip, c_out, r) of EDM's preconditioning in alpha / sigma form (module docstring):
    c_skip = alpha sd^2 / r^2, c_out = sigma sd / r, r = sqrt(alpha^2 sd^2 + sigma^2)."""
    sd = c.sigma_data
    r = torch.sqrt(c.alpha**2 * sd**2 + c.sigma**2)
    return c.alpha * sd**2 / r**2, c.sigma * sd / r, r


def check_parameterisation(name: str) -> str:
    check_choice(name, PARAMETERISATIONS, "parameterisation")
    return name


def to_x0(pred, x, c: Coeffs, param: str):
    """x0_hat from a network prediction `pred` at state x."""
    a, s = c.alpha, c.sigma
    if param == "eps":
        return (x - s * pred) / a
    if param == "x0":
        return pred
    if param == "v":
        r = torch.sqrt(a**2 + s**2)
        return (a * x - s * r * pred) / r**2
    if param == "flow":
        return (c.d_sigma * x - s * pred) / (c.d_sigma * a - s * c.d_alpha)
    if param == "score":
        return (x + s**2 * pred) / a
    if param == "edm":
        c_skip, c_out, _ = edm_coeffs(c)
        return c_skip * x + c_out * pred
    raise ValueError(f"parameterisation must be one of {list(PARAMETERISATIONS)}, got {param!r}")


def from_x0(x0, x, c: Coeffs, param: str):
    """The prediction that `to_x0` maps to x0 (inverse of to_x0)."""
    a, s = c.alpha, c.sigma
    eps = (x - a * x0) / s
    return target(x0, eps, c, param)


def target(x0, eps, c: Coeffs, param: str):
    """Regression target for each parameterisation given the clean data and the noise."""
    a, s = c.alpha, c.sigma
    if param == "eps":
        return eps
    if param == "x0":
        return x0
    if param == "v":
        return (a * eps - s * x0) / torch.sqrt(a**2 + s**2)
    if param == "flow":
        return c.d_alpha * x0 + c.d_sigma * eps
    if param == "score":
        return -eps / s
    if param == "edm":
        _, _, r = edm_coeffs(c)
        return (s * x0 - a * c.sigma_data**2 * eps) / (c.sigma_data * r)
    raise ValueError(f"parameterisation must be one of {list(PARAMETERISATIONS)}, got {param!r}")


def loss_weight(c: Coeffs, param: str):
    """Per-sample weight on the squared error: sigma^2 for score (Song & Ermon's
    lambda(sigma) = sigma^2, which makes all noise levels comparable), 1 otherwise (for edm
    that is EDM's lambda = 1 / c_out^2 on the x0 error, see the module docstring)."""
    return c.sigma**2 if param == "score" else torch.ones_like(c.sigma)
