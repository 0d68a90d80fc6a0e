"""What a network predicts, and how each prediction maps to x0_hat and back.

With x_t = alpha x0 + sigma eps (alpha', sigma' the time derivatives):
  eps   : the noise eps                                  (Ho et al. 2020)
  x0    : the clean data x0
  v     : (alpha eps - sigma x0) / r, r = sqrt(alpha^2 + sigma^2)   (Salimans & Ho 2022;
          r = 1 for VP schedules, the normalisation extends it to VE and flow)
  flow  : the conditional velocity dx_t/dt = alpha' x0 + sigma' eps (Lipman et al. 2022;
          eps - x0 under the flow schedule, rectified flow)
  score : grad log p_t(x_t | x0) = -eps / sigma         (Song & Ermon 2019)
"""
from dataclasses import dataclass

import torch

PARAMETERISATIONS = ("eps", "x0", "v", "flow", "score")


@dataclass
class Coeffs:
    """alpha, sigma and their t-derivatives, shaped to broadcast against x."""

    alpha: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_sigma: torch.Tensor

    @classmethod
    def at(cls, schedule, t: torch.Tensor, like: torch.Tensor, derivatives: bool = True) -> "Coeffs":
        """Coefficients at times t (batch,). Derivatives (autograd) only when asked:
        only the flow parameterisation needs them."""
        t64 = t.to(torch.float64)
        alpha, sigma = schedule.alpha_sigma(t64)
        d_alpha, d_sigma = schedule.derivatives(t64) if derivatives else (alpha * 0, sigma * 0)
        shape = (-1,) + (1,) * (like.dim() - 1)
        cast = lambda v: v.to(like.dtype).reshape(shape)  # noqa: E731
        return cls(cast(alpha), cast(sigma), cast(d_alpha), cast(d_sigma))


def check_parameterisation(name: str) -> str:
    if name not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {list(PARAMETERISATIONS)}, got {name!r}")
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
    raise ValueError(f"parameterisation must be one of {list(PARAMETERISATIONS)}, got {param!r}")


def loss_weight(c: Coeffs, param: str):
    """Per-sample weight on the squared error: sigma^2 for score (Song & Ermon's
    lambda(sigma) = sigma^2, which makes all noise levels comparable), 1 otherwise."""
    return c.sigma**2 if param == "score" else torch.ones_like(c.sigma)
