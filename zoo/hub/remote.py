"""Where a checkpoint comes from: bundled folder -> local HF cache -> the Hub; and pushing to it.

Hub I/O is huggingface_hub's (`model_info`, `hf_hub_download`, `upload_folder`); this
module bounds every call in time (zoo.hub.network), checks what a repo holds before it
downloads anything (names, sizes: only safetensors weights, at most MAX_DOWNLOAD_BYTES),
downloads the config files before the weights (so a repo the zoo cannot load costs no
weight download), verifies each downloaded weight file against the Hub's sha256, and
turns every failure into a `HubError` whose message says what to do.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                    OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.utils import validate_repo_id

from zoo.hub.card import CARD_NAME
from zoo.hub.checkpoint import CONFIG_NAME, SAMPLES_NAME, WEIGHTS_NAME, load_config
from zoo.hub.network import BUDGET, HubTimeout, bounded

MAX_DOWNLOAD_BYTES = 2 * 1024**3  # google/ddpm-church-256 is 455 MB; a 10 GB repo is a mistake here
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")
_PROBE_CACHE_SECONDS = 60.0


class HubError(Exception):
    """The Hub (or the cache) cannot give this repo; the message says why and what to do."""


class WeightsNotFound(HubError):
    """No checkpoint in the repository, the local HF cache or the (reachable) Hub."""


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub.constants froze it at import time)."""
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return env or constants.is_offline_mode()


def check_repo_id(repo_id) -> str:
    """A syntactically valid Hub model repo id ("owner/name"), or a ValueError."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"not a Hub repo id: {repo_id!r} (expected 'owner/name')")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"not a Hub repo id: {repo_id!r} ({err})") from None
    return repo_id


def check_revision(revision) -> str:
    """A branch, tag or commit name: no path tricks, no whitespace."""
    if revision is None:
        return "main"
    if (not isinstance(revision, str) or not 1 <= len(revision) <= 100 or ".." in revision
            or any(c.isspace() or c in "\\:?*[~^" for c in revision) or revision.startswith("/")):
        raise ValueError(f"not a revision (branch, tag or commit): {revision!r}")
    return revision


# ----------------------------------------------------------------------------- metadata


@dataclass
class FileMeta:
    size: int | None
    sha256: str | None  # the Hub's LFS sha256 (weights); None for small git files


@dataclass
class RepoMetadata:
    """What the Hub says a repo holds at one revision (names, sizes, sha256s), before any download."""

    repo_id: str
    revision: str
    sha: str
    files: dict = field(default_factory=dict)  # path -> FileMeta

    def size(self, names) -> int:
        return sum(self.files[n].size or 0 for n in names if n in self.files)


def _where(repo_id: str) -> str:
    return f"{repo_id} on {hub_endpoint()}"


def _hub_error(err: Exception, repo_id: str, revision: str) -> HubError:
    """One readable HubError for every way a Hub call fails."""
    if isinstance(err, HubError):
        return err
    if isinstance(err, GatedRepoError):
        return HubError(f"{_where(repo_id)} is gated: accept its terms on the Hub and set HF_TOKEN")
    if isinstance(err, RepositoryNotFoundError):
        return HubError(f"{_where(repo_id)} does not exist, or it is private: check the id, or set HF_TOKEN to a "
                        "token that may read it")
    if isinstance(err, RevisionNotFoundError):
        return HubError(f"{_where(repo_id)} has no revision {revision!r}")
    if isinstance(err, HubTimeout) or type(err).__name__.endswith("Timeout"):  # ours, or httpx2's Read/ConnectTimeout
        return HubError(f"the Hub did not answer in time for {_where(repo_id)} ({err or type(err).__name__}); try "
                        "again later")
    if isinstance(err, (OfflineModeIsEnabled,)):
        return HubError(f"{repo_id} is not in the local cache and HF_HUB_OFFLINE is set")
    if isinstance(err, HfHubHTTPError):
        status = getattr(err.response, "status_code", "?")
        return HubError(f"the Hub answered HTTP {status} for {_where(repo_id)}; try again later")
    if isinstance(err, (ValueError, KeyError, TypeError)):  # JSON of another shape, or not JSON at all
        return HubError(f"{hub_endpoint()} is not a Hugging Face Hub (its answer for {repo_id} is not the Hub API's "
                        "JSON: a captive portal or proxy page?)")
    return HubError(f"the Hub is unreachable for {_where(repo_id)} ({type(err).__name__}: {err})")


def _metadata_call(repo_id: str, revision: str) -> RepoMetadata:
    info = HfApi(endpoint=hub_endpoint()).model_info(repo_id, revision=revision, files_metadata=True)
    if not isinstance(info.sha, str) or info.siblings is None:
        raise ValueError("no commit sha or file list")
    files = {s.rfilename: FileMeta(s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings}
    return RepoMetadata(repo_id, revision, info.sha, files)


def metadata(repo_id: str, revision: str | None = None, seconds: float | None = None) -> RepoMetadata:
    """The repo's file list with sizes and sha256s (one bounded API call); HubError otherwise."""
    repo_id, revision = check_repo_id(repo_id), check_revision(revision)
    if hub_offline():
        raise WeightsNotFound(f"{repo_id} is not in the local cache and HF_HUB_OFFLINE is set")
    try:
        return bounded(lambda: _metadata_call(repo_id, revision), seconds or BUDGET.metadata, f"metadata of {repo_id}")
    except Exception as err:  # every failure becomes one readable HubError
        raise _hub_error(err, repo_id, revision) from err


_probe_cache: dict = {}


def probe_hub(repo_id: str) -> str:
    """"ok" | "missing" | "unreachable" for repo_id, within BUDGET.probe; never downloads.
    The Hub is recognised by its API's JSON answer, not by any HTTP status. An unreachable
    Hub is remembered for all repos for a minute, so a table of many entries costs one probe."""
    endpoint = hub_endpoint()
    for key in ((endpoint, repo_id), (endpoint, None)):
        cached = _probe_cache.get(key)
        if cached and time.monotonic() - cached[1] < _PROBE_CACHE_SECONDS:
            return cached[0]
    try:
        metadata(repo_id, seconds=BUDGET.probe)
        status = "ok"
    except HubError as err:
        status = "missing" if isinstance(err.__cause__, RepositoryNotFoundError) else "unreachable"
    _probe_cache[(endpoint, None) if status == "unreachable" else (endpoint, repo_id)] = (status, time.monotonic())
    return status


# ----------------------------------------------------------------------------- fetching


@dataclass
class Plan:
    """What to download from a repo, in order: configs, then `check(folder)` on them
    (before anything else is fetched), then weights (safetensors only); optional files
    (card, samples) ride along with the configs when the repo has them."""

    configs: list
    weights: list
    optional: list = field(default_factory=list)
    check: Callable[[Path], object] = load_config


def checkpoint_plan(names, check: Callable[[Path], object] = load_config) -> Plan:
    """The plan for a checkpoint of this project: config.json + model.safetensors."""
    names = set(names)
    if CONFIG_NAME not in names:
        raise ValueError(f"the repo has no {CONFIG_NAME}, so it is not a diffusion-zoo checkpoint")
    if WEIGHTS_NAME not in names:
        refuse_pickles(names)
        raise ValueError(f"the repo has no {WEIGHTS_NAME}")
    return Plan([CONFIG_NAME], [WEIGHTS_NAME], [CARD_NAME, SAMPLES_NAME], check)


def refuse_pickles(names) -> None:
    """A repo whose weights are pickles only is refused: unpickling runs arbitrary code."""
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise ValueError(f"the repo's weights are pickle files only ({', '.join(pickles[:3])}); the zoo reads "
                         "safetensors only, because loading a pickle can run arbitrary code. Ask the author for a "
                         ".safetensors copy")


def _snapshot_files(folder: Path) -> list:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def cached_snapshot(repo_id: str | None, revision: str | None = None, plan_for: Callable = checkpoint_plan,
                    cache_dir=None) -> Path | None:
    """The local HF cache's snapshot of repo_id when it holds everything its plan needs
    (no network). A download that stalled half-way is not complete, so it is not found."""
    if not repo_id:
        return None
    try:
        folder = Path(snapshot_download(repo_id, revision=check_revision(revision), local_files_only=True,
                                        cache_dir=cache_dir))
        plan = plan_for(_snapshot_files(folder))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    return folder if all((folder / f).is_file() for f in plan.configs + plan.weights) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _discard(path: Path) -> None:
    """Remove a bad download from the cache (snapshot link and blob) so it never looks complete."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def _download(meta: RepoMetadata, names: list, seconds: float, cache_dir=None) -> Path:
    """hf_hub_download each file under one deadline; weights checked against the Hub's sha256."""
    def run():
        return [Path(hf_hub_download(meta.repo_id, name, revision=meta.revision, cache_dir=cache_dir,
                                     endpoint=hub_endpoint())) for name in names]

    try:
        paths = bounded(run, seconds, f"download of {meta.repo_id}")
    except Exception as err:
        raise _hub_error(err, meta.repo_id, meta.revision) from err
    for name, path in zip(names, paths):
        expected = meta.files.get(name, FileMeta(None, None)).sha256
        if expected and _sha256(path) != expected:
            _discard(path)
            raise HubError(f"{name} of {_where(meta.repo_id)} does not match the Hub's sha256 (corrupted in transit?); "
                           "it was removed from the cache, try again")
    folders = {p.parents[len(Path(n).parts) - 1] for n, p in zip(names, paths)}
    if len(folders) > 1:
        raise HubError(f"{meta.repo_id} changed while it was downloaded; try again")
    return folders.pop()


def check_size(meta: RepoMetadata, plan: Plan, limit: int = MAX_DOWNLOAD_BYTES) -> int:
    size = meta.size(plan.configs + plan.weights)
    if size > limit:
        raise HubError(f"{meta.repo_id} needs {size / 1e9:.1f} GB of weights; the zoo downloads at most "
                       f"{limit / 1e9:.1f} GB")
    return size


def fetch(repo_id: str, revision: str | None = None, plan_for: Callable = checkpoint_plan, cache_dir=None) -> Path:
    """The snapshot folder of a repo, complete per `plan_for(file names)`: from the cache,
    else from the Hub in two stages (configs and the plan's check, then weights)."""
    folder = cached_snapshot(repo_id, revision, plan_for, cache_dir)
    if folder is not None:
        return folder
    meta = metadata(repo_id, revision)
    try:
        plan = plan_for(sorted(meta.files))
    except ValueError as err:
        raise HubError(f"{repo_id}: {err}") from None
    size = check_size(meta, plan)
    folder = _download(meta, plan.configs + [f for f in plan.optional if f in meta.files], BUDGET.metadata, cache_dir)
    plan.check(folder)
    return _download(meta, plan.weights, BUDGET.download(size), cache_dir)


def locate(repo_id: str | None, bundled_path=None, cache_dir=None, probe: bool = True, plan_for=checkpoint_plan):
    """(folder or None, source) with source "bundled" | "cached" | "hub" | "missing".

    For "hub" the folder is None: the weights exist on the Hub but are not downloaded."""
    from zoo.hub.checkpoint import is_checkpoint

    if bundled_path is not None and is_checkpoint(bundled_path):
        return Path(bundled_path), "bundled"
    cached = cached_snapshot(repo_id, None, plan_for, cache_dir)
    if cached is not None:
        return cached, "cached"
    if probe and repo_id and not hub_offline() and probe_hub(repo_id) == "ok":
        return None, "hub"
    return None, "missing"


def _not_found(repo_id, bundled_path, train_command, why: str) -> WeightsNotFound:
    lines = [f"No weights for {repo_id or bundled_path}: {why}."]
    if train_command:
        lines.append(f"Train them with:  {train_command}")
    if repo_id and hub_offline():
        lines.append(f"Or go online (unset HF_HUB_OFFLINE) so {repo_id} can be downloaded from {hub_endpoint()}.")
    return WeightsNotFound("\n".join(lines))


def resolve(repo_id: str | None, bundled_path=None, train_command: str = "", cache_dir=None,
            revision: str | None = None, plan_for: Callable = checkpoint_plan) -> Path:
    """Checkpoint folder: bundled folder -> local HF cache -> Hub download (`fetch`, within
    the budgets of zoo.hub.network); WeightsNotFound with a message saying how to get the weights."""
    from zoo.hub.checkpoint import is_checkpoint

    if bundled_path is not None and is_checkpoint(bundled_path):
        return Path(bundled_path)
    if not repo_id:
        raise _not_found(repo_id, bundled_path, train_command, "nothing bundled and no Hub repo")
    try:
        return fetch(repo_id, revision, plan_for, cache_dir)
    except HubError as err:
        raise _not_found(repo_id, bundled_path, train_command, str(err)) from None


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
