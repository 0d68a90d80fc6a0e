"""The checkpoint folder: config.json + model.safetensors + README.md (+ samples.png), exactly
what a Hub model repo holds, written atomically and read back strictly. Never pickle."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo.hub.card import CARD_NAME, CardInfo, make_card
from zoo.hub.files import atomic_write_text, replace_dir, temp_sibling

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
        save_file(_tensors_for_saving(net, dtype), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
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
    """config.json of a checkpoint folder, with a clear error when it is missing or broken."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint config not found: {path}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt checkpoint config {path}: {err}") from err
    for key in ("arch", "net", "diffusion"):
        if key not in config:
            raise ValueError(f"checkpoint config {path} lacks the {key!r} section")
    return config


def load_weights(path) -> dict:
    """Tensors of a safetensors file, cast to float32; corrupt/truncated files raise ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint weights not found: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"corrupt or truncated safetensors file {path}: {err}") from err
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_checkpoint(folder, device="cpu"):
    """(net in eval mode, config dict) from a checkpoint folder; weights loaded strictly."""
    from zoo.nets import build_net  # nets import lazily: `import zoo.hub` stays light

    config = load_config(folder)
    net = build_net(config["arch"], config["net"])
    net.load_state_dict(load_weights(Path(folder) / WEIGHTS_NAME), strict=True)
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
