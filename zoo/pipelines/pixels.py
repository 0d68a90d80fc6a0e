"""Unconditional pixel-space zoo module: a UNet denoiser on MNIST (28x28x1) or CIFAR-10
(32x32x3), loaded from a checkpoint folder.

    pipe = zoo.load("mnist")
    out = pipe(n=16, steps=20, solver="dpmpp_2m", seed=0)
    out.images (uint8, n x H x W x C), out.nfe, out.seconds, out.network_calls
    pipe(n=16, autoguidance=1.0, guiding_model=zoo.load("mnist-guide"))   # Karras et al. 2024
"""
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from zoo.pipelines.base import Pipeline
from zoo.diffusion import DiffusionConfig
from zoo.diffusion.config import optimized_times_of
from zoo.diffusion import guidance
from zoo.diffusion.sampling import Counted

MAX_BATCH = 64


@dataclass
class ImageOutput:
    images: np.ndarray  # uint8 (n, H, W, C)
    nfe: int
    seconds: float
    network_calls: int  # network passes: nfe, or more with guidance (two per evaluation)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], (n, C, H, W) -> uint8 (n, H, W, C)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def from_uint8(images) -> torch.Tensor:
    """The inverse of to_uint8: uint8 (n, H, W, C) -> float (n, C, H, W) in [-1, 1]."""
    return torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def progress_images(schedule: str, progress, n: int) -> tuple:
    """(x_t, x0_hat) of a solver step's first n images as uint8: x_t divided by its
    marginal std sqrt(alpha^2 + sigma^2), so noise shows at every t (under the VE and flow
    schedules x_t is not at unit scale), and the denoiser's current guess."""
    from zoo.diffusion import get_schedule

    alpha, sigma = (float(v) for v in get_schedule(schedule).alpha_sigma(torch.tensor(progress.t, dtype=torch.float64)))
    return to_uint8(progress.x_t[:n] / (alpha**2 + sigma**2) ** 0.5), to_uint8(progress.x0_hat[:n])


def grid_image(images: np.ndarray, nrow: Optional[int] = None, pad: int = 2, fill: int = 255) -> Image.Image:
    """uint8 (n, H, W, C) -> one PIL grid, nrow images per row, `pad` pixels of grey level
    `fill` around each."""
    n, h, w, c = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), fill, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = img
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def png_with_parameters(image: Image.Image, parameters: dict) -> bytes:
    """PNG bytes with the generation parameters as a JSON text chunk ('parameters')."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", json.dumps(parameters, sort_keys=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def check_batch(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_BATCH:
        raise ValueError(f"batch size must be an integer in [1, {MAX_BATCH}], got {n!r}")
    return n


class PixelPipeline(Pipeline):
    """A UNet denoiser for images of one shape, with its schedule."""

    def __init__(self, denoiser, schedule: str, image_shape: tuple, description: str = "", card: dict = None):
        super().__init__(denoiser, schedule, description, card)
        self.image_shape = tuple(image_shape)

    def __call__(self, n: int = 16, steps: int = 20, solver: str = "dpmpp_2m", seed: int = 0,
                 spacing: str = "logsnr", callback=None, autoguidance: float = 0.0,
                 guiding_model: Optional["PixelPipeline"] = None, **options) -> ImageOutput:
        """n images; autoguidance w > 0 guides the model by `guiding_model`, a bad version of it
        (zoo.diffusion.guidance.autoguidance; its registry entry's `guide`), at two network
        passes per evaluation."""
        w = self.check_autoguidance(autoguidance, guiding_model)
        guiding = Counted(guiding_model.denoiser) if w else None
        out, passes = self.sample((check_batch(n), *self.image_shape), steps=steps, solver=solver, spacing=spacing,
                                  seed=seed, callback=callback, extra=(guiding_model.denoiser,) if w else (),
                                  guide=(lambda net: guidance.autoguidance(net, guiding, w)) if w else None, **options)
        return ImageOutput(to_uint8(out.x0), out.nfe, out.seconds, passes + (guiding.calls if w else 0))

    def check_autoguidance(self, w, guiding_model) -> float:
        """w in AUTOGUIDANCE_RANGE, and a guiding model that draws the same images on the same schedule."""
        w = guidance.check_autoguidance_w(w)
        if w == 0:
            return w
        if not isinstance(guiding_model, PixelPipeline):
            raise ValueError("autoguidance needs a guiding model: a smaller, shorter-trained model of the same data "
                             f"(zoo.load of the entry's guide), got {type(guiding_model).__name__}")
        if guiding_model.schedule != self.schedule or guiding_model.image_shape != self.image_shape:
            raise ValueError(f"the guiding model draws {'x'.join(map(str, guiding_model.image_shape))} images on the "
                             f"{guiding_model.schedule} schedule, this model {'x'.join(map(str, self.image_shape))} "
                             f"on {self.schedule}: autoguidance compares them at the same x_t and t")
        return w


def load_pipeline(folder: Path, device: Optional[str] = None) -> PixelPipeline:
    """Registry builder: checkpoint folder -> pipeline (on the CPU until a call places it)."""
    from zoo.hub import load_checkpoint, training_steps

    net, config = load_checkpoint(folder, device=device or "cpu")
    d = DiffusionConfig(**config["diffusion"])
    shape = (net.config.in_channels, net.config.image_size, net.config.image_size)
    evaluation = config.get("eval", {})
    denoiser = d.denoiser(net).eval()
    steps = training_steps(config) or "?"
    pipe = PixelPipeline(denoiser, d.schedule, shape,
                         f"UNet, {d.parameterisation} objective, {d.schedule} schedule, {steps} training steps",
                         evaluation)
    pipe.optimized_times = optimized_times_of(config)
    return pipe
