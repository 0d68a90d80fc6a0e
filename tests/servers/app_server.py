"""The app launched in-process on a free loopback port, for gradio_client and browser tests."""
from contextlib import contextmanager

from servers.olah_mirror import free_port


@contextmanager
def running_app():
    """Yields the local URL of a freshly built app; closes the server afterwards."""
    from app import build_app

    demo = build_app()
    demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()
