"""Inputs whose values reach the handler as sent.

Gradio's Slider and Number round and bound-check in their preprocess step, before the
handler runs, and Dropdown / Radio / CheckboxGroup refuse values outside their choices
there: a seed of 2.5 silently became 2, and an API caller sending a string, NaN, an
out-of-range number or an unknown name got "upstream Gradio app has raised an exception"
or an empty error. These are Gradio's own components with a pass-through preprocess, and
every handler checks its values (ui.errors.as_int / as_float, check_choice, the
registry), so every input follows one rule and every refusal says why. (Per instance, not
by subclassing: a component subclass makes Gradio write a .pyi stub into the source tree.)
"""
import gradio as gr


def _as_sent(payload):
    return payload


def raw(component):
    """`component` with its value passed to the handler unchanged."""
    component.preprocess = _as_sent
    return component


def Slider(*args, **kwargs) -> gr.Slider:  # stands in for the class
    return raw(gr.Slider(*args, **kwargs))


def Number(*args, **kwargs) -> gr.Number:
    return raw(gr.Number(*args, **kwargs))


def Dropdown(*args, **kwargs) -> gr.Dropdown:
    """A value outside the choices reaches the handler, which names the allowed ones (and
    knows the Hub repos this session opened)."""
    return raw(gr.Dropdown(*args, **kwargs))


def Radio(*args, **kwargs) -> gr.Radio:
    return raw(gr.Radio(*args, **kwargs))


def CheckboxGroup(*args, **kwargs) -> gr.CheckboxGroup:
    return raw(gr.CheckboxGroup(*args, **kwargs))
