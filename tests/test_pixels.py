"""Pixel-space models: UNet presets, image data through `datasets`, the pixels trainer on
parquet data, the streaming helper, and the pipeline's bad-input errors."""
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from ui.streaming import Cancelled, stream_sampling
from zoo.data.images import load_images
from zoo.nets.unet import PRESETS, UNet, parameter_count, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_names_tell_their_real_size(name):
    stated = float(re.search(r"([\d.]+)M$", name).group(1))
    assert round(parameter_count(PRESETS[name]) / 1e6, 1) == stated


def test_ho_et_al_cifar10_configuration():
    c = PRESETS["cifar10-ddpm-35.7M"]
    assert (c.base_channels, c.channel_mults, c.num_res_blocks, c.attn_resolutions, c.dropout) == \
        (128, (1, 2, 2, 2), 2, (16,), 0.1)


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3)])
def test_unet_shapes_zero_start_and_conditioning(size, channels):
    config = UNet.Config(in_channels=channels, image_size=size, base_channels=8, channel_mults=(1, 2, 2),
                         num_res_blocks=1, attn_resolutions=(size // 4,), num_classes=10)
    net = UNet(config)
    x, t = torch.randn(3, channels, size, size), torch.rand(3)
    assert net(x, t).shape == x.shape and torch.count_nonzero(net(x, t)) == 0  # zero-initialised head
    with torch.no_grad():  # leave the identity start (zero-initialised residual branches)
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    labelled, null = net(x, t, y=torch.tensor([1, 2, 3])), net(x, t)
    assert not torch.allclose(labelled, null)  # labels change the output; None is the null class
    with pytest.raises(TypeError, match="unconditional"):
        UNet(preset("mnist-1.1M", base_channels=8))(torch.randn(1, 1, 28, 28), torch.rand(1), y=torch.tensor([0]))


def test_offline_mnist_has_5000_labelled_digits():
    train, test = load_images("mnist-offline", "train"), load_images("mnist-offline", "test")
    assert len(train) + len(test) == 5000 and train.shape == test.shape == (1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.images.float().mean() > 20  # real strokes, not blank
    assert torch.bincount(train.labels).tolist() == [450] * 10 and torch.bincount(test.labels).tolist() == [50] * 10
    x = train.batch(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, 28, 28) and x.min() == -1 and x.max() == 1


def write_cifar_parquet(path, n=12):
    import datasets

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    ds = datasets.Dataset.from_dict({"img": images, "label": [i % 10 for i in range(n)]}, features=features)
    ds.to_parquet(str(path))
    return images


def test_parquet_and_imagefolder_load_through_datasets(tmp_path):
    images = write_cifar_parquet(tmp_path / "train.parquet")
    data = load_images(str(tmp_path / "train.parquet"), flip=True)
    assert data.shape == (3, 32, 32) and len(data) == 12 and data.flip
    assert torch.equal(data.images[0], torch.from_numpy(np.asarray(images[0])).permute(2, 0, 1))
    for k in range(2):
        (tmp_path / "folder" / f"class{k}").mkdir(parents=True)
        images[k].save(tmp_path / "folder" / f"class{k}" / "a.png")
    folder = load_images(str(tmp_path / "folder"))
    assert folder.shape == (3, 32, 32) and sorted(folder.labels.tolist()) == [0, 1]
    with pytest.raises(ValueError, match="mnist-offline"):
        load_images(str(tmp_path / "nowhere"))


def test_pixels_trainer_on_cifar_shaped_parquet(tmp_path):
    from trainers.pixels import main
    from zoo.pipelines.pixels import load_pipeline

    write_cifar_parquet(tmp_path / "train.parquet")
    release = tmp_path / "release"
    result = main(["--dataset", str(tmp_path / "train.parquet"), "--preset", "cifar10-6.5M", "--base-channels", "16",
                   "--num-res-blocks", "1", "--attn-resolutions", "8", "--steps", "3", "--batch-size", "4",
                   "--warmup", "1", "--out", str(tmp_path / "run"), "--release", str(release)])
    assert result.step == 3 and np.isfinite(result.final_loss)
    card = (release / "README.md").read_text()
    assert "unconditional-image-generation" in card and "python -m trainers.pixels" in card
    pipe = load_pipeline(release, device="cpu")
    out = pipe(n=2, steps=2, solver="ddim", seed=0)
    assert out.images.shape == (2, 32, 32, 3) and out.images.dtype == np.uint8 and out.nfe == 2
    with pytest.raises(ValueError, match="batch size"):
        pipe(n=65)


def test_preset_must_match_the_data(tmp_path):
    from trainers.pixels import main

    write_cifar_parquet(tmp_path / "train.parquet")
    with pytest.raises(ValueError, match="1x28x28 images, the data are 3x32x32"):
        main(["--dataset", str(tmp_path / "train.parquet"), "--steps", "1", "--out", str(tmp_path / "run")])


def test_stream_sampling_previews_and_cancels():
    calls = []

    def run(callback):
        for i in range(200):
            calls.append(i)
            callback(i, 1 - i / 200, torch.zeros(1), torch.ones(1))
            time.sleep(0.01)  # a solver step
        return "finished"

    events = list(stream_sampling(run, interval=0.05))
    assert events[-1] == ("done", "finished") and any(kind == "progress" for kind, _ in events)
    calls.clear()
    stream = stream_sampling(run, interval=0.05)
    assert next(stream)[0] == "progress"
    stream.close()  # what Gradio does on cancel
    time.sleep(0.2)
    assert len(calls) < 200  # the worker stopped early


def test_previews_thin_out_when_several_runs_share_the_server():
    """k runs at once preview every k x interval: the server's preview work stays constant."""
    from ui import streaming

    def run(callback):
        for i in range(60):
            callback(i, 1 - i / 60, torch.zeros(1), torch.ones(1))
            time.sleep(0.01)
        return "finished"

    def previews():
        return sum(kind == "progress" for kind, _ in stream_sampling(run, interval=0.05))

    alone = previews()
    streaming._count_running(+3)  # three other runs in progress
    try:
        crowded = previews()
    finally:
        streaming._count_running(-3)
    assert alone >= 6 and crowded <= alone / 2, (alone, crowded)
    assert streaming._RUNNING[0] == 0


def test_stream_sampling_reraises_errors():
    def run(callback):
        raise ValueError("steps must be >= 1")

    with pytest.raises(ValueError, match="steps"):
        list(stream_sampling(run))
    assert issubclass(Cancelled, Exception)


def test_pixels_trainer_edm_objective_records_sigma_data(tmp_path):
    """--objective edm trains with EDM's preconditioning at sigma_data 0.5 (the default for
    [-1, 1] images), and the release samples with the same sigma_data."""
    import json

    from trainers.pixels import diffusion_config, main, parse_args
    from zoo.pipelines.pixels import load_pipeline

    assert diffusion_config(parse_args(["--objective", "edm"])).sigma_data == 0.5
    assert diffusion_config(parse_args([])).sigma_data == 1.0  # the other objectives keep their scale
    assert diffusion_config(parse_args(["--objective", "v", "--sigma-data", "0.6"])).sigma_data == 0.6
    with pytest.raises(ValueError, match="sigma-data must be positive"):
        diffusion_config(parse_args(["--sigma-data", "0"]))
    release = tmp_path / "release"
    result = main(["--objective", "edm", "--t-sampling", "edm-lognormal", "--base-channels", "8", "--steps", "2",
                   "--batch-size", "4", "--warmup", "1", "--out", str(tmp_path / "run"), "--release", str(release)])
    assert np.isfinite(result.final_loss)
    diffusion = json.loads((release / "config.json").read_text())["diffusion"]
    assert diffusion == {"parameterisation": "edm", "schedule": "vp-cosine", "sigma_data": 0.5,
                         "t_sampling": "edm-lognormal"}
    assert "EDM preconditioning, sigma_data 0.5" in (release / "README.md").read_text()
    pipe = load_pipeline(release, device="cpu")
    assert pipe.denoiser.parameterisation == "edm" and pipe.denoiser.sigma_data == 0.5
    assert pipe(n=2, steps=2, solver="dpmpp_2m", seed=0).images.shape == (2, 28, 28, 1)


def _tiny_pixel_pipeline(schedule="vp-cosine", size=8, seed=0):
    from zoo.diffusion import DiffusionConfig
    from zoo.pipelines.pixels import PixelPipeline

    torch.manual_seed(seed)
    config = UNet.Config(in_channels=1, image_size=size, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                         attn_resolutions=())
    net = UNet(config).eval()
    for p in net.parameters():  # the zero-initialised output layer would make every net the same
        p.data.add_(0.05 * torch.randn_like(p))
    return PixelPipeline(DiffusionConfig(schedule=schedule, parameterisation="v").denoiser(net), schedule,
                         (1, size, size))


def test_autoguided_sampling_counts_both_nets_and_is_per_sample_seeded():
    """Autoguidance (Karras et al. 2024) in the pipeline: w = 0 is the plain model exactly;
    w > 0 changes the samples, costs two network passes per evaluation at the same NFE,
    and keeps sample i the same whatever the batch size."""
    pipe, bad = _tiny_pixel_pipeline(), _tiny_pixel_pipeline(seed=1)
    plain = pipe(n=3, steps=4, seed=7)
    assert np.array_equal(pipe(n=3, steps=4, seed=7, autoguidance=0.0, guiding_model=bad).images, plain.images)
    guided = pipe(n=3, steps=4, seed=7, autoguidance=1.0, guiding_model=bad)
    assert guided.nfe == plain.nfe == 4 and guided.network_calls == 8 and plain.network_calls == 4
    assert not np.array_equal(guided.images, plain.images)
    one = pipe(n=1, steps=4, seed=9, autoguidance=1.0, guiding_model=bad)
    assert np.array_equal(one.images[0], guided.images[2])


@pytest.mark.parametrize("guiding, w, message", [
    (None, 1.0, "autoguidance needs a guiding model"),
    ("flow", 1.0, "the guiding model draws 1x8x8 images on the flow schedule"),
    ("big", 1.0, "the guiding model draws 1x16x16 images"),
    ("ok", float("inf"), "autoguidance w must be a finite number"),
    ("ok", 4.5, r"autoguidance w must be in \[0, 4\]"),
])
def test_autoguidance_refuses_a_guide_it_cannot_compare(guiding, w, message):
    pipe = _tiny_pixel_pipeline()
    guide = {None: None, "ok": _tiny_pixel_pipeline(seed=1), "flow": _tiny_pixel_pipeline("flow"),
             "big": _tiny_pixel_pipeline(size=16)}[guiding]
    with pytest.raises(ValueError, match=message):
        pipe(n=1, steps=2, autoguidance=w, guiding_model=guide)
