"""Repos opened in the Model zoo tab join the model choosers of the other tabs, for the
browser session that opened them (a gr.State list of (repo ref, task) pairs)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr


@dataclass
class Target:
    """A model chooser of a tab: its component, its own choices, and the tasks it takes."""

    component: gr.components.Component
    base: list
    tasks: tuple

    def update(self, opened: list):
        return gr.update(choices=self.base + [ref for ref, task in opened if task in self.tasks])
