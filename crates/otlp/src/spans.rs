//! A finished segment as OTLP spans: the mapping itself is [`xray::otel::mapping`] (the rule
//! table is there, both directions); this module only writes its spans as the protobuf types,
//! adds what the exporter says about itself (`telemetry.sdk.*`, the instrumentation scope) and
//! what the environment sets (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), and groups
//! spans by resource.
//!
//! Span `flags`: the `SERVER` span's parent is remote (the caller), every other span's parent is
//! local; the W3C "sampled" bit is set (only sampled segments are exported).

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use xray::document::Entity;
use xray::otel::{self, Attributes, mapping};

/// The instrumentation scope the spans are reported under.
pub const SCOPE_NAME: &str = "xray-host";

/// `flags` of a span whose parent is remote (bits 8 and 9: "is remote" is known, and true).
const PARENT_IS_REMOTE: u32 = 0x300;
/// `flags` of a span whose parent is known to be local (bit 8 only).
const PARENT_IS_LOCAL: u32 = 0x100;
/// The W3C trace flag "sampled".
const SAMPLED: u32 = 0x01;

/// The resource of a service's spans.
#[derive(Debug, Clone, Default)]
pub struct ResourceInfo {
    /// `OTEL_SERVICE_NAME`, when set: wins over the segment's name.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`: added to what the host detects, and winning over it.
    pub attributes: Vec<(String, String)>,
}

/// A segment's spans with the resource they belong to, ready to be batched: segments of the
/// same service share one `ResourceSpans` when a batch is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpans {
    /// The resource (service name, version, where it runs).
    pub resource: Resource,
    /// The spans, the `SERVER` span first.
    pub spans: Vec<Span>,
}

/// Maps a finished segment (subsegments nested) to its spans (none for an entity with no trace
/// id, which is not a segment).
pub fn segment_spans(segment: &Entity, resource: &ResourceInfo) -> ServiceSpans {
    let Some(mapped) = mapping::segment_spans(segment) else {
        return ServiceSpans {
            resource: service_resource(Attributes::default(), resource),
            spans: Vec::new(),
        };
    };
    ServiceSpans {
        resource: service_resource(mapped.resource, resource),
        spans: mapped.spans.iter().map(proto_span).collect(),
    }
}

fn proto_span(span: &otel::Span) -> Span {
    let kind = match span.kind {
        otel::SpanKind::Internal => SpanKind::Internal,
        otel::SpanKind::Server => SpanKind::Server,
        otel::SpanKind::Client => SpanKind::Client,
        otel::SpanKind::Producer => SpanKind::Producer,
        otel::SpanKind::Consumer => SpanKind::Consumer,
    };
    let parent_flags = match (span.kind, &span.parent_span_id) {
        (otel::SpanKind::Server, Some(_)) => PARENT_IS_REMOTE,
        (otel::SpanKind::Server, None) => 0,
        _ => PARENT_IS_LOCAL,
    };
    let status = match &span.status {
        otel::Status::Unset => None,
        otel::Status::Ok => Some(Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        }),
        otel::Status::Error(message) => Some(Status {
            code: StatusCode::Error as i32,
            message: message.clone(),
        }),
    };
    Span {
        trace_id: span.trace_id.to_w3c_bytes().to_vec(),
        span_id: span.span_id.to_w3c_bytes().to_vec(),
        parent_span_id: span
            .parent_span_id
            .as_ref()
            .map(|id| id.to_w3c_bytes().to_vec())
            .unwrap_or_default(),
        flags: SAMPLED | parent_flags,
        name: span.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: nanos(span.start_time),
        end_time_unix_nano: nanos(span.end_time.unwrap_or(span.start_time)),
        attributes: key_values(&span.attributes),
        events: span
            .events
            .iter()
            .map(|event| Event {
                time_unix_nano: nanos(event.time),
                name: event.name.clone(),
                attributes: key_values(&event.attributes),
                ..Default::default()
            })
            .collect(),
        status,
        ..Default::default()
    }
}

fn service_resource(mut attributes: Attributes, info: &ResourceInfo) -> Resource {
    if let Some(name) = &info.service_name {
        attributes.0.retain(|(key, _)| key != "service.name");
        attributes
            .0
            .insert(0, ("service.name".into(), otel::Value::Text(name.clone())));
    }
    attributes.push_text("telemetry.sdk.name", SCOPE_NAME);
    attributes.push_text("telemetry.sdk.language", "rust");
    attributes.push_text("telemetry.sdk.version", env!("CARGO_PKG_VERSION"));
    // The variable's attributes win over detected ones, but not over OTEL_SERVICE_NAME.
    for (key, value) in &info.attributes {
        if key == "service.name" && info.service_name.is_some() {
            continue;
        }
        attributes.0.retain(|(k, _)| k != key);
        attributes.push_text(key.clone(), value.clone());
    }
    Resource {
        attributes: key_values(&attributes),
        ..Default::default()
    }
}

/// Groups spans by resource into the request body's `resource_spans`.
pub fn group_by_resource(batch: Vec<ServiceSpans>) -> Vec<ResourceSpans> {
    let mut groups: Vec<(Resource, Vec<Span>)> = Vec::new();
    for ServiceSpans { resource, spans } in batch {
        match groups.iter_mut().find(|(r, _)| *r == resource) {
            Some((_, existing)) => existing.extend(spans),
            None => groups.push((resource, spans)),
        }
    }
    groups
        .into_iter()
        .map(|(resource, spans)| ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect()
}

fn nanos(seconds: f64) -> u64 {
    // Epoch seconds with microseconds: rounding to whole microseconds keeps the conversion from
    // inventing sub-microsecond digits out of the float's error.
    ((seconds * 1e6).round() as u64).saturating_mul(1000)
}

fn key_values(attributes: &Attributes) -> Vec<KeyValue> {
    attributes
        .0
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: Some(any_value(value)),
            ..Default::default()
        })
        .collect()
}

fn any_value(value: &otel::Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        otel::Value::Empty => None,
        otel::Value::Text(text) => Some(V::StringValue(text.clone())),
        otel::Value::Bool(b) => Some(V::BoolValue(*b)),
        otel::Value::Int(n) => Some(V::IntValue(*n)),
        otel::Value::Double(d) => Some(V::DoubleValue(*d)),
        otel::Value::Bytes(bytes) => Some(V::BytesValue(bytes.clone())),
        otel::Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(any_value).collect(),
        })),
        otel::Value::Map(pairs) => Some(V::KvlistValue(KeyValueList {
            values: key_values(&Attributes(pairs.clone())),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xray::document::{
        AnnotationValue, Aws, Cause, EcsFields, Exception, Http, HttpRequest, HttpResponse,
        Namespace,
    };
    use xray::ids::{SegmentId, TraceId};
    use xray::otel::mapping::ANNOTATIONS_ATTRIBUTE;

    fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn text(span: &Span, key: &str) -> String {
        match attribute(span, key) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            other => panic!("{key}: {other:?}"),
        }
    }

    fn segment() -> Entity {
        let trace = TraceId::parse("1-5759e988-bd862e3fe1be46a994272793").unwrap();
        let mut segment = Entity::new(
            "Backend".into(),
            SegmentId::parse("00f067aa0ba902b7").unwrap(),
            1.5,
            1.75,
        );
        segment.trace_id = Some(trace);
        segment.parent_id = SegmentId::parse("53995c3f42cd8ad8");
        segment.origin = Some("AWS::ECS::Container".into());
        segment.http = Some(Http {
            request: Some(HttpRequest {
                method: "GET".into(),
                url: "http://backend:8080/api".into(),
                user_agent: Some("curl".into()),
                client_ip: Some("10.0.0.1".into()),
                ..Default::default()
            }),
            response: Some(HttpResponse {
                status: Some(500),
                content_length: Some(12),
            }),
        });
        segment.aws = Some(Aws {
            ecs: Some(EcsFields {
                container: Some("backend".into()),
                launch_type: Some("FARGATE".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        segment.fault = true;
        segment.cause = Some(Cause {
            exceptions: vec![Exception {
                id: SegmentId::new(),
                message: "component trapped".into(),
                kind: Some("trap".into()),
                remote: false,
                stack: Vec::new(),
            }],
        });
        segment
            .annotations
            .insert("order".into(), AnnotationValue::Integer(7));
        segment.metadata.namespaces.insert(
            "default".into(),
            [("note".to_string(), serde_json::json!({"a": 1}))].into(),
        );
        segment.metadata.namespaces.insert(
            "app".into(),
            [("n".to_string(), serde_json::json!(2.5))].into(),
        );
        let mut call = Entity::new(
            "DynamoDB".into(),
            SegmentId::parse("1111111111111111").unwrap(),
            1.6,
            1.7,
        );
        call.namespace = Some(Namespace::Aws);
        call.aws = Some(Aws {
            operation: Some("PutItem".into()),
            table_name: Some("last-access".into()),
            request_id: Some("REQ1".into()),
            ..Default::default()
        });
        let mut work = Entity::new(
            "work".into(),
            SegmentId::parse("2222222222222222").unwrap(),
            1.55,
            1.72,
        );
        work.subsegments.push(call);
        segment.subsegments.push(work);
        segment
    }

    #[test]
    fn the_segment_is_a_server_span_with_the_http_conventions() {
        let mapped = segment_spans(&segment(), &ResourceInfo::default());
        let server = &mapped.spans[0];
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(hex(&server.trace_id), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(hex(&server.span_id), "00f067aa0ba902b7");
        assert_eq!(hex(&server.parent_span_id), "53995c3f42cd8ad8");
        assert_eq!(server.flags, 0x301);
        assert_eq!(server.start_time_unix_nano, 1_500_000_000);
        assert_eq!(server.end_time_unix_nano, 1_750_000_000);
        assert_eq!(text(server, "http.request.method"), "GET");
        assert_eq!(text(server, "server.address"), "backend:8080");
        assert_eq!(text(server, "url.path"), "/api");
        assert_eq!(
            attribute(server, "http.response.status_code"),
            Some(&any_value::Value::IntValue(500))
        );
        let status = server.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "component trapped");
        assert_eq!(server.events[0].name, "exception");
        // The annotation, and the list that makes X-Ray index it.
        assert_eq!(
            attribute(server, "order"),
            Some(&any_value::Value::IntValue(7))
        );
        match attribute(server, ANNOTATIONS_ATTRIBUTE) {
            Some(any_value::Value::ArrayValue(list)) => assert_eq!(list.values.len(), 1),
            other => panic!("{other:?}"),
        }
        // Metadata as structured values; another namespace as X-Ray reads it back.
        assert!(matches!(
            attribute(server, "note"),
            Some(any_value::Value::KvlistValue(list)) if list.values[0].key == "a"
        ));
        assert_eq!(text(server, "aws.xray.metadata.app"), r#"{"n":2.5}"#);
    }

    #[test]
    fn subsegments_are_nested_client_and_internal_spans() {
        let mapped = segment_spans(&segment(), &ResourceInfo::default());
        let [_, work, call] = mapped.spans.as_slice() else {
            panic!("{:?}", mapped.spans)
        };
        assert_eq!(work.kind, SpanKind::Internal as i32);
        assert_eq!(hex(&work.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(call.kind, SpanKind::Client as i32);
        assert_eq!(hex(&call.parent_span_id), "2222222222222222");
        assert_eq!(call.name, "DynamoDB.PutItem");
        assert_eq!(text(call, "rpc.system"), "aws-api");
        assert_eq!(text(call, "rpc.method"), "PutItem");
        assert_eq!(text(call, "aws.request_id"), "REQ1");
        assert!(call.status.is_none());
    }

    #[test]
    fn the_resource_names_the_service_and_where_it_runs() {
        let info = ResourceInfo {
            service_name: None,
            attributes: vec![
                ("deployment.environment".into(), "prod".into()),
                ("container.name".into(), "override".into()),
            ],
        };
        let mapped = segment_spans(&segment(), &info);
        let value = |key: &str| {
            mapped
                .resource
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
        };
        assert_eq!(value("service.name").as_deref(), Some("Backend"));
        assert_eq!(value("cloud.platform").as_deref(), Some("aws_ecs"));
        assert_eq!(value("aws.ecs.launchtype").as_deref(), Some("fargate"));
        assert_eq!(value("container.name").as_deref(), Some("override"));
        assert_eq!(value("deployment.environment").as_deref(), Some("prod"));
        let named = segment_spans(
            &segment(),
            &ResourceInfo {
                service_name: Some("orders".into()),
                attributes: vec![("service.name".into(), "ignored".into())],
            },
        );
        assert!(
            named
                .resource
                .attributes
                .iter()
                .any(|kv| kv.key == "service.name"
                    && kv.value
                        == Some(AnyValue {
                            value: Some(any_value::Value::StringValue("orders".into()))
                        }))
        );
    }

    #[test]
    fn batches_share_one_resource_per_service() {
        let info = ResourceInfo::default();
        let batch = vec![
            segment_spans(&segment(), &info),
            segment_spans(&segment(), &info),
        ];
        let grouped = group_by_resource(batch);
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].scope_spans[0].spans.len(), 6);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
