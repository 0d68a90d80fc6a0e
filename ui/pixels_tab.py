"""Unconditional tab: sample MNIST / CIFAR-10 UNets with any solver, watching x_t and the
predicted x0_hat as the solver runs; download the grid as a PNG that carries its
generation parameters. Layout and wiring only; the work is in zoo.pipelines.pixels."""
import time

import gradio as gr

import zoo
from ui import inputs, plots, serving
from ui.errors import as_int, as_number, friendly
from ui.image_widgets import (PREVIEW_INTERVAL, check_sampler, eta_control, eta_update, image_outputs, on_screen,
                              optimized_note, preview_image, sampler_controls, sampler_defaults, save_png,
                              solver_options, upscaled)
from ui.opened import Target
from ui.tab_parts import TabParts
from ui.streaming import STOPS, sample_updates
from zoo import registry
from zoo.diffusion import get_schedule
from zoo.diffusion.guidance import AUTOGUIDANCE_RANGE, check_autoguidance_w
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
    model line, unguided and autoguided; a card without them (a Hub model's) adds nothing."""
    parts = []
    if "confident_digits" in ev:
        real = f"; real test digits {ev['real_confident']:.0%}" if "real_confident" in ev else ""
        parts.append(f"**{ev['confident_digits']:.0%}** of samples classified as a digit with confidence > 0.9 "
                     f"({ev['confident_solver']}{real})")
    parts += _spread(ev, "")
    if "autoguided_confident_digits" in ev:
        parts.append(f"with autoguidance w = {ev['autoguidance_w']:g} by {ev['autoguidance_guide']}: "
                     f"**{ev['autoguided_confident_digits']:.0%}** confident")
        parts += _spread(ev, "autoguided_")
    if "vlb_bits_per_dim_test" in ev:
        parts.append(f"variational bound on real test digits **{ev['vlb_bits_per_dim_test']:.3f} bits/dim**")
    return "".join(f" · {p}" for p in parts)


def _spread(ev: dict, prefix: str) -> list:
    """Frechet ratio and class shares of one setting's card numbers."""
    parts = []
    if ev.get("frechet_reference") and f"{prefix}frechet_distance" in ev:
        ratio = ev[prefix + "frechet_distance"] / ev["frechet_reference"]
        parts.append(f"Frechet distance to real digits **x{ratio:.2f}** that of real training digits")
    if f"{prefix}class_share_min" in ev:
        parts.append(f"each digit {ev[prefix + 'class_share_min']:.0%}-{ev[prefix + 'class_share_max']:.0%} of samples "
                     "(real: 10%)")
    return parts


def _check(model, solver, steps, spacing, eta, seed, batch, autoguidance=0.0) -> dict:
    """The request, checked, as keyword arguments of PixelPipeline (the guiding model's
    entry under "guide" when autoguidance is on)."""
    entry = registry.entry_for(model, TASKS)
    steps, batch = check_sampler(solver, steps, spacing), as_int(batch, "batch size", 1, MAX_BATCH)
    w = check_autoguidance_w(as_number(autoguidance, "autoguidance w"))
    if w and not entry.guide:
        raise ValueError(f"{model} has no guiding model for autoguidance (a smaller, shorter-trained model of the "
                         f"same data): set autoguidance w to 0, or pick a model that has one ({_guided_names()})")
    try:
        serving.check_budget(batch, serving.passes(solver, steps) * (2 if w else 1), serving.IMAGE_BUDGET)
    except ValueError as err:
        raise ValueError(f"{err} Autoguidance doubles the passes: w = 0 halves them." if w else str(err)) from None
    return dict(n=batch, steps=steps, solver=solver, spacing=spacing, seed=as_int(seed, "seed", 0, 2**31 - 1),
                autoguidance=w, **({"guide": entry.guide} if w else {}), **solver_options(solver, eta))


def _guided_names() -> str:
    return ", ".join(e.name for e in registry.list_models() if e.guide) or "none here"


def _gpu_seconds(model, solver, steps, spacing, eta, seed, batch, autoguidance=0.0, *_):
    return sampling_seconds(batch, solver, steps, 2 if autoguidance else 1)


@friendly(status=2, outputs=5)
@gpu(duration=_gpu_seconds)
def on_sample(model, solver, steps, spacing, eta, seed, batch, autoguidance=0.0, request: gr.Request = None):
    """Streams (preview, grid, status, png file, schedule plot); a refused request or Stop
    leaves the previous grid and download on screen."""
    start, req = time.perf_counter(), _check(model, solver, steps, spacing, eta, seed, batch, autoguidance)
    pipe, stop = zoo.load(model), STOPS.start(request)
    guiding = zoo.load(req["guide"]) if "guide" in req else None
    yield (gr.skip(), gr.skip(), f"sampling {req['n']} images with {solver}, {req['steps']} steps ...", gr.skip(),
           plots.schedule_figure(pipe.schedule, req["steps"], spacing, solver, getattr(pipe, "optimized_times", None)))
    run = lambda callback: pipe(callback=callback, guiding_model=guiding,
                                **{k: v for k, v in req.items() if k != "guide"})
    render = lambda p: preview_image(pipe.schedule, p)
    for kind, value, status in sample_updates(run, req["steps"], stop, render, "left: x_t, right: predicted x0_hat",
                                              PREVIEW_INTERVAL):
        if kind != "done":
            yield value if kind == "progress" else gr.skip(), gr.skip(), status, gr.skip(), gr.skip()
        if kind == "stopped":
            return
    out, seconds, batch = value, time.perf_counter() - start, req.pop("n")
    parameters = {"model": model, **req, "batch": batch, "nfe": out.nfe, "schedule": get_schedule(pipe.schedule).name}
    guided = f" · autoguidance w = {req['autoguidance']:g} by {req['guide']}" if guiding else ""
    status = (f"**{batch} images** · {solver}, {req['steps']} steps ({spacing}){guided} · NFE **{out.nfe}** "
              f"({out.network_calls} network passes) · **{seconds:.2f} s** from click to result (sampling "
              f"{out.seconds:.2f} s) · seeds {req['seed']}..{req['seed'] + batch - 1} (image i uses seed + i)")
    yield gr.skip(), on_screen(upscaled(grid_image(out.images))), status, save_png(out.images, parameters), gr.skip()


def autoguidance_default(name):
    """The autoguidance slider at the entry's measured w (0 for a model without a guide)."""
    try:
        return gr.update(value=registry.lookup(name).autoguidance)
    except ValueError:
        return gr.update()


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
            # 0 until the page loads: an API call that leaves it out samples the plain model
            autoguidance = inputs.Slider(*AUTOGUIDANCE_RANGE, value=0.0, step=0.25,
                                         label="autoguidance w", elem_id="px-autoguidance",
                                         info="guide by a bad version of the model (Karras et al. 2024): "
                                              "D + w (D - D_bad); two network passes per step; 0: off")
            with gr.Row():
                run_btn = gr.Button("Sample", variant="primary", elem_id="px-sample")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="px-stop")
        with gr.Column(scale=3):
            status, preview, grid = image_outputs("px", "samples")
            download = gr.File(label="PNG with the generation parameters", elem_id="px-download")
            schedule_plot = gr.Plot(show_label=False, elem_id="px-schedule")
    sample_inputs = [model, solver, steps, spacing, eta, seed, batch, autoguidance]
    run_btn.click(on_sample, sample_inputs, [preview, grid, status, download, schedule_plot], api_name="pixels_sample",
                  **serving.heavy(len(sample_inputs)))
    stop_btn.click(STOPS.request, None, None, queue=False, api_name="pixels_stop")
    solver.change(eta_update, solver, eta, api_name=False, queue=False)
    model.change(model_info, model, info, api_name="pixels_info")
    model.change(sampler_defaults, model, [solver, steps, spacing], api_name=False, queue=False)
    model.change(autoguidance_default, model, autoguidance, api_name=False, queue=False)
    return TabParts(targets=[Target(model, models, TASKS)],
                    on_load=[(model_info, [model], info), (autoguidance_default, [model], autoguidance)])
