"""The routing conventions every reference service follows: `GET /health` answers
`{"status":"ok"}`, the service's own paths answer `GET` (and `HEAD`), a known path with another
method is 405 with `Allow`, anything else is 404, always with a JSON body."""

import json
import sys
import traceback

import xray_host

HEALTH_PATH = "/health"
HEALTH_BODY = '{"status":"ok"}'
ALLOWED_METHODS = "GET, HEAD"


class Answer:
    """A JSON response to send: status, body and the optional `Allow` header."""

    def __init__(self, status, body, allow=None):
        self.status = status
        self.body = body
        self.allow = allow


def headers(answer):
    """The response headers of `answer`, as wasi:http `fields` take them."""
    fields = [("content-type", b"application/json")]
    if answer.allow:
        fields.append(("allow", answer.allow.encode()))
    return fields


def error_body(message, **extra):
    """`{"error": message, ...extra}` as compact JSON."""
    return json.dumps({"error": message, **extra}, separators=(",", ":"))


def method_name(method):
    """The name of a wasi:http `method` variant, from WASI 0.2's bindings or 0.3's (both call
    the cases `Method_Get`, `Method_Post`, ..., and `Method_Other` carries its own name)."""
    case = type(method).__name__
    if case == "Method_Other":
        return method.value
    return case.removeprefix("Method_").upper()


def conventional(method, path, main_paths):
    """The answer the conventions give, or None for a GET on one of the service's own paths."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if path != HEALTH_PATH and path not in main_paths:
        return Answer(404, error_body("not found", path=path))
    if method.upper() not in ("GET", "HEAD"):
        body = error_body("method not allowed", method=method, allow=ALLOWED_METHODS)
        return Answer(405, body, allow=ALLOWED_METHODS)
    if path == HEALTH_PATH:
        return Answer(200, HEALTH_BODY)
    return None


def escaped(error):
    """The answer to a request whose handler raised `error`: 500, with the exception's type
    (never its message, which may hold data) in the body; the traceback goes to stderr (the
    host logs it with the request's trace id) and the exception into the segment's cause.

    Catching it here, rather than letting it leave the export, matters under WASI 0.3: an
    exception that leaves `handle` traps the instance, which fails every request it is serving
    at that moment, not only this one."""
    traceback.print_exception(error, file=sys.stderr)
    try:
        xray_host.record_fault(error)
    except xray_host.TracingError as refused:
        print(f"the fault was not recorded in the trace: {refused}", file=sys.stderr)
    return Answer(500, error_body("internal error", exception=type(error).__name__))
