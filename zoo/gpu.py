"""ZeroGPU support: `@gpu` is `spaces.GPU` on a Hugging Face Space and a no-op elsewhere.

On ZeroGPU Spaces a GPU is attached only while a function decorated with `spaces.GPU`
runs (https://huggingface.co/docs/hub/spaces-zerogpu); the `spaces` package is only
installed there, so everything else gets the plain function.
"""
import functools
import os

import torch


def on_space() -> bool:
    """True when running inside a Hugging Face Space (the Hub sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def _spaces_gpu():
    if not on_space():
        return None
    try:
        import spaces
    except ImportError:
        return None
    return spaces.GPU


def gpu(fn=None, *, duration: int = 60):
    """Decorate a GPU-bound function: `@gpu` or `@gpu(duration=120)` (seconds of GPU per call)."""
    if fn is None:
        return functools.partial(gpu, duration=duration)
    decorator = _spaces_gpu()
    return decorator(duration=duration)(fn) if decorator is not None else fn


def device() -> torch.device:
    """cuda when available, else cpu (on ZeroGPU, call this inside a @gpu function)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def place(*modules) -> torch.device:
    """Move the networks a call needs to `device()` and return it. Pipelines load on the CPU
    and call this at the start of each sampling call: on ZeroGPU the GPU exists only inside
    a @gpu function, so the move must happen there, not at load time. A module already
    there costs nothing. Without a network among them (an exact denoiser is a function of
    CPU tensors) the call runs on the CPU."""
    nets = [m for m in modules if isinstance(m, torch.nn.Module) and next(m.parameters(), None) is not None]
    if not nets:
        return torch.device("cpu")
    target = device()
    for net in nets:
        if next(net.parameters()).device != target:
            net.to(target)
    return target


GPU_SECONDS_FLOOR, GPU_SECONDS_CAP = 20, 300


def sampling_seconds(batch, solver, steps, passes_per_eval: int = 1) -> int:
    """The GPU time to ask ZeroGPU for (`@gpu(duration=...)` callables use it): network
    passes x batch at a conservative rate for the zoo's models (about 10 ms a pass plus
    0.5 ms an image), plus a floor for loading and moving the weights. The values come
    straight from the UI, so anything unreadable gets the floor (the handler itself then
    refuses it)."""
    from zoo.diffusion.solvers import network_passes

    try:
        batch, steps = int(batch), int(steps)
        passes = network_passes(solver, steps, passes_per_eval)
    except (TypeError, ValueError, OverflowError):
        return GPU_SECONDS_FLOOR
    estimate = GPU_SECONDS_FLOOR + passes * (0.01 + 0.0005 * max(batch, 1))
    return int(min(max(estimate, GPU_SECONDS_FLOOR), GPU_SECONDS_CAP))
