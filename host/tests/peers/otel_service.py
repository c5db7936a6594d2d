"""A service instrumented with the OpenTelemetry Python SDK, as a peer of the host's interop
tests: it continues the trace of the requests it gets and starts the trace of the calls it makes,
with the SDK's own propagator, and writes every span it ends to a file, one JSON object a line.

Usage: python otel_service.py PORT SPANS_FILE [--xray]

Without --xray it propagates W3C trace context only (the SDK's default); with --xray it uses
the AWS X-Ray propagator and id generator from the SDK's AWS packages instead.

Routes:
  GET /           a server span; answers {"currentDate": "YYYY/MM/DD"} (a stand-in backend 1)
  GET /call?url=U a server span holding a client span that calls U with the trace headers;
                  answers U's body
"""

import json
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

PORT = int(sys.argv[1])
SPANS_FILE = sys.argv[2]
XRAY = "--xray" in sys.argv[3:]


class FileExporter(SpanExporter):
    """Appends each span as one JSON line: ids in hex, the parent's span id, kind, name."""

    def export(self, spans):
        with open(SPANS_FILE, "a", encoding="utf-8") as out:
            for span in spans:
                context = span.get_span_context()
                out.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "kind": span.kind.name,
                            "trace_id": format(context.trace_id, "032x"),
                            "span_id": format(context.span_id, "016x"),
                            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                            "sampled": context.trace_flags.sampled,
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS


if XRAY:
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

    provider = TracerProvider(id_generator=AwsXRayIdGenerator())
    propagate.set_global_textmap(AwsXRayPropagator())
else:
    provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel-peer")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        # The request's headers as the SDK's instrumentations give them: looked up without
        # regard to case (HTTP/1 names are case-insensitive; hyper sends them lowercase).
        parent = propagate.extract(self.headers)
        url = urlparse(self.path)
        with tracer.start_as_current_span(
            f"GET {url.path}", context=parent, kind=trace.SpanKind.SERVER
        ):
            if url.path == "/call":
                target = parse_qs(url.query)["url"][0]
                with tracer.start_as_current_span("call", kind=trace.SpanKind.CLIENT):
                    headers = {}
                    propagate.inject(headers)
                    request = urllib.request.Request(target, headers=headers)
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        body = answer.read()
                self.answer(200, body)
            elif url.path == "/":
                now = datetime.now(timezone(timedelta(hours=9)))
                self.answer(200, json.dumps({"currentDate": now.strftime("%Y/%m/%d")}).encode())
            else:
                self.answer(404, b'{"error":"not_found"}')

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
