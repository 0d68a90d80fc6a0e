import pytest
import torch

from gmm_cases import mixture
from zoo.diffusion import SCHEDULES, isotropic_gaussian
from zoo.diffusion.likelihood import bits_per_dim, ode_nll, vlb_nats


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_pf_ode_nll_of_gaussian_data_matches_the_analytic_nll(schedule):
    gauss = isotropic_gaussian([0.5, -0.3], 0.4)
    x = gauss.sample(500, torch.Generator().manual_seed(0))
    nll = ode_nll(gauss.denoiser(schedule), x, schedule, steps=40)
    exact = -gauss.log_prob(x)
    assert (nll - exact).abs().max() / 2 < 0.02            # per sample, nats/dim
    assert abs(float((nll - exact).mean())) / 2 < 0.005


def test_pf_ode_nll_of_a_mixture_and_with_hutchinson_trace():
    gmm = mixture()
    x = gmm.sample(400, torch.Generator().manual_seed(1))
    exact = -gmm.log_prob(x)
    d = gmm.denoiser("vp-linear")
    assert abs(float((ode_nll(d, x, "vp-linear", steps=40) - exact).mean())) / 2 < 0.01
    hutch = ode_nll(d, x, "vp-linear", steps=40, exact_trace=False, hutchinson_probes=2)
    assert abs(float((hutch - exact).mean())) / 2 < 0.05  # unbiased, noisy per sample


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_variational_bound_is_never_below_the_true_nll_and_tightens(schedule):
    gauss = isotropic_gaussian([0.5, -0.3], 0.4)
    x = gauss.sample(1000, torch.Generator().manual_seed(0))
    exact = float((-gauss.log_prob(x)).mean())
    coarse = float(vlb_nats(gauss.denoiser(schedule), x, schedule, steps=50).mean())
    fine = float(vlb_nats(gauss.denoiser(schedule), x, schedule, steps=2000).mean())
    assert exact <= fine <= coarse
    assert (fine - exact) / 2 < 0.06


def test_bits_per_dim_conversion():
    nats = torch.tensor([2 * 0.6931471805599453])
    assert torch.allclose(bits_per_dim(nats, 2), torch.tensor([1.0]))
    assert float(bits_per_dim(torch.zeros(1), 1, bin_width=0.5)) == pytest.approx(1.0)


def test_sliced_wasserstein_zero_for_equal_sets_and_shift_for_translated_ones():
    from zoo.diffusion.metrics import sliced_wasserstein

    x = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(x, x) == 0.0
    # a shift by c along e1 moves each projection on direction u by c u_1: E|u_1| = 2/pi in 2D
    shifted = sliced_wasserstein(x, x + torch.tensor([1.0, 0.0]), projections=4000)
    assert abs(shifted - 2 / torch.pi) < 0.02
    assert sliced_wasserstein(x, x[:1000]) < 0.1
