"""Toy 2D tab: train, sample and look at diffusion on point clouds. Layout and wiring only;
the work is in zoo.pipelines.toy2d and zoo.pipelines.toy2d_views, the drawing in ui.plots."""
import time

import gradio as gr

import zoo
from ui import inputs, plots, serving
from ui.errors import as_float, as_int, friendly
from ui.image_widgets import MAX_UI_STEPS, check_sampler, eta_control, eta_update, solver_options
from zoo.checks import check_choice
from ui.opened import Target
from ui.schedules_tab import on_schedule
from ui.tab_parts import TabParts
from zoo.data.toy2d import TOY_DATASETS, toy_density_image
from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, SOLVERS, SPACINGS, DiffusionConfig
from zoo.diffusion.distill import path_curvature
from zoo.pipelines.toy2d import MAX_POINTS, ToyTrainConfig, exact_pipeline, train_steps
from zoo import registry
from zoo.pipelines import toy2d_views as views
from zoo.gpu import GPU_SECONDS_CAP, gpu

LIM = 3.0
SOURCES = ("bundled", "trained here", "exact (gmm only)")
# distilled students (and the flow teacher reflow starts from): models that bring their own data set
STUDENTS = tuple(e.name for e in registry.DISTILLED)
TOY_GPU_SECONDS = 30  # a sample of 20,000 points with its likelihoods: seconds on a CPU
FIELD_GPU_SECONDS = 10  # one network call on a 21 x 21 grid (also drawn when the page opens)
PLOT_EVERY = 1.5  # seconds of training between live loss plots (each takes ~0.25 s to draw and send)


def _density(dataset):
    return toy_density_image(dataset, lim=LIM, bins=120, n=60_000)


def pick_pipeline(source, dataset, schedule, trained):
    """The model the user chose: bundled weights, the one trained in this session, the
    exact denoiser of the Gaussian mixture, or a toy model opened from the Hub (its repo id;
    it brings its own data set)."""
    check_choice(dataset, TOY_DATASETS, "dataset")
    check_choice(schedule, SCHEDULES, "noise schedule")
    if registry.is_repo_ref(source):
        registry.entry_for(source, ("toy2d",))
        return zoo.load(source)
    if source in STUDENTS:
        return zoo.load(source)
    if source == "bundled":
        return zoo.load(f"toy-{dataset}")
    if source == "trained here":
        if trained is None or trained.dataset != dataset:
            raise ValueError(f"No model trained on '{dataset}' in this session yet: press Train, "
                             "or choose the bundled model.")
        return trained
    if source == SOURCES[2]:
        if dataset != "gmm":
            raise ValueError("The exact denoiser exists only for the Gaussian mixture: choose dataset 'gmm'.")
        return exact_pipeline(schedule)
    raise ValueError(f"model must be one of {list(SOURCES + STUDENTS)} or a toy model's Hub repo id, got {source!r}")


def _train_seconds(dataset, objective, schedule, steps, *rest, **_):
    try:
        return int(min(20 + 0.01 * float(steps), GPU_SECONDS_CAP))
    except (TypeError, ValueError, OverflowError):
        return GPU_SECONDS_CAP


@friendly(status=1, outputs=3)
@gpu(duration=_train_seconds)
def on_train(dataset, objective, schedule, steps, progress=gr.Progress()):
    """Streams (loss plot, status, trained pipeline); a cancel stops it at the next report."""
    dataset, objective = check_choice(dataset, TOY_DATASETS, "dataset"), check_choice(objective, PARAMETERISATIONS,
                                                                                       "objective")
    schedule = check_choice(schedule, SCHEDULES, "noise schedule")
    steps = as_int(steps, "training steps", 100, serving.TRAIN_BUDGET)
    config = ToyTrainConfig(dataset, DiffusionConfig(schedule=schedule, parameterisation=objective), steps=steps)
    losses, drawn = [], -PLOT_EVERY
    yield gr.skip(), f"training {steps} steps ...", gr.skip()
    for step, loss, seconds, pipe in train_steps(config, report_every=max(steps // 40, 1)):
        losses.append((step, loss))
        progress(step / steps, desc=f"training: step {step}/{steps}")
        status = f"step {step}/{steps} · loss {loss:.4f} · {seconds:.1f} s"
        fig = gr.skip()
        if seconds - drawn >= PLOT_EVERY or pipe is not None:  # drawing costs ~0.25 s: not at every report
            fig, drawn = plots.curve_figure([s for s, _ in losses], [v for _, v in losses], "Training loss (live)",
                                            "step", "loss", logy=True), seconds
        yield fig, status, pipe or gr.skip()
    yield fig, status + " · done: choose model **trained here** and Sample.", pipe


def _sample_seconds(*_, **__):
    return TOY_GPU_SECONDS


def _numbers(pipe, out, n, swd, floor, ll, timing: dict, curvature: float) -> str:
    split = ", ".join(f"{k} {v:.2f} s" for k, v in timing.items())
    return (f"**{pipe.description}** · NFE **{out.nfe}** · **{sum(timing.values()):.2f} s** from click to result "
            f"({split}) · sliced Wasserstein to data **{swd:.4f}** (two true sets of {n}: {floor:.4f}) · "
            f"mean path curvature **{curvature:.4f}** (0 = straight) · "
            f"bits/dim: PF-ODE **{ll['ode_bpd']:.3f}**, variational bound **{ll['vlb_bpd']:.3f}**")


def student_steps(source) -> tuple:
    """The step counts a distilled student supports; () for every other model (any steps)."""
    if source not in STUDENTS:
        return ()
    d = zoo.load(source).distill
    return tuple(d.steps) if d is not None else ()


def on_source(source):
    """A student's step choice is its distilled steps, and its sampler is its own: the steps
    radio replaces the slider and solver / spacing are disabled; other models get them back."""
    try:
        steps = student_steps(source)
    except Exception:  # weights missing: Sample reports it; the controls stay as they are
        steps = ()
    if steps:
        return (gr.update(visible=False), gr.update(choices=list(steps), value=steps[0], visible=True),
                gr.update(interactive=False), gr.update(interactive=False))
    return gr.update(visible=True), gr.update(visible=False), gr.update(interactive=True), gr.update(interactive=True)


def teacher_view(pipe, n, seed, density):
    """(figure, curvature) of the teacher's trajectories from the same seeds, for a student;
    (None, None) for other models. The teacher samples with its registry defaults."""
    if getattr(pipe, "distill", None) is None or registry.is_repo_ref(pipe.distill.teacher):
        return None, None
    entry = registry.get_entry(pipe.distill.teacher)
    path, times, _ = views.trajectories(zoo.load(entry.name), min(n, 2000), entry.steps, entry.solver, seed,
                                        entry.spacing)
    curvature = path_curvature(path, times)
    fig = plots.trajectories_figure(path[:, :150], times, len(times) - 1, LIM, density)
    fig.axes[0].set_title(f"Teacher {entry.name}: {entry.solver}, {entry.steps} steps\ncurvature {curvature:.4f}")
    fig.tight_layout()  # room for the two-line title
    return fig, curvature


@friendly(status=2, outputs=6)
@gpu(duration=_sample_seconds)
def on_sample(source, dataset, schedule, trained, solver, steps, spacing, seed, n, eta, distilled_steps=None):
    """(samples, trajectories, numbers, schedule plot, trajectory state, step slider); the
    numbers say where the time went (likelihoods are computed once per model)."""
    start = time.perf_counter()
    steps, seed = check_sampler(solver, steps, spacing), as_int(seed, "seed", 0, 2**31 - 1)
    n = as_int(n, "number of points", 1, MAX_POINTS)
    serving.check_budget(n, serving.passes(solver, steps), serving.POINT_BUDGET, "points")
    pipe = pick_pipeline(source, dataset, schedule, trained)
    dataset, timing = pipe.dataset, {}  # a model from the Hub brings its own data set
    if getattr(pipe, "distill", None) is not None and pipe.distill.steps:  # its own sampler, its own steps
        steps, solver, spacing, eta = as_int(distilled_steps, "student steps", 1, MAX_UI_STEPS), "ddim", "uniform", 0
    path, times, out = views.trajectories(pipe, n, steps, solver, seed, spacing, **solver_options(solver, eta))
    timing["sampling"] = time.perf_counter() - start
    mark = time.perf_counter()
    ll = views.likelihoods(pipe)
    timing["likelihoods"] = time.perf_counter() - mark
    mark = time.perf_counter()
    swd, floor, density = pipe.distance_to_data(out.points), views.noise_floor(dataset, n), _density(dataset)
    samples = plots.samples_figure(out.points, density, LIM, f"Samples over the data density\n{solver}, {steps} steps, "
                                                             f"{spacing}")
    traj = plots.trajectories_figure(path[:, :150], times, len(times) - 1, LIM, density)
    curvature = path_curvature(path, times)
    traj.axes[0].set_title(f"Reverse trajectories\ncurvature {curvature:.4f}")
    traj.tight_layout()
    schedule_plot = plots.schedule_figure(pipe.schedule, steps, spacing)
    timing["distances and plots"] = time.perf_counter() - mark
    slider = gr.Slider(minimum=0, maximum=len(times) - 1, value=len(times) - 1, step=1)
    return (samples, traj, _numbers(pipe, out, n, swd, floor, ll, timing, curvature), schedule_plot,
            (path[:, :150], times, dataset), slider)


@friendly(status=1, outputs=2)
@gpu(duration=_sample_seconds)
def on_teacher(source, dataset, schedule, trained, seed, n):
    """A student's teacher trajectories from the same seeds beside the student's (none otherwise)."""
    pipe = pick_pipeline(source, dataset, schedule, trained)
    seed, n = as_int(seed, "seed", 0, 2**31 - 1), as_int(n, "number of points", 1, MAX_POINTS)
    return teacher_view(pipe, n, seed, _density(pipe.dataset))[0], ""


@friendly(status=1, outputs=2)
def on_step(trajectory, k):
    if trajectory is None:
        raise ValueError("Sample first: the trajectories come from the last sampling run.")
    path, times, dataset = trajectory
    k = as_int(k, "step", 0, len(times) - 1)
    return plots.trajectories_figure(path, times, k, LIM, _density(dataset)), ""


@friendly(status=1, outputs=2)
def on_forward(dataset, schedule):
    dataset, schedule = check_choice(dataset, TOY_DATASETS, "dataset"), check_choice(schedule, SCHEDULES, "schedule")
    return plots.forward_figure(views.forward_snapshots(dataset, schedule), LIM), ""


@friendly(status=1, outputs=2)
@gpu(duration=FIELD_GPU_SECONDS)
def on_field(source, dataset, schedule, trained, t, kind):
    kind = check_choice(kind, views.FIELD_KINDS, "field")
    pipe = pick_pipeline(source, dataset, schedule, trained)
    dataset = pipe.dataset
    t = as_float(t, "t", 0.0, 1.0)
    sch = SCHEDULES[pipe.schedule]
    t = min(max(t, sch.t_min), sch.t_max)
    fields = [(f"{source} model", *views.vector_field(pipe.denoiser, pipe.schedule, t, kind, LIM))]
    if dataset == "gmm" and source != SOURCES[2]:
        exact = exact_pipeline(pipe.schedule)
        fields.append(("exact (mixture)", *views.vector_field(exact.denoiser, pipe.schedule, t, kind, LIM)))
    return plots.field_figure(fields, LIM, f"{kind} field at t = {t:.3f} ({pipe.schedule})"), ""


@friendly(status=1, outputs=2)
@gpu(duration=2 * TOY_GPU_SECONDS)
def on_compare(source, dataset, schedule, trained, seed, progress=gr.Progress()):
    pipe = pick_pipeline(source, dataset, schedule, trained)
    dataset = pipe.dataset
    seed = as_int(seed, "seed", 0, 2**31 - 1)
    results = views.compare_solvers(pipe, seed=seed, progress=progress)
    return plots.compare_figure(results, views.noise_floor(dataset, 2000, seed)), ""


def build_toy_tab():
    """The Toy 2D tab's components and events (inside an open gr.Blocks / gr.Tab)."""
    trained, trajectory = gr.State(None), gr.State(None)
    gr.Markdown("Diffusion on 2D point clouds: **train** a small MLP in seconds (or use the bundled "
                "weights, or the exact denoiser of the Gaussian mixture), then **sample** with any solver "
                "and watch the forward noising, the reverse trajectories and the learned field.")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            dataset = inputs.Dropdown(list(TOY_DATASETS), value="moons", label="dataset", elem_id="toy-dataset")
            objective = inputs.Dropdown(list(PARAMETERISATIONS), value="eps", label="objective (what the net predicts)",
                                        elem_id="toy-objective")
            schedule = inputs.Dropdown(sorted(SCHEDULES), value="vp-cosine", label="noise schedule",
                                       elem_id="toy-schedule")
            train_steps_box = inputs.Slider(100, serving.TRAIN_BUDGET, value=ToyTrainConfig().steps, step=100,
                                            label="training steps", elem_id="toy-train-steps")
            train_btn = gr.Button("Train", variant="primary", elem_id="toy-train")
            train_status = gr.Markdown("", elem_id="toy-train-status")
            source = inputs.Radio(list(SOURCES + STUDENTS), value="bundled", label="model (distilled students: "
                                  "toy-*-pd*, -cd, -reflow)", elem_id="toy-source")
            solver = inputs.Dropdown(sorted(SOLVERS), value="heun", label="solver", elem_id="toy-solver")
            spacing = inputs.Dropdown(sorted(SPACINGS), value="logsnr", label="step spacing", elem_id="toy-spacing")
            steps = inputs.Slider(1, MAX_UI_STEPS, value=20, step=1, label="steps", elem_id="toy-steps")
            distilled_steps = inputs.Radio([1], value=1, label="steps (the student's distilled steps)",
                                           visible=False, elem_id="toy-student-steps")
            eta = eta_control("toy")
            seed = inputs.Number(0, precision=0, label="seed", elem_id="toy-seed")
            n = inputs.Slider(100, MAX_POINTS, value=2000, step=100, label="number of points", elem_id="toy-n")
            sample_btn = gr.Button("Sample", variant="primary", elem_id="toy-sample")
            compare_btn = gr.Button("Compare solvers", elem_id="toy-compare")
        with gr.Column(scale=3):
            numbers = gr.Markdown("", elem_id="toy-numbers")
            with gr.Row():
                samples_plot = gr.Plot(label="samples over the data density", show_label=False, elem_id="toy-samples")
                traj_plot = gr.Plot(label="reverse trajectories", show_label=False, elem_id="toy-trajectories")
                teacher_plot = gr.Plot(label="teacher's trajectories (students only)", show_label=True,
                                       elem_id="toy-teacher-trajectories")
            step_slider = inputs.Slider(0, 20, value=20, step=1, label="step through the reverse process",
                                        elem_id="toy-step")
            loss_plot = gr.Plot(label="training loss", show_label=False, elem_id="toy-loss")
            forward_plot = gr.Plot(label="forward process", show_label=False, elem_id="toy-forward")
            with gr.Row():
                field_t = inputs.Slider(0.0, 1.0, value=0.3, step=0.01, label="field at t", elem_id="toy-field-t")
                field_kind = inputs.Radio(list(views.FIELD_KINDS), value="score", label="field",
                                          elem_id="toy-field-kind")
            message = gr.Markdown("", elem_id="toy-message")  # the plots' own messages (the numbers stay)
            field_plot = gr.Plot(label="learned field", show_label=False, elem_id="toy-field")
            schedule_plot = gr.Plot(label="noise schedule", show_label=False, elem_id="toy-schedule-plot")
            compare_plot = gr.Plot(label="compare solvers", show_label=False, elem_id="toy-compare-plot")

    model = [source, dataset, schedule, trained]
    train_inputs = [dataset, objective, schedule, train_steps_box]
    train_btn.click(on_train, train_inputs, [loss_plot, train_status, trained], api_name="toy_train",
                    **serving.training(len(train_inputs)))
    sample_inputs = model + [solver, steps, spacing, seed, n, eta, distilled_steps]
    sampled = sample_btn.click(on_sample, sample_inputs, [samples_plot, traj_plot, numbers, schedule_plot, trajectory,
                                                          step_slider], api_name="toy_sample",
                               **serving.heavy(len(sample_inputs)))
    sampled.success(on_field, model + [field_t, field_kind], [field_plot, message], api_name=False)
    sampled.success(on_teacher, model + [seed, n], [teacher_plot, message], api_name=False)
    # .input fires as a value is typed or dragged (.release only when the box loses focus)
    step_slider.input(on_step, [trajectory, step_slider], [traj_plot, message], api_name="toy_step",
                      trigger_mode="always_last")
    for trigger in (dataset.change, schedule.change):
        trigger(on_forward, [dataset, schedule], [forward_plot, message], api_name=False)
    gr.on([field_t.input, field_kind.change], on_field, model + [field_t, field_kind], [field_plot, message],
          api_name="toy_field", trigger_mode="always_last")
    gr.on([steps.input, spacing.change], on_schedule, [schedule, steps, spacing], [schedule_plot, message],
          api_name="toy_schedule", trigger_mode="always_last")
    solver.change(eta_update, solver, eta, api_name=False, queue=False)
    source.change(on_source, source, [steps, distilled_steps, solver, spacing], api_name=False)
    compare_btn.click(on_compare, model + [seed], [compare_plot, message], api_name="toy_compare",
                      **serving.heavy(len(model) + 1))
    return TabParts(targets=[Target(source, list(SOURCES), ("toy2d",))],
                    on_load=[(on_forward, [dataset, schedule], [forward_plot, message]),
                             (on_schedule, [schedule, steps, spacing], [schedule_plot, message]),
                             (on_field, model + [field_t, field_kind], [field_plot, message])])
