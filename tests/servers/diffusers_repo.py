"""Offline stand-ins for published diffusers-format DDPM repos: google/ddpm-cifar10-32's
exact configs (Ho et al.'s CIFAR-10 model as diffusers ships it) with randomly
initialised UNet2DModel weights, written with safetensors, in either repo layout."""
import json
from pathlib import Path

import torch

# google/ddpm-cifar10-32, config.json and scheduler_config.json as published.
CIFAR10_UNET_CONFIG = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu", "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"], "downsample_padding": 0,
    "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2, "mid_block_scale_factor": 1,
    "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
    "time_embedding_type": "positional", "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}
CIFAR10_SCHEDULER_CONFIG = {
    "_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02, "beta_schedule": "linear",
    "beta_start": 0.0001, "clip_sample": True, "num_train_timesteps": 1000, "trained_betas": None,
    "variance_type": "fixed_large",
}
CIFAR10_PARAMETERS = 35_746_307  # diffusers 0.42's UNet2DModel on the config above: Ho et al.'s 35.7M

# The same architecture a quarter as wide (2.2M parameters), so tests run in seconds.
NARROW_UNET_CONFIG = {**CIFAR10_UNET_CONFIG, "block_out_channels": [32, 64, 64, 64], "norm_num_groups": 8}


def _legacy_attention_names(state: dict) -> dict:
    """Current attention names back to diffusers 0.0.4's (query / key / value / proj_attn),
    as in Google's published DDPM checkpoints."""
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for key, value in state.items():
        for new, legacy in old.items():
            if ".attentions." in key and f".{new}." in key:
                key = key.replace(f".{new}.", f".{legacy}.")
        renamed[key] = value
    return renamed


def random_unet(config: dict, seed: int = 0):
    """diffusers' UNet2DModel with its own random init; any all-zero parameter (an output
    layer some versions zero-initialise) is perturbed so outputs depend on every layer."""
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):  # leave the global RNG as it was
        torch.manual_seed(seed)
        unet = UNet2DModel.from_config({k: v for k, v in config.items() if not k.startswith("_")})
        with torch.no_grad():
            for p in unet.parameters():
                if not p.any():
                    p.add_(0.02 * torch.randn_like(p))
    return unet.eval()


def write_ddpm_repo(folder, layout: str = "flat", narrow: bool = True, seed: int = 0, scheduler: dict | None = None,
                    prediction_type: str = "epsilon", legacy_attention: bool = False) -> Path:
    """A diffusers DDPM repo in `folder`: flat (config.json at the root, as
    UNet2DModel.save_pretrained) or pipeline (model_index.json + unet/ + scheduler/, as
    DDPMPipeline.save_pretrained). `scheduler`: the scheduler config (default CIFAR-10's);
    prediction_type is written unless it is the default "epsilon" the published config omits."""
    from safetensors.torch import save_file

    if layout not in ("flat", "pipeline"):
        raise ValueError(f"layout must be 'flat' or 'pipeline', got {layout!r}")
    folder = Path(folder)
    unet_config = NARROW_UNET_CONFIG if narrow else CIFAR10_UNET_CONFIG
    scheduler_config = dict(scheduler or CIFAR10_SCHEDULER_CONFIG)
    if prediction_type != "epsilon":
        scheduler_config["prediction_type"] = prediction_type
    state = {k: v.contiguous() for k, v in random_unet(unet_config, seed).state_dict().items()}
    if legacy_attention:
        state = _legacy_attention_names(state)
    unet_dir = folder / "unet" if layout == "pipeline" else folder
    unet_dir.mkdir(parents=True, exist_ok=True)
    (unet_dir / "config.json").write_text(json.dumps(unet_config, indent=2))
    save_file(state, str(unet_dir / "diffusion_pytorch_model.safetensors"))
    scheduler_dir = folder / "scheduler" if layout == "pipeline" else folder
    scheduler_dir.mkdir(parents=True, exist_ok=True)
    (scheduler_dir / "scheduler_config.json").write_text(json.dumps(scheduler_config, indent=2))
    if layout == "pipeline":
        index = {"_class_name": "DDPMPipeline", "_diffusers_version": "0.1.1",
                 "scheduler": ["diffusers", scheduler_config["_class_name"]], "unet": ["diffusers", "UNet2DModel"]}
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- pytorch\n- diffusers\n---\nTest DDPM.\n")
    return folder


def write_pickle_only_repo(folder) -> Path:
    """A flat repo whose UNet weights exist only as diffusion_pytorch_model.bin. The bytes
    are a plain placeholder: nothing is pickled, and nothing should ever read them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CIFAR10_UNET_CONFIG, indent=2))
    (folder / "scheduler_config.json").write_text(json.dumps(CIFAR10_SCHEDULER_CONFIG, indent=2))
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"not a checkpoint: pickle files are never read\n")
    return folder


def rel_diff(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs|: relative to the sample's scale."""
    return float((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max())


class FixedNoise:
    """A noise source whose every draw is the given tensor."""

    def __init__(self, z):
        self.z = z

    def normal(self):
        return self.z


def diffusers_ddim(unet, scheduler_config, x, steps, use_clipped_model_output=True):
    """diffusers' DDIM loop (DDIMPipeline's, eta 0), returning its timesteps and the sample."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config({**scheduler_config, "set_alpha_to_one": True})
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        out = unet(x, t).sample
        x = scheduler.step(out, t, x, eta=0.0, use_clipped_model_output=use_clipped_model_output).prev_sample
    return scheduler.timesteps, x
