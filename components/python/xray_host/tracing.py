"""Manual X-Ray instrumentation through the host's `tracing` interface.

The host records the request's segment and every outgoing call by itself; this module adds
subsegments around units of work, annotations and metadata. Subsegments nest: the innermost
one opened by `subsegment` (or `traced`) receives `annotate` and `metadata` calls, and the
request's segment receives them when none is open.

"Innermost open" is per request: a WASI 0.3 instance serves several requests at once, their
handlers interleaving at every `await`, so the open subsegments are kept in a `ContextVar`.
componentize-py runs each call of the exported handler in a `contextvars.Context` of its own
(and an asyncio task the handler creates copies its creator's), so a request sees only the
subsegments it opened itself.
"""

import contextlib
import contextvars
import functools
import inspect
import json
import traceback

from componentize_py_types import Err
from wit_world.imports import tracing as wit

# The subsegments opened by `subsegment` in this context and not yet ended, innermost last.
# A tuple, never changed in place: an asyncio task started inside a subsegment keeps the
# stack it was started with, whatever its creator opens or ends afterwards.
_open = contextvars.ContextVar("xray_host_open_subsegments", default=())

_EXPLANATIONS = {
    wit.TracingError_InvalidAnnotationKey: (
        "invalid annotation key {value!r}: a key is 1 to 500 characters of a-z, A-Z, 0-9 and _"
    ),
    wit.TracingError_AnnotationValueTooLong: (
        "annotation value too long: {value} characters, X-Ray keeps at most 1000"
    ),
    wit.TracingError_InvalidAnnotationValue: (
        "invalid annotation value {value}: X-Ray stores neither NaN nor infinities"
    ),
    wit.TracingError_TooManyAnnotations: (
        "too many annotations: X-Ray indexes at most {value} per trace"
    ),
    wit.TracingError_InvalidMetadataNamespace: (
        "invalid metadata namespace {value!r}: it may be neither empty nor start with 'AWS.'"
    ),
    wit.TracingError_InvalidMetadataJson: "metadata is not valid JSON: {value}",
    wit.TracingError_InvalidName: (
        "invalid subsegment name {value!r}: a name is 1 to 200 characters of letters, digits, "
        "white space and _ . : / % & # = + \\ - @"
    ),
    wit.TracingError_LimitExceeded: "a per-request tracing limit was reached: {value}",
}


class TracingError(ValueError):
    """The host refused a tracing call; nothing was recorded.

    `kind` is the name of the WIT `tracing-error` case (for example `InvalidAnnotationKey`) and
    `value` its payload; the message says what was wrong and what is allowed.
    """

    def __init__(self, error):
        self.kind = type(error).__name__.split("_", 1)[-1]
        self.value = getattr(error, "value", None)
        template = _EXPLANATIONS.get(type(error), "the subsegment has already been ended")
        super().__init__(template.format(value=self.value))


def _call(method, *args):
    """Calls a binding, turning the host's refusal into a `TracingError`."""
    try:
        return method(*args)
    except Err as refusal:
        raise TracingError(refusal.value) from None


def _annotation_value(value):
    """The WIT annotation value of a plain Python scalar."""
    # bool before int: True is an int in Python, but X-Ray should see a boolean.
    if isinstance(value, bool):
        return wit.AnnotationValue_Boolean(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise TracingError(wit.TracingError_InvalidAnnotationValue(str(value)))
        return wit.AnnotationValue_Integer(value)
    if isinstance(value, float):
        return wit.AnnotationValue_Number(value)
    if isinstance(value, str):
        return wit.AnnotationValue_Text(value)
    raise TypeError(
        f"an annotation value is a str, int, float or bool, not {type(value).__name__}; "
        "put structured values in metadata"
    )


def _exception(error):
    """The X-Ray exception record of a Python exception, with its stack innermost first."""
    frames = traceback.extract_tb(error.__traceback__)
    stack = [
        wit.StackFrame(path=frame.filename, line=frame.lineno, label=frame.name)
        for frame in reversed(frames)
    ]
    return wit.Exception(
        message=str(error) or type(error).__name__,
        kind=type(error).__name__,
        remote=False,
        stack=stack,
    )


class Subsegment:
    """An open subsegment: a unit of work on the trace's timeline."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def id(self):
        """The subsegment's id, 16 hexadecimal digits, as it appears in the trace."""
        return self._handle.id()

    def annotate(self, key, value):
        """Adds or replaces an annotation (a str, int, float or bool) X-Ray can filter on."""
        _call(self._handle.add_annotation, key, _annotation_value(value))

    def metadata(self, key, value, namespace="default"):
        """Adds or replaces `metadata[namespace][key]`; `value` is anything JSON can hold."""
        _call(self._handle.add_metadata, namespace, key, json.dumps(value, allow_nan=False))

    def fail(self, error=None, kind=wit.FailureKind.FAULT):
        """Flags the subsegment as failed, with `error` (an exception) as its cause."""
        cause = _exception(error) if error is not None else None
        _call(self._handle.record_failure, kind, cause)

    def end(self):
        """Ends the subsegment now."""
        _call(self._handle.end)


@contextlib.contextmanager
def subsegment(name):
    """Opens a subsegment `name` for the `with` block and ends it when the block ends.

    An exception leaving the block is recorded as the subsegment's fault, then re-raised.
    """
    stack = _open.get()
    if stack:
        handle = _call(stack[-1]._handle.begin_child, name)
    else:
        handle = _call(wit.current_segment().begin_subsegment, name)
    work = Subsegment(handle)
    _open.set(stack + (work,))
    try:
        yield work
    except BaseException as error:
        work.fail(error)
        raise
    finally:
        # Back to the stack as it was when the block began (not `reset`, which refuses a
        # token from another context, as when a generator is closed by the collector).
        _open.set(stack)
        work.end()


def traced(name=None):
    """A decorator that runs the function inside a subsegment named `name` (or its own name).

    A coroutine function (`async def`) gets a coroutine function whose subsegment lasts until
    the coroutine returns, awaits included.
    """

    def decorate(function):
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def awaiting(*args, **kwargs):
                with subsegment(name or function.__name__):
                    return await function(*args, **kwargs)

            return awaiting

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with subsegment(name or function.__name__):
                return function(*args, **kwargs)

        return wrapper

    # `@traced` as well as `@traced()` and `@traced("name")`.
    if callable(name):
        function, name = name, None
        return decorate(function)
    return decorate


def _target():
    stack = _open.get()
    return stack[-1]._handle if stack else wit.current_segment()


def annotate(key, value):
    """Annotates the innermost open subsegment, or the request's segment."""
    _call(_target().add_annotation, key, _annotation_value(value))


def metadata(key, value, namespace="default"):
    """Adds metadata to the innermost open subsegment, or the request's segment."""
    _call(_target().add_metadata, namespace, key, json.dumps(value, allow_nan=False))


def record_fault(error):
    """Flags the request's segment as a fault with `error` (an exception) as its cause: for an
    exception the handler did not catch, which the host would otherwise see as a trap."""
    _call(wit.current_segment().record_failure, wit.FailureKind.FAULT, _exception(error))


def trace_header():
    """The `X-Amzn-Trace-Id` value of the request's segment."""
    return wit.current_segment().trace_header()


def is_sampled():
    """Whether the request's trace will be sent to X-Ray."""
    return wit.current_segment().is_sampled()
