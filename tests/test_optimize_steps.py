"""Optimised sampling times: the search improves its own criterion on the exact mixture, the
'optimized' spacing samples with a model's stored times and names what it has otherwise,
config validation refuses unusable times, and the command writes config.json atomically."""
import json
import os

import pytest
import torch

from gmm_cases import mixture
from zoo.diffusion import DiffusionConfig, make_grid, sample
from zoo.diffusion.optimize_steps import (OptimizeConfig, logits_from_times, optimize_times, path_error, reference,
                                          solve, starting_noise, times_from_logits)
from zoo.hub import CheckpointError, save_checkpoint
from zoo.hub.checkpoint import CONFIG_NAME, load_config
from zoo.nets.mlp import MLP

TINY = OptimizeConfig(draws=32, holdout=32, reference_steps=100, iterations=40, dtype=torch.float64)


def test_times_parameterisation_is_monotone_and_invertible():
    t = make_grid("vp-cosine", 6, "quadratic").t[:-1]
    z = logits_from_times("vp-cosine", t)
    assert torch.allclose(times_from_logits("vp-cosine", z), t, atol=1e-5)
    wild = times_from_logits("flow", torch.tensor([3.0, -3.0, 0.0, 5.0]))
    assert (wild.diff() < 0).all() and float(wild[0]) == pytest.approx(0.999) and float(wild[-1]) >= 1e-3


def test_optimized_times_beat_uniform_and_the_search_start_on_the_exact_mixture():
    d, solver = mixture().denoiser("vp-cosine"), "dpmpp_3m"
    r = optimize_times(d, "vp-cosine", solver, 5, (2,), TINY)
    x = starting_noise("vp-cosine", TINY.draws, (2,), TINY.seed, torch.float64)
    ref = reference(d, "vp-cosine", x, TINY.reference_steps)
    uniform = path_error(solve(d, "vp-cosine", solver, make_grid("vp-cosine", 5, "uniform").t[:-1], x), ref)
    best_fixed = min(path_error(solve(d, "vp-cosine", solver, make_grid("vp-cosine", 5, sp).t[:-1], x), ref)
                     for sp in ("uniform", "logsnr", "karras", "quadratic"))
    assert path_error(solve(d, "vp-cosine", solver, r.times, x), ref) == pytest.approx(r.error)
    assert r.error < 0.9 * uniform and r.error < best_fixed  # strictly better than where the search began
    assert r.holdout_error < r.fixed_errors["uniform"]
    assert len(r.times) == 5 and all(a > b for a, b in zip(r.times, r.times[1:]))


def test_optimized_spacing_samples_with_the_stored_times_and_names_what_it_has():
    d, times = mixture().denoiser("flow"), [0.999, 0.7, 0.4, 0.1, 0.001]
    table = {"dpmpp_3m": {5: times, 10: list(make_grid("flow", 10, "logsnr").t[:-1])}}
    kw = dict(schedule="flow", seed=0, solver="dpmpp_3m", dtype=torch.float64)
    seen = []
    sample(d, (4, 2), steps=5, spacing="optimized", optimized_times=table,
           callback=lambda i, t, x, x0: seen.append(t), **kw)
    assert seen == pytest.approx(times)
    with pytest.raises(ValueError,
                       match=r"no optimized times for solver 'dpmpp_3m' at 8 steps.*dpmpp_3m at 5, 10 steps"):
        sample(d, (4, 2), steps=8, spacing="optimized", optimized_times=table, **kw)
    with pytest.raises(ValueError, match=r"solver 'heun'.*it has: dpmpp_3m at 5, 10 steps"):
        sample(d, (4, 2), steps=5, spacing="optimized", optimized_times=table, **{**kw, "solver": "heun"})
    with pytest.raises(ValueError, match="it has: none"):
        sample(d, (4, 2), steps=5, spacing="optimized", **kw)


def _checkpoint(folder, sampling=None):
    torch.manual_seed(0)
    net = MLP(MLP.Config(hidden=16, depth=1, time_features=8))
    save_checkpoint(folder, net, "mlp", net.config, DiffusionConfig(schedule="vp-cosine"),
                    extra={"data": {"dataset": "gmm"}, **({"sampling": sampling} if sampling else {})})
    return folder


GOOD = [0.999, 0.5, 0.2, 0.001]


@pytest.mark.parametrize("times,match", [
    ({"heun": {"4": [0.999, 0.2, 0.5, 0.001]}}, "strictly decreasing"),
    ({"heun": {"4": [0.999, 0.5, 0.2, 1e-6]}}, r"lie in \[t_min, t_max\]"),
    ({"heun": {"4": [0.9, 0.5, 0.2, 0.001]}}, "first time must be t_max"),
    ({"heun": {"4": [0.999, 0.5, 0.001]}}, "expected a list of 4 times"),
    ({"heun": {"4": [0.999, "x", 0.2, 0.001]}}, "finite number"),
    ({"heun": {"four": GOOD}}, "step count must be an integer"),
    ({"pc": {"4": GOOD}}, "solver must be one of"),
    ([GOOD], "must be a JSON object"),
])
def test_config_validation_refuses_unusable_stored_times(tmp_path, times, match):
    folder = _checkpoint(tmp_path / "m", {"optimized_times": times})
    with pytest.raises(CheckpointError, match=f"sampling.*{match}"):
        load_config(folder)


def test_config_validation_refuses_non_finite_times_and_unknown_fields(tmp_path):
    folder = _checkpoint(tmp_path / "m", {"optimized_times": {"heun": {"4": GOOD}}})
    assert load_config(folder)["sampling"]["optimized_times"]["heun"]["4"] == GOOD
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["sampling"]["optimized_times"]["heun"]["4"][1] = float("nan")
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="finite"):
        load_config(folder)
    config["sampling"] = {"times": {}}
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown field"):
        load_config(folder)


def test_command_writes_config_atomically_and_the_pipeline_uses_the_times(tmp_path, monkeypatch):
    from trainers import optimize_steps
    from zoo.pipelines.toy2d import load_pipeline

    folder = _checkpoint(tmp_path / "m")
    args = [str(folder), "--solvers", "euler", "--steps", "3", "--draws", "16", "--iterations", "5",
            "--reference-steps", "50"]
    before = (folder / CONFIG_NAME).read_text()

    def fail(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        optimize_steps.main(args)
    assert (folder / CONFIG_NAME).read_text() == before  # a failed write leaves the old file whole
    monkeypatch.undo()
    assert optimize_steps.main(args) == 0
    stored = load_config(folder)["sampling"]["optimized_times"]["euler"]["3"]
    pipe = load_pipeline(folder)
    seen = []
    pipe(n=4, steps=3, solver="euler", spacing="optimized", callback=lambda i, t, x, x0: seen.append(t))
    assert seen == pytest.approx(stored)
    with pytest.raises(ValueError, match="at 3 steps"):
        pipe(n=4, steps=4, solver="euler", spacing="optimized")


def test_command_refuses_stochastic_solvers_before_any_work(tmp_path):
    from trainers import optimize_steps

    with pytest.raises(ValueError, match="deterministic solvers"):
        optimize_steps.main([str(tmp_path), "--solvers", "ddpm"])


def _seen_times(pipe, *args, **kw):
    seen = []
    pipe(*args, callback=lambda i, t, x, x0: seen.append(t), **kw)
    return seen


def test_a_class_conditional_model_is_searched_on_its_guided_ode_and_samples_with_the_times(tmp_path):
    from test_conditional import tiny_unet

    from trainers import optimize_steps
    from zoo.pipelines.conditional import GuidedPipeline, load_pipeline

    net = tiny_unet(3)
    save_checkpoint(tmp_path / "cond", net, "unet", net.config, DiffusionConfig(parameterisation="v"))
    pipe = load_pipeline(tmp_path / "cond")
    model = optimize_steps.model_of(pipe)
    assert model.conditioning["guidance"] == GuidedPipeline.DEFAULT_W and model.shape == (1, 8, 8)
    x, t = torch.randn(6, 1, 8, 8), torch.full((6,), 0.5)
    guided = pipe.guided_denoiser(torch.tensor([0, 1, 2, 0, 1, 2]), GuidedPipeline.DEFAULT_W, None, 0.0)
    with torch.no_grad():  # one label per draw, in turn, and the tab's w
        assert torch.equal(model.denoiser_for(6, 0)(x, t), guided(x, t))
    assert optimize_steps.main([str(tmp_path / "cond"), "--solvers", "dpmpp_2m", "--steps", "3", "--draws", "4",
                                "--iterations", "4", "--reference-steps", "8", "--guidance", "1.5"]) == 0
    sampling = load_config(tmp_path / "cond")["sampling"]
    assert sampling["optimized_info"]["guidance"] == 1.5
    seen = _seen_times(load_pipeline(tmp_path / "cond"), [0, 2], steps=3, spacing="optimized", guidance=1.5)
    assert seen == pytest.approx(sampling["optimized_times"]["dpmpp_2m"]["3"])
    with pytest.raises(ValueError, match=r"searched with guidance = 1.5; this run used 2.0"):
        optimize_steps.main([str(tmp_path / "cond"), "--solvers", "heun", "--steps", "3", "--draws", "4",
                             "--iterations", "4", "--reference-steps", "8"])  # the tab's w: not what is stored


def test_a_text_to_image_model_is_searched_with_fresh_captions_and_samples_with_the_times(tmp_path):
    from test_text2image import tiny_dit, tiny_vae

    from trainers import optimize_steps
    from zoo import hub
    from zoo.data.captioned import captioned
    from zoo.diffusion.guidance import classifier_free_guidance
    from zoo.pipelines.text2image import DEFAULT_W, load_pipeline

    vae, dit = tiny_vae(), tiny_dit()
    hub.save_checkpoint(tmp_path / "vae", vae, "vae", vae.config, {})
    latent = {"vae": str(tmp_path / "vae"), "vae_sha256": hub.weights_sha256(tmp_path / "vae"), "scale": 2.0,
              "shift": 0.1}
    times = [0.999, 0.5, 0.05]
    hub.save_checkpoint(tmp_path / "dit", dit, "dit", dit.config, DiffusionConfig(parameterisation="v"),
                        extra={"latent": latent, "sampling": {"optimized_times": {"heun": {"3": times}}}})
    pipe = load_pipeline(tmp_path / "dit", allow_local_vae=True)
    model = optimize_steps.model_of(pipe, guidance=4.0)
    assert model.conditioning["guidance"] == 4.0 and model.shape == pipe.latent_shape
    assert optimize_steps.model_of(pipe).conditioning["guidance"] == DEFAULT_W
    prompts = captioned(pipe.dataset).captions(3, 7)
    exact = classifier_free_guidance(pipe.denoiser, 4.0, {"context": pipe.context(prompts)},
                                     {"context": pipe.null_context("", 3)})
    z, t = torch.randn(3, *pipe.latent_shape), torch.full((3,), 0.3)
    with torch.no_grad():
        assert torch.equal(model.denoiser_for(3, 7)(z, t), exact(z, t))
    assert _seen_times(pipe, "a red circle", n=2, steps=3, solver="heun", spacing="optimized") == pytest.approx(times)


def test_other_kinds_are_refused_a_search(tmp_path):
    from trainers import optimize_steps

    with pytest.raises(ValueError, match="optimized times are computed for"):
        optimize_steps.model_of(object())  # students: tests/test_distill.py


def test_times_that_do_not_generalise_fall_back_to_the_spacing_the_search_began_from():
    """Held-out draws whose reference is the best fixed spacing's own solution: any other
    times are worse there, so the search (which does beat that spacing on its own draws,
    as the test above shows) must return the spacing's times."""
    from zoo.diffusion.optimize_steps import Draws, default_draws
    from zoo.diffusion.spacing import FIXED_SPACINGS

    d, sch, solver = mixture().denoiser("vp-cosine"), "vp-cosine", "dpmpp_3m"
    train, held = default_draws(lambda n, seed: d, sch, (2,), TINY)
    grids = {sp: make_grid(sch, 5, sp).t[:-1] for sp in FIXED_SPACINGS}
    best = min(grids, key=lambda sp: path_error(solve(d, sch, solver, grids[sp], train.x), train.ref))
    rigged = Draws(d, held.x, solve(d, sch, solver, grids[best], held.x))
    r = optimize_times(d, sch, solver, 5, (2,), TINY, (train, rigged))
    assert r.times == pytest.approx(tuple(grids[best].tolist())) and r.holdout_error == 0.0
    assert r.error == pytest.approx(path_error(solve(d, sch, solver, grids[best], train.x), train.ref))
