"""Noise schedules view: alpha, sigma and log-SNR of every schedule, chosen steps marked."""
import gradio as gr

from ui import inputs
from ui.toy_tab import on_schedule
from zoo.diffusion import SCHEDULES, SPACINGS
from zoo.diffusion.spacing import SPACING_FORMULAS

THEORY = r"""
Every schedule is a pair of functions of continuous time $t \in [0, 1]$:
$x_t = \alpha(t)\,x_0 + \sigma(t)\,\varepsilon$, $\varepsilon \sim \mathcal N(0, I)$, with log-SNR
$\lambda(t) = \log(\alpha^2/\sigma^2)$.

| schedule | $\alpha(t)$ | $\sigma(t)$ | source |
|---|---|---|---|
| `vp-linear` | $\exp(-\tfrac14 t^2(\beta_{max}-\beta_{min}) - \tfrac12 t\beta_{min})$ | $\sqrt{1-\alpha^2}$ | DDPM betas $10^{-4}..0.02$ over 1000 steps (Ho et al. 2020), VP SDE (Song et al. 2021) |
| `vp-cosine` | $\sqrt{\bar\alpha(t)}$, $\bar\alpha = \cos^2(\tfrac{t+s}{1+s}\tfrac\pi2)/\cos^2(\tfrac{s}{1+s}\tfrac\pi2)$ | $\sqrt{1-\alpha^2}$ | Nichol & Dhariwal 2021 |
| `ve` | $1$ | $\sigma_{min}(\sigma_{max}/\sigma_{min})^t$ | NCSN / SMLD (Song & Ermon 2019) |
| `flow` | $1-t$ | $t$ | rectified flow (Liu et al. 2022) |

Discrete DDPM: $\bar\alpha_i = \alpha(i/T)^2$, $\beta_i = 1 - \bar\alpha_i/\bar\alpha_{i-1}$.
"""
SPACING_TEXT = "Step spacings: " + "; ".join(f"`{name}`: {text}" for name, text in SPACING_FORMULAS.items()) + "."


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
    return on_schedule, [schedule, steps, spacing], [plot, message]
