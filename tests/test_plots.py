"""The figures the tabs draw: safe to draw from several threads at once (Gradio does)."""
import pytest
import io
import threading

from ui import plots


def _log_figures():
    return [
        plots.schedule_figure("vp-cosine", 12, "logsnr"),
        plots.curve_figure([1, 2, 3], [1.0, 0.1, 0.01], "loss", "step", "loss", logy=True),
        plots.compare_figure({"heun": [(5, 0.3), (10, 0.05), (20, 0.01)]}, floor=0.01),
    ]


def _tick_texts(fig):
    fig.savefig(io.BytesIO(), format="png")
    return [label.get_text() for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
            for label in axis.get_ticklabels() + axis.get_minorticklabels()]


def test_log_axes_have_plain_text_ticks():
    """Mathtext labels ($10^{-1}$) would go through matplotlib's one shared parser,
    which fails when two threads parse at once."""
    for fig in _log_figures():
        texts = [t for t in _tick_texts(fig) if t]
        assert texts and not any("$" in t for t in texts), texts


def test_compare_figure_keeps_its_nfe_ticks():
    fig = plots.compare_figure({"heun": [(5, 0.3), (10, 0.05), (20, 0.01)]}, floor=0.01)
    assert [t for t in _tick_texts(fig)[:3]] == ["5", "10", "20"]


@pytest.mark.slow
def test_figures_draw_concurrently():
    errors = []

    def draw():
        try:
            for _ in range(4):
                for fig in _log_figures():
                    fig.savefig(io.BytesIO(), format="png")
        except Exception as exc:  # collected: a thread's exception would not fail the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=draw) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:2]


def test_a_models_optimized_times_are_marked_on_the_schedule_plot():
    times = {"dpmpp_2m": {4: [0.999, 0.6, 0.3, 0.05]}}
    fig = plots.schedule_figure("vp-cosine", 4, "optimized", "dpmpp_2m", times)
    dots = [line for line in fig.axes[0].lines if line.get_label() == "4 steps (optimized)"]
    assert len(dots) == 1 and list(dots[0].get_xdata()) == pytest.approx(times["dpmpp_2m"][4])
    unmarked = plots.schedule_figure("vp-cosine", 5, "optimized", "dpmpp_2m", times)  # none stored at 5
    assert not [line for line in unmarked.axes[0].lines if "steps" in line.get_label()]
