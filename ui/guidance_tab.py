"""Guidance tab: class-conditional sampling with classifier-free guidance (w slider) and
classifier guidance (scale slider), one row per chosen class, and a sweep that shows the
same seeds at growing guidance strength. Layout and wiring only; the work is in
zoo.pipelines.conditional."""
import functools
import time

import gradio as gr
import numpy as np

import zoo
from ui import inputs, plots, serving
from ui.errors import USER_ERRORS, as_float, as_int, as_number, friendly
from ui.guidance_toy import build_exact_section
from ui.image_widgets import (PREVIEW_INTERVAL, check_sampler, image_outputs, on_screen, optimized_note,
                              preview_image, sampler_controls, sampler_defaults, save_png, upscaled)
from ui.opened import Target
from ui.tab_parts import TabParts
from ui.streaming import STOPS, sample_updates
from zoo import registry
from zoo.pipelines.conditional import GuidedPipeline, as_guided, classify_samples
from zoo.diffusion import make_grid
from zoo.diffusion.distill import STUDENT_SAMPLERS
from zoo.diffusion.guidance import SCALE_RANGE, W_RANGE, check_scale, check_w, guided_steps
from zoo.gpu import GPU_SECONDS_CAP, gpu, sampling_seconds
from zoo.pipelines.pixels import MAX_BATCH, grid_image

CLASSES = [str(k) for k in range(10)]
SWEEP = (0.0, 1.0, 2.0, 4.0, 8.0)
NO_CLASSIFIER = "none"
THEORY = r"""
**Classifier guidance** (Dhariwal & Nichol 2021): Bayes' rule on the noisy data,
$\nabla_{x_t}\log p(x_t\mid y) = \nabla_{x_t}\log p(x_t) + \nabla_{x_t}\log p(y\mid x_t)$,
with the second term from a classifier trained on noisy $x_t$ and scaled by $s$:
$\hat x_0 \mathrel{+}= s\,\frac{\sigma_t^2}{\alpha_t}\nabla_{x_t}\log p(y\mid x_t)$.
It also steers an unconditional model.

**Classifier-free guidance** (Ho & Salimans 2022): one network learns $D(x_t\mid y)$ and, with the label dropped
10% of the time, $D(x_t\mid\varnothing)$; then $D_w = (1+w)\,D(x_t\mid y) - w\,D(x_t\mid\varnothing)$.
$w = 0$ is the plain conditional model; each step costs two network passes.
"""


GUIDED_TASKS = ("class-conditional", "unconditional")  # class-conditional first: both guidances


def guided_models() -> list:
    return registry.names_for(*GUIDED_TASKS)


def classifier_names() -> list:
    return [NO_CLASSIFIER] + registry.names_for("classifier")


def load_guided(model: str) -> GuidedPipeline:
    registry.entry_for(model, GUIDED_TASKS)
    return as_guided(zoo.load(model))


def load_classifier(name: str):
    if name == NO_CLASSIFIER:
        return None
    registry.entry_for(name, ("classifier",), "classifier")
    return zoo.load(name)


@friendly
def model_info(model, classifier):
    pipe = load_guided(model)
    kind = (f"class-conditional ({pipe.num_classes} classes): both kinds of guidance" if pipe.num_classes else
            "unconditional: classifier guidance only (set w to 0 and pick a classifier)")
    if student_of(pipe) is not None:
        kind = (f"class-conditional ({pipe.num_classes} classes): w is an input of the network (one pass per step); "
                "classifier guidance and the guidance interval do not apply")
    text = f"**{model}** ({registry.source(model)}): {pipe.description} · {kind}{optimized_note(pipe)}"
    ev = pipe.card
    if "teacher_on_class" in ev:  # a student, measured by bench/distill.py --digits
        text += (f" · at w = {ev['w']:g}, {ev['steps']} step(s): {ev['on_class']:.1%} of its samples are the requested "
                 f"class and {ev['confident']:.1%} confident digits by an independent classifier (its teacher: "
                 f"{ev['teacher_on_class']:.1%} with {ev['teacher_passes']} network passes)")
    if "accuracy_w0" in ev:  # measured by bench/guidance.py
        text += (f" · an independent digit classifier calls {ev['accuracy_w0']:.1%} of its samples the requested class "
                 f"at w = 0 and {ev['accuracy_best_w']:.1%} at w = {ev['best_w']:g}")
    clf = load_classifier(classifier)
    if clf is not None:
        accuracy = clf.card.get("test_accuracy_by_t", {})
        acc = ", ".join(f"t={t}: {a:.0%}" for t, a in accuracy.items())
        text += f"\n\n**{classifier}**: held-out accuracy on noisy digits {acc or '(not measured)'}"
    return text


def _request(digits, per_class, guidance, scale, solver, steps, spacing, seed, t_lo, t_hi) -> dict:
    """The UI values, checked, as keyword arguments of GuidedPipeline (plus per_class)."""
    if not isinstance(digits, (list, tuple)) or not digits or not set(map(str, digits)) <= set(CLASSES):
        raise ValueError(f"pick at least one class of {CLASSES}, got {str(digits)[:80]!r}")
    digits = sorted({str(d) for d in digits}, key=int)
    steps = check_sampler(solver, steps, spacing)
    per_class = as_int(per_class, "samples per class", 1, MAX_BATCH // len(digits))
    t_lo, t_hi = as_float(t_lo, "guidance from t", 0.0, 1.0), as_float(t_hi, "guidance up to t", 0.0, 1.0)
    if t_lo > t_hi:
        raise ValueError(f"the guidance interval must have from <= up to, got [{t_lo}, {t_hi}]")
    return dict(labels=[int(d) for d in digits for _ in range(per_class)], per_class=per_class,
                guidance=check_w(as_number(guidance, "guidance w")), solver=solver, steps=steps,
                classifier_scale=check_scale(as_number(scale, "classifier scale")), spacing=spacing,
                seed=as_int(seed, "seed", 0, 2**31 - 1), interval=None if (t_lo, t_hi) == (0.0, 1.0) else (t_lo, t_hi))


def student_of(pipe):
    """A distilled student's DistillConfig (zoo.pipelines.distill), or None."""
    return getattr(pipe, "distill", None)


def _passes(req: dict, pipe) -> int:
    """Network passes per sample: two per evaluation with CFG, one more with a classifier; a
    student makes one a step, its guidance an input."""
    if student_of(pipe) is not None:
        return req["steps"]
    per_eval = 1 + (req["guidance"] > 0 and bool(pipe.num_classes)) + (req["classifier_scale"] > 0)
    return serving.passes(req["solver"], req["steps"], per_eval)


def _load(model, classifier, values, rows: int = 1):
    """(pipeline, classifier, request) for the UI values, checked: budget, and an interval
    that guides at least one step."""
    req = _request(*values)
    pipe, clf = load_guided(model), load_classifier(classifier)
    serving.check_budget(rows * len(req["labels"]), _passes(req, pipe), serving.IMAGE_BUDGET)
    if req["interval"] and req["guidance"] > 0 and student_of(pipe) is None and not guided_steps(
            make_grid(pipe.schedule, req["steps"], req["spacing"]).t, req["interval"]):
        raise ValueError(f"the guidance interval {list(req['interval'])} holds none of the {req['steps']} sampling "
                         "times, so no step would be guided: widen it (or set w = 0)")
    return pipe, clf, req


def _verdict(classifier, name, images, labels, scale) -> str:
    if classifier is None:
        return ""
    hits = int((classify_samples(classifier, images) == np.asarray(labels)).sum())
    note = " (the classifier that guided them: a lenient judge)" if scale > 0 else ""
    return f" · {name} calls **{hits}/{len(labels)}** samples their requested class{note}"


def _gpu_seconds(model, classifier, digits, per_class, guidance, scale, solver, steps, *rest, runs: int = 1, **_):
    try:
        batch, cfg = len(digits or []) * int(per_class), float(guidance) > 0
    except (TypeError, ValueError, OverflowError):
        batch, cfg = 1, True
    return min(runs * sampling_seconds(batch, solver, steps, passes_per_eval=2 if cfg else 1), GPU_SECONDS_CAP)


def _status(req: dict, out, per_class: int, seconds: float, student=None) -> str:
    effective = req["interval"] and req["guidance"]  # the interval gates CFG only
    where = f" for t in {list(req['interval'])}" if effective else ""
    sampler = (f"{req['solver']}, {req['steps']} steps ({req['spacing']})" if student is None else
               f"{student.method} student, {req['steps']} step(s) of its own sampler")
    return (f"**{len(req['labels'])} images**, one row per class · w = {req['guidance']:g}, classifier scale "
            f"{req['classifier_scale']:g}{where} · {sampler} · NFE "
            f"**{out.nfe}** ({out.network_calls} network passes) · **{seconds:.2f} s** from click to result "
            f"(sampling {out.seconds:.2f} s)")


@friendly(status=2, outputs=4)
@gpu(duration=_gpu_seconds)
def on_sample(model, classifier, *values, request: gr.Request = None):
    """Streams (preview, grid, status, png file); values as in `_request`. A refused
    request or Stop leaves the previous grid and download on screen."""
    start = time.perf_counter()
    pipe, clf, req = _load(model, classifier, values)
    per_class, stop = req.pop("per_class"), STOPS.start(request)
    yield gr.skip(), gr.skip(), \
        f"sampling {len(req['labels'])} images with {req['solver']}, {req['steps']} steps ...", \
        gr.skip()
    run = lambda callback: pipe(classifier=clf, callback=callback, **req)
    render = lambda p: preview_image(pipe.schedule, p)
    for kind, value, status in sample_updates(run, req["steps"], stop, render, "left: x_t, right: predicted x0_hat",
                                              PREVIEW_INTERVAL):
        if kind != "done":
            yield value if kind == "progress" else gr.skip(), gr.skip(), status, gr.skip()
        if kind == "stopped":
            return
    out = value
    status = (_status(req, out, per_class, time.perf_counter() - start, student_of(pipe))
              + _verdict(clf, classifier, out.images, req["labels"], req["classifier_scale"]))
    parameters = {"model": model, "classifier": classifier, **req, "nfe": out.nfe}
    yield (gr.skip(), on_screen(upscaled(grid_image(out.images, nrow=per_class))), status,
           save_png(out.images, parameters, nrow=per_class))


@friendly(status=1, outputs=2)
@gpu(duration=functools.partial(_gpu_seconds, runs=len(SWEEP)))
def on_sweep(model, classifier, *values, request: gr.Request = None):
    """The first chosen class at each strength of SWEEP, same seeds: CFG w for a
    class-conditional model, the classifier scale otherwise. Streams the rows done so far;
    Stop (or a cancel) ends it at the next solver step."""
    pipe, clf, req = _load(model, classifier, values, rows=len(SWEEP))
    per_class, stop = req.pop("per_class"), STOPS.start(request)
    n, label = max(per_class, 6), req["labels"][0]
    name = "w" if pipe.num_classes else "classifier scale"
    rows, strengths = [], sweep_values(pipe)
    for value in strengths:
        req.update(labels=[label] * n, **({"guidance": value} if pipe.num_classes else {"classifier_scale": value}))
        for kind, out, status in sample_updates(lambda cb: pipe(classifier=clf, callback=cb, **req), req["steps"],
                                                stop, lambda p: None, f"{name} = {value:g}", PREVIEW_INTERVAL):
            if kind == "stopped":
                yield gr.skip(), f"**Stopped** after {len(rows)} of {len(strengths)} rows"
                return
            if kind == "progress":
                yield gr.skip(), f"row {len(rows) + 1}/{len(strengths)}: {status}"
        rows.append((f"{name} = {value:g}", grid_image(out.images, nrow=n)))
        yield (plots.image_rows_figure(rows, f"class {label}: the same {n} seeds as the {name} grows"),
               f"sweep: {len(rows)}/{len(strengths)} rows")


def sweep_values(pipe) -> tuple:
    """The strengths of a sweep: SWEEP, or for a student with a w input its distilled range."""
    d = student_of(pipe)
    if d is None or not d.guidance_input:
        return SWEEP
    return tuple(float(v) for v in np.linspace(d.guidance_min, d.guidance_max, len(SWEEP)))


def _loaded_student(model):
    """The pipeline of a student model, or None (other models, and models that do not load:
    the model line says what is wrong with them)."""
    try:
        pipe = load_guided(model)
    except USER_ERRORS:
        return None
    return pipe if student_of(pipe) is not None else None


def controls_for(model, classifier):
    """w only for a class-conditional model, the classifier scale only with a classifier:
    a control that cannot apply is reset and disabled, with a note. A student's w slider
    spans the range it was distilled for (w is its input)."""
    try:
        conditional = registry.entry_for(model, GUIDED_TASKS).task == "class-conditional"
    except USER_ERRORS:  # the model line says what is wrong with the model
        return gr.skip(), gr.skip()
    pipe = _loaded_student(model) if conditional else None
    student = student_of(pipe)
    if student is not None and student.guidance_input:
        lo, hi = student.guidance_min, student.guidance_max
        w = gr.update(minimum=lo, maximum=hi, value=pipe.DEFAULT_W, interactive=hi > lo,
                      info=f"the student's w input: distilled for w in [{lo:g}, {hi:g}]")
    elif conditional:
        w = gr.update(minimum=W_RANGE[0], maximum=W_RANGE[1], interactive=True, info=None)
    else:
        w = gr.update(value=0.0, interactive=False, info="w needs a class-conditional model; this one is unconditional")
    s = (gr.update(interactive=True, info=None) if classifier != NO_CLASSIFIER else
         gr.update(value=0.0, interactive=False, info="pick a classifier to use classifier guidance"))
    return w, s


def sampler_for(model):
    """A student samples with its own sampler at the steps it was distilled for: solver and
    spacing are switched off and steps set to its most; other models get their entry's
    measured defaults with every input on."""
    student = student_of(_loaded_student(model))
    if student is None:
        on = dict(interactive=True, info=None)
        return tuple({**update, **on} for update in sampler_defaults(model))
    off = dict(interactive=False, info=f"the student's own sampler: {STUDENT_SAMPLERS[student.method]}")
    return (gr.update(**off), gr.update(value=student.steps[-1], info=f"distilled for {list(student.steps)} step(s) "
                                        "only"), gr.update(**off))


def build_guidance_tab():
    """The Guidance tab's components and events (inside an open gr.Blocks / gr.Tab)."""
    models, classifiers = guided_models(), classifier_names()
    gr.Markdown("Class-conditional sampling. Pick classes, a guidance strength and a solver; **Sweep** shows what "
                "guidance does to the same seeds.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            model = inputs.Dropdown(models, value=models[0], label="model", elem_id="gd-model")
            classifier = inputs.Dropdown(classifiers, value=NO_CLASSIFIER, label="classifier (for classifier guidance)",
                                         elem_id="gd-classifier")
            info = gr.Markdown("", elem_id="gd-info")
            digits = inputs.CheckboxGroup(CLASSES, value=CLASSES, label="classes (one row each)", elem_id="gd-classes")
            per_class = inputs.Slider(1, MAX_BATCH // len(CLASSES), value=6, step=1, label="samples per class",
                                      elem_id="gd-per-class")
            guidance = inputs.Slider(*W_RANGE, value=GuidedPipeline.DEFAULT_W, step=0.25,
                                     label="classifier-free guidance w", elem_id="gd-w")
            scale = inputs.Slider(*SCALE_RANGE, value=0.0, step=0.5, interactive=False,
                                  label="classifier guidance scale s", elem_id="gd-scale")
            first = registry.lookup(models[0])  # the entry's measured defaults (model.change resets them)
            solver, steps, spacing = sampler_controls("gd", first.solver, first.steps, first.spacing)
            seed = inputs.Number(0, precision=0, label="seed", elem_id="gd-seed")
            with gr.Accordion("classifier-free guidance only in an interval of t (Kynkaanniemi et al. 2024)",
                              open=False):
                t_lo = inputs.Slider(0.0, 1.0, value=0.0, step=0.05, label="guide from t", elem_id="gd-t-lo")
                t_hi = inputs.Slider(0.0, 1.0, value=1.0, step=0.05, label="guide up to t", elem_id="gd-t-hi")
            with gr.Row():
                run_btn = gr.Button("Sample", variant="primary", elem_id="gd-sample")
                sweep_btn = gr.Button("Sweep", elem_id="gd-sweep")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="gd-stop")
        with gr.Column(scale=3):
            status, preview, grid = image_outputs("gd", "samples (one row per class)")
            download = gr.File(label="PNG with the generation parameters", elem_id="gd-download")
            sweep_status = gr.Markdown("", elem_id="gd-sweep-status")
            sweep_plot = gr.Plot(show_label=False, elem_id="gd-sweep-plot")
            gr.Markdown(THEORY, latex_delimiters=[{"left": "$", "right": "$", "display": False}], elem_id="gd-theory")
    build_exact_section()
    values = [model, classifier, digits, per_class, guidance, scale, solver, steps, spacing, seed, t_lo, t_hi]
    run_btn.click(on_sample, values, [preview, grid, status, download], api_name="guidance_sample",
                  **serving.heavy(len(values)))
    sweep_btn.click(on_sweep, values, [sweep_plot, sweep_status], api_name="guidance_sweep",
                    **serving.heavy(len(values)))
    stop_btn.click(STOPS.request, None, None, queue=False, api_name="guidance_stop")
    for box in (model, classifier):
        box.change(model_info, [model, classifier], info, api_name="guidance_info" if box is model else False)
        box.change(controls_for, [model, classifier], [guidance, scale], api_name=False)
    model.change(sampler_for, model, [solver, steps, spacing], api_name=False)
    return TabParts(targets=[Target(model, models, GUIDED_TASKS), Target(classifier, classifiers, ("classifier",))],
                    on_load=[(model_info, [model, classifier], info)])
