"""How the app shares a few CPU cores among its visitors.

* Heavy events (sampling, sweeps, comparisons, likelihoods) share one concurrency group
  of `WORKERS` slots, one per core; torch gets cores / WORKERS threads (zoo.cpu), so
  requests never oversubscribe the cores. In-browser training has one slot of its own
  (`training`): it is bound by Python, so a second one at once would gain nothing.
* A visitor may have at most `PER_SESSION` requests waiting or running: one client cannot
  fill the queue for everyone (Gradio's own limit is global).
* Every request has a work budget, counted in network evaluations (samples x passes), so
  no single click holds a worker for minutes. Longer runs stay possible through the
  library and the trainers.
* Gradio's temporary files (previews, downloads) are deleted after `CACHE_AGE` seconds.
"""
import inspect
import asyncio

import gradio as gr

from zoo import cpu
from zoo.diffusion.solvers import network_passes

WORKERS = cpu.workers()
HEAVY = "heavy"
TRAINING = "training"
MAX_QUEUE = 64
PER_SESSION = 4
CACHE_AGE = 1800  # seconds: Gradio's delete_cache=(frequency, age)
# work budgets: samples x network evaluations a request may cost (about 15-20 s of one core each)
IMAGE_BUDGET = 12_800     # e.g. 64 digits x 200 network passes
POINT_BUDGET = 4_000_000  # 2D points x network passes (an MLP evaluation of a point is ~2.5 us)
TRAIN_BUDGET = 10_000     # training steps in the browser (2,000 by default, about 10 s)


_SERVED: list = []  # the Blocks whose queue the session limit reads (the app; one per test app)


def heavy(n_inputs: int) -> dict:
    """Event-listener arguments of a heavy event with `n_inputs` inputs: the shared
    concurrency slots, and the per-session limit checked before the request is queued."""
    return {"concurrency_id": HEAVY, "concurrency_limit": WORKERS, "validator": session_limit(n_inputs)}


def training(n_inputs: int) -> dict:
    """Event-listener arguments of in-browser training: one run at a time, in its own slot.
    A toy training is bound by Python, not arithmetic (a small MLP, thousands of steps), so
    two at once in one process share the GIL: measured 1.12x the throughput of one on an
    idle machine, and below one beside a busy process."""
    return {"concurrency_id": TRAINING, "concurrency_limit": 1, "validator": session_limit(n_inputs)}


def queue(demo: gr.Blocks) -> gr.Blocks:
    """The app's queue and torch's threads, set once at start-up."""
    cpu.set_threads(WORKERS)
    _SERVED[:] = [demo]
    demo.queue(default_concurrency_limit=WORKERS, max_size=MAX_QUEUE)
    _one_join_at_a_time(demo._queue)
    return demo


def _one_join_at_a_time(queue) -> None:
    """Gradio runs an event's validator, then records the event in its queue. A burst of
    one visitor's submits would all pass the per-session count before any is recorded;
    serialising each session's joins (validator + record) makes the count exact."""
    push = queue.push
    locks = [asyncio.Lock() for _ in range(64)]  # sessions share a lock by hash: bounded, rarely contended

    async def push_in_turn(body, request, username):
        async with locks[hash(body.session_hash) % len(locks)]:
            return await push(body, request, username)

    queue.push = push_in_turn


def session_limit(n_inputs: int):
    """A Gradio validator (it runs before the request joins the queue) refusing a browser
    session's request while it has PER_SESSION others waiting or running. Gradio passes a
    validator the event's inputs and, by annotation, the request: the signature is built
    to match the event."""
    def check(*args):
        waiting = pending(_SERVED[0], getattr(args[-1], "session_hash", None)) if _SERVED else 0
        verdicts = [gr.validate(True, "") for _ in range(n_inputs)]
        if waiting >= PER_SESSION:
            verdicts[0] = gr.validate(False, f"you already have {waiting} requests waiting or running (at most "
                                             f"{PER_SESSION} per visitor, so the queue stays open to everyone): "
                                             "wait for one to finish")
        return verdicts if n_inputs > 1 else verdicts[0]

    params = [inspect.Parameter(f"input_{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(n_inputs)]
    params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))
    check.__signature__ = inspect.Signature(params)
    check.__annotations__ = {"request": gr.Request}
    return check


passes = network_passes  # the budget's unit: network passes of one sample


def check_budget(samples: int, passes_each: int, budget: int, what: str = "images") -> None:
    """Refuse a request whose work exceeds `budget`, saying what would fit."""
    work = samples * passes_each
    if work > budget:
        raise ValueError(f"this request needs {samples} {what} x {passes_each} network passes = {work:,}, over this "
                         f"server's budget of {budget:,} per request: use fewer {what} or steps (at {passes_each} "
                         f"passes, at most {max(1, budget // passes_each)} {what}). Longer runs: the zoo library or "
                         "the trainers")


def pending(demo: gr.Blocks, session: str | None) -> int:
    """Requests of this browser session waiting in the queue or running."""
    queue = getattr(demo, "_queue", None)
    return len(getattr(queue, "pending_event_ids_session", {}).get(session, ())) if queue else 0
