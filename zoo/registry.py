"""The zoo's entries: what each model is, where its weights live, how to train it.

An entry names its pipeline builder by a key of `PIPELINES`, a fixed allow-list: nothing
read from a config file or the Hub can make this module import arbitrary code. Builders
are imported lazily (only `load` touches them) and are called as
`load_pipeline(folder: pathlib.Path, **kw)` with the resolved checkpoint folder.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from zoo import hub
from zoo.data.toy2d import TOY_DATASETS

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS = ("toy2d", "unconditional", "class-conditional", "classifier", "autoencoder", "text-to-image")

# "module:function" -> (module, function). The only code `load` may call.
PIPELINES = {
    "zoo.toy2d:load_pipeline": ("zoo.toy2d", "load_pipeline"),
    "zoo.pixels:load_pipeline": ("zoo.pixels", "load_pipeline"),
    "zoo.conditional:load_pipeline": ("zoo.conditional", "load_pipeline"),
    "zoo.conditional:load_classifier": ("zoo.conditional", "load_classifier"),
    "zoo.text2image:load_pipeline": ("zoo.text2image", "load_pipeline"),
    "zoo.text2image:load_vae": ("zoo.text2image", "load_vae"),
}


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo. Sampler fields are the defaults the UI starts from."""

    name: str
    task: str
    description: str
    repo_id: str | None
    bundled_path: str | None  # relative to the repository root, e.g. "weights/mnist"
    pipeline: str  # key of PIPELINES
    train_command: str
    solver: str = "dpmpp_2m"
    steps: int = 20
    spacing: str = "logsnr"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {sorted(PIPELINES)}, got {self.pipeline!r}")

    @property
    def bundled_folder(self) -> Path | None:
        return REPO_ROOT / self.bundled_path if self.bundled_path else None




def _toy_entry(dataset: str) -> ZooEntry:
    return ZooEntry(
        name=f"toy-{dataset}",
        task="toy2d",
        description=f"MLP denoiser on the 2D '{dataset}' point cloud.",
        repo_id=f"diffusion-zoo/toy2d-{dataset}",
        bundled_path=f"weights/toy2d/{dataset}",
        pipeline="zoo.toy2d:load_pipeline",
        train_command=f"python -m trainers.toy2d --dataset {dataset} --release weights/toy2d/{dataset}",
        solver="heun",
        steps=20,
    )


ENTRIES: list[ZooEntry] = [
    *(_toy_entry(d) for d in TOY_DATASETS),
    ZooEntry(
        name="mnist",
        task="unconditional",
        description="UNet on MNIST digits (28x28, 1 channel).",
        repo_id="diffusion-zoo/mnist-ddpm",
        bundled_path="weights/mnist",
        pipeline="zoo.pixels:load_pipeline",
        train_command=("python -m trainers.pixels --dataset mnist-offline --fp16-weights --steps 8000 --release "
                       "weights/mnist && python -m trainers.pixels --dataset mnist-offline --fp16-weights --steps 16000 "
                       "--release weights/mnist --resume"),
    ),
    ZooEntry(
        name="mnist-cond",
        task="class-conditional",
        description="Class-conditional UNet on MNIST digits, labels dropped 10% of the time for classifier-free "
                    "guidance.",
        repo_id="diffusion-zoo/mnist-cond",
        bundled_path="weights/mnist-cond",
        pipeline="zoo.conditional:load_pipeline",
        train_command=("python -m trainers.pixels --dataset mnist-offline --class-conditional --fp16-weights "
                       "--steps 12000 --release weights/mnist-cond"),
    ),
    ZooEntry(
        name="mnist-classifier",
        task="classifier",
        description="Noise-aware digit classifier p(y | x_t, t) on the vp-cosine schedule, for classifier guidance.",
        repo_id="diffusion-zoo/mnist-classifier",
        bundled_path="weights/mnist-classifier",
        pipeline="zoo.conditional:load_classifier",
        train_command=("python -m trainers.classifier --dataset mnist-offline --fp16-weights --release "
                       "weights/mnist-classifier"),
    ),
    ZooEntry(
        name="shapes-vae",
        task="autoencoder",
        description="KL autoencoder (3x32x32 -> 4x8x8) of the captioned shapes images: the text-to-image model's "
                    "latent space.",
        repo_id="diffusion-zoo/shapes-vae",
        bundled_path="weights/shapes-vae",
        pipeline="zoo.text2image:load_vae",
        train_command="python -m trainers.vae --fp16-weights --release weights/shapes-vae",
    ),
    ZooEntry(
        name="shapes-t2i",
        task="text-to-image",
        description="Latent DiT with an open_clip text encoder on the shapes-vae latents: prompts such as 'a small "
                    "red circle in the top left'.",
        repo_id="diffusion-zoo/shapes-t2i",
        bundled_path="weights/shapes-t2i",
        pipeline="zoo.text2image:load_pipeline",
        train_command=("python -m trainers.text2image --vae shapes-vae --fp16-weights --steps 12000 --release "
                       "weights/shapes-t2i"),
    ),
    ZooEntry(
        name="cifar10",
        task="unconditional",
        description="UNet on CIFAR-10 (32x32 RGB); weights come from the Hub.",
        repo_id="diffusion-zoo/cifar10-ddpm",
        bundled_path=None,
        pipeline="zoo.pixels:load_pipeline",
        train_command=("python -m trainers.pixels --dataset cifar10 --preset cifar10-ddpm-35.7M --batch-size 128 "
                       "--lr 2e-4 --steps 800000 --push-to-hub diffusion-zoo/cifar10-ddpm"),
    ),
]


def list_models() -> list[ZooEntry]:
    """Every zoo entry, in display order."""
    return list(ENTRIES)


def get_entry(name: str) -> ZooEntry:
    for entry in ENTRIES:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown zoo model {name!r}; choose one of {[e.name for e in ENTRIES]}")


def resolve(name: str) -> Path:
    """Checkpoint folder of entry `name` (bundled -> HF cache -> Hub); WeightsNotFound otherwise."""
    entry = get_entry(name)
    return hub.resolve(entry.repo_id, entry.bundled_folder, entry.train_command)


def source(name: str) -> str:
    """"bundled" | "cached" | "hub" | "missing"; never downloads, at most one short probe."""
    entry = get_entry(name)
    return hub.locate(entry.repo_id, entry.bundled_folder)[1]


def _builder(key: str):
    module, function = PIPELINES[key]  # KeyError impossible: ZooEntry validated the key
    return getattr(importlib.import_module(module), function)


_PIPELINE_CACHE: dict = {}


def clear_cache() -> None:
    _PIPELINE_CACHE.clear()


def load(name: str, **kwargs):
    """The ready pipeline of entry `name`: its builder called on the resolved folder.

    Cached per (name, folder, weights mtime, kwargs), so the app can call it on every
    request; retraining into the same folder changes the mtime and reloads."""
    folder = resolve(name)  # first: a missing-weights error needs no heavy builder import
    try:
        key = (name, str(folder), (folder / hub.WEIGHTS_NAME).stat().st_mtime_ns, frozenset(kwargs.items()))
        hash(key)
    except TypeError:  # unhashable kwargs: build without caching
        key = None
    if key is None or key not in _PIPELINE_CACHE:
        pipe = _builder(get_entry(name).pipeline)(folder, **kwargs)
        if key is None:
            return pipe
        _PIPELINE_CACHE[key] = pipe
    return _PIPELINE_CACHE[key]
