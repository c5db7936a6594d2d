"""The WASI 0.3 export behind `service.JsonService`: `wasi:http/handler@0.3.0`, an async
handler that returns the response and streams its body after returning.

componentize-py runs each call of `handle` as a component-model task of its own, several at
once in one instance: whatever a request keeps must live in its locals or in a `ContextVar`
(as `xray_host` keeps the open subsegments), never in a module global.
"""

import wit_world
from componentize_py_async_support import spawn
from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import Fields, Request, Response

from . import routes


def _no_trailers():
    """The readable end of a future that resolves at once to "no trailers"."""
    _, reader = wit_world.result_option_wasi_http_types_fields_wasi_http_types_error_code_future(
        lambda: Ok(None)
    )
    return reader


async def _write_body(writer, data):
    with writer:
        await writer.write_all(data)


def response(answer):
    """The `Response` of `answer` (a `routes.Answer`); its body is written once the host reads
    it, which it can only do after `handle` has returned, hence a task `spawn`ed on the
    request's component-model task rather than awaited here."""
    writer, reader = wit_world.byte_stream()
    result, _ = Response.new(Fields.from_list(routes.headers(answer)), reader, _no_trailers())
    result.set_status_code(answer.status)
    spawn(_write_body(writer, answer.body.encode()))
    return result


class Handler(exports.Handler):
    """`wasi:http/handler` over the subclass's `async def respond(method, path)`."""

    async def respond(self, method, path):
        """The `routes.Answer` to `method` on `path` (with its query)."""
        raise NotImplementedError

    async def handle(self, request: Request) -> Response:
        method = routes.method_name(request.get_method())
        path = request.get_path_with_query() or "/"
        try:
            answer = await self.respond(method, path)
        except Exception as error:  # noqa: BLE001 - see `routes.escaped`
            answer = routes.escaped(error)
        return response(answer)
