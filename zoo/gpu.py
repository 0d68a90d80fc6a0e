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
