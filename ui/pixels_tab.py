"""Unconditional tab: sample MNIST / CIFAR-10 UNets with any solver, watching x_t and the
predicted x0_hat as the solver runs; download the grid as a PNG that carries its
generation parameters. Layout and wiring only; the work is in zoo.pixels."""
import gradio as gr

import zoo
from ui import plots
from ui.opened import Target
from ui.errors import as_float, as_int, friendly
from ui.image_widgets import (PREVIEW_INTERVAL, check_sampler, image_outputs, preview_image, sampler_controls,
                              save_png, upscaled)
from ui.streaming import stream_sampling
from zoo import registry
from zoo.diffusion import get_schedule
from zoo.gpu import gpu, sampling_seconds
from zoo.pixels import MAX_BATCH, grid_image

TASKS = ("unconditional",)


def unconditional_models() -> list:
    return registry.names_for(*TASKS)


@friendly
def model_info(name):
    entry = registry.entry_for(name, TASKS)
    where = registry.source(name)
    if where == "missing":
        how = f"Train them with\n\n`{entry.train_command}`\n\nor run the app online." if entry.train_command else (
            "Run the app online.")
        return (f"**{name}**: {entry.description}\n\n**Weights not available here** (not bundled, not in the local "
                f"cache, Hub unreachable). {how}")
    pipe = zoo.load(name)
    ev = pipe.card
    numbers = ""
    if "vlb_bits_per_dim_test" in ev:
        numbers = (f" · variational bound on real test digits **{ev['vlb_bits_per_dim_test']:.3f} bits/dim**"
                   f" · {ev['confident_digits']:.0%} of samples classified as a digit with confidence > 0.9 "
                   f"({ev['confident_solver']})")
    return f"**{name}** ({where}): {pipe.description}{numbers}"


def _check(model, solver, steps, spacing, eta, seed, batch):
    registry.entry_for(model, TASKS)
    return (check_sampler(solver, steps, spacing), as_float(eta, "eta", 0.0, 1.0),
            as_int(seed, "seed", 0, 2**31 - 1), as_int(batch, "batch size", 1, MAX_BATCH))


def _gpu_seconds(model, solver, steps, spacing, eta, seed, batch):
    return sampling_seconds(batch, solver, steps)


@friendly
@gpu(duration=_gpu_seconds)
def on_sample(model, solver, steps, spacing, eta, seed, batch):
    """Streams (preview, grid, status, png file, schedule plot)."""
    steps, eta, seed, batch = _check(model, solver, steps, spacing, eta, seed, batch)
    pipe = zoo.load(model)
    options = {"eta": eta} if solver == "ddim" else {}
    schedule_plot = plots.schedule_figure(pipe.schedule, steps, spacing)
    yield None, None, f"sampling {batch} images with {solver}, {steps} steps ...", None, schedule_plot

    def run(callback):
        return pipe(n=batch, steps=steps, solver=solver, seed=seed, spacing=spacing, callback=callback, **options)

    for kind, value in stream_sampling(run, PREVIEW_INTERVAL):
        if kind == "progress":
            status = f"step {value.step + 1}/{steps} · t = {value.t:.3f} · left: x_t, right: predicted x0_hat"
            yield preview_image(pipe.schedule, value), gr.skip(), status, gr.skip(), gr.skip()
    out = value
    parameters = {"model": model, "solver": solver, "steps": steps, "spacing": spacing, "seed": seed,
                  "batch": batch, "nfe": out.nfe, "schedule": get_schedule(pipe.schedule).name, **options}
    status = (f"**{batch} images** · {solver}, {steps} steps ({spacing}) · NFE **{out.nfe}** · "
              f"**{out.seconds:.2f} s** · seeds {seed}..{seed + batch - 1} (image i uses seed + i)")
    yield gr.skip(), upscaled(grid_image(out.images)), status, save_png(out.images, parameters), gr.skip()


def build_pixels_tab():
    """The Unconditional tab's components and events (inside an open gr.Blocks / gr.Tab)."""
    models = unconditional_models()
    gr.Markdown("Unconditional UNets in pixel space (Ho et al. 2020). Pick a model and a solver; the preview shows "
                "the noisy state x_t and the denoiser's current guess x0_hat while the solver runs.")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(models, value=models[0], label="model", elem_id="px-model")
            info = gr.Markdown("", elem_id="px-info")
            solver, steps, spacing = sampler_controls("px")
            eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="eta (ddim only)", elem_id="px-eta")
            seed = gr.Number(0, precision=0, label="seed", elem_id="px-seed")
            batch = gr.Slider(1, MAX_BATCH, value=16, step=1, label="batch size", elem_id="px-batch")
            with gr.Row():
                run_btn = gr.Button("Sample", variant="primary", elem_id="px-sample")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="px-stop")
        with gr.Column(scale=3):
            status, preview, grid = image_outputs("px", "samples")
            download = gr.File(label="PNG with the generation parameters", elem_id="px-download")
            schedule_plot = gr.Plot(show_label=False, elem_id="px-schedule")
    event = run_btn.click(on_sample, [model, solver, steps, spacing, eta, seed, batch],
                          [preview, grid, status, download, schedule_plot], api_name="pixels_sample",
                          concurrency_limit=1)
    stop_btn.click(None, None, None, cancels=[event])
    model.change(model_info, model, info, api_name="pixels_info")
    return {"info": (model_info, [model], info), "targets": [Target(model, models, TASKS)]}
