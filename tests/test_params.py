import math

import pytest
import torch
from torch import nn

from gmm_cases import mixture
from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, Denoiser, diffusion_loss, isotropic_gaussian, sample_t
from zoo.diffusion.params import Coeffs, edm_coeffs, from_x0, loss_weight, target, to_x0


@pytest.mark.parametrize("param", PARAMETERISATIONS)
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_conversions_round_trip(param, schedule):
    s = SCHEDULES[schedule]
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 3, generator=g, dtype=torch.float64), torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = s.t_min + (s.t_max - s.t_min) * torch.rand(64, generator=g, dtype=torch.float64)
    c = Coeffs.at(s, t, x0)
    x = c.alpha * x0 + c.sigma * eps
    # the regression target, read as a prediction, gives back the exact x0 ...
    assert torch.allclose(to_x0(target(x0, eps, c, param), x, c, param), x0, atol=1e-7)
    # ... and from_x0 inverts to_x0
    pred = torch.randn(64, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(from_x0(to_x0(pred, x, c, param), x, c, param), pred, atol=1e-6)


def test_flow_target_is_eps_minus_x0_under_the_flow_schedule():
    s = SCHEDULES["flow"]
    x0, eps, t = torch.randn(8, 2), torch.randn(8, 2), torch.rand(8)
    assert torch.allclose(target(x0, eps, Coeffs.at(s, t, x0), "flow"), eps - x0, atol=1e-6)


class OracleNet(nn.Module):
    """A 'network' that outputs the exact prediction of `param` for GMM data: the Denoiser
    wrapper must turn it back into the exact denoiser, and it must minimise the loss."""

    def __init__(self, gmm, schedule, param, shift=0.0, sigma_data=1.0):
        super().__init__()
        self.exact, self.schedule, self.param, self.shift = gmm.denoiser(schedule), schedule, param, shift
        self.sigma_data = sigma_data

    def forward(self, x_in, t):
        c = Coeffs.at(SCHEDULES[self.schedule], t, x_in, sigma_data=self.sigma_data)
        x = x_in * torch.sqrt(c.alpha**2 * self.sigma_data**2 + c.sigma**2)  # undo c_in
        return from_x0(self.exact(x, t), x, c, self.param) + self.shift


# (parameterisation, sigma_data): every one at 1, and EDM at its own 0.5 for [-1, 1] images
CASES = [(p, 1.0) for p in PARAMETERISATIONS] + [("edm", 0.5), ("v", 0.5)]


@pytest.mark.parametrize("param, sigma_data", CASES)
@pytest.mark.parametrize("schedule", ["vp-cosine", "ve", "flow"])
def test_denoiser_wrapper_recovers_the_exact_denoiser(param, sigma_data, schedule):
    gmm = mixture()
    d = Denoiser(OracleNet(gmm, schedule, param, sigma_data=sigma_data), schedule, param, sigma_data)
    x, t = torch.randn(32, 2, dtype=torch.float64), torch.full((32,), 0.4, dtype=torch.float64)
    assert torch.allclose(d(x, t), gmm.denoiser(schedule)(x, t), atol=1e-8)


@pytest.mark.parametrize("param, sigma_data", CASES)
def test_exact_prediction_beats_a_perturbed_one_in_the_loss(param, sigma_data):
    gmm = mixture()
    x0 = gmm.sample(4000, torch.Generator().manual_seed(1))
    losses = [float(diffusion_loss(Denoiser(OracleNet(gmm, "flow", param, shift, sigma_data), "flow", param,
                                            sigma_data), x0, generator=torch.Generator().manual_seed(2)))
              for shift in (0.0, 0.1)]
    assert losses[0] < losses[1]


def random_times(schedule: str, n: int = 64, seed: int = 0) -> torch.Tensor:
    s = SCHEDULES[schedule]
    return s.t_min + (s.t_max - s.t_min) * torch.rand(n, generator=torch.Generator().manual_seed(seed),
                                                      dtype=torch.float64)


def coeffs_at_random_times(schedule: str, n: int = 64, sigma_data: float = 0.5) -> Coeffs:
    return Coeffs.at(SCHEDULES[schedule], random_times(schedule, n), torch.zeros(n, 3, dtype=torch.float64),
                     sigma_data=sigma_data)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_edm_preconditioning_is_karras_table_1_on_x_over_alpha(schedule):
    """EDM's D(x~; s) = c_skip(s) x~ + c_out(s) F with x~ = x_t / alpha, s = sigma / alpha
    (Karras et al. 2022, Table 1), written out from the paper's formulas."""
    c, sd = coeffs_at_random_times(schedule), 0.5
    s = c.sigma / c.alpha
    x, f = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
    karras = sd**2 / (s**2 + sd**2) * (x / c.alpha) + s * sd / torch.sqrt(s**2 + sd**2) * f
    assert torch.allclose(to_x0(f, x, c, "edm"), karras, rtol=1e-10, atol=1e-10)
    c_in_karras = 1 / torch.sqrt(s**2 + sd**2)  # applied to x~; the Denoiser applies 1 / r to x_t
    assert torch.allclose(c_in_karras / c.alpha, 1 / edm_coeffs(c)[2], rtol=1e-10)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_edm_loss_weight_is_karras_lambda_on_the_x0_error(schedule):
    """weight |F - F*|^2 = lambda(s) |D - x0|^2 with lambda = (s^2 + sd^2) / (s sd)^2."""
    c, sd = coeffs_at_random_times(schedule), 0.5
    g = torch.Generator().manual_seed(1)
    x0, eps, f = (torch.randn(64, 3, generator=g, dtype=torch.float64) for _ in range(3))
    x = c.alpha * x0 + c.sigma * eps
    ours = loss_weight(c, "edm") * (f - target(x0, eps, c, "edm")).pow(2)
    s = c.sigma / c.alpha
    karras = (s**2 + sd**2) / (s * sd) ** 2 * (to_x0(f, x, c, "edm") - x0).pow(2)
    assert torch.allclose(ours, karras, rtol=1e-8)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_edm_target_has_unit_variance_for_data_of_std_sigma_data(schedule):
    """EDM's design rule (Appendix B.6): for x0 ~ N(0, sd^2) the training target F* has
    unit variance at every noise level. Checked exactly over the analytic Gaussian: F* is
    linear in (x0, eps), Var = (sigma^2 sd^2 + alpha^2 sd^4) / (sd r)^2."""
    c, sd = coeffs_at_random_times(schedule), 0.5
    one = torch.ones(64, 3, dtype=torch.float64)

    def variance(param):  # target = u x0 + w eps, read off at unit vectors; Var = u^2 sd^2 + w^2
        u, w = target(one, 0 * one, c, param), target(0 * one, one, c, param)
        return u**2 * sd**2 + w**2

    assert torch.allclose(variance("edm"), one, atol=1e-12)
    assert float((variance("v") - 1).abs().max()) > 0.1  # v at this data scale does not have it


def test_edm_with_unit_sigma_data_is_minus_v_on_vp_schedules():
    for schedule in ("vp-linear", "vp-cosine"):
        c = coeffs_at_random_times(schedule, sigma_data=1.0)
        x0, eps = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64)
        assert torch.allclose(target(x0, eps, c, "edm"), -target(x0, eps, c, "v"), atol=1e-12)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_on_gaussian_data_the_edm_loss_minimiser_is_the_posterior_mean(schedule):
    """Analytic Gaussian x0 ~ N(m, sd^2 I). The squared loss is minimised by
    F(x_t) = E[F* | x_t]; F* = u x0 + w eps and x_t = alpha x0 + sigma eps are jointly
    Gaussian, so E[F* | x_t] = u m + (u alpha sd^2 + w sigma) / (alpha^2 sd^2 + sigma^2)
    (x_t - alpha m). Through the Denoiser's map it must give the exact E[x0 | x_t]."""
    sd, mean = 0.5, torch.tensor([-0.7, 0.3], dtype=torch.float64)
    gauss, t = isotropic_gaussian(mean, sd), random_times(schedule, 16)
    c = Coeffs.at(SCHEDULES[schedule], t, torch.zeros(16, 2, dtype=torch.float64), sigma_data=sd)
    one = torch.ones(16, 2, dtype=torch.float64)
    u, w = target(one, 0 * one, c, "edm"), target(0 * one, one, c, "edm")
    a, s = c.alpha, c.sigma
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    f_opt = u * mean + (u * a * sd**2 + w * s) / (a**2 * sd**2 + s**2) * (x - a * mean)
    assert torch.allclose(to_x0(f_opt, x, c, "edm"), gauss.denoiser(schedule)(x, t), atol=1e-9)


@pytest.mark.parametrize("schedule", ["vp-cosine", "vp-linear", "ve", "flow"])
def test_edm_lognormal_t_sampling_draws_karras_noise_levels(schedule):
    """ln(sigma / alpha) at the sampled t ~ N(-1.2, 1.2^2) (EDM's P_mean, P_std), up to the
    schedule's clamp to [t_min, t_max] (under 0.3% of the draws here)."""
    s = SCHEDULES[schedule]
    t = sample_t(40_000, s, "edm-lognormal", torch.Generator().manual_seed(0))
    assert float(t.min()) >= s.t_min and float(t.max()) <= s.t_max
    alpha, sigma = s.alpha_sigma(t)
    ln_s = torch.log(sigma / alpha)
    assert abs(float(ln_s.mean()) + 1.2) < 0.03 and abs(float(ln_s.std()) - 1.2) < 0.03


@pytest.mark.parametrize("schedule", ["vp-cosine", "vp-linear", "flow"])
def test_sd3_shift_lowers_log_snr_by_2_ln_3(schedule):
    """Uniform draws, each moved to log-SNR - 2 ln 3; on the rectified flow that is SD3's
    t' = 3 t / (1 + 2 t) (Esser et al. 2024, eq. 23)."""
    s = SCHEDULES[schedule]
    u = sample_t(2000, s, "uniform", torch.Generator().manual_seed(5))
    t = sample_t(2000, s, "sd3-shift", torch.Generator().manual_seed(5))
    assert float(t.min()) >= s.t_min and float(t.max()) <= s.t_max
    inside = (t > s.t_min) & (t < s.t_max)
    assert inside.double().mean() > 0.85  # vp-linear ends at log-SNR -10: its last 11% clamp to t_max
    assert torch.allclose(s.log_snr(t)[inside], s.log_snr(u)[inside] - 2 * math.log(3), atol=1e-6)
    if schedule == "flow":
        assert torch.allclose(t, (3 * u / (1 + 2 * u)).clamp(s.t_min, s.t_max), atol=1e-9)
    assert float(t.mean()) > float(u.mean()) + 0.1


def test_t_sampling_is_in_range_and_logit_normal_concentrates():
    s = SCHEDULES["vp-linear"]
    u = sample_t(20000, s, "uniform", torch.Generator().manual_seed(0))
    ln = sample_t(20000, s, "logit-normal", torch.Generator().manual_seed(0))
    assert float(u.min()) >= s.t_min and float(u.max()) <= s.t_max
    assert ((ln - 0.5).abs() < 0.25).double().mean() > ((u - 0.5).abs() < 0.25).double().mean()
    with pytest.raises(ValueError, match="t_sampling must be one of"):
        sample_t(3, s, "beta")


def test_bad_parameterisation_is_rejected():
    with pytest.raises(ValueError, match="parameterisation must be one of"):
        Denoiser(nn.Identity(), "ve", "noise")
