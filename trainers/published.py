"""What a run publishes about itself (model cards, config.json, logs, messages): the
command that trained it, local paths shown without any folder above the working directory
or the run, and the Hugging Face token redacted everywhere."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def command_line(module: str | None = None, argv: list[str] | None = None) -> str:
    """The training command for the model card: `python -m module *argv` when a trainer's
    main(argv) was called in-process, else the command that started this process, with a
    trainer script of this repository named as its module (runnable from the root)."""
    if module is not None and argv is not None:
        return shlex.join(["python", "-m", module, *argv])
    script, root = Path(sys.argv[0]).resolve(), Path(__file__).resolve().parents[1]
    if script.suffix == ".py" and script.is_relative_to(root):
        module = ".".join(script.relative_to(root).with_suffix("").parts)
        return shlex.join(["python", "-m", module, *sys.argv[1:]])
    return shlex.join(["python", *sys.argv])


def looks_like_path(text: str) -> bool:
    # a separator or a home / parent reference; a URL is not a local path
    return (os.sep in text or "/" in text or text.startswith(("~", ".."))) and "://" not in text


def _absolute(path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def _inside(path: Path, folder: Path) -> Path | None:
    """`path` relative to `folder` when inside it (as given or through symlinks), else None."""
    for p, f in ((path, folder), (path.resolve(), folder.resolve())):
        if p.is_relative_to(f):
            return p.relative_to(f)
    return None


def public_path(value, run_dir=None) -> str:
    """How a local path appears in published files, logs and messages: relative to the
    working directory when inside it (the recorded command still runs from there), else
    inside the run folder as the run folder's public path + the rest, else its bare name;
    so no folder above them (home, user name, mounts) is ever shown. Names that are not
    paths ('mnist-offline') come back unchanged, and so does a relative 'USER/repo'."""
    text = str(value)
    if not looks_like_path(text):
        return text
    path = _absolute(text)
    rel = _inside(path, Path.cwd())
    if rel is not None:
        return rel.as_posix()
    if run_dir is not None:
        rel = _inside(path, _absolute(run_dir))
        if rel is not None:
            return (Path(public_path(_absolute(run_dir))) / rel).as_posix()
    return path.name or "."


def redact(text: str) -> str:
    """`text` with the Hugging Face token (HF_TOKEN or the saved login) replaced."""
    from huggingface_hub import get_token

    token = get_token()
    return text.replace(token, "<hf-token>") if token else text


def public_command(command: str, run_dir=None) -> str:
    """A command line as the card records it: each path-like argument (`--flag=PATH` too)
    through public_path, the token redacted."""
    words = []
    for word in map(redact, shlex.split(command)):  # per word, so the command stays well quoted
        if word.startswith("-"):
            flag, eq, value = word.partition("=")
            words.append(flag + eq + public_path(value, run_dir) if eq else word)
        else:
            words.append(public_path(word, run_dir))
    return shlex.join(words)
