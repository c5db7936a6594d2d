"""Backend #1 of the reference application, in Python.

`GET /` answers `{"currentDate":"YYYY/MM/DD"}` at the configured UTC offset (UTC+09:00 by
default, `UTC_OFFSET` to change it), inside a manual subsegment `current-date`;
`GET /health` answers `{"status":"ok"}`. Every `GET /` records `{SubAppId: "backend1",
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
        # The manual subsegment the original's README shows by hand, around the backend's work.
        with xray_host.subsegment("current-date") as work:
            await last_access.record_last_access("backend1")
            date = clock.now().strftime("%Y/%m/%d")
            work.annotate("current_date", date)
        return Answer(200, json.dumps({"currentDate": date}, separators=(",", ":")))


# The WASI 0.2 build looks its export up under this name (see reference_app.service).
IncomingHandler = Handler
