"""How many CPU threads torch may use, set in one place for the app and the trainers.

torch starts one intra-op thread per core it sees. A server runs several requests at once,
and a free Space's 2 vCPUs are shared with other work: threads x concurrent requests then
oversubscribe the cores, and OpenMP's spinning threads collapse throughput (the toy tab's
2,000-step training took 148-181 s beside a busy process with torch's default threads,
10 s with one). So the cores this process may use are divided among the workers that run
at once, and each worker's torch gets its share, at least one.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


def _cgroup_quota() -> float | None:
    """CPUs granted by a cgroup v2 quota (containers, Spaces), None without one."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(count, int(quota)) if quota else count)


def workers(max_workers: int = 4) -> int:
    """How many heavy requests the app runs at once: one per core, at most `max_workers`
    (more would only split the same cores thinner and hold more memory)."""
    return max(1, min(cores(), max_workers))


def set_threads(concurrent: int = 1) -> int:
    """torch's intra-op threads for `concurrent` workers sharing this process's cores, or
    $ZOO_THREADS, else $OMP_NUM_THREADS, when set (a run placed beside other work by hand);
    returns the number set. Interop threads are one: the zoo's models run one op at a time."""
    override = (os.environ.get("ZOO_THREADS", "").strip() or os.environ.get("OMP_NUM_THREADS", "").strip())
    threads = int(override) if override.isdigit() and int(override) > 0 else max(1, cores() // max(1, concurrent))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # allowed once, before any parallel work: a second call changes nothing
        pass
    return threads
