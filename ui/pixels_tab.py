"""Unconditional tab: sample MNIST / CIFAR-10 UNets with any solver, watching x_t and the
predicted x0_hat as the solver runs; download the grid as a PNG that carries its
generation parameters. Layout and wiring only; the work is in zoo.pipelines.pixels."""
import time

import gradio as gr

import zoo
from ui import inputs, plots, serving
from ui.errors import as_int, friendly
from ui.image_widgets import (PREVIEW_INTERVAL, check_sampler, eta_control, eta_update, image_outputs, on_screen,
                              optimized_note, preview_image, sampler_controls, sampler_defaults, save_png,
                              solver_options, upscaled)
from ui.opened import Target
from ui.tab_parts import TabParts
from ui.streaming import STOPS, sample_updates
from zoo import registry
from zoo.diffusion import get_schedule
from zoo.gpu import gpu, sampling_seconds
from zoo.pipelines.pixels import MAX_BATCH, grid_image

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
    return f"**{name}** ({where}): {pipe.description}{quality_note(pipe.card)}{optimized_note(pipe)}"


def quality_note(ev: dict) -> str:
    """The model card's digit-quality numbers (bench/digit_quality.py's `eval` keys) for the
    model line; a card without them (a Hub model's) adds nothing."""
    parts = []
    if "confident_digits" in ev:
        real = f"; real test digits {ev['real_confident']:.0%}" if "real_confident" in ev else ""
        parts.append(f"**{ev['confident_digits']:.0%}** of samples classified as a digit with confidence > 0.9 "
                     f"({ev['confident_solver']}{real})")
    if ev.get("frechet_reference") and "frechet_distance" in ev:
        parts.append(f"Frechet distance to real digits **x{ev['frechet_distance'] / ev['frechet_reference']:.2f}** "
                     "that of real training digits")
    if "class_share_min" in ev:
        parts.append(f"each digit {ev['class_share_min']:.0%}-{ev['class_share_max']:.0%} of samples (real: 10%)")
    if "vlb_bits_per_dim_test" in ev:
        parts.append(f"variational bound on real test digits **{ev['vlb_bits_per_dim_test']:.3f} bits/dim**")
    return "".join(f" · {p}" for p in parts)


def _check(model, solver, steps, spacing, eta, seed, batch) -> dict:
    """The request, checked, as keyword arguments of PixelPipeline."""
    registry.entry_for(model, TASKS)
    steps, batch = check_sampler(solver, steps, spacing), as_int(batch, "batch size", 1, MAX_BATCH)
    serving.check_budget(batch, serving.passes(solver, steps), serving.IMAGE_BUDGET)
    return dict(n=batch, steps=steps, solver=solver, spacing=spacing, seed=as_int(seed, "seed", 0, 2**31 - 1),
                **solver_options(solver, eta))


def _gpu_seconds(model, solver, steps, spacing, eta, seed, batch, *_):
    return sampling_seconds(batch, solver, steps)


@friendly(status=2, outputs=5)
@gpu(duration=_gpu_seconds)
def on_sample(model, solver, steps, spacing, eta, seed, batch, request: gr.Request = None):
    """Streams (preview, grid, status, png file, schedule plot); a refused request or Stop
    leaves the previous grid and download on screen."""
    start, req = time.perf_counter(), _check(model, solver, steps, spacing, eta, seed, batch)
    pipe, stop = zoo.load(model), STOPS.start(request)
    yield (gr.skip(), gr.skip(), f"sampling {req['n']} images with {solver}, {req['steps']} steps ...", gr.skip(),
           plots.schedule_figure(pipe.schedule, req["steps"], spacing, solver, getattr(pipe, "optimized_times", None)))
    run = lambda callback: pipe(callback=callback, **req)
    render = lambda p: preview_image(pipe.schedule, p)
    for kind, value, status in sample_updates(run, req["steps"], stop, render, "left: x_t, right: predicted x0_hat",
                                              PREVIEW_INTERVAL):
        if kind != "done":
            yield value if kind == "progress" else gr.skip(), gr.skip(), status, gr.skip(), gr.skip()
        if kind == "stopped":
            return
    out, seconds, batch = value, time.perf_counter() - start, req.pop("n")
    parameters = {"model": model, **req, "batch": batch, "nfe": out.nfe, "schedule": get_schedule(pipe.schedule).name}
    status = (f"**{batch} images** · {solver}, {req['steps']} steps ({spacing}) · NFE **{out.nfe}** · "
              f"**{seconds:.2f} s** from click to result (sampling {out.seconds:.2f} s) · seeds "
              f"{req['seed']}..{req['seed'] + batch - 1} (image i uses seed + i)")
    yield gr.skip(), on_screen(upscaled(grid_image(out.images))), status, save_png(out.images, parameters), gr.skip()


def build_pixels_tab():
    """The Unconditional tab's components and events (inside an open gr.Blocks / gr.Tab)."""
    models = unconditional_models()
    gr.Markdown("Unconditional UNets in pixel space (Ho et al. 2020). Pick a model and a solver; the preview shows "
                "the noisy state x_t and the denoiser's current guess x0_hat while the solver runs.")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = inputs.Dropdown(models, value=models[0], label="model", elem_id="px-model")
            info = gr.Markdown("", elem_id="px-info")
            first = registry.lookup(models[0])  # the entry's measured defaults (model.change resets them)
            solver, steps, spacing = sampler_controls("px", first.solver, first.steps, first.spacing)
            eta = eta_control("px")
            seed = inputs.Number(0, precision=0, label="seed", elem_id="px-seed")
            batch = inputs.Slider(1, MAX_BATCH, value=16, step=1, label="batch size", elem_id="px-batch")
            with gr.Row():
                run_btn = gr.Button("Sample", variant="primary", elem_id="px-sample")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="px-stop")
        with gr.Column(scale=3):
            status, preview, grid = image_outputs("px", "samples")
            download = gr.File(label="PNG with the generation parameters", elem_id="px-download")
            schedule_plot = gr.Plot(show_label=False, elem_id="px-schedule")
    sample_inputs = [model, solver, steps, spacing, eta, seed, batch]
    run_btn.click(on_sample, sample_inputs, [preview, grid, status, download, schedule_plot], api_name="pixels_sample",
                  **serving.heavy(len(sample_inputs)))
    stop_btn.click(STOPS.request, None, None, queue=False, api_name="pixels_stop")
    solver.change(eta_update, solver, eta, api_name=False, queue=False)
    model.change(model_info, model, info, api_name="pixels_info")
    model.change(sampler_defaults, model, [solver, steps, spacing], api_name=False, queue=False)
    return TabParts(targets=[Target(model, models, TASKS)], on_load=[(model_info, [model], info)])
