"""The Text to image tab through gradio_client: streamed decoded previews, the grid, the
status (NFE, network passes, the judge's count, unknown words), the PNG with its
parameters, the guidance sweep and bad values. The registry's shapes-vae and shapes-t2i
entries point at a tiny VAE and DiT the fixture trains in a few seconds."""
import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image

import trainers.text2image
import trainers.vae
from servers.app_server import app_client
from ui import text2image_tab
from zoo import registry
from zoo.data import shapes

ARGS = dict(model="shapes-t2i", prompt="a small red circle in the top left", guidance=3.0, solver="dpmpp_2m",
            steps=6, spacing="logsnr", seed=7, batch=4)
TINY_DIT = ["--num-images", "200", "--steps", "5", "--ckpt-every", "5", "--batch-size", "8", "--width", "32",
            "--depth", "1", "--heads", "2", "--text-width", "32", "--text-layers", "1", "--eval-samples", "10"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{entry: release folder} of a tiny VAE and a tiny DiT on its latents."""
    root = tmp_path_factory.mktemp("t2i")
    vae = trainers.vae.main(["--num-images", "200", "--steps", "5", "--ckpt-every", "5", "--batch-size", "8",
                             "--channels", "8,16,32", "--out", str(root / "vae")]).release_dir
    dit = trainers.text2image.main(["--vae", str(vae), "--vae-name", "shapes-vae", *TINY_DIT,
                                    "--out", str(root / "dit")]).release_dir
    return {"shapes-vae": vae, "shapes-t2i": dit}


@pytest.fixture(scope="module")
def client(folders):
    with app_client(folders, "ui.text2image_tab") as client:
        yield client


def native_images(png: str, n: int) -> np.ndarray:
    """The n 32-pixel images back out of the downloaded grid (pad 2, 4 per row for n <= 4)."""
    grid = np.asarray(Image.open(png).convert("RGB"))
    return np.stack([grid[2:34, 2 + 34 * i:34 + 34 * i] for i in range(n)])


def test_generation_streams_previews_then_grid_status_and_png(client):
    updates = list(client.submit(*ARGS.values(), api_name="/t2i_sample"))
    assert len([u for u in updates if u[0]]) >= 2  # decoded x0_hat while the solver runs
    _, grid, status, png, details = updates[-1]
    assert "4 images" in status and "NFE **6** (12 network passes)" in status and "w = 3" in status
    assert "never saw" not in status
    meta = json.loads(Image.open(png).text["parameters"])
    assert meta == {**{k: v for k, v in ARGS.items() if k != "batch"}, "n": 4, "nfe": 6, "schedule": "vp-cosine"}
    assert Image.open(png).size == (4 * 34 + 2, 34 + 2)  # one row of 4 at native size
    assert Image.open(grid).size[0] >= 3 * Image.open(png).size[0]  # upscaled on screen
    # the status counts what the judge reads from the very images in the PNG
    follows = sum(shapes.read_shape(im) == {"shape": "circle", "color": "red", "size": "small",
                                            "position": "top left"} for im in native_images(png, 4))
    assert f"judge: **{follows}/4** samples show every attribute the prompt names" in status
    assert "The prompt asks for: shape **circle**, color **red**, size **small**, position **top left**" in details
    assert sum(int(k) for k in re.findall(r"^- (\d+) ×", details, re.M)) == 4


def test_no_guidance_costs_one_pass_per_step(client):
    status = client.predict(*{**ARGS, "guidance": 0.0, "batch": 1}.values(), api_name="/t2i_sample")[2]
    assert "1 images" in status and "NFE **6** (6 network passes)" in status and "w = 0" in status


def test_unknown_words_are_named(client):
    status, details = client.predict(*{**ARGS, "prompt": "a red dog beside a zebra", "batch": 1}.values(),
                                     api_name="/t2i_sample")[2:5:2]
    assert "the model never saw: beside, dog, zebra" in status
    assert details.startswith("The prompt asks for: color **red**.")  # a dog is no shape the judge knows


def test_sweep_streams_its_rows_into_a_figure(client):
    value, status = list(client.submit(*{**ARGS, "batch": 2}.values(), api_name="/t2i_sweep"))[-1]
    assert isinstance(value, dict) and value.get("type") == "matplotlib" and status == "sweep: 4/4 rows"


def test_info_and_random_caption(client):
    info = client.predict("shapes-t2i", api_name="/t2i_info")
    assert "shapes-t2i" in info and "5 training steps" in info and "at w = 3" in info
    caption = client.predict(api_name="/t2i_random_caption")
    assert "shape" in shapes.prompt_attributes(caption) and set(caption.split()) <= set(shapes.vocabulary())


def test_examples_speak_the_caption_language():
    for prompt in text2image_tab.EXAMPLES:
        assert "shape" in shapes.prompt_attributes(prompt) and set(prompt.split()) <= set(shapes.vocabulary())


@pytest.mark.parametrize("change, message", [
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": "   "}, "prompt is empty"),
    ({"prompt": "a red circle " * 31}, "prompt too long: 403 characters"),
    ({"prompt": "red " * 30}, "prompt too long: 30 tokens"),
    ({"steps": 0}, "steps must be in"),
    ({"guidance": -2.0}, "guidance w must be"),
    ({"seed": None}, "seed must be a number"),
    ({"guidance": 100.0}, "guidance w must be"),
    ({"batch": 65}, "batch size must be"),
    ({"solver": "rk4"}, "solver must be one of"),
    ({"model": "mnist"}, "mnist is an unconditional model; this model must be a text-to-image model"),
    ({"model": "no-such-model"}, "unknown zoo model"),
    ({"prompt": "\x00\x01\t"}, "prompt is empty"),
])
def test_bad_values_get_a_message_and_the_server_keeps_serving(client, change, message):
    status = client.predict(*{**ARGS, **change}.values(), api_name="/t2i_sample")[2]
    assert status.startswith("⚠") and re.search(message, status), status
    status = client.predict(*{**ARGS, "steps": 2, "batch": 1}.values(), api_name="/t2i_sample")[2]
    assert "NFE **2**" in status


def test_control_characters_are_cleaned_from_prompts(client):
    status, details = client.predict(*{**ARGS, "prompt": "a\tred\x00circle", "batch": 1}.values(),
                                     api_name="/t2i_sample")[2:5:2]
    assert "never saw" not in status and "color **red**" in details and "shape **circle**" in details


@pytest.mark.parametrize("guidance", [float("nan"), float("inf")])
def test_non_finite_guidance_is_refused(client, guidance):
    """JSON clients cannot send NaN (gradio_client refuses to encode it), so the handler
    is called directly, as the server would call it."""
    status = list(text2image_tab.on_sample(*{**ARGS, "guidance": guidance}.values()))[-1][2]
    assert status.startswith("⚠") and "guidance w must be a finite number" in status


def test_missing_weights_say_how_to_train(monkeypatch, tmp_path):
    entries = [dataclasses.replace(e, bundled_path=str(tmp_path)) if e.name == "shapes-t2i" else e
               for e in registry.ENTRIES]
    monkeypatch.setattr(registry, "ENTRIES", entries)
    text = text2image_tab.model_info("shapes-t2i")
    assert "Weights not available" in text and "python -m trainers.text2image --vae shapes-vae" in text
    status = list(text2image_tab.on_sample(*ARGS.values()))[-1][2]
    assert status.startswith("⚠") and "trainers.text2image" in status
