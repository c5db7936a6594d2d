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

use crate::document::{
    Aws, Cause, CloudWatchLogGroup, EcsFields, Entity, EntityKind, Http, HttpRequest, Metadata,
    ServiceVersion, XraySdk,
};
use crate::ids::{SegmentId, TraceId};
use crate::request_trace::{Annotated, FailureKind, RequestTrace, SubsegmentRecord};

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
    pub ecs: Option<EcsFields>,
    /// `aws.cloudwatch_logs`: the log groups the service writes to, when known.
    pub cloudwatch_logs: Vec<CloudWatchLogGroup>,
}

/// The documents for a finished trace: independent subsegments first (if any had to be split
/// off), then the segment.
pub fn documents(trace: &RequestTrace, identity: &ServiceIdentity) -> Vec<String> {
    segment_documents(segment_entity(trace, identity))
}

/// The documents for a segment [`segment_entity`] made: independent subsegments first (if any
/// had to be split off), then the segment.
pub fn segment_documents(segment: Entity) -> Vec<String> {
    let trace_id = segment.trace_id.clone();
    let mut out = Vec::new();
    split_into(segment, None, trace_id.as_ref(), &mut out);
    out
}

/// Appends `entity` to `out`, first streaming children while it is too large.
fn split_into(
    mut entity: Entity,
    parent: Option<&SegmentId>,
    trace_id: Option<&TraceId>,
    out: &mut Vec<String>,
) {
    if let Some(parent) = parent {
        entity.kind = Some(EntityKind::Subsegment);
        entity.trace_id = trace_id.cloned();
        entity.parent_id = Some(parent.clone());
    }
    let text = to_text(&entity);
    if text.len() <= MAX_DOCUMENT_BYTES
        && count_subsegments(&entity) <= MAX_SUBSEGMENTS_PER_DOCUMENT
    {
        out.push(text);
        return;
    }
    if entity.subsegments.is_empty() {
        // A single entity over the limit (huge metadata): drop its metadata rather than send a
        // document the daemon would truncate.
        entity.metadata = Metadata::default();
        entity.metadata.host.metadata_dropped = Some("document too large");
        out.push(to_text(&entity));
        return;
    }
    let children = std::mem::take(&mut entity.subsegments);
    for child in children {
        split_into(child, Some(&entity.id), trace_id, out);
    }
    out.push(to_text(&entity));
}

/// The document's JSON text, written by serde straight into a byte buffer.
fn to_text(entity: &Entity) -> String {
    serde_json::to_string(entity).expect("a segment document always serializes")
}

fn count_subsegments(entity: &Entity) -> usize {
    entity
        .subsegments
        .iter()
        .map(|child| 1 + count_subsegments(child))
        .sum()
}

/// A finished trace as one typed segment with its subsegments nested: what every exporter reads
/// (the UDP documents are this, serialized and split; OTLP spans are mapped from it).
pub fn segment_entity(trace: &RequestTrace, identity: &ServiceIdentity) -> Entity {
    let end = trace.end_time.unwrap_or(trace.start_time);
    let mut segment = Entity::new(
        truncate(&identity.name, 200),
        trace.segment_id.clone(),
        trace.start_time,
        end.max(trace.start_time),
    );
    segment.trace_id = Some(trace.trace_id.clone());
    segment.parent_id = trace.parent_id.clone();
    segment.origin = identity.origin.clone();
    if !identity.version.is_empty() {
        segment.service = Some(ServiceVersion {
            version: identity.version.clone(),
        });
    }
    let incoming = &trace.request;
    let client_ip = incoming.client_ip.as_deref().map(|ip| truncate(ip, 250));
    let request = HttpRequest {
        method: truncate(&incoming.method, 250),
        url: truncate(&incoming.url, 250),
        user_agent: incoming.user_agent.as_deref().map(|a| truncate(a, 250)),
        x_forwarded_for: client_ip.is_some() && incoming.x_forwarded_for,
        client_ip,
        traced: false,
    };
    let flags = trace
        .response
        .as_ref()
        .and_then(|response| response.status)
        .map(status_flags)
        .unwrap_or_default();
    segment.http = Some(Http {
        request: Some(request),
        response: trace.response.clone(),
    });
    segment.aws = Some(Aws {
        xray: Some(XraySdk {
            sdk: SDK_NAME.into(),
            sdk_version: env!("CARGO_PKG_VERSION").into(),
            sampling_rule_name: trace.rule_name.clone(),
        }),
        ecs: identity.ecs.clone(),
        cloudwatch_logs: identity.cloudwatch_logs.clone(),
        ..Aws::default()
    });
    add_fields(&mut segment, &trace.segment, &flags);
    segment.metadata.host.truncated = trace.truncated().map(|limit| limit.name());
    segment.subsegments = children_of(trace, None);
    segment
}

fn children_of(trace: &RequestTrace, parent: Option<usize>) -> Vec<Entity> {
    trace
        .subsegments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.parent == parent)
        .map(|(index, s)| subsegment_entity(trace, index, s))
        .collect()
}

fn subsegment_entity(trace: &RequestTrace, index: usize, record: &SubsegmentRecord) -> Entity {
    let end = record.end_time.unwrap_or(record.start_time);
    let mut subsegment = Entity::new(
        truncate(&record.name, 200),
        record.id.clone(),
        record.start_time,
        end.max(record.start_time),
    );
    subsegment.namespace = record.namespace;
    let mut flags = Vec::new();
    if let Some(http) = &record.http {
        subsegment.traced = http.request.as_ref().is_some_and(|r| r.traced);
        if let Some(status) = http.response.as_ref().and_then(|r| r.status) {
            flags.extend(status_flags(status));
        }
        subsegment.http = Some(http.clone());
    }
    subsegment.aws = record.aws.clone();
    add_fields(&mut subsegment, &record.fields, &flags);
    subsegment.metadata.host.ended_by_host = record.ended_by_host;
    subsegment.subsegments = children_of(trace, Some(index));
    subsegment
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

fn add_fields(entity: &mut Entity, fields: &Annotated, status_flags: &[FailureKind]) {
    for kind in status_flags.iter().chain(fields.failures.iter()) {
        match kind {
            FailureKind::Error => entity.error = true,
            FailureKind::Throttle => {
                entity.error = true;
                entity.throttle = true;
            }
            FailureKind::Fault => entity.fault = true,
        }
    }
    if !fields.exceptions.is_empty() {
        entity.cause = Some(Cause {
            exceptions: fields.exceptions.clone(),
        });
    }
    entity.annotations = fields.annotations.clone();
    entity.metadata = fields.metadata.clone();
}

/// `text` cut to at most `max` characters.
pub fn truncate(text: &str, max: usize) -> String {
    // One copy of the bytes kept, rather than a push per character: every segment truncates
    // its name and request fields.
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{AnnotationValue, Exception, HttpResponse, StackFrame};
    use crate::request_trace::{CallEnd, CallStart, Target};
    use serde_json::{Value, json};

    fn response(status: u16, content_length: Option<u64>) -> Option<HttpResponse> {
        Some(HttpResponse {
            status: Some(status),
            content_length,
        })
    }

    fn identity() -> ServiceIdentity {
        ServiceIdentity {
            name: "Backend #1".into(),
            version: "abc".into(),
            origin: Some("AWS::ECS::Container".into()),
            ecs: Some(EcsFields {
                container: Some("ip-10-0-0-1".into()),
                ..EcsFields::default()
            }),
            cloudwatch_logs: vec![CloudWatchLogGroup {
                log_group: "/aws/ecs/app/dev".into(),
                arn: Some("arn:aws:logs:us-west-2:111122223333:log-group:/aws/ecs/app/dev".into()),
            }],
        }
    }

    fn finished_trace() -> RequestTrace {
        let mut trace = RequestTrace::new(
            TraceId::parse("1-5f84c7a1-0123456789abcdef01234567").unwrap(),
            SegmentId::parse("0123456789abcdef").unwrap(),
            true,
        );
        trace.parent_id = SegmentId::parse("fedcba9876543210");
        trace.rule_name = Some("Default".into());
        trace.request.method = "GET".into();
        trace.request.url = "http://backend1.local/".into();
        trace.request.user_agent = Some("curl/8".into());
        trace.request.client_ip = Some("10.0.0.9".into());
        trace.request.x_forwarded_for = true;
        trace.response = response(200, Some(28));
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
        assert_eq!(
            doc["aws"]["cloudwatch_logs"],
            json!([{"log_group": "/aws/ecs/app/dev",
                    "arn": "arn:aws:logs:us-west-2:111122223333:log-group:/aws/ecs/app/dev"}])
        );
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
            trace.response = response(status, None);
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
        let call = trace
            .begin_call(CallStart::Http {
                host: "backend1.local",
                method: "GET",
                url: "http://backend1.local/",
            })
            .expect("within the budget");
        assert_eq!(trace.subsegments[call].parent, Some(manual));
        let header = trace.downstream_header(Some(call)).to_string();
        assert!(
            header.ends_with(&format!(";Parent={};Sampled=1", trace.subsegments[call].id)),
            "{header}"
        );
        trace.end_call(
            call,
            CallEnd {
                status: Some(503),
                ..CallEnd::default()
            },
        );
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
        trace.response = response(500, None);
        let exception = Exception {
            id: SegmentId::parse("00000000000000aa").unwrap(),
            message: "wasm trap: unreachable".into(),
            kind: Some("Trap".into()),
            remote: false,
            stack: vec![StackFrame {
                path: Some("lib.rs".into()),
                line: Some(7),
                label: Some("handle".into()),
            }],
        };
        trace
            .record_failure(Target::Segment, FailureKind::Fault, Some(exception))
            .unwrap();
        trace
            .begin_subsegment(Target::Segment, "never ended")
            .unwrap();
        let end = trace.end_time.unwrap();
        trace.end(end);
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
        let mut trace =
            finished_trace().with_limits(crate::request_trace::budget::RecordingLimits {
                bytes: 1 << 20,
                ..Default::default()
            });
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
        assert_eq!(first["trace_id"], trace.trace_id.as_str());
        assert_eq!(first["parent_id"], trace.segment_id.as_str());
        let segment: Value = serde_json::from_str(docs.last().unwrap()).unwrap();
        assert!(segment.get("subsegments").is_none());
        assert_eq!(segment["id"], trace.segment_id.as_str());
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo", 9), "héllo");
        assert_eq!(truncate("日本語", 1), "日");
        assert_eq!(truncate("", 3), "");
        assert_eq!(truncate("abc", 0), "");
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

    #[test]
    fn a_trace_past_its_budget_says_so_in_the_host_metadata() {
        let mut trace =
            finished_trace().with_limits(crate::request_trace::budget::RecordingLimits {
                exceptions: 0,
                ..Default::default()
            });
        let refused = trace.record_failure(
            Target::Segment,
            FailureKind::Error,
            Some(Exception::new("E", "m", false)),
        );
        assert!(refused.is_err());
        let doc: Value = serde_json::from_str(&documents(&trace, &identity())[0]).unwrap();
        assert_eq!(
            doc["metadata"]["xray_host"]["truncated"], "exceptions",
            "{doc:#}"
        );
    }
}
