"""The one check of a value taken from a fixed set of names (a solver, a spacing, a task, ...),
so every such refusal reads the same: "<name> must be one of [...], got '<value>'"."""


def check_choice(value, allowed, name: str):
    """`value` when it is one of `allowed` (listed in the given order in the error), else a
    ValueError naming the choices; a non-string or over-long value is shown cut to 60 characters."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {str(value)[:60]!r}")
    return value
