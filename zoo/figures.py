"""Matplotlib figures both the tabs (ui/plots.py) and the trainers' model cards draw: a
figure outside pyplot's registry, thread-safe tick labels, toy samples over a density.
Rendering only."""
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, LogFormatterMathtext
from PIL import Image


def subplots(nrows: int = 1, ncols: int = 1, figsize=(5, 4), **kw):
    """A figure outside pyplot's registry: a server draws thousands of them, and pyplot
    would keep every one alive until closed."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def finish(fig):
    """Plain-text tick labels on log axes, then lay out. Matplotlib's default log labels
    ("10^{-1}") go through its mathtext parser, one shared pyparsing object that is not
    thread-safe: Gradio draws figures from several threads at once, and concurrent parses
    fail with a ParseException (seen in CI)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if isinstance(axis.get_major_formatter(), LogFormatterMathtext):
                axis.set_major_formatter(LogFormatter())
            if isinstance(axis.get_minor_formatter(), LogFormatterMathtext):
                axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    fig.tight_layout()
    return fig


def density_background(ax, density, lim: float):
    """The data density (a 2D histogram) as a grey image under the samples."""
    if density is not None:
        ax.imshow(np.asarray(density).T, origin="lower", extent=(-lim, lim, -lim, lim), cmap="Greys",
                  aspect="equal", alpha=0.55)


def samples_figure(points, density, lim: float, title: str, outline=None):
    """Samples over a density image; `outline` (another density grid) is drawn as contours."""
    fig, ax = subplots(figsize=(4.6, 4.6))
    density_background(ax, density, lim)
    if outline is not None:
        centres = np.linspace(-lim, lim, len(outline) + 1)[:-1] + lim / len(outline)
        ax.contour(centres, centres, np.asarray(outline).T, levels=4, colors="tab:blue", linewidths=0.7, alpha=0.7)
    p = points.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=3, c="tab:orange", alpha=0.6, linewidths=0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title)
    ax.set_aspect("equal")
    return finish(fig)


def figure_image(fig, dpi: int = 100):
    """A matplotlib figure as a PIL image (for model cards and sample files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    return Image.open(buf).convert("RGB")
