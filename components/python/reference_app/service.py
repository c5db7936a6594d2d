"""A `wasi:http/incoming-handler` that routes by the reference conventions and answers JSON.

A service subclasses `JsonService`, names its paths in `main_paths` and implements `answer`
for a GET on them; `/health`, 404 and 405 are answered here.
"""

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Connect,
    Method_Delete,
    Method_Get,
    Method_Head,
    Method_Options,
    Method_Other,
    Method_Patch,
    Method_Post,
    Method_Put,
    Method_Trace,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

from . import routes

_METHOD_NAMES = {
    Method_Get: "GET",
    Method_Head: "HEAD",
    Method_Post: "POST",
    Method_Put: "PUT",
    Method_Delete: "DELETE",
    Method_Connect: "CONNECT",
    Method_Options: "OPTIONS",
    Method_Trace: "TRACE",
    Method_Patch: "PATCH",
}

# wasi:io output streams take at most 4096 bytes per blocking write.
_CHUNK = 4096


def _method_name(method):
    if isinstance(method, Method_Other):
        return method.value
    return _METHOD_NAMES[type(method)]


def send(response_out, answer):
    """Sends `answer` (a `routes.Answer`) as the response."""
    headers = [("content-type", b"application/json")]
    if answer.allow:
        headers.append(("allow", answer.allow.encode()))
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(answer.status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    data = answer.body.encode()
    with body.write() as stream:
        for start in range(0, len(data), _CHUNK):
            stream.blocking_write_and_flush(data[start : start + _CHUNK])
    OutgoingBody.finish(body, None)


class JsonService(exports.IncomingHandler):
    """The handler of a reference service; see the module's documentation."""

    main_paths = ("/",)

    def answer(self):
        """The `routes.Answer` to a GET on one of `main_paths`."""
        raise NotImplementedError

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = _method_name(request.method())
        path = request.path_with_query() or "/"
        answer = routes.conventional(method, path, self.main_paths)
        send(response_out, answer or self.answer())
