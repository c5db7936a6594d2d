"""A Python test component that feeds the guest library (`xray_host`) bad input on request, so
the tests can see the errors a Python author gets.

- `GET /annotate?key=K` annotates the request's segment with key `K` inside a subsegment;
- `GET /put-large` puts an item larger than DynamoDB's 400 KB;
- `GET /put-item?id=ID` puts `{SubAppId: ID, Nested: {...}}`, then reads it back;
- `GET /nested` opens `outer` (a decorated function), `inner` in it and `failing` in that,
  which an exception leaves.

A refusal is answered 400 with the exception's type and message: `TracingError: invalid
annotation key ...`.
"""

import json
from urllib.parse import parse_qs, urlsplit

import xray_host
from reference_app import service
from reference_app.routes import Answer


def _plain(value):
    """What JSON cannot hold, as the test reads it: numbers as text, sets sorted, bytes in hex."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@xray_host.traced("outer")
def _outer():
    xray_host.annotate("level", 1)
    with xray_host.subsegment("inner"):
        xray_host.metadata("detail", {"n": [1, 2]})
        try:
            with xray_host.subsegment("failing"):
                raise KeyError("boom")
        except KeyError:
            pass


async def _answer(path, query):
    if path == "/annotate":
        with xray_host.subsegment("annotate") as work:
            work.annotate(query.get("key", [""])[0], "value")
        return Answer(200, "annotated")
    if path == "/put-large":
        await xray_host.put_item({"SubAppId": "large", "Blob": "x" * 500_000})
        return Answer(200, "stored")
    if path == "/put-item":
        key = {"SubAppId": query["id"][0]}
        item = {**key, "Nested": {"list": [1, 2.5, True, None, b"\x01"], "tags": {"a", "b"}}}
        await xray_host.put_item(item)
        found = await xray_host.get_item(key)
        return Answer(200, json.dumps(found, default=_plain, sort_keys=True))
    if path == "/nested":
        _outer()
        return Answer(200, "nested")
    return Answer(404, "no such route")


class Handler(service.JsonService):
    """Answers the routes above; every refusal as 400 naming the exception."""

    async def respond(self, method, path):
        target = urlsplit(path)
        try:
            return await _answer(target.path, parse_qs(target.query))
        except (xray_host.TracingError, xray_host.TableError) as error:
            return Answer(400, f"{type(error).__name__} ({error.kind}): {error}")


# The WASI 0.2 build looks its export up under this name (see reference_app.service).
IncomingHandler = Handler
