//! Segment documents: a finished [`RequestTrace`] as the JSON X-Ray takes (xray-spec §2), split
//! into several documents when one would not fit a datagram (§3.2, §3.3).
//!
//! Choices where the SDKs differ, and why:
//! - the matched rule is `aws.xray.sampling_rule_name` (Python and Go; Node and Java write
//!   `rule_name`): the name the daemon's Go code and the OTel collector use;
//! - `traced: true` of a remote call is written both in `http.request` (the developer guide's
//!   place) and at the subsegment's top level (the schema's and Node's), as the spec suggests;
//! - closed documents carry `end_time` and no `in_progress` key (Node and Go);
//! - strings the schema limits to 250 characters are cut there; names to 200.

use crate::xray::request_trace::{
    Annotated, AnnotationValue, FailureKind, RequestTrace, SubsegmentRecord,
};
use serde_json::{Map, Value, json};

/// The header line of every datagram.
pub const DATAGRAM_HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";
/// Largest document sent whole: a UDP datagram's payload (65 507 bytes) less the header, with
/// room to spare (the Java SDK keeps 63 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 63 * 1024;
/// Subsegments kept in one document before they are streamed separately (Java and Node: 100).
pub const MAX_SUBSEGMENTS_PER_DOCUMENT: usize = 100;
/// The SDK name written in `aws.xray.sdk`.
pub const SDK_NAME: &str = "xray-host";

/// What the segment says about the service and where it runs.
#[derive(Debug, Clone, Default)]
pub struct ServiceIdentity {
    /// The segment name.
    pub name: String,
    /// `service.version`: the content hash of the component being served.
    pub version: String,
    /// `origin`, e.g. `AWS::ECS::Container`.
    pub origin: Option<String>,
    /// `aws.ecs`, when running on ECS.
    pub ecs: Option<Value>,
}

/// The documents for a finished trace: independent subsegments first (if any had to be split
/// off), then the segment.
pub fn documents(trace: &RequestTrace, identity: &ServiceIdentity) -> Vec<String> {
    let segment = segment_json(trace, identity);
    let mut out = Vec::new();
    split_into(segment, None, &trace.trace_id, &mut out);
    out
}

/// Appends `entity` to `out`, first streaming children while it is too large.
fn split_into(mut entity: Value, parent: Option<&str>, trace_id: &str, out: &mut Vec<String>) {
    if let Some(parent) = parent {
        entity["type"] = json!("subsegment");
        entity["trace_id"] = json!(trace_id);
        entity["parent_id"] = json!(parent);
    }
    let text = to_text(&entity);
    let count = count_subsegments(&entity);
    if text.len() <= MAX_DOCUMENT_BYTES && count <= MAX_SUBSEGMENTS_PER_DOCUMENT {
        out.push(text);
        return;
    }
    let id = entity["id"].as_str().unwrap_or_default().to_string();
    let children = match entity.as_object_mut().and_then(|o| o.remove("subsegments")) {
        Some(Value::Array(children)) => children,
        _ => {
            // A single entity over the limit (huge metadata): drop its metadata rather than
            // send a document the daemon would truncate.
            if let Some(object) = entity.as_object_mut() {
                object.remove("metadata");
                object.insert(
                    "metadata".into(),
                    json!({"xray_host": {"metadata_dropped": "document too large"}}),
                );
            }
            out.push(to_text(&entity));
            return;
        }
    };
    for child in children {
        split_into(child, Some(&id), trace_id, out);
    }
    out.push(to_text(&entity));
}

/// The document's JSON text. `serde_json::to_string` writes straight into a byte buffer;
/// `Value`'s `Display` goes through the formatting machinery, which cost twice as much per
/// segment (scripts/profile-request.sh).
fn to_text(entity: &Value) -> String {
    serde_json::to_string(entity).expect("a JSON value always serializes")
}

fn count_subsegments(entity: &Value) -> usize {
    entity
        .get("subsegments")
        .and_then(Value::as_array)
        .map(|children| children.iter().map(|c| 1 + count_subsegments(c)).sum())
        .unwrap_or(0)
}

fn segment_json(trace: &RequestTrace, identity: &ServiceIdentity) -> Value {
    let end = trace.end_time.unwrap_or(trace.start_time);
    let mut segment = Map::new();
    segment.insert("name".into(), json!(truncate(&identity.name, 200)));
    segment.insert("id".into(), json!(trace.segment_id));
    segment.insert("trace_id".into(), json!(trace.trace_id));
    if let Some(parent) = &trace.parent_id {
        segment.insert("parent_id".into(), json!(parent));
    }
    segment.insert("start_time".into(), json!(trace.start_time));
    segment.insert("end_time".into(), json!(end.max(trace.start_time)));
    if let Some(origin) = &identity.origin {
        segment.insert("origin".into(), json!(origin));
    }
    if !identity.version.is_empty() {
        segment.insert("service".into(), json!({"version": identity.version}));
    }
    let mut request = Map::new();
    request.insert("method".into(), json!(truncate(&trace.request.method, 250)));
    request.insert("url".into(), json!(truncate(&trace.request.url, 250)));
    if let Some(agent) = &trace.request.user_agent {
        request.insert("user_agent".into(), json!(truncate(agent, 250)));
    }
    if let Some(ip) = &trace.request.client_ip {
        request.insert("client_ip".into(), json!(truncate(ip, 250)));
        if trace.request.x_forwarded_for {
            request.insert("x_forwarded_for".into(), json!(true));
        }
    }
    let mut http = Map::new();
    http.insert("request".into(), Value::Object(request));
    let mut flags = Vec::new();
    if let Some((status, length)) = trace.response {
        let mut response = Map::new();
        response.insert("status".into(), json!(status));
        if let Some(length) = length {
            response.insert("content_length".into(), json!(length));
        }
        http.insert("response".into(), Value::Object(response));
        flags.extend(status_flags(status));
    }
    segment.insert("http".into(), Value::Object(http));
    let mut xray = json!({"sdk": SDK_NAME, "sdk_version": env!("CARGO_PKG_VERSION")});
    if let Some(rule) = &trace.rule_name {
        xray["sampling_rule_name"] = json!(rule);
    }
    let mut aws = json!({ "xray": xray });
    if let Some(ecs) = &identity.ecs {
        aws["ecs"] = ecs.clone();
    }
    segment.insert("aws".into(), aws);
    add_fields(&mut segment, &trace.segment, &flags);
    let children = children_of(trace, None);
    if !children.is_empty() {
        segment.insert("subsegments".into(), Value::Array(children));
    }
    Value::Object(segment)
}

fn children_of(trace: &RequestTrace, parent: Option<usize>) -> Vec<Value> {
    trace
        .subsegments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.parent == parent)
        .map(|(index, s)| subsegment_json(trace, index, s))
        .collect()
}

fn subsegment_json(trace: &RequestTrace, index: usize, record: &SubsegmentRecord) -> Value {
    let mut subsegment = Map::new();
    subsegment.insert("name".into(), json!(truncate(&record.name, 200)));
    subsegment.insert("id".into(), json!(record.id));
    subsegment.insert("start_time".into(), json!(record.start_time));
    let end = record.end_time.unwrap_or(record.start_time);
    subsegment.insert("end_time".into(), json!(end.max(record.start_time)));
    if let Some(namespace) = record.namespace {
        subsegment.insert("namespace".into(), json!(namespace));
    }
    let mut flags = Vec::new();
    if let Some(http) = &record.http {
        if http.pointer("/request/traced") == Some(&json!(true)) {
            subsegment.insert("traced".into(), json!(true));
        }
        if let Some(status) = http.pointer("/response/status").and_then(Value::as_u64) {
            flags.extend(status_flags(status as u16));
        }
        subsegment.insert("http".into(), http.clone());
    }
    if let Some(aws) = &record.aws {
        subsegment.insert("aws".into(), aws.clone());
    }
    let mut fields = record.fields.clone();
    if record.ended_by_host {
        fields
            .metadata
            .entry("xray_host".into())
            .or_default()
            .insert("ended_by_host".into(), json!(true));
    }
    add_fields(&mut subsegment, &fields, &flags);
    let children = children_of(trace, Some(index));
    if !children.is_empty() {
        subsegment.insert("subsegments".into(), Value::Array(children));
    }
    Value::Object(subsegment)
}

/// The flags an HTTP status sets (xray-spec §2.7): 4xx error, 429 also throttle, 5xx fault.
pub fn status_flags(status: u16) -> Vec<FailureKind> {
    match status {
        429 => vec![FailureKind::Throttle],
        400..=499 => vec![FailureKind::Error],
        500..=599 => vec![FailureKind::Fault],
        _ => Vec::new(),
    }
}

fn add_fields(entity: &mut Map<String, Value>, fields: &Annotated, status_flags: &[FailureKind]) {
    let kinds = status_flags.iter().chain(fields.failures.iter());
    for kind in kinds {
        let keys: &[&str] = match kind {
            FailureKind::Error => &["error"],
            FailureKind::Throttle => &["error", "throttle"],
            FailureKind::Fault => &["fault"],
        };
        for key in keys {
            entity.insert((*key).into(), json!(true));
        }
    }
    if !fields.exceptions.is_empty() {
        let exceptions: Vec<Value> = fields
            .exceptions
            .iter()
            .map(|e| {
                let mut exception = json!({"id": e.id, "message": e.message, "remote": e.remote});
                if let Some(kind) = &e.kind {
                    exception["type"] = json!(kind);
                }
                if !e.stack.is_empty() {
                    exception["stack"] = Value::Array(
                        e.stack
                            .iter()
                            .map(|(path, line, label)| {
                                let mut frame = Map::new();
                                if let Some(path) = path {
                                    frame.insert("path".into(), json!(path));
                                }
                                if let Some(line) = line {
                                    frame.insert("line".into(), json!(line));
                                }
                                if let Some(label) = label {
                                    frame.insert("label".into(), json!(label));
                                }
                                Value::Object(frame)
                            })
                            .collect(),
                    );
                }
                exception
            })
            .collect();
        entity.insert("cause".into(), json!({"exceptions": exceptions}));
    }
    if !fields.annotations.is_empty() {
        let annotations: Map<String, Value> = fields
            .annotations
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    AnnotationValue::Text(text) => json!(text),
                    AnnotationValue::Integer(n) => json!(n),
                    AnnotationValue::Number(n) => json!(n),
                    AnnotationValue::Boolean(b) => json!(b),
                };
                (key.clone(), value)
            })
            .collect();
        entity.insert("annotations".into(), Value::Object(annotations));
    }
    if !fields.metadata.is_empty() {
        entity.insert("metadata".into(), json!(fields.metadata));
    }
}

/// `text` cut to at most `max` characters.
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xray::request_trace::{ExceptionRecord, Target};

    fn identity() -> ServiceIdentity {
        ServiceIdentity {
            name: "Backend #1".into(),
            version: "abc".into(),
            origin: Some("AWS::ECS::Container".into()),
            ecs: Some(json!({"container": "ip-10-0-0-1"})),
        }
    }

    fn finished_trace() -> RequestTrace {
        let mut trace = RequestTrace::new(
            "1-5f84c7a1-0123456789abcdef01234567".into(),
            "0123456789abcdef".into(),
            true,
        );
        trace.parent_id = Some("fedcba9876543210".into());
        trace.rule_name = Some("Default".into());
        trace.request.method = "GET".into();
        trace.request.url = "http://backend1.local/".into();
        trace.request.user_agent = Some("curl/8".into());
        trace.request.client_ip = Some("10.0.0.9".into());
        trace.request.x_forwarded_for = true;
        trace.response = Some((200, Some(28)));
        trace.end_time = Some(trace.start_time + 0.01);
        trace
    }

    #[test]
    fn a_segment_has_the_fields_x_ray_needs() {
        let mut trace = finished_trace();
        let work = trace
            .begin_subsegment(Target::Segment, "current-date")
            .unwrap();
        trace
            .add_annotation(
                Target::Subsegment(work),
                "day",
                AnnotationValue::Integer(25),
            )
            .unwrap();
        trace.end_subsegment(work).unwrap();
        let docs = documents(&trace, &identity());
        assert_eq!(docs.len(), 1);
        let doc: Value = serde_json::from_str(&docs[0]).unwrap();
        assert_eq!(doc["name"], "Backend #1");
        assert_eq!(doc["parent_id"], "fedcba9876543210");
        assert_eq!(doc["origin"], "AWS::ECS::Container");
        assert_eq!(doc["http"]["request"]["x_forwarded_for"], true);
        assert_eq!(
            doc["http"]["response"],
            json!({"status": 200, "content_length": 28})
        );
        assert_eq!(doc["aws"]["xray"]["sampling_rule_name"], "Default");
        assert_eq!(doc["aws"]["xray"]["sdk"], SDK_NAME);
        assert_eq!(doc["aws"]["ecs"]["container"], "ip-10-0-0-1");
        assert_eq!(doc["service"]["version"], "abc");
        assert!(doc.get("fault").is_none() && doc.get("error").is_none());
        assert_eq!(doc["subsegments"][0]["name"], "current-date");
        assert_eq!(doc["subsegments"][0]["annotations"]["day"], 25);
        assert!(doc["end_time"].as_f64() >= doc["start_time"].as_f64());
    }

    #[test]
    fn status_codes_set_the_flags() {
        for (status, error, throttle, fault) in [
            (200, false, false, false),
            (404, true, false, false),
            (429, true, true, false),
            (500, false, false, true),
            (504, false, false, true),
        ] {
            let mut trace = finished_trace();
            trace.response = Some((status, None));
            let doc: Value = serde_json::from_str(&documents(&trace, &identity())[0]).unwrap();
            let flag = |key: &str| doc.get(key) == Some(&json!(true));
            assert_eq!(
                (flag("error"), flag("throttle"), flag("fault")),
                (error, throttle, fault),
                "{status}"
            );
        }
    }

    #[test]
    fn remote_calls_nest_under_the_open_manual_subsegment_and_carry_their_http_data() {
        let mut trace = finished_trace();
        let manual = trace
            .begin_subsegment(Target::Segment, "call Backend #1")
            .unwrap();
        let call = trace.begin_call(
            "backend1.local",
            "remote",
            Some(json!({"request": {"method": "GET", "url": "http://backend1.local/", "traced": true}})),
            None,
        );
        assert_eq!(trace.subsegments[call].parent, Some(manual));
        let header = trace.downstream_header(call);
        assert!(
            header.ends_with(&format!(";Parent={};Sampled=1", trace.subsegments[call].id)),
            "{header}"
        );
        trace.end_call(call, Some(json!({"response": {"status": 503}})), None);
        trace.end_subsegment(manual).unwrap();
        let doc: Value = serde_json::from_str(&documents(&trace, &identity())[0]).unwrap();
        let remote = &doc["subsegments"][0]["subsegments"][0];
        assert_eq!(remote["namespace"], "remote");
        assert_eq!(remote["traced"], true);
        assert_eq!(remote["http"]["request"]["method"], "GET");
        assert_eq!(remote["http"]["response"]["status"], 503);
        assert_eq!(remote["fault"], true);
    }

    #[test]
    fn failures_with_exceptions_fill_the_cause_and_forgotten_subsegments_are_marked() {
        let mut trace = finished_trace();
        trace.response = Some((500, None));
        let exception = ExceptionRecord {
            id: "00000000000000aa".into(),
            message: "wasm trap: unreachable".into(),
            kind: Some("Trap".into()),
            remote: false,
            stack: vec![(Some("lib.rs".into()), Some(7), Some("handle".into()))],
        };
        trace
            .record_failure(Target::Segment, FailureKind::Fault, Some(exception))
            .unwrap();
        trace
            .begin_subsegment(Target::Segment, "never ended")
            .unwrap();
        trace.end_open_subsegments();
        let doc: Value = serde_json::from_str(&documents(&trace, &identity())[0]).unwrap();
        assert_eq!(doc["fault"], true);
        let exception = &doc["cause"]["exceptions"][0];
        assert_eq!(exception["id"], "00000000000000aa");
        assert_eq!(exception["type"], "Trap");
        assert_eq!(
            exception["stack"][0],
            json!({"path": "lib.rs", "line": 7, "label": "handle"})
        );
        assert_eq!(
            doc["subsegments"][0]["metadata"]["xray_host"]["ended_by_host"],
            true
        );
    }

    #[test]
    fn large_traces_stream_subsegments_as_independent_documents() {
        let mut trace = finished_trace();
        for i in 0..150 {
            let s = trace
                .begin_subsegment(Target::Segment, &format!("step {i}"))
                .unwrap();
            trace
                .add_metadata(
                    Target::Subsegment(s),
                    "default",
                    "blob",
                    &format!("\"{}\"", "x".repeat(1000)),
                )
                .unwrap();
            trace.end_subsegment(s).unwrap();
        }
        let docs = documents(&trace, &identity());
        assert_eq!(docs.len(), 151);
        for doc in &docs {
            assert!(doc.len() <= MAX_DOCUMENT_BYTES);
        }
        let first: Value = serde_json::from_str(&docs[0]).unwrap();
        assert_eq!(first["type"], "subsegment");
        assert_eq!(first["trace_id"], trace.trace_id);
        assert_eq!(first["parent_id"], trace.segment_id);
        let segment: Value = serde_json::from_str(docs.last().unwrap()).unwrap();
        assert!(segment.get("subsegments").is_none());
        assert_eq!(segment["id"], trace.segment_id);
    }

    #[test]
    fn long_strings_are_cut_to_the_schema_limits() {
        let mut trace = finished_trace();
        trace.request.url = format!("http://h/{}", "p".repeat(400));
        trace.request.user_agent = Some("u".repeat(400));
        let doc: Value = serde_json::from_str(&documents(&trace, &identity())[0]).unwrap();
        assert_eq!(
            doc["http"]["request"]["url"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            250
        );
        assert_eq!(
            doc["http"]["request"]["user_agent"].as_str().unwrap().len(),
            250
        );
    }
}
