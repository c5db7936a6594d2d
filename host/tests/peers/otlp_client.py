"""A service instrumented with the OpenTelemetry Python SDK that exports its spans over OTLP/HTTP,
as a peer of the stand-in's OTLP tests.

Usage:
  python otlp_client.py send ENDPOINT ENCODING
      Records one request of a checkout service (a SERVER span holding a CLIENT call that failed
      with an exception and a DynamoDB call, attributes for annotations), exports it to ENDPOINT
      (.../v1/traces) and prints {"trace_id", "server", "client", "dynamodb"} (hex ids).
      ENCODING: protobuf, gzip (protobuf, gzip-compressed) or json.
  python otlp_client.py serve PORT ENDPOINT
      Serves GET / as a backend 1 ({"currentDate": "YYYY/MM/DD"}), continuing the caller's
      X-Amzn-Trace-Id with AWS's X-Ray propagator, and exports each SERVER span to ENDPOINT.

The SDK's OTLP/HTTP exporter sends protobuf only, so json posts the same ExportTraceServiceRequest
(built by the SDK's own encoder) in OTLP/JSON: protobuf's JSON mapping with enums as integers,
and trace and span ids in hex instead of base64, as OTLP/JSON requires.
"""

import base64
import json
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def hex_ids(node):
    """protobuf's JSON mapping writes bytes in base64; OTLP/JSON writes ids in hex."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            hex_ids(item)
    return node


class OtlpJsonExporter(SpanExporter):
    """Posts spans as OTLP/JSON; fails unless the receiver answers 200 with a JSON body."""

    def __init__(self, endpoint):
        self.endpoint = endpoint

    def export(self, spans):
        message = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
        body = json.dumps(hex_ids(message)).encode()
        request = urllib.request.Request(
            self.endpoint, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            json.loads(answer.read())
            return SpanExportResult.SUCCESS if answer.status == 200 else SpanExportResult.FAILURE


class Checked(SpanExporter):
    """Remembers whether every export succeeded, so the script can fail loudly."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failures += 1
        return result


def exporter_for(endpoint, encoding):
    if encoding == "json":
        return OtlpJsonExporter(endpoint)
    compression = Compression.Gzip if encoding == "gzip" else Compression.NoCompression
    return OTLPSpanExporter(endpoint=endpoint, compression=compression)


def provider_for(service, exporter, **options):
    resource = Resource.create(
        {
            "service.name": service,
            "service.version": "1.0.0",
            "cloud.provider": "aws",
            "cloud.platform": "aws_ecs",
            "aws.ecs.launchtype": "fargate",
        }
    )
    provider = TracerProvider(resource=resource, **options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def send(endpoint, encoding):
    exporter = Checked(exporter_for(endpoint, encoding))
    provider = provider_for("OTel Checkout", exporter)
    tracer = provider.get_tracer("otlp-client")
    with tracer.start_as_current_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "url.scheme": "http",
            "server.address": "shop.local",
            "url.path": "/checkout",
            "cart": "c-42",
            "aws.xray.annotations": ["cart"],
        },
    ) as server:
        with tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": "http://inventory.local/items",
                "server.address": "inventory.local",
                "http.response.status_code": 503,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as client:
            try:
                raise RuntimeError("inventory unavailable")
            except RuntimeError as error:
                client.record_exception(error)
                client.set_status(Status(StatusCode.ERROR, "inventory unavailable"))
        with tracer.start_as_current_span(
            "DynamoDB.PutItem",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "aws-api",
                "rpc.service": "DynamoDB",
                "rpc.method": "PutItem",
                "aws.dynamodb.table_names": ["orders"],
                "aws.request_id": "REQ-1",
            },
        ) as dynamodb:
            pass
        server.set_attribute("http.response.status_code", 200)
    provider.shutdown()
    if exporter.failures:
        sys.exit(f"{exporter.failures} OTLP export(s) to {endpoint} failed")
    ids = {
        "trace_id": format(server.get_span_context().trace_id, "032x"),
        "server": format(server.get_span_context().span_id, "016x"),
        "client": format(client.get_span_context().span_id, "016x"),
        "dynamodb": format(dynamodb.get_span_context().span_id, "016x"),
    }
    print(json.dumps(ids))


def serve(port, endpoint):
    from opentelemetry.propagators.aws import AwsXRayPropagator
    from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

    provider = provider_for(
        "OTel Backend", exporter_for(endpoint, "protobuf"), id_generator=AwsXRayIdGenerator()
    )
    tracer = provider.get_tracer("otlp-backend")
    propagator = AwsXRayPropagator()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with tracer.start_as_current_span(
                f"GET {self.path}",
                context=propagator.extract(self.headers),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": "GET", "url.path": self.path},
            ) as span:
                now = datetime.now(timezone(timedelta(hours=9)))
                body = json.dumps({"currentDate": now.strftime("%Y/%m/%d")}).encode()
                span.set_attribute("http.response.status_code", 200)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["send"] and len(sys.argv) == 4:
        send(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["serve"] and len(sys.argv) == 4:
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
