"""Samplers: one function each, one signature (after k-diffusion's sampling.py):

    solver(denoiser, x, grid, noise, callback, **options) -> x0

`denoiser(x, t)` returns x0_hat; `x` starts at t_max; `grid` (spacing.Grid) holds the
times and (alpha, sigma) of every step, ending at the clean point (alpha 1, sigma 0);
`noise` (noise.NoiseSource) gives per-sample-seeded N(0, I); `callback(step, t, x_t,
x0_hat)` sees every step. All formulas hold for any schedule x_t = alpha x0 + sigma eps.
"""
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

ETA_RANGE = (0.0, 1.0)  # DDIM's eta: 0 deterministic, 1 ancestral
SNR_RANGE = (0.0, 1.0)  # pc's Langevin signal-to-noise ratio: 0 excluded


def _eval(denoiser, x, t: float):
    return denoiser(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))


def _call(denoiser, x, grid, i, callback):
    """One denoiser evaluation at grid step i, reported to the callback."""
    t = float(grid.t[i])
    x0 = _eval(denoiser, x, t)
    if callback is not None:
        callback(i, t, x, x0)
    return x0


def _coeffs(grid, i):
    return float(grid.alpha[i]), float(grid.sigma[i])


def posterior_variance(a_t, s_t, a_s, s_s):
    """Var of q(x_s | x_t, x0) for s < t: sigma_{t|s}^2 sigma_s^2 / sigma_t^2 with
    sigma_{t|s}^2 = sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2 (Kingma et al. 2021, VDM)."""
    s_ts2 = max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0)
    return s_ts2 * s_s**2 / s_t**2


def ddpm(denoiser, x, grid, noise, callback=None):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2) in posterior-mean form (Eq. 7):
    x_s = mu~(x_t, x0_hat) + sqrt(beta~) z, with the posterior variance beta~."""
    for i in range(grid.steps):
        x0 = _call(denoiser, x, grid, i, callback)
        (a_t, s_t), (a_s, s_s) = _coeffs(grid, i), _coeffs(grid, i + 1)
        if s_s == 0:
            return x0
        a_ts = a_t / a_s
        s_ts2 = s_t**2 - a_ts**2 * s_s**2
        mean = (a_ts * s_s**2 / s_t**2) * x + (a_s * s_ts2 / s_t**2) * x0
        x = mean + math.sqrt(posterior_variance(a_t, s_t, a_s, s_s)) * noise.normal()
    return x


def ddim(denoiser, x, grid, noise, callback=None, eta=0.0):
    """DDIM (Song, Meng & Ermon 2021, Eq. 12): x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2)
    eps_hat + c z, with c = eta * sqrt(posterior variance). eta = 0 is deterministic;
    eta = 1 is DDPM's ancestral sampler."""
    if not ETA_RANGE[0] <= eta <= ETA_RANGE[1] or math.isnan(eta):
        raise ValueError(f"eta must be in [{ETA_RANGE[0]:g}, {ETA_RANGE[1]:g}], got {eta!r}")
    for i in range(grid.steps):
        x0 = _call(denoiser, x, grid, i, callback)
        (a_t, s_t), (a_s, s_s) = _coeffs(grid, i), _coeffs(grid, i + 1)
        if s_s == 0:
            return x0
        eps = (x - a_t * x0) / s_t
        c = eta * math.sqrt(posterior_variance(a_t, s_t, a_s, s_s))
        x = a_s * x0 + math.sqrt(max(s_s**2 - c**2, 0.0)) * eps
        if c > 0:
            x = x + c * noise.normal()
    return x


def _velocity(x, x0, a, s, da, ds):
    """Probability-flow ODE velocity dx/dt = E[alpha' x0 + sigma' eps | x_t]
    (Song et al. 2021, Eq. 13, written through the denoiser)."""
    return da * x0 + ds * (x - a * x0) / s


def _grid_derivatives(grid):
    d_alpha, d_sigma = grid.schedule.derivatives(grid.t[:-1])
    return [(float(a), float(b)) for a, b in zip(d_alpha, d_sigma)]


def euler(denoiser, x, grid, noise, callback=None):
    """Euler's method on the probability-flow ODE in the schedule's own time t
    (for the flow schedule this is the rectified-flow sampler)."""
    deriv = _grid_derivatives(grid)
    for i in range(grid.steps):
        x0 = _call(denoiser, x, grid, i, callback)
        if i == grid.steps - 1:
            return x0
        a, s = _coeffs(grid, i)
        x = x + float(grid.t[i + 1] - grid.t[i]) * _velocity(x, x0, a, s, *deriv[i])
    return x


def heun(denoiser, x, grid, noise, callback=None):
    """Heun's 2nd-order method on the PF-ODE (Karras et al. 2022, Algorithm 1, general
    sigma(t), s(t)); the last step to the clean point is Euler, as in EDM."""
    deriv = _grid_derivatives(grid)
    for i in range(grid.steps):
        x0 = _call(denoiser, x, grid, i, callback)
        if i == grid.steps - 1:
            return x0
        h = float(grid.t[i + 1] - grid.t[i])
        d1 = _velocity(x, x0, *_coeffs(grid, i), *deriv[i])
        x_euler = x + h * d1
        x0_next = _eval(denoiser, x_euler, float(grid.t[i + 1]))
        d2 = _velocity(x_euler, x0_next, *_coeffs(grid, i + 1), *deriv[i + 1])
        x = x + h * 0.5 * (d1 + d2)
    return x


def _dpmpp_multistep(denoiser, x, grid, callback, correction, history: int):
    """The DPM-Solver++ multistep loop (Lu et al. 2022) in lambda = log(alpha / sigma): each
    step is the exponential-integrator step x_s = (sigma_s / sigma_t) x - alpha_s expm1(-h)
    x0_hat plus alpha_s * correction(last x0_hat, last h, h) from up to `history` x0_hat
    (newest first); the step to the clean point returns x0_hat (a first-order final step)."""
    x0s, hs = [], []
    for i in range(grid.steps):
        x0 = _call(denoiser, x, grid, i, callback)
        (a_t, s_t), (a_s, s_s) = _coeffs(grid, i), _coeffs(grid, i + 1)
        if s_s == 0:
            return x0
        h = math.log(a_s / s_s) - math.log(a_t / s_t)
        x0s, x_next = [x0] + x0s[:history - 1], (s_s / s_t) * x - a_s * math.expm1(-h) * x0
        if len(x0s) > 1:
            x_next = x_next + a_s * correction(x0s, hs, h)
        x, hs = x_next, [h] + hs[:history - 2]
    return x


def _dpmpp_2m_correction(x0s, hs, h):
    """DPM-Solver++(2M)'s second-order term: D = (1 + 1/2r) x0_hat - (1/2r) x0_prev with
    r = h_prev / h (Algorithm 2), written as the first-order step plus this difference."""
    return -math.expm1(-h) * (x0s[0] - x0s[1]) * (h / (2 * hs[0]))


def dpmpp_2m(denoiser, x, grid, noise, callback=None):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep 2nd order in
    lambda = log(alpha / sigma), with data prediction. First step is first order."""
    return _dpmpp_multistep(denoiser, x, grid, callback, _dpmpp_2m_correction, history=2)


def _dpmpp_3m_correction(x0s, hs, h):
    """The multistep terms of DPM-Solver++(3M) (Lu et al. 2022, Sec. 3.3, in lambda =
    log(alpha / sigma)) after the first-order part: h phi_2 x0' + h^2 (-phi_3) x0'', with
    x0' and x0'' from divided differences of the last three x0_hat (newest first), and
    phi_2 = 1 + expm1(-h) / h, -h^2 phi_3 = integral_0^h e^(v - h) v^2 / 2 dv. d2 estimates
    h^2 x0'' (as in DPM-Solver's singlestep 'taylor' update); the multistep code of
    DPM-Solver / k-diffusion divides it by 2 more, which measured second order here
    (tests/test_solvers.py). With two x0_hat it is the second-order update."""
    phi_2 = math.expm1(-h) / h + 1
    if len(x0s) == 2:
        return phi_2 * (x0s[0] - x0s[1]) * (h / hs[0])
    r0, r1 = hs[0] / h, hs[1] / h
    d1_0 = (x0s[0] - x0s[1]) / r0
    d1_1 = (x0s[1] - x0s[2]) / r1
    d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
    d2 = 2 * (d1_0 - d1_1) / (r0 + r1)
    return phi_2 * d1 - (phi_2 / h - 0.5) * d2


def dpmpp_3m(denoiser, x, grid, noise, callback=None):
    """DPM-Solver++(3M) (Lu et al. 2022, multistep third order, data prediction): the
    exponential-integrator step x_s = (sigma_s / sigma_t) x - alpha_s expm1(-h) x0_hat plus
    alpha_s (phi_2 d1 - phi_3 d2) from divided differences of the last three x0_hat. The first
    two steps are first and second order (too few x0_hat yet), and the last step to the clean
    point is the first-order denoising step x0 = D(x, t_min), as in k-diffusion."""
    return _dpmpp_multistep(denoiser, x, grid, callback, _dpmpp_3m_correction, history=3)


def _reverse_sde_step(x, x0, a_t, s_t, a_s, s_s, z):
    """Euler-Maruyama step of the reverse SDE written in the scale-free variables
    x~ = x / alpha, tau = (sigma / alpha)^2, where every schedule's SDE is the VE SDE
    dx~ = -grad log p dtau + dW~ (Karras et al. 2022, Eq. 6; Song et al. 2021). In t the
    SDE is stiff where alpha -> 0; in tau the drift coefficient stays in [0, 1]."""
    tau_t, tau_s = (s_t / a_t) ** 2, (s_s / a_s) ** 2
    x_tilde = x / a_t
    score_step = (tau_t - tau_s) / tau_t  # dtau * (x0 - x~) / tau: the score term
    x_tilde = x_tilde + score_step * (x0 - x_tilde) + math.sqrt(tau_t - tau_s) * z
    return a_s * x_tilde


def euler_maruyama(denoiser, x, grid, noise, callback=None):
    """Reverse-time SDE (Anderson 1982; Song et al. 2021, Eq. 6) by Euler-Maruyama."""
    for i in range(grid.steps):
        x0 = _call(denoiser, x, grid, i, callback)
        (a_t, s_t), (a_s, s_s) = _coeffs(grid, i), _coeffs(grid, i + 1)
        if s_s == 0:
            return x0
        x = _reverse_sde_step(x, x0, a_t, s_t, a_s, s_s, noise.normal())
    return x


def pc(denoiser, x, grid, noise, callback=None, snr=0.16):
    """Predictor-corrector (Song et al. 2021, Algorithms 4-5): at each noise level one
    Langevin corrector step, then a reverse-SDE predictor step; two calls per step."""
    if not SNR_RANGE[0] < snr <= SNR_RANGE[1] or math.isnan(snr):
        raise ValueError(f"snr must be in ({SNR_RANGE[0]:g}, {SNR_RANGE[1]:g}], got {snr!r}")
    for i in range(grid.steps):
        (a_t, s_t), (a_s, s_s) = _coeffs(grid, i), _coeffs(grid, i + 1)
        x = _langevin_step(denoiser, x, float(grid.t[i]), a_t, s_t, snr, noise.normal())
        x0 = _call(denoiser, x, grid, i, callback)
        if s_s == 0:
            return x0
        x = _reverse_sde_step(x, x0, a_t, s_t, a_s, s_s, noise.normal())
    return x


def _langevin_step(denoiser, x, t, a, s, snr, z):
    """x + eps score + sqrt(2 eps) z, score = -(x - alpha x0_hat) / sigma^2.

    Song et al. set eps = 2 (snr ||z|| / ||score||)^2 from norms averaged over the batch,
    which makes a sample depend on its batch. We use that rule's expectation,
    E||z||^2 / E||score||^2 = sigma^2 (exact while the data variance is small against
    sigma^2; smaller steps otherwise), so eps = 2 snr^2 sigma^2 for every sample."""
    x0 = _eval(denoiser, x, t)
    score = -(x - a * x0) / s**2
    step = 2 * (snr * s) ** 2
    return x + step * score + math.sqrt(2 * step) * z


@dataclass(frozen=True)
class SolverRecord:
    """Everything the project knows about one solver. The library, the tabs, the tests and
    the option checks read it from here, so adding a solver is one function plus one record
    (tests/test_solvers.py checks each record against its function)."""

    fn: Callable
    title: str           # its name in prose, e.g. "DPM-Solver++ 2M"
    summary: str         # one line, with the paper
    deterministic: bool  # the same x_T always gives the same sample (ddim: at eta = 0)
    order: int           # convergence order: strong for the ODE solvers, weak for the SDE ones
    options: dict = field(default_factory=dict)  # keyword option -> its (low, high) range, checked by fn
    evals_per_step: int = 1
    evals_saved: int = 0  # evaluations the final step saves (heun's last step is Euler)

    def nfe(self, steps: int) -> int:
        """Denoiser evaluations for `steps` steps."""
        return self.evals_per_step * steps - self.evals_saved


RECORDS = {
    "ddpm": SolverRecord(ddpm, "DDPM", "ancestral sampling (Ho et al. 2020)", False, 1),
    "ddim": SolverRecord(ddim, "DDIM", "DDIM (Song, Meng & Ermon 2021); eta 1 is ddpm", True, 1,
                         options={"eta": ETA_RANGE}),
    "euler": SolverRecord(euler, "Euler", "Euler on the probability-flow ODE", True, 1),
    "heun": SolverRecord(heun, "Heun", "Heun on the PF-ODE (Karras et al. 2022, Alg. 1)", True, 2,
                         evals_per_step=2, evals_saved=1),
    "dpmpp_2m": SolverRecord(dpmpp_2m, "DPM-Solver++ 2M", "DPM-Solver++(2M) (Lu et al. 2022, Alg. 2)", True, 2),
    "dpmpp_3m": SolverRecord(dpmpp_3m, "DPM-Solver++ 3M", "DPM-Solver++(3M), multistep (Lu et al. 2022)", True, 3),
    "euler_maruyama": SolverRecord(euler_maruyama, "Euler-Maruyama", "the reverse SDE (Song et al. 2021)", False, 1),
    "pc": SolverRecord(pc, "predictor-corrector", "Langevin + reverse SDE (Song et al. 2021, Alg. 4-5)", False, 1,
                       options={"snr": SNR_RANGE}, evals_per_step=2),
}
SOLVERS = {name: record.fn for name, record in RECORDS.items()}
DETERMINISTIC = tuple(name for name, record in RECORDS.items() if record.deterministic)


def nfe_per_step(solver: str, steps: int) -> int:
    """Denoiser evaluations a solver makes for `steps` steps."""
    return RECORDS[solver].nfe(steps)


def network_passes(solver: str, steps: int, per_eval: int = 1) -> int:
    """Network passes of one sample: NFE x passes per evaluation (2 with classifier-free
    guidance). A name that is no solver (a request about to be refused) counts its steps."""
    return nfe_per_step(solver, steps) * per_eval if solver in RECORDS else steps


def steps_for_nfe(solver: str, nfe: int) -> int:
    """The largest step count whose NFE fits in `nfe` (at least one step)."""
    steps = max(1, nfe)
    while steps > 1 and nfe_per_step(solver, steps) > nfe:
        steps -= 1
    return steps
