"""Backend #2 of the reference application, in Python.

`GET /` answers `{"currentTime":"HH:MM:SS"}` at the configured UTC offset (UTC+09:00 by
default, `UTC_OFFSET` to change it), with a manual subsegment `current-time` around the work;
`GET /health` answers `{"status":"ok"}`. Every `GET /` records `{SubAppId: "backend2",
LastAccessed: "<epoch seconds>"}` in the service's table; a failed write is logged and the
answer is unchanged.
"""

import json

import xray_host
from reference_app import clock, last_access, service
from reference_app.routes import Answer


class Handler(service.JsonService):
    """The component's WASI HTTP handler."""

    async def answer(self):
        await last_access.record_last_access("backend2")
        with xray_host.subsegment("current-time") as work:
            time = clock.now().strftime("%H:%M:%S")
            work.annotate("current_time", time)
        return Answer(200, json.dumps({"currentTime": time}, separators=(",", ":")))


# The WASI 0.2 build looks its export up under this name (see reference_app.service).
IncomingHandler = Handler
