"""The time-conditioned MLP: shapes, zero initial output, time conditioning, config round trip."""
import dataclasses

import pytest
import torch

from zoo.nets import build_net
from zoo.nets.embedding import sinusoidal_features
from zoo.nets.mlp import MLP


def test_zero_initial_output_and_shapes():
    net = MLP(MLP.Config())
    x, t = torch.randn(7, 2), torch.rand(7)
    assert net(x, t).shape == (7, 2)
    assert torch.count_nonzero(net(x, t)) == 0


def test_output_depends_on_time():
    torch.manual_seed(0)
    net = MLP(MLP.Config(dim=3, hidden=32, depth=2))
    torch.nn.init.normal_(net.out.weight)
    x = torch.randn(4, 3)
    assert not torch.allclose(net(x, torch.full((4,), 0.1)), net(x, torch.full((4,), 0.9)))


def test_sinusoidal_features_are_bounded_and_distinct():
    f = sinusoidal_features(torch.tensor([0.0, 0.001, 0.5, 1.0]), 32)
    assert f.shape == (4, 32) and f.abs().max() <= 1
    assert torch.cdist(f, f).add(torch.eye(4)).min() > 0.1


def test_rejects_conditioning_and_round_trips_its_config():
    net = MLP(MLP.Config(hidden=16, depth=1))
    with pytest.raises(TypeError, match="unconditional"):
        net(torch.randn(2, 2), torch.rand(2), y=torch.tensor([0, 1]))
    rebuilt = build_net("mlp", dataclasses.asdict(net.config))
    assert rebuilt.config == net.config
