"""The diffusion model zoo.

`import zoo` has no side effects: nothing is downloaded or loaded until asked for.

    zoo.list_models()   -> list of registry entries
    zoo.load("mnist")   -> a ready pipeline (bundled -> local HF cache -> Hub)
    zoo.load("google/ddpm-cifar10-32")   -> any Hub repo id of a supported kind
"""


def list_models():
    """Every zoo entry (see zoo/registry.py)."""
    from zoo.registry import list_models as _list_models

    return _list_models()


def load(name: str, revision: str | None = None, **kwargs):
    """Build the pipeline of zoo entry `name` or of the Hub repo id `name` ("owner/name",
    optionally at `revision`), resolving its weights lazily."""
    from zoo.registry import load as _load

    return _load(name, revision=revision, **kwargs)
