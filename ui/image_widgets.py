"""What the image tabs (Unconditional, Guidance) share: the sampler inputs, the live
x_t | x0_hat preview and the output images. Layout only."""
import re
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ui.errors import as_int
from zoo.diffusion import SOLVERS, SPACINGS, get_schedule
from zoo.pixels import grid_image, png_with_parameters, to_uint8

MAX_UI_STEPS = 1000
PREVIEW_IMAGES = 16
PREVIEW_INTERVAL = 0.3  # seconds between live previews
DOWNLOADS = Path(tempfile.gettempdir()) / "zoo-downloads"


def upscaled(image, width: int = 420):
    """Nearest-neighbour upscaling: 28-pixel digits stay crisp on screen."""
    k = max(1, width // image.width)
    return image.resize((image.width * k, image.height * k), resample=0)


def preview_image(schedule: str, progress) -> Image.Image:
    """x_t (rescaled to unit variance, so noise is visible) beside x0_hat, for the first images."""
    alpha, sigma = (float(v) for v in get_schedule(schedule).alpha_sigma(torch.tensor(progress.t, dtype=torch.float64)))
    x_t = progress.x_t[:PREVIEW_IMAGES] / (alpha**2 + sigma**2) ** 0.5
    x0 = progress.x0_hat[:PREVIEW_IMAGES]
    left, right = grid_image(to_uint8(x_t)), grid_image(to_uint8(x0))
    gap = np.full((left.height, 12, *np.asarray(left).shape[2:]), 255, np.uint8)
    both = np.concatenate([np.asarray(left), gap, np.asarray(right)], axis=1)
    return upscaled(Image.fromarray(both), 640)


def sampler_controls(prefix: str, solver: str = "dpmpp_2m", steps: int = 20, spacing: str = "logsnr"):
    """The solver, steps and step-spacing inputs (elem_ids prefix-solver, -steps, -spacing)."""
    return (gr.Dropdown(sorted(SOLVERS), value=solver, label="solver", elem_id=f"{prefix}-solver"),
            gr.Slider(1, MAX_UI_STEPS, value=steps, step=1, label="steps", elem_id=f"{prefix}-steps"),
            gr.Dropdown(sorted(SPACINGS), value=spacing, label="step spacing", elem_id=f"{prefix}-spacing"))


def check_sampler(solver, steps, spacing) -> int:
    """Validates the sampler inputs; returns steps as an int."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {solver!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"step spacing must be one of {sorted(SPACINGS)}, got {spacing!r}")
    return as_int(steps, "steps", 1, MAX_UI_STEPS)


def image_outputs(prefix: str, grid_label: str, preview_label: str = "live: x_t | x0_hat"):
    """Status line, then the live preview beside the final grid: (status, preview, grid)."""
    status = gr.Markdown("", elem_id=f"{prefix}-status")
    with gr.Row():
        images = []
        for label, name in ((preview_label, "preview"), (grid_label, "grid")):
            with gr.Column(min_width=200):
                gr.Markdown(f"*{label}*")  # a caption above, not a badge over the top row of images
                images.append(gr.Image(label=label, show_label=False, type="pil", elem_id=f"{prefix}-{name}",
                                       height=360))
    return status, *images


def save_png(images: np.ndarray, parameters: dict, nrow=None) -> str:
    """The grid at native size as a PNG whose 'parameters' text chunk holds the settings
    (model, solver, steps and seed are in the file name too); returns its path."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    model = re.sub(r"[^A-Za-z0-9._-]+", "--", str(parameters["model"]))  # a repo id "owner/name@rev" is no file name
    name = "{}_{solver}_{steps}steps_seed{seed}_{stamp}.png".format(model, stamp=int(time.time() * 1000),
                                                                   **{k: v for k, v in parameters.items() if k != "model"})
    path = DOWNLOADS / name
    path.write_bytes(png_with_parameters(grid_image(images, nrow=nrow), parameters))
    return str(path)
