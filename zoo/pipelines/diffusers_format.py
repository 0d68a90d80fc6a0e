"""Published diffusers-format DDPM models (a UNet2DModel and a DDPM-family scheduler
config) as this project's pixel pipelines, sampled by every solver and spacing here.

These are Ho et al.'s (2020) models as diffusers ships them (google/ddpm-cifar10-32,
google/ddpm-celebahq-256, -church-256, -cat-256, -bedroom-256) and what diffusers'
train_unconditional.py example pushes. Two layouts are read:

  flat:     config.json ("_class_name": "UNet2DModel") + diffusion_pytorch_model.safetensors,
            scheduler/scheduler_config.json or scheduler_config.json
  pipeline: model_index.json ("unet": ["diffusers", "UNet2DModel"]), unet/config.json +
            unet/diffusion_pytorch_model.safetensors, scheduler/scheduler_config.json

Nothing read from a repo picks code: every `_class_name` must be on the allow-lists below,
the UNet is diffusers' own UNet2DModel class (never trust_remote_code), and weights come
only from safetensors (pickle files run code when loaded).

The UNet was trained on integer timesteps i = 0..T-1; DiscreteSchedule puts timestep i at
t = (i + 1) / T and interpolates between, and the wrapper calls the UNet at the
fractional timestep t T - 1 (its sinusoidal embedding accepts any real timestep).
"""
import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from zoo.checks import check_choice
from zoo.diffusion import Denoiser, DiscreteSchedule

PIPELINE_CLASSES = ("DDPMPipeline", "DDIMPipeline", "PNDMPipeline")
MODEL_CLASSES = ("UNet2DModel",)
# Schedulers whose config holds the beta fields with diffusers' DDPM defaults
# (zoo.diffusion.discrete.BETA_DEFAULTS; tests check the defaults against diffusers).
SCHEDULER_CLASSES = (
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler", "DEISMultistepScheduler", "UniPCMultistepScheduler",
)
# diffusers' prediction_type -> this project's parameterisation. diffusers' v is
# alpha eps - sigma x0 on its VP schedules (Salimans & Ho 2022), this project's "v".
PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
# clip_sample's default where the scheduler has one; the others never clip.
CLIP_SAMPLE_DEFAULT = {"DDPMScheduler": True, "DDIMScheduler": True}

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")
SCHEDULER_CONFIGS = ("scheduler/scheduler_config.json", "scheduler_config.json")
# Attention parameter names of diffusers < 0.15, which Google's DDPM repos (saved by
# diffusers 0.0.4) still use, and their current names (diffusers' own load-time rename).
LEGACY_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


@dataclass(frozen=True)
class DiffusersLayout:
    """Which repo files make up the model (paths relative to the repo root)."""

    layout: str  # "flat" or "pipeline"
    unet_config: str
    unet_weights: str
    scheduler_config: str
    model_index: str | None = None
    readme: str | None = None

    @property
    def files(self) -> list:
        """Every file the model needs, for a download allow-list."""
        names = (self.unet_config, self.unet_weights, self.scheduler_config, self.model_index, self.readme)
        return [n for n in names if n is not None]


def _unet_candidates(names: set) -> list:
    """(prefix, layout, weight files) for each folder holding a config.json and
    diffusion_pytorch_model.* weights; the pipeline layout first."""
    found = []
    for prefix, layout in (("unet/", "pipeline"), ("", "flat")):
        weights = sorted(n for n in names if n.startswith(prefix + "diffusion_pytorch_model.")
                         and "/" not in n[len(prefix):])
        if prefix + "config.json" in names and weights:
            found.append((prefix, layout, weights))
    return found


def layout_files(names) -> DiffusersLayout:
    """The model's files from a list of repo file names alone (Hub metadata, before any
    download). ValueError when there is no UNet2DModel or its weights are pickle only."""
    names = set(names)
    candidates = _unet_candidates(names)
    if not candidates:
        raise ValueError("no diffusers UNet2DModel found (config.json + diffusion_pytorch_model.safetensors, at the "
                         "root or under unet/): only unconditional diffusers DDPM models "
                         f"({', '.join(PIPELINE_CLASSES)}) are supported")
    for prefix, layout, weights in candidates:
        if prefix + WEIGHTS_NAME in weights:
            return DiffusersLayout(layout, prefix + "config.json", prefix + WEIGHTS_NAME,
                                   _scheduler_config(names, layout),
                                   "model_index.json" if "model_index.json" in names else None,
                                   "README.md" if "README.md" in names else None)
    found = [w for _, _, weights in candidates for w in weights]
    pickles = [w for w in found if w.endswith(PICKLE_SUFFIXES)]
    why = " (pickle files run arbitrary code when loaded)" if pickles else ""
    raise ValueError(f"only safetensors weights ({WEIGHTS_NAME}) are read{why}; this repo's UNet has {found}")


def _scheduler_config(names: set, layout: str) -> str:
    allowed = SCHEDULER_CONFIGS[:1] if layout == "pipeline" else SCHEDULER_CONFIGS
    for name in allowed:
        if name in names:
            return name
    raise ValueError(f"no scheduler config ({' or '.join(allowed)}): the model's beta schedule is unknown")


def is_diffusers_folder(folder) -> bool:
    """True for a diffusers-format folder; the project's own config.json has "arch"
    where diffusers' has "_class_name"."""
    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return True
    config = folder / "config.json"
    return config.is_file() and "_class_name" in _read_json(config)


def _read_json(path: Path) -> dict:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} must hold a JSON object")
    return data


def _check_class(config: dict, allowed: tuple, what: str) -> str:
    name = config.get("_class_name")
    check_choice(name, allowed, f"{what} _class_name")
    return name


def check_model_index(index: dict) -> None:
    """A DDPM-family pipeline with exactly a UNet2DModel and an allowed scheduler."""
    _check_class(index, PIPELINE_CLASSES, "model_index.json")
    components = {k: v for k, v in index.items() if not k.startswith("_")}
    if components.get("unet") != ["diffusers", "UNet2DModel"]:
        raise ValueError('model_index.json must name "unet": ["diffusers", "UNet2DModel"], '
                         f'got {components.get("unet")}')
    scheduler = components.get("scheduler")
    if not (isinstance(scheduler, list) and len(scheduler) == 2 and scheduler[1] in SCHEDULER_CLASSES):
        raise ValueError(f"model_index.json scheduler must be one of {list(SCHEDULER_CLASSES)}, got {scheduler}")
    if set(components) != {"unet", "scheduler"}:
        raise ValueError(f"only unet + scheduler pipelines are supported, got components {sorted(components)}")


def check_unet_config(config: dict) -> None:
    """An unconditional UNet2DModel whose time input is the sinusoidal timestep embedding."""
    _check_class(config, MODEL_CLASSES, "unet config.json")
    if config.get("time_embedding_type", "positional") != "positional":
        raise ValueError("only time_embedding_type 'positional' is supported (it takes fractional timesteps), "
                         f"got {config['time_embedding_type']!r}")
    if config.get("class_embed_type") is not None or config.get("num_class_embeds") is not None:
        raise ValueError("class-conditional UNet2DModels are not supported")
    if config.get("out_channels", 3) != config.get("in_channels", 3):
        raise ValueError("out_channels must equal in_channels (a learned-variance output is not supported)")


def check_scheduler_config(config: dict) -> None:
    """A scheduler config this project can reproduce: allowed class, VP discrete betas,
    x0 clipping at most (no dynamic thresholding, no flow sigmas, no learned variance)."""
    _check_class(config, SCHEDULER_CLASSES, "scheduler_config.json")
    if config.get("thresholding"):
        raise ValueError("dynamic thresholding is not supported (clip_sample is)")
    if config.get("use_flow_sigmas"):
        raise ValueError("use_flow_sigmas (a flow-matching model) is not supported")
    if config.get("timestep_type", "discrete") != "discrete":
        raise ValueError(f"timestep_type must be 'discrete', got {config['timestep_type']!r}")
    if config.get("variance_type") in ("learned", "learned_range"):
        raise ValueError("a learned variance is not supported")
    parameterisation(config)


def parameterisation(scheduler_config: dict) -> str:
    """This project's parameterisation for the config's prediction_type (default epsilon)."""
    kind = scheduler_config.get("prediction_type") or "epsilon"
    check_choice(kind, PREDICTION_TYPES, "prediction_type")
    return PREDICTION_TYPES[kind]


def clip_x0(scheduler_config: dict) -> float | None:
    """diffusers' clip_sample / clip_sample_range as Denoiser's clip_x0 (None: no clipping)."""
    clip = scheduler_config.get("clip_sample")
    if clip is None:
        clip = CLIP_SAMPLE_DEFAULT.get(scheduler_config.get("_class_name"), False)
    return float(scheduler_config.get("clip_sample_range", 1.0)) if clip else None


class DiscreteTimeUNet(nn.Module):
    """net(x, t) for a diffusers UNet2DModel trained on timesteps 0..T-1: the UNet at the
    fractional timestep t T - 1 (DiscreteSchedule's time axis), returning its `.sample`."""

    def __init__(self, unet: nn.Module, T: int):
        super().__init__()
        self.unet, self.T = unet, int(T)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # In float64 first: the float32 t = (i + 1) / T then lands on the integer i.
        timestep = (t.to(torch.float64) * self.T - 1).to(torch.float32)
        return self.unet(x, timestep).sample


def rename_legacy_attention(state: dict, expected) -> dict:
    """Old attention parameter names (query / key / value / proj_attn) to current ones,
    only where the model expects the new name."""
    expected, renamed = set(expected), {}
    for key, value in state.items():
        parts = key.rsplit(".", 2)
        if len(parts) == 3 and parts[1] in LEGACY_ATTENTION_NAMES and key not in expected:
            new = f"{parts[0]}.{LEGACY_ATTENTION_NAMES[parts[1]]}.{parts[2]}"
            key = new if new in expected else key
        renamed[key] = value
    return renamed


MAX_SAMPLE_SIZE = 1024  # google/ddpm-*-256 are 256; larger images would take hours on a CPU


def _check_unet_sizes(config: dict, header, source) -> None:
    """UNet2DModel sizes against the weights file before anything is built: no channel count
    wider than its largest tensor, no more blocks or layers than it has tensors."""
    from zoo.hub.validation import CheckpointError

    widths = list(config.get("block_out_channels") or []) + [config.get("norm_num_groups") or 1]
    counts = [len(config.get("block_out_channels") or []), config.get("layers_per_block") or 1]
    size = config.get("sample_size") or 0
    sizes = list(size) if isinstance(size, (list, tuple)) else [size]
    for item, values, bound in (("block_out_channels / norm_num_groups", widths, header.largest_dim),
                                ("blocks / layers_per_block", counts, len(header.tensors)),
                                ("sample_size", sizes, MAX_SAMPLE_SIZE)):
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= bound for v in values):
            raise CheckpointError(source, item, f"positive integers up to {bound}", repr(values)[:100])


def build_unet(config: dict, weights: Path) -> nn.Module:
    """diffusers' UNet2DModel from the config keys it accepts, weights from safetensors,
    validated as this project's checkpoints are (zoo.hub.validation): sizes against the
    file, names / shapes / dtypes against the model built on the meta device, finite values."""
    from diffusers import UNet2DModel
    from safetensors.torch import load_file

    from zoo.hub.validation import Header, build_on_meta, check_finite, check_tensors, read_header

    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in config.items() if k in accepted}
    header, source = read_header(weights), Path(weights).parent / "config.json"
    _check_unet_sizes(kwargs, header, source)
    meta = build_on_meta(lambda: UNet2DModel.from_config(kwargs), source, "unet config")
    expected = meta.state_dict().keys()
    renamed = rename_legacy_attention(header.tensors, expected)
    check_tensors(Header(header.path, renamed, header.metadata), meta)
    state = {k: v.float() for k, v in rename_legacy_attention(load_file(str(weights)), expected).items()}
    check_finite(state, weights)
    unet = UNet2DModel.from_config(kwargs)
    unet.load_state_dict(state, strict=True)
    return unet.eval()


def read_configs(folder: Path, layout: DiffusersLayout):
    """(unet config, scheduler config) from the folder, every class checked."""
    if layout.model_index is not None and layout.layout == "pipeline":
        check_model_index(_read_json(folder / layout.model_index))
    unet_config = _read_json(folder / layout.unet_config)
    scheduler_config = _read_json(folder / layout.scheduler_config)
    check_unet_config(unet_config)
    check_scheduler_config(scheduler_config)
    return unet_config, scheduler_config


def _image_shape(config: dict) -> tuple:
    size = config.get("sample_size")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return (config.get("in_channels", 3), h, w)


def load_pipeline(folder: Path, device: str | None = None):
    """Registry builder: a diffusers-format DDPM folder -> PixelPipeline, on `device` (default
    the CPU: like zoo.pipelines.pixels' pipelines, a sampling call moves it to the GPU when there is one)."""
    from zoo.pipelines.pixels import PixelPipeline

    folder = Path(folder)
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    layout = layout_files(names)
    unet_config, scheduler_config = read_configs(folder, layout)
    schedule = DiscreteSchedule.from_scheduler_config(scheduler_config)
    unet = build_unet(unet_config, folder / layout.unet_weights)
    param, clip = parameterisation(scheduler_config), clip_x0(scheduler_config)
    denoiser = Denoiser(DiscreteTimeUNet(unet, schedule.T), schedule, param, 1.0, clip)
    denoiser = denoiser.to(device or "cpu").eval()
    description = _describe(layout, unet, schedule, scheduler_config, clip)
    return PixelPipeline(denoiser, schedule, _image_shape(unet_config), description)


def _describe(layout: DiffusersLayout, unet: nn.Module, schedule: DiscreteSchedule, scheduler_config: dict,
              clip: float | None) -> str:
    n = sum(p.numel() for p in unet.parameters())
    clipping = f", x0_hat clipped to [-{clip:g}, {clip:g}]" if clip is not None else ""
    return (f"diffusers UNet2DModel ({layout.layout} layout, {scheduler_config['_class_name']}), "
            f"{n / 1e6:.1f}M parameters, {schedule.name} schedule, "
            f"{scheduler_config.get('prediction_type') or 'epsilon'} prediction{clipping}")
