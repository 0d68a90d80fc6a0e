"""Serving benchmark: how the app answers several visitors on a small shared CPU.

  python bench/serving.py [--requests 3] [--clients 1,2,4,8] [--tabs toy_train,t2i_sample] [--quick]

The app is started as `python app.py` (its own main(): queue settings and whatever else its
start-up does, e.g. torch's thread count) in a process of its own, on a free loopback port. Each simulated
visitor is one gradio_client Client in its own thread, sending its tab's DEFAULT request
(the values the page shows when it opens, read from the built app's components) `--requests`
times in a row; streaming endpoints are consumed to their last update.

For every endpoint x number of clients the run is done twice: idle, and beside a "busy"
subprocess spinning one core in pure Python (another tenant of the machine).
Latency = wall time from submit to the final result as the client sees it;
throughput = completed requests / wall time of the run; errors (e.g. "Queue is full") are
counted per cell. Writes bench/out/serving.md and serving.json (serving-quick.* for --quick,
--report NAME for another name).

--quick: 1 and 2 clients, 1 request, every size input (training steps, points, batch,
samples per class, steps) at its slider's minimum: a smoke run of under a minute.
"""
import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

# offline (no network here, and no Hub call should be timed) and no analytics threads;
# set before gradio / huggingface_hub are imported, as they read these at import time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import numpy as np
from gradio_client import Client

import app
from bench.report import write_report
from ui import serving

ROOT = Path(__file__).resolve().parents[1]

# each tab's main button (tests/test_*_tab.py use the same endpoints), then a light one
ENDPOINTS = ("toy_train", "toy_sample", "pixels_sample", "guidance_sample", "t2i_sample", "zoo_table")
CLIENTS = (1, 2, 4, 8)
QUICK_CLIENTS = (1, 2)
# the sliders that set how much work a request is; --quick puts them at their minimum
SIZE_LABELS = {"training steps", "number of points", "batch size", "samples per class", "steps"}
TRAIN_ENDPOINT, TRAIN_TARGET, SCALING_TARGET, SCALING_CLIENTS = "toy_train", 2.0, 1.0, 4  # issue 12's targets
BUSY_CODE = "while True: pass"  # pure Python in its own process: it takes one core, never the app's GIL


def launch_app(port: int) -> tuple:
    """Starts `python app.py` (app.main(): its queue, threads and start-up, unchanged) on a
    loopback port in a process of its own, as a deployment runs it: the clients' threads
    must not share the server's GIL. Returns (process, url, Blocks built here by the same
    app.build_app() and serving.queue(), never launched: read for defaults and settings)."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    demo = serving.queue(app.build_app())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return proc, url, demo
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"app.py did not answer on {url} (exit code {proc.poll()})")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endpoint_fn(demo: gr.Blocks, api_name: str):
    """The event behind an endpoint, with its inputs and concurrency settings."""
    for fn in demo.fns.values():
        if fn.api_name == api_name:
            return fn
    raise KeyError(f"the app has no endpoint /{api_name}")


def default_request(demo: gr.Blocks, api_name: str, quick: bool) -> list:
    """[(label, value)]: the endpoint's arguments as the page first shows them (State inputs
    are the client's business); with `quick`, every size slider at its minimum."""
    request = []
    for component in endpoint_fn(demo, api_name).inputs:
        if isinstance(component, gr.State):
            continue
        value = component.value
        if quick and isinstance(component, gr.Slider) and component.label in SIZE_LABELS:
            value = type(value)(component.minimum)
        request.append((component.label, value))
    return request


@contextmanager
def busy_core(busy: bool):
    """A subprocess spinning one core while the block runs (nothing when not busy). It
    starts its own session, as another tenant's process would be: with Linux's scheduler
    autogroups, a child of this session would share the app's CPU share instead of
    competing with it."""
    if not busy:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", BUSY_CODE], start_new_session=True)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait()


def one_request(client: Client, api_name: str, args: list) -> dict:
    """Submit, read every streamed update, wait for the final result; time it as the client sees it."""
    start = time.perf_counter()
    try:
        job = client.submit(*args, api_name=f"/{api_name}")
        updates = sum(1 for _ in job)
        job.result()
        return {"seconds": time.perf_counter() - start, "updates": updates, "error": None}
    except Exception as exc:  # the error is the measurement: count it, keep serving the others
        return {"seconds": time.perf_counter() - start, "updates": 0, "error": f"{type(exc).__name__}: {exc}"[:200]}


def visitor(url: str, api_name: str, args: list, requests: int, ready: threading.Barrier, out: list,
            ends: list) -> None:
    """One browser tab: its own Client (opened before the clock starts), `requests` in a row.
    Its end time is noted before the Client closes (closing waits up to 1 s for its heartbeat)."""
    try:
        client = Client(url, verbose=False, download_files=False)
    except Exception:
        ready.abort()  # the others (and the clock) would wait for this visitor forever
        raise
    try:
        ready.wait()
        for _ in range(requests):
            out.append(one_request(client, api_name, args))
        ends.append(time.perf_counter())
    finally:
        client.close()


def run_cell(url: str, api_name: str, args: list, clients: int, requests: int, busy: bool) -> dict:
    """All visitors at once; the clock runs from when every client is connected to the last answer."""
    ready, results, ends = threading.Barrier(clients + 1), [], []
    threads = [threading.Thread(target=visitor, args=(url, api_name, args, requests, ready, results, ends),
                                daemon=True) for _ in range(clients)]
    with busy_core(busy):
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
    return summarise(api_name, clients, busy, results, max(ends) - start)


def summarise(api_name: str, clients: int, busy: bool, results: list, wall: float) -> dict:
    ok = [r["seconds"] for r in results if r["error"] is None]
    errors = [r["error"] for r in results if r["error"] is not None]
    return {"endpoint": api_name, "clients": clients, "busy": busy, "requests": len(results),
            "completed": len(ok), "wall_seconds": wall, "throughput": len(ok) / wall,
            "p50": float(np.percentile(ok, 50)) if ok else None, "p95": float(np.percentile(ok, 95)) if ok else None,
            "latencies": ok, "updates": [r["updates"] for r in results], "errors": len(errors),
            "error_messages": sorted(set(errors)), "load_average": os.getloadavg()[0]}


def warm_up(url: str, api_name: str, args: list) -> dict:
    """One request before the measured cells, so that loading a model from disk (once per
    process) is reported apart from serving it."""
    client = Client(url, verbose=False, download_files=False)
    try:
        return one_request(client, api_name, args)
    finally:
        client.close()


def find_cell(cells: list, endpoint: str, clients: int, busy: bool):
    return next((c for c in cells if c["endpoint"] == endpoint and c["clients"] == clients and c["busy"] == busy), None)


def acceptance(result: dict) -> list:
    """Issue 12's two numbers: toy training busy / idle at 1 client (p50), and per endpoint
    throughput at 4 clients / at 1 (the most clients measured, when 4 were not)."""
    cells, lines = result["cells"], []
    idle, busy = find_cell(cells, TRAIN_ENDPOINT, 1, False), find_cell(cells, TRAIN_ENDPOINT, 1, True)
    steps = dict(result["requests_sent"].get(TRAIN_ENDPOINT, [])).get("training steps")
    if idle and busy and idle["p50"] and busy["p50"]:
        ratio = busy["p50"] / idle["p50"]
        lines.append(f"toy training {steps} steps: busy time / idle time = {busy['p50']:.2f} s / {idle['p50']:.2f} s "
                     f"= **{ratio:.2f}** (target <= {TRAIN_TARGET:g})")
    top = SCALING_CLIENTS if SCALING_CLIENTS in result["clients"] else max(result["clients"])
    for endpoint in result["endpoints"] if top > 1 else ():  # one client alone has no scaling to report
        for is_busy in (False, True):
            one, many = find_cell(cells, endpoint, 1, is_busy), find_cell(cells, endpoint, top, is_busy)
            if one and many and one["throughput"]:
                lines.append(f"throughput at {top} clients / at 1 client, "
                             f"/{endpoint} ({'busy' if is_busy else 'idle'}): "
                             f"{many['throughput']:.3f} / {one['throughput']:.3f} = "
                             f"**{many['throughput'] / one['throughput']:.2f}** (target >= {SCALING_TARGET:g})")
    return lines


def markdown(result: dict) -> str:
    settings = result["settings"]
    head = (f"{result['requests_per_client']} request(s) per client, default request of each tab"
            f"{' (--quick: size sliders at their minimum)' if result['quick'] else ''}; "
            f"busy = one core spun by a pure-Python subprocess. Load average at start: {result['load_average']:.2f} "
            f"on {result['cpu_count']} cores. App: torch threads {settings['torch_threads']}, queue "
            f"default_concurrency_limit {settings['default_concurrency_limit']}, "
            f"max_size {settings['queue_max_size']}. "
            f"Latency in seconds, submit to final result.\n\n")
    rows = ["| endpoint | clients | CPU | p50 (s) | p95 (s) | throughput (req/s) | errors |",
            "|---|---|---|---|---|---|---|"]
    for c in result["cells"]:
        p50, p95 = (f"{c[k]:.2f}" if c[k] is not None else "-" for k in ("p50", "p95"))
        rows.append(f"| /{c['endpoint']} | {c['clients']} | {'busy' if c['busy'] else 'idle'} | {p50} | {p95} | "
                    f"{c['throughput']:.3f} | {c['errors']} |")
    first = ", ".join(f"/{e} {w['seconds']:.1f} s{' (failed)' if w['error'] else ''}"
                      for e, w in result["warm_up"].items())
    errors = sorted({m for c in result["cells"] for m in c["error_messages"]})
    tail = [f"\nFirst request of each endpoint (warm-up, not in the table): {first}."] if first else []
    tail += [f"Errors seen: {'; '.join(errors)}."] if errors else []
    tail += ["", "Acceptance (issue 12):", ""] + [f"* {line}" for line in acceptance(result)]
    return head + "\n".join(rows) + "\n" + "\n".join(tail) + "\n"


def serving_settings(demo: gr.Blocks, endpoints) -> dict:
    """What the app's start-up chose, read (never set) so that runs before and after a change
    of it can be told apart: torch's threads, the queue's limits, each endpoint's concurrency."""
    import torch

    return {"torch_threads": torch.get_num_threads(), "queue_max_size": demo._queue.max_size,
            "default_concurrency_limit": demo._queue.default_concurrency_limit,
            "concurrency": {e: {"limit": endpoint_fn(demo, e).concurrency_limit,
                                "id": str(endpoint_fn(demo, e).concurrency_id)}
                            for e in endpoints}}


def measure_endpoint(url: str, endpoint: str, args: list, clients, requests: int, result: dict) -> None:
    """Each number of clients idle then busy (interleaved, so a drift of the machine's other
    load hits both alike)."""
    for n in clients:
        for busy in (False, True):
            cell = run_cell(url, endpoint, args, n, requests, busy)
            p50 = f"{cell['p50']:.2f} s" if cell["p50"] is not None else "-"
            print(f"/{endpoint} x{n} {'busy' if busy else 'idle'}: p50 {p50}, {cell['throughput']:.3f} req/s, "
                  f"{cell['errors']} errors", flush=True)
            result["cells"].append(cell)


def run(endpoints, clients, requests: int, quick: bool) -> dict:
    """Every endpoint x clients x idle/busy against one app. --quick skips the warm-up request
    (its first cell then includes loading the model): it only checks that everything runs."""
    proc, url, demo = launch_app(free_port())
    result = {"endpoints": list(endpoints), "clients": list(clients), "requests_per_client": requests,
              "quick": quick, "load_average": os.getloadavg()[0], "cpu_count": os.cpu_count(),
              "settings": serving_settings(demo, endpoints), "requests_sent": {}, "warm_up": {}, "cells": []}
    try:
        for endpoint in endpoints:
            request = default_request(demo, endpoint, quick)
            args = [value for _, value in request]
            result["requests_sent"][endpoint] = request
            if not quick:
                result["warm_up"][endpoint] = warm_up(url, endpoint, args)
            measure_endpoint(url, endpoint, args, clients, requests, result)
    finally:
        proc.terminate()
        proc.wait()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3, help="requests per client per cell")
    ap.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="comma-separated client counts")
    ap.add_argument("--tabs", default=",".join(ENDPOINTS), help=f"comma-separated endpoints among {ENDPOINTS}")
    ap.add_argument("--quick", action="store_true", help="1 and 2 clients, 1 request, size sliders at their minimum")
    ap.add_argument("--report", help="report name under bench/out (default serving, or serving-quick)")
    args = ap.parse_args()
    endpoints = [e.strip().lstrip("/") for e in args.tabs.split(",") if e.strip()]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        ap.error(f"unknown tabs {sorted(unknown)}; choose among {ENDPOINTS}")
    clients = QUICK_CLIENTS if args.quick else tuple(int(n) for n in args.clients.split(","))
    result = run(endpoints, clients, 1 if args.quick else args.requests, args.quick)
    write_report(args.report or ("serving-quick" if args.quick else "serving"), result, markdown(result))


if __name__ == "__main__":
    main()
