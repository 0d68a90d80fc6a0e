"""Serving on a small shared CPU: threads from the cores, fair and bounded queueing, Stop and
cancel that really stop, and results that do not depend on who else is asking. The app runs
in-process on loopback with its bundled models at small settings."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client
from PIL import Image

from servers.app_server import running_app
from ui import serving
from ui.streaming import SAMPLER_THREAD
from zoo import cpu

pytestmark = pytest.mark.slow

SMALL = {  # each tab's sampling endpoint at small settings, with the status output's index
    "/pixels_sample": (("mnist", "ddim", 3, "logsnr", 0.0, 0, 2), 2),
    "/guidance_sample": (("mnist-cond", "none", ["3"], 2, 1.0, 0.0, "ddim", 3, "logsnr", 0, 0.0, 1.0), 2),
    "/t2i_sample": (("shapes-t2i", "a red circle", 2.0, "ddim", 3, "logsnr", 0, 2, ""), 2),
    "/toy_sample": (("bundled", "moons", "vp-cosine", "heun", 3, "logsnr", 0, 300, 0.0), 2),
}


@pytest.fixture(scope="module")
def url():
    with running_app() as url:
        yield url


def test_threads_come_from_the_cores_divided_among_workers(monkeypatch):
    for name in ("ZOO_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(cpu, "_cgroup_quota", lambda: None)
    assert cpu.cores() == 4 and cpu.workers() == 4 and cpu.set_threads(2) == 2
    monkeypatch.setattr(cpu, "_cgroup_quota", lambda: 1.5)  # a container granted 1.5 CPUs
    assert cpu.cores() == 1 and cpu.set_threads(4) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the usual way to ask: honoured
    assert cpu.set_threads(4) == 2
    monkeypatch.setenv("ZOO_THREADS", "3")  # the project's own knob wins
    assert cpu.set_threads(1) == 3


def _result(client, api, args, index):
    """(status, the result's bytes: the PNG's pixels, or the toy numbers without timings)."""
    out = client.submit(*args, api_name=api).result(timeout=300)
    status = out[index]
    if api == "/toy_sample":  # the numbers that depend on the samples (not the timings)
        return status, status[status.index("NFE"):status.index(" · **")] + status[status.index("sliced Wasserstein"):]
    return status, Image.open(out[3]).tobytes()


@pytest.mark.parametrize("api", sorted(SMALL))
def test_16_clients_at_once_get_what_each_gets_alone(url, api):
    args, index = SMALL[api]
    status, alone = _result(Client(url, verbose=False), api, args, index)
    assert not status.startswith("⚠"), status

    def visitor(_):  # one browser session sending the request 4 times
        client = Client(url, verbose=False)
        return [_result(client, api, args, index) for _ in range(4)]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(visitor, range(16)))
    assert all(not s.startswith("⚠") and r == alone for client in results for s, r in client)


def test_one_visitor_cannot_fill_the_queue(url):
    greedy, other = Client(url, verbose=False), Client(url, verbose=False)
    slow = ("mnist", "heun", 30, "logsnr", 0.0, 0, 8)
    jobs = [greedy.submit(*slow, api_name="/pixels_sample") for _ in range(7)]
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result(timeout=120)[2])
        except Exception as err:  # the refusal arrives as the client's error
            outcomes.append(f"refused: {err}")
    refused = [o for o in outcomes if o.startswith("refused")]
    assert len(refused) == 7 - serving.PER_SESSION and all("at most 4 per visitor" in o for o in refused), outcomes
    assert "NFE" in other.predict(*SMALL["/pixels_sample"][0], api_name="/pixels_sample")[2]


def test_a_full_queue_says_so_and_the_app_serves_afterwards(monkeypatch):
    monkeypatch.setattr(serving, "MAX_QUEUE", 3)
    slow = ("mnist", "heun", 40, "logsnr", 0.0, 0, 8)
    with running_app() as url:
        clients = [Client(url, verbose=False) for _ in range(serving.WORKERS + 5)]
        jobs = []
        for c in clients:  # visitors arrive one after another (a burst races Gradio's own size check)
            jobs.append(c.submit(*slow, api_name="/pixels_sample"))
            time.sleep(0.3)
        errors = []
        for job in jobs:
            try:
                job.result(timeout=120)
            except Exception as err:
                errors.append(str(err))
        assert errors and all("Queue is full" in e for e in errors), errors
        assert "NFE" in Client(url, verbose=False).predict(*SMALL["/pixels_sample"][0], api_name="/pixels_sample")[2]


def _samplers() -> int:
    return sum(t.name == SAMPLER_THREAD and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("api, args", [
    ("/guidance_sweep", ("mnist-cond", "none", ["3"], 6, 1.0, 0.0, "heun", 100, "logsnr", 0, 0.0, 1.0)),
    ("/t2i_sweep", ("shapes-t2i", "a red circle", 2.0, "heun", 200, "logsnr", 0, 8, "")),
])
def test_a_cancelled_sweep_stops_computing(url, api, args):
    job = Client(url, verbose=False).submit(*args, api_name=api)
    for _ in job:
        break  # it is running
    assert _samplers() >= 1
    job.cancel()
    deadline = time.monotonic() + 10
    while _samplers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _samplers() == 0, "a sampler kept computing after the cancel"


def test_stop_keeps_the_preview_and_says_where_it_stopped(url):
    client = Client(url, verbose=False)
    job = client.submit("mnist", "heun", 400, "logsnr", 0.0, 0, 8, api_name="/pixels_sample")
    seen = []
    for update in job:
        seen.append(update)
        if update[0] and len(seen) > 2:  # a preview is on screen
            client.predict(api_name="/pixels_stop")
    preview, grid, status, png, plot = seen[-1]
    assert status.startswith("**Stopped** at step") and "/400" in status and "previous result" in status
    assert not any(isinstance(v, str) for v in (grid, png))  # no new grid or file: the earlier result stays


def test_the_api_documents_the_types_it_accepts(url):
    """Every value the API docs offer for a choice is one the server takes (the mixture
    component is documented as '0', '1', '2')."""
    client = Client(url, verbose=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/guidance_exact"]
    component = api["parameters"][0]
    for value in ("0", "1", "2"):
        assert repr(value) in component["python_type"]["type"]
        status = client.predict(value, "unconditional", 0.0, 1.0, "heun", 4, "quadratic", 0,
                                api_name="/guidance_exact")[1]
        assert f"samples of component {value}" in status, status
