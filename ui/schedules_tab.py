"""Noise schedules view: alpha, sigma and log-SNR of every schedule, chosen steps marked."""
import gradio as gr

from ui import inputs, plots
from ui.errors import as_int, friendly
from zoo.checks import check_choice
from ui.tab_parts import TabParts
from zoo.diffusion import SCHEDULES, SPACINGS
from zoo.diffusion.spacing import MAX_STEPS, SPACING_FORMULAS

HEAD = r"""
Every schedule is a pair of functions of continuous time $t \in [0, 1]$:
$x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon$, $\varepsilon \sim \mathcal N(0, I)$, with log-SNR
$\lambda(t) = \log(\alpha^2/\sigma^2)$.

| schedule | $\alpha(t)$ | $\sigma(t)$ | source |
|---|---|---|---|
"""
# the table is written from the schedules themselves (zoo.diffusion.schedules): a new one appears here
ROWS = "".join(f"| `{name}` | {s.alpha_text} | {s.sigma_text} | {s.source} |\n" for name, s in SCHEDULES.items())
DISCRETE = r"Discrete DDPM: $\bar\alpha_i = \alpha(i/T)^2$, $\beta_i = 1 - \bar\alpha_i/\bar\alpha_{i-1}$."
THEORY = HEAD + ROWS + "\n" + DISCRETE + "\n\n"
SPACING_TEXT = "Step spacings: " + "; ".join(f"`{name}`: {text}" for name, text in SPACING_FORMULAS.items()) + "."


@friendly(status=1, outputs=2)
def on_schedule(schedule, steps, spacing):
    """(figure, message): the schedules' curves with the chosen one's sampling times (also
    the Toy 2D tab's schedule view)."""
    schedule = check_choice(schedule, SCHEDULES, "schedule")
    check_choice(spacing, SPACINGS, "step spacing")
    return plots.schedule_figure(schedule, as_int(steps, "steps", 1, MAX_STEPS), spacing), ""


def build_schedules_tab():
    with gr.Row():
        schedule = inputs.Dropdown(sorted(SCHEDULES), value="vp-cosine", label="schedule", elem_id="sched-schedule")
        steps = inputs.Slider(1, 200, value=20, step=1, label="steps", elem_id="sched-steps")
        spacing = inputs.Dropdown(sorted(SPACINGS), value="logsnr", label="step spacing", elem_id="sched-spacing")
    message = gr.Markdown("", elem_id="sched-message")
    plot = gr.Plot(label="alpha, sigma, log-SNR", elem_id="sched-plot")
    gr.Markdown(THEORY + SPACING_TEXT, latex_delimiters=[{"left": "$", "right": "$", "display": False}])
    gr.on([schedule.change, steps.input, spacing.change], on_schedule, [schedule, steps, spacing], [plot, message],
          api_name="schedules_plot", trigger_mode="always_last")
    return TabParts(on_load=[(on_schedule, [schedule, steps, spacing], [plot, message])])
