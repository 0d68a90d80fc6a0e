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


def test_every_toy_endpoint_is_public(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/toy_train", "/toy_sample", "/toy_step", "/toy_field", "/toy_schedule", "/toy_compare"} <= names


def test_train_streams_the_loss_curve_then_samples_the_trained_model(client):
    job = client.submit("gmm", "eps", "vp-cosine", 200, api_name="/toy_train")
    updates = list(job)
    assert len(updates) >= 3  # live updates while it trains, not one final answer
    assert all(is_plot(plot) for plot, _ in updates)
    assert "step 200/200" in updates[-1][1] and "done" in updates[-1][1]
    samples, traj, numbers, schedule, slider = client.predict(
        "trained here", "gmm", "vp-cosine", "heun", 10, "logsnr", 0, 500, 0.0, api_name="/toy_sample")
    assert is_plot(samples) and is_plot(traj) and is_plot(schedule)
    assert "NFE **19**" in numbers and "sliced Wasserstein" in numbers and "PF-ODE" in numbers


def test_sample_step_field_schedule_compare(client):
    samples, traj, numbers, schedule, slider = client.predict(
        *MODEL.values(), "ddim", 8, "uniform", 3, 400, 0.5, api_name="/toy_sample")
    assert is_plot(samples) and is_plot(traj) and "NFE **8**" in numbers and "bits/dim" in numbers
    assert is_plot(client.predict(4, api_name="/toy_step"))
    assert is_plot(client.predict(*MODEL.values(), 0.3, "velocity", api_name="/toy_field"))
    assert is_plot(client.predict("flow", 12, "karras", api_name="/toy_schedule"))
    assert is_plot(client.predict(*MODEL.values(), 0, api_name="/toy_compare"))


# Sliders enforce their bounds in Gradio itself ("Value 0 is less than minimum value 1."),
# the handlers check again for API callers; either message is readable.
OUT_OF_RANGE = "less than minimum|greater than maximum"


@pytest.mark.parametrize("steps, n, eta, message", [
    (0, 400, 0.0, f"steps must be in|{OUT_OF_RANGE}"),
    (5000, 400, 0.0, f"steps must be in|{OUT_OF_RANGE}"),
    (10, 10**7, 0.0, f"number of points|{OUT_OF_RANGE}"),
    (10, 400, 1.5, f"eta must be|{OUT_OF_RANGE}"),
    (2.5, 400, 0.0, "whole number"),
])
def test_bad_values_get_a_readable_message_and_the_server_keeps_serving(client, steps, n, eta, message):
    with pytest.raises(Exception, match=message):
        client.predict(*MODEL.values(), "ddim", steps, "uniform", 0, n, eta, api_name="/toy_sample")
    assert is_plot(client.predict("vp-linear", 10, "uniform", api_name="/toy_schedule"))


def test_exact_model_needs_the_mixture(client):
    with pytest.raises(Exception, match="only for the Gaussian mixture"):
        client.predict(EXACT, "moons", "vp-cosine", "heun", 10, "logsnr", 0, 400, 0.0, api_name="/toy_sample")


def test_handlers_reject_nan_and_inf_that_json_cannot_carry():
    """A Python caller (or a hacked request) can pass NaN / inf straight to the handler."""
    import gradio as gr

    from ui.toy_tab import on_field, on_sample

    for bad in (float("nan"), float("inf")):
        with pytest.raises(gr.Error, match="eta must be"):
            on_sample(*MODEL.values(), None, "ddim", 10, "uniform", 0, 100, bad)
        with pytest.raises(gr.Error, match="t must be"):
            on_field(*MODEL.values(), None, bad, "score")
