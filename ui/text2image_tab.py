"""Text to image tab: prompts in, scenes of coloured shapes out, from a latent DiT with
classifier-free guidance (a negative prompt may take the empty prompt's place). The preview
decodes the denoiser's current guess x0_hat while the solver runs; the scene judge
(zoo.data.scene_judge) reads every object back, frames it on the sample (green: asked for,
magenta: not) and says whether the sample shows exactly what the prompt asks for; a sweep shows
the same seeds at growing w. Layout and wiring only; the work is in zoo.pipelines.text2image and
zoo.data.scene_judge."""
import functools
import secrets
import time

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

import zoo
from ui import inputs, plots, serving
from ui.opened import Target
from ui.tab_parts import TabParts
from ui.errors import as_int, as_number, friendly
from ui.image_widgets import (PREVIEW_IMAGES, PREVIEW_INTERVAL, check_sampler, image_outputs, on_screen,
                              optimized_note, sampler_controls, sampler_defaults, save_png)
from ui.streaming import STOPS, sample_updates
from zoo import registry
from zoo.data import scene_judge, scenes, shapes
from zoo.data.captioned import captioned
from zoo.diffusion.guidance import W_RANGE, check_w
from zoo.gpu import GPU_SECONDS_CAP, gpu, sampling_seconds
from zoo.pipelines.pixels import MAX_BATCH, grid_image
from zoo.pipelines.text2image import DEFAULT_W, MAX_PROMPT_CHARS, check_prompts

SWEEP = (0.0, 1.0, 3.0, 6.0)
SWEEP_IMAGES = 8  # seeds per sweep row at most: four rows of sampling must stay quick on a CPU
VAE_ENTRY = {"shapes-t2i": "shapes-vae", "scenes-t2i": "scenes-vae"}  # the latent spaces the train commands name
SHOW_WIDTH = 840  # the small grids are upscaled (nearest neighbour) to about this width
FRAME = 150  # grey level of the frame around each sample: the white canvas's edges stay visible
BOX = {True: (0, 200, 120), False: (255, 0, 160)}  # the judge's frame: asked for, or not (colours off the palette)
# examples per GenEval category, in the caption grammar (a test parses each to its category)
EXAMPLES = {
    "single object": ["a triangle", "a small square"],
    "colors": ["a cyan square", "a purple triangle"],
    "two objects": ["a circle and a square", "a triangle and a circle"],
    "counting": ["three yellow circles", "four squares"],
    "position": ["a red circle to the left of a blue square", "a circle above a square"],
    "attribute binding": ["a red triangle and a blue circle", "a green circle and a red square"],
    "absolute position": ["a small red circle in the top left", "a large square on the right"],
}
THEORY = rf"""
**Latent diffusion** (Rombach et al. 2022). A KL autoencoder (`scenes-vae`: 3x48x48 images; `shapes-vae`: 3x32x32)
compresses each image $x$ to a latent $z = E(x)$ with 4 channels at a quarter of the side, normalised to unit
variance. Diffusion runs on $z$; the decoder turns the sampled latent back into pixels at the end,
$x = D_{{\mathrm{{VAE}}}}(z_0)$ (the live preview decodes $\hat z_0$ at every step).

**Denoiser**: a DiT (Peebles & Xie 2023) on 2x2 patches of $z$. Each block is adaLN-Zero: the time embedding plus
the pooled prompt give a LayerNorm shift, scale and a residual gate, initialised to zero so every block starts as the
identity. Between self-attention and MLP the patches cross-attend to the token features of an open_clip text
transformer (the CLIP text tower, trained here with the DiT) reading the prompt.

**Classifier-free guidance** (Ho & Salimans 2022), with the empty prompt as null condition (in training, a share
of the captions, 10% by default, is replaced by ""):
$D_w(z_t) = D(z_t\mid c) + w\,\big(D(z_t\mid c) - D(z_t\mid \varnothing)\big)$.
$w = 0$ is the plain conditional model, $w = -1$ ignores the prompt; Stable Diffusion's "guidance scale" is $1 + w$.
A **negative prompt** $c_-$ takes the null condition's place, $D(z_t\mid c) + w\,(D(z_t\mid c) - D(z_t\mid c_-))$:
guidance then pushes away from what it describes. Each step with $w \neq 0$ costs two network passes.

**What the scene model knows** (`scenes-t2i`, GenEval's six categories, Ghosh et al. 2023): `a triangle`,
`a purple square`, `a circle and a square`, `three yellow circles` (2 to 4),
`a red circle to the left of a blue square` (also *to the right of*, *above*, *below*),
`a red triangle and a blue circle`, and the single-shape phrases `a [size] [colour] shape [position]`.
Shapes: {", ".join(shapes.SHAPES)}; colours: {", ".join(shapes.COLORS)}; sizes: {", ".join(shapes.SIZES)};
positions: {", ".join(shapes.position_phrase(p) for p in shapes.POSITIONS)}.
**Held out of training**: the colour-shape pairs {", ".join(f"{c} {s}" for c, s in sorted(scenes.HELD_OUT_PAIRS))}
(no training image shows one) and the phrasings {", ".join(f"*{a} {r} {b}*" for a, r, b in
sorted(scenes.HELD_OUT_RELATIONS))} (said only the other way round): prompts with them test composition.
Words outside the vocabulary (*{" ".join(scenes.vocabulary())}*) map to one "unknown" token, and the judge never
counts a prompt with parts it cannot check as followed.
"""


TASKS = ("text-to-image",)


def text2image_models() -> list:
    return registry.names_for(*TASKS)


def load_t2i(model: str, prompt: str = "", negative: str = ""):
    """The pipeline; with prompts, also checks that they fit the text encoder's context,
    so a too-long prompt fails before the first streamed update."""
    registry.entry_for(model, TASKS)
    pipe = zoo.load(model)
    for text in (prompt, negative.strip()):
        if text:
            pipe.context([text])  # ValueError naming the token count when too long
    return pipe


def _numbers(pipe) -> str:
    """The checkpoint's evaluation: the GenEval-style overall by w (scene models) or prompt
    following by w (the one-shape model), and the VAE's reconstructions."""
    geneval = pipe.card.get("geneval_style", {})
    if geneval:
        parts = [f"{name.split(',')[0]}: seen {r['seen']['overall']:.0%}, held-out {r['held_out']['overall']:.0%}"
                 for name, r in geneval.items()]
        text = f" · GenEval-style overall (bench/text2image.py): {'; '.join(parts)}"
    else:
        by_w = pipe.card.get("prompt_following_by_guidance", {})
        parts = [f"{r.get('overall', r.get('all')):.0%} at w = {float(w):g}" for w, r in by_w.items()
                 if "overall" in r or "all" in r]
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
        vae = VAE_ENTRY.get(model)
        if vae and registry.source(vae) == "missing":  # the latent space comes first
            text += f"after the VAE: `{registry.get_entry(vae).train_command}`\n\n"
        return text + "or run the app online."
    pipe = load_t2i(model)
    return f"**{model}** ({where}): {pipe.description}{_numbers(pipe)}{optimized_note(pipe)}"


@friendly
def random_caption(model) -> str:
    """A caption drawn as the model's training captions are (some attributes left out)."""
    dataset = zoo.load(model).dataset if model in text2image_models() else "scenes"
    return captioned(dataset).captions(1, secrets.randbelow(2**31))[0]


def _request(prompt, guidance, solver, steps, spacing, seed, batch, negative="") -> dict:
    """The UI values, checked, as keyword arguments of TextToImagePipeline."""
    steps = check_sampler(solver, steps, spacing)
    n = as_int(batch, "batch size", 1, MAX_BATCH)
    serving.check_budget(n, serving.passes(solver, steps, per_eval=2), serving.IMAGE_BUDGET)
    if negative is not None and not isinstance(negative, str):
        raise ValueError("the negative prompt must be text")
    negative = check_prompts(negative, 1)[0] if negative and negative.strip() else ""
    return dict(prompt=check_prompts(prompt, 1)[0], n=n,
                guidance=check_w(as_number(guidance, "guidance w")), solver=solver,
                steps=steps, spacing=spacing, seed=as_int(seed, "seed", 0, 2**31 - 1), negative_prompt=negative)


def _nrow(n: int) -> int:
    return min(n, 4) if n <= 16 else 8


def framed(images, readings=None, spec=None, nrow=None) -> Image.Image:
    """uint8 (n, H, W, 3) -> the on-screen grid: each sample upscaled (nearest neighbour) on a
    grey frame, with the judge's box around every object it reads (green: one the prompt asks
    for, magenta: not) when `readings` (read_objects per image) are given."""
    images = np.asarray(images)
    nrow = nrow or _nrow(len(images))
    k = max(1, SHOW_WIDTH // (nrow * images.shape[2]))
    tiles = []
    for i, image in enumerate(images):
        tile = Image.fromarray(image).resize((image.shape[1] * k, image.shape[0] * k), resample=0)
        draw = ImageDraw.Draw(tile)
        for read in (readings[i] if readings is not None else []):
            width, (left, top, right, bottom) = max(1, k // 3), (v * k for v in read["box"])
            draw.rectangle((left - width, top - width, right + width - 1, bottom + width - 1),  # just outside it
                           outline=BOX[scene_judge.wanted(spec, read)], width=width)
        tiles.append(np.asarray(tile))
    return grid_image(np.stack(tiles), nrow=nrow, pad=max(2, k * 2), fill=FRAME)


def show(images, readings=None, spec=None) -> str:
    """The framed grid as a file for an Image output."""
    return on_screen(framed(images, readings, spec))


def _which(ids: list, n: int) -> str:
    return "all" if len(ids) == n else f"sample{'s' * (len(ids) > 1)} {', '.join(ids)}"


def judge_report(images, prompt: str) -> tuple:
    """(summary for the status line, Markdown: what the judge reads from each sample,
    the readings per image for the boxes, the parsed prompt)."""
    spec = scene_judge.parse_prompt(prompt)
    readings = [scene_judge.read_objects(image) for image in images]
    ok = [scene_judge.follows(spec, reads) for reads in readings]
    groups = {}  # identical readings together, with the sample numbers (1 = top left of the grid)
    for i, (reads, good) in enumerate(zip(readings, ok), 1):
        seen = ", ".join(sorted(scene_judge.describe(r) for r in reads)) or "an empty canvas"
        groups.setdefault(f"{seen} {'✓' if good else '✗'}", []).append(str(i))
    lines = [f"- {len(ids)} × {seen} ({_which(ids, len(images))})"
             for seen, ids in sorted(groups.items(), key=lambda g: -len(g[1]))]
    if spec is None:
        asked = ("something outside the caption grammar, which the judge cannot check (so no sample counts as "
                 "following it)")
        summary = " · the judge cannot check this prompt: parts of it are outside the caption grammar"
    else:
        asked = scene_judge.asks_for(spec)
        summary = (f" · judge: **{sum(ok)}/{len(ok)}** samples show exactly what the prompt asks for "
                   f"({spec.category.replace('_', ' ')})")
    details = (f"The prompt asks for: {asked}. What the judge (zoo.data.scene_judge) reads from each sample "
               f"(framed green on the samples when asked for, magenta when not):\n\n" + "\n".join(lines))
    return summary, details, readings, spec


def followed(images, prompt: str) -> int:
    """How many images show exactly what the prompt asks for (the judge of the model card)."""
    return sum(scene_judge.judge(images, [prompt] * len(images))["followed"])


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
def on_sample(model, prompt, guidance, solver, steps, spacing, seed, batch, negative="",
              request: gr.Request = None):
    """Streams (preview, grid, status, png file, judge details). A refused request or Stop
    leaves the previous grid, download and judge's reading on screen. The preview's last
    frame is the final sample (the solver's last x0_hat is not the returned x0 for every solver)."""
    start = time.perf_counter()
    req = _request(prompt, guidance, solver, steps, spacing, seed, batch, negative)
    pipe, stop = load_t2i(model, req["prompt"], req["negative_prompt"]), STOPS.start(request)
    yield gr.skip(), gr.skip(), f"sampling {req['n']} images with {req['solver']}, {req['steps']} steps ...", \
        gr.skip(), gr.skip()
    run = lambda callback: pipe(callback=callback, **req)
    render = lambda p: show(pipe.decode(p.x0_hat[:PREVIEW_IMAGES]))
    for kind, value, status in sample_updates(run, req["steps"], stop, render, "decoded x0_hat (the current guess)",
                                              PREVIEW_INTERVAL):
        if kind != "done":
            yield value if kind == "progress" else gr.skip(), gr.skip(), status, gr.skip(), gr.skip()
        if kind == "stopped":
            return
    out = value
    summary, details, readings, spec = judge_report(out.images, req["prompt"])
    parameters = {"model": model, **req, "nfe": out.nfe, "schedule": pipe.schedule}
    yield (show(out.images[:PREVIEW_IMAGES]), show(out.images, readings, spec),
           _status(req, out, time.perf_counter() - start) + summary,
           save_png(out.images, parameters, nrow=_nrow(req["n"])), details)


@friendly(status=1, outputs=2)
@gpu(duration=functools.partial(_gpu_seconds, runs=len(SWEEP)))
def on_sweep(model, prompt, guidance, solver, steps, spacing, seed, batch, negative="", request: gr.Request = None):
    """The same seeds at each w of SWEEP, one labelled row each with the judge's count;
    streams the rows done so far, and Stop (or a cancel) ends it at the next solver step."""
    req = _request(prompt, guidance, solver, steps, spacing, seed, min(as_int(batch, "batch size", 1, MAX_BATCH),
                                                                       SWEEP_IMAGES), negative)
    pipe, stop, n = load_t2i(model, req["prompt"], req["negative_prompt"]), STOPS.start(request), req["n"]
    checkable, rows = scene_judge.parse_prompt(req["prompt"]) is not None, []
    for w in SWEEP:
        run = lambda cb, w=w: pipe(**{**req, "guidance": w, "callback": cb})
        for kind, out, status in sample_updates(run, req["steps"], stop, lambda p: None, f"w = {w:g}",
                                                PREVIEW_INTERVAL):
            if kind == "stopped":
                yield gr.skip(), f"**Stopped** after {len(rows)} of {len(SWEEP)} rows"
                return
            if kind == "progress":
                yield gr.skip(), f"row {len(rows) + 1}/{len(SWEEP)}: {status}"
        follows = f"\n{followed(out.images, req['prompt'])}/{n} follow" if checkable else ""
        rows.append((f"w = {w:g}{follows}", grid_image(out.images, nrow=n, fill=FRAME)))
        yield (plots.image_rows_figure(rows, f"\"{req['prompt']}\": the same {n} seeds as w grows"),
               f"sweep: {len(rows)}/{len(SWEEP)} rows")


def _prompt_box(model):
    """The prompt and the negative prompt, with a random-caption button and clickable
    examples per category (held-out combinations marked)."""
    prompt = gr.Textbox(EXAMPLES["counting"][0], label="prompt", max_lines=2, max_length=MAX_PROMPT_CHARS,
                        placeholder="e.g. a red circle to the left of a blue square", elem_id="t2i-prompt")
    negative = gr.Textbox("", label="negative prompt (optional)", max_lines=1, max_length=MAX_PROMPT_CHARS,
                          placeholder="e.g. a red circle: guidance pushes away from it", elem_id="t2i-negative",
                          info="takes the empty prompt's place as classifier-free guidance's null condition")
    random_btn = gr.Button("random caption", size="sm", elem_id="t2i-random")
    with gr.Accordion("example prompts by category (click one)", open=True, elem_id="t2i-examples"):
        for category, prompts in EXAMPLES.items():
            gr.Examples([[p] for p in prompts], inputs=prompt, label=category,
                        example_labels=[p + " · held out" * scene_judge.held_out(p) for p in prompts],
                        elem_id=f"t2i-examples-{category.replace(' ', '-')}", api_name=False)
    random_btn.click(random_caption, model, prompt, api_name="t2i_random_caption")
    return prompt, negative


def _controls(models: list) -> dict:
    """The left column: model, prompt, guidance, sampler and buttons."""
    c = {"model": inputs.Dropdown(models, value=models[0] if models else None, label="model", elem_id="t2i-model")}
    c["info"] = gr.Markdown("", elem_id="t2i-info")
    c["prompt"], c["negative"] = _prompt_box(c["model"])
    c["guidance"] = inputs.Slider(*W_RANGE, value=DEFAULT_W, step=0.25, label="guidance w",
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
    gr.Markdown("Text-conditioned latent diffusion on scenes of coloured shapes. Write a prompt (or click an example "
                "of one of GenEval's six categories), pick a guidance strength and a solver; the judge frames every "
                "object it reads. **Guidance sweep** shows what w does to the same seeds.")
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
    values = [c[k] for k in ("model", "prompt", "guidance", "solver", "steps", "spacing", "seed", "batch", "negative")]
    outputs = [preview, grid, status, download, judge]
    c["run"].click(on_sample, values, outputs, api_name="t2i_sample", **serving.heavy(len(values)))
    c["prompt"].submit(on_sample, values, outputs, api_name=False, **serving.heavy(len(values)))  # Enter = Generate
    c["sweep"].click(on_sweep, values, [sweep_plot, sweep_status], api_name="t2i_sweep", **serving.heavy(len(values)))
    c["stop"].click(STOPS.request, None, None, queue=False, api_name="t2i_stop")
    c["model"].change(model_info, c["model"], c["info"], api_name="t2i_info")
    c["model"].change(sampler_defaults, c["model"], [c["solver"], c["steps"], c["spacing"]], api_name=False,
                      queue=False)
    return TabParts(targets=[Target(c["model"], text2image_models(), TASKS)],
                    on_load=[(model_info, [c["model"]], c["info"])])
