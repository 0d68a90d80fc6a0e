"""A stand-in for Hugging Face's `spaces` package on a ZeroGPU Space, for the tests: GPU()
records which functions are decorated (at import time, as ZeroGPU needs) and counts the
calls running inside one, generators included, like the real decorator."""
import functools
import inspect

DECORATED: list = []  # (qualified name, duration or callable)
CALLS: list = []      # (qualified name, duration asked for this call)
ACTIVE = [0]          # > 0 while a decorated call runs (threads it starts included)


def _name(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _seconds(duration, args, kwargs):
    return duration(*args, **kwargs) if callable(duration) else duration


def GPU(fn=None, duration=60):  # mirrors spaces.GPU
    if fn is None:
        return functools.partial(GPU, duration=duration)
    DECORATED.append((_name(fn), duration))
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            CALLS.append((_name(fn), _seconds(duration, args, kwargs)))
            ACTIVE[0] += 1
            try:
                yield from fn(*args, **kwargs)
            finally:
                ACTIVE[0] -= 1
        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        CALLS.append((_name(fn), _seconds(duration, args, kwargs)))
        ACTIVE[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            ACTIVE[0] -= 1
    return call
