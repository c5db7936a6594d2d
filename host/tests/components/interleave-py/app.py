"""A Python test component whose requests interleave in one WASI 0.3 instance, so the tests
can see that each request's subsegments, annotations and table calls land in its own trace.

`GET /interleave?id=ID&ms=MS` opens `work-ID` (annotated `request_id=ID`), waits MS
milliseconds, opens `step-ID` inside it, annotates that (the innermost open subsegment),
waits again, puts `{SubAppId: "interleave-ID"}` into the table, ends `step-ID`, annotates
`work-ID` again (`after=ID`) and the segment (`segment_id=ID`) once both are ended, and reads
the item back. Every wait lets the instance's other requests run. The answer is
`{"id": ID, "trace_header": ..., "stored": ..., "most_at_once": N}`: the header the host gave
this request, as seen after the waits, what the table gave back, and the most requests the
instance has had in its handler at once so far.

`GET /raise` raises `ValueError` out of the handler, which the reference handler answers 500
(the instance serves on). Every answer counts the instance's requests in `served`.

WASI 0.3 only (`scripts/build-components.sh` does not build it for 0.2): a WASI 0.2 handler
cannot wait.
"""

import json
from urllib.parse import parse_qs, urlsplit

import xray_host
from reference_app import service
from reference_app.routes import Answer
from wit_world.imports import monotonic_clock

# Deliberately instance-wide: how many requests are inside the handler now, and the most
# there have been at once. The test reads it to know that the requests really interleaved in
# one instance.
_inside = 0
_most = 0
_served = 0


async def _pause(milliseconds):
    await monotonic_clock.wait_for(milliseconds * 1_000_000)


async def _interleave(request_id, milliseconds):
    with xray_host.subsegment(f"work-{request_id}") as work:
        work.annotate("request_id", request_id)
        await _pause(milliseconds)
        with xray_host.subsegment(f"step-{request_id}"):
            xray_host.annotate("request_id", request_id)
            await _pause(milliseconds)
            await xray_host.put_item({"SubAppId": f"interleave-{request_id}", "Id": request_id})
        xray_host.annotate("after", request_id)
    xray_host.annotate("segment_id", request_id)
    stored = await xray_host.get_item({"SubAppId": f"interleave-{request_id}"})
    return {"id": request_id, "trace_header": xray_host.trace_header(), "stored": stored["Id"]}


class Handler(service.JsonService):
    """Answers `/interleave`; anything else is 404."""

    async def respond(self, method, path):
        global _inside, _most, _served
        _served += 1
        target = urlsplit(path)
        if target.path == "/raise":
            raise ValueError("raised on purpose")
        if target.path != "/interleave":
            return Answer(404, "no such route")
        query = parse_qs(target.query)
        _inside += 1
        _most = max(_most, _inside)
        try:
            answer = await _interleave(query["id"][0], int(query.get("ms", ["50"])[0]))
        finally:
            _inside -= 1
        return Answer(200, json.dumps({**answer, "most_at_once": _most, "served": _served}))
