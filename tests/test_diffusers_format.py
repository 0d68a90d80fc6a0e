"""Published diffusers-format DDPM models: the discrete schedule, the repo layouts and
allow-lists, and equivalence with diffusers' own schedulers on the same UNet (narrow
random-weight copies of google/ddpm-cifar10-32, written offline)."""
import inspect
import json

import pytest
import torch

from servers.diffusers_repo import (CIFAR10_PARAMETERS, CIFAR10_SCHEDULER_CONFIG, FixedNoise, diffusers_ddim, rel_diff,
                                    write_ddpm_repo, write_pickle_only_repo)
from zoo.pipelines.diffusers_format import (CLIP_SAMPLE_DEFAULT, SCHEDULER_CLASSES, is_diffusers_folder, layout_files,
                                  load_pipeline)
from zoo.diffusion import FIXED_SPACINGS, SOLVERS, Denoiser, DiscreteSchedule, grid_from_times, make_grid
from zoo.diffusion.discrete import BETA_DEFAULTS
from zoo.diffusion.params import Coeffs, target
from zoo.diffusion.solvers import ddim, ddpm, nfe_per_step

BETA_CONFIGS = {
    "linear": {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02},
    "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "squaredcos_cap_v2": {"beta_schedule": "squaredcos_cap_v2"},
}


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    """Narrow CIFAR-10 repos: epsilon and v-prediction, clip_sample on (as published) and off."""
    root = tmp_path_factory.mktemp("diffusers")
    made = {}
    for pred in ("epsilon", "v_prediction"):
        for clip in (True, False):
            scheduler = {**CIFAR10_SCHEDULER_CONFIG, "clip_sample": clip}
            made[pred, clip] = write_ddpm_repo(root / f"{pred}-{clip}", scheduler=scheduler, prediction_type=pred)
    return made


@pytest.fixture(scope="module")
def cifar_pipe(repos):
    return load_pipeline(repos["epsilon", True], device="cpu")


# --- DiscreteSchedule --------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(BETA_CONFIGS))
def test_alphas_cumprod_match_diffusers(kind):
    from diffusers import DDPMScheduler

    config = BETA_CONFIGS[kind]
    theirs = DDPMScheduler(**config).alphas_cumprod
    ours = DiscreteSchedule.from_scheduler_config(config)
    assert ours.name == f"discrete-{kind}-1000"
    assert ours.alphas_cumprod.dtype == torch.float64
    assert (ours.alphas_cumprod - theirs.double()).abs().max() < 1e-6  # diffusers' is float32
    # and the continuous schedule passes through every knot
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    assert torch.allclose(ours.alpha(t) ** 2, ours.alphas_cumprod, rtol=1e-12, atol=0)


def test_trained_betas_are_taken_as_given():
    betas = torch.linspace(1e-3, 0.05, 50, dtype=torch.float64)
    s = DiscreteSchedule.from_scheduler_config({"trained_betas": betas.tolist(), "beta_schedule": "linear"})
    assert s.name == "discrete-trained-50" and s.T == 50
    assert torch.equal(s.betas, betas)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        DiscreteSchedule.from_scheduler_config({"trained_betas": betas.tolist(), "num_train_timesteps": 1000})


def test_knots_sit_at_t_equal_i_plus_one_over_T():
    s = DiscreteSchedule.from_scheduler_config(CIFAR10_SCHEDULER_CONFIG)
    i = torch.arange(1000, dtype=torch.float64)
    t = (i + 1) / 1000
    assert torch.allclose(s.timestep(t), i, atol=1e-9, rtol=0)
    assert torch.allclose(s.log_snr(t), s.knots, rtol=1e-12, atol=1e-12)
    assert (s.t_min, s.t_max) == (1 / 1000, 1.0)
    alpha, sigma = s.alpha_sigma(t)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones_like(t))


def test_t_of_log_snr_inverts_log_snr_between_and_at_knots():
    s = DiscreteSchedule.from_scheduler_config(BETA_CONFIGS["squaredcos_cap_v2"])
    t = torch.cat([torch.linspace(s.t_min, s.t_max, 2001, dtype=torch.float64),
                   torch.rand(500, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.999 + 0.001])
    assert torch.allclose(s.t_of_log_snr(s.log_snr(t)), t, atol=1e-12, rtol=0)
    lam = torch.linspace(float(s.knots[-1]), float(s.knots[0]), 777, dtype=torch.float64)
    assert torch.allclose(s.log_snr(s.t_of_log_snr(lam)), lam, atol=1e-9, rtol=0)
    assert (s.log_snr(t.sort().values).diff() < 0).all()


def test_derivatives_by_autograd_on_any_shape():
    s = DiscreteSchedule.from_scheduler_config(CIFAR10_SCHEDULER_CONFIG)
    t = torch.tensor([[0.1234, 0.5005], [0.7777, 0.9876]], dtype=torch.float64)  # off the knots
    d_alpha, d_sigma = s.derivatives(t)
    assert d_alpha.shape == t.shape and (d_alpha < 0).all() and (d_sigma > 0).all()
    h = 1e-7  # inside one segment, where the interpolation is smooth
    assert torch.allclose(d_alpha, (s.alpha(t + h) - s.alpha(t - h)) / (2 * h), rtol=1e-5)
    assert torch.allclose(d_sigma, (s.sigma(t + h) - s.sigma(t - h)) / (2 * h), rtol=1e-5)


def test_unsupported_beta_schedules_are_refused():
    with pytest.raises(ValueError, match="linear.*scaled_linear.*squaredcos_cap_v2"):
        DiscreteSchedule.from_scheduler_config({"beta_schedule": "sigmoid"})
    with pytest.raises(ValueError, match="zero terminal SNR"):
        DiscreteSchedule.from_scheduler_config({"rescale_betas_zero_snr": True})
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        DiscreteSchedule(torch.tensor([0.1, 1.0]))


def test_allowed_schedulers_share_the_beta_and_clip_defaults():
    """Missing beta fields fall back to BETA_DEFAULTS and clip_sample to
    CLIP_SAMPLE_DEFAULT: both must be what each allowed diffusers class would use."""
    import diffusers

    for name in SCHEDULER_CLASSES:
        params = inspect.signature(getattr(diffusers, name).__init__).parameters
        assert {k: params[k].default for k in BETA_DEFAULTS} == BETA_DEFAULTS, name
        assert params["trained_betas"].default is None, name
        clip = params["clip_sample"].default if "clip_sample" in params else False
        assert clip == CLIP_SAMPLE_DEFAULT.get(name, False), name


def test_diffusers_v_is_this_projects_v():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(**BETA_CONFIGS["linear"])
    s = DiscreteSchedule.from_scheduler_config(BETA_CONFIGS["linear"])
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    timesteps = torch.tensor([0, 250, 700, 999])
    theirs = scheduler.get_velocity(x0, eps, timesteps)
    c = Coeffs.at(s, (timesteps + 1) / 1000, x0, derivatives=False)
    assert rel_diff(target(x0, eps, c, "v"), theirs) < 1e-5


# --- grid and clipping -----------------------------------------------------------------

def test_make_grid_is_grid_from_times_of_its_spacing():
    s = DiscreteSchedule.from_scheduler_config(CIFAR10_SCHEDULER_CONFIG)
    for spacing in FIXED_SPACINGS:
        g = make_grid(s, 7, spacing)
        h = grid_from_times(s, g.t[:-1])
        assert torch.equal(g.t, h.t) and torch.equal(g.alpha, h.alpha) and torch.equal(g.sigma, h.sigma)
        assert (float(g.t[0]) == pytest.approx(s.t_max) and float(g.t[-2]) == pytest.approx(s.t_min)
                and g.sigma[-1] == 0 and g.alpha[-1] == 1)
    with pytest.raises(ValueError, match="strictly decreasing"):
        grid_from_times(s, [0.5, 0.5, 0.1])


def test_clip_x0_bounds_the_denoiser():
    def net(x, t):  # an eps prediction whose x0_hat is far outside [-1.5, 1.5]
        return -50 * x

    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    schedule = DiscreteSchedule.from_scheduler_config(CIFAR10_SCHEDULER_CONFIG)
    free = Denoiser(net, schedule)(x, 0.5)
    clipped = Denoiser(net, schedule, clip_x0=1.5)(x, 0.5)
    assert free.abs().max() > 1.5 and torch.equal(clipped, free.clamp(-1.5, 1.5))
    with pytest.raises(ValueError, match="clip_x0"):
        Denoiser(net, schedule, clip_x0=0.0)


# --- equivalence with diffusers -------------------------------------------------------------

@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("clip", [True, False])
def test_ddim_matches_diffusers_ddim_loop(repos, prediction_type, clip):
    """Same UNet, same timesteps, same starting noise: our ddim (walked on diffusers'
    timesteps by grid_from_times) is diffusers' DDIMScheduler loop. diffusers steps with the
    clipped x0_hat and the eps recomputed from it when use_clipped_model_output=True, which
    is what our solvers do (eps from x0_hat); its default (False) keeps the unclipped eps."""
    pipe = load_pipeline(repos[prediction_type, clip], device="cpu")
    config = json.loads((repos[prediction_type, clip] / "scheduler_config.json").read_text())
    unet = pipe.denoiser.net.unet
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        timesteps, theirs = diffusers_ddim(unet, config, x, steps=10)
        grid = grid_from_times(pipe.schedule, (timesteps.double() + 1) / pipe.schedule.T)
        ours = ddim(pipe.denoiser, x, grid, FixedNoise(None), eta=0.0)
    rel = rel_diff(ours, theirs)
    print(f"\nddim vs diffusers DDIM ({prediction_type}, clip_sample={clip}): max relative difference {rel:.2e}")
    assert rel < 1e-4, f"max relative difference {rel:.2e}"
    if clip:  # the clip really acts here: diffusers' default eps handling then differs
        with torch.no_grad():
            _, unclipped_eps = diffusers_ddim(unet, config, x, steps=10, use_clipped_model_output=False)
        assert rel_diff(ours, unclipped_eps) > 1e-2


def ddpm_step(pipe, timestep, prev_timestep, x, z):
    """One step of our ddpm solver from discrete timestep `timestep` to `prev_timestep`:
    the state its callback sees at the second grid point."""
    T = pipe.schedule.T
    grid = grid_from_times(pipe.schedule, [(timestep + 1) / T, (prev_timestep + 1) / T])
    seen = {}
    ddpm(pipe.denoiser, x, grid, FixedNoise(z), lambda i, t, x_t, x0: seen.setdefault(i, x_t))
    return seen[1]


@pytest.mark.parametrize("timestep, inference_steps", [(500, None), (980, 50), (37, None)])
def test_one_ddpm_step_matches_diffusers_fixed_small(cifar_pipe, timestep, inference_steps):
    """With variance_type fixed_small (the posterior variance beta~, Ho et al. Eq. 7) one
    diffusers DDPMScheduler step is one step of our ddpm, noise and clipping included."""
    from diffusers import DDPMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    scheduler = DDPMScheduler.from_config({**CIFAR10_SCHEDULER_CONFIG, "variance_type": "fixed_small"})
    if inference_steps:
        scheduler.set_timesteps(inference_steps)
    prev = int(scheduler.previous_timestep(timestep))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    # the variance noise diffusers draws from this generator, drawn again the same way
    z = randn_tensor(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    with torch.no_grad():
        out = cifar_pipe.denoiser.net.unet(x, timestep).sample
        theirs = scheduler.step(out, timestep, x, generator=torch.Generator().manual_seed(3)).prev_sample
        ours = ddpm_step(cifar_pipe, timestep, prev, x, z)
    rel = rel_diff(ours, theirs)
    print(f"\nddpm step {timestep}->{prev} vs diffusers DDPMScheduler: max relative difference {rel:.2e}")
    assert rel < 1e-5, f"max relative difference {rel:.2e}"


def test_ddpm_posterior_mean_matches_cifar_fixed_large(cifar_pipe):
    """The published CIFAR-10 config samples with variance_type fixed_large (beta_t, Ho et
    al.'s sigma_t^2 = beta_t choice); our ddpm uses the posterior variance beta~_t. The two
    differ only in the noise's scale: the posterior means agree."""
    from diffusers import DDPMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    scheduler = DDPMScheduler.from_config(CIFAR10_SCHEDULER_CONFIG)
    assert scheduler.config.variance_type == "fixed_large"
    timestep = 600
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    z = randn_tensor(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    abar = scheduler.alphas_cumprod
    beta_t = 1 - abar[timestep] / abar[timestep - 1]
    with torch.no_grad():
        out = cifar_pipe.denoiser.net.unet(x, timestep).sample
        theirs = scheduler.step(out, timestep, x, generator=torch.Generator().manual_seed(5)).prev_sample
        ours = ddpm_step(cifar_pipe, timestep, timestep - 1, x, torch.zeros_like(x))
    assert rel_diff(ours, theirs - beta_t.sqrt() * z) < 1e-5


# --- every solver and spacing -------------------------------------------------------------

@pytest.mark.parametrize("spacing", sorted(FIXED_SPACINGS))  # "optimized" needs stored times: none in a diffusers repo
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_solver_and_spacing_samples(cifar_pipe, solver, spacing):
    states = []
    out = cifar_pipe(n=1, steps=3, solver=solver, seed=0, spacing=spacing,
                     callback=lambda i, t, x_t, x0: states.append((x_t, x0)))
    assert out.images.shape == (1, 32, 32, 3) and out.images.dtype.name == "uint8"
    assert out.nfe == nfe_per_step(solver, 3)
    assert states and all(torch.isfinite(x_t).all() and torch.isfinite(x0).all() for x_t, x0 in states)


# --- layouts and allow-lists --------------------------------------------------------------

def _names(folder):
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


def test_layout_files_flat_and_pipeline(tmp_path):
    flat = layout_files(_names(write_ddpm_repo(tmp_path / "flat")))
    assert (flat.layout, flat.unet_config, flat.unet_weights, flat.scheduler_config, flat.model_index, flat.readme) \
        == ("flat", "config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", None, "README.md")
    pipe = layout_files(_names(write_ddpm_repo(tmp_path / "pipe", layout="pipeline")))
    assert (pipe.layout, pipe.unet_config, pipe.unet_weights, pipe.scheduler_config, pipe.model_index) == \
        ("pipeline", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
         "scheduler/scheduler_config.json", "model_index.json")
    assert set(pipe.files) == set(_names(tmp_path / "pipe"))
    # Google's repos carry both layouts, and pickle weights beside safetensors: safetensors only
    both = ["config.json", "diffusion_pytorch_model.bin", "scheduler_config.json", "model_index.json",
            "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors",
            "scheduler/scheduler_config.json"]
    assert layout_files(both).unet_weights == "unet/diffusion_pytorch_model.safetensors"


def test_layout_files_refuses_pickle_text_models_and_missing_schedulers(tmp_path):
    with pytest.raises(ValueError, match="only safetensors.*pickle"):
        layout_files(_names(write_pickle_only_repo(tmp_path / "pickle")))
    with pytest.raises(ValueError, match="only safetensors.*pickle"):
        load_pipeline(tmp_path / "pickle", device="cpu")
    clip_text = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.json",
                 "merges.txt", "special_tokens_map.json", "README.md"]
    with pytest.raises(ValueError, match="no diffusers UNet2DModel.*DDPMPipeline"):
        layout_files(clip_text)
    with pytest.raises(ValueError, match="no diffusers UNet2DModel"):
        layout_files(["tokenizer/vocab.json", "text_encoder/config.json", "text_encoder/model.safetensors"])
    with pytest.raises(ValueError, match="scheduler config"):
        layout_files(["config.json", "diffusion_pytorch_model.safetensors"])


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("file, changes, message", [
    ("config.json", {"_class_name": "UNet2DConditionModel"}, "UNet2DModel"),
    ("config.json", {"_class_name": None}, "UNet2DModel"),
    ("config.json", {"time_embedding_type": "fourier"}, "positional"),
    ("config.json", {"num_class_embeds": 10}, "class-conditional"),
    ("scheduler_config.json", {"_class_name": "ScoreSdeVeScheduler"}, "DDPMScheduler"),
    ("scheduler_config.json", {"prediction_type": "flow_prediction"}, "epsilon"),
    ("scheduler_config.json", {"thresholding": True}, "thresholding"),
    ("scheduler_config.json", {"variance_type": "learned_range"}, "learned variance"),
    ("scheduler_config.json", {"beta_schedule": "laplace"}, "squaredcos_cap_v2"),
])
def test_unknown_classes_and_options_are_refused(tmp_path, file, changes, message):
    folder = write_ddpm_repo(tmp_path / "repo")
    _edit_json(folder / file, **changes)
    with pytest.raises(ValueError, match=message):
        load_pipeline(folder, device="cpu")


@pytest.mark.parametrize("changes, message", [
    ({"_class_name": "ScoreSdeVePipeline"}, "DDPMPipeline"),
    ({"_class_name": "StableDiffusionPipeline"}, "DDPMPipeline"),
    ({"unet": ["diffusers", "UNet2DConditionModel"]}, "UNet2DModel"),
    ({"unet": ["my_module", "UNet2DModel"]}, "UNet2DModel"),
    ({"vae": ["diffusers", "AutoencoderKL"]}, "unet \\+ scheduler"),
])
def test_model_index_allow_list(tmp_path, changes, message):
    folder = write_ddpm_repo(tmp_path / "repo", layout="pipeline")
    _edit_json(folder / "model_index.json", **changes)
    with pytest.raises(ValueError, match=message):
        load_pipeline(folder, device="cpu")


def test_is_diffusers_folder_tells_the_formats_apart(tmp_path):
    assert is_diffusers_folder(write_ddpm_repo(tmp_path / "flat"))
    assert is_diffusers_folder(write_ddpm_repo(tmp_path / "pipe", layout="pipeline"))
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.json").write_text(json.dumps({"arch": "unet", "net": {}}))
    assert not is_diffusers_folder(own)
    assert not is_diffusers_folder(tmp_path / "empty")


def test_layouts_and_legacy_attention_names_load_the_same_model(tmp_path, cifar_pipe):
    """Google's DDPM checkpoints keep diffusers 0.0.4's attention names (query / key /
    value / proj_attn); they load strictly into today's UNet2DModel, like the new names."""
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = cifar_pipe.denoiser(x, 0.3)
        for layout, legacy in (("pipeline", False), ("flat", True)):
            pipe = load_pipeline(write_ddpm_repo(tmp_path / f"{layout}-{legacy}", layout=layout,
                                                 legacy_attention=legacy), device="cpu")
            assert torch.equal(pipe.denoiser(x, 0.3), expected)
    assert "UNet2DModel" in cifar_pipe.description and "discrete-linear-1000" in cifar_pipe.description
    assert "2.2M parameters" in cifar_pipe.description and "epsilon" in cifar_pipe.description


def test_full_size_cifar10_model_loads(tmp_path):
    """The exact published config: Ho et al.'s 35.7M-parameter CIFAR-10 UNet."""
    pipe = load_pipeline(write_ddpm_repo(tmp_path / "full", narrow=False), device="cpu")
    n = sum(p.numel() for p in pipe.denoiser.parameters())
    assert n == CIFAR10_PARAMETERS and f"{n / 1e6:.1f}M" == "35.7M"
    assert "35.7M parameters" in pipe.description
    with torch.no_grad():
        x0 = pipe.denoiser(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(7)), 0.5)
    assert x0.shape == (1, 3, 32, 32) and torch.isfinite(x0).all()


def test_untrusted_diffusers_weights_are_validated_before_use(tmp_path):
    """A published repo is untrusted input like any checkpoint: NaN weights, a wrong shape, and
    sizes the weights cannot back are named errors, found before the UNet is allocated."""
    from safetensors.torch import load_file, save_file

    from zoo.hub import CheckpointError

    folder = write_ddpm_repo(tmp_path / "repo")
    weights = folder / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    name = next(k for k in state if k.endswith("conv_in.weight"))
    save_file({**state, name: torch.full_like(state[name], float("nan"))}, str(weights))
    with pytest.raises(CheckpointError, match="conv_in.weight.*finite values"):
        load_pipeline(folder)
    save_file({**state, name: state[name][:, :2].contiguous()}, str(weights))
    with pytest.raises(CheckpointError, match="conv_in.weight.*shape"):
        load_pipeline(folder)
    save_file(state, str(weights))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "block_out_channels": [4096] * 4}))
    with pytest.raises(CheckpointError, match="block_out_channels.*up to"):
        load_pipeline(folder)
    (folder / "config.json").write_text(json.dumps({**config, "sample_size": 100_000}))
    with pytest.raises(CheckpointError, match="sample_size"):
        load_pipeline(folder)
