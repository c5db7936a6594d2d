"""An OTLP/HTTP traces and metrics receiver for the host's export tests, built on the official
definitions.

Usage: otlp_receiver.py PORT OUT_FILE [--refuse 503,429,...] [--sigv4 REGION]

Every POST to /v1/traces (or /v1/metrics) is decoded with the opentelemetry-proto package's
generated classes, ExportTraceServiceRequest (or ExportMetricsServiceRequest) (protobuf, or
OTLP/JSON turned into the same message), gunzipped first when its Content-Encoding says gzip,
and appended to OUT_FILE as one JSON line: the path, the content type, the encoding, the
signature check and the request as a dict with its ids in hex. The first answers
may be refusals (--refuse, each status once, with Retry-After: 1); then 200 with an empty
ExportTraceServiceResponse. With --sigv4, the Authorization header is checked with botocore's
SigV4 signer for service `xray` in REGION with the credentials in AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN): the line says `valid`, `invalid` or `absent`.
"""

import base64
import gzip
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

# The messages of each signal's path: the request, and the answer to a success.
SIGNALS = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}

PORT = int(sys.argv[1])
OUT = sys.argv[2]
REFUSALS = []
REGION = None
args = sys.argv[3:]
while args:
    flag = args.pop(0)
    if flag == "--refuse":
        REFUSALS = [int(s) for s in args.pop(0).split(",") if s]
    elif flag == "--sigv4":
        REGION = args.pop(0)
LOCK = threading.Lock()

ID_KEYS = ("traceId", "spanId", "parentSpanId")


def hex_ids_to_base64(value):
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(value, dict):
        return {
            k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ID_KEYS and v else hex_ids_to_base64(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hex_ids_to_base64(v) for v in value]
    return value


def base64_ids_to_hex(value):
    if isinstance(value, dict):
        return {
            k: (base64.b64decode(v).hex() if k in ID_KEYS and v else base64_ids_to_hex(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [base64_ids_to_hex(v) for v in value]
    return value


def signature_check(handler, body):
    authorization = handler.headers.get("Authorization")
    if not authorization:
        return "absent"
    # "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=a;b, Signature=..."
    fields = dict(part.strip().split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    headers = {name: handler.headers[name] for name in signed if handler.headers.get(name) is not None}
    request = AWSRequest(method="POST", url=f"http://{handler.headers['Host']}{handler.path}", data=body, headers=headers)
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    credentials = Credentials(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN")
    )
    auth = SigV4Auth(credentials, "xray", REGION)
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    scope_ok = fields["Credential"].endswith(f"/{REGION}/xray/aws4_request")
    return "valid" if expected == fields["Signature"] and scope_ok else "invalid"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        signature = signature_check(self, body) if REGION else "unchecked"
        with LOCK:
            refusal = REFUSALS.pop(0) if REFUSALS else None
        if refusal:
            self.send_response(refusal)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.record({"refused": refusal, "signature": signature})
            return
        raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
        content_type = self.headers.get("Content-Type", "")
        request_type, response_type = SIGNALS.get(self.path, SIGNALS["/v1/traces"])
        message = request_type()
        if content_type == "application/x-protobuf":
            message.ParseFromString(raw)
            answer = response_type().SerializeToString()
        elif content_type == "application/json":
            json_format.Parse(json.dumps(hex_ids_to_base64(json.loads(raw))), message)
            answer = b"{}"
        else:
            self.send_response(415)
            self.end_headers()
            return
        self.record(
            {
                "path": self.path,
                "content_type": content_type,
                "encoding": self.headers.get("Content-Encoding"),
                "signature": signature,
                "request": base64_ids_to_hex(json_format.MessageToDict(message)),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def record(self, line):
        with LOCK, open(OUT, "a") as out:
            out.write(json.dumps(line) + "\n")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
