"""What a repo holds, decided by its own files through allow-lists.

Two formats load:

* this project's checkpoints: config.json {"arch": key of zoo.nets.ARCHITECTURES, ...} +
  model.safetensors. The architecture (and, for a UNet, whether it has classes) says the
  task, and the task says the pipeline builder.
* diffusers' DDPM family: a UNet2DModel (flat, or under unet/ with a model_index.json)
  with a DDPM-style scheduler config; zoo.pipelines.diffusers_format reads it with diffusers' own
  model class and this project's schedules and solvers drive it.

Nothing a repo says is used as code: class names and architecture keys are looked up in
fixed tables, and anything else is refused with a message that says what is supported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo import hub

DIFFUSERS_MARKERS = ("model_index.json", "diffusion_pytorch_model.safetensors")

# task -> the registry builder that makes its pipeline (keys of zoo.registry.PIPELINES)
TASK_PIPELINES = {
    "toy2d": "zoo.pipelines.toy2d:load_pipeline",
    "unconditional": "zoo.pipelines.pixels:load_pipeline",
    "class-conditional": "zoo.pipelines.conditional:load_pipeline",
    "classifier": "zoo.pipelines.conditional:load_classifier",
    "autoencoder": "zoo.pipelines.text2image:load_vae",
    "text-to-image": "zoo.pipelines.text2image:load_pipeline",
}
DIFFUSERS_PIPELINE = "zoo.pipelines.diffusers_format:load_pipeline"


@dataclass(frozen=True)
class RepoKind:
    """The task of a model and the builder of its pipeline; `format` is where it comes from."""

    task: str
    pipeline: str
    format: str  # "diffusion-zoo" | "diffusers"


def _is_diffusers(names) -> bool:
    return any(Path(n).name in DIFFUSERS_MARKERS or Path(n).name.startswith("diffusion_pytorch_model")
               for n in names)


def plan_for(names) -> hub.Plan:
    """What to download, from the repo's file names alone (ValueError when nothing loads)."""
    names = list(names)
    if _is_diffusers(names):
        from zoo.pipelines.diffusers_format import layout_files, read_configs

        layout = layout_files(names)
        configs = [f for f in (layout.model_index, layout.unet_config, layout.scheduler_config) if f]
        return hub.Plan(configs, [layout.unet_weights], [f for f in (layout.readme,) if f],
                        check=lambda folder: read_configs(Path(folder), layout))
    if hub.CONFIG_NAME not in names:
        hub.refuse_pickles(names)
        raise ValueError("the repo holds neither a diffusion-zoo checkpoint (config.json + model.safetensors) nor a "
                         "diffusers UNet2DModel (DDPM family); text models, LoRAs and other pipelines are not "
                         "supported")
    return hub.checkpoint_plan(names, check=_check_checkpoint)


def _check_checkpoint(folder) -> None:
    from zoo.hub.validation import read_json

    if "arch" not in read_json(Path(folder) / hub.CONFIG_NAME):  # say what it is not, before the field checks
        raise ValueError("config.json has no 'arch': not a diffusion-zoo checkpoint (nor a diffusers UNet2DModel)")
    hub.load_config(folder)


def task_of_config(config: dict) -> str:
    """The task a checkpoint of this project is for, from its architecture."""
    arch = config["arch"]
    if arch == "unet":
        return "class-conditional" if config["net"].get("num_classes", 0) else "unconditional"
    tasks = {"mlp": "toy2d", "classifier": "classifier", "vae": "autoencoder", "dit": "text-to-image"}
    if arch not in tasks:
        raise ValueError(f"config.json names the architecture {arch!r}; the zoo loads {sorted(tasks) + ['unet']}")
    return tasks[arch]


def _check_diffusers(folder: Path) -> None:
    from zoo.pipelines.diffusers_format import layout_files, read_configs

    read_configs(folder, layout_files(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()))


def _is_diffusers_folder(folder: Path) -> bool:
    from zoo.pipelines.diffusers_format import is_diffusers_folder

    return is_diffusers_folder(folder)


def kind_of(folder) -> RepoKind:
    """The kind of the complete checkpoint in `folder`, its configs checked again."""
    folder = Path(folder)
    if _is_diffusers_folder(folder):
        _check_diffusers(folder)
        return RepoKind("unconditional", DIFFUSERS_PIPELINE, "diffusers")
    task = task_of_config(hub.load_config(folder))
    return RepoKind(task, TASK_PIPELINES[task], "diffusion-zoo")


def fetch(repo_id: str, revision: str | None = None) -> tuple[Path, RepoKind]:
    """(snapshot folder, kind) of a Hub repo: from the cache, else downloaded within the
    budgets of zoo.hub.network (configs checked first, then the weights)."""
    folder = hub.fetch(repo_id, revision, plan_for=plan_for)
    return folder, kind_of(folder)
