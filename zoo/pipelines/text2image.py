"""Text to image: latent diffusion (Rombach et al. 2022) with a DiT denoiser (Peebles &
Xie 2023) conditioned on an open_clip text transformer, decoded by a KL-VAE.

    pipe = zoo.load("scenes-t2i")
    out = pipe("a red circle to the left of a blue square", n=8, guidance=3.0, steps=20, seed=0)
    out = pipe("three yellow circles", negative_prompt="a red circle")
    out.images (uint8, n x H x W x 3), out.nfe, out.network_calls, out.seconds

The sampler runs on normalised latents z = (E(x) - shift) * scale (unit variance, so the
schedules behave as on pixels; Stable Diffusion's "scale factor"), and the image is the
decoder's D(z / scale + shift). Classifier-free guidance with the empty prompt as the
null condition: D_w = D(z | prompt) + w (D(z | prompt) - D(z | "")), w = 0 the plain
conditional model (zoo.diffusion.guidance states the convention). A negative prompt takes
the empty prompt's place, so guidance pushes away from what it describes (as in Stable
Diffusion's pipelines).
"""
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from zoo.pipelines.base import Pipeline
from zoo.pipelines.conditional import GuidedOutput
from zoo.diffusion import Denoiser, DiffusionConfig
from zoo.diffusion.config import optimized_times_of
from zoo.diffusion.guidance import check_interval, check_w, classifier_free_guidance
from zoo.gpu import place
from zoo.hub.validation import CheckpointError
from zoo.pipelines.pixels import check_batch, from_uint8, to_uint8

MAX_PROMPT_CHARS = 300  # a paragraph is a paste error; the token limit is checked too
DEFAULT_W = 3.0  # the guidance a sample is drawn with unless told (the tab opens on it)


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


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")  # C0/C1 controls, zero-width, separators


def clean_prompt(prompt: str) -> str:
    """Control and invisible characters become spaces, runs of spaces one: a tab or a NUL
    inside a word would split it into pieces the model never saw (and confuse the judge)."""
    return " ".join(CONTROL.sub(" ", prompt).split())


def check_prompts(prompt, n: int) -> list:
    """One prompt for all n samples, or a list of n prompts; each a non-empty string,
    cleaned of control characters."""
    prompts = [prompt] * n if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string or a list of strings, got {type(prompt).__name__}")
    if len(prompts) != n:
        raise ValueError(f"got {len(prompts)} prompts for {n} samples; give one prompt, or one per sample")
    for p in prompts:
        if len(p) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt too long: {len(p)} characters, at most {MAX_PROMPT_CHARS}")
    prompts = [clean_prompt(p) for p in prompts]
    if not all(prompts):
        raise ValueError("prompt is empty: describe the image, e.g. 'a small red circle in the top left'")
    return prompts


class TextToImagePipeline(Pipeline):
    def __init__(self, denoiser: Denoiser, latent: LatentSpace, latent_shape: tuple, description: str = "",
                 card: Optional[dict] = None, dataset: str = "shapes"):
        super().__init__(denoiser, denoiser.schedule.name, description, card)
        self.latent, self.latent_shape = latent, tuple(latent_shape)
        self.dataset = dataset  # the captioned data set it was trained on (zoo.data.captioned)

    @property
    def net(self):
        return self.denoiser.net

    def context(self, prompts: list):
        """The text encoder's output for the prompts, computed once per sampling run."""
        with torch.no_grad():
            return self.net.encode_text(self.net.text_encoder.tokenize(prompts).to(self.device), len(prompts))

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Normalised latents -> uint8 (n, H, W, C) images (the previews use it too)."""
        return to_uint8(self.latent.decode(z))

    def null_context(self, negative_prompt: str, n: int):
        """CFG's null condition: the empty prompt the DiT was trained with (caption dropout),
        or a negative prompt in its place."""
        if not negative_prompt or not negative_prompt.strip():
            with torch.no_grad():
                return self.net.encode_text(None, n)
        return self.context(check_prompts(negative_prompt, 1) * n)

    def guided_denoiser(self, prompts: list, guidance: float, negative_prompt: str = "", interval=None, d=None):
        """CFG's D_w(z, t) for one prompt per sample (two model calls a step); `d` replaces the
        model's denoiser (the counted one of a sampling run)."""
        cond, null = self.context(prompts), self.null_context(negative_prompt, len(prompts))
        return classifier_free_guidance(self.denoiser if d is None else d, guidance, {"context": cond},
                                        {"context": null}, interval)

    def __call__(self, prompt, n: int = 4, steps: int = 20, solver: str = "dpmpp_2m", seed: int = 0,
                 spacing: str = "logsnr", guidance: float = DEFAULT_W, interval=None, callback=None,
                 negative_prompt: str = "", **options) -> TextOutput:
        prompts = check_prompts(prompt, check_batch(n))
        guidance, interval = check_w(guidance), check_interval(interval)
        if not isinstance(negative_prompt, str):
            raise ValueError(f"negative_prompt must be a string, got {type(negative_prompt).__name__}")
        place(self.denoiser, self.latent.vae)  # inside the GPU call on ZeroGPU (zoo.gpu), before encoding
        out, passes = self.sample(
            (n, *self.latent_shape),
            lambda net: self.guided_denoiser(prompts, guidance, negative_prompt, interval, net),
            extra=(self.latent.vae,), steps=steps, solver=solver, spacing=spacing, seed=seed, callback=callback,
            **options)
        typed = prompts + ([clean_prompt(negative_prompt)] if negative_prompt.strip() else [])
        return TextOutput(self.decode(out.x0), out.nfe, out.seconds, passes, prompts,
                          self.net.text_encoder.unknown_pieces(typed))

    def generate(self, prompts: list, chunk: int = 50, **kwargs) -> np.ndarray:
        """One image per prompt for any number of prompts, in batches of `chunk`; image i
        has seed i whatever the chunking (benchmarks and the trainer's evaluation)."""
        return np.concatenate([self(prompts[lo:lo + chunk], n=len(prompts[lo:lo + chunk]), seed=lo, **kwargs).images
                               for lo in range(0, len(prompts), chunk)])


def _vae_kind(reference, allow_local: bool):
    """"local", "entry" or "hub" for a VAE reference; None for anything else. Without
    allow_local it is never a path, so a downloaded config cannot make the app open a
    folder of this machine ('../../../etc', '/etc', 'C:\\x' are no repo ids)."""
    from zoo import hub, registry

    if not isinstance(reference, str):
        return None
    if allow_local and Path(reference).is_dir():
        return "local"
    if reference in {entry.name for entry in registry.list_models()}:
        return "entry"
    try:
        hub.check_repo_id(reference)
    except ValueError:
        return None
    return "hub"


def _vae_expected(allow_local: bool) -> str:
    return "a zoo entry name (such as 'shapes-vae') or a Hub repo id 'owner/name'" + (
        " or a local checkpoint folder" if allow_local else "")


def resolve_vae(reference: str, allow_local: bool = False) -> Path:
    """The checkpoint folder of the VAE a DiT names: a zoo entry or a Hub repo id. A local
    folder only with allow_local=True, which only the command line passes (a trainer's
    --vae): a checkpoint's config is untrusted and may not point at local paths."""
    from zoo import hub, registry

    kind = _vae_kind(reference, allow_local)
    if kind is None:
        raise CheckpointError("the VAE reference", "vae", _vae_expected(allow_local), repr(reference)[:200])
    if kind == "local":
        return Path(reference)
    if kind == "entry":
        return registry.resolve(reference)
    return hub.resolve(reference, None, f"the VAE {reference} of this text-to-image model")


def check_latent(latent, source, allow_local: bool = False) -> dict:
    """A DiT config's 'latent' section, checked before anything is resolved or loaded: a
    NaN or zero scale gives black images, a path in 'vae' would open a local folder.
    `source` names the file in the error (CheckpointError, a ValueError)."""
    if not isinstance(latent, dict):
        raise CheckpointError(source, "latent", "an object with 'vae', 'vae_sha256', 'scale', 'shift'",
                              type(latent).__name__)
    if _vae_kind(latent.get("vae"), allow_local) is None:
        raise CheckpointError(source, "latent.vae", _vae_expected(allow_local), repr(latent.get("vae"))[:200])
    for key, positive in (("scale", True), ("shift", False)):
        value = latent.get(key, 1.0 if positive else 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or (
                positive and value <= 0):
            raise CheckpointError(source, f"latent.{key}", "a finite number" + (" > 0" if positive else ""),
                                  repr(value))
    sha = latent.get("vae_sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise CheckpointError(source, "latent.vae_sha256", "64 lowercase hex digits (a SHA-256)", repr(sha)[:80])
    return latent


def load_vae(folder: Path, device: Optional[str] = None):
    """Registry builder: a VAE checkpoint folder -> the VAE (eval mode; `card`: its eval),
    on the CPU until a sampling call places it."""
    from zoo.hub import load_checkpoint

    vae, config = load_checkpoint(folder, device=device or "cpu")
    if config["arch"] != "vae":
        raise ValueError(f"{folder} holds a {config['arch']!r} checkpoint, not a VAE")
    vae.card = config.get("eval", {})
    return vae


def load_latent_space(latent: dict, device, source="the 'latent' section", allow_local: bool = False) -> LatentSpace:
    """The VAE a DiT config's 'latent' section names (checked: check_latent), verified to
    be the very weights the DiT was trained on (their SHA-256), with its normalisation.
    `source` names the config file in errors; allow_local: see resolve_vae."""
    from zoo.hub import weights_sha256

    latent = check_latent(latent, source, allow_local)
    folder = resolve_vae(latent["vae"], allow_local)
    if latent.get("vae_sha256") and weights_sha256(folder) != latent["vae_sha256"]:
        raise ValueError(f"the VAE in {folder} is not the one this model was trained on (its weights changed since; "
                         "retrain the text-to-image model on it, or restore that VAE)")
    return LatentSpace(load_vae(folder, device), float(latent.get("scale", 1.0)), float(latent.get("shift", 0.0)))


def load_pipeline(folder: Path, device: Optional[str] = None, allow_local_vae: bool = False) -> TextToImagePipeline:
    """Registry builder: a DiT checkpoint folder (+ the VAE its config names) -> pipeline.
    allow_local_vae: the config may name its VAE by a local folder (a model trained here,
    on a VAE given by path; never for a downloaded one). On the CPU until a call places it."""
    from zoo.hub import CONFIG_NAME, load_checkpoint, training_steps

    device = device or "cpu"
    net, config = load_checkpoint(folder, device=device)
    if config["arch"] != "dit" or "latent" not in config:
        raise ValueError(f"{folder} is not a text-to-image checkpoint (a 'dit' with a 'latent' section naming its VAE)")
    d, c = DiffusionConfig(**config["diffusion"]), net.config
    denoiser = d.denoiser(net).eval()
    space = load_latent_space(config["latent"], device, Path(folder) / CONFIG_NAME, allow_local_vae)
    if tuple(space.vae.config.latent_shape) != (c.in_channels, c.input_size, c.input_size):
        raise ValueError(f"the VAE makes {space.vae.config.latent_shape} latents, the DiT takes "
                         f"{(c.in_channels, c.input_size, c.input_size)}")
    steps = training_steps(config) or "?"
    pipe = TextToImagePipeline(
        denoiser, space, (c.in_channels, c.input_size, c.input_size),
        f"DiT ({sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters with its text encoder), "
        f"{d.parameterisation} objective, {d.schedule} schedule, {steps} training steps",
        config.get("eval", {}), dataset=_dataset(config))
    pipe.optimized_times = optimized_times_of(config)
    return pipe


def _dataset(config: dict) -> str:
    """The captioned data set a checkpoint names (an unknown one reads as 'shapes', whose
    judge the scene judge covers too; the name is never used to load code)."""
    from zoo.data.captioned import CAPTIONED

    name = config.get("data", {}).get("dataset") if isinstance(config.get("data"), dict) else None
    return name if isinstance(name, str) and name in CAPTIONED else "shapes"
