"""The open zoo: any Hub repo id is a model. Repos are served by the local fake Hub
(tests/servers/hub_server.py); the repo's own files decide the pipeline, through the
allow-lists; only safetensors are read; sizes are checked before any download; bad input
gets a readable message and downloads nothing beyond config files."""
import shutil
import time

import numpy as np
import pytest
import torch

import zoo
from servers.diffusers_repo import (CIFAR10_SCHEDULER_CONFIG, FixedNoise, diffusers_ddim, rel_diff, write_ddpm_repo,
                                    write_pickle_only_repo)
from servers.fixtures import fake_hub, online  # noqa: F401
from zoo import hub, registry
from zoo.diffusion import grid_from_times
from zoo.diffusion.solvers import ddim
from zoo.registry import REPO_ROOT


def serve(fake, repo_id, folder, **kw):
    fake.add_folder(repo_id, folder, **kw)
    return repo_id


def downloads(fake, repo_id) -> list:
    """Files of repo_id fetched with GET (HEAD requests only ask for metadata)."""
    return [p.split("/resolve/")[1].split("/", 1)[1] for m, p, _ in fake.requests
            if m == "GET" and p.startswith(f"/{repo_id}/resolve/")]


@pytest.fixture(autouse=True)
def fresh_pipelines():
    registry.clear_cache()
    yield
    registry.clear_cache()


def test_a_pushed_toy_checkpoint_opens_by_repo_id(fake_hub, tmp_path):
    repo = serve(fake_hub, "someone/toy2d-moons", REPO_ROOT / "weights/toy2d/moons")
    entry = registry.lookup(repo)
    assert (entry.task, entry.pipeline) == ("toy2d", "zoo.pipelines.toy2d:load_pipeline")
    pipe = zoo.load(repo)
    out = pipe(n=200, steps=5, solver="heun", seed=0)
    assert out.points.shape == (200, 2) and pipe.dataset == "moons"
    assert zoo.load(f"{repo}@main") is not None and zoo.load(repo, revision="main") is not None
    assert registry.source(repo) == "cached"
    assert set(downloads(fake_hub, repo)) == {"config.json", "model.safetensors", "README.md", "samples.png"}


def test_the_cifar10_entry_is_ho_et_al_in_diffusers_format(fake_hub, tmp_path):
    """google/ddpm-cifar10-32's exact configs (narrow channels for speed) from the Hub,
    run by diffusers' UNet2DModel under this project's schedule and solvers."""
    repo = serve(fake_hub, "google/ddpm-cifar10-32", write_ddpm_repo(tmp_path / "cifar"))
    assert registry.source("cifar10") == "hub"
    pipe = zoo.load("cifar10")
    assert pipe.image_shape == (3, 32, 32) and "UNet2DModel" in pipe.description
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # the peer on the same noise
    with torch.no_grad():
        timesteps, theirs = diffusers_ddim(pipe.denoiser.net.unet, CIFAR10_SCHEDULER_CONFIG, x, steps=10)
        grid = grid_from_times(pipe.schedule, (timesteps.double() + 1) / pipe.schedule.T)
        ours = ddim(pipe.denoiser, x, grid, FixedNoise(None))
    assert rel_diff(ours, theirs) < 1e-4
    for solver in ("ddim", "dpmpp_2m"):
        out = pipe(n=2, steps=3, solver=solver, seed=0)
        assert out.images.shape == (2, 32, 32, 3) and out.images.dtype == np.uint8
    assert registry.source("cifar10") == "cached"
    assert "diffusion_pytorch_model.safetensors" in downloads(fake_hub, repo)


def test_a_diffusers_pipeline_layout_repo_opens(fake_hub, tmp_path):
    repo = serve(fake_hub, "someone/ddpm-butterflies-32", write_ddpm_repo(tmp_path / "b", layout="pipeline"))
    entry = registry.lookup(repo)
    assert (entry.task, entry.pipeline) == ("unconditional", "zoo.pipelines.diffusers_format:load_pipeline")
    assert zoo.load(repo)(n=1, steps=2, seed=1).images.shape == (1, 32, 32, 3)


def test_offline_the_cache_is_enough(fake_hub, tmp_path, monkeypatch):
    repo = serve(fake_hub, "someone/toy2d-circles", REPO_ROOT / "weights/toy2d/circles")
    zoo.load(repo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry.clear_cache()
    requests = len(fake_hub.requests)
    assert zoo.load(repo)(n=10, steps=2).points.shape == (10, 2)
    assert len(fake_hub.requests) == requests, "a cached repo needs no network"


def test_offline_an_uncached_repo_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(hub.WeightsNotFound, match="HF_HUB_OFFLINE"):
        zoo.load("someone/never-downloaded")
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("bad", ["../../x", "owner/na me", "a/b/c", "", "name with spaces", "x" * 300 + "/y",
                                 "owner/name@../../etc", "owner/name@ main"])
def test_malformed_ids_are_refused_before_any_request(bad, fake_hub):
    with pytest.raises(ValueError):
        zoo.load(bad)
    assert fake_hub.requests == []


def test_missing_and_private_repos(fake_hub, tmp_path, monkeypatch):
    with pytest.raises(hub.HubError, match="does not exist, or it is private"):
        zoo.load("nobody/nothing")
    repo = serve(fake_hub, "someone/private-toy", REPO_ROOT / "weights/toy2d/gmm", private_token="hf_reader")
    with pytest.raises(hub.HubError, match="HF_TOKEN"):
        zoo.load(repo)
    assert downloads(fake_hub, repo) == []
    monkeypatch.setenv("HF_TOKEN", "hf_reader")
    assert zoo.load(repo).dataset == "gmm"


def test_pickle_only_repo_is_refused_without_downloading(fake_hub, tmp_path):
    repo = serve(fake_hub, "someone/pickled-ddpm", write_pickle_only_repo(tmp_path / "p"))
    with pytest.raises(hub.HubError, match="safetensors"):
        zoo.load(repo)
    assert downloads(fake_hub, repo) == []
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "config.json").write_text("{}")
    (tmp_path / "q" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(hub.HubError, match="arbitrary code"):
        zoo.load(serve(fake_hub, "someone/pickled", tmp_path / "q"))


def test_a_text_model_downloads_only_its_configs(fake_hub, tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": 768}')
    (folder / "model.safetensors").write_bytes(b"weights that must not be downloaded")
    (folder / "tokenizer.json").write_text("{}")
    repo = serve(fake_hub, "someone/bert-ish", folder)
    with pytest.raises(ValueError, match="not a diffusion-zoo checkpoint"):
        zoo.load(repo)
    assert "model.safetensors" not in downloads(fake_hub, repo)
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_model.safetensors").write_bytes(b"x")
    with pytest.raises(hub.HubError, match="not supported"):
        zoo.load(serve(fake_hub, "someone/lora", tmp_path / "lora"))


def test_a_10_gb_repo_is_refused_before_any_download(fake_hub, tmp_path):
    shutil.copytree(REPO_ROOT / "weights/toy2d/moons", tmp_path / "big")
    repo = serve(fake_hub, "someone/huge", tmp_path / "big")
    fake_hub.sizes[(repo, "model.safetensors")] = 10 * 1024**3
    with pytest.raises(hub.HubError, match="10.7 GB"):
        zoo.load(repo)
    assert downloads(fake_hub, repo) == []


def test_a_corrupted_download_is_caught_and_not_cached(fake_hub, tmp_path):
    repo = serve(fake_hub, "someone/flipped", REPO_ROOT / "weights/toy2d/moons")
    good = fake_hub.repos[("model", repo)]["files"]["model.safetensors"]
    fake_hub.served[(repo, "model.safetensors")] = good[:-1] + bytes([good[-1] ^ 1])  # one bit flipped on the wire
    with pytest.raises(hub.HubError, match="sha256"):
        zoo.load(repo)
    assert registry.source(repo) != "cached"
    del fake_hub.served[(repo, "model.safetensors")]
    assert zoo.load(repo).dataset == "moons"  # the next try downloads it again, intact
