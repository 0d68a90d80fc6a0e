"""Shared pytest fixtures: the tiny test net, an "online" Hub pointed at a local server."""
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
