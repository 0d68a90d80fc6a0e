"""The Unconditional tab through gradio_client: streamed previews, the final grid, the PNG
with its parameters, cancellation and bad values. The `mnist` entry points at a tiny
UNet checkpoint the test writes, so the test does not depend on the bundled weights."""
import json
import re

import pytest
import torch
from PIL import Image

from servers.app_server import app_client
from zoo import hub
from zoo.diffusion import DiffusionConfig
from zoo.nets.unet import UNet

OPTIMIZED = {"dpmpp_2m": {"4": [0.999, 0.6, 0.3, 0.05]}}
ARGS = dict(model="mnist", solver="dpmpp_2m", steps=30, spacing="logsnr", eta=0.0, seed=5, batch=4, autoguidance=0.0)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights") / "mnist"
    torch.manual_seed(0)
    config = UNet.Config(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attn_resolutions=())
    hub.save_checkpoint(folder, UNet(config), "unet", config,
                        DiffusionConfig(schedule="vp-cosine", parameterisation="v"),
                        card=hub.CardInfo(title="tiny mnist"), extra={"sampling": {"optimized_times": OPTIMIZED}})
    guide = folder.parent / "mnist-guide"
    hub.save_checkpoint(guide, UNet(config), "unet", config,
                        DiffusionConfig(schedule="vp-cosine", parameterisation="v"), card=hub.CardInfo(title="guide"))
    with app_client({"mnist": folder, "mnist-guide": guide}, "ui.pixels_tab") as client:
        yield client


def test_sampling_streams_previews_then_the_grid_and_a_png_with_parameters(client):
    updates = list(client.submit(*ARGS.values(), api_name="/pixels_sample"))
    previews = [u[0] for u in updates if u[0]]
    assert len(previews) >= 2  # x_t | x0_hat while the solver runs
    preview, grid, status, png, schedule = updates[-1]
    assert "NFE **30**" in status and "4 images" in status
    assert Image.open(grid).size[0] >= 28 * 2
    assert schedule is not None or any(u[4] for u in updates)
    meta = json.loads(Image.open(png).text["parameters"])
    assert meta["solver"] == "dpmpp_2m" and meta["seed"] == 5 and meta["nfe"] == 30 and meta["model"] == "mnist"
    assert Image.open(png).size == (2 * 30 + 2, 2 * 30 + 2)  # 2x2 grid of 28-pixel digits at native size


def test_autoguidance_samples_with_the_entrys_guide_and_refuses_a_model_without_one(client):
    status = client.predict(*{**ARGS, "steps": 3, "autoguidance": 1.0}.values(), api_name="/pixels_sample")[2]
    assert "autoguidance w = 1 by mnist-guide" in status and "NFE **3** (6 network passes)" in status
    status = client.predict(*{**ARGS, "model": "cifar10", "autoguidance": 1.0}.values(), api_name="/pixels_sample")[2]
    assert status.startswith("⚠") and "cifar10 has no guiding model" in status and "mnist" in status
    status = client.predict(*{**ARGS, "autoguidance": 9.0}.values(), api_name="/pixels_sample")[2]
    assert status.startswith("⚠") and "autoguidance w must be in [0, 4]" in status


def test_model_info_and_missing_cifar_weights(client):
    assert "mnist" in client.predict("mnist", api_name="/pixels_info")
    text = client.predict("cifar10", api_name="/pixels_info")
    assert "Weights not available" in text and "python -m trainers.pixels --dataset cifar10" in text
    status = client.predict(*{**ARGS, "model": "cifar10"}.values(), api_name="/pixels_sample")[2]
    assert status.startswith("⚠") and "trainers.pixels" in status


def test_the_model_line_shows_the_cards_digit_quality_numbers():
    from ui.pixels_tab import quality_note

    ev = {"confident_digits": 0.762, "confident_solver": "dpmpp_2m, 20 steps", "real_confident": 0.94,
          "frechet_distance": 3.02, "frechet_reference": 2.0, "class_share_min": 0.08, "class_share_max": 0.14,
          "vlb_bits_per_dim_test": 1.234}
    note = quality_note(ev)
    assert "**76%** of samples" in note and "(dpmpp_2m, 20 steps; real test digits 94%)" in note
    assert "**x1.51**" in note and "each digit 8%-14%" in note and "**1.234 bits/dim**" in note
    guided = quality_note({**ev, "autoguided_confident_digits": 0.874, "autoguidance_w": 1.0,
                           "autoguidance_guide": "mnist-guide", "autoguided_frechet_distance": 2.6})
    assert ("with autoguidance w = 1 by mnist-guide: **87%** confident · Frechet distance to real digits **x1.30**"
            in guided)
    assert quality_note({}) == ""  # a Hub model's card without the benchmark
    assert quality_note({"vlb_bits_per_dim_test": 1.5}) == " · variational bound on real test digits **1.500 bits/dim**"


def test_the_model_line_names_the_stored_optimized_times_and_the_tab_samples_with_them(client):
    assert "spacing `optimized` stored for dpmpp_2m at 4 steps" in client.predict("mnist", api_name="/pixels_info")
    status = client.predict(*{**ARGS, "steps": 4, "spacing": "optimized"}.values(), api_name="/pixels_sample")[2]
    assert "NFE **4**" in status and "(optimized)" in status
    status = client.predict(*{**ARGS, "steps": 5, "spacing": "optimized"}.values(), api_name="/pixels_sample")[2]
    assert status.startswith("⚠") and "no optimized times" in status and "it has: dpmpp_2m at 4 steps" in status


def test_choosing_a_model_sets_the_sampler_to_its_entry_defaults():
    from ui.image_widgets import sampler_defaults
    from zoo import registry

    entry = registry.get_entry("mnist")
    assert [u["value"] for u in sampler_defaults("mnist")] == [entry.solver, entry.steps, entry.spacing]
    assert all("value" not in u for u in sampler_defaults(""))  # nothing chosen: the inputs stay


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "steps must be in"),
    ({"steps": 100000}, "steps must be in"),
    ({"steps": 10.5}, "steps must be a whole number"),
    ({"seed": 2.5}, "seed must be a whole number"),
    ({"seed": "abc"}, "seed must be a number"),
    ({"solver": "rk4"}, "solver must be one of"),
    ({"batch": 65}, "batch size must be"),
    ({"batch": 10**9}, "batch size must be"),
    ({"eta": -1}, "eta must be"),
    ({"model": "../../etc"}, "not a Hub repo id"),
    ({"steps": 1000, "solver": "pc", "batch": 64}, "over this server's budget"),
])
def test_bad_values_get_a_message_and_the_server_keeps_serving(client, change, message):
    preview, grid, status, png, plot = client.predict(*{**ARGS, **change}.values(), api_name="/pixels_sample")
    assert status.startswith("⚠") and re.search(message, status), status
    assert "mnist" in client.predict("mnist", api_name="/pixels_info")


def test_cancel_stops_a_long_run(client):
    job = client.submit(*{**ARGS, "steps": 1000, "solver": "heun"}.values(), api_name="/pixels_sample")
    for _ in job:
        break  # first streamed update: the run is going
    job.cancel()
    updates = client.submit(*ARGS.values(), api_name="/pixels_sample").result()
    assert "NFE **30**" in updates[2]  # the next run is served normally
