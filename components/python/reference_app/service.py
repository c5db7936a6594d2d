"""The handler of a reference service: routes by the reference conventions and answers JSON,
exported as the WASI HTTP handler of the build.

A service subclasses `JsonService`, names its paths in `main_paths` and implements
`async def answer()` for a GET on them; `/health`, 404 and 405 are answered here. The same
source builds for both WASI versions (`scripts/build-components.sh --python-wasi 0.2|0.3`):
the bindings of the build decide which export `JsonService` is (`http_p3` or `http_p2`), and
componentize-py looks it up in the app by the export's name, `Handler` for WASI 0.3 and
`IncomingHandler` for WASI 0.2, so an app names its subclass `Handler` and adds
`IncomingHandler = Handler`.
"""

from wit_world import exports

from . import routes

# WASI 0.3's bindings export `wasi:http/handler` (`Handler`); WASI 0.2's export
# `wasi:http/incoming-handler` (`IncomingHandler`) and have no `Handler`.
if hasattr(exports, "Handler"):
    from .http_p3 import Handler as _WasiHandler
else:
    from .http_p2 import Handler as _WasiHandler


class JsonService(_WasiHandler):
    """The handler of a reference service; see the module's documentation."""

    main_paths = ("/",)

    async def answer(self):
        """The `routes.Answer` to a GET on one of `main_paths`."""
        raise NotImplementedError

    async def respond(self, method, path):
        """The answer the conventions give, or else `answer()`'s."""
        return routes.conventional(method, path, self.main_paths) or await self.answer()
