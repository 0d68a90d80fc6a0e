"""Honest resume: a run records the flags that define it (all but the ones allowed to
change), the checkpoint keeps them, and `--resume` with another value of any of them stops
with one message listing each change, before any weights are loaded (trainers.common)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

from trainers.published import looks_like_path, public_path


class RunChanged(SystemExit):
    """--resume with flags that change what is trained: exits with the message, no traceback."""


def run_flags(args: argparse.Namespace, run_dir, may_change) -> dict:
    """The run-defining flags as JSON values. A path is kept as its public form plus a digest
    of where it resolves: another file under the same name is a change too, and the path
    itself never enters the run folder."""
    flags = {}
    for name, value in sorted(vars(args).items()):
        if name in may_change:
            continue
        if isinstance(value, (str, os.PathLike)) and str(value) and (looks_like_path(str(value))
                                                                     or Path(value).exists()):
            where = str(Path(value).expanduser().resolve()).encode()
            value = {"path": public_path(value, run_dir), "at": hashlib.sha256(where).hexdigest()[:16]}
        flags[name] = value
    return json.loads(json.dumps(flags, default=str))  # tuples as lists: as state.json reads back


def _read_state(ckpt: Path) -> dict | None:
    # OUT/checkpoint.old holds it after a crash between replace_dir's renames (load_state recovers it)
    for folder in (ckpt, ckpt.with_name(ckpt.name + ".old")):
        if (folder / "state.json").is_file():
            return json.loads((folder / "state.json").read_text())
    return None


def check_resume(cfg) -> None:
    """RunChanged when a run-defining flag differs from the checkpoint's record. Flags the
    record lacks (added to a trainer since) are not compared; a checkpoint without a record
    (older code) resumes unchecked, with a note from load_state."""
    ckpt = Path(cfg.out) / "checkpoint"
    old = (_read_state(ckpt) or {}).get("run")
    if not old:
        return
    changed = [(f"--{k.replace('_', '-')}", old[k], cfg.run[k]) for k in sorted(old.keys() & cfg.run.keys())
               if old[k] != cfg.run[k]]
    if changed:
        raise RunChanged(changed_message(public_path(ckpt, cfg.out), changed))


def _shown(value) -> str:
    if isinstance(value, dict) and "path" in value:
        return value["path"]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(empty)"
    return "unset" if value is None else str(value)


def changed_message(where: str, changed: list) -> str:
    lines = [f"--resume refused: the checkpoint in {where} was trained with other settings, and continuing it with "
             "these would release weights whose card and config describe a run that never happened:"]
    for label, old, new in changed:
        before, after = _shown(old), _shown(new)
        lines.append(f"  {label}: {before} -> {after}{' (another file)' if before == after else ''}")
    lines.append("To continue that run, give the old values; to train with the new ones, start a new run with "
                 "another --out.")
    return "\n".join(lines)
