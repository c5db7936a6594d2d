//! OTLP spans as X-Ray segment documents: the protobuf types read into
//! [`xray::otel::Span`], and each span mapped by [`xray::otel::mapping::document`] (the rule
//! table is there, the same one the wasi:otel path and the OTLP exporter use) into a typed
//! document, serialized for the store.
//!
//! A span X-Ray could not take (ids of the wrong length or all zero, no start time, an end
//! before its start) is refused with the reason, and the others of the request are kept. A
//! span with no end time is in progress.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::Value;
use xray::ids::{SegmentId, TraceId};
use xray::otel::{self, Attributes, mapping};

/// What the spans of one export request became.
#[derive(Debug, Default)]
pub struct SpanDocuments {
    /// One document per accepted span: segments, and subsegments with `type: subsegment`.
    pub documents: Vec<Value>,
    /// Why each refused span was refused.
    pub rejected: Vec<String>,
}

/// Maps every span of `request`.
pub fn span_documents(request: &ExportTraceServiceRequest) -> SpanDocuments {
    let mut out = SpanDocuments::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for span in spans(resource_spans) {
            let document = model(span)
                .map(|span| mapping::document(&span, &resource))
                .and_then(|document| serde_json::to_value(document).map_err(|e| e.to_string()));
            match document {
                Ok(document) => out.documents.push(document),
                Err(why) => out.rejected.push(format!("span {:?}: {why}", span.name)),
            }
        }
    }
    out
}

fn spans(resource_spans: &ResourceSpans) -> impl Iterator<Item = &Span> {
    resource_spans
        .scope_spans
        .iter()
        .flat_map(|scope| scope.spans.iter())
}

fn seconds(nanos: u64) -> f64 {
    // Split so that a time in 2026 keeps its microseconds in an f64.
    (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9
}

/// One protobuf span as the typed span, or why X-Ray would refuse it.
pub fn model(span: &Span) -> Result<otel::Span, String> {
    let trace_id = TraceId::from_w3c_bytes(&span.trace_id)
        .ok_or("the trace id is not 16 bytes, or is all zero")?;
    let span_id = SegmentId::from_w3c_bytes(&span.span_id)
        .ok_or("the span id is not 8 bytes, or is all zero")?;
    let parent_span_id = match span.parent_span_id.len() {
        0 => None,
        _ => Some(
            SegmentId::from_w3c_bytes(&span.parent_span_id)
                .ok_or("the parent span id is not 8 bytes, or is all zero")?,
        ),
    };
    if span.start_time_unix_nano == 0 {
        return Err("it has no start time".into());
    }
    if span.end_time_unix_nano != 0 && span.end_time_unix_nano < span.start_time_unix_nano {
        return Err("it ends before it starts".into());
    }
    let status = match &span.status {
        Some(status) if StatusCode::try_from(status.code) == Ok(StatusCode::Error) => {
            otel::Status::Error(status.message.clone())
        }
        Some(status) if StatusCode::try_from(status.code) == Ok(StatusCode::Ok) => otel::Status::Ok,
        _ => otel::Status::Unset,
    };
    Ok(otel::Span {
        trace_id,
        span_id,
        parent_span_id,
        name: span.name.clone(),
        kind: match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
            SpanKind::Server => otel::SpanKind::Server,
            SpanKind::Client => otel::SpanKind::Client,
            SpanKind::Producer => otel::SpanKind::Producer,
            SpanKind::Consumer => otel::SpanKind::Consumer,
            SpanKind::Internal | SpanKind::Unspecified => otel::SpanKind::Internal,
        },
        start_time: seconds(span.start_time_unix_nano),
        end_time: (span.end_time_unix_nano != 0).then(|| seconds(span.end_time_unix_nano)),
        attributes: attributes(&span.attributes),
        events: span
            .events
            .iter()
            .map(|event| otel::Event {
                name: event.name.clone(),
                time: seconds(event.time_unix_nano),
                attributes: attributes(&event.attributes),
            })
            .collect(),
        status,
    })
}

fn attributes(pairs: &[KeyValue]) -> Attributes {
    Attributes(
        pairs
            .iter()
            .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
            .collect(),
    )
}

fn value(any: Option<&AnyValue>) -> otel::Value {
    use any_value::Value as V;
    match any.and_then(|v| v.value.as_ref()) {
        // A string-table index means something in profiles only; a span has no table.
        None | Some(V::StringValueStrindex(_)) => otel::Value::Empty,
        Some(V::StringValue(text)) => otel::Value::Text(text.clone()),
        Some(V::BoolValue(b)) => otel::Value::Bool(*b),
        Some(V::IntValue(n)) => otel::Value::Int(*n),
        Some(V::DoubleValue(d)) => otel::Value::Double(*d),
        Some(V::BytesValue(bytes)) => otel::Value::Bytes(bytes.clone()),
        Some(V::ArrayValue(array)) => {
            otel::Value::Array(array.values.iter().map(|v| value(Some(v))).collect())
        }
        Some(V::KvlistValue(list)) => otel::Value::Map(attributes(&list.values).0),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};
    use serde_json::json;
    use xray::otel::mapping::ANNOTATIONS_ATTRIBUTE;

    const TRACE: [u8; 16] = [
        0x6b, 0x05, 0xc1, 0x0e, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45,
        0x67,
    ];

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
        }
    }

    fn number(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
        }
    }

    fn texts(key: &str, values: &[&str]) -> KeyValue {
        KeyValue {
            key: key.into(),
            key_strindex: 0,
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: values
                        .iter()
                        .map(|v| AnyValue {
                            value: Some(any_value::Value::StringValue(v.to_string())),
                        })
                        .collect(),
                })),
            }),
        }
    }

    fn span(
        id: u8,
        parent: Option<u8>,
        kind: SpanKind,
        name: &str,
        attributes: Vec<KeyValue>,
    ) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
            parent_span_id: parent
                .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                .unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: 1_780_000_000_123_456_000,
            end_time_unix_nano: 1_780_000_000_223_456_000,
            attributes,
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A checkout service on Fargate: its SERVER span holds a failed HTTP call with an
    /// exception, a DynamoDB call and an internal step.
    pub fn checkout() -> ExportTraceServiceRequest {
        let mut server = span(
            1,
            Some(0x99),
            SpanKind::Server,
            "GET /checkout",
            vec![
                text("http.request.method", "GET"),
                text("url.scheme", "http"),
                text("server.address", "shop.local"),
                number("server.port", 8080),
                text("url.path", "/checkout"),
                number("http.response.status_code", 502),
                text("cart", "c-42"),
                text("note", "kept as metadata"),
                texts(ANNOTATIONS_ATTRIBUTE, &["cart", "missing"]),
            ],
        );
        server.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "upstream failed".into(),
        });
        let mut client = span(
            2,
            Some(1),
            SpanKind::Client,
            "GET",
            vec![
                text("http.request.method", "GET"),
                text("url.full", "http://inventory.local:9000/items"),
                text("server.address", "inventory.local"),
                number("http.response.status_code", 404),
            ],
        );
        client.status = Some(Status {
            code: StatusCode::Error as i32,
            message: String::new(),
        });
        client.events.push(Event {
            name: "exception".into(),
            attributes: vec![
                text("exception.type", "LookupError"),
                text("exception.message", "no such item"),
                text(
                    "exception.stacktrace",
                    "Traceback ...\nLookupError: no such item",
                ),
            ],
            ..Default::default()
        });
        let dynamodb = span(
            3,
            Some(1),
            SpanKind::Client,
            "DynamoDB.PutItem",
            vec![
                text("rpc.system", "aws-api"),
                text("rpc.service", "DynamoDB"),
                text("rpc.method", "PutItem"),
                texts("aws.dynamodb.table_names", &["orders"]),
                text("aws.request_id", "REQ123"),
                text("aws.region", "eu-west-1"),
            ],
        );
        let internal = span(4, Some(1), SpanKind::Internal, "price <cart>", vec![]);
        request(
            vec![
                text("service.name", "Checkout <OTel>"),
                text("service.version", "1.2.3"),
                text("telemetry.sdk.language", "python"),
                text("telemetry.sdk.version", "1.45.2"),
                text("cloud.provider", "aws"),
                text("cloud.platform", "aws_ecs"),
                text("aws.ecs.launchtype", "fargate"),
                text(
                    "aws.ecs.task.arn",
                    "arn:aws:ecs:eu-west-1:111122223333:task/c/1",
                ),
                text("container.name", "checkout"),
            ],
            vec![server, client, dynamodb, internal],
        )
    }

    #[test]
    fn a_service_span_becomes_a_segment_with_http_cause_annotations_and_origin() {
        let mapped = span_documents(&checkout());
        assert!(mapped.rejected.is_empty(), "{:?}", mapped.rejected);
        let segment = &mapped.documents[0];
        assert_eq!(segment["trace_id"], "1-6b05c10e-0123456789abcdef01234567");
        assert_eq!(segment["id"], "0000000000000001");
        assert_eq!(segment["parent_id"], "0000000000000099");
        assert!(segment.get("type").is_none() && segment.get("namespace").is_none());
        assert_eq!(
            segment["name"], "Checkout OTel",
            "characters X-Ray refuses are removed"
        );
        assert_eq!(segment["start_time"], 1_780_000_000.123456);
        assert_eq!(segment["end_time"], 1_780_000_000.223456);
        assert_eq!(
            segment["http"],
            json!({"request": {"method": "GET", "url": "http://shop.local:8080/checkout"},
                   "response": {"status": 502}})
        );
        assert_eq!(
            (segment["fault"] == true, segment.get("error")),
            (true, None)
        );
        assert_eq!(
            segment["cause"]["exceptions"][0]["message"],
            "upstream failed"
        );
        assert_eq!(segment["annotations"], json!({"cart": "c-42"}));
        let metadata = &segment["metadata"]["default"];
        assert_eq!(metadata["note"], "kept as metadata");
        assert_eq!(metadata["otel.resource.service.name"], "Checkout <OTel>");
        assert!(metadata.get("cart").is_none() && metadata.get("http.request.method").is_none());
        assert!(metadata.get(ANNOTATIONS_ATTRIBUTE).is_none());
        assert_eq!(segment["origin"], "AWS::ECS::Fargate");
        assert_eq!(segment["aws"]["ecs"]["container"], "checkout");
        assert_eq!(segment["aws"]["ecs"]["launch_type"], "fargate");
        assert_eq!(segment["aws"]["xray"]["sdk"], "opentelemetry for python");
        assert_eq!(segment["service"]["version"], "1.2.3");
    }

    #[test]
    fn calls_become_remote_and_aws_subsegments() {
        let mapped = span_documents(&checkout());
        let client = &mapped.documents[1];
        assert_eq!(client["type"], "subsegment");
        assert_eq!(client["parent_id"], "0000000000000001");
        assert_eq!(client["trace_id"], "1-6b05c10e-0123456789abcdef01234567");
        assert_eq!(client["namespace"], "remote");
        assert_eq!(client["name"], "inventory.local");
        assert_eq!(
            client["http"]["request"]["url"],
            "http://inventory.local:9000/items"
        );
        assert_eq!(
            (client["error"] == true, client.get("fault")),
            (true, None),
            "a 404 is an error"
        );
        let exception = &client["cause"]["exceptions"][0];
        assert_eq!(
            (&exception["type"], &exception["message"]),
            (&json!("LookupError"), &json!("no such item"))
        );
        assert_eq!(exception["id"].as_str().unwrap().len(), 16);
        assert!(client.get("origin").is_none(), "origin is a segment's");
        assert!(
            client.get("metadata").is_none(),
            "resource attributes go to segments only, and the HTTP attributes to http"
        );

        let dynamodb = &mapped.documents[2];
        assert_eq!(
            (&dynamodb["namespace"], &dynamodb["name"]),
            (&json!("aws"), &json!("DynamoDB"))
        );
        assert_eq!(
            dynamodb["aws"],
            json!({"operation": "PutItem", "table_name": "orders", "request_id": "REQ123", "region": "eu-west-1"})
        );
        assert!(
            dynamodb.get("metadata").is_none(),
            "the fields took the attributes"
        );

        let internal = &mapped.documents[3];
        assert_eq!(internal["name"], "price cart");
        assert!(internal.get("namespace").is_none());
    }

    #[test]
    fn a_span_without_a_parent_is_a_segment_whatever_its_kind() {
        let mapped = span_documents(&request(
            vec![text("service.name", "batch job")],
            vec![span(
                7,
                None,
                SpanKind::Internal,
                "nightly",
                vec![number("http.status_code", 429)],
            )],
        ));
        let segment = &mapped.documents[0];
        assert_eq!(segment["name"], "batch job");
        assert!(segment.get("type").is_none() && segment.get("parent_id").is_none());
        assert!(segment.get("fault").is_none(), "no ERROR status, no fault");
    }

    #[test]
    fn throttles_in_progress_spans_and_names_without_valid_characters() {
        let mut throttled = span(
            1,
            Some(9),
            SpanKind::Client,
            "<>",
            vec![number("http.response.status_code", 429)],
        );
        throttled.status = Some(Status {
            code: StatusCode::Error as i32,
            message: String::new(),
        });
        throttled.end_time_unix_nano = 0;
        let mapped = span_documents(&request(vec![], vec![throttled]));
        let document = &mapped.documents[0];
        assert_eq!(
            (document["error"] == true, document["throttle"] == true),
            (true, true)
        );
        assert_eq!(document["in_progress"], true);
        assert!(document.get("end_time").is_none() && document.get("cause").is_none());
        assert_eq!(document["name"], "span");
    }

    #[test]
    fn spans_with_invalid_ids_or_times_are_refused_with_the_reason_and_the_rest_kept() {
        let good = span(1, None, SpanKind::Server, "ok", vec![]);
        let mut short_trace = good.clone();
        short_trace.trace_id = vec![1; 15];
        let mut zero_trace = good.clone();
        zero_trace.trace_id = vec![0; 16];
        let mut zero_span = good.clone();
        zero_span.span_id = vec![0; 8];
        let mut long_parent = good.clone();
        long_parent.parent_span_id = vec![1; 9];
        let mut no_start = good.clone();
        no_start.start_time_unix_nano = 0;
        let mut backwards = good.clone();
        backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
        let mapped = span_documents(&request(
            vec![],
            vec![
                short_trace,
                zero_trace,
                good,
                zero_span,
                long_parent,
                no_start,
                backwards,
            ],
        ));
        assert_eq!(mapped.documents.len(), 1);
        assert_eq!(mapped.rejected.len(), 6);
        for (reason, expected) in mapped.rejected.iter().zip([
            "trace id",
            "trace id",
            "span id",
            "parent span id",
            "no start time",
            "ends before",
        ]) {
            assert!(reason.contains(expected), "{reason}");
        }
    }
}
