//! The segment document, typed (xray-spec §2): what one datagram carries after its header line.
//!
//! One [`Entity`] type serves the segment, its embedded subsegments and subsegments sent as
//! independent documents, as the schema does: the fields that only one of them has are optional
//! and left out when absent. Everything here is written by the host itself, so it serializes
//! straight from these types; only the component's metadata values are free JSON.

use crate::ids::{SegmentId, TraceId};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The metadata namespace the host writes its own notes into.
pub const HOST_NAMESPACE: &str = "xray_host";

/// A segment or subsegment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// The name: the service for a segment, the operation or downstream for a subsegment.
    pub name: String,
    /// The id.
    pub id: SegmentId,
    /// The trace: on segments and on subsegments sent on their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// The caller's (sub)segment for a segment; the parent for a subsegment sent on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<SegmentId>,
    /// `subsegment` on a subsegment sent on its own.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<EntityKind>,
    /// Start, epoch seconds.
    pub start_time: f64,
    /// End, epoch seconds; none while it is in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Still running (a document sent before its end; X-Ray wants `end_time` or this).
    #[serde(skip_serializing_if = "is_false")]
    pub in_progress: bool,
    /// The user who made the request, on a segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The kind of resource that ran the service, e.g. `AWS::ECS::Container`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `remote` or `aws` (or `local`) on the subsegment of a call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Namespace>,
    /// A call to a service that traces too (the schema's place for it).
    #[serde(skip_serializing_if = "is_false")]
    pub traced: bool,
    /// `service.version` of a segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceVersion>,
    /// The HTTP request and response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// AWS fields: the SDK and ECS on a segment, the call on an `aws` subsegment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<Aws>,
    /// A client error (4xx).
    #[serde(skip_serializing_if = "is_false")]
    pub error: bool,
    /// Throttled (429).
    #[serde(skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// A server fault (5xx).
    #[serde(skip_serializing_if = "is_false")]
    pub fault: bool,
    /// The exceptions behind an error or fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// Indexed annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, AnnotationValue>,
    /// Metadata, by namespace.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Embedded subsegments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subsegments: Vec<Entity>,
}

impl Entity {
    /// An entity with only the fields every one has; the rest is absent.
    pub fn new(name: String, id: SegmentId, start_time: f64, end_time: f64) -> Self {
        Self {
            name,
            id,
            trace_id: None,
            parent_id: None,
            kind: None,
            start_time,
            end_time: Some(end_time),
            in_progress: false,
            user: None,
            origin: None,
            namespace: None,
            traced: false,
            service: None,
            http: None,
            aws: None,
            error: false,
            throttle: false,
            fault: false,
            cause: None,
            annotations: BTreeMap::new(),
            metadata: Metadata::default(),
            subsegments: Vec::new(),
        }
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[allow(clippy::ptr_arg)] // serde hands the field itself
fn is_empty_text(text: &Cow<'static, str>) -> bool {
    text.is_empty()
}

/// The `type` of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    /// A subsegment sent as its own document.
    Subsegment,
}

/// The `namespace` of a call's subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// An HTTP call to another service.
    Remote,
    /// A call to an AWS service through the SDK conventions (DynamoDB).
    Aws,
    /// A call the host answers itself (the embedded table store).
    Local,
}

/// `service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceVersion {
    /// The version of what serves the request (the component's content hash, shortened).
    pub version: String,
}

/// `http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Http {
    /// The request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    /// The response, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

/// `http.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpRequest {
    /// The method.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// `scheme://host/path`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The `User-Agent` of an incoming request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client of an incoming request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Whether `client_ip` came from `X-Forwarded-For`.
    #[serde(skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
    /// A call to a service that traces too (the developer guide's place for it).
    #[serde(skip_serializing_if = "is_false")]
    pub traced: bool,
}

/// `http.response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpResponse {
    /// The status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Content-Length`, when the response declared one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
}

/// `aws`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Aws {
    /// `aws.xray` of a segment: who recorded it and which rule sampled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xray: Option<XraySdk>,
    /// `aws.ecs` of a segment recorded on ECS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsFields>,
    /// `aws.cloudwatch_logs` of a segment: the log groups its service writes to, which the X-Ray
    /// console's trace-to-logs view queries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cloudwatch_logs: Vec<CloudWatchLogGroup>,
    /// The API operation of an AWS call, e.g. `PutItem`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The DynamoDB table of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// The DynamoDB tables of a call on several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub table_names: Vec<String>,
    /// The region the call went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AWS request id of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// How many times the SDK retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// `aws.xray`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct XraySdk {
    /// The recorder's name.
    #[serde(skip_serializing_if = "is_empty_text")]
    pub sdk: Cow<'static, str>,
    /// The recorder's version.
    #[serde(skip_serializing_if = "is_empty_text")]
    pub sdk_version: Cow<'static, str>,
    /// The centralized rule that sampled the request, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling_rule_name: Option<String>,
}

/// One entry of `aws.cloudwatch_logs` (the developer guide's segment document reference: "Array
/// of objects that describe a single CloudWatch log group"), as the X-Ray SDKs' ECS plugins
/// write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudWatchLogGroup {
    /// The log group's name.
    pub log_group: String,
    /// The log group's ARN, `arn:<partition>:logs:<region>:<account>:log-group:<name>`, when
    /// known (a span's resource may name the group alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

/// `aws.ecs`, as the OTel collector reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EcsFields {
    /// The container's host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The container's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
    /// The task's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// The task definition family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_family: Option<String>,
    /// The cluster's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// `FARGATE` or `EC2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    /// The availability zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

/// `cause`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cause {
    /// The exceptions.
    pub exceptions: Vec<Exception>,
}

/// One exception of a `cause`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exception {
    /// A random id, as X-Ray wants one per exception.
    pub id: SegmentId,
    /// The message.
    pub message: String,
    /// The type name.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Whether it came from a downstream call.
    pub remote: bool,
    /// Where it happened, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame>,
}

impl Exception {
    /// An exception with a fresh id and no stack.
    pub fn new(kind: impl Into<String>, message: impl Into<String>, remote: bool) -> Self {
        Self {
            id: SegmentId::new(),
            message: message.into(),
            kind: Some(kind.into()),
            remote,
            stack: Vec::new(),
        }
    }
}

/// One frame of an exception's stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrame {
    /// The source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A scalar annotation value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnnotationValue {
    /// Text.
    Text(String),
    /// An integer.
    Integer(i64),
    /// A finite floating-point number.
    Number(f64),
    /// A boolean.
    Boolean(bool),
}

/// `metadata`: the component's namespaces of free JSON, and the host's own notes, which are
/// written into the [`HOST_NAMESPACE`] namespace beside whatever the component put there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// `namespace -> key -> value`, as the component set them.
    pub namespaces: BTreeMap<String, BTreeMap<String, Value>>,
    /// What the host adds.
    pub host: HostNotes,
}

impl Metadata {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.host.is_empty()
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let host_entry = !self.host.is_empty() || self.namespaces.contains_key(HOST_NAMESPACE);
        let others = self
            .namespaces
            .iter()
            .filter(|(namespace, _)| *namespace != HOST_NAMESPACE);
        let mut map = serializer.serialize_map(None)?;
        for (namespace, values) in others {
            map.serialize_entry(namespace, values)?;
        }
        if host_entry {
            let component = self.namespaces.get(HOST_NAMESPACE);
            map.serialize_entry(HOST_NAMESPACE, &HostEntry(component, &self.host))?;
        }
        map.end()
    }
}

/// The [`HOST_NAMESPACE`] object: the component's keys there, then the host's notes (which win).
struct HostEntry<'a>(Option<&'a BTreeMap<String, Value>>, &'a HostNotes);

impl Serialize for HostEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let HostEntry(component, host) = self;
        let taken = host.keys();
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in component.iter().copied().flatten() {
            if !taken.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(store) = &host.store {
            map.serialize_entry("store", store.store)?;
            map.serialize_entry("operation", &store.operation)?;
            map.serialize_entry("table", &store.table)?;
        }
        if host.ended_by_host {
            map.serialize_entry("ended_by_host", &true)?;
        }
        if let Some(why) = host.metadata_dropped {
            map.serialize_entry("metadata_dropped", why)?;
        }
        if let Some(version_id) = &host.component_s3_version_id {
            map.serialize_entry("component_s3_version_id", version_id.as_ref())?;
        }
        if let Some(limit) = host.truncated {
            map.serialize_entry("truncated", limit)?;
        }
        if host.response_incomplete {
            map.serialize_entry("response_incomplete", &true)?;
        }
        if let Some(trace_id) = &host.incoming_trace_id {
            map.serialize_entry("incoming_trace_id", trace_id.as_str())?;
        }
        if let Some(parent_id) = &host.incoming_parent_id {
            map.serialize_entry("incoming_parent_id", parent_id.as_str())?;
        }
        map.end()
    }
}

/// What the host notes about a segment or subsegment in its metadata namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNotes {
    /// A call the embedded store answered.
    pub store: Option<StoreNote>,
    /// The component left the subsegment open; the host ended it when the request ended.
    pub ended_by_host: bool,
    /// The component's metadata was left out because the document was too large.
    pub metadata_dropped: Option<&'static str>,
    /// The S3 version id of the component that answered (a segment of a service whose
    /// component comes from a versioned S3 bucket): with `service.version`, its SHA-256, the
    /// trace names exactly which upload ran.
    pub component_s3_version_id: Option<std::sync::Arc<str>>,
    /// The first limit of the request's recording budget the component ran into: what it
    /// recorded past it was refused, so the trace is not all it tried to say.
    pub truncated: Option<&'static str>,
    /// The response body was not sent to its end: the client went away or stopped reading,
    /// or the body failed.
    pub response_incomplete: bool,
    /// The trace the caller's header named, at a service that starts its own trace whatever
    /// the caller sent (`--incoming-trace-header restart`): the caller's trace, kept but not
    /// continued (X-Ray's segment documents have no field for links).
    pub incoming_trace_id: Option<TraceId>,
    /// The caller's parent id beside [`HostNotes::incoming_trace_id`], when it sent one.
    pub incoming_parent_id: Option<SegmentId>,
}

impl HostNotes {
    fn is_empty(&self) -> bool {
        self.store.is_none()
            && !self.ended_by_host
            && self.metadata_dropped.is_none()
            && self.component_s3_version_id.is_none()
            && self.truncated.is_none()
            && !self.response_incomplete
            && self.incoming_trace_id.is_none()
            && self.incoming_parent_id.is_none()
    }

    fn keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.store.is_some() {
            keys.extend(["store", "operation", "table"]);
        }
        if self.ended_by_host {
            keys.push("ended_by_host");
        }
        if self.metadata_dropped.is_some() {
            keys.push("metadata_dropped");
        }
        if self.component_s3_version_id.is_some() {
            keys.push("component_s3_version_id");
        }
        if self.truncated.is_some() {
            keys.push("truncated");
        }
        if self.response_incomplete {
            keys.push("response_incomplete");
        }
        if self.incoming_trace_id.is_some() {
            keys.push("incoming_trace_id");
        }
        if self.incoming_parent_id.is_some() {
            keys.push("incoming_parent_id");
        }
        keys
    }
}

/// A table call the embedded store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreNote {
    /// The store's kind (`redb`).
    pub store: &'static str,
    /// `PutItem` or `GetItem`.
    pub operation: String,
    /// The table.
    pub table: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_fields_are_left_out_and_flags_appear_only_when_set() {
        let id = SegmentId::parse("0123456789abcdef").unwrap();
        let entity = Entity::new("work".into(), id, 1.0, 2.0);
        assert_eq!(
            serde_json::to_value(&entity).unwrap(),
            json!({"name": "work", "id": "0123456789abcdef", "start_time": 1.0, "end_time": 2.0})
        );
    }

    #[test]
    fn the_host_namespace_merges_the_component_keys_with_the_host_notes() {
        let mut metadata = Metadata::default();
        metadata
            .namespaces
            .entry("default".into())
            .or_default()
            .insert("k".into(), json!([1]));
        metadata
            .namespaces
            .entry(HOST_NAMESPACE.into())
            .or_default()
            .extend([
                ("mine".to_string(), json!(1)),
                ("ended_by_host".to_string(), json!("x")),
            ]);
        metadata.host.ended_by_host = true;
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({"default": {"k": [1]}, "xray_host": {"mine": 1, "ended_by_host": true}})
        );
        let text = serde_json::to_string(&metadata).unwrap();
        assert_eq!(text.matches("ended_by_host").count(), 1, "{text}");

        metadata.host.component_s3_version_id = Some("3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into());
        assert_eq!(
            serde_json::to_value(&metadata).unwrap()["xray_host"]["component_s3_version_id"],
            "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
        );
    }

    #[test]
    fn the_ids_a_caller_sent_to_the_edge_are_host_notes() {
        let mut metadata = Metadata::default();
        metadata.host.incoming_trace_id = TraceId::parse("1-5759e988-bd862e3fe1be46a994272793");
        metadata.host.incoming_parent_id = SegmentId::parse("53995c3f42cd8ad8");
        metadata
            .namespaces
            .entry(HOST_NAMESPACE.into())
            .or_default()
            .insert("incoming_trace_id".into(), json!("forged by the component"));
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({"xray_host": {
                "incoming_trace_id": "1-5759e988-bd862e3fe1be46a994272793",
                "incoming_parent_id": "53995c3f42cd8ad8"}})
        );
    }

    #[test]
    fn annotation_values_are_plain_json_scalars() {
        let values = [
            AnnotationValue::Text("a".into()),
            AnnotationValue::Integer(-3),
            AnnotationValue::Number(2.5),
            AnnotationValue::Boolean(true),
        ];
        assert_eq!(
            serde_json::to_value(values).unwrap(),
            json!(["a", -3, 2.5, true])
        );
    }
}
