"""Every Hub call the zoo makes is bounded in time.

huggingface_hub talks HTTP through one shared client (`set_client_factory`). Its calls
pass their own per-request timeouts, or none (API calls such as `model_info` wait
forever on a server that accepts the connection and never answers), and its downloads
retry with back-off. So the zoo installs a client whose transport reads a per-call
deadline from a context variable:

* before each request (and each retry): no time left -> `HubTimeout`;
* connect / read timeouts of every request are clamped to the budget and to what is left;
* a response body is read chunk by chunk, and a server that trickles bytes past the
  deadline is cut off: a read timeout alone cannot catch one byte every few seconds.

`HubTimeout` is not an HTTP error type, so huggingface_hub does not retry it.
`bounded(fn, seconds)` runs a call in a worker thread under such a deadline and returns
to the caller by the deadline whatever the worker does; no lock of the zoo's is held
meanwhile, so other users' requests never wait on the network.
"""
from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("zoo_hub_deadline", default=None)


@dataclass
class Budget:
    """Seconds the zoo grants the Hub (module-level `BUDGET`; tests shrink it)."""

    connect: float = 3.0        # TCP + TLS connect of one request
    read: float = 5.0           # longest silence while waiting for bytes
    probe: float = 2.0          # "is the Hub there and does it have this repo?" (the zoo table)
    metadata: float = 10.0      # repo metadata + config files of a repo
    download_base: float = 30.0  # weights: base + size / min_rate
    min_rate: float = 1e6       # bytes per second we wait for at least
    download_max: float = 900.0

    def download(self, size_bytes: int) -> float:
        return min(self.download_base + size_bytes / self.min_rate, self.download_max)


BUDGET = Budget()


class HubTimeout(Exception):
    """The Hub did not answer within the zoo's budget for this call."""


def remaining() -> float | None:
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def _check_left(url) -> float | None:
    left = remaining()
    if left is not None and left <= 0:
        raise HubTimeout(f"no answer from {url} within the time budget")
    return left


def _make_transport_class():
    import httpx2  # huggingface_hub's HTTP library; imported only when the Hub is used

    class DeadlineStream(httpx2.SyncByteStream):
        def __init__(self, inner, url):
            self.inner, self.url = inner, url

        def __iter__(self):
            for chunk in self.inner:
                _check_left(self.url)
                yield chunk

        def close(self):
            self.inner.close()

    class DeadlineTransport(httpx2.HTTPTransport):
        def handle_request(self, request):
            left = _check_left(request.url)
            if left is None:
                return super().handle_request(request)
            timeouts = dict(request.extensions.get("timeout") or {})
            for key, cap in (("connect", BUDGET.connect), ("read", BUDGET.read), ("write", BUDGET.read),
                             ("pool", BUDGET.connect)):
                value = timeouts.get(key)
                timeouts[key] = min(v for v in (value, cap, max(left, 0.01)) if v is not None)
            request.extensions["timeout"] = timeouts
            response = super().handle_request(request)
            response.stream = DeadlineStream(response.stream, request.url)
            return response

    return DeadlineTransport


_installed = threading.Lock()
_INSTALLED: list = []


def install() -> None:
    """Make huggingface_hub's shared client the deadline-aware one (idempotent). Same
    settings as huggingface_hub's default client otherwise (its request hook, redirects)."""
    if _INSTALLED:
        return
    with _installed:
        if _INSTALLED:
            return
        import httpx2
        from huggingface_hub.utils import _http

        transport = _make_transport_class()

        def factory():
            return httpx2.Client(event_hooks={"request": [_http.hf_request_event_hook]}, follow_redirects=True,
                                 timeout=None, transport=transport())

        _http.set_client_factory(factory)
        _INSTALLED.append(factory)


def bounded(fn, seconds: float, what: str):
    """fn() under a deadline of `seconds`: its result, its exception, or HubTimeout at the
    deadline (the worker then stops at its next request or chunk)."""
    install()
    result: dict = {}
    deadline = time.monotonic() + seconds

    def work():
        _DEADLINE.set(deadline)
        try:
            result["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            result["error"] = err

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True, name=f"hub: {what}")
    worker.start()
    worker.join(seconds + 0.2)  # + the worker's own wake-up after its last chunk
    if worker.is_alive():
        raise HubTimeout(f"{what}: no answer within {seconds:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"]
