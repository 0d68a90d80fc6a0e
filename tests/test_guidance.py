import pytest
import torch

from gmm_cases import mixture
from zoo.diffusion import GaussianMixture
from zoo.diffusion.guidance import classifier_free_guidance, classifier_guidance


def _label_denoiser():
    """Exact class-conditional denoiser of the mixture: label k is component k;
    label None is the whole mixture (the unconditional model)."""
    gmm = mixture()
    comps = [GaussianMixture([1.0], gmm.means[k:k + 1], gmm.covs[k:k + 1]) for k in range(3)]

    def d(x, t, label=None):
        return (gmm if label is None else comps[label]).denoiser("vp-cosine")(x, t)

    return d, gmm, comps


def test_cfg_with_w_zero_is_the_conditional_model_and_minus_one_the_unconditional():
    d, gmm, comps = _label_denoiser()
    x, t = torch.randn(50, 2, dtype=torch.float64), torch.full((50,), 0.6, dtype=torch.float64)
    cond, uncond = dict(label=1), dict(label=None)
    assert torch.equal(classifier_free_guidance(d, 0.0, cond, uncond)(x, t), d(x, t, label=1))
    assert torch.allclose(classifier_free_guidance(d, -1.0, cond, uncond)(x, t), d(x, t), atol=1e-12)
    w3 = classifier_free_guidance(d, 3.0, cond, uncond)(x, t)
    assert torch.allclose(w3, 4 * d(x, t, label=1) - 3 * d(x, t), atol=1e-12)


def test_guidance_interval_switches_guidance_off_outside_it():
    d, _, _ = _label_denoiser()
    guided = classifier_free_guidance(d, 2.0, dict(label=0), dict(label=None), interval=(0.2, 0.5))
    x = torch.randn(10, 2, dtype=torch.float64)
    outside, inside = torch.full((10,), 0.8, dtype=torch.float64), torch.full((10,), 0.3, dtype=torch.float64)
    assert torch.equal(guided(x, outside), d(x, outside, label=0))
    assert not torch.allclose(guided(x, inside), d(x, inside, label=0))


@pytest.mark.parametrize("w", [float("nan"), float("inf"), "2", None])
def test_non_finite_guidance_is_a_value_error(w):
    d, _, _ = _label_denoiser()
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        classifier_free_guidance(d, w, dict(label=0), dict(label=None))


def test_classifier_guidance_with_the_exact_classifier_gives_the_exact_conditional_denoiser():
    """grad log p_t(x) + grad log p_t(k | x) = grad log p_t(x | k): with the exact noisy
    classifier p_t(k | x) (the mixture's responsibilities) and scale 1, classifier
    guidance must reproduce component k's own exact denoiser."""
    d, gmm, comps = _label_denoiser()
    schedule = __import__("zoo.diffusion", fromlist=["SCHEDULES"]).SCHEDULES["vp-cosine"]
    k = 2

    def grad_log_p_k(x, t):
        alpha, sigma = (float(v) for v in schedule.alpha_sigma(t[0].double()))
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_r = torch.log(gmm.responsibilities(x_in, alpha, sigma)[:, k]).sum()
            return torch.autograd.grad(log_r, x_in)[0]

    guided = classifier_guidance(lambda x, t: d(x, t), grad_log_p_k, 1.0, schedule)
    x, t = torch.randn(40, 2, dtype=torch.float64), torch.full((40,), 0.5, dtype=torch.float64)
    assert torch.allclose(guided(x, t), d(x, t, label=k), atol=1e-8)
