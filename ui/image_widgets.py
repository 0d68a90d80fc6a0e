"""What the image tabs (Unconditional, Guidance) share: the sampler inputs, the live
x_t | x0_hat preview and the output images. Layout only."""
import re
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from zoo import registry
from zoo.checks import check_choice
from ui import inputs
from ui.errors import as_int
from ui.serving import CACHE_AGE
from zoo.diffusion import SOLVERS, SPACINGS
from zoo.diffusion.solvers import ETA_RANGE, RECORDS
from zoo.diffusion.spacing import stored_summary
from zoo.pipelines.pixels import grid_image, png_with_parameters, progress_images

MAX_UI_STEPS = 1000
PREVIEW_IMAGES = 16
PREVIEW_INTERVAL = 0.3  # seconds between live previews
DOWNLOADS = Path(tempfile.gettempdir()) / "zoo-downloads"
SCREEN = Path(tempfile.gettempdir()) / "zoo-screen"
SCREEN_AGE = 300  # seconds: Gradio copies a shown file into its own cache at once


def on_screen(image: Image.Image) -> str:
    """`image` as a file of its own, for an Image output. Gradio writes a PIL output into its
    cache under the hash of its bytes, truncating first: two visitors shown the same image at
    the same moment (the same seed and settings) could be sent a half-written file. A file
    path is copied into the cache atomically instead."""
    SCREEN.mkdir(parents=True, exist_ok=True)
    _forget_old(SCREEN, SCREEN_AGE)
    path = SCREEN / f"{uuid.uuid4().hex}.png"
    image.save(path)
    return str(path)


def upscaled(image, width: int = 420):
    """Nearest-neighbour upscaling: 28-pixel digits stay crisp on screen."""
    k = max(1, width // image.width)
    return image.resize((image.width * k, image.height * k), resample=0)


def preview_image(schedule: str, progress) -> str:
    """x_t (rescaled to unit variance, so noise is visible) beside x0_hat, for the first images."""
    left, right = (grid_image(images) for images in progress_images(schedule, progress, PREVIEW_IMAGES))
    gap = np.full((left.height, 12, *np.asarray(left).shape[2:]), 255, np.uint8)
    both = np.concatenate([np.asarray(left), gap, np.asarray(right)], axis=1)
    return on_screen(upscaled(Image.fromarray(both), 640))


def sampler_controls(prefix: str, solver: str = "dpmpp_2m", steps: int = 20, spacing: str = "logsnr"):
    """The solver, steps and step-spacing inputs (elem_ids prefix-solver, -steps, -spacing)."""
    return (inputs.Dropdown(sorted(SOLVERS), value=solver, label="solver", elem_id=f"{prefix}-solver"),
            inputs.Slider(1, MAX_UI_STEPS, value=steps, step=1, label="steps", elem_id=f"{prefix}-steps"),
            inputs.Dropdown(sorted(SPACINGS), value=spacing, label="step spacing", elem_id=f"{prefix}-spacing"))


def sampler_defaults(name):
    """Updates of the solver, steps and spacing inputs to a zoo entry's measured defaults
    (registry.ZooEntry: a bundled model's come from its benchmarks, e.g. optimized times)."""
    try:
        entry = registry.lookup(name)
    except ValueError:  # no model chosen, or a name the model line explains: leave the inputs alone
        return gr.update(), gr.update(), gr.update()
    return gr.update(value=entry.solver), gr.update(value=entry.steps), gr.update(value=entry.spacing)


def optimized_note(pipe) -> str:
    """The model line's note of the optimized step times its checkpoint stores (or nothing)."""
    table = getattr(pipe, "optimized_times", None) or getattr(getattr(pipe, "base", None), "optimized_times", None)
    return f" · spacing `optimized` stored for {stored_summary(table)}" if table else ""


def check_sampler(solver, steps, spacing) -> int:
    """Validates the sampler inputs; returns steps as an int."""
    check_choice(solver, SOLVERS, "solver")
    check_choice(spacing, SPACINGS, "step spacing")
    return as_int(steps, "steps", 1, MAX_UI_STEPS)


def takes_eta(solver) -> bool:
    record = RECORDS.get(solver) if isinstance(solver, str) else None
    return record is not None and "eta" in record.options


def eta_control(prefix: str):
    """DDIM's eta: only ddim takes it, so it is disabled for the other solvers (eta_update)."""
    return inputs.Slider(*ETA_RANGE, value=0.0, step=0.05, label="eta (ddim only)", interactive=False,
                         elem_id=f"{prefix}-eta")


def eta_update(solver):
    """The eta slider for the chosen solver: active where its record has eta, else reset and disabled."""
    if takes_eta(solver):
        return gr.update(interactive=True, info="0: deterministic DDIM; 1: DDPM's ancestral sampler")
    return gr.update(value=0.0, interactive=False, info=f"{solver} takes no eta (only ddim does)")


def solver_options(solver, eta) -> dict:
    """The solver's own options from the UI: eta where the solver takes it (checked), else nothing."""
    from ui.errors import as_float

    eta = as_float(eta, "eta", *ETA_RANGE)  # checked for every solver: a bad value is a bad request
    return {"eta": eta} if takes_eta(solver) else {}


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


def _forget_old(folder: Path, age: float = CACHE_AGE) -> None:
    """Files of `folder` older than `age` seconds go: it must not grow without bound."""
    cutoff = time.time() - age
    for path in folder.glob("*.png"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:  # another request removed it first
            pass


def save_png(images: np.ndarray, parameters: dict, nrow=None) -> str:
    """The grid at native size as a PNG whose 'parameters' text chunk holds the settings
    (model, solver, steps and seed are in the file name too); returns its path."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    _forget_old(DOWNLOADS)
    model = re.sub(r"[^A-Za-z0-9._-]+", "--", str(parameters["model"]))  # a repo id "owner/name@rev" is no file name
    # a unique name: two visitors asking for the same thing in the same millisecond must not
    # overwrite a file the server is still sending to the other
    name = "{}_{solver}_{steps}steps_seed{seed}_{tag}.png".format(
        model, tag=uuid.uuid4().hex[:12], **{k: v for k, v in parameters.items() if k != "model"})
    path = DOWNLOADS / name
    path.write_bytes(png_with_parameters(grid_image(images, nrow=nrow), parameters))
    return str(path)
