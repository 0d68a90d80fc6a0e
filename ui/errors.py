"""Bad input becomes a readable message in the tab, never a crash or a stack trace.

A handler names the output that shows its messages (`status`) and how many outputs it has:
a refused request then writes its reason there and leaves every other output as it is
(gr.skip()), so plots and images already on screen stay. Messages live in the tab, not
in toasts that pile up and follow the visitor to other tabs. A refused input is one log
line; an unexpected error is logged with its traceback for the host.
"""
import functools
import inspect
import logging
import math

import gradio as gr

from zoo.hub import HubError

log = logging.getLogger(__name__)
USER_ERRORS = (ValueError, HubError, FileNotFoundError)  # HubError covers WeightsNotFound


def message(err: Exception, where: str) -> str:
    """The visitor's message for a failure in handler `where` (logged once here)."""
    if isinstance(err, USER_ERRORS):
        log.info("refused %s: %s", where, str(err).splitlines()[0][:300])
        return f"⚠ {err}"
    log.exception("unexpected error in %s", where)
    return f"⚠ Internal error ({type(err).__name__}); the server is still running. Details are in the log."


def friendly(fn=None, *, status: int = 0, outputs: int = 1):
    """Wrap an event handler (plain or generator) whose output number `status` (of
    `outputs`) is a Markdown message area; see the module docstring."""
    if fn is None:
        return functools.partial(friendly, status=status, outputs=outputs)

    def report(err):
        values = [gr.skip()] * outputs
        values[status] = message(err, fn.__name__)
        return values[0] if outputs == 1 else tuple(values)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # every failure must reach the user as a message
                yield report(err)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            return report(err)
    return wrapper


def as_number(value, name: str) -> float:
    """A number from the UI or the API: floats, ints, and numeric strings; nothing else."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def as_int(value, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]: 2.5 is refused, not rounded (the same rule everywhere)."""
    number = as_number(value, name)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {int(number)}")
    return int(number)


def as_float(value, name: str, lo: float, hi: float) -> float:
    number = as_number(value, name)
    if not lo <= number <= hi:
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return number
