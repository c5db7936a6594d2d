//! A finished segment as OpenTelemetry spans: the mapping from X-Ray's model to OTLP's.
//!
//! | segment document | span |
//! |---|---|
//! | the request's segment | a `SERVER` span, `parent_span_id` the caller's (sub)segment |
//! | `trace_id` `1-5759e988-bd862e3fe1be46a994272793` | `5759e988bd862e3fe1be46a994272793` (16 bytes) |
//! | `id`, `parent_id` | `span_id`, `parent_span_id` (8 bytes) |
//! | `name` (the service) | resource `service.name` (unless `OTEL_SERVICE_NAME`) |
//! | `service.version` | resource `service.version` |
//! | `origin`, `aws.ecs` | resource `cloud.provider` `aws`, `cloud.platform` `aws_ecs`, `aws.ecs.*`, `container.*`, `cloud.availability_zone` |
//! | `http.request` of the segment | `http.request.method`, `url.scheme`, `server.address`, `url.path`, `user_agent.original`, `client.address` |
//! | `http.response` | `http.response.status_code`, `http.response.body.size` |
//! | `remote` subsegment (outgoing HTTP) | `CLIENT` span `{method}`: `http.request.method`, `url.full`, `server.address`, `http.response.status_code` |
//! | `aws` subsegment (DynamoDB) | `CLIENT` span `DynamoDB.{operation}`: `rpc.system` `aws-api`, `rpc.service`, `rpc.method`, `aws.dynamodb.table_names`, `aws.request_id`, `cloud.region` |
//! | `local` subsegment (the embedded table) | `CLIENT` span `{operation} {table}`: `db.system.name` `redb`, `db.operation.name`, `db.collection.name` |
//! | a component's subsegment | an `INTERNAL` span of that name |
//! | `annotations` | attributes of the same key, listed in the string array `aws.xray.annotations` (the key X-Ray reads to index them as annotations) |
//! | `metadata` namespace `default`, key `k` | attribute `k` (X-Ray files unindexed attributes under `default`) |
//! | `metadata` namespace `ns`, key `k` | attribute `ns.k` |
//! | `fault` | status `ERROR` (message: the first exception's) |
//! | `error`, `throttle` (4xx, 429) | status unset (a client's mistake is not the server's error, as the HTTP conventions say); the status code attribute carries it |
//! | `cause.exceptions` | `exception` events: `exception.type`, `exception.message`, `exception.stacktrace` |
//! | `aws.xray.sampling_rule_name` | attribute `aws.xray.sampling_rule_name` |
//! | sampled | trace flags `01` |
//!
//! Attribute values are scalars as they are; metadata that is an object or array is its JSON
//! text (X-Ray shows it as such).

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;
use xray::document::{AnnotationValue, Entity, HOST_NAMESPACE, Namespace};

/// The attribute X-Ray reads to index attributes as annotations: the keys, as a string array.
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";
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

/// Maps a finished segment (subsegments nested) to its spans.
pub fn segment_spans(segment: &Entity, resource: &ResourceInfo) -> ServiceSpans {
    let trace_id = segment
        .trace_id
        .as_ref()
        .map(|id| trace_id_bytes(id.as_str()))
        .unwrap_or_default();
    let mut spans = Vec::with_capacity(1 + count(segment));
    let mut server = base_span(segment, &trace_id, SpanKind::Server);
    server.name = segment
        .http
        .as_ref()
        .and_then(|http| http.request.as_ref())
        .map(|request| request.method.clone())
        .unwrap_or_else(|| segment.name.clone());
    server.parent_span_id = segment
        .parent_id
        .as_ref()
        .map(|id| span_id_bytes(id.as_str()))
        .unwrap_or_default();
    server.flags = SAMPLED
        | if segment.parent_id.is_some() {
            PARENT_IS_REMOTE
        } else {
            0
        };
    if let Some(http) = &segment.http {
        if let Some(request) = &http.request {
            let (scheme, rest) = request.url.split_once("://").unwrap_or(("http", ""));
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            push(
                &mut server.attributes,
                "http.request.method",
                &request.method,
            );
            push(&mut server.attributes, "url.scheme", scheme);
            push(&mut server.attributes, "server.address", host);
            push(
                &mut server.attributes,
                "url.path",
                if path.is_empty() { "/" } else { path },
            );
            if let Some(agent) = &request.user_agent {
                push(&mut server.attributes, "user_agent.original", agent);
            }
            if let Some(client) = &request.client_ip {
                push(&mut server.attributes, "client.address", client);
            }
        }
        push_response(&mut server.attributes, http.response.as_ref());
    }
    if let Some(rule) = segment
        .aws
        .as_ref()
        .and_then(|aws| aws.xray.as_ref())
        .and_then(|sdk| sdk.sampling_rule_name.as_ref())
    {
        push(&mut server.attributes, "aws.xray.sampling_rule_name", rule);
    }
    add_fields(&mut server, segment);
    spans.push(server);
    for child in &segment.subsegments {
        subsegment_spans(child, &segment.id, &trace_id, &mut spans);
    }
    ServiceSpans {
        resource: service_resource(segment, resource),
        spans,
    }
}

fn subsegment_spans(
    entity: &Entity,
    parent: &xray::ids::SegmentId,
    trace_id: &[u8],
    out: &mut Vec<Span>,
) {
    let kind = match entity.namespace {
        Some(_) => SpanKind::Client,
        None => SpanKind::Internal,
    };
    let mut span = base_span(entity, trace_id, kind);
    span.parent_span_id = span_id_bytes(parent.as_str());
    span.flags = SAMPLED | PARENT_IS_LOCAL;
    match entity.namespace {
        Some(Namespace::Remote) => {
            if let Some(request) = entity.http.as_ref().and_then(|h| h.request.as_ref()) {
                span.name = request.method.clone();
                push(&mut span.attributes, "http.request.method", &request.method);
                push(&mut span.attributes, "url.full", &request.url);
            }
            push(&mut span.attributes, "server.address", &entity.name);
        }
        Some(Namespace::Aws) => {
            let aws = entity.aws.clone().unwrap_or_default();
            let operation = aws.operation.unwrap_or_default();
            span.name = format!("{}.{operation}", entity.name);
            push(&mut span.attributes, "rpc.system", "aws-api");
            push(&mut span.attributes, "rpc.service", &entity.name);
            push(&mut span.attributes, "rpc.method", &operation);
            if let Some(table) = aws.table_name {
                span.attributes.push(KeyValue {
                    key: "aws.dynamodb.table_names".into(),
                    value: Some(string_array(std::iter::once(table))),
                    ..Default::default()
                });
            }
            if let Some(id) = &aws.request_id {
                push(&mut span.attributes, "aws.request_id", id);
            }
            if let Some(region) = &aws.region {
                push(&mut span.attributes, "cloud.region", region);
            }
            if let Some(retries) = aws.retries {
                push_value(
                    &mut span.attributes,
                    "aws.retries",
                    any_value::Value::IntValue(retries.into()),
                );
            }
        }
        Some(Namespace::Local) => {
            if let Some(store) = &entity.metadata.host.store {
                span.name = format!("{} {}", store.operation, store.table);
                push(&mut span.attributes, "db.system.name", store.store);
                push(&mut span.attributes, "db.operation.name", &store.operation);
                push(&mut span.attributes, "db.collection.name", &store.table);
            }
        }
        None => {}
    }
    if let Some(http) = &entity.http {
        push_response(&mut span.attributes, http.response.as_ref());
    }
    add_fields(&mut span, entity);
    out.push(span);
    for child in &entity.subsegments {
        subsegment_spans(child, &entity.id, trace_id, out);
    }
}

fn base_span(entity: &Entity, trace_id: &[u8], kind: SpanKind) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id_bytes(entity.id.as_str()),
        name: entity.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: nanos(entity.start_time),
        end_time_unix_nano: nanos(entity.end_time.max(entity.start_time)),
        ..Default::default()
    }
}

/// Annotations, metadata, the failure status and the exceptions, shared by every span kind.
fn add_fields(span: &mut Span, entity: &Entity) {
    if !entity.annotations.is_empty() {
        for (key, value) in &entity.annotations {
            let value = match value {
                AnnotationValue::Text(text) => any_value::Value::StringValue(text.clone()),
                AnnotationValue::Integer(n) => any_value::Value::IntValue(*n),
                AnnotationValue::Number(n) => any_value::Value::DoubleValue(*n),
                AnnotationValue::Boolean(b) => any_value::Value::BoolValue(*b),
            };
            push_value(&mut span.attributes, key, value);
        }
        span.attributes.push(KeyValue {
            key: ANNOTATIONS_ATTRIBUTE.into(),
            value: Some(string_array(entity.annotations.keys().cloned())),
            ..Default::default()
        });
    }
    for (namespace, values) in &entity.metadata.namespaces {
        for (key, value) in values {
            let key = if namespace == "default" {
                key.clone()
            } else {
                format!("{namespace}.{key}")
            };
            push_value(&mut span.attributes, &key, json_value(value));
        }
    }
    let host = &entity.metadata.host;
    if host.ended_by_host {
        push_value(
            &mut span.attributes,
            &format!("{HOST_NAMESPACE}.ended_by_host"),
            any_value::Value::BoolValue(true),
        );
    }
    if let Some(why) = host.metadata_dropped {
        push(
            &mut span.attributes,
            &format!("{HOST_NAMESPACE}.metadata_dropped"),
            why,
        );
    }
    let exceptions = entity
        .cause
        .as_ref()
        .map(|cause| cause.exceptions.as_slice())
        .unwrap_or_default();
    if entity.fault {
        span.status = Some(Status {
            code: StatusCode::Error as i32,
            message: exceptions
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        });
    }
    for exception in exceptions {
        let mut attributes = Vec::new();
        if let Some(kind) = &exception.kind {
            push(&mut attributes, "exception.type", kind);
        }
        push(&mut attributes, "exception.message", &exception.message);
        if !exception.stack.is_empty() {
            let trace: Vec<String> = exception
                .stack
                .iter()
                .map(|frame| {
                    format!(
                        "at {} ({}:{})",
                        frame.label.as_deref().unwrap_or("?"),
                        frame.path.as_deref().unwrap_or("?"),
                        frame.line.map(|l| l.to_string()).unwrap_or_default()
                    )
                })
                .collect();
            push(&mut attributes, "exception.stacktrace", &trace.join("\n"));
        }
        span.events.push(Event {
            time_unix_nano: span.end_time_unix_nano,
            name: "exception".into(),
            attributes,
            ..Default::default()
        });
    }
}

fn push_response(attributes: &mut Vec<KeyValue>, response: Option<&xray::document::HttpResponse>) {
    let Some(response) = response else { return };
    if let Some(status) = response.status {
        push_value(
            attributes,
            "http.response.status_code",
            any_value::Value::IntValue(status.into()),
        );
    }
    if let Some(length) = response.content_length {
        push_value(
            attributes,
            "http.response.body.size",
            any_value::Value::IntValue(i64::try_from(length).unwrap_or(i64::MAX)),
        );
    }
}

fn service_resource(segment: &Entity, info: &ResourceInfo) -> Resource {
    let mut attributes = Vec::new();
    let name = info.service_name.as_deref().unwrap_or(&segment.name);
    push(&mut attributes, "service.name", name);
    if let Some(service) = &segment.service {
        push(&mut attributes, "service.version", &service.version);
    }
    push(&mut attributes, "telemetry.sdk.name", SCOPE_NAME);
    push(&mut attributes, "telemetry.sdk.language", "rust");
    push(
        &mut attributes,
        "telemetry.sdk.version",
        env!("CARGO_PKG_VERSION"),
    );
    if segment.origin.is_some() {
        push(&mut attributes, "cloud.provider", "aws");
        push(&mut attributes, "cloud.platform", "aws_ecs");
    }
    if let Some(ecs) = segment.aws.as_ref().and_then(|aws| aws.ecs.as_ref()) {
        let fields = [
            ("container.name", &ecs.container),
            ("container.id", &ecs.container_id),
            ("aws.ecs.container.arn", &ecs.container_arn),
            ("aws.ecs.task.arn", &ecs.task_arn),
            ("aws.ecs.task.family", &ecs.task_family),
            ("aws.ecs.cluster.arn", &ecs.cluster_arn),
            ("aws.ecs.launchtype", &ecs.launch_type),
            ("cloud.availability_zone", &ecs.availability_zone),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                let value = if key == "aws.ecs.launchtype" {
                    value.to_ascii_lowercase()
                } else {
                    value.clone()
                };
                push(&mut attributes, key, &value);
            }
        }
    }
    // The variable's attributes win over detected ones, but not over OTEL_SERVICE_NAME.
    for (key, value) in &info.attributes {
        if key == "service.name" && info.service_name.is_some() {
            continue;
        }
        attributes.retain(|kv: &KeyValue| &kv.key != key);
        push(&mut attributes, key, value);
    }
    Resource {
        attributes,
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

fn count(entity: &Entity) -> usize {
    entity.subsegments.iter().map(|s| 1 + count(s)).sum()
}

/// X-Ray's `1-5759e988-bd862e3fe1be46a994272793` as the 16 bytes OTLP carries.
pub fn trace_id_bytes(id: &str) -> Vec<u8> {
    let hex: String = id.get(2..).unwrap_or_default().replace('-', "");
    hex_bytes(&hex)
}

fn span_id_bytes(id: &str) -> Vec<u8> {
    hex_bytes(id)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn nanos(seconds: f64) -> u64 {
    // Epoch seconds with microseconds: rounding to whole microseconds keeps the conversion from
    // inventing sub-microsecond digits out of the float's error.
    ((seconds * 1e6).round() as u64).saturating_mul(1000)
}

fn push(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
    push_value(
        attributes,
        key,
        any_value::Value::StringValue(value.to_string()),
    );
}

fn push_value(attributes: &mut Vec<KeyValue>, key: &str, value: any_value::Value) {
    attributes.push(KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    });
}

fn string_array(values: impl Iterator<Item = String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue {
            values: values
                .map(|v| AnyValue {
                    value: Some(any_value::Value::StringValue(v)),
                })
                .collect(),
        })),
    }
}

fn json_value(value: &Value) -> any_value::Value {
    match value {
        Value::String(text) => any_value::Value::StringValue(text.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        other => any_value::Value::StringValue(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xray::document::{Aws, Cause, EcsFields, Exception, Http, HttpRequest, HttpResponse};
    use xray::ids::{SegmentId, TraceId};

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
        assert_eq!(text(server, "note"), r#"{"a":1}"#);
        assert_eq!(
            attribute(server, "app.n"),
            Some(&any_value::Value::DoubleValue(2.5))
        );
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
