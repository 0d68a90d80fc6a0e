"""The third use of the project, end to end: train a toy model and a tiny pixel model with
the trainers, `--push-to-hub` them to the local Hub server, open each repo id in the app
(Model zoo box) and sample it in its tab, all through gradio_client on loopback."""
import pytest
from gradio_client import Client

from servers.app_server import running_app
from servers.fixtures import fake_hub, online  # noqa: F401
from zoo import registry


@pytest.fixture
def pushed(fake_hub, tmp_path, monkeypatch):
    """Two trained checkpoints pushed with the trainers' own --push-to-hub."""
    from trainers import pixels, toy2d

    monkeypatch.setenv("HF_TOKEN", "hf_roundtrip")
    toy2d.main(["--dataset", "moons", "--steps", "60", "--hidden", "32", "--depth", "1", "--ckpt-every", "60",
                "--out", str(tmp_path / "toy"), "--push-to-hub", "tester/toy-moons"])
    pixels.main(["--dataset", "mnist-offline", "--steps", "3", "--batch-size", "4", "--base-channels", "8",
                 "--num-res-blocks", "1", "--attn-resolutions", "", "--ckpt-every", "3", "--warmup", "0",
                 "--out", str(tmp_path / "px"), "--push-to-hub", "tester/tiny-digits"])
    assert {("model", "tester/toy-moons"), ("model", "tester/tiny-digits")} <= set(fake_hub.repos)
    registry.clear_cache()
    yield fake_hub
    registry.clear_cache()


def test_push_open_and_sample_in_the_app(pushed):
    with running_app() as url:
        client = Client(url, verbose=False)
        status, card, *_ = client.predict("tester/toy-moons", api_name="/zoo_open")
        assert "Opened **tester/toy-moons** (toy2d)" in status and "Toy 2D tab" in status
        assert "python -m trainers.toy2d" in card
        out = client.predict("tester/toy-moons", "swissroll", "vp-cosine", "heun", 8, "logsnr", 0, 300, 0.0,
                             api_name="/toy_sample")
        numbers = out[2]
        assert "NFE **15**" in numbers and "sliced Wasserstein" in numbers  # heun: 2 x 8 - 1

        status, card, samples, *_ = client.predict("tester/tiny-digits", api_name="/zoo_open")
        assert "(unconditional)" in status and "Unconditional and Guidance tabs" in status
        assert samples is not None  # the trainer's sample grid, from the pushed samples.png
        *_, last = client.submit("tester/tiny-digits", "dpmpp_2m", 4, "logsnr", 0.0, 0, 2,
                                 api_name="/pixels_sample")
        assert "NFE **4**" in last[2] and "2 images" in last[2]

        status, *_ = client.predict("tester/never-pushed", api_name="/zoo_open")
        assert status.startswith("**Could not open") and "does not exist" in status
