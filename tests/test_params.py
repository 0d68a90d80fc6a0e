import pytest
import torch
from torch import nn

from gmm_cases import mixture
from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, Denoiser, diffusion_loss, sample_t
from zoo.diffusion.params import Coeffs, from_x0, target, to_x0


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

    def __init__(self, gmm, schedule, param, shift=0.0):
        super().__init__()
        self.exact, self.schedule, self.param, self.shift = gmm.denoiser(schedule), schedule, param, shift

    def forward(self, x_in, t):
        c = Coeffs.at(SCHEDULES[self.schedule], t, x_in)
        x = x_in * torch.sqrt(c.alpha**2 + c.sigma**2)  # undo c_in (sigma_data = 1)
        return from_x0(self.exact(x, t), x, c, self.param) + self.shift


@pytest.mark.parametrize("param", PARAMETERISATIONS)
def test_denoiser_wrapper_recovers_the_exact_denoiser(param):
    gmm = mixture()
    d = Denoiser(OracleNet(gmm, "vp-cosine", param), "vp-cosine", param)
    x, t = torch.randn(32, 2, dtype=torch.float64), torch.full((32,), 0.4, dtype=torch.float64)
    assert torch.allclose(d(x, t), gmm.denoiser("vp-cosine")(x, t), atol=1e-8)


@pytest.mark.parametrize("param", PARAMETERISATIONS)
def test_exact_prediction_beats_a_perturbed_one_in_the_loss(param):
    gmm = mixture()
    x0 = gmm.sample(4000, torch.Generator().manual_seed(1))
    losses = [float(diffusion_loss(Denoiser(OracleNet(gmm, "flow", param, shift), "flow", param), x0,
                                   generator=torch.Generator().manual_seed(2))) for shift in (0.0, 0.1)]
    assert losses[0] < losses[1]


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
