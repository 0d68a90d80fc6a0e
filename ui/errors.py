"""Bad input becomes a readable message in the UI, never a crash or a stack trace."""
import functools
import inspect
import logging

import gradio as gr

from zoo.hub import HubError

log = logging.getLogger(__name__)
USER_ERRORS = (ValueError, HubError, FileNotFoundError)  # HubError covers WeightsNotFound


def friendly(fn):
    """Wrap an event handler (plain or generator): user errors -> gr.Error with the message;
    anything else -> gr.Error with a short note, logged with its traceback for the host."""

    def convert(err):
        if isinstance(err, gr.Error):
            return err
        if isinstance(err, USER_ERRORS):
            return gr.Error(str(err))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Internal error ({type(err).__name__}); the server is still running. Details are in the log.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every failure must reach the user as a message
                raise convert(err) from err
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise convert(err) from err
    return wrapper


def as_int(value, name: str, lo: int, hi: int) -> int:
    """Numbers from the UI arrive as floats (or None when a box is emptied)."""
    if value is None or value != value or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def as_float(value, name: str, lo: float, hi: float) -> float:
    if value is None or value != value or not lo <= float(value) <= hi:
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)
