"""What every tab builder hands back to the app (app.py), in one shape."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TabParts:
    """targets: the tab's model choosers (ui.opened.Target) that repos opened in the Model zoo
    tab join; on_load: (fn, inputs, outputs) views drawn when a visitor opens the page;
    components: named components, for tests and for other tabs to wire to."""

    targets: list = field(default_factory=list)
    on_load: list = field(default_factory=list)
    components: dict = field(default_factory=dict)
