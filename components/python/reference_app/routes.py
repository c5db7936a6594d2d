"""The routing conventions every reference service follows: `GET /health` answers
`{"status":"ok"}`, the service's own paths answer `GET` (and `HEAD`), a known path with another
method is 405 with `Allow`, anything else is 404, always with a JSON body."""

import json

HEALTH_PATH = "/health"
HEALTH_BODY = '{"status":"ok"}'
ALLOWED_METHODS = "GET, HEAD"


class Answer:
    """A JSON response to send: status, body and the optional `Allow` header."""

    def __init__(self, status, body, allow=None):
        self.status = status
        self.body = body
        self.allow = allow


def error_body(message, **extra):
    """`{"error": message, ...extra}` as compact JSON."""
    return json.dumps({"error": message, **extra}, separators=(",", ":"))


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
