//! One OpenTelemetry span, two ways in: sent to the stand-in over OTLP/HTTP (protobuf), and
//! reported by a component through wasi:otel into a request's trace. Both go through the one
//! mapping (`xray::otel::mapping`), so the subsegment comes out the same: name, namespace,
//! flags, HTTP and AWS fields, annotations, metadata and cause.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value, json};
use xray::ids::{SegmentId, TraceId};
use xray::otel;
use xray::request_trace::RequestTrace;
use xray::request_trace::guest_span::{FinishedSpan, SpanEvent};
use xray::segment::{ServiceIdentity, segment_entity};
use xray_local::otlp_ingest;
use xray_local::store::TraceStore;

const TRACE: &str = "6b05c10e0123456789abcdef01234567";
const SEGMENT: &str = "0123456789abcdef";
const SPAN: &str = "00000000000000a1";

/// An attribute in both encodings: the OTLP value, and wasi:otel's JSON text of it.
struct Attribute {
    key: &'static str,
    value: Value,
}

fn attribute(key: &'static str, value: Value) -> Attribute {
    Attribute { key, value }
}

fn any_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Value::String(text) => V::StringValue(text.clone()),
        Value::Bool(b) => V::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap()),
        },
        Value::Array(items) => V::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        }),
        other => panic!("not an attribute value in this test: {other}"),
    };
    AnyValue { value: Some(value) }
}

fn key_values(attributes: &[Attribute]) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|a| KeyValue {
            key: a.key.into(),
            value: Some(any_value(&a.value)),
            ..Default::default()
        })
        .collect()
}

fn json_pairs(attributes: &[Attribute]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|a| (a.key.to_string(), a.value.to_string()))
        .collect()
}

struct Case {
    name: &'static str,
    kind: otel::SpanKind,
    attributes: Vec<Attribute>,
    exceptions: Vec<Vec<Attribute>>,
    status: otel::Status,
}

const START: u64 = 1_780_000_000_250_000_000;
const END: u64 = 1_780_000_000_500_000_000;

/// The span sent over OTLP; the stand-in's document for it.
fn through_otlp(case: &Case) -> Value {
    let span = Span {
        trace_id: TraceId::from_w3c(TRACE).unwrap().to_w3c_bytes().to_vec(),
        span_id: SegmentId::parse(SPAN).unwrap().to_w3c_bytes().to_vec(),
        parent_span_id: SegmentId::parse(SEGMENT).unwrap().to_w3c_bytes().to_vec(),
        name: case.name.into(),
        kind: match case.kind {
            otel::SpanKind::Internal => SpanKind::Internal,
            otel::SpanKind::Server => SpanKind::Server,
            otel::SpanKind::Client => SpanKind::Client,
            otel::SpanKind::Producer => SpanKind::Producer,
            otel::SpanKind::Consumer => SpanKind::Consumer,
        } as i32,
        start_time_unix_nano: START,
        end_time_unix_nano: END,
        attributes: key_values(&case.attributes),
        events: case
            .exceptions
            .iter()
            .map(|attributes| Event {
                time_unix_nano: END,
                name: "exception".into(),
                attributes: key_values(attributes),
                ..Default::default()
            })
            .collect(),
        status: match &case.status {
            otel::Status::Unset => None,
            otel::Status::Ok => Some(Status {
                code: StatusCode::Ok as i32,
                message: String::new(),
            }),
            otel::Status::Error(message) => Some(Status {
                code: StatusCode::Error as i32,
                message: message.clone(),
            }),
        },
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let store = TraceStore::new(4);
    let answer = otlp_ingest::receive(
        &store,
        Some("application/x-protobuf"),
        None,
        &request.encode_to_vec(),
        1_000.0,
    );
    assert_eq!(
        (answer.accepted, answer.rejected),
        (1, 0),
        "{:?}",
        answer.problem
    );
    let trace = store
        .trace(TraceId::from_w3c(TRACE).unwrap().as_str())
        .unwrap();
    trace.raw_documents().next().unwrap()
}

/// The span reported through wasi:otel inside a request's trace; its subsegment.
fn through_wasi_otel(case: &Case) -> Value {
    let mut trace = RequestTrace::new(
        TraceId::from_w3c(TRACE).unwrap(),
        SegmentId::parse(SEGMENT).unwrap(),
        true,
    );
    trace.start_guest_span(TRACE, SPAN, 1.0).unwrap();
    trace
        .end_guest_span(FinishedSpan {
            trace_id: TRACE.into(),
            span_id: SPAN.into(),
            parent_span_id: SEGMENT.into(),
            kind: case.kind,
            name: case.name.into(),
            start_time: START as f64 / 1e9,
            end_time: END as f64 / 1e9,
            attributes: json_pairs(&case.attributes),
            events: case
                .exceptions
                .iter()
                .map(|attributes| SpanEvent {
                    name: "exception".into(),
                    attributes: json_pairs(attributes),
                })
                .collect(),
            status: case.status.clone(),
        })
        .unwrap();
    trace.end(trace.start_time() + 1.0);
    let identity = ServiceIdentity {
        name: "svc".into(),
        version: "v".into(),
        origin: None,
        ecs: None,
        cloudwatch_logs: Vec::new(),
    };
    let segment = serde_json::to_value(segment_entity(&trace, &identity)).unwrap();
    segment["subsegments"][0].clone()
}

/// The fields the mapping decides.
fn shape(document: &Value) -> Value {
    let keys = [
        "id",
        "name",
        "namespace",
        "fault",
        "error",
        "throttle",
        "http",
        "aws",
        "annotations",
        "metadata",
        "cause",
    ];
    keys.iter()
        .map(|key| {
            (
                key.to_string(),
                document.get(*key).cloned().unwrap_or(Value::Null),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "GET /items",
            kind: otel::SpanKind::Client,
            attributes: vec![
                attribute("http.request.method", json!("GET")),
                attribute("url.full", json!("http://inventory.local:9000/items")),
                attribute("server.address", json!("inventory.local")),
                attribute("http.response.status_code", json!(429)),
                attribute("app.user", json!("alice")),
                attribute("app.items", json!(3)),
                attribute("app.ratio", json!(0.5)),
                attribute("app.tags", json!(["a", "b"])),
                attribute("aws.xray.annotations", json!(["app.user", "app.items"])),
                attribute("aws.xray.metadata.app", json!(r#"{"n": 2}"#)),
            ],
            exceptions: vec![vec![
                attribute("exception.type", json!("Throttled")),
                attribute("exception.message", json!("slow down")),
                attribute(
                    "exception.stacktrace",
                    json!("at fetch (src/lib.rs:7)\nat main"),
                ),
            ]],
            status: otel::Status::Error("the inventory refused".into()),
        },
        Case {
            name: "publish {order}",
            kind: otel::SpanKind::Producer,
            attributes: vec![attribute("messaging.system", json!("sqs"))],
            exceptions: Vec::new(),
            status: otel::Status::Error("queue full".into()),
        },
        Case {
            name: "DynamoDB.PutItem",
            kind: otel::SpanKind::Client,
            attributes: vec![
                attribute("rpc.system", json!("aws-api")),
                attribute("rpc.service", json!("DynamoDB")),
                attribute("rpc.method", json!("PutItem")),
                attribute("aws.dynamodb.table_names", json!(["orders"])),
                attribute("aws.request_id", json!("REQ1")),
                attribute("http.response.status_code", json!(404)),
            ],
            exceptions: Vec::new(),
            status: otel::Status::Unset,
        },
        Case {
            name: "price <cart>",
            kind: otel::SpanKind::Internal,
            attributes: vec![attribute("cart", json!("c-42"))],
            exceptions: Vec::new(),
            status: otel::Status::Ok,
        },
    ]
}

#[test]
fn the_same_span_through_otlp_and_wasi_otel_makes_the_same_subsegment() {
    for case in cases() {
        let otlp = shape(&through_otlp(&case));
        let guest = shape(&through_wasi_otel(&case));
        assert_eq!(otlp, guest, "{}", case.name);
    }
}

#[test]
fn the_shared_rules_are_the_collectors() {
    let [client, producer, dynamodb, internal] = cases().try_into().ok().unwrap();
    let client = through_wasi_otel(&client);
    assert_eq!(client["name"], "inventory.local");
    assert_eq!(client["namespace"], "remote");
    assert_eq!(
        (client["error"] == true, client["throttle"] == true),
        (true, true)
    );
    assert!(
        client.get("fault").is_none(),
        "a 429 is the client's, whatever the status"
    );
    assert_eq!(
        client["annotations"],
        json!({"app_user": "alice", "app_items": 3})
    );
    assert_eq!(client["metadata"]["app"], json!({"n": 2}));
    assert_eq!(client["metadata"]["default"]["app.tags"], json!(["a", "b"]));
    let exceptions = client["cause"]["exceptions"].as_array().unwrap();
    assert_eq!(
        exceptions.len(),
        1,
        "the events are the cause, not the description"
    );
    assert_eq!(exceptions[0]["remote"], true);
    let producer = through_otlp(&producer);
    assert_eq!(producer["name"], "publish order");
    assert!(
        producer.get("namespace").is_none(),
        "only CLIENT spans are remote"
    );
    assert_eq!(producer["fault"], true);
    assert_eq!(producer["cause"]["exceptions"][0]["message"], "queue full");
    let dynamodb = through_wasi_otel(&dynamodb);
    assert_eq!(
        (&dynamodb["namespace"], &dynamodb["name"]),
        (&json!("aws"), &json!("DynamoDB"))
    );
    assert_eq!(dynamodb["error"], true);
    assert_eq!(through_otlp(&internal)["name"], "price cart");
}
