import math

import numpy as np
import pytest
import torch

from zoo.diffusion import FIXED_SPACINGS, SCHEDULES, SPACINGS, ddpm_discretisation, get_schedule, make_grid


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_log_snr_inverse_round_trips(name):
    s = SCHEDULES[name]
    t = torch.linspace(max(s.t_min, 1e-3), s.t_max, 101, dtype=torch.float64)
    assert torch.allclose(s.t_of_log_snr(s.log_snr(t)), t, atol=1e-9)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_log_snr_decreases_and_derivatives_match_finite_differences(name):
    s = SCHEDULES[name]
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    assert (s.log_snr(t).diff() < 0).all()
    da, ds = s.derivatives(t)
    h = 1e-6
    assert torch.allclose(da, (s.alpha(t + h) - s.alpha(t - h)) / (2 * h), atol=1e-6)
    assert torch.allclose(ds, (s.sigma(t + h) - s.sigma(t - h)) / (2 * h), atol=1e-6, rtol=1e-6)


def test_vp_schedules_preserve_variance_and_end_in_noise():
    for name in ("vp-linear", "vp-cosine"):
        s = SCHEDULES[name]
        t = torch.linspace(0, 1, 11, dtype=torch.float64)
        assert torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t))
        assert float(s.alpha(torch.tensor(s.t_max, dtype=torch.float64))) < 0.01


def test_ddpm_discretisation_recovers_linear_betas():
    betas, alpha_bar = ddpm_discretisation("vp-linear", 1000)
    expected = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    # The continuous VP SDE gives 1 - beta_i = exp(-int beta(t) dt) over step i, so
    # -log(1 - beta_i) is Ho et al.'s linear beta_i up to the grid offset (Song et al. 2021, App. B).
    assert torch.allclose(-torch.log1p(-betas), expected, atol=1.2e-5)
    assert torch.allclose(alpha_bar, torch.cumprod(1 - betas, 0))
    betas50, _ = ddpm_discretisation("vp-cosine", 50)
    assert betas50.shape == (50,) and (betas50 > 0).all() and (betas50 < 1).all()


def test_ve_and_flow_are_what_their_papers_say():
    ve, flow = SCHEDULES["ve"], SCHEDULES["flow"]
    assert math.isclose(float(ve.sigma(torch.tensor(1.0))), 50.0, rel_tol=1e-6)
    assert math.isclose(float(ve.sigma(torch.tensor(0.0))), 0.01, rel_tol=1e-6)
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    assert torch.equal(flow.alpha(t), 1 - t) and torch.equal(flow.sigma(t), t)


@pytest.mark.parametrize("spacing", sorted(FIXED_SPACINGS))  # "optimized" is per model: tests/test_optimize_steps.py
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_grid_runs_from_t_max_to_t_min_then_clean(name, spacing):
    s = SCHEDULES[name]
    g = make_grid(s, 12, spacing)
    assert g.steps == 12 and len(g.t) == 13
    assert math.isclose(float(g.t[0]), s.t_max, abs_tol=1e-9)
    assert math.isclose(float(g.t[-2]), s.t_min, abs_tol=1e-9)
    assert (g.t[:-1].diff() < 0).all()
    assert float(g.alpha[-1]) == 1.0 and float(g.sigma[-1]) == 0.0


def test_log_snr_spacing_is_uniform_in_log_snr():
    s = SCHEDULES["vp-cosine"]
    g = make_grid(s, 10, "logsnr")
    lam = s.log_snr(g.t[:-1])
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(9), atol=1e-8)


def test_karras_spacing_concentrates_steps_at_low_noise():
    s = SCHEDULES["ve"]
    sig = s.sigma(make_grid(s, 20, "karras").t[:-1])
    assert (sig[-2] - sig[-1]) < (sig[0] - sig[1]) / 100


def test_quadratic_spacing_has_steps_shrinking_linearly_in_sqrt_t():
    s = SCHEDULES["vp-cosine"]
    root = make_grid(s, 16, "quadratic").t[:-1].sqrt()
    assert torch.allclose(root.diff(), root.diff()[0].expand(15), atol=1e-12)
    dt = make_grid(s, 16, "quadratic").t[:-1].diff().neg()
    assert (dt.diff() < 0).all()  # every step shorter than the one before


@pytest.mark.parametrize("steps", [0, -3, 10**6, 2.5, True, "10"])
def test_bad_steps_raise_clear_error(steps):
    with pytest.raises(ValueError, match="steps must be an integer in"):
        make_grid("vp-cosine", steps)


def test_unknown_schedule_and_spacing_name_allowed_values():
    with pytest.raises(ValueError, match="schedule must be one of .*vp-cosine"):
        get_schedule("cosine-ish")
    with pytest.raises(ValueError, match="spacing must be one of .*karras"):
        make_grid("ve", 5, "cubic")


def test_every_spacing_describes_itself_for_the_schedules_tab():
    from ui.schedules_tab import SPACING_TEXT
    from zoo.diffusion.spacing import SPACING_FORMULAS

    assert set(SPACING_FORMULAS) == set(SPACINGS)
    assert all(f"`{name}`" in SPACING_TEXT for name in SPACINGS)


def test_every_schedule_describes_itself_for_the_tab_and_its_plot():
    """A new schedule needs no edit in ui/: its formula text, source and colour live on it."""
    from ui.schedules_tab import THEORY

    colors = set()
    for name, sch in SCHEDULES.items():
        assert sch.alpha_text and sch.sigma_text and sch.source and sch.color, name
        assert f"| `{name}` | {sch.alpha_text} | {sch.sigma_text} |" in THEORY
        colors.add(sch.color)
        c = sch.curves(50)
        assert len(c["t"]) == 50 and np.isfinite(c["log_snr"]).all() and (np.diff(c["log_snr"]) < 0).all()
    assert len(colors) == len(SCHEDULES)  # told apart in the plot

