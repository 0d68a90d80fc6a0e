"""The Guidance tab through gradio_client: streamed previews, the per-class grid, the sweep,
the classifier's verdict and bad values. The registry's mnist-cond, mnist and
mnist-classifier entries point at tiny checkpoints (3 classes, 8x8 images) the test writes."""
import json
import re

import pytest
import torch
from PIL import Image

from servers.app_server import app_client
from zoo import hub
from zoo.diffusion import DiffusionConfig
from zoo.nets.classifier import Classifier
from zoo.nets.unet import UNet

ARGS = dict(model="mnist-cond", classifier="none", classes=["0", "2"], per_class=3, guidance=2.0, scale=0.0,
            solver="dpmpp_2m", steps=12, spacing="logsnr", seed=3, t_lo=0.0, t_hi=1.0)


def write_tiny(folder, net, arch, schedule="vp-cosine"):
    hub.save_checkpoint(folder, net, arch, net.config, DiffusionConfig(schedule=schedule, parameterisation="v"),
                        card=hub.CardInfo(title=folder.name))


def perturbed(net):
    """Off the zero-initialised start, so labels and guidance change the images."""
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return net


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    unet = dict(image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attn_resolutions=())
    write_tiny(root / "cond", perturbed(UNet(UNet.Config(num_classes=3, **unet))), "unet")
    write_tiny(root / "uncond", perturbed(UNet(UNet.Config(**unet))), "unet")
    write_tiny(root / "clf", Classifier(Classifier.Config(image_size=8, num_classes=3, channels=8)), "classifier")
    where = {"mnist-cond": root / "cond", "mnist": root / "uncond", "mnist-classifier": root / "clf"}
    with app_client(where, "ui.guidance_tab") as client:
        yield client


def test_sampling_streams_previews_then_one_row_per_class(client):
    updates = list(client.submit(*ARGS.values(), api_name="/guidance_sample"))
    assert len([u for u in updates if u[0]]) >= 2  # live x_t | x0_hat
    _, grid, status, png = updates[-1]
    meta = json.loads(Image.open(png).text["parameters"])
    assert meta["labels"] == [0, 0, 0, 2, 2, 2] and meta["guidance"] == 2.0 and meta["nfe"] == 12
    assert Image.open(png).size == (3 * 10 + 2, 2 * 10 + 2)  # 3 per row, 8-pixel images at native size
    assert "6 images" in status and "NFE **12** (24 network passes)" in status and "w = 2" in status
    unguided = client.predict(*{**ARGS, "guidance": 0.0}.values(), api_name="/guidance_sample")[1]
    assert Image.open(unguided).tobytes() != Image.open(grid).tobytes()  # guidance changed the samples
    width, height = Image.open(grid).size
    assert width > height  # 3 per row, 2 rows


def test_a_guidance_interval_saves_network_passes(client):
    status = client.predict(*{**ARGS, "t_lo": 0.2, "t_hi": 0.6}.values(), api_name="/guidance_sample")[2]
    passes = int(re.search(r"\((\d+) network passes\)", status).group(1))
    assert 12 < passes < 24 and "for t in [0.2, 0.6]" in status


def test_classifier_guidance_reports_the_classifiers_verdict(client):
    args = {**ARGS, "classifier": "mnist-classifier", "scale": 2.0, "guidance": 0.0}
    status = client.predict(*args.values(), api_name="/guidance_sample")[2]
    assert "NFE **12** (12 network passes)" in status and "/6** samples their requested class" in status
    status = client.predict(*{**args, "model": "mnist"}.values(), api_name="/guidance_sample")[2]
    assert "classifier scale 2" in status  # classifier guidance of the unconditional model


def test_sweep_streams_its_rows_into_a_figure(client):
    updates = list(client.submit(*ARGS.values(), api_name="/guidance_sweep"))
    value, status = updates[-1]
    assert isinstance(value, dict) and value.get("type") == "matplotlib" and status == "sweep: 5/5 rows"
    assert any("row 1/5" in (u[1] or "") for u in updates)  # progress while the first row is sampled


def test_info_names_the_kind_of_model(client):
    assert "class-conditional (3 classes)" in client.predict("mnist-cond", "none", api_name="/guidance_info")
    text = client.predict("mnist", "mnist-classifier", api_name="/guidance_info")
    assert "classifier guidance only" in text and "mnist-classifier" in text


@pytest.mark.parametrize("change, message", [
    ({"classes": []}, "pick at least one class"),
    ({"classes": ["7"]}, r"labels must be in \[0, 2\]"),
    ({"model": "mnist"}, "needs a class-conditional model"),
    ({"model": "mnist", "guidance": 0.0}, "follows labels only with a classifier"),
    ({"model": "cifar10"}, "trainers.pixels --dataset cifar10"),
    ({"per_class": 40}, "samples per class must be"),
    ({"guidance": 1e9}, "guidance w must be"),
    ({"scale": 2.0}, "no classifier was given"),
    ({"steps": 0}, "steps must be in"),
    ({"t_lo": 0.8, "t_hi": 0.2}, "must have from <= up to"),
    ({"t_lo": 0.5, "t_hi": 0.5}, "holds none of the 12 sampling times"),
    ({"classes": "0"}, "pick at least one class"),
    ({"classifier": "mnist"}, "mnist is an unconditional model; this classifier must be a classifier model"),
    ({"seed": -1}, "seed must be in"),
    ({"steps": 200, "solver": "heun", "per_class": 21}, "over this server's budget"),
])
def test_bad_values_get_a_message_and_the_server_keeps_serving(client, change, message):
    preview, grid, status, png = client.predict(*{**ARGS, **change}.values(), api_name="/guidance_sample")
    assert status.startswith("⚠") and re.search(message, status), status
    assert "mnist-cond" in client.predict("mnist-cond", "none", api_name="/guidance_info")


EXACT = dict(component=1, base="unconditional", w=0.0, s=1.0, solver="heun", steps=20, spacing="quadratic", seed=0)


def test_exact_2d_guidance_says_when_it_samples_the_class_law(client):
    figure, status = client.predict(*EXACT.values(), api_name="/guidance_exact")
    assert figure.get("type") == "matplotlib" and "the law p(x0 | k) itself" in status
    status = client.predict(*{**EXACT, "base": "conditional", "w": 2.0, "s": 0.0}.values(),
                            api_name="/guidance_exact")[1]
    assert "not p(x0 | k)" in status
    status = client.predict(*{**EXACT, "w": 3.0}.values(), api_name="/guidance_exact")[1]
    assert "w ignored: CFG needs the conditional model" in status


@pytest.mark.parametrize("change, message", [
    ({"component": 5}, "component must be in"),
    ({"component": "1"}, "component must be in|"),
    ({"base": "joint"}, "model must be one of"),
    ({"steps": 0}, "steps must be in"),
    ({"s": 100.0}, "classifier scale must be"),
])
def test_exact_2d_guidance_bad_values(client, change, message):
    figure, status = client.predict(*{**EXACT, **change}.values(), api_name="/guidance_exact")
    if change.get("component") == "1":  # a numeric string is the number it spells
        assert "samples of component 1" in status
        return
    assert status.startswith("⚠") and re.search(message, status), status

