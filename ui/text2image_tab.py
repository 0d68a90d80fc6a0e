"""Text to image tab: prompts in, 32x32 shapes out, from a latent DiT with classifier-free
guidance. The preview decodes the denoiser's current guess x0_hat while the solver runs;
the judge of the data set (zoo.data.shapes.read_shape) reads each sample back and says
whether it shows what the prompt asks for; a sweep shows the same seeds at growing w.
Layout and wiring only; the work is in zoo.text2image."""
import functools
import secrets
import time

import gradio as gr

import zoo
from ui import inputs, plots, serving
from ui.opened import Target
from ui.errors import as_float, as_int, friendly
from ui.image_widgets import (PREVIEW_IMAGES, PREVIEW_INTERVAL, check_sampler, image_outputs, on_screen,
                              sampler_controls, save_png, upscaled)
from ui.streaming import STOPS, sample_updates
from zoo import registry
from zoo.data import shapes
from zoo.gpu import GPU_SECONDS_CAP, gpu, sampling_seconds
from zoo.pixels import MAX_BATCH, grid_image
from zoo.text2image import MAX_PROMPT_CHARS, check_prompts

MIN_UI_GUIDANCE, MAX_UI_GUIDANCE = -1.0, 20.0
SWEEP = (0.0, 1.0, 3.0, 6.0)
SWEEP_IMAGES = 8  # seeds per sweep row at most: four rows of sampling must stay quick on a CPU
VAE_ENTRY = "shapes-vae"  # the latent space the registry's text-to-image train command names
SHOW_WIDTH = 840  # the 32-pixel grids are upscaled (nearest neighbour) to about this width
# examples written by the caption grammar itself, so they are sentences the model was trained on
EXAMPLES = [shapes.caption(shapes.Shape(*attributes), mention) for attributes, mention in (
    (("circle", "red", "small", "top left"), ("size", "color", "position")),
    (("square", "blue", "small", "center"), ("color",)),
    (("triangle", "yellow", "large", "bottom"), ("size", "color", "position")),
    (("circle", "green", "large", "right"), ("color", "position")),
    (("square", "purple", "large", "top right"), ("size", "color", "position")),
    (("triangle", "cyan", "small", "left"), ("size", "color")),
    (("circle", "blue", "small", "center"), ("position",)),
)]
THEORY = rf"""
**Latent diffusion** (Rombach et al. 2022). A KL autoencoder (`shapes-vae`) compresses each 3x32x32 image $x$ to a
latent $z = E(x)$ of shape 4x8x8, normalised to unit variance. Diffusion runs on $z$; the decoder turns the sampled
latent back into pixels at the end, $x = D_{{\mathrm{{VAE}}}}(z_0)$ (the live preview decodes $\hat z_0$ at every step).

**Denoiser**: a DiT (Peebles & Xie 2023) on 2x2 patches of $z$. Each block is adaLN-Zero: the time embedding plus
the pooled prompt give a LayerNorm shift, scale and a residual gate, initialised to zero so every block starts as the
identity. Between self-attention and MLP the patches cross-attend to the token features of an open_clip text
transformer (the CLIP text tower, trained here with the DiT) reading the prompt.

**Classifier-free guidance** (Ho & Salimans 2022), with the empty prompt as null condition (in training, a share
of the captions, 10% by default, is replaced by ""):
$D_w(z_t) = D(z_t\mid c) + w\,\big(D(z_t\mid c) - D(z_t\mid \varnothing)\big)$.
$w = 0$ is the plain conditional model, $w = -1$ ignores the prompt; Stable Diffusion's "guidance scale" is $1 + w$.
Each step with $w \neq 0$ costs two network passes.

**What the model knows**: captions `a [size] [colour] shape [position]`, any part in brackets may be left out.
Shapes: {", ".join(shapes.SHAPES)}; colours: {", ".join(shapes.COLORS)}; sizes: {", ".join(shapes.SIZES)};
positions: {", ".join(shapes.position_phrase(p) for p in shapes.POSITIONS)}.
Its whole vocabulary: *{" ".join(shapes.vocabulary())}*. Other words map to one "unknown" token.
"""


TASKS = ("text-to-image",)


def text2image_models() -> list:
    return registry.names_for(*TASKS)


def load_t2i(model: str, prompt: str = ""):
    """The pipeline; with a prompt, also checks that it fits the text encoder's context,
    so a too-long prompt fails before the first streamed update."""
    registry.entry_for(model, TASKS)
    pipe = zoo.load(model)
    if prompt:
        pipe.context([prompt])  # ValueError naming the token count when too long
    return pipe


def _numbers(pipe) -> str:
    """The checkpoint's evaluation: prompt following by w, and the VAE's reconstructions."""
    by_w = pipe.card.get("prompt_following_by_guidance", {})
    parts = [f"{r['all']:.0%} at w = {float(w):g}" for w, r in by_w.items()]
    text = f" · fresh captions whose samples show every named attribute: {', '.join(parts)}" if parts else ""
    psnr = getattr(pipe.latent.vae, "card", {}).get("psnr_db")
    return text + (f" · VAE reconstructions: {psnr:.1f} dB PSNR" if psnr is not None else "")


@friendly
def model_info(model):
    entry = registry.entry_for(model, TASKS)
    where = registry.source(model)
    if where == "missing":
        text = (f"**{model}**: {entry.description}\n\n**Weights not available here** (not bundled, not in the local "
                f"cache, Hub unreachable). Train them with\n\n`{entry.train_command or 'its own trainer'}`\n\n")
        if registry.source(VAE_ENTRY) == "missing":  # the latent space comes first
            text += f"after the VAE: `{registry.get_entry(VAE_ENTRY).train_command}`\n\n"
        return text + "or run the app online."
    pipe = load_t2i(model)
    return f"**{model}** ({where}): {pipe.description}{_numbers(pipe)}"


def random_caption() -> str:
    """A caption drawn as the training captions are (some attributes left out)."""
    return shapes.sample_shapes(1, seed=secrets.randbelow(2**31))[0][1]


def _request(prompt, guidance, solver, steps, spacing, seed, batch) -> dict:
    """The UI values, checked, as keyword arguments of TextToImagePipeline."""
    steps = check_sampler(solver, steps, spacing)
    n = as_int(batch, "batch size", 1, MAX_BATCH)
    serving.check_budget(n, serving.passes(solver, steps, per_eval=2), serving.IMAGE_BUDGET)
    return dict(prompt=check_prompts(prompt, 1)[0], n=n,
                guidance=as_float(guidance, "guidance w", MIN_UI_GUIDANCE, MAX_UI_GUIDANCE), solver=solver,
                steps=steps, spacing=spacing, seed=as_int(seed, "seed", 0, 2**31 - 1))


def _nrow(n: int) -> int:
    return min(n, 4) if n <= 16 else 8


def show(images) -> str:
    """uint8 (n, 32, 32, 3) -> the on-screen grid, upscaled so the shapes are visible."""
    return on_screen(upscaled(grid_image(images, nrow=_nrow(len(images))), SHOW_WIDTH))


def misses(seen: dict, wanted: dict) -> list:
    """The attributes the prompt asks for that the judge does not see in the image."""
    return [a for a, v in wanted.items() if seen.get(a) != v]


def followed(images, prompt: str) -> dict:
    """How many images show each attribute the prompt names, and all of them ("all"), by
    the same judge as the model card's prompt-following numbers."""
    shares = shapes.judge(images, [prompt] * len(images))
    return {a: round(share * len(images)) for a, share in shares.items()}


def _which(ids: list, n: int) -> str:
    return "all" if len(ids) == n else f"sample{'s' * (len(ids) > 1)} {', '.join(ids)}"


def judge_report(images, prompt: str) -> tuple:
    """(summary for the status line, Markdown: what the judge reads from each sample)."""
    wanted = shapes.prompt_attributes(prompt)
    reads = [shapes.read_shape(image) for image in images]
    groups = {}  # identical reads together, with the sample numbers (1 = top left of the grid)
    for i, seen in enumerate(reads, 1):
        wrong = misses(seen, wanted)
        verdict = f"✗ wrong {', '.join(wrong)}" if wrong else "✓"
        read = shapes.caption(shapes.Shape(**seen)) if seen else "an empty canvas"
        groups.setdefault(f"{read} {verdict}", []).append(str(i))
    lines = [f"- {len(ids)} × {read} ({_which(ids, len(reads))})"
             for read, ids in sorted(groups.items(), key=lambda g: -len(g[1]))]
    asked = ", ".join(f"{a} **{v}**" for a, v in wanted.items()) or "nothing the judge can check"
    details = (f"The prompt asks for: {asked}. What the judge (zoo.data.shapes.read_shape) reads from each "
               f"sample:\n\n" + "\n".join(lines))
    if not wanted:
        return " · the prompt names no shape, colour, size or position the judge knows", details
    counts, n = followed(images, prompt), len(reads)
    per = " · ".join(f"{a} {counts[a]}/{n}" for a in wanted)
    return f" · judge: **{counts['all']}/{n}** samples show every attribute the prompt names ({per})", details


def _status(req: dict, out, seconds: float) -> str:
    n, seed = req["n"], req["seed"]
    text = (f"**{n} images** · w = {req['guidance']:g} · {req['solver']}, {req['steps']} steps ({req['spacing']}) · "
            f"NFE **{out.nfe}** ({out.network_calls} network passes) · **{seconds:.2f} s** from click to result "
            f"(sampling {out.seconds:.2f} s) · seeds {seed}..{seed + n - 1} (image i uses seed + i)")
    if out.unknown_words:
        text = (f"**Warning: the model never saw: {', '.join(out.unknown_words)}** (no training caption has "
                f"{'these words' if len(out.unknown_words) > 1 else 'this word'}; it reads each as 'unknown')\n\n"
                + text)
    return text


def _gpu_seconds(model, prompt, guidance, solver, steps, spacing, seed, batch, *_, runs: int = 1, **__):
    return min(runs * sampling_seconds(batch, solver, steps, passes_per_eval=2), GPU_SECONDS_CAP)


@friendly(status=2, outputs=5)
@gpu(duration=_gpu_seconds)
def on_sample(model, prompt, guidance, solver, steps, spacing, seed, batch, request: gr.Request = None):
    """Streams (preview, grid, status, png file, judge details). A refused request or Stop
    leaves the previous grid, download and judge's reading on screen."""
    start = time.perf_counter()
    req = _request(prompt, guidance, solver, steps, spacing, seed, batch)
    pipe, stop = load_t2i(model, req["prompt"]), STOPS.start(request)
    yield gr.skip(), gr.skip(), f"sampling {req['n']} images with {req['solver']}, {req['steps']} steps ...", \
        gr.skip(), gr.skip()
    run = lambda callback: pipe(callback=callback, **req)  # noqa: E731
    render = lambda p: show(pipe.decode(p.x0_hat[:PREVIEW_IMAGES]))  # noqa: E731
    for kind, value, status in sample_updates(run, req["steps"], stop, render, "decoded x0_hat (the current guess)",
                                              PREVIEW_INTERVAL):
        if kind != "done":
            yield value if kind == "progress" else gr.skip(), gr.skip(), status, gr.skip(), gr.skip()
        if kind == "stopped":
            return
    out = value
    summary, details = judge_report(out.images, req["prompt"])
    parameters = {"model": model, **req, "nfe": out.nfe, "schedule": pipe.schedule}
    yield (gr.skip(), show(out.images), _status(req, out, time.perf_counter() - start) + summary,
           save_png(out.images, parameters, nrow=_nrow(req["n"])), details)


@friendly(status=1, outputs=2)
@gpu(duration=functools.partial(_gpu_seconds, runs=len(SWEEP)))
def on_sweep(model, prompt, guidance, solver, steps, spacing, seed, batch, request: gr.Request = None):
    """The same seeds at each w of SWEEP, one labelled row each with the judge's count;
    streams the rows done so far, and Stop (or a cancel) ends it at the next solver step."""
    req = _request(prompt, guidance, solver, steps, spacing, seed, min(as_int(batch, "batch size", 1, MAX_BATCH),
                                                                       SWEEP_IMAGES))
    pipe, stop, n = load_t2i(model, req["prompt"]), STOPS.start(request), req["n"]
    wanted, rows = shapes.prompt_attributes(req["prompt"]), []
    for w in SWEEP:
        run = lambda cb, w=w: pipe(**{**req, "guidance": w, "callback": cb})  # noqa: E731
        for kind, out, status in sample_updates(run, req["steps"], stop, lambda p: None, f"w = {w:g}",
                                                PREVIEW_INTERVAL):
            if kind == "stopped":
                yield gr.skip(), f"**Stopped** after {len(rows)} of {len(SWEEP)} rows"
                return
            if kind == "progress":
                yield gr.skip(), f"row {len(rows) + 1}/{len(SWEEP)}: {status}"
        follows = f"\n{followed(out.images, req['prompt'])['all']}/{n} follow" if wanted else ""
        rows.append((f"w = {w:g}{follows}", grid_image(out.images, nrow=n)))
        yield (plots.image_rows_figure(rows, f"\"{req['prompt']}\": the same {n} seeds as w grows"),
               f"sweep: {len(rows)}/{len(SWEEP)} rows")


def _prompt_box():
    """The prompt with a random-caption button and clickable examples."""
    prompt = gr.Textbox(EXAMPLES[0], label="prompt", max_lines=2, max_length=MAX_PROMPT_CHARS,
                        placeholder="e.g. a small red circle in the top left", elem_id="t2i-prompt")
    random_btn = gr.Button("random caption", size="sm", elem_id="t2i-random")
    gr.Examples([[p] for p in EXAMPLES], inputs=prompt, label="example prompts (click one)",
                elem_id="t2i-examples", api_name="t2i_example")
    random_btn.click(random_caption, None, prompt, api_name="t2i_random_caption")
    return prompt


def _controls(models: list) -> dict:
    """The left column: model, prompt, guidance, sampler and buttons."""
    c = {"model": inputs.Dropdown(models, value=models[0] if models else None, label="model", elem_id="t2i-model")}
    c["info"] = gr.Markdown("", elem_id="t2i-info")
    c["prompt"] = _prompt_box()
    c["guidance"] = inputs.Slider(MIN_UI_GUIDANCE, MAX_UI_GUIDANCE, value=3.0, step=0.25, label="guidance w",
                              info="w = 0: no guidance; w = -1: ignore the prompt; SD's guidance scale = 1 + w",
                              elem_id="t2i-w")
    entry = registry.get_entry(models[0]) if models else None  # the entry's measured best defaults
    c["solver"], c["steps"], c["spacing"] = (sampler_controls("t2i", entry.solver, entry.steps, entry.spacing) if entry
                                             else sampler_controls("t2i"))
    c["seed"] = inputs.Number(0, precision=0, label="seed", elem_id="t2i-seed")
    c["batch"] = inputs.Slider(1, MAX_BATCH, value=8, step=1, label="batch size", elem_id="t2i-batch")
    with gr.Row():
        c["run"] = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
        c["sweep"] = gr.Button("Guidance sweep", elem_id="t2i-sweep")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="t2i-stop")
    return c


def build_text2image_tab():
    """The Text to image tab's components and events (inside an open gr.Blocks / gr.Tab)."""
    gr.Markdown("Text-conditioned latent diffusion on a small caption language. Write a prompt (or click an example), "
                "pick a guidance strength and a solver; **Guidance sweep** shows what w does to the same seeds.")
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            c = _controls(text2image_models())
        with gr.Column(scale=3):
            status, preview, grid = image_outputs("t2i", "samples", "live: decoded x0_hat")
            judge = gr.Markdown("", elem_id="t2i-judge")
            download = gr.File(label="PNG with the generation parameters", elem_id="t2i-download")
            sweep_status = gr.Markdown("", elem_id="t2i-sweep-status")
            sweep_plot = gr.Plot(show_label=False, elem_id="t2i-sweep-plot")
            gr.Markdown(THEORY, latex_delimiters=[{"left": "$", "right": "$", "display": False}], elem_id="t2i-theory")
    values = [c[k] for k in ("model", "prompt", "guidance", "solver", "steps", "spacing", "seed", "batch")]
    outputs = [preview, grid, status, download, judge]
    c["run"].click(on_sample, values, outputs, api_name="t2i_sample", **serving.heavy(len(values)))
    c["prompt"].submit(on_sample, values, outputs, api_name=False, **serving.heavy(len(values)))  # Enter = Generate
    c["sweep"].click(on_sweep, values, [sweep_plot, sweep_status], api_name="t2i_sweep", **serving.heavy(len(values)))
    c["stop"].click(STOPS.request, None, None, queue=False, api_name="t2i_stop")
    c["model"].change(model_info, c["model"], c["info"], api_name="t2i_info")
    return {"info": (model_info, [c["model"]], c["info"]), "targets": [Target(c["model"], text2image_models(), TASKS)]}
