import pytest
import torch

from gmm_cases import mixture
from zoo.diffusion import isotropic_gaussian, sample
from zoo.diffusion.guidance import autoguidance, classifier_free_guidance, classifier_guidance
from zoo.pipelines.toy2d import guided_mixture


def _label_denoiser():
    """Exact class-conditional denoiser of the mixture: label k is component k;
    label None is the whole mixture (the unconditional model)."""
    gmm = mixture()
    comps = [gmm.component(k) for k in range(3)]

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
    k = 2
    guided = classifier_guidance(lambda x, t: d(x, t), gmm.class_log_prob_grad(k, "vp-cosine"), 1.0, "vp-cosine")
    x, t = torch.randn(40, 2, dtype=torch.float64), torch.full((40,), 0.5, dtype=torch.float64)
    assert torch.allclose(guided(x, t), d(x, t, label=k), atol=1e-8)


def test_exact_guided_sampling_three_ways_to_the_same_law():
    """Sampler level, every part exact (zoo.pipelines.toy2d.guided_mixture): (1) the unconditional
    model guided by the exact classifier with s = 1 draws exactly what the conditional
    model draws, and that is p(x0 | k) (its mean and covariance); (2) on the conditional
    model, CFG with w and classifier guidance with s = w are one ODE, equal to the
    unconditional model with s = w + 1; (3) w > 0 is sharper than p(x0 | k)."""
    k, kw = 1, dict(n=6000, steps=30)
    plain = guided_mixture(k, base="conditional", **kw)
    bayes = guided_mixture(k, classifier_scale=1.0, base="unconditional", **kw)
    assert torch.allclose(bayes.points, plain.points, atol=1e-6)
    comp = mixture().component(k)
    se = comp.covs[0].diagonal().sqrt() / len(plain.points) ** 0.5
    assert ((plain.points.mean(0) - comp.means[0]).abs() < 4 * se).all()
    assert torch.allclose(torch.cov(plain.points.T), comp.covs[0], atol=0.01)
    assert plain.swd < 1.5 * plain.floor
    cfg = guided_mixture(k, guidance=2.0, **kw)
    for other in (guided_mixture(k, classifier_scale=2.0, **kw),
                  guided_mixture(k, classifier_scale=3.0, base="unconditional", **kw)):
        assert torch.allclose(other.points, cfg.points, atol=1e-6)
    assert cfg.swd > 10 * cfg.floor
    assert torch.cov(cfg.points.T).trace() < 0.5 * comp.covs[0].trace()


def test_guided_mixture_refuses_cfg_without_a_conditional_model():
    with pytest.raises(ValueError, match="needs the conditional model"):
        guided_mixture(0, guidance=1.0, base="unconditional", n=10)
    with pytest.raises(ValueError, match="base must be one of"):
        guided_mixture(0, base="joint", n=10)
    with pytest.raises(ValueError, match=r"component must be in \[0, 2\]"):
        guided_mixture(3, n=10)


def test_autoguidance_is_the_cfg_formula_with_the_bad_model_in_place_of_the_null_condition():
    """D_w = D + w (D - D_bad) (Karras et al. 2024); w = 0 and a guide equal to the model
    both leave the model exactly as it is."""
    good, bad = isotropic_gaussian([0.0, 0.0], 1.0), isotropic_gaussian([0.0, 0.0], 1.5)
    d, d_bad = good.denoiser("vp-cosine"), bad.denoiser("vp-cosine")
    x, t = torch.randn(30, 2, dtype=torch.float64), torch.full((30,), 0.7, dtype=torch.float64)
    assert torch.allclose(autoguidance(d, d_bad, 1.5)(x, t), 2.5 * d(x, t) - 1.5 * d_bad(x, t), atol=1e-12)
    assert torch.equal(autoguidance(d, d_bad, 0.0)(x, t), d(x, t))
    assert torch.allclose(autoguidance(d, d, 3.0)(x, t), d(x, t), atol=1e-12)
    with pytest.raises(ValueError, match="guidance must be a finite number"):
        autoguidance(d, d_bad, float("nan"))


def test_autoguided_sampling_of_gaussians_keeps_the_law_without_guidance_and_narrows_it_with():
    """Exact denoisers of N(0, 1) (the model) and N(0, 1.5^2) (a bad model: too broad, as
    an undertrained one is): unguided, and guided by itself, the samples have the data's
    std 1; guided by the bad model they are narrower (the difference points inward), and
    more so as w grows."""
    d = isotropic_gaussian([0.0], 1.0).denoiser("vp-cosine")
    d_bad = isotropic_gaussian([0.0], 1.5).denoiser("vp-cosine")

    def std(denoiser):
        x = sample(denoiser, (4000, 1), schedule="vp-cosine", steps=100, solver="heun", seed=0, dtype=torch.float64)
        return float(x.std())

    assert abs(std(d) - 1.0) < 0.04 and abs(std(autoguidance(d, d, 2.0)) - 1.0) < 0.04
    narrowed = [std(autoguidance(d, d_bad, w)) for w in (0.5, 1.0, 2.0)]
    assert narrowed[0] < 0.97 and narrowed[0] > narrowed[1] > narrowed[2] > 0.3
