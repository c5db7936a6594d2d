"""The component's environment variables, as the host passes them (`--env`, manifest `env`).

Read through `wasi:cli/environment` on every call rather than `os.environ`, which
componentize-py fills when it snapshots the interpreter at build time.
"""

from wit_world.imports import environment


def get(name):
    """The value of `name`, or None."""
    for key, value in environment.get_environment():
        if key == name:
            return value
    return None
