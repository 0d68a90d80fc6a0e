"""zoo.hub: Hub-shaped checkpoints (round trip, fp16, corruption), resolution through a
real local olah mirror, and fast failure offline."""
import json
import time

import pytest
import torch
from huggingface_hub import ModelCard

from servers.fixtures import make_checkpoint, online, tiny_arch  # noqa: F401
from servers.olah_mirror import free_port, git_repo_from_folder, start_olah
from zoo import hub


def test_round_trip_bit_exact(tmp_path):
    folder, net = make_checkpoint(tmp_path / "ckpt")
    loaded, config = hub.load_checkpoint(folder)
    for (k1, v1), (k2, v2) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and v1.dtype == v2.dtype and torch.equal(v1, v2)
    assert config == json.loads((folder / "config.json").read_text())
    assert config["arch"] == "tiny" and config["net"] == {"dim": 2, "hidden": 16}
    assert config["diffusion"]["schedule"] == "vp-cosine" and config["data"] == {"name": "ring"}
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not list(tmp_path.glob(".ckpt*")), "temp folders must be renamed away"


def test_fp16_storage_loads_as_float32(tmp_path):
    folder, net = make_checkpoint(tmp_path / "ckpt", dtype=torch.float16)
    loaded, _ = hub.load_checkpoint(folder)
    for v1, v2 in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert v2.dtype == torch.float32 and torch.equal(v1.half().float(), v2)


def test_overwrite_and_card_metadata(tmp_path):
    from PIL import Image

    make_checkpoint(tmp_path / "ckpt", seed=0)
    folder, net = make_checkpoint(tmp_path / "ckpt", seed=1, sample_image=Image.new("RGB", (8, 8)))
    loaded, _ = hub.load_checkpoint(folder)
    assert torch.equal(loaded.body[0].weight, net.body[0].weight)
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "diffusion-zoo" and card.data.license == "mit"
    assert card.data.datasets == ["ring"] and "toy2d" in card.data.tags
    assert "python train.py" in card.text and "![samples](samples.png)" in card.text
    assert (folder / "samples.png").is_file()


def test_truncated_weights_error_names_file(tmp_path):
    folder, _ = make_checkpoint(tmp_path / "ckpt")
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="model.safetensors"):
        hub.load_checkpoint(folder)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors"):
        hub.load_checkpoint(folder)


def test_resolve_prefers_bundled(tmp_path):
    folder, _ = make_checkpoint(tmp_path / "bundled")
    assert hub.resolve("nobody/none", folder) == folder
    assert hub.locate("nobody/none", folder) == (folder, "bundled")


def test_offline_missing_fails_fast(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(hub.WeightsNotFound, match="python -m trainers.x"):
        hub.resolve("nobody/none", tmp_path / "nothing", train_command="python -m trainers.x")
    assert time.monotonic() - t0 < 2.0


def test_unreachable_endpoint_fails_fast(tmp_path, online):
    online(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(hub.WeightsNotFound, match="unreachable"):
        hub.resolve("nobody/none", tmp_path / "nothing", train_command="python -m trainers.x")
    assert hub.locate("nobody/none", tmp_path / "nothing") == (None, "missing")
    assert time.monotonic() - t0 < 2.0


@pytest.fixture
def olah_endpoint(tmp_path, online):
    proc, url = start_olah(tmp_path)
    online(url)
    yield tmp_path, url
    proc.terminate()
    proc.wait(10)


def test_download_through_olah_mirror(tmp_path, olah_endpoint):
    root, url = olah_endpoint
    folder, net = make_checkpoint(tmp_path / "src")
    git_repo_from_folder(folder, root, "zoo-test/tiny-olah")
    assert hub.locate("zoo-test/tiny-olah") == (None, "hub")
    path = hub.resolve("zoo-test/tiny-olah", tmp_path / "not-bundled")
    assert "models--zoo-test--tiny-olah" in str(path)
    loaded, config = hub.load_checkpoint(path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    assert (path / "README.md").read_text() == (folder / "README.md").read_text()
    assert hub.locate("zoo-test/tiny-olah")[1] == "cached"
    assert hub.probe_hub("zoo-test/absent") == "missing"


def test_probe_sends_token_for_private_repos(online, monkeypatch):
    from servers.hub_server import start_fake_hub

    fake, server, url = start_fake_hub()
    online(url)
    monkeypatch.setenv("HF_TOKEN", "hf_probe_secret")
    try:
        assert hub.probe_hub("zoo-test/private") == "missing"
    finally:
        server.shutdown()
    assert [(m, p.split("?")[0], a) for m, p, a in fake.requests] == [
        ("GET", "/api/models/zoo-test/private/revision/main", "Bearer hf_probe_secret")]
