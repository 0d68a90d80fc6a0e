"""Shared pytest fixtures: the tiny test net, an "online" Hub pointed at a local server."""
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from servers import tiny
from zoo import hub
from zoo.hub import remote
from zoo.diffusion.config import DiffusionConfig


@pytest.fixture
def tiny_arch():
    tiny.register()
    yield "tiny"


def make_checkpoint(folder, seed=0, **kw):
    """A saved tiny checkpoint; returns (folder, net)."""
    tiny.register()
    torch.manual_seed(seed)
    cfg = tiny.TinyNet.Config()
    net = tiny.TinyNet(cfg)
    card = hub.CardInfo(title="tiny", tags=["toy2d"], datasets=["ring"], train_command="python train.py",
                        steps=3, final_loss=0.5, wall_time_s=1.0)
    hub.save_checkpoint(folder, net, "tiny", cfg, DiffusionConfig(), extra={"data": {"name": "ring"}},
                        card=card, **kw)
    return folder, net


@pytest.fixture
def online(monkeypatch):
    """Switch huggingface_hub online (conftest set it offline) and return a setter for HF_ENDPOINT."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    remote._probe_cache.clear()

    def set_endpoint(url):
        monkeypatch.setenv("HF_ENDPOINT", url)
        remote._probe_cache.clear()

    yield set_endpoint
    remote._probe_cache.clear()


@pytest.fixture
def fake_hub(online):
    """The in-memory Hub on 127.0.0.1 (servers.hub_server), with huggingface_hub pointed at it."""
    from servers.hub_server import start_fake_hub

    fake, server, url = start_fake_hub()
    online(url)
    yield fake
    server.shutdown()


def cache_repo(folder, repo_id: str, sha: str = "c0ffee" * 6 + "abcd") -> Path:
    """Put a folder into the local HF cache by hand, as a Space's preload does: the
    snapshot under its commit hash and refs/main pointing at it. Returns the snapshot."""
    import shutil

    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / sha
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(folder, snapshot)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(sha)
    return snapshot
