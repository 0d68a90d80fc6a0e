"""Text to image: latent diffusion (Rombach et al. 2022) with a DiT denoiser (Peebles &
Xie 2023) conditioned on an open_clip text transformer, decoded by a KL-VAE.

    pipe = zoo.load("shapes-t2i")
    out = pipe("a small red circle in the top left", n=8, guidance=3.0, steps=20, seed=0)
    out.images (uint8, n x 32 x 32 x 3), out.nfe, out.network_calls, out.seconds

The sampler runs on normalised latents z = (E(x) - shift) * scale (unit variance, so the
schedules behave as on pixels; Stable Diffusion's "scale factor"), and the image is the
decoder's D(z / scale + shift). Classifier-free guidance with the empty prompt as the
null condition: D_w = D(z | prompt) + w (D(z | prompt) - D(z | "")), w = 0 the plain
conditional model (zoo.diffusion.guidance states the convention).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from zoo.conditional import CountedNet, GuidedOutput, check_strength
from zoo.diffusion import Denoiser, DiffusionConfig, sample_info
from zoo.diffusion.guidance import check_interval, classifier_free_guidance
from zoo.pixels import check_batch, from_uint8, to_uint8

MAX_PROMPT_CHARS = 300  # a paragraph is a paste error; the token limit is checked too


@dataclass
class TextOutput(GuidedOutput):
    prompts: list = field(default_factory=list)
    unknown_words: list = field(default_factory=list)  # prompt pieces with no trained token (TextEncoder)


@dataclass
class LatentSpace:
    """The VAE and the latent normalisation the DiT was trained with."""

    vae: torch.nn.Module
    scale: float
    shift: float

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> normalised latents (the posterior means)."""
        return (self.vae.encode(images)[0] - self.shift) * self.scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> images (about [-1, 1])."""
        return self.vae.decode(z / self.scale + self.shift)

    @torch.no_grad()
    def encode_uint8(self, images, batch: int = 500) -> torch.Tensor:
        """uint8 (n, H, W, C) images -> normalised latents, in batches."""
        device = next(self.vae.parameters()).device
        x = from_uint8(images)
        return torch.cat([self.encode(chunk.to(device)) for chunk in x.split(batch)])


def check_prompts(prompt, n: int) -> list:
    """One prompt for all n samples, or a list of n prompts; each a non-empty string."""
    prompts = [prompt] * n if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}")
    if len(prompts) != n:
        raise ValueError(f"got {len(prompts)} prompts for {n} samples; give one prompt, or one per sample")
    for p in prompts:
        if not p.strip():
            raise ValueError("prompt is empty: describe the image, e.g. 'a small red circle in the top left'")
        if len(p) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt too long: {len(p)} characters, at most {MAX_PROMPT_CHARS}")
    return [p.strip() for p in prompts]


class TextToImagePipeline:
    def __init__(self, denoiser: Denoiser, latent: LatentSpace, latent_shape: tuple, description: str = "",
                 card: Optional[dict] = None):
        self.denoiser, self.latent, self.latent_shape = denoiser, latent, tuple(latent_shape)
        self.description, self.card = description, card or {}

    @property
    def schedule(self) -> str:
        return self.denoiser.schedule.name  # a name, as the pixel pipelines give

    @property
    def device(self):
        return next(self.denoiser.parameters()).device

    @property
    def net(self):
        return self.denoiser.net

    def context(self, prompts: list):
        """The text encoder's output for the prompts, computed once per sampling run."""
        with torch.no_grad():
            return self.net.encode_text(self.net.text_encoder.tokenize(prompts), len(prompts))

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Normalised latents -> uint8 (n, H, W, C) images (the previews use it too)."""
        return to_uint8(self.latent.decode(z))

    def __call__(self, prompt, n: int = 4, steps: int = 20, solver: str = "dpmpp_2m", seed: int = 0,
                 spacing: str = "logsnr", guidance: float = 3.0, interval=None, callback=None,
                 **options) -> TextOutput:
        prompts = check_prompts(prompt, check_batch(n))
        guidance, interval = check_strength(guidance, "guidance", -1.0), check_interval(interval)
        cond = self.context(prompts)  # ValueError when a prompt has too many tokens
        with torch.no_grad():
            null = self.net.encode_text(None, n)  # the DiT's own null condition: the empty prompt
        net = CountedNet(self.denoiser)
        d = classifier_free_guidance(net, guidance, {"context": cond}, {"context": null}, interval)
        out = sample_info(d, (n, *self.latent_shape), schedule=self.schedule, steps=steps, solver=solver,
                          spacing=spacing, seed=seed, callback=callback, device=self.device, **options)
        return TextOutput(self.decode(out.x0), out.nfe, out.seconds, net.calls, prompts,
                          self.net.text_encoder.unknown_pieces(prompts))

    def generate(self, prompts: list, chunk: int = 50, **kwargs) -> np.ndarray:
        """One image per prompt for any number of prompts, in batches of `chunk`; image i
        has seed i whatever the chunking (benchmarks and the trainer's evaluation)."""
        return np.concatenate([self(prompts[lo:lo + chunk], n=len(prompts[lo:lo + chunk]), seed=lo, **kwargs).images
                               for lo in range(0, len(prompts), chunk)])


def resolve_vae(reference: str) -> Path:
    """A DiT names its VAE by a checkpoint folder, a zoo entry or a Hub repo id."""
    from zoo import hub, registry

    if Path(reference).is_dir():
        return Path(reference)
    try:
        return registry.resolve(reference)
    except ValueError:  # not a zoo entry: a Hub repo id
        return hub.resolve(reference, None, f"the VAE {reference} of this text-to-image model")


def load_vae(folder: Path, device: Optional[str] = None):
    """Registry builder: a VAE checkpoint folder -> the VAE (eval mode; `card`: its eval)."""
    from zoo.gpu import device as pick_device
    from zoo.hub import load_checkpoint

    vae, config = load_checkpoint(folder, device=device or pick_device())
    if config["arch"] != "vae":
        raise ValueError(f"{folder} holds a {config['arch']!r} checkpoint, not a VAE")
    vae.card = config.get("eval", {})
    return vae


def load_latent_space(latent: dict, device) -> LatentSpace:
    """The VAE a DiT config's 'latent' section names, checked to be the very weights the
    DiT was trained on (their SHA-256), with its normalisation."""
    from zoo.hub import weights_sha256

    folder = resolve_vae(latent["vae"])
    if latent.get("vae_sha256") and weights_sha256(folder) != latent["vae_sha256"]:
        raise ValueError(f"the VAE in {folder} is not the one this model was trained on (its weights changed since; "
                         "retrain the text-to-image model on it, or restore that VAE)")
    return LatentSpace(load_vae(folder, device), float(latent.get("scale", 1.0)), float(latent.get("shift", 0.0)))


def load_pipeline(folder: Path, device: Optional[str] = None) -> TextToImagePipeline:
    """Registry builder: a DiT checkpoint folder (+ the VAE its config names) -> pipeline."""
    from zoo.gpu import device as pick_device
    from zoo.hub import load_checkpoint

    device = device or pick_device()
    net, config = load_checkpoint(folder, device=device)
    if config["arch"] != "dit" or "vae" not in config.get("latent", {}):
        raise ValueError(f"{folder} is not a text-to-image checkpoint (a 'dit' with a 'latent' section naming its VAE)")
    d, c = DiffusionConfig(**config["diffusion"]), net.config
    denoiser = Denoiser(net, d.schedule, d.parameterisation, d.sigma_data).eval()
    space = load_latent_space(config["latent"], device)
    if tuple(space.vae.config.latent_shape) != (c.in_channels, c.input_size, c.input_size):
        raise ValueError(f"the VAE makes {space.vae.config.latent_shape} latents, the DiT takes "
                         f"{(c.in_channels, c.input_size, c.input_size)}")
    steps = config.get("training", {}).get("steps", "?")
    return TextToImagePipeline(
        denoiser, space, (c.in_channels, c.input_size, c.input_size),
        f"DiT ({sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters with its text encoder), "
        f"{d.parameterisation} objective, {d.schedule} schedule, {steps} training steps",
        config.get("eval", {}))
