"""Checkpoints laid out like Hugging Face Hub model repos, and where to find them.

A checkpoint folder is exactly what a Hub model repo holds:

    config.json        {"arch": key of zoo.nets.ARCHITECTURES, "net": {...}, "diffusion": {...}, + extra sections}
    model.safetensors  the weights (float32, or fp16/bf16 storage cast back to float32 on load)
    README.md          a model card (huggingface_hub.ModelCard) with YAML metadata and how it was trained
    samples.png        optional sample grid shown in the card

So a bundled folder, a folder in the local HF cache and a fresh Hub download all load
through one function, `load_checkpoint`. `resolve` finds the folder (bundled -> local HF
cache -> Hub) and fails in under two seconds when the Hub cannot be reached, instead of
huggingface_hub's ~23 s of retries. Never pickle: weights are safetensors only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import HfApi, ModelCard, ModelCardData, constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import build_hf_headers
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME = "config.json", "model.safetensors", "README.md", "samples.png"
LIBRARY_NAME = "diffusion-zoo"
PROBE_TIMEOUT = 1.5  # seconds; the whole "is the Hub there?" question must fit in 2 s
_PROBE_CACHE_SECONDS = 60.0


class WeightsNotFound(Exception):
    """No checkpoint in the repository, the local HF cache or the (reachable) Hub."""


# ----------------------------------------------------------------------------- model card

_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ description }}

{% if sample_image %}![samples]({{ sample_image }})

{% endif %}## Training

- **command**: `{{ train_command }}`
- **steps**: {{ steps }}
- **data**: {{ data }}
- **final loss**: {{ final_loss }}
- **wall time**: {{ wall_time }}

Weights are the EMA of the training weights, stored as `model.safetensors`; the
architecture and diffusion settings are in `config.json`. Load with
`zoo.hub.load_checkpoint(folder)` from the diffusion model zoo.
"""


@dataclass
class CardInfo:
    """What the model card says beyond config.json (Hub model card metadata + training facts)."""

    title: str = "Diffusion zoo model"
    description: str = ""
    pipeline_tag: str | None = None  # unconditional-image-generation | text-to-image | None for 2D toys
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    license: str = "mit"
    train_command: str = ""
    steps: int | None = None
    data: str = ""
    final_loss: float | None = None
    wall_time_s: float | None = None


def make_card(card: CardInfo, sample_image: str | None = None) -> ModelCard:
    """Render a Hub model card (YAML front matter via ModelCardData) for `card`."""
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=card.license,
        pipeline_tag=card.pipeline_tag,
        tags=sorted({"diffusion", LIBRARY_NAME, *card.tags}),
        datasets=list(card.datasets) or None,
    )
    return ModelCard.from_template(
        data,
        template_str=_CARD_TEMPLATE,
        title=card.title,
        description=card.description,
        sample_image=sample_image,
        train_command=card.train_command or "n/a",
        steps=card.steps if card.steps is not None else "n/a",
        data=card.data or "n/a",
        final_loss=f"{card.final_loss:.5g}" if card.final_loss is not None else "n/a",
        wall_time=f"{card.wall_time_s:.1f} s" if card.wall_time_s is not None else "n/a",
    )


def read_card(folder) -> ModelCard | None:
    """The model card of a checkpoint folder, or None when it has none."""
    path = Path(folder) / CARD_NAME
    return ModelCard.load(path) if path.is_file() else None


# ----------------------------------------------------------------------------- save / load


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


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder `tmp` over `target`.

    rename(2) cannot replace a non-empty directory, so the old one is first renamed
    aside; a crash between the two renames leaves `<target>.old`, which
    `recover_dir` puts back. Both folders are siblings, so each rename is atomic."""
    tmp, target = Path(tmp), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> None:
    """Undo a crash between the two renames of `replace_dir`."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        os.replace(old, target)


def atomic_write_text(path, text: str) -> None:
    """Write a file via a temp sibling + os.replace: readers see the old or the new text."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)


def temp_sibling(target: Path) -> Path:
    """A fresh, empty temp folder next to `target` (same file system, so rename is atomic)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    return tmp


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


# ----------------------------------------------------------------------------- resolution


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub.constants froze it at import time)."""
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return env or constants.is_offline_mode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx answer already proves the file exists


_probe_cache: dict = {}


def _probe_once(url: str, result: list) -> None:
    # build_hf_headers adds the token (HF_TOKEN / saved login) so private repos probe as "ok"
    request = urllib.request.Request(url, method="HEAD", headers=build_hf_headers())
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=PROBE_TIMEOUT) as resp:
            result.append("ok" if resp.status < 400 else "missing")
    except urllib.error.HTTPError as err:
        result.append("ok" if err.code < 400 else "missing")
    except Exception:  # refused, DNS failure, timeout, TLS...: the Hub is not reachable
        result.append("unreachable")


def probe_hub(repo_id: str, endpoint: str | None = None) -> str:
    """"ok" | "missing" | "unreachable" for repo_id's config.json, within PROBE_TIMEOUT.

    The request runs in a daemon thread with a hard deadline because a DNS lookup is not
    covered by socket timeouts. Results are cached briefly so a table of many entries
    costs one probe when offline."""
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    key = (endpoint, repo_id)
    cached = _probe_cache.get(key) or _probe_cache.get((endpoint, None))
    if cached and time.monotonic() - cached[1] < _PROBE_CACHE_SECONDS:
        return cached[0]
    result: list = []
    url = f"{endpoint}/{repo_id}/resolve/main/{CONFIG_NAME}"
    thread = threading.Thread(target=_probe_once, args=(url, result), daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT + 0.1)
    status = result[0] if result else "unreachable"
    _probe_cache[(endpoint, None) if status == "unreachable" else key] = (status, time.monotonic())
    return status


def cached_snapshot(repo_id: str | None, cache_dir=None) -> Path | None:
    """The local HF cache's snapshot of repo_id (no network), or None."""
    if not repo_id:
        return None
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    return path if is_checkpoint(path) else None


def locate(repo_id: str | None, bundled_path=None, cache_dir=None, probe: bool = True):
    """(folder or None, source) with source "bundled" | "cached" | "hub" | "missing".

    For "hub" the folder is None: the weights exist on the Hub but are not downloaded."""
    if bundled_path is not None and is_checkpoint(bundled_path):
        return Path(bundled_path), "bundled"
    cached = cached_snapshot(repo_id, cache_dir)
    if cached is not None:
        return cached, "cached"
    if probe and repo_id and not hub_offline() and probe_hub(repo_id) == "ok":
        return None, "hub"
    return None, "missing"


def _not_found(repo_id, bundled_path, train_command, why: str) -> WeightsNotFound:
    lines = [f"No weights for {repo_id or bundled_path}: {why}."]
    if train_command:
        lines.append(f"Train them with:  {train_command}")
    if repo_id:
        lines.append(f"Or go online (unset HF_HUB_OFFLINE) so {repo_id} can be downloaded from {hub_endpoint()}.")
    return WeightsNotFound("\n".join(lines))


def resolve(repo_id: str | None, bundled_path=None, train_command: str = "", cache_dir=None) -> Path:
    """Checkpoint folder: bundled folder -> local HF cache -> Hub download (snapshot_download).

    Raises WeightsNotFound within about 2 s when offline, the Hub is unreachable, or the
    repo does not exist, with a message saying how to get the weights."""
    folder, source = locate(repo_id, bundled_path, cache_dir, probe=False)
    if folder is not None:
        return folder
    if not repo_id:
        raise _not_found(repo_id, bundled_path, train_command, "nothing bundled and no Hub repo")
    if hub_offline():
        raise _not_found(repo_id, bundled_path, train_command, "not bundled, not cached, and HF_HUB_OFFLINE is set")
    status = probe_hub(repo_id)
    if status != "ok":
        why = "the Hub is unreachable" if status == "unreachable" else "the Hub repo has no config.json"
        raise _not_found(repo_id, bundled_path, train_command, f"not bundled, not cached, and {why} ({hub_endpoint()})")
    # only the checkpoint's own files: a repo may hold anything else (large, or not ours to load)
    path = Path(snapshot_download(repo_id, cache_dir=cache_dir, endpoint=hub_endpoint(), etag_timeout=PROBE_TIMEOUT,
                                  allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME]))
    if not is_checkpoint(path):
        raise _not_found(repo_id, bundled_path, train_command, f"the download {path} has no {WEIGHTS_NAME}")
    return path


# ----------------------------------------------------------------------------- push


def push_folder(folder, repo_id: str, token: str | None = None, private: bool | None = None,
                commit_message: str = "Upload diffusion-zoo checkpoint") -> str:
    """create_repo(exist_ok=True) + upload_folder. token=None uses HF_TOKEN or the saved
    login (huggingface_hub's own lookup); the token is never printed or logged.
    Returns the commit URL."""
    api = HfApi(endpoint=hub_endpoint(), token=token)
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                             commit_message=commit_message)
    return info.commit_url
