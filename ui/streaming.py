"""Run a sampler in a worker thread and stream its progress to a Gradio generator; Stop.

The solver reports through its callback(step, t, x_t, x0_hat); the generator wakes every
`interval` seconds and yields the newest state, so the preview rate does not depend on
how fast a step is. The run ends early, at its next solver step, when

* the visitor presses Stop: a flag per browser session (`STOPS`), set by the Stop event,
  which runs outside the queue so it is heard at once; the generator then yields
  ("stopped", last progress) and the tab keeps what it shows;
* Gradio cancels the event (a closed tab, a client's cancel): it closes the generator,
  and no CPU is spent after that.
"""
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import gradio as gr


class Cancelled(Exception):
    """The run was stopped or cancelled."""


@dataclass
class Progress:
    step: int
    t: float
    x_t: Any
    x0_hat: Any


class StopRequests:
    """One stop flag per browser session (at most `keep` sessions remembered)."""

    def __init__(self, keep: int = 10_000):
        self._flags: OrderedDict = OrderedDict()
        self._lock, self._keep = threading.Lock(), keep

    def flag(self, session: Optional[str]) -> threading.Event:
        with self._lock:
            event = self._flags.pop(session, None) or threading.Event()
            self._flags[session] = event  # most recent last
            while len(self._flags) > self._keep:
                self._flags.popitem(last=False)
            return event

    def start(self, request: Optional[gr.Request]) -> threading.Event:
        """The flag of a run that starts now (a Stop pressed before it does not count)."""
        event = self.flag(getattr(request, "session_hash", None))
        event.clear()
        return event

    def request(self, request: gr.Request):
        """The Stop button's handler."""
        self.flag(getattr(request, "session_hash", None)).set()


STOPS = StopRequests()
SAMPLER_THREAD = "zoo-sampler"  # the worker threads' name: a test can see that none is left running


_RUNNING = [0]  # sampler threads running now, in this process
_RUNNING_LOCK = threading.Lock()


def _count_running(change: int) -> None:
    with _RUNNING_LOCK:
        _RUNNING[0] += change


def stream_sampling(run: Callable[[Callable], Any], interval: float = 0.3,
                    stop: Optional[threading.Event] = None) -> Iterator[tuple]:
    """Yields ("progress", Progress) while `run(callback)` works, then ("done", result), or
    ("stopped", last Progress or None) when `stop` is set. Errors raised by `run` are
    re-raised here, in the caller's thread. With k runs at once each previews every k x
    `interval`: previews (render, encode, send) then cost the server the same share of its
    CPU whatever the number of visitors, instead of a share growing with them."""
    state = {"latest": None, "result": None, "error": None, "stopped": False}
    closed, fresh = threading.Event(), threading.Event()  # fresh: a new step, or the end of the run

    def callback(step, t, x_t, x0_hat):
        if closed.is_set() or (stop is not None and stop.is_set()):
            raise Cancelled()
        state["latest"] = Progress(step, float(t), x_t.detach().clone(), x0_hat.detach().clone())
        fresh.set()

    def work():
        try:
            state["result"] = run(callback)
        except Cancelled:
            state["stopped"] = True
        except BaseException as err:  # handed to the caller's thread
            state["error"] = err
        finally:
            fresh.set()

    worker = threading.Thread(target=work, daemon=True, name=SAMPLER_THREAD)
    _count_running(+1)
    worker.start()
    shown, last = None, -math.inf
    try:
        while worker.is_alive():
            fresh.wait(1.0)  # sleeps until a step is done: never a busy loop, whatever the interval
            worker.join(max(0.0, last + interval * max(1, _RUNNING[0]) - time.monotonic()))  # returns when the run ends
            fresh.clear()  # before reading: a step finishing now sets it again
            latest: Optional[Progress] = state["latest"]
            if latest is not None and latest is not shown and worker.is_alive():
                shown, last = latest, time.monotonic()
                yield "progress", latest
        if state["error"] is not None:
            raise state["error"]
        yield ("stopped", state["latest"]) if state["stopped"] else ("done", state["result"])
    finally:
        closed.set()  # a closed generator (cancel) stops the worker at its next step
        _count_running(-1)


def sample_updates(run: Callable[[Callable], Any], steps: int, stop: threading.Event, render: Callable,
                   shows: str, interval: float = 0.3) -> Iterator[tuple]:
    """What a sampling tab shows, as (kind, image or result, status): ("progress", preview,
    status) while `run` works; then ("done", result, None), or ("stopped", None, status)
    after Stop (the preview on screen is the result: the last x0_hat)."""
    for kind, value in stream_sampling(run, interval, stop):
        if kind == "progress":
            yield kind, render(value), f"step {value.step + 1}/{steps} · t = {value.t:.3f} · {shows}"
        elif kind == "stopped":
            where = f"at step {value.step + 1}/{steps} (t = {value.t:.3f})" if value else "before its first step"
            yield kind, None, (f"**Stopped** {where}: the preview shows the last x0_hat; the previous result and "
                               "download stay below")
        else:
            yield kind, value, None
