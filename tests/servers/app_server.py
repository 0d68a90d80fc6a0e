"""The app launched in-process on a free loopback port, for gradio_client and browser tests."""
from contextlib import contextmanager

from servers.olah_mirror import free_port


@contextmanager
def running_app():
    """Yields the local URL of a freshly built app, queued as app.py's main() queues it
    (ui.serving.queue, which sets torch's threads for the app's workers); closes the server
    and restores the test suite's thread count afterwards."""
    import torch

    from app import build_app
    from ui import serving

    threads, demo = torch.get_num_threads(), build_app()
    serving.queue(demo).launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()
        torch.set_num_threads(threads)


@contextmanager
def app_client(bundled: dict, preview_module: str):
    """A gradio_client Client of a fresh app whose registry entries {name: folder} load
    the checkpoints the test wrote, with a live preview at every solver step of the tab
    module `preview_module` (however fast the step)."""
    import dataclasses

    import pytest
    from gradio_client import Client

    from zoo import registry

    patch = pytest.MonkeyPatch()
    entries = [dataclasses.replace(e, bundled_path=str(bundled[e.name])) if e.name in bundled else e
               for e in registry.ENTRIES]
    patch.setattr(registry, "ENTRIES", entries)
    patch.setattr(f"{preview_module}.PREVIEW_INTERVAL", 0.0)
    try:
        with running_app() as url:
            yield Client(url, verbose=False)
    finally:
        patch.undo()
