"""Run a sampler in a worker thread and stream its progress to a Gradio generator.

The solver reports through its callback(step, t, x_t, x0_hat); the generator wakes every
`interval` seconds and yields the newest state, so the preview rate does not depend on
how fast a step is. When Gradio cancels the event (a Stop button, a closed tab) it closes
the generator; the next callback then raises `Cancelled` and the worker ends early.
"""
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional


class Cancelled(Exception):
    """The user stopped the run."""


@dataclass
class Progress:
    step: int
    t: float
    x_t: Any
    x0_hat: Any


def stream_sampling(run: Callable[[Callable], Any], interval: float = 0.3) -> Iterator[tuple]:
    """Yields ("progress", Progress) while `run(callback)` works, then ("done", result).
    Errors raised by `run` are re-raised here, in the caller's thread."""
    state = {"latest": None, "result": None, "error": None}
    stop = threading.Event()

    def callback(step, t, x_t, x0_hat):
        if stop.is_set():
            raise Cancelled()
        state["latest"] = Progress(step, float(t), x_t.detach().clone(), x0_hat.detach().clone())

    def work():
        try:
            state["result"] = run(callback)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            state["error"] = err

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    shown: Optional[Progress] = None
    try:
        while worker.is_alive():
            worker.join(interval)  # wakes at once when the run ends
            latest: Optional[Progress] = state["latest"]
            if latest is not None and latest is not shown and worker.is_alive():
                shown = latest
                yield "progress", latest
        if state["error"] is not None:
            raise state["error"]
        yield "done", state["result"]
    finally:
        stop.set()  # a closed generator (cancel) stops the worker at its next step
