//! OTLP/HTTP traces into the stand-in: `POST /v1/traces` with an `ExportTraceServiceRequest`
//! in binary protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`), either
//! optionally gzip-compressed (`Content-Encoding: gzip`). The spans become X-Ray documents
//! ([`crate::span_documents`]) in the same store as the UDP segments.
//!
//! Answers as the OTLP/HTTP specification says: 200 with an `ExportTraceServiceResponse` in the
//! request's encoding, its `partial_success` counting the spans refused (among them those past
//! [`MAX_SPANS_PER_REQUEST`], refused unread and counted in the store's
//! `spans_over_request_cap`) and saying why; 400
//! with a `google.rpc.Status` for a body that does not decode; 413 for a body over
//! [`MAX_BODY_BYTES`] (or over [`MAX_DECODED_BYTES`] once decompressed); 415 for another
//! content type or content encoding; 405 for a method other than POST.

use crate::StandInBody;
use crate::span_documents::span_documents;
use crate::store::TraceStore;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Read;

/// The path OTLP/HTTP exporters send traces to.
pub const TRACES_PATH: &str = "/v1/traces";

/// The largest request body taken, as sent (compressed or not): 8 MiB, well above what an SDK
/// batches (512 spans by default) and small enough for a laptop.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The largest request once decompressed: 32 MiB, so a small gzip body cannot expand without
/// bound.
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;

/// The spans taken from one request: those after it are refused unread, in the answer's
/// `partial_success`. A small protobuf span takes some 30 bytes, so a body within the limits
/// could otherwise carry about a million.
pub const MAX_SPANS_PER_REQUEST: usize = 10_000;

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
    /// OTLP/JSON, `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, when it is one of the two.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Self::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer (the two fields OTLP uses).
#[derive(Clone, PartialEq, Message, serde::Serialize)]
struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    code: i32,
    /// For a person.
    #[prost(string, tag = "2")]
    message: String,
}

/// `google.rpc.Code` INVALID_ARGUMENT.
const INVALID_ARGUMENT: i32 = 3;

/// An answer, before it becomes an HTTP response.
#[derive(Debug)]
pub struct OtlpAnswer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body's content type.
    pub content_type: &'static str,
    /// The encoded `ExportTraceServiceResponse` or `google.rpc.Status`.
    pub body: Vec<u8>,
    /// The spans stored and refused (both 0 when the request was refused whole).
    pub accepted: usize,
    /// See `accepted`.
    pub rejected: usize,
    /// Why the request, or its first refused span, was refused.
    pub problem: Option<String>,
}

fn refusal(status: StatusCode, encoding: Option<Encoding>, message: String) -> OtlpAnswer {
    let rpc = RpcStatus {
        code: INVALID_ARGUMENT,
        message: message.clone(),
    };
    let encoding = encoding.unwrap_or(Encoding::Json);
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&rpc).unwrap_or_default(),
    };
    OtlpAnswer {
        status,
        content_type: encoding.content_type(),
        body,
        accepted: 0,
        rejected: 0,
        problem: Some(message),
    }
}

/// Decodes a request body: the encoding from `content_type`, gunzipped when
/// `content_encoding` says gzip.
pub fn decode_request(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<(ExportTraceServiceRequest, Encoding), OtlpAnswer> {
    let Some(encoding) = content_type.and_then(Encoding::from_content_type) else {
        return Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!(
                "Content-Type {:?} is not an OTLP/HTTP encoding: send application/x-protobuf or application/json",
                content_type.unwrap_or("")
            ),
        ));
    };
    let decompressed;
    let body = match content_encoding.map(str::trim) {
        None | Some("") => body,
        Some(coding) if coding.eq_ignore_ascii_case("identity") => body,
        Some(coding) if coding.eq_ignore_ascii_case("gzip") => {
            decompressed = gunzip(body, encoding)?;
            &decompressed[..]
        }
        Some(other) => {
            return Err(refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some(encoding),
                format!("Content-Encoding {other:?} is not supported: send gzip or none"),
            ));
        }
    };
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| format!("the body is not a protobuf ExportTraceServiceRequest: {e}")),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(body).map_err(|e| {
            format!(
                "the body is not an OTLP/JSON ExportTraceServiceRequest (ids in hex, camelCase keys, enums as integers): {e}"
            )
        }),
    };
    match request {
        Ok(request) => Ok((request, encoding)),
        Err(message) => Err(refusal(StatusCode::BAD_REQUEST, Some(encoding), message)),
    }
}

fn gunzip(body: &[u8], encoding: Encoding) -> Result<Vec<u8>, OtlpAnswer> {
    let mut out = Vec::new();
    // One byte past the limit tells a body at the limit from one over it.
    let limit = MAX_DECODED_BYTES as u64 + 1;
    match flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
    {
        Ok(_) if out.len() > MAX_DECODED_BYTES => Err(refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(encoding),
            format!(
                "the decompressed body is over {MAX_DECODED_BYTES} bytes: export smaller batches"
            ),
        )),
        Ok(_) => Ok(out),
        Err(e) => Err(refusal(
            StatusCode::BAD_REQUEST,
            Some(encoding),
            format!("Content-Encoding is gzip but the body does not gunzip: {e}"),
        )),
    }
}

/// Decodes a request body and stores its spans: the whole intake but the HTTP plumbing.
pub fn receive(
    store: &TraceStore,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    now: f64,
) -> OtlpAnswer {
    let (request, encoding) = match decode_request(content_type, content_encoding, body) {
        Ok(decoded) => decoded,
        Err(answer) => return answer,
    };
    let mut request = request;
    let over_cap = keep_first_spans(&mut request, MAX_SPANS_PER_REQUEST);
    let mapped = span_documents(&request);
    let mut accepted = 0;
    let mut reasons = mapped.rejected;
    // The store counts the documents it refuses itself.
    for _ in 0..reasons.len() {
        store.count_rejected();
    }
    for document in mapped.documents {
        match store.add(document, now) {
            Ok(()) => accepted += 1,
            Err(why) => reasons.push(why.to_string()),
        }
    }
    if over_cap > 0 {
        store.count_spans_over_request_cap(over_cap as u64);
        reasons.push(format!(
            "the request carries {} spans and the stand-in takes the first \
             {MAX_SPANS_PER_REQUEST} of one request: export smaller batches",
            MAX_SPANS_PER_REQUEST + over_cap
        ));
    }
    let rejected = reasons.len() - usize::from(over_cap > 0) + over_cap;
    // A request with every span taken answers with no partial_success, as the spec asks.
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected as i64,
        error_message: format!(
            "{rejected} of {} spans refused; the first: {}",
            rejected + accepted,
            reasons[0]
        ),
    });
    let response = ExportTraceServiceResponse { partial_success };
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // The generated serializer writes an unset field as null; OTLP/JSON leaves it out.
        Encoding::Json if response.partial_success.is_none() => b"{}".to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_default(),
    };
    OtlpAnswer {
        status: StatusCode::OK,
        content_type: encoding.content_type(),
        body,
        accepted,
        rejected,
        problem: reasons.into_iter().next(),
    }
}

/// Keeps the first `max` spans of `request`, in order, and answers how many it dropped.
fn keep_first_spans(request: &mut ExportTraceServiceRequest, max: usize) -> usize {
    let mut room = max;
    let mut dropped = 0;
    for scope in request
        .resource_spans
        .iter_mut()
        .flat_map(|resource| resource.scope_spans.iter_mut())
    {
        let kept = scope.spans.len().min(room);
        dropped += scope.spans.len() - kept;
        scope.spans.truncate(kept);
        room -= kept;
    }
    dropped
}

/// Answers one request to [`TRACES_PATH`].
pub async fn handle<B>(store: &TraceStore, request: Request<B>, now: f64) -> Response<StandInBody>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let header_text = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string())
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let content_encoding = header_text(header::CONTENT_ENCODING);
    let encoding = content_type
        .as_deref()
        .and_then(Encoding::from_content_type);
    let answer = if request.method() != Method::POST {
        let mut response = into_response(refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            encoding,
            format!("{TRACES_PATH} takes POST only"),
        ));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    } else {
        match Limited::new(request.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(body) => receive(
                store,
                content_type.as_deref(),
                content_encoding.as_deref(),
                &body.to_bytes(),
                now,
            ),
            Err(_) => refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                encoding,
                format!("the body is over {MAX_BODY_BYTES} bytes: export smaller batches"),
            ),
        }
    };
    if let Some(problem) = &answer.problem {
        if answer.status.is_success() {
            tracing::warn!(
                "X-Ray daemon stand-in refused {} of {} OTLP span(s): {problem}",
                answer.rejected,
                answer.rejected + answer.accepted
            );
        } else {
            tracing::warn!(status = %answer.status, "X-Ray daemon stand-in refused an OTLP request: {problem}");
        }
    }
    into_response(answer)
}

fn into_response(answer: OtlpAnswer) -> Response<StandInBody> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api;
    use crate::span_documents::tests::checkout;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::{Value, json};
    use std::io::Write;

    const PROTOBUF: Option<&str> = Some("application/x-protobuf");
    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    /// OTLP/JSON as the specification shows it: hex ids (upper case allowed), camelCase keys,
    /// the kind as an integer, 64-bit integers as strings.
    const SPEC_JSON: &str = r#"{"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json service"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [
          {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
           "parentSpanId": "", "name": "GET /", "kind": 2,
           "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
           "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}},
                          {"key": "retries", "value": {"intValue": 2}},
                          {"key": "unknownFieldsAreIgnored", "value": {"stringValue": "x"}, "extra": 1}],
           "status": {}},
          {"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B175",
           "parentSpanId": "EEE19B7EC3C1B174", "name": "query", "kind": 3,
           "startTimeUnixNano": "1544712660100000000", "endTimeUnixNano": "1544712660200000000",
           "attributes": [{"key": "peer.service", "value": {"stringValue": "ledger"}}]}]}]}]}"#;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn stored(store: &TraceStore, trace: &str) -> Vec<Value> {
        let answer =
            api::batch_get_traces(store, json!({"TraceIds": [trace]}).to_string().as_bytes())
                .unwrap();
        answer["Traces"][0]["Segments"]
            .as_array()
            .unwrap_or_else(|| panic!("{trace} not stored: {answer}"))
            .iter()
            .map(|s| serde_json::from_str(s["Document"].as_str().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn protobuf_plain_and_gzipped_is_stored_and_answered_in_protobuf() {
        let plain: Vec<u8> = checkout().encode_to_vec();
        let zipped: Vec<u8> = gzip(&plain);
        for (encoding, body) in [(None, plain), (Some("gzip"), zipped)] {
            let store = TraceStore::new(10);
            let answer = receive(&store, PROTOBUF, encoding, &body, 1.0);
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.problem);
            assert_eq!(answer.content_type, "application/x-protobuf");
            let response = ExportTraceServiceResponse::decode(&answer.body[..]).unwrap();
            assert_eq!(response.partial_success, None, "every span was taken");
            assert_eq!((answer.accepted, answer.rejected), (4, 0));
            // Read back through the X-Ray API: one segment, its three calls nested in it.
            let segments = stored(&store, "1-6b05c10e-0123456789abcdef01234567");
            assert_eq!(segments.len(), 1);
            let names: Vec<&str> = segments[0]["subsegments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["inventory.local", "DynamoDB", "price cart"]);
        }
    }

    #[test]
    fn the_service_graph_and_summaries_read_the_spans_like_segments() {
        let store = TraceStore::new(10);
        receive(&store, PROTOBUF, None, &checkout().encode_to_vec(), 1.0);
        let range = br#"{"StartTime": 1.7e9, "EndTime": 1.8e9}"#;
        let graph = api::service_graph(&store, range).unwrap();
        let services = graph["Services"].as_array().unwrap();
        let node = |name: &str| {
            services
                .iter()
                .find(|s| s["Name"] == name)
                .unwrap_or_else(|| panic!("no {name} in {graph:#}"))
        };
        let edges = |name: &str| -> Vec<Value> {
            node(name)["Edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["ReferenceId"].clone())
                .collect()
        };
        let checkout_node = node("Checkout OTel");
        assert_eq!(checkout_node["Type"], "AWS::ECS::Fargate");
        assert_eq!(edges("Client"), [checkout_node["ReferenceId"].clone()]);
        assert_eq!(
            edges("Checkout OTel"),
            [
                node("inventory.local")["ReferenceId"].clone(),
                node("orders")["ReferenceId"].clone()
            ]
        );
        assert_eq!(node("orders")["Type"], "AWS::DynamoDB::Table");
        let summaries = api::trace_summaries(
            &store,
            json!({"StartTime": 1.7e9, "EndTime": 1.8e9, "FilterExpression": "annotation.cart = \"c-42\" AND fault"})
                .to_string()
                .as_bytes(),
            2e9,
        )
        .unwrap();
        let summary = &summaries["TraceSummaries"][0];
        assert_eq!(
            summary["Http"]["HttpURL"],
            "http://shop.local:8080/checkout"
        );
        assert_eq!(summary["EntryPoint"]["Name"], "Checkout OTel");
    }

    #[test]
    fn otlp_json_is_read_with_hex_ids_and_answered_in_json() {
        let store = TraceStore::new(10);
        for (encoding, body) in [
            (None, SPEC_JSON.as_bytes().to_vec()),
            (Some("GZIP"), gzip(SPEC_JSON.as_bytes())),
        ] {
            let answer = receive(&store, JSON, encoding, &body, 1.0);
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.problem);
            assert_eq!(answer.content_type, "application/json");
            assert_eq!(
                serde_json::from_slice::<Value>(&answer.body).unwrap(),
                json!({})
            );
        }
        let segments = stored(&store, "1-5b8efff7-98038103d269b633813fc60c");
        assert_eq!(segments.len(), 1);
        let segment = &segments[0];
        assert_eq!(segment["id"], "eee19b7ec3c1b174");
        assert_eq!(segment["name"], "json service");
        assert_eq!(segment["start_time"], 1_544_712_660.0);
        assert_eq!(segment["http"]["response"]["status"], 200);
        assert_eq!(segment["metadata"]["default"]["retries"], 2);
        assert_eq!(segment["subsegments"][0]["name"], "ledger");
        assert_eq!(segment["subsegments"][0]["namespace"], "remote");
    }

    #[test]
    fn refused_spans_are_counted_in_partial_success() {
        let mut request = checkout();
        request.resource_spans[0].scope_spans[0].spans[2].span_id = vec![7; 3];
        let store = TraceStore::new(10);
        let answer = receive(&store, PROTOBUF, None, &request.encode_to_vec(), 1.0);
        assert_eq!(answer.status, StatusCode::OK);
        let partial = ExportTraceServiceResponse::decode(&answer.body[..])
            .unwrap()
            .partial_success
            .unwrap();
        assert_eq!(partial.rejected_spans, 1);
        assert!(
            partial.error_message.contains("1 of 4 spans refused")
                && partial.error_message.contains("DynamoDB.PutItem")
                && partial.error_message.contains("span id"),
            "{}",
            partial.error_message
        );
        assert_eq!((store.counts().accepted, store.counts().rejected), (3, 1));
        let json_answer = receive(
            &store,
            JSON,
            None,
            &serde_json::to_vec(&request).unwrap(),
            1.0,
        );
        let body: Value = serde_json::from_slice(&json_answer.body).unwrap();
        assert_eq!(body["partialSuccess"]["rejectedSpans"], 1, "{body}");
    }

    #[test]
    fn spans_past_the_cap_of_one_request_are_refused_and_counted() {
        // One trace, in two scopes: the cap counts across them, in order.
        let mut request = checkout();
        let template = request.resource_spans[0].scope_spans[0].spans[1].clone();
        let spans = |from: u64, count: u64| -> Vec<_> {
            (from..from + count)
                .map(|i| {
                    let mut span = template.clone();
                    span.span_id = (i + 1000).to_be_bytes().to_vec();
                    span
                })
                .collect()
        };
        let over = 7;
        let first = request.resource_spans[0].scope_spans[0].spans.len();
        request.resource_spans[0].scope_spans[0].spans =
            spans(0, (MAX_SPANS_PER_REQUEST - first + 1) as u64);
        let mut second = request.resource_spans[0].scope_spans[0].clone();
        second.spans = spans(1_000_000, (first - 1 + over) as u64);
        request.resource_spans[0].scope_spans.push(second);
        let store = TraceStore::new(10);
        let answer = receive(&store, PROTOBUF, None, &request.encode_to_vec(), 1.0);
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.problem);
        assert_eq!(
            (answer.accepted, answer.rejected),
            (MAX_SPANS_PER_REQUEST, over)
        );
        let partial = ExportTraceServiceResponse::decode(&answer.body[..])
            .unwrap()
            .partial_success
            .unwrap();
        assert_eq!(partial.rejected_spans, over as i64);
        assert!(
            partial.error_message.contains("export smaller batches"),
            "{}",
            partial.error_message
        );
        let counts = store.counts();
        assert_eq!(counts.accepted, MAX_SPANS_PER_REQUEST as u64);
        assert_eq!(counts.spans_over_request_cap, over as u64);
        assert_eq!((counts.rejected, counts.documents_over_trace_cap), (0, 0));
        // The trace is full: a span more is refused by the store's cap, and counted there.
        let mut one_more = checkout();
        one_more.resource_spans[0].scope_spans[0].spans = spans(5_000_000, 1);
        let answer = receive(&store, PROTOBUF, None, &one_more.encode_to_vec(), 1.0);
        assert_eq!((answer.accepted, answer.rejected), (0, 1));
        assert!(answer.problem.unwrap().contains("as many documents"));
        let counts = store.counts();
        assert_eq!((counts.rejected, counts.documents_over_trace_cap), (0, 1));
    }

    #[test]
    fn bad_bodies_types_and_encodings_are_refused_with_a_status_message() {
        let store = TraceStore::new(10);
        // Content-Type, Content-Encoding, body, and the status expected.
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [u8], StatusCode);
        let cases: [Case; 8] = [
            (PROTOBUF, None, b"\xff\xff\xff", StatusCode::BAD_REQUEST),
            (JSON, None, b"{\"resourceSpans\": 3}", StatusCode::BAD_REQUEST),
            // Ids in base64, as protobuf's generic JSON mapping writes them, are not OTLP/JSON.
            (
                JSON,
                None,
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}"#,
                StatusCode::BAD_REQUEST,
            ),
            (JSON, Some("gzip"), b"not gzip", StatusCode::BAD_REQUEST),
            (Some("text/plain"), None, b"{}", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (None, None, b"{}", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (Some("application/protobuf"), None, b"", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (JSON, Some("br"), b"{}", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ];
        for (content_type, encoding, body, expected) in cases {
            let answer = receive(&store, content_type, encoding, body, 1.0);
            assert_eq!(
                answer.status, expected,
                "{content_type:?} {encoding:?} {body:?}"
            );
            assert!(answer.problem.is_some());
        }
        let answer = receive(&store, PROTOBUF, None, b"\xff", 1.0);
        let status = RpcStatus::decode(&answer.body[..]).unwrap();
        assert_eq!(status.code, INVALID_ARGUMENT);
        assert!(
            status.message.contains("not a protobuf"),
            "{}",
            status.message
        );
        let answer = receive(&store, JSON, None, b"[", 1.0);
        let status: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(status["message"].as_str().unwrap().contains("OTLP/JSON"));
        assert_eq!(store.counts().accepted, 0);
    }

    #[test]
    fn a_body_that_decompresses_past_the_limit_is_refused_as_too_large() {
        let bomb = gzip(&vec![0u8; MAX_DECODED_BYTES + 1]);
        assert!(bomb.len() < MAX_BODY_BYTES);
        let store = TraceStore::new(10);
        let answer = receive(&store, PROTOBUF, Some("gzip"), &bomb, 1.0);
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn the_stand_in_serves_the_path_and_limits_method_and_size() {
        let stand_in = crate::DaemonStandIn::start(&crate::DaemonOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_traces: 10,
            sampling_rules: None,
        })
        .await
        .unwrap();
        let post = |body: Vec<u8>| {
            Request::post(TRACES_PATH)
                .header(header::HOST, "127.0.0.1:2000")
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let response = stand_in.handle(post(checkout().encode_to_vec())).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(stand_in.store().counts().accepted, 4);
        let response = stand_in.handle(post(vec![0; MAX_BODY_BYTES + 1])).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let response = stand_in
            .handle(
                Request::get(TRACES_PATH)
                    .header(header::HOST, "localhost:2000")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
}
