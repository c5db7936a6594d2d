"""The WASI 0.2 export behind `service.JsonService`: `wasi:http/incoming-handler`, a
synchronous handler that writes the response through its out-parameter.

The service's `respond` is a coroutine (the WASI 0.3 build awaits the table); here it never
suspends, as the package's 0.2.0 table calls return at once, so `run_to_completion` drives it.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

import xray_host

from . import routes

# wasi:io output streams take at most 4096 bytes per blocking write.
_CHUNK = 4096


def send(response_out, answer):
    """Sends `answer` (a `routes.Answer`) as the response."""
    response = OutgoingResponse(Fields.from_list(routes.headers(answer)))
    response.set_status_code(answer.status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    data = answer.body.encode()
    with body.write() as stream:
        for start in range(0, len(data), _CHUNK):
            stream.blocking_write_and_flush(data[start : start + _CHUNK])
    OutgoingBody.finish(body, None)


class Handler(exports.IncomingHandler):
    """`wasi:http/incoming-handler` over the subclass's `async def respond(method, path)`."""

    async def respond(self, method, path):
        """The `routes.Answer` to `method` on `path` (with its query)."""
        raise NotImplementedError

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = routes.method_name(request.method())
        path = request.path_with_query() or "/"
        try:
            answer = xray_host.run_to_completion(self.respond(method, path))
        except Exception as error:  # noqa: BLE001 - see `routes.escaped`
            answer = routes.escaped(error)
        send(response_out, answer)
