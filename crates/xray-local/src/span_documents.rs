//! OpenTelemetry spans as X-Ray segment documents, the way X-Ray reads OTLP data (the rules of
//! the OpenTelemetry collector's `awsxray` exporter, which X-Ray's OTLP endpoint follows):
//!
//! | span                                              | document                                  |
//! |---------------------------------------------------|-------------------------------------------|
//! | trace id, 32 hex                                  | `trace_id` `1-<first 8>-<last 24>`        |
//! | span id, parent span id                           | `id`, `parent_id`                         |
//! | SERVER span, or a span with no parent             | a segment                                 |
//! | any other span                                    | an independent subsegment                 |
//! | resource `service.name`                           | the segment's `name`                      |
//! | CLIENT span                                       | `namespace: remote`                       |
//! | `rpc.system` = `aws-api`                          | `namespace: aws`, named by `rpc.service`  |
//! | `rpc.method`, `aws.request_id`, `aws.region`      | `aws.operation`, `aws.request_id`, …      |
//! | `aws.dynamodb.table_names` (one table)            | `aws.table_name`                          |
//! | `http.request.method`, `url.full` (or its parts)  | `http.request.method`, `http.request.url` |
//! | `http.response.status_code`                       | `http.response.status`                    |
//! | status ERROR with a 4xx status / otherwise        | `error` (and `throttle` for 429) / `fault`|
//! | `exception` events                                | `cause.exceptions`                        |
//! | keys listed in `aws.xray.annotations`             | `annotations` (key characters sanitised)  |
//! | every other attribute                             | `metadata.default`                        |
//! | resource attributes (segments only)               | `metadata.default["otel.resource.<key>"]` |
//! | `cloud.platform` (+ `aws.ecs.launchtype`)         | `origin`, e.g. `AWS::ECS::Fargate`        |
//! | ECS resource attributes                           | `aws.ecs`                                 |
//! | `telemetry.sdk.language`, `telemetry.sdk.version` | `aws.xray.sdk`, `aws.xray.sdk_version`    |
//!
//! A span X-Ray could not take (ids of the wrong length or all zero, no start time, an end
//! before its start) is refused with the reason, and the others of the request are kept.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The attribute naming which other attributes X-Ray indexes as annotations (a string array).
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";

/// X-Ray refuses longer segment names.
const MAX_NAME_CHARS: usize = 200;

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
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for span in spans(resource_spans) {
            match span_document(span, resource) {
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

/// The attributes of a span or a resource, by key.
#[derive(Clone, Copy)]
struct Attributes<'a>(&'a [KeyValue]);

impl<'a> Attributes<'a> {
    fn get(&self, key: &str) -> Option<&'a any_value::Value> {
        // The last of repeated keys wins, as in the SDKs' attribute maps.
        self.0
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn text(&self, key: &str) -> Option<&'a str> {
        match self.get(key) {
            Some(any_value::Value::StringValue(text)) if !text.is_empty() => Some(text),
            _ => None,
        }
    }

    fn first_text(&self, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|key| self.text(key))
    }

    fn integer(&self, keys: &[&str]) -> Option<i64> {
        keys.iter().find_map(|key| match self.get(key) {
            Some(any_value::Value::IntValue(n)) => Some(*n),
            Some(any_value::Value::StringValue(text)) => text.parse().ok(),
            Some(any_value::Value::DoubleValue(d)) if d.fract() == 0.0 => Some(*d as i64),
            _ => None,
        })
    }

    fn texts(&self, key: &str) -> Vec<&'a str> {
        match self.get(key) {
            Some(any_value::Value::ArrayValue(array)) => array
                .values
                .iter()
                .filter_map(|v| match &v.value {
                    Some(any_value::Value::StringValue(text)) => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
            Some(any_value::Value::StringValue(text)) => vec![text.as_str()],
            _ => Vec::new(),
        }
    }
}

/// Hex of an id: `Some` when it has `length` bytes and is not all zero (W3C's invalid id).
fn id_hex(bytes: &[u8], length: usize) -> Option<String> {
    if bytes.len() != length || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(hex(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The X-Ray form of a 16-byte trace id. X-Ray's OTLP endpoint takes any W3C trace id, so the
/// first 8 digits need not be a recent time (a random OpenTelemetry id is kept as it is).
pub fn xray_trace_id(bytes: &[u8]) -> Option<String> {
    let hex = id_hex(bytes, 16)?;
    Some(format!("1-{}-{}", &hex[..8], &hex[8..]))
}

fn seconds(nanos: u64) -> f64 {
    // Split so that a time in 2026 keeps its microseconds in an f64.
    (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9
}

/// One span as a document, or why X-Ray would refuse it.
fn span_document(span: &Span, resource: &[KeyValue]) -> Result<Value, String> {
    let trace_id =
        xray_trace_id(&span.trace_id).ok_or("the trace id is not 16 bytes, or is all zero")?;
    let id = id_hex(&span.span_id, 8).ok_or("the span id is not 8 bytes, or is all zero")?;
    let parent = match span.parent_span_id.len() {
        0 => None,
        _ => Some(
            id_hex(&span.parent_span_id, 8)
                .ok_or("the parent span id is not 8 bytes, or is all zero")?,
        ),
    };
    if span.start_time_unix_nano == 0 {
        return Err("it has no start time".into());
    }
    if span.end_time_unix_nano != 0 && span.end_time_unix_nano < span.start_time_unix_nano {
        return Err("it ends before it starts".into());
    }
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let is_segment = kind == SpanKind::Server || parent.is_none();
    let attributes = Attributes(&span.attributes);
    let resource = Attributes(resource);
    // The attributes a field of the document took, left out of the metadata.
    let mut used: BTreeSet<&str> = BTreeSet::from([ANNOTATIONS_ATTRIBUTE]);

    let aws_sdk_call = attributes.text("rpc.system") == Some("aws-api");
    let mut document = Map::new();
    document.insert("trace_id".into(), json!(trace_id));
    document.insert("id".into(), json!(id));
    document.insert(
        "name".into(),
        json!(segment_name(span, kind, is_segment, attributes, resource)),
    );
    document.insert(
        "start_time".into(),
        json!(seconds(span.start_time_unix_nano)),
    );
    if span.end_time_unix_nano == 0 {
        document.insert("in_progress".into(), json!(true));
    } else {
        document.insert("end_time".into(), json!(seconds(span.end_time_unix_nano)));
    }
    if let Some(parent) = &parent {
        document.insert("parent_id".into(), json!(parent));
    }
    if !is_segment {
        document.insert("type".into(), json!("subsegment"));
        if aws_sdk_call || attributes.text("aws.service").is_some() {
            document.insert("namespace".into(), json!("aws"));
        } else if kind == SpanKind::Client {
            document.insert("namespace".into(), json!("remote"));
        }
    }
    if let Some(http) = http_fields(attributes, &mut used) {
        document.insert("http".into(), http);
    }
    let status = attributes.integer(&["http.response.status_code", "http.status_code"]);
    if let Some(cause) = outcome(span, &id, status, &mut document) {
        document.insert("cause".into(), cause);
    }
    let mut aws = aws_call_fields(attributes, aws_sdk_call, &mut used);
    if is_segment {
        if let Some(origin) = origin(resource) {
            document.insert("origin".into(), json!(origin));
        }
        if let Some(ecs) = ecs_fields(resource) {
            aws.insert("ecs".into(), ecs);
        }
        if let Some(language) = resource.text("telemetry.sdk.language") {
            let mut xray = Map::new();
            xray.insert("sdk".into(), json!(format!("opentelemetry for {language}")));
            if let Some(version) = resource.text("telemetry.sdk.version") {
                xray.insert("sdk_version".into(), json!(version));
            }
            aws.insert("xray".into(), Value::Object(xray));
        }
        if let Some(version) = resource.text("service.version") {
            document.insert("service".into(), json!({ "version": version }));
        }
        if let Some(user) = attributes.text("enduser.id") {
            document.insert("user".into(), json!(user));
            used.insert("enduser.id");
        }
    }
    if !aws.is_empty() {
        document.insert("aws".into(), Value::Object(aws));
    }
    let (annotations, metadata) = annotations_and_metadata(attributes, resource, is_segment, &used);
    if !annotations.is_empty() {
        document.insert("annotations".into(), Value::Object(annotations));
    }
    if !metadata.is_empty() {
        document.insert("metadata".into(), json!({ "default": metadata }));
    }
    Ok(Value::Object(document))
}

/// The name X-Ray gives the document: a service's name, not an operation's.
fn segment_name(
    span: &Span,
    kind: SpanKind,
    is_segment: bool,
    attributes: Attributes,
    resource: Attributes,
) -> String {
    let calls_out = matches!(
        kind,
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
    );
    let aws_sdk_call = attributes.text("rpc.system") == Some("aws-api");
    let chosen = None
        .or(if kind == SpanKind::Server {
            attributes.text("aws.local.service").map(str::to_string)
        } else {
            None
        })
        .or(if calls_out {
            attributes.text("aws.remote.service").map(|name| {
                let trimmed = name
                    .strip_prefix("AWS.SDK.")
                    .or_else(|| name.strip_prefix("AWS::"));
                match trimmed {
                    Some(rest) if aws_sdk_call => rest.to_string(),
                    _ => name.to_string(),
                }
            })
        } else {
            None
        })
        .or_else(|| attributes.text("peer.service").map(str::to_string))
        .or_else(|| attributes.text("aws.service").map(str::to_string))
        .or_else(|| {
            // A segment is a service: its resource names it (X-Ray reads this for SERVER spans;
            // a root span of another kind is a segment here too, so it is named the same way).
            is_segment
                .then(|| resource.text("service.name").map(str::to_string))
                .flatten()
        })
        .or_else(|| attributes.text("rpc.service").map(str::to_string))
        .or_else(|| {
            attributes
                .first_text(&["server.address", "http.host", "net.peer.name"])
                .map(str::to_string)
        })
        .unwrap_or_else(|| span.name.clone());
    fix_segment_name(&chosen)
}

/// A name with the characters X-Ray refuses removed, cut to 200 characters, `span` when
/// nothing is left.
pub fn fix_segment_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || "_.:/%&#=+\\-@".contains(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    if kept.is_empty() { "span".into() } else { kept }
}

/// An annotation key as X-Ray indexes it: letters, digits and underscores only.
pub fn fix_annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn http_fields<'a>(attributes: Attributes<'a>, used: &mut BTreeSet<&'a str>) -> Option<Value> {
    let mut take = |keys: &[&'a str]| -> Option<&'a str> {
        let key = keys.iter().find(|key| attributes.text(key).is_some())?;
        used.insert(key);
        attributes.text(key)
    };
    let mut request = Map::new();
    if let Some(method) = take(&["http.request.method", "http.method"]) {
        request.insert("method".into(), json!(method));
    }
    let url = take(&["url.full", "http.url"])
        .map(str::to_string)
        .or_else(|| {
            // A server span names its URL by parts.
            let scheme = take(&["url.scheme", "http.scheme"])?;
            let host = take(&["server.address", "http.host", "net.host.name"])?;
            let port = attributes.integer(&["server.port", "net.host.port"]);
            let path = take(&["url.path", "http.target"]).unwrap_or("");
            let query = take(&["url.query"]);
            let mut url = format!("{scheme}://{host}");
            if let Some(port) =
                port.filter(|p| !matches!((scheme, *p), ("http", 80) | ("https", 443)))
            {
                let _ = write!(url, ":{port}");
            }
            url.push_str(path);
            if let Some(query) = query {
                let _ = write!(url, "?{query}");
            }
            Some(url)
        });
    if let Some(url) = url {
        request.insert("url".into(), json!(url));
    }
    if let Some(agent) = take(&["user_agent.original", "http.user_agent"]) {
        request.insert("user_agent".into(), json!(agent));
    }
    if let Some(client) = take(&["client.address", "http.client_ip"]) {
        request.insert("client_ip".into(), json!(client));
    }
    let mut response = Map::new();
    for (keys, field) in [
        (
            &["http.response.status_code", "http.status_code"][..],
            "status",
        ),
        (
            &["http.response.body.size", "http.response_content_length"][..],
            "content_length",
        ),
    ] {
        if let Some(value) = attributes.integer(keys) {
            response.insert(field.into(), json!(value));
            if let Some(key) = keys.iter().find(|key| attributes.get(key).is_some()) {
                used.insert(key);
            }
        }
    }
    if request.is_empty() && response.is_empty() {
        return None;
    }
    let mut http = Map::new();
    if !request.is_empty() {
        http.insert("request".into(), Value::Object(request));
    }
    if !response.is_empty() {
        http.insert("response".into(), Value::Object(response));
    }
    Some(Value::Object(http))
}

/// Sets `fault`, `error` and `throttle` from the span's status; the `cause` when it failed.
fn outcome(
    span: &Span,
    id: &str,
    http_status: Option<i64>,
    document: &mut Map<String, Value>,
) -> Option<Value> {
    let status = span.status.as_ref()?;
    if StatusCode::try_from(status.code) != Ok(StatusCode::Error) {
        return None;
    }
    match http_status {
        Some(429) => {
            document.insert("error".into(), json!(true));
            document.insert("throttle".into(), json!(true));
        }
        Some(400..=499) => {
            document.insert("error".into(), json!(true));
        }
        _ => {
            document.insert("fault".into(), json!(true));
        }
    }
    let mut exceptions: Vec<Value> = span
        .events
        .iter()
        .filter(|event| event.name == "exception")
        .enumerate()
        .map(|(index, event)| {
            let event_attributes = Attributes(&event.attributes);
            let mut exception = Map::new();
            exception.insert("id".into(), json!(exception_id(id, index)));
            if let Some(kind) = event_attributes.text("exception.type") {
                exception.insert("type".into(), json!(kind));
            }
            if let Some(message) = event_attributes.text("exception.message") {
                exception.insert("message".into(), json!(message));
            }
            if let Some(stack) = event_attributes.text("exception.stacktrace") {
                // Kept whole: languages print stacks too differently to split into frames.
                exception.insert("stack".into(), json!([{ "label": stack }]));
            }
            Value::Object(exception)
        })
        .collect();
    if exceptions.is_empty() && !status.message.is_empty() {
        exceptions.push(json!({"id": exception_id(id, 0), "message": status.message}));
    }
    (!exceptions.is_empty()).then(|| json!({ "exceptions": exceptions }))
}

/// An exception id (16 hex digits like a segment id) that differs for each exception of a span.
fn exception_id(span_id: &str, index: usize) -> String {
    let value = u64::from_str_radix(span_id, 16).unwrap_or(1);
    format!("{:016x}", value ^ (index as u64 + 1).rotate_left(32))
}

fn aws_call_fields<'a>(
    attributes: Attributes<'a>,
    aws_sdk_call: bool,
    used: &mut BTreeSet<&'a str>,
) -> Map<String, Value> {
    let mut aws = Map::new();
    let mut take = |keys: &[&'a str], field: &str, aws: &mut Map<String, Value>| {
        if let Some(key) = keys.iter().find(|key| attributes.text(key).is_some()) {
            aws.insert(field.into(), json!(attributes.text(key)));
            used.insert(key);
        }
    };
    if aws_sdk_call {
        take(&["rpc.method", "aws.operation"], "operation", &mut aws);
    } else {
        take(&["aws.operation"], "operation", &mut aws);
    }
    take(&["aws.region"], "region", &mut aws);
    take(&["aws.request_id", "aws.requestId"], "request_id", &mut aws);
    take(&["aws.table_name"], "table_name", &mut aws);
    let tables = attributes.texts("aws.dynamodb.table_names");
    match tables.as_slice() {
        [] => {}
        [table] => {
            aws.insert("table_name".into(), json!(table));
            used.insert("aws.dynamodb.table_names");
        }
        many => {
            aws.insert("table_names".into(), json!(many));
            used.insert("aws.dynamodb.table_names");
        }
    }
    aws
}

/// `origin` from the resource's cloud platform, as X-Ray names AWS compute.
fn origin(resource: Attributes) -> Option<&'static str> {
    if resource.text("cloud.provider").is_some_and(|p| p != "aws") {
        return None;
    }
    Some(match resource.text("cloud.platform")? {
        "aws_ec2" => "AWS::EC2::Instance",
        "aws_ecs" => match resource.text("aws.ecs.launchtype") {
            Some("ec2") => "AWS::ECS::EC2",
            Some("fargate") => "AWS::ECS::Fargate",
            _ => "AWS::ECS::Container",
        },
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_app_runner" => "AWS::AppRunner::Service",
        _ => return None,
    })
}

/// `aws.ecs` from the ECS resource attributes.
fn ecs_fields(resource: Attributes) -> Option<Value> {
    let mut ecs = Map::new();
    for (key, field) in [
        ("container.name", "container"),
        ("container.id", "container_id"),
        ("aws.ecs.container.arn", "container_arn"),
        ("aws.ecs.task.arn", "task_arn"),
        ("aws.ecs.task.family", "task_family"),
        ("aws.ecs.cluster.arn", "cluster_arn"),
        ("aws.ecs.launchtype", "launch_type"),
        ("cloud.availability_zone", "availability_zone"),
    ] {
        if let Some(value) = resource.text(key) {
            ecs.insert(field.into(), json!(value));
        }
    }
    let on_ecs = resource.text("cloud.platform") == Some("aws_ecs")
        || resource.text("aws.ecs.task.arn").is_some();
    (on_ecs && !ecs.is_empty()).then_some(Value::Object(ecs))
}

/// The attributes listed in `aws.xray.annotations` as annotations (scalar values only, as
/// X-Ray indexes them); the others, and a segment's resource attributes, as metadata.
fn annotations_and_metadata(
    attributes: Attributes,
    resource: Attributes,
    is_segment: bool,
    used: &BTreeSet<&str>,
) -> (Map<String, Value>, Map<String, Value>) {
    let indexed: BTreeSet<&str> = attributes
        .texts(ANNOTATIONS_ATTRIBUTE)
        .into_iter()
        .collect();
    let mut annotations = Map::new();
    let mut metadata = Map::new();
    let mut place = |key: String, value: &AnyValue| {
        let scalar = match &value.value {
            Some(any_value::Value::StringValue(s)) => Some(json!(s)),
            Some(any_value::Value::BoolValue(b)) => Some(json!(b)),
            Some(any_value::Value::IntValue(n)) => Some(json!(n)),
            Some(any_value::Value::DoubleValue(d)) if d.is_finite() => Some(json!(d)),
            _ => None,
        };
        match scalar {
            Some(scalar) if indexed.contains(key.as_str()) => {
                annotations.insert(fix_annotation_key(&key), scalar);
            }
            _ => {
                metadata.insert(key, any_to_json(value));
            }
        }
    };
    if is_segment {
        for kv in resource.0 {
            if let Some(value) = &kv.value {
                place(format!("otel.resource.{}", kv.key), value);
            }
        }
    }
    for kv in attributes.0 {
        if used.contains(kv.key.as_str()) {
            continue;
        }
        if let Some(value) = &kv.value {
            place(kv.key.clone(), value);
        }
    }
    (annotations, metadata)
}

/// An attribute value as JSON: bytes as hex, non-finite numbers as text.
fn any_to_json(value: &AnyValue) -> Value {
    match &value.value {
        // A string-table index means something in profiles only; a span has no table.
        None | Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(n)) => json!(n),
        Some(any_value::Value::DoubleValue(d)) if d.is_finite() => json!(d),
        Some(any_value::Value::DoubleValue(d)) => json!(d.to_string()),
        Some(any_value::Value::BytesValue(bytes)) => json!(hex(bytes)),
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => Value::Object(
            list.values
                .iter()
                .map(|kv| {
                    let value = kv.value.as_ref().map(any_to_json).unwrap_or(Value::Null);
                    (kv.key.clone(), value)
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};

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
        assert_eq!(
            client["metadata"]["default"],
            json!({"server.address": "inventory.local"}),
            "resource attributes go to segments only, and the URL's parts to the URL"
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
        assert_eq!(
            dynamodb["metadata"]["default"],
            json!({"rpc.system": "aws-api", "rpc.service": "DynamoDB"})
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
        assert_eq!(fix_segment_name(&"é".repeat(300)).chars().count(), 200);
        assert_eq!(fix_annotation_key("http.route-x"), "http_route_x");
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
