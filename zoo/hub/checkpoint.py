"""The checkpoint folder: config.json + model.safetensors + README.md (+ samples.png), exactly
what a Hub model repo holds, written atomically and read back strictly: every file is
untrusted input and goes through zoo.hub.validation. Never pickle."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from zoo.hub.card import CARD_NAME, CardInfo, make_card
from zoo.hub.files import atomic_write_text, replace_dir, temp_sibling
from zoo.hub.validation import (CHECKSUM_KEY, CheckpointError, build_on_meta, check_config, load_validated_weights,
                                read_header, read_json, tensor_checksum)

CONFIG_NAME, WEIGHTS_NAME, SAMPLES_NAME = "config.json", "model.safetensors", "samples.png"


def _as_dict(config) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def _tensors_for_saving(net: torch.nn.Module, dtype: torch.dtype) -> dict:
    # clone: safetensors refuses tensors that share storage (tied weights), and the
    # cast must not touch the live module.
    out = {}
    for key, value in net.state_dict().items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.contiguous().clone()
    return out


def save_checkpoint(
    folder,
    net: torch.nn.Module,
    arch: str,
    net_config,
    diffusion_config,
    extra: dict | None = None,
    card: CardInfo | None = None,
    sample_image=None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a Hub-shaped checkpoint folder atomically (temp sibling, then rename over).

    `net_config` / `diffusion_config` are dataclasses or dicts; `extra` adds sections to
    config.json (e.g. "data", "training"); `sample_image` is a PIL image for the card."""
    folder = Path(folder)
    config = {"arch": arch, "net": _as_dict(net_config), "diffusion": _as_dict(diffusion_config)}
    for key, value in (extra or {}).items():
        if key in config:
            raise ValueError(f"extra section {key!r} would overwrite a core config.json field")
        config[key] = value
    tmp = temp_sibling(folder)
    try:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tensors = _tensors_for_saving(net, dtype)
        metadata = {"format": "pt", CHECKSUM_KEY: tensor_checksum(tensors)}  # load verifies it
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=metadata)
        os.chmod(tmp / WEIGHTS_NAME, 0o644)  # safetensors creates 0600; released weights are public
        if sample_image is not None:
            sample_image.save(tmp / SAMPLES_NAME)
        image = SAMPLES_NAME if sample_image is not None else None
        make_card(card or CardInfo(), sample_image=image).save(tmp / CARD_NAME)
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_config(folder) -> dict:
    """config.json of a checkpoint folder: at most MAX_CONFIG_BYTES of UTF-8 JSON with the
    'arch', 'net' and 'diffusion' sections; CheckpointError (a ValueError) otherwise."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint config not found: {path}")
    config = read_json(path)
    for key, kind in (("arch", str), ("net", dict), ("diffusion", dict)):
        if key not in config:
            raise CheckpointError(path, f"section {key!r}", "present in a checkpoint config", "missing")
        if not isinstance(config[key], kind):
            raise CheckpointError(path, f"section {key!r}", f"a JSON {'string' if kind is str else 'object'}",
                                  type(config[key]).__name__)
    _check_diffusion(config["diffusion"], path)
    _check_sampling(config, path)
    return config


def _check_sampling(config: dict, path: Path) -> None:
    """The optional 'sampling' section (stored optimized times): known fields, and times that
    are finite, strictly decreasing from t_max and within the schedule's [t_min, t_max]."""
    from zoo.diffusion.config import optimized_times_of

    try:
        optimized_times_of(config)
    except ValueError as err:
        raise CheckpointError(path, "sampling", "optimized times a sampler can use", str(err)[:300]) from None


def _check_diffusion(section: dict, path: Path) -> None:
    """The 'diffusion' section names a schedule and a parameterisation the zoo has, and a
    finite positive sigma_data: anything else would surface later as an internal error."""
    from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, T_SAMPLINGS, DiffusionConfig

    fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
    unknown = sorted(set(section) - fields)
    if unknown:
        raise CheckpointError(path, f"diffusion.{unknown[0]}", f"only the fields {sorted(fields)}", "an unknown field")
    for key, allowed in (("schedule", SCHEDULES), ("parameterisation", PARAMETERISATIONS), ("t_sampling", T_SAMPLINGS)):
        if key in section and section[key] not in allowed:
            raise CheckpointError(path, f"diffusion.{key}", f"one of {sorted(allowed)}", repr(section[key])[:80])
    sigma = section.get("sigma_data", 1.0)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < 1e6:
        raise CheckpointError(path, "diffusion.sigma_data", "a finite number > 0", repr(sigma)[:80])


def _check_distill(section, net: dict, header, path: Path) -> None:
    """The 'distill' section: fields of DistillConfig in range, step counts a sampler can use
    (distinct, ascending, at least 1; some unless the student is a reflowed flow), a w range
    low <= high, and a guidance input exactly when the net has one."""
    from zoo.diffusion.distill import DistillConfig

    check_config(DistillConfig, section, header, path, "distill")
    steps = list(section.get("steps", []))
    if any(s < 1 for s in steps) or steps != sorted(set(steps)):
        raise CheckpointError(path, "distill.steps", "distinct step counts >= 1 in ascending order", repr(steps)[:80])
    if not steps and section.get("method", "progressive") != "reflow":
        raise CheckpointError(path, "distill.steps", "the step counts the student was distilled for", "none")
    if section.get("guidance_min", 0.0) > section.get("guidance_max", 0.0):
        raise CheckpointError(path, "distill.guidance_min", "a w range with guidance_min <= guidance_max",
                              f"[{section.get('guidance_min')}, {section.get('guidance_max')}]")
    if bool(section.get("guidance_input", False)) != bool(net.get("guidance_input", False)):
        raise CheckpointError(path, "distill.guidance_input", "the same as net.guidance_input (whether the "
                              "network takes w)", repr(section.get("guidance_input", False)))


def load_weights(path, expected_module: torch.nn.Module | None = None) -> dict:
    """Tensors of a safetensors file, float ones cast to float32, validated (see
    validation.load_validated_weights); a corrupt, truncated, damaged or non-finite file
    raises CheckpointError naming the file."""
    return load_validated_weights(path, expected_module)


def _net_class(config: dict, source: Path):
    from zoo.nets import ARCHITECTURES, net_class  # nets import lazily: `import zoo.hub` stays light

    if config["arch"] not in ARCHITECTURES:
        raise CheckpointError(source, "arch", f"one of {sorted(ARCHITECTURES)}", repr(config["arch"][:80]))
    return net_class(config["arch"])


def load_checkpoint(folder, device="cpu"):
    """(net in eval mode, config dict) from a checkpoint folder, every step validated before
    the next costs anything: config -> weights header -> config ranges (bounded by the
    header's sizes) -> the net on the meta device against the header's names, shapes and
    dtypes -> the data (checksum, finite) -> the real net."""
    from zoo.nets import build_net

    folder = Path(folder)
    config = load_config(folder)
    header = read_header(folder / WEIGHTS_NAME)
    cls = _net_class(config, folder / CONFIG_NAME)
    check_config(cls.Config, config["net"], header, folder / CONFIG_NAME)
    if "distill" in config:  # a distilled student (zoo.diffusion.distill, trainers/distill.py)
        _check_distill(config["distill"], config["net"], header, folder / CONFIG_NAME)
    expected = build_on_meta(lambda: build_net(config["arch"], config["net"]), folder / CONFIG_NAME)
    tensors = load_validated_weights(header.path, expected, header)
    net = build_net(config["arch"], config["net"])
    net.load_state_dict(tensors, strict=True)
    return net.to(device).eval(), config


def record_evaluation(folder, evaluation: dict, text: str, source: str) -> None:
    """Measured numbers into a checkpoint: config.json gets an 'eval' section (the UI reads
    it) and the model card an '## Evaluation' section, replacing an earlier one; each file
    is written atomically. `source` names what measured them (a bench script or trainer)."""
    folder = Path(folder)
    config = load_config(folder)
    config["eval"] = evaluation
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    card = (folder / CARD_NAME).read_text().split("\n## Evaluation")[0].rstrip()
    atomic_write_text(folder / CARD_NAME, card + f"\n\n## Evaluation ({source})\n\n" + text)


def training_steps(config: dict) -> int | None:
    """The optimizer steps that made a checkpoint: its run's plus those of the checkpoint it
    was fine-tuned from (training.steps_before, trainers' --init-from); None when unrecorded."""
    training = config.get("training", {})
    steps, before = training.get("steps"), training.get("steps_before", 0)
    if not isinstance(steps, int) or isinstance(steps, bool):
        return None
    return steps + (before if isinstance(before, int) and not isinstance(before, bool) and before > 0 else 0)


def weights_sha256(folder) -> str:
    """SHA-256 of a checkpoint's weights file: pins a component (a DiT's VAE) to exact weights."""
    digest = hashlib.sha256()
    with open(Path(folder) / WEIGHTS_NAME, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_checkpoint(folder) -> bool:
    folder = Path(folder)
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()
