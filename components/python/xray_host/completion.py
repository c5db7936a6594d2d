"""Running the library's coroutines from a synchronous WASI 0.2 handler.

A WASI 0.2 handler (`wasi:http/incoming-handler`) is a synchronous export, and the package's
0.2.0 table calls behind `put_item` and `get_item` return at once, so a coroutine built only
of them never suspends: `run_to_completion` drives it to its result without an event loop.
One that does suspend awaits something only WASI 0.3 can wait for (a 0.3.0 `async func`, a
stream, a timer) and is refused with a message that says so.
"""


def run_to_completion(coroutine):
    """The result of `coroutine`, which must finish without suspending (WASI 0.2)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError(
        "the handler awaited something a WASI 0.2 component cannot wait for; "
        "build it for WASI 0.3 (scripts/build-components.sh --python-wasi 0.3)"
    )
