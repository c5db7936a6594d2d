"""The guest library for Python components served by xray-host.

Idiomatic Python over the bindings that componentize-py generates from our WIT
(`xray-host:platform`): subsegments as a context manager or a decorator, annotations from
plain scalars, metadata from anything `json.dumps` accepts, and the service's table with
items as dicts. A call the host refuses raises `TracingError` or `TableError`, whose message
names the problem, so a mistake shows up where it was made instead of as a missing field in
the trace.

The table calls are coroutines (`await put_item(...)`), and the open subsegments are tracked
per request, so one library serves a WASI 0.3 component answering several requests at once
as well as a WASI 0.2 one, whose synchronous handler drives the coroutines with
`run_to_completion`.
"""

from .completion import run_to_completion
from .table import TableError, get_item, put_item
from .tracing import (
    Subsegment,
    TracingError,
    annotate,
    is_sampled,
    metadata,
    record_fault,
    subsegment,
    trace_header,
    traced,
)

__all__ = [
    "Subsegment",
    "TableError",
    "TracingError",
    "annotate",
    "get_item",
    "is_sampled",
    "metadata",
    "put_item",
    "record_fault",
    "run_to_completion",
    "subsegment",
    "trace_header",
    "traced",
]
