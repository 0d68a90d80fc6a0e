"""The Guidance tab's exact 2D section: guidance on the Gaussian mixture `gmm` with every
part exact (conditional and unconditional denoisers, noisy classifier), so what guidance
does to a distribution can be seen and measured without any network. Layout and wiring
only; the work is in zoo.pipelines.toy2d.guided_mixture."""
import gradio as gr

from ui import inputs, plots, serving
from ui.errors import as_int, as_number, friendly
from ui.image_widgets import check_sampler, sampler_controls
from zoo.checks import check_choice
from zoo.diffusion.guidance import SCALE_RANGE, W_RANGE
from zoo.pipelines.toy2d import GUIDED_BASES, gmm, guided_mixture

LIM, BINS, POINTS = 2.5, 120, 4000
EXPLAIN = r"""
Class $k$ is component $k$ of the mixture. The guided sampler follows the score
$\nabla\log p_t(x\mid k) + w\,\nabla\log p_t(k\mid x)$ from the conditional model, or
$\nabla\log p_t(x) + s\,\nabla\log p_t(k\mid x)$ from the unconditional one. So the unconditional model with
$s = 1$ samples $p(x_0\mid k)$ exactly, and CFG's $w$ acts like a classifier scale $1 + w$: for $w > 0$ the samples
crowd into the part of component $k$ farthest from the others (grey: $p(x_0\mid k)$; blue: the whole mixture).
"""


@friendly(status=1, outputs=2)
def on_exact(component, base, guidance, scale, solver, steps, spacing, seed):
    """(figure, status) for one exactly guided run."""
    steps = check_sampler(solver, steps, spacing)
    k = as_int(component, "component", 0, len(gmm().weights) - 1)
    check_choice(base, GUIDED_BASES, "model")
    w, s = as_number(guidance, "guidance w"), as_number(scale, "classifier scale")  # ranges: zoo.pipelines.toy2d
    if base == "unconditional":
        w = 0.0  # CFG needs the conditional model; the slider is ignored (said in the status)
    out = guided_mixture(k, w, s, base, n=POINTS, steps=steps, solver=solver, spacing=spacing,
                         seed=as_int(seed, "seed", 0, 2**31 - 1))
    mixture = gmm()
    figure = plots.samples_figure(out.points, mixture.component(k).density_grid(LIM, BINS).numpy(), LIM,
                                  f"{base} model, w = {w:g}, s = {s:g}",
                                  outline=mixture.density_grid(LIM, BINS).numpy())
    ratio = out.swd / out.floor
    verdict = ("**the law p(x0 | k) itself**, within sampling noise" if ratio < 1.5 else
               f"**not p(x0 | k)**: {ratio:.1f}x the distance between two exact sample sets")
    status = (f"{POINTS} samples of component {k} · {solver}, {steps} steps ({spacing}), NFE {out.nfe} · sliced "
              f"Wasserstein to exact p(x0 | k) samples {out.swd:.4f} (two exact sets: {out.floor:.4f}): {verdict}")
    return figure, status + (" · w ignored: CFG needs the conditional model" if base == "unconditional" and
                             guidance else "")


def build_exact_section():
    """Inside an open Blocks context: the exact 2D guidance demo."""
    with gr.Accordion("Exact guidance on a 2D Gaussian mixture (no network): what guidance does to a distribution",
                      open=False, elem_id="gx-section"):
        gr.Markdown(EXPLAIN, latex_delimiters=[{"left": "$", "right": "$", "display": False}])
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                component = inputs.Radio(list(range(len(gmm().weights))), value=1, label="class = mixture component",
                                         elem_id="gx-component")
                base = inputs.Radio(list(GUIDED_BASES), value="unconditional", label="model", elem_id="gx-base")
                guidance = inputs.Slider(0.0, W_RANGE[1], value=0.0, step=0.25, label="CFG w", elem_id="gx-w")
                scale = inputs.Slider(*SCALE_RANGE, value=1.0, step=0.25, label="classifier scale s",
                                      elem_id="gx-scale")
                solver, steps, spacing = sampler_controls("gx", solver="heun", steps=20, spacing="quadratic")
                seed = inputs.Number(0, precision=0, label="seed", elem_id="gx-seed")
                run = gr.Button("Sample exactly", variant="primary", elem_id="gx-run")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="gx-status")
                plot = gr.Plot(show_label=False, elem_id="gx-plot")
        values = [component, base, guidance, scale, solver, steps, spacing, seed]
        run.click(on_exact, values, [plot, status], api_name="guidance_exact", **serving.heavy(len(values)))
