"""Atomic file-system writes: a reader (or a crash) sees the old folder or the new one, never half."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


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


def _temp_name(target: Path) -> Path:
    # the pid tells clean_orphans whether the writer is still alive
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def atomic_write_text(path, text: str) -> None:
    """Write a file via a temp sibling + os.replace: readers see the old or the new text."""
    path = Path(path)
    tmp = _temp_name(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def temp_sibling(target: Path) -> Path:
    """A fresh, empty temp folder next to `target` (same file system, so rename is atomic)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    tmp.mkdir()
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def clean_orphans(target: Path) -> list[Path]:
    """Remove the temp siblings of `target` left by writers that were killed mid-write
    (their pid is gone); a live writer's temp folder is left alone. Returns what it removed."""
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.glob(f".{target.name}.tmp-*"):
        pid = path.name[len(f".{target.name}.tmp-"):].split("-")[0]
        if pid.isdigit() and (int(pid) == os.getpid() or _pid_alive(int(pid))):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed
