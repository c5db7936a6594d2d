//! OpenTelemetry ↔ X-Ray: the one rule table, both directions, over the typed document
//! ([`Entity`]). The span → document rules are the OpenTelemetry collector's `awsxray` exporter's
//! (which X-Ray's own OTLP endpoint follows); the document → span rules are chosen so that a
//! document the host recorded comes back the same through them.
//!
//! | span | document |
//! |---|---|
//! | trace id, 32 hex | `trace_id` `1-<first 8>-<last 24>` ([`TraceId::from_w3c`]) |
//! | span id, parent span id | `id`, `parent_id` |
//! | `SERVER` span, or a span with no parent | a segment |
//! | any other span | a subsegment (`type: subsegment` when sent on its own) |
//! | name: `aws.local.service` (`SERVER`), `aws.remote.service` (`CLIENT`, `PRODUCER`, `CONSUMER`; `AWS.SDK.` cut for AWS SDK spans), `peer.service`, `aws.service`, resource `service.name` (segments), `rpc.service`, `server.address`, `http.host`, `net.peer.name`, the span's name: the first present | `name`, characters X-Ray refuses dropped ([`names::sanitize_name`]) |
//! | `rpc.system` = `aws-api`, or `aws.service` present | `namespace: aws` |
//! | `db.system.name` = `redb` (the host's embedded table store) | `namespace: local` |
//! | kind `CLIENT` (or `PRODUCER`/`CONSUMER` with `aws.remote.service`) | `namespace: remote` |
//! | `http.request.method`, `url.full` (or `url.scheme` + `server.address` + `server.port` + `url.path` + `url.query`), `user_agent.original`, `client.address` (the older names too) | `http.request` |
//! | `http.client_ip` | `http.request.client_ip` with `x_forwarded_for` |
//! | `http.response.status_code`, `http.response.body.size` | `http.response.status`, `content_length` |
//! | status code 400–499 (whatever the span's status) | `error`; 429 `throttle` too |
//! | status code 500–599, or status `ERROR` without a 4xx/5xx code | `fault` |
//! | `exception` events: `exception.type`, `.message`, `.stacktrace` (one frame a line, `at label (path:line)`) | `cause.exceptions`, `remote` for `CLIENT` and `PRODUCER` spans, ids derived from the span id |
//! | status `ERROR` with a description and no `exception` event | one exception with the description |
//! | `rpc.method` (AWS SDK) or `aws.operation`, `aws.region` or `cloud.region` (written back as `cloud.region`), `aws.request_id`, `aws.retries` | `aws.operation`, `region`, `request_id`, `retries` |
//! | `aws.dynamodb.table_names` (or `aws.table_name`) | `aws.table_name` (one table), `aws.table_names` (several) |
//! | keys listed in the string array `aws.xray.annotations`, scalar values | `annotations`, keys made valid ([`names::sanitize_annotation_key`]) |
//! | `aws.xray.metadata.<ns>`: a JSON object as text | `metadata.<ns>` |
//! | every other attribute | `metadata.default` |
//! | resource attributes (segments only) | `metadata.default["otel.resource.<key>"]` |
//! | resource `cloud.platform` (+ `aws.ecs.launchtype`) | `origin`, e.g. `AWS::ECS::Fargate` |
//! | resource ECS attributes (`container.name`, `aws.ecs.task.arn`, …) | `aws.ecs` |
//! | resource `aws.log.group.arns` (the name the ARN's seventh field), else `aws.log.group.names`: string arrays, or text split at `&` | `aws.cloudwatch_logs` |
//! | resource `telemetry.sdk.language`, `.version` | `aws.xray.sdk` `opentelemetry for <language>`, `sdk_version` |
//! | resource `service.version` | `service.version` |
//! | `aws.xray.sampling_rule_name`, `enduser.id` | `aws.xray.sampling_rule_name`, `user` |
//!
//! The attribute a field took is not repeated in the metadata. Back, [`segment_spans`] writes a
//! segment as a `SERVER` span (named for its HTTP method, its URL by parts) and each subsegment
//! as a `CLIENT` span (one with a namespace: `remote` with `url.full` and `server.address`,
//! `aws` with `rpc.*`, `local` with `db.*` and `peer.service`) or an `INTERNAL` span, with the
//! same attributes as above; `fault` is status `ERROR` (its message the first exception's),
//! `error` and `throttle` are carried by the status code alone (a 4xx is the client's mistake,
//! not the span's error), and a namespace other than `default` (the host's notes in
//! `xray_host` too) is one `aws.xray.metadata.<ns>` attribute. What has no OpenTelemetry form
//! is not carried: `traced`, and `error` without a 4xx status code.

use super::{Attributes, Event, ServiceSpans, Span, SpanKind, Status, Value};
use crate::document::{
    AnnotationValue, Aws, Cause, CloudWatchLogGroup, EcsFields, Entity, EntityKind, Exception,
    Http, HttpRequest, HttpResponse, Namespace, ServiceVersion, StackFrame, XraySdk,
};
use crate::ids::{SegmentId, TraceId};
use crate::names;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The attribute naming which other attributes X-Ray indexes as annotations (a string array).
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";
/// The prefix of an attribute holding a whole metadata namespace as JSON text.
pub const METADATA_PREFIX: &str = "aws.xray.metadata.";
/// The namespace unindexed attributes are filed under.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The prefix of a resource attribute's key in a segment's metadata.
pub const RESOURCE_PREFIX: &str = "otel.resource.";
/// The attribute carrying the centralized sampling rule that sampled a segment.
pub const SAMPLING_RULE_ATTRIBUTE: &str = "aws.xray.sampling_rule_name";
/// The `db.system.name` of the host's embedded table store (a `local` subsegment).
pub const EMBEDDED_STORE: &str = "redb";
/// Stack lines kept of an `exception.stacktrace`.
pub const MAX_STACK_LINES: usize = 32;

/// The resource attribute naming the service's log groups (the semantic conventions' AWS logs
/// attributes, a string array), which X-Ray's OTLP endpoint reads into `aws.cloudwatch_logs`.
pub const LOG_GROUP_NAMES: &str = "aws.log.group.names";
/// The resource attribute holding the same log groups' ARNs (a string array).
pub const LOG_GROUP_ARNS: &str = "aws.log.group.arns";

/// `origin` ↔ resource `cloud.platform` and `aws.ecs.launchtype`.
const ORIGINS: &[(&str, &str, Option<&str>)] = &[
    ("AWS::EC2::Instance", "aws_ec2", None),
    ("AWS::ECS::EC2", "aws_ecs", Some("ec2")),
    ("AWS::ECS::Fargate", "aws_ecs", Some("fargate")),
    ("AWS::ECS::Container", "aws_ecs", None),
    ("AWS::EKS::Container", "aws_eks", None),
    (
        "AWS::ElasticBeanstalk::Environment",
        "aws_elastic_beanstalk",
        None,
    ),
    ("AWS::AppRunner::Service", "aws_app_runner", None),
];

/// `aws.ecs` fields ↔ resource attributes.
const ECS_ATTRIBUTES: &[&str] = &[
    "container.name",
    "container.id",
    "aws.ecs.container.arn",
    "aws.ecs.task.arn",
    "aws.ecs.task.family",
    "aws.ecs.cluster.arn",
    "aws.ecs.launchtype",
    "cloud.availability_zone",
];

fn ecs_field<'a>(ecs: &'a mut EcsFields, key: &str) -> &'a mut Option<String> {
    match key {
        "container.name" => &mut ecs.container,
        "container.id" => &mut ecs.container_id,
        "aws.ecs.container.arn" => &mut ecs.container_arn,
        "aws.ecs.task.arn" => &mut ecs.task_arn,
        "aws.ecs.task.family" => &mut ecs.task_family,
        "aws.ecs.cluster.arn" => &mut ecs.cluster_arn,
        "aws.ecs.launchtype" => &mut ecs.launch_type,
        _ => &mut ecs.availability_zone,
    }
}

/// A span as the document X-Ray makes of it: a segment, or a subsegment sent on its own.
pub fn document(span: &Span, resource: &Attributes) -> Entity {
    let is_segment = span.kind == SpanKind::Server || span.parent_span_id.is_none();
    let mut entity = entity(span, resource, is_segment);
    entity.trace_id = Some(span.trace_id.clone());
    entity.parent_id = span.parent_span_id.clone();
    if !is_segment {
        entity.kind = Some(EntityKind::Subsegment);
    }
    entity
}

/// A span as a subsegment embedded in its parent, whatever its kind (a component's span inside
/// the request's segment).
pub fn subsegment(span: &Span) -> Entity {
    entity(span, &Attributes::default(), false)
}

fn entity(span: &Span, resource: &Attributes, is_segment: bool) -> Entity {
    let attributes = &span.attributes;
    let mut used: BTreeSet<&str> = BTreeSet::from([ANNOTATIONS_ATTRIBUTE]);
    let aws_sdk = attributes.text("rpc.system") == Some("aws-api");
    let name = name(span, resource, is_segment, aws_sdk, &mut used);
    let mut entity = Entity::new(name, span.span_id.clone(), span.start_time, 0.0);
    entity.end_time = span.end_time;
    entity.in_progress = span.end_time.is_none();
    if !is_segment {
        entity.namespace = namespace(span, aws_sdk, &mut used);
    }
    entity.http = http(attributes, &mut used);
    let status = entity
        .http
        .as_ref()
        .and_then(|http| http.response.as_ref())
        .and_then(|response| response.status);
    match status {
        Some(400..=499) => {
            entity.error = true;
            entity.throttle = status == Some(429);
        }
        Some(500..=599) => entity.fault = true,
        _ => entity.fault = matches!(span.status, Status::Error(_)),
    }
    entity.cause = cause(span);
    let mut aws = aws_call(attributes, aws_sdk, &mut used);
    if is_segment {
        entity.origin = origin(resource);
        aws.ecs = ecs(resource);
        aws.cloudwatch_logs = cloudwatch_logs(resource);
        if let Some(language) = resource.text("telemetry.sdk.language") {
            aws.xray = Some(XraySdk {
                sdk: format!("opentelemetry for {language}").into(),
                sdk_version: resource
                    .text("telemetry.sdk.version")
                    .unwrap_or_default()
                    .to_string()
                    .into(),
                sampling_rule_name: None,
            });
        }
        entity.service = resource
            .text("service.version")
            .map(|version| ServiceVersion {
                version: version.to_string(),
            });
        entity.user = take_text(attributes, "enduser.id", &mut used);
        if let Some(rule) = take_text(attributes, SAMPLING_RULE_ATTRIBUTE, &mut used) {
            aws.xray
                .get_or_insert_with(XraySdk::default)
                .sampling_rule_name = Some(rule);
        }
    }
    if aws != Aws::default() {
        entity.aws = Some(aws);
    }
    annotations_and_metadata(&mut entity, attributes, resource, is_segment, &used);
    entity
}

fn take_text<'a>(
    attributes: &Attributes,
    key: &'a str,
    used: &mut BTreeSet<&'a str>,
) -> Option<String> {
    let text = attributes.text(key)?;
    used.insert(key);
    Some(text.to_string())
}

/// The first of `keys` that is present, marked used.
fn first<'s, 'k>(
    attributes: &'s Attributes,
    keys: &[&'k str],
    used: &mut BTreeSet<&'k str>,
) -> Option<&'s Value> {
    let key = keys.iter().find(|key| attributes.get(key).is_some())?;
    used.insert(key);
    attributes.get(key)
}

/// The name X-Ray gives the document: a service's, not an operation's.
fn name<'k>(
    span: &Span,
    resource: &Attributes,
    is_segment: bool,
    aws_sdk: bool,
    used: &mut BTreeSet<&'k str>,
) -> String {
    let attributes = &span.attributes;
    let calls_out = matches!(
        span.kind,
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
    );
    let mut candidates: Vec<&'k str> = Vec::new();
    if span.kind == SpanKind::Server {
        candidates.push("aws.local.service");
    }
    if calls_out {
        candidates.push("aws.remote.service");
    }
    candidates.extend(["peer.service", "aws.service"]);
    let found = candidates
        .into_iter()
        .find_map(|key| Some((key, attributes.text(key)?)));
    let chosen = match found {
        Some((key, text)) => {
            used.insert(key);
            let trimmed = text
                .strip_prefix("AWS.SDK.")
                .or_else(|| text.strip_prefix("AWS::"));
            match trimmed {
                Some(rest) if aws_sdk && key == "aws.remote.service" => rest.to_string(),
                _ => text.to_string(),
            }
        }
        None => is_segment
            .then(|| resource.text("service.name"))
            .flatten()
            .or_else(|| {
                [
                    "rpc.service",
                    "server.address",
                    "http.host",
                    "net.peer.name",
                ]
                .into_iter()
                .find_map(|key| {
                    let text = attributes.text(key)?;
                    used.insert(key);
                    Some(text)
                })
            })
            .unwrap_or(&span.name)
            .to_string(),
    };
    names::sanitize_name(&chosen)
}

fn namespace(span: &Span, aws_sdk: bool, used: &mut BTreeSet<&str>) -> Option<Namespace> {
    let attributes = &span.attributes;
    if aws_sdk || attributes.text("aws.service").is_some() {
        used.extend(["rpc.system", "aws.service"]);
        return Some(Namespace::Aws);
    }
    if attributes.text("db.system.name") == Some(EMBEDDED_STORE) {
        used.extend(["db.system.name", "db.operation.name", "db.collection.name"]);
        return Some(Namespace::Local);
    }
    let remote = match span.kind {
        SpanKind::Client => true,
        SpanKind::Producer | SpanKind::Consumer => attributes.get("aws.remote.service").is_some(),
        SpanKind::Internal | SpanKind::Server => false,
    };
    remote.then_some(Namespace::Remote)
}

fn http<'k>(attributes: &Attributes, used: &mut BTreeSet<&'k str>) -> Option<Http> {
    let mut text = |keys: &[&'k str]| first(attributes, keys, used).and_then(Value::as_text);
    let method = text(&["http.request.method", "http.method"]).map(str::to_string);
    let full = text(&["url.full", "http.url"]).map(str::to_string);
    let scheme = text(&["url.scheme", "http.scheme"]).map(str::to_string);
    let host = text(&["server.address", "http.host", "net.host.name"]).map(str::to_string);
    let path = text(&["url.path", "http.target"]).map(str::to_string);
    let query = text(&["url.query"]).map(str::to_string);
    let user_agent = text(&["user_agent.original", "http.user_agent"]).map(str::to_string);
    let client = text(&["client.address"]).map(str::to_string);
    let forwarded = text(&["http.client_ip"]).map(str::to_string);
    let port = first(attributes, &["server.port", "net.host.port"], used).and_then(Value::as_int);
    let url = full.or_else(|| {
        // A server span names its URL by parts.
        let (scheme, host) = (scheme?, host?);
        let mut url = format!("{scheme}://{host}");
        if let Some(port) =
            port.filter(|p| !matches!((scheme.as_str(), *p), ("http", 80) | ("https", 443)))
        {
            let _ = write!(url, ":{port}");
        }
        url.push_str(path.as_deref().unwrap_or(""));
        if let Some(query) = query {
            let _ = write!(url, "?{query}");
        }
        Some(url)
    });
    let mut int = |keys: &[&'k str]| first(attributes, keys, used).and_then(Value::as_int);
    let status = int(&["http.response.status_code", "http.status_code"]);
    let length = int(&["http.response.body.size", "http.response_content_length"]);
    let request = (method.is_some() || url.is_some()).then(|| HttpRequest {
        method: method.unwrap_or_default(),
        url: url.unwrap_or_default(),
        user_agent,
        x_forwarded_for: client.is_none() && forwarded.is_some(),
        client_ip: client.or(forwarded),
        traced: false,
    });
    let response = (status.is_some() || length.is_some()).then(|| HttpResponse {
        status: status.and_then(|s| u16::try_from(s).ok()),
        content_length: length.and_then(|l| u64::try_from(l).ok()),
    });
    (request.is_some() || response.is_some()).then_some(Http { request, response })
}

/// The exceptions of the `cause`: the `exception` events, or the `ERROR` status's description.
fn cause(span: &Span) -> Option<Cause> {
    let remote = matches!(span.kind, SpanKind::Client | SpanKind::Producer);
    let mut exceptions: Vec<Exception> = span
        .events
        .iter()
        .filter(|event| event.name == "exception")
        .map(|event| {
            let text = |key: &str| match event.attributes.get(key) {
                Some(Value::Text(text)) => Some(text.clone()),
                Some(other) => Some(other.to_json().to_string()),
                None => None,
            };
            Exception {
                id: SegmentId::new(),
                message: text("exception.message").unwrap_or_default(),
                kind: text("exception.type"),
                remote,
                stack: text("exception.stacktrace")
                    .map(|trace| parse_stack(&trace))
                    .unwrap_or_default(),
            }
        })
        .collect();
    if exceptions.is_empty()
        && let Status::Error(description) = &span.status
        && !description.is_empty()
    {
        exceptions.push(Exception {
            id: SegmentId::new(),
            message: description.clone(),
            kind: None,
            remote: false,
            stack: Vec::new(),
        });
    }
    for (index, exception) in exceptions.iter_mut().enumerate() {
        exception.id = exception_id(&span.span_id, index);
    }
    (!exceptions.is_empty()).then_some(Cause { exceptions })
}

/// An exception id (16 hex digits like a segment id), the same each time a span is mapped and
/// different for each exception of the span.
fn exception_id(span_id: &SegmentId, index: usize) -> SegmentId {
    let value = u64::from_str_radix(span_id.as_str(), 16).unwrap_or(1);
    let id = value ^ (index as u64 + 1).rotate_left(32);
    SegmentId::parse(&format!("{id:016x}")).expect("16 hex digits")
}

/// One frame a line: `at label (path:line)` as its parts, any other line as the label.
fn parse_stack(trace: &str) -> Vec<StackFrame> {
    trace
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(MAX_STACK_LINES)
        .map(|line| {
            let line = line.strip_prefix("at ").unwrap_or(line);
            let (label, place) = match line.strip_suffix(')').and_then(|l| l.rsplit_once(" (")) {
                Some((label, place)) => (label.trim(), Some(place)),
                None => (line, None),
            };
            let (path, number) = match place.map(|p| p.rsplit_once(':').unwrap_or((p, ""))) {
                Some((path, number)) => (Some(path), number.parse().ok()),
                None => (None, None),
            };
            StackFrame {
                path: path.filter(|p| !p.is_empty()).map(str::to_string),
                line: number,
                label: (!label.is_empty()).then(|| label.to_string()),
            }
        })
        .collect()
}

/// The frames as [`parse_stack`] reads them.
fn format_stack(stack: &[StackFrame]) -> String {
    let lines: Vec<String> = stack
        .iter()
        .map(|frame| {
            let mut line = format!("at {}", frame.label.as_deref().unwrap_or(""));
            if frame.path.is_some() || frame.line.is_some() {
                let _ = write!(line, " ({}", frame.path.as_deref().unwrap_or(""));
                if let Some(number) = frame.line {
                    let _ = write!(line, ":{number}");
                }
                line.push(')');
            }
            line
        })
        .collect();
    lines.join("\n")
}

fn aws_call<'k>(attributes: &Attributes, aws_sdk: bool, used: &mut BTreeSet<&'k str>) -> Aws {
    let mut text = |keys: &[&'k str]| {
        first(attributes, keys, used)
            .and_then(Value::as_text)
            .map(str::to_string)
    };
    let operation = if aws_sdk {
        text(&["rpc.method", "aws.operation"])
    } else {
        text(&["aws.operation"])
    };
    let region = text(&["aws.region", "cloud.region"]);
    let request_id = text(&["aws.request_id", "aws.requestId"]);
    let mut table_name = text(&["aws.table_name"]);
    if aws_sdk {
        used.insert("rpc.service");
    }
    let mut table_names = Vec::new();
    match attributes.texts("aws.dynamodb.table_names").as_slice() {
        [] => {}
        [table] => table_name = Some(table.to_string()),
        many => table_names = many.iter().map(|t| t.to_string()).collect(),
    }
    if attributes.get("aws.dynamodb.table_names").is_some() {
        used.insert("aws.dynamodb.table_names");
    }
    let retries = first(attributes, &["aws.retries"], used)
        .and_then(Value::as_int)
        .and_then(|n| u32::try_from(n).ok());
    Aws {
        operation,
        region,
        request_id,
        table_name,
        table_names,
        retries,
        ..Aws::default()
    }
}

/// `origin` from the resource's cloud platform, as X-Ray names AWS compute.
fn origin(resource: &Attributes) -> Option<String> {
    if resource.text("cloud.provider").is_some_and(|p| p != "aws") {
        return None;
    }
    let platform = resource.text("cloud.platform")?;
    let launch = resource.text("aws.ecs.launchtype");
    ORIGINS
        .iter()
        .find(|(_, p, l)| *p == platform && (l.is_none() || *l == launch))
        .map(|(origin, _, _)| origin.to_string())
}

/// `aws.ecs` from the ECS resource attributes.
fn ecs(resource: &Attributes) -> Option<EcsFields> {
    let on_ecs = resource.text("cloud.platform") == Some("aws_ecs")
        || resource.text("aws.ecs.task.arn").is_some();
    let mut ecs = EcsFields::default();
    for key in ECS_ATTRIBUTES {
        *ecs_field(&mut ecs, key) = resource.text(key).map(str::to_string);
    }
    (on_ecs && ecs != EcsFields::default()).then_some(ecs)
}

/// `aws.cloudwatch_logs` from the resource, as the collector's `awsxray` exporter reads it: the
/// ARNs when there are any (each group's name is its ARN's seventh field), else the names
/// alone. A text value is a list joined by `&`, as `OTEL_RESOURCE_ATTRIBUTES` has to carry it.
fn cloudwatch_logs(resource: &Attributes) -> Vec<CloudWatchLogGroup> {
    if resource.text("cloud.provider").is_some_and(|p| p != "aws") {
        return Vec::new();
    }
    let listed = |key: &str| -> Vec<String> {
        match resource.get(key) {
            Some(Value::Text(text)) => text
                .split('&')
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
            Some(Value::Array(_)) => resource
                .texts(key)
                .into_iter()
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    };
    let arns = listed(LOG_GROUP_ARNS);
    if !arns.is_empty() {
        return arns
            .into_iter()
            .map(|arn| CloudWatchLogGroup {
                log_group: arn.split(':').nth(6).unwrap_or(&arn).to_string(),
                arn: Some(arn),
            })
            .collect();
    }
    listed(LOG_GROUP_NAMES)
        .into_iter()
        .map(|log_group| CloudWatchLogGroup {
            log_group,
            arn: None,
        })
        .collect()
}

fn annotation(value: &Value) -> Option<AnnotationValue> {
    match value {
        Value::Text(text) => Some(AnnotationValue::Text(text.clone())),
        Value::Bool(b) => Some(AnnotationValue::Boolean(*b)),
        Value::Int(n) => Some(AnnotationValue::Integer(*n)),
        Value::Double(d) if d.is_finite() => Some(AnnotationValue::Number(*d)),
        _ => None,
    }
}

/// The attributes listed in [`ANNOTATIONS_ATTRIBUTE`] as annotations (scalar values only, as
/// X-Ray indexes them); whole namespaces from [`METADATA_PREFIX`] attributes; the others, and a
/// segment's resource attributes, as metadata in [`DEFAULT_NAMESPACE`].
fn annotations_and_metadata(
    entity: &mut Entity,
    attributes: &Attributes,
    resource: &Attributes,
    is_segment: bool,
    used: &BTreeSet<&str>,
) {
    let indexed: BTreeSet<&str> = attributes
        .texts(ANNOTATIONS_ATTRIBUTE)
        .into_iter()
        .collect();
    let namespaces = &mut entity.metadata.namespaces;
    let mut place = |key: String, value: &Value| match annotation(value)
        .filter(|_| indexed.contains(key.as_str()))
    {
        Some(annotation) => {
            entity
                .annotations
                .insert(names::sanitize_annotation_key(&key), annotation);
        }
        None => {
            if let Some(namespace) = key.strip_prefix(METADATA_PREFIX)
                && !namespace.is_empty()
                && !namespace.starts_with("AWS.")
                && let Some(text) = value.as_text()
                && let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text)
            {
                namespaces
                    .entry(namespace.to_string())
                    .or_default()
                    .extend(object);
                return;
            }
            namespaces
                .entry(DEFAULT_NAMESPACE.to_string())
                .or_default()
                .insert(key, value.to_json());
        }
    };
    if is_segment {
        for (key, value) in &resource.0 {
            place(format!("{RESOURCE_PREFIX}{key}"), value);
        }
    }
    for (key, value) in &attributes.0 {
        if !used.contains(key.as_str()) {
            place(key.clone(), value);
        }
    }
}

/// A finished segment (its subsegments nested) as the spans of its service: the segment a
/// `SERVER` span, each subsegment a `CLIENT` or `INTERNAL` span under its parent. None for an
/// entity with no trace id (a subsegment, not a segment).
pub fn segment_spans(segment: &Entity) -> Option<ServiceSpans> {
    let trace_id = segment.trace_id.clone()?;
    let mut server = base_span(
        segment,
        &trace_id,
        SpanKind::Server,
        segment.parent_id.clone(),
    );
    if let Some(http) = &segment.http {
        if let Some(request) = &http.request {
            server.name = request.method.clone();
            let (scheme, rest) = request.url.split_once("://").unwrap_or(("http", ""));
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let attributes = &mut server.attributes;
            attributes.push_text("http.request.method", &request.method);
            attributes.push_text("url.scheme", scheme);
            attributes.push_text("server.address", host);
            attributes.push_text("url.path", if path.is_empty() { "/" } else { path });
            push_request_parties(attributes, request);
        }
        push_response(&mut server.attributes, http.response.as_ref());
    }
    if let Some(rule) = segment
        .aws
        .as_ref()
        .and_then(|aws| aws.xray.as_ref())
        .and_then(|sdk| sdk.sampling_rule_name.as_ref())
    {
        server.attributes.push_text(SAMPLING_RULE_ATTRIBUTE, rule);
    }
    if let Some(user) = &segment.user {
        server.attributes.push_text("enduser.id", user);
    }
    add_fields(&mut server, segment);
    let mut spans = vec![server];
    for child in &segment.subsegments {
        subsegment_spans(child, &segment.id, &trace_id, &mut spans);
    }
    Some(ServiceSpans {
        resource: resource(segment),
        spans,
    })
}

fn resource(segment: &Entity) -> Attributes {
    let mut resource = Attributes::default();
    resource.push_text("service.name", &segment.name);
    if let Some(service) = &segment.service {
        resource.push_text("service.version", &service.version);
    }
    let ecs = segment.aws.as_ref().and_then(|aws| aws.ecs.as_ref());
    if let Some((_, platform, launch)) = segment
        .origin
        .as_deref()
        .and_then(|origin| ORIGINS.iter().find(|(o, _, _)| *o == origin))
    {
        resource.push_text("cloud.provider", "aws");
        resource.push_text("cloud.platform", *platform);
        let launch_known = ecs.is_some_and(|ecs| ecs.launch_type.is_some());
        if let (Some(launch), false) = (launch, launch_known) {
            resource.push_text("aws.ecs.launchtype", *launch);
        }
    }
    if let Some(ecs) = ecs {
        let mut ecs = ecs.clone();
        for key in ECS_ATTRIBUTES {
            if let Some(value) = ecs_field(&mut ecs, key).take() {
                let value = if *key == "aws.ecs.launchtype" {
                    value.to_ascii_lowercase()
                } else {
                    value
                };
                resource.push_text(*key, value);
            }
        }
    }
    let groups = segment
        .aws
        .as_ref()
        .map(|aws| aws.cloudwatch_logs.as_slice())
        .unwrap_or_default();
    if !groups.is_empty() {
        let list = |item: fn(&CloudWatchLogGroup) -> Option<&String>| {
            Value::Array(
                groups
                    .iter()
                    .filter_map(item)
                    .cloned()
                    .map(Value::Text)
                    .collect(),
            )
        };
        resource.push(LOG_GROUP_NAMES, list(|group| Some(&group.log_group)));
        // The ARNs only when every group has one: the way back (the collector's too) prefers
        // them and would lose a group named alone.
        if groups.iter().all(|group| group.arn.is_some()) {
            resource.push(LOG_GROUP_ARNS, list(|group| group.arn.as_ref()));
        }
    }
    resource
}

fn subsegment_spans(entity: &Entity, parent: &SegmentId, trace_id: &TraceId, out: &mut Vec<Span>) {
    let kind = match entity.namespace {
        Some(_) => SpanKind::Client,
        None => SpanKind::Internal,
    };
    let mut span = base_span(entity, trace_id, kind, Some(parent.clone()));
    let attributes = &mut span.attributes;
    match entity.namespace {
        Some(Namespace::Remote) => {
            if let Some(request) = entity.http.as_ref().and_then(|h| h.request.as_ref()) {
                span.name = request.method.clone();
                attributes.push_text("http.request.method", &request.method);
                attributes.push_text("url.full", &request.url);
                push_request_parties(attributes, request);
            }
            attributes.push_text("server.address", &entity.name);
        }
        Some(Namespace::Aws) => {
            let aws = entity.aws.clone().unwrap_or_default();
            let operation = aws.operation.unwrap_or_default();
            span.name = format!("{}.{operation}", entity.name);
            attributes.push_text("rpc.system", "aws-api");
            attributes.push_text("rpc.service", &entity.name);
            attributes.push_text("rpc.method", &operation);
            let tables: Vec<Value> = aws
                .table_name
                .into_iter()
                .chain(aws.table_names)
                .map(Value::Text)
                .collect();
            if !tables.is_empty() {
                attributes.push("aws.dynamodb.table_names", Value::Array(tables));
            }
            if let Some(id) = aws.request_id {
                attributes.push_text("aws.request_id", id);
            }
            if let Some(region) = aws.region {
                attributes.push_text("cloud.region", region);
            }
            if let Some(retries) = aws.retries {
                attributes.push("aws.retries", Value::Int(retries.into()));
            }
        }
        Some(Namespace::Local) => {
            if let Some(store) = &entity.metadata.host.store {
                span.name = format!("{} {}", store.operation, store.table);
                attributes.push_text("db.operation.name", &store.operation);
                attributes.push_text("db.collection.name", &store.table);
            }
            attributes.push_text("db.system.name", EMBEDDED_STORE);
            attributes.push_text("peer.service", &entity.name);
        }
        None => {}
    }
    if entity.namespace != Some(Namespace::Remote)
        && let Some(http) = &entity.http
        && let Some(request) = &http.request
    {
        span.attributes
            .push_text("http.request.method", &request.method);
        span.attributes.push_text("url.full", &request.url);
        push_request_parties(&mut span.attributes, request);
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

fn base_span(
    entity: &Entity,
    trace_id: &TraceId,
    kind: SpanKind,
    parent: Option<SegmentId>,
) -> Span {
    Span {
        trace_id: trace_id.clone(),
        span_id: entity.id.clone(),
        parent_span_id: parent,
        name: entity.name.clone(),
        kind,
        start_time: entity.start_time,
        end_time: Some(
            entity
                .end_time
                .unwrap_or(entity.start_time)
                .max(entity.start_time),
        ),
        attributes: Attributes::default(),
        events: Vec::new(),
        status: Status::Unset,
    }
}

fn push_request_parties(attributes: &mut Attributes, request: &HttpRequest) {
    if let Some(agent) = &request.user_agent {
        attributes.push_text("user_agent.original", agent);
    }
    if let Some(client) = &request.client_ip {
        let key = if request.x_forwarded_for {
            "http.client_ip"
        } else {
            "client.address"
        };
        attributes.push_text(key, client);
    }
}

fn push_response(attributes: &mut Attributes, response: Option<&HttpResponse>) {
    let Some(response) = response else { return };
    if let Some(status) = response.status {
        attributes.push("http.response.status_code", Value::Int(status.into()));
    }
    if let Some(length) = response.content_length {
        let length = i64::try_from(length).unwrap_or(i64::MAX);
        attributes.push("http.response.body.size", Value::Int(length));
    }
}

/// Annotations, metadata, the failure status and the exceptions, shared by every span kind.
fn add_fields(span: &mut Span, entity: &Entity) {
    if !entity.annotations.is_empty() {
        for (key, value) in &entity.annotations {
            let value = match value {
                AnnotationValue::Text(text) => Value::Text(text.clone()),
                AnnotationValue::Integer(n) => Value::Int(*n),
                AnnotationValue::Number(n) => Value::Double(*n),
                AnnotationValue::Boolean(b) => Value::Bool(*b),
            };
            span.attributes.push(key.clone(), value);
        }
        let keys = entity
            .annotations
            .keys()
            .cloned()
            .map(Value::Text)
            .collect();
        span.attributes
            .push(ANNOTATIONS_ATTRIBUTE, Value::Array(keys));
    }
    // Through its serialized form, so that the host's notes are written as X-Ray shows them.
    if let Ok(serde_json::Value::Object(namespaces)) = serde_json::to_value(&entity.metadata) {
        for (namespace, values) in namespaces {
            if namespace == DEFAULT_NAMESPACE
                && let serde_json::Value::Object(values) = values
            {
                for (key, value) in values {
                    span.attributes.push(key, Value::from_json(&value));
                }
            } else {
                span.attributes
                    .push_text(format!("{METADATA_PREFIX}{namespace}"), values.to_string());
            }
        }
    }
    let exceptions = entity
        .cause
        .as_ref()
        .map(|cause| cause.exceptions.as_slice())
        .unwrap_or_default();
    if entity.fault {
        let message = exceptions.first().map(|e| e.message.clone());
        span.status = Status::Error(message.unwrap_or_default());
    }
    let time = span.end_time.unwrap_or(span.start_time);
    for exception in exceptions {
        let mut attributes = Attributes::default();
        if let Some(kind) = &exception.kind {
            attributes.push_text("exception.type", kind);
        }
        attributes.push_text("exception.message", &exception.message);
        if !exception.stack.is_empty() {
            attributes.push_text("exception.stacktrace", format_stack(&exception.stack));
        }
        span.events.push(Event {
            name: "exception".into(),
            time,
            attributes,
        });
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
