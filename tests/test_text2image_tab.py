"""The Text to image tab through gradio_client: streamed decoded previews (the last one the
final sample), the framed grid with the judge's boxes, the status (NFE, network passes, the
judge's count, unknown words), the PNG with its parameters, the negative prompt, the
guidance sweep and bad values. The registry's shapes-vae and shapes-t2i
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
from zoo.data import scene_judge, shapes

ARGS = dict(model="shapes-t2i", prompt="a small red circle in the top left", guidance=3.0, solver="dpmpp_2m",
            steps=6, spacing="logsnr", seed=7, batch=4, negative="")
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
    preview, grid, status, png, details = updates[-1]
    assert "4 images" in status and "NFE **6** (12 network passes)" in status and "w = 3" in status
    assert "never saw" not in status
    meta = json.loads(Image.open(png).text["parameters"])
    expected = {k: v for k, v in ARGS.items() if k not in ("batch", "negative")}
    assert meta == {**expected, "n": 4, "nfe": 6, "schedule": "vp-cosine", "negative_prompt": ""}
    assert Image.open(png).size == (4 * 34 + 2, 34 + 2)  # one row of 4 at native size
    assert Image.open(grid).size[0] >= 3 * Image.open(png).size[0]  # upscaled on screen
    # the preview's last frame is the final sample, framed as the grid but without the judge's boxes
    images = native_images(png, 4)
    assert np.array_equal(np.asarray(Image.open(preview).convert("RGB")), np.asarray(text2image_tab.framed(images)))
    # the status counts what the judge reads from the very images in the PNG
    follows = sum(scene_judge.judge(images, [ARGS["prompt"]] * 4)["followed"])
    assert f"judge: **{follows}/4** samples show exactly what the prompt asks for (absolute position)" in status
    assert "The prompt asks for: exactly 1 object: a small red circle (top left)" in details
    assert sum(int(k) for k in re.findall(r"^- (\d+) ×", details, re.M)) == 4


def test_the_grid_frames_each_sample_and_boxes_each_object():
    """A grey frame shows the white canvas's edges; the judge's box is green around an
    object the prompt asks for and red around one it does not."""
    red = shapes.render(shapes.Shape("circle", "red", "large", "center"))
    blue = shapes.render(shapes.Shape("square", "blue", "large", "center"))
    images = np.stack([red, blue])
    summary, _, readings, spec = text2image_tab.judge_report(images, "a red circle")
    assert "**1/2**" in summary
    grid = np.asarray(text2image_tab.framed(images, readings, spec))
    colours = {tuple(c) for c in grid.reshape(-1, 3)}
    assert text2image_tab.BOX[True] in colours and text2image_tab.BOX[False] in colours
    assert (text2image_tab.FRAME,) * 3 in colours and tuple(grid[0, 0]) == (text2image_tab.FRAME,) * 3


def test_a_negative_prompt_is_the_null_condition(client):
    """With the prompt itself as negative prompt, D(c) + w (D(c) - D(c)) = D(c): the samples
    are those of w = 0, at twice the network passes."""
    same = {**ARGS, "batch": 2, "negative": ARGS["prompt"]}
    guided = client.predict(*same.values(), api_name="/t2i_sample")
    plain = client.predict(*{**same, "guidance": 0.0, "negative": ""}.values(), api_name="/t2i_sample")
    assert np.array_equal(native_images(guided[3], 2), native_images(plain[3], 2))
    assert "(12 network passes)" in guided[2] and "(6 network passes)" in plain[2]
    status = client.predict(*{**ARGS, "batch": 1, "negative": "a striped zebra"}.values(), api_name="/t2i_sample")[2]
    assert "the model never saw: striped, zebra" in status


def test_no_guidance_costs_one_pass_per_step(client):
    status = client.predict(*{**ARGS, "guidance": 0.0, "batch": 1}.values(), api_name="/t2i_sample")[2]
    assert "1 images" in status and "NFE **6** (6 network passes)" in status and "w = 0" in status


def test_unknown_words_are_named(client):
    status, details = client.predict(*{**ARGS, "prompt": "a red dog beside a zebra", "batch": 1}.values(),
                                     api_name="/t2i_sample")[2:5:2]
    assert "the model never saw: beside, dog, zebra" in status
    # a dog is no shape the judge knows: the prompt cannot be checked, so no sample follows it
    assert details.startswith("The prompt asks for: something outside the caption grammar")
    assert "the judge cannot check this prompt" in status


def test_sweep_streams_its_rows_into_a_figure(client):
    value, status = list(client.submit(*{**ARGS, "batch": 2}.values(), api_name="/t2i_sweep"))[-1]
    assert isinstance(value, dict) and value.get("type") == "matplotlib" and status == "sweep: 4/4 rows"


def test_info_and_random_caption(client):
    info = client.predict("shapes-t2i", api_name="/t2i_info")
    assert "shapes-t2i" in info and "5 training steps" in info and "at w = 3" in info
    caption = client.predict("shapes-t2i", api_name="/t2i_random_caption")
    assert "shape" in shapes.prompt_attributes(caption) and set(caption.split()) <= set(shapes.vocabulary())


def test_examples_cover_every_category_in_the_caption_grammar():
    names = {"single object": "single_object", "colors": "colors", "two objects": "two_object",
             "counting": "counting", "position": "position", "attribute binding": "color_attr",
             "absolute position": "absolute_position"}
    for category, prompts in text2image_tab.EXAMPLES.items():
        assert all(scene_judge.parse_prompt(p).category == names[category] for p in prompts), category
    assert sum(scene_judge.held_out(p) for prompts in text2image_tab.EXAMPLES.values() for p in prompts) >= 3


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
    assert "never saw" not in status and "exactly 1 object: a red circle" in details


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
