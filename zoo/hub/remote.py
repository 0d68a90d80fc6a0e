"""Where a checkpoint comes from: bundled folder -> local HF cache -> the Hub; and pushing to it."""
from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import build_hf_headers

from zoo.hub.card import CARD_NAME
from zoo.hub.checkpoint import CONFIG_NAME, SAMPLES_NAME, WEIGHTS_NAME, is_checkpoint

PROBE_TIMEOUT = 1.5  # seconds; the whole "is the Hub there?" question must fit in 2 s
_PROBE_CACHE_SECONDS = 60.0


class WeightsNotFound(Exception):
    """No checkpoint in the repository, the local HF cache or the (reachable) Hub."""


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
