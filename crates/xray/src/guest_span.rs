//! Spans a component reports through `wasi:otel/tracing`, recorded as subsegments of the
//! request's trace.
//!
//! An OpenTelemetry span id and an X-Ray subsegment id are both 64 bits as 16 hex digits, so a
//! span keeps its id: the trace shows the ids the component's SDK made, and a child span names
//! its parent by the id the parent's subsegment has. The request's segment is the parent of the
//! component's root spans (the host hands its id out as the outer span context).
//!
//! A span is opened when it starts (so that it holds its place, its id and the calls the host
//! records while it runs) and filled in when it ends: only then does the SDK hand over its
//! name, parent, kind, attributes, events and status. The mapping follows what X-Ray does with
//! OpenTelemetry data (the ADOT `awsxray` exporter's conventions):
//!
//! - the span's name is the subsegment's name (characters X-Ray refuses become `_`);
//! - kind `CLIENT` or `PRODUCER` makes a `remote` subsegment;
//! - status `ERROR` sets `fault` and adds the description as an exception of the `cause`;
//!   events named `exception` are exceptions of the `cause` (`exception.type`,
//!   `exception.message`, `exception.stacktrace`);
//! - the attributes named by the string-array attribute `aws.xray.annotations` become
//!   annotations (their keys with every character outside `[A-Za-z0-9_]` as `_`), the others
//!   metadata in the `default` namespace, decoded from the JSON wasi:otel encodes them in.
//!
//! The component is not trusted: a span of another trace, an id that is malformed or already
//! used, or the end of a span that never started is refused and recorded nowhere; spans count
//! against [`MAX_SUBSEGMENTS`], and attributes and exceptions against a per-request budget of
//! [`MAX_GUEST_BYTES`], past which they are dropped and counted.

use crate::document::{AnnotationValue, Exception, Namespace, StackFrame};
use crate::ids::SegmentId;
use crate::request_trace::{FailureKind, MAX_NAME, MAX_SUBSEGMENTS, RequestTrace, Target};
use serde_json::Value;
use std::fmt;

/// The attribute listing which other attributes are annotations (X-Ray's convention).
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";
/// The metadata namespace of span attributes, as X-Ray files OpenTelemetry attributes.
pub const METADATA_NAMESPACE: &str = "default";
/// Bytes of attribute keys and values and exception texts one request's spans may keep.
pub const MAX_GUEST_BYTES: usize = 64 * 1024;
/// The metadata key counting what the budget dropped.
pub const DROPPED_KEY: &str = "otel.dropped_attributes";
/// The name a span has until it ends (and keeps if it never does).
const UNENDED_NAME: &str = "unended span";
/// Stack lines kept of an `exception.stacktrace`.
const MAX_STACK_LINES: usize = 32;

/// What the request keeps about the component's spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestSpans {
    /// Subsegments opened by a span's start whose end has not come.
    started: Vec<usize>,
    /// Bytes of the budget used.
    kept_bytes: usize,
    /// Spans refused so far.
    refused: u32,
}

/// A span's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A call to another service.
    Client,
    /// Handling a call.
    Server,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
    /// Work inside the component.
    Internal,
}

/// How a span's operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanStatus {
    /// Not said.
    Unset,
    /// Succeeded.
    Ok,
    /// Failed, with a description.
    Error(String),
}

/// An event of a span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// The event's name; `exception` events are exceptions.
    pub name: String,
    /// Its attributes, values JSON-encoded.
    pub attributes: Vec<(String, String)>,
}

/// A span as the component's SDK reports it when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits, or empty for a root span.
    pub parent_span_id: String,
    /// Its kind.
    pub kind: SpanKind,
    /// Its name.
    pub name: String,
    /// Start, epoch seconds.
    pub start_time: f64,
    /// End, epoch seconds.
    pub end_time: f64,
    /// Attributes, values JSON-encoded.
    pub attributes: Vec<(String, String)>,
    /// Events.
    pub events: Vec<SpanEvent>,
    /// Status.
    pub status: SpanStatus,
}

/// Why a span was recorded nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanRefusal {
    /// The span belongs to another trace than the request's; the trace id it named.
    OtherTrace(String),
    /// The span id is not 16 hex digits, or all zeros; the id.
    InvalidSpanId(String),
    /// The span id names the segment or another subsegment already; the id.
    SpanIdInUse(String),
    /// The end of a span that was not started, or has already ended; the id.
    UnknownSpan(String),
    /// The request already has [`MAX_SUBSEGMENTS`] subsegments.
    TooManySubsegments,
}

impl fmt::Display for SpanRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |id: &str| id.chars().take(40).collect::<String>();
        match self {
            Self::OtherTrace(id) => write!(f, "span of trace {:?}, not the request's", shown(id)),
            Self::InvalidSpanId(id) => write!(f, "span id {:?} is not 16 hex digits", shown(id)),
            Self::SpanIdInUse(id) => write!(f, "span id {id} is already used in the trace"),
            Self::UnknownSpan(id) => write!(f, "end of span {:?}, which is not open", shown(id)),
            Self::TooManySubsegments => {
                write!(f, "the request already has {MAX_SUBSEGMENTS} subsegments")
            }
        }
    }
}

impl RequestTrace {
    /// The trace id as OpenTelemetry writes it: the 32 hex digits of the X-Ray id.
    pub fn otel_trace_id(&self) -> String {
        let id = self.trace_id.as_str();
        // `1-` + 8 hex + `-` + 24 hex, always (TraceId's invariant).
        format!("{}{}", &id[2..10], &id[11..])
    }

    /// A span of the component has started: opens its subsegment under the segment, now.
    pub fn start_guest_span(
        &mut self,
        trace_id: &str,
        span_id: &str,
        now: f64,
    ) -> Result<(), SpanRefusal> {
        self.check_trace(trace_id)?;
        let id = parse_span_id(span_id)?;
        if id == self.segment_id || self.subsegment_index(&id).is_some() {
            return Err(SpanRefusal::SpanIdInUse(id.to_string()));
        }
        let index = self
            .begin_subsegment_at(Target::Segment, id, UNENDED_NAME, now)
            .map_err(|_| SpanRefusal::TooManySubsegments)?;
        self.guest_spans.started.push(index);
        Ok(())
    }

    /// A span of the component has ended: fills in and ends the subsegment its start opened.
    pub fn end_guest_span(&mut self, span: FinishedSpan) -> Result<(), SpanRefusal> {
        self.check_trace(&span.trace_id)?;
        let id = parse_span_id(&span.span_id)?;
        let unknown = || SpanRefusal::UnknownSpan(span.span_id.clone());
        let index = self.subsegment_index(&id).ok_or_else(unknown)?;
        let place = self.guest_spans.started.iter().position(|&i| i == index);
        let place = place.ok_or_else(unknown)?;
        self.guest_spans.started.swap_remove(place);
        if self.subsegments[index].end_time.is_some() {
            // The host closed it when the request ended.
            return Err(unknown());
        }
        // A parent opened before the span, never the segment's own id or a later subsegment, so
        // that the subsegments stay a tree.
        let parent = SegmentId::parse(&span.parent_span_id)
            .and_then(|parent| self.subsegment_index(&parent))
            .filter(|&parent| parent < index);
        let remote = matches!(span.kind, SpanKind::Client | SpanKind::Producer);
        let mut budget = Budget {
            left: MAX_GUEST_BYTES.saturating_sub(self.guest_spans.kept_bytes),
            dropped: 0,
        };
        let mut exceptions: Vec<Exception> = span
            .events
            .iter()
            .filter(|event| event.name == "exception")
            .filter_map(|event| exception_from_event(event, remote, &mut budget))
            .collect();
        let failed = match &span.status {
            SpanStatus::Error(description) => {
                if !description.is_empty() || exceptions.is_empty() {
                    let message = if description.is_empty() {
                        "the span ended with status ERROR"
                    } else {
                        description
                    };
                    if budget.take(message.len()) {
                        exceptions.push(Exception {
                            id: SegmentId::new(),
                            message: message.to_string(),
                            kind: None,
                            remote,
                            stack: Vec::new(),
                        });
                    }
                }
                true
            }
            SpanStatus::Unset | SpanStatus::Ok => false,
        };
        let start = if span.start_time.is_finite() && span.start_time > 0.0 {
            span.start_time
        } else {
            self.subsegments[index].start_time
        };
        {
            let subsegment = &mut self.subsegments[index];
            subsegment.name = subsegment_name(&span.name);
            subsegment.parent = parent;
            subsegment.start_time = start;
            if remote {
                subsegment.namespace = Some(Namespace::Remote);
            }
            if failed {
                subsegment.fields.failures.push(FailureKind::Fault);
            }
            subsegment.fields.exceptions.extend(exceptions);
        }
        self.record_attributes(index, &span.attributes, &mut budget);
        if budget.dropped > 0 {
            self.span_metadata(index)
                .insert(DROPPED_KEY.to_string(), Value::from(budget.dropped));
        }
        self.guest_spans.kept_bytes = MAX_GUEST_BYTES - budget.left;
        let end = if span.end_time.is_finite() {
            span.end_time
        } else {
            start
        };
        self.end_subsegment_at(index, end).map_err(|_| unknown())
    }

    /// Counts a refused span; true the first time in the request (when it is worth a log line).
    pub fn note_refused_span(&mut self) -> bool {
        self.guest_spans.refused = self.guest_spans.refused.saturating_add(1);
        self.guest_spans.refused == 1
    }

    fn check_trace(&self, trace_id: &str) -> Result<(), SpanRefusal> {
        if trace_id.eq_ignore_ascii_case(&self.otel_trace_id()) {
            Ok(())
        } else {
            Err(SpanRefusal::OtherTrace(trace_id.to_string()))
        }
    }

    /// Annotations for the keys `aws.xray.annotations` lists (when X-Ray takes them), metadata
    /// for the rest.
    fn record_attributes(
        &mut self,
        index: usize,
        attributes: &[(String, String)],
        budget: &mut Budget,
    ) {
        let annotated: Vec<String> = attributes
            .iter()
            .find(|(key, _)| key == ANNOTATIONS_ATTRIBUTE)
            .and_then(|(_, value)| serde_json::from_str::<Vec<String>>(value).ok())
            .unwrap_or_default();
        for (key, value) in attributes {
            if key == ANNOTATIONS_ATTRIBUTE {
                continue;
            }
            if !budget.take(key.len() + value.len()) {
                continue;
            }
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value.clone()));
            if annotated.contains(key)
                && let Some(annotation) = annotation_value(&value)
                && self
                    .add_annotation(Target::Subsegment(index), &annotation_key(key), annotation)
                    .is_ok()
            {
                continue;
            }
            self.span_metadata(index).insert(key.clone(), value);
        }
    }

    /// The metadata namespace of the span's attributes on the subsegment at `index`.
    fn span_metadata(&mut self, index: usize) -> &mut std::collections::BTreeMap<String, Value> {
        self.subsegments[index]
            .fields
            .metadata
            .namespaces
            .entry(METADATA_NAMESPACE.to_string())
            .or_default()
    }
}

/// What is left of the request's byte budget while one span is recorded.
struct Budget {
    left: usize,
    dropped: u64,
}

impl Budget {
    /// Takes `bytes` if they fit; counts a drop if not.
    fn take(&mut self, bytes: usize) -> bool {
        if bytes <= self.left {
            self.left -= bytes;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

fn parse_span_id(text: &str) -> Result<SegmentId, SpanRefusal> {
    SegmentId::parse(text)
        .filter(|id| id.as_str().bytes().any(|b| b != b'0'))
        .ok_or_else(|| SpanRefusal::InvalidSpanId(text.to_string()))
}

/// The span's name as X-Ray accepts a subsegment name.
fn subsegment_name(name: &str) -> String {
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c);
    let name: String = name
        .chars()
        .take(MAX_NAME)
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    if name.is_empty() {
        "span".to_string()
    } else {
        name
    }
}

/// An attribute key as an annotation key (X-Ray allows only `[A-Za-z0-9_]`).
fn annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn annotation_value(value: &Value) -> Option<AnnotationValue> {
    match value {
        Value::String(text) => Some(AnnotationValue::Text(text.clone())),
        Value::Bool(b) => Some(AnnotationValue::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(AnnotationValue::Integer(i)),
            None => n.as_f64().map(AnnotationValue::Number),
        },
        _ => None,
    }
}

/// An `exception` event as an exception of the cause (OpenTelemetry's exception conventions).
fn exception_from_event(event: &SpanEvent, remote: bool, budget: &mut Budget) -> Option<Exception> {
    let text = |name: &str| {
        event
            .attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| match serde_json::from_str(value) {
                Ok(Value::String(text)) => text,
                _ => value.clone(),
            })
    };
    let kind = text("exception.type");
    let message = text("exception.message").unwrap_or_default();
    let stacktrace = text("exception.stacktrace").unwrap_or_default();
    let size = kind.as_ref().map_or(0, String::len) + message.len() + stacktrace.len();
    if !budget.take(size) {
        return None;
    }
    let stack = stacktrace
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(MAX_STACK_LINES)
        .map(|line| StackFrame {
            path: None,
            line: None,
            label: Some(line.to_string()),
        })
        .collect();
    Some(Exception {
        id: SegmentId::new(),
        message,
        kind,
        remote,
        stack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TraceId;

    const TRACE: &str = "5f84c7a10123456789abcdef01234567";

    fn trace() -> RequestTrace {
        RequestTrace::new(
            TraceId::parse("1-5f84c7a1-0123456789abcdef01234567").unwrap(),
            SegmentId::parse("0123456789abcdef").unwrap(),
            true,
        )
    }

    fn span(id: &str, parent: &str, name: &str) -> FinishedSpan {
        FinishedSpan {
            trace_id: TRACE.into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            kind: SpanKind::Internal,
            name: name.into(),
            start_time: 100.5,
            end_time: 101.25,
            attributes: Vec::new(),
            events: Vec::new(),
            status: SpanStatus::Unset,
        }
    }

    const OUTER: &str = "00000000000000a1";
    const INNER: &str = "00000000000000b2";

    #[test]
    fn the_otel_trace_id_is_the_x_ray_id_without_its_dashes() {
        assert_eq!(trace().otel_trace_id(), TRACE);
    }

    #[test]
    fn nested_spans_keep_their_ids_parents_and_times() {
        let mut t = trace();
        t.start_guest_span(TRACE, OUTER, 100.0).unwrap();
        t.start_guest_span(&TRACE.to_uppercase(), INNER, 100.1)
            .unwrap();
        let mut inner = span(INNER, OUTER, "load {id}");
        inner.start_time = 100.75;
        inner.end_time = 101.0;
        t.end_guest_span(inner).unwrap();
        t.end_guest_span(span(OUTER, "0123456789abcdef", "handle"))
            .unwrap();
        let (outer, inner) = (&t.subsegments[0], &t.subsegments[1]);
        assert_eq!(outer.id, OUTER);
        assert_eq!(outer.parent, None);
        assert_eq!(outer.name, "handle");
        assert_eq!((outer.start_time, outer.end_time), (100.5, Some(101.25)));
        assert_eq!(inner.id, INNER);
        assert_eq!(inner.parent, Some(0));
        assert_eq!(inner.name, "load _id_");
        assert_eq!((inner.start_time, inner.end_time), (100.75, Some(101.0)));
        assert!(!outer.ended_by_host && outer.namespace.is_none());
    }

    #[test]
    fn listed_attributes_are_annotations_and_the_rest_metadata() {
        let mut t = trace();
        t.start_guest_span(TRACE, OUTER, 100.0).unwrap();
        let mut s = span(OUTER, "", "work");
        s.kind = SpanKind::Client;
        s.attributes = vec![
            ("app.user".into(), r#""alice""#.into()),
            ("app.items".into(), "3".into()),
            ("app.tags".into(), r#"["a","b"]"#.into()),
            (
                ANNOTATIONS_ATTRIBUTE.into(),
                r#"["app.user","app.items"]"#.into(),
            ),
            ("raw".into(), "not json".into()),
        ];
        t.end_guest_span(s).unwrap();
        let fields = &t.subsegments[0].fields;
        assert_eq!(t.subsegments[0].namespace, Some(Namespace::Remote));
        assert_eq!(
            fields.annotations["app_user"],
            AnnotationValue::Text("alice".into())
        );
        assert_eq!(fields.annotations["app_items"], AnnotationValue::Integer(3));
        let metadata = &fields.metadata.namespaces[METADATA_NAMESPACE];
        assert_eq!(metadata["app.tags"][1], "b");
        assert_eq!(metadata["raw"], "not json");
        assert!(!metadata.contains_key("app.user"));
        assert!(!metadata.contains_key(ANNOTATIONS_ATTRIBUTE));
    }

    #[test]
    fn an_error_status_is_a_fault_and_exception_events_are_the_cause() {
        let mut t = trace();
        t.start_guest_span(TRACE, OUTER, 100.0).unwrap();
        let mut s = span(OUTER, "", "work");
        s.status = SpanStatus::Error("the backend refused".into());
        s.events = vec![
            SpanEvent {
                name: "exception".into(),
                attributes: vec![
                    ("exception.type".into(), r#""ParseError""#.into()),
                    ("exception.message".into(), r#""bad input""#.into()),
                    (
                        "exception.stacktrace".into(),
                        r#""at parse\nat main""#.into(),
                    ),
                ],
            },
            SpanEvent {
                name: "retry".into(),
                attributes: Vec::new(),
            },
        ];
        t.end_guest_span(s).unwrap();
        let fields = &t.subsegments[0].fields;
        assert_eq!(fields.failures, vec![FailureKind::Fault]);
        assert_eq!(fields.exceptions.len(), 2);
        assert_eq!(fields.exceptions[0].kind.as_deref(), Some("ParseError"));
        assert_eq!(fields.exceptions[0].message, "bad input");
        assert_eq!(fields.exceptions[0].stack.len(), 2);
        assert_eq!(fields.exceptions[1].message, "the backend refused");
    }

    #[test]
    fn foreign_malformed_reused_and_unknown_spans_are_refused() {
        let mut t = trace();
        let other = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert!(matches!(
            t.start_guest_span(other, OUTER, 1.0),
            Err(SpanRefusal::OtherTrace(_))
        ));
        for bad in ["xyz", "0000000000000000", "00000000000000a1ff"] {
            assert!(matches!(
                t.start_guest_span(TRACE, bad, 1.0),
                Err(SpanRefusal::InvalidSpanId(_))
            ));
        }
        assert!(matches!(
            t.start_guest_span(TRACE, "0123456789abcdef", 1.0),
            Err(SpanRefusal::SpanIdInUse(_))
        ));
        t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
        assert!(matches!(
            t.start_guest_span(TRACE, OUTER, 1.0),
            Err(SpanRefusal::SpanIdInUse(_))
        ));
        let mut foreign = span(OUTER, "", "x");
        foreign.trace_id = other.into();
        assert!(matches!(
            t.end_guest_span(foreign),
            Err(SpanRefusal::OtherTrace(_))
        ));
        assert!(matches!(
            t.end_guest_span(span(INNER, "", "x")),
            Err(SpanRefusal::UnknownSpan(_))
        ));
        // A manual subsegment is not the component's span to end.
        let manual = t.begin_subsegment(Target::Segment, "manual").unwrap();
        let manual_id = t.subsegments[manual].id.to_string();
        assert!(matches!(
            t.end_guest_span(span(&manual_id, "", "x")),
            Err(SpanRefusal::UnknownSpan(_))
        ));
        t.end_guest_span(span(OUTER, "", "x")).unwrap();
        assert!(matches!(
            t.end_guest_span(span(OUTER, "", "x")),
            Err(SpanRefusal::UnknownSpan(_))
        ));
        assert!(t.note_refused_span());
        assert!(!t.note_refused_span());
    }

    #[test]
    fn a_span_cannot_be_the_parent_of_an_earlier_one() {
        let mut t = trace();
        t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
        t.start_guest_span(TRACE, INNER, 1.0).unwrap();
        t.end_guest_span(span(OUTER, INNER, "a")).unwrap();
        t.end_guest_span(span(INNER, OUTER, "b")).unwrap();
        assert_eq!(t.subsegments[0].parent, None);
        assert_eq!(t.subsegments[1].parent, Some(0));
    }

    #[test]
    fn spans_count_against_the_subsegment_limit_and_attributes_against_the_budget() {
        let mut t = trace();
        for i in 1..=MAX_SUBSEGMENTS {
            t.start_guest_span(TRACE, &format!("{i:016x}"), 1.0)
                .unwrap();
        }
        assert_eq!(
            t.start_guest_span(TRACE, "ffffffffffffffff", 1.0),
            Err(SpanRefusal::TooManySubsegments)
        );
        let big = format!("\"{}\"", "x".repeat(MAX_GUEST_BYTES / 2));
        let mut s = span(&format!("{:016x}", 1), "", "big");
        s.attributes = vec![("a".into(), big.clone()), ("b".into(), big)];
        t.end_guest_span(s).unwrap();
        let metadata = &t.subsegments[0].fields.metadata.namespaces[METADATA_NAMESPACE];
        assert!(metadata.contains_key("a") && !metadata.contains_key("b"));
        assert_eq!(metadata[DROPPED_KEY], 1);
    }

    #[test]
    fn spans_left_open_are_closed_with_the_request() {
        let mut t = trace();
        t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
        t.end_open_subsegments();
        assert!(t.subsegments[0].ended_by_host);
        assert_eq!(t.subsegments[0].name, UNENDED_NAME);
        assert!(matches!(
            t.end_guest_span(span(OUTER, "", "late")),
            Err(SpanRefusal::UnknownSpan(_))
        ));
    }
}
