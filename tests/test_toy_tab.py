"""The toy tab through its public API: the app launched in-process, every toy endpoint
called with gradio_client (the streamed training included)."""
import pytest
from gradio_client import Client

from servers.app_server import running_app

EXACT = "exact (gmm only)"
MODEL = dict(source=EXACT, dataset="gmm", schedule="vp-cosine")


@pytest.fixture(scope="module")
def client():
    with running_app() as url:
        yield Client(url, verbose=False)


def is_plot(value) -> bool:
    return isinstance(value, dict) and value.get("type") == "matplotlib" and value["plot"].startswith("data:image")


def refused(status: str, message: str) -> bool:
    """A request refused in the tab: the reason, in the status area."""
    import re

    return isinstance(status, str) and status.startswith("⚠") and re.search(message, status) is not None


def test_every_toy_endpoint_is_public(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/toy_train", "/toy_sample", "/toy_step", "/toy_field", "/toy_schedule", "/toy_compare"} <= names


def test_train_streams_the_loss_curve_then_samples_the_trained_model(client):
    job = client.submit("gmm", "eps", "vp-cosine", 200, api_name="/toy_train")
    updates = list(job)[1:]  # the first says "training ..."
    assert len(updates) >= 3  # live updates while it trains, not one final answer
    assert is_plot(updates[0][0]) and is_plot(updates[-1][0])  # drawn at the start, then at most every PLOT_EVERY s
    assert all(status.startswith("step ") for _, status in updates)
    assert "step 200/200" in updates[-1][1] and "done" in updates[-1][1]
    samples, traj, numbers, schedule, slider = client.predict(
        "trained here", "gmm", "vp-cosine", "heun", 10, "logsnr", 0, 500, 0.0, api_name="/toy_sample")
    assert is_plot(samples) and is_plot(traj) and is_plot(schedule)
    assert "NFE **19**" in numbers and "sliced Wasserstein" in numbers and "PF-ODE" in numbers
    assert "from click to result (sampling" in numbers and "likelihoods" in numbers


@pytest.mark.slow
def test_sample_step_field_schedule_compare(client):
    samples, traj, numbers, schedule, slider = client.predict(
        *MODEL.values(), "ddim", 8, "uniform", 3, 400, 0.5, api_name="/toy_sample")
    assert is_plot(samples) and is_plot(traj) and "NFE **8**" in numbers and "bits/dim" in numbers
    plot, message = client.predict(4, api_name="/toy_step")
    assert is_plot(plot) and message == ""
    assert is_plot(client.predict(*MODEL.values(), 0.3, "velocity", api_name="/toy_field")[0])
    assert is_plot(client.predict("flow", 12, "karras", api_name="/toy_schedule")[0])
    assert is_plot(client.predict(*MODEL.values(), 0, api_name="/toy_compare")[0])


def test_likelihoods_are_computed_once_per_model(client):
    args = ("bundled", "moons", "vp-cosine", "heun", 4, "logsnr", 0, 200, 0.0)
    first = client.predict(*args, api_name="/toy_sample")[2]
    again = client.predict(*args[:6], 1, 200, 0.0, api_name="/toy_sample")[2]  # another seed: same model
    seconds = [float(s) for s in __import__("re").findall(r"likelihoods ([0-9.]+) s", first + again)]
    assert len(seconds) == 2 and seconds[1] < 0.05 < seconds[0], seconds


@pytest.mark.parametrize("steps, n, eta, message", [
    (0, 400, 0.0, "steps must be in"),
    (5000, 400, 0.0, "steps must be in"),
    (10, 10**7, 0.0, "number of points"),
    (10, 400, 1.5, "eta must be"),
    (2.5, 400, 0.0, "whole number"),
    ("ten", 400, 0.0, "steps must be a number"),
    (1000, 20000, 0.0, "over this server's budget"),
])
def test_bad_values_get_a_readable_message_and_the_server_keeps_serving(client, steps, n, eta, message):
    numbers = client.predict(*MODEL.values(), "ddim", steps, "uniform", 0, n, eta, api_name="/toy_sample")[2]
    assert refused(numbers, message), numbers
    assert is_plot(client.predict("vp-linear", 10, "uniform", api_name="/toy_schedule")[0])


def test_exact_model_needs_the_mixture(client):
    numbers = client.predict(EXACT, "moons", "vp-cosine", "heun", 10, "logsnr", 0, 400, 0.0,
                             api_name="/toy_sample")[2]
    assert refused(numbers, "only for the Gaussian mixture")


def test_plot_handlers_report_in_the_tab(client):
    plot, message = client.predict("warp", 10, "uniform", api_name="/toy_schedule")
    assert refused(message, "schedule must be one of")
    plot, message = client.predict(*MODEL.values(), 2.0, "score", api_name="/toy_field")
    assert refused(message, "t must be a number in")


def test_handlers_reject_nan_and_inf_that_json_cannot_carry():
    """A Python caller (or a hacked request) can pass NaN / inf straight to the handler."""
    from ui.toy_tab import on_field, on_sample

    for bad in (float("nan"), float("inf")):
        assert refused(on_sample(*MODEL.values(), None, "ddim", 10, "uniform", 0, 100, bad)[2], "eta must be")
        assert refused(on_field(*MODEL.values(), None, bad, "score")[1], "t must be")
