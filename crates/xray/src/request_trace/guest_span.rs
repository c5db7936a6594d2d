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
//! name, parent, kind, attributes, events and status. Its wasi:otel form (hex ids, attribute
//! values as JSON text) becomes an [`otel::Span`](crate::otel::Span), and the subsegment is
//! what [`mapping::subsegment`] makes of it: the same rules as for a span the stand-in takes
//! over OTLP (the table is in [`crate::otel::mapping`]).
//!
//! The component is not trusted: a span of another trace, an id that is malformed or already
//! used, or the end of a span that never started is refused and recorded nowhere. Spans draw on
//! the request's [`budget`](super::budget) like every other tracing call: each is a
//! subsegment, and its attributes, exceptions and frames take bytes; what does not fit is
//! dropped and counted on the span (`otel.dropped_attributes`), and the trace is marked
//! truncated.

use super::budget::{Limit, exception_bytes};
use super::{FailureKind, RequestTrace, Target, TraceError};
use crate::document::Exception;
use crate::ids::SegmentId;
use crate::otel::mapping::{self, DEFAULT_NAMESPACE};
use crate::otel::{self, Attributes, SpanKind, Status};
use serde_json::Value;
use std::fmt;

/// The metadata key counting what the budget dropped.
pub const DROPPED_KEY: &str = "otel.dropped_attributes";
/// The name a span has until it ends (and keeps if it never does).
const UNENDED_NAME: &str = "unended span";

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
    pub status: Status,
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
    /// The request already has as many subsegments as its budget allows; that many.
    TooManySubsegments(usize),
    /// The request's budget has no room for the span; the limit's message.
    OverBudget(String),
}

impl fmt::Display for SpanRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |id: &str| id.chars().take(40).collect::<String>();
        match self {
            Self::OtherTrace(id) => write!(f, "span of trace {:?}, not the request's", shown(id)),
            Self::InvalidSpanId(id) => write!(f, "span id {:?} is not 16 hex digits", shown(id)),
            Self::SpanIdInUse(id) => write!(f, "span id {id} is already used in the trace"),
            Self::UnknownSpan(id) => write!(f, "end of span {:?}, which is not open", shown(id)),
            Self::OverBudget(message) => write!(f, "{message}"),
            Self::TooManySubsegments(limit) => write!(
                f,
                "the request already has {limit} subsegments ({})",
                Limit::Subsegments.flag()
            ),
        }
    }
}

impl RequestTrace {
    /// The trace id as OpenTelemetry writes it: the 32 hex digits of the X-Ray id.
    pub fn otel_trace_id(&self) -> String {
        self.trace_id.to_w3c()
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
            .map_err(|error| match error {
                _ if self.subsegments.len() >= self.limits.subsegments => {
                    SpanRefusal::TooManySubsegments(self.limits.subsegments)
                }
                TraceError::LimitExceeded(message) => SpanRefusal::OverBudget(message),
                other => SpanRefusal::OverBudget(format!("{other:?}")),
            })?;
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
        let start = if span.start_time.is_finite() && span.start_time > 0.0 {
            span.start_time
        } else {
            self.subsegments[index].start_time
        };
        let end = if span.end_time.is_finite() {
            span.end_time
        } else {
            start
        };
        let mapped = mapping::subsegment(&otel::Span {
            trace_id: self.trace_id.clone(),
            span_id: id,
            parent_span_id: SegmentId::parse(&span.parent_span_id),
            name: span.name.clone(),
            kind: span.kind,
            start_time: start,
            end_time: Some(end),
            attributes: attributes(&span.attributes),
            events: span
                .events
                .iter()
                .map(|event| otel::Event {
                    name: event.name.clone(),
                    time: end,
                    attributes: attributes(&event.attributes),
                })
                .collect(),
            status: span.status.clone(),
        });
        // The span's contents are accounted here, once: the annotations below also pass through
        // `add_annotation` (for its key rules), and `usage.bytes` is set from this budget after.
        let mut budget = Budget {
            left: self.usage.bytes_left(&self.limits),
            dropped: 0,
        };
        let (max_exceptions, max_frames) = (self.limits.exceptions, self.limits.stack_frames);
        let mut exceptions_kept = self.usage.exceptions;
        let exceptions: Vec<Exception> = mapped
            .cause
            .map(|cause| cause.exceptions)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|mut e| {
                if exceptions_kept >= max_exceptions {
                    budget.dropped += 1;
                    return None;
                }
                if e.stack.len() > max_frames {
                    e.stack.truncate(max_frames);
                    budget.dropped += 1;
                }
                budget.take(exception_bytes(&e)).then(|| {
                    exceptions_kept += 1;
                    e
                })
            })
            .collect();
        self.usage.exceptions = exceptions_kept;
        let http = mapped.http.filter(|http| {
            let request = http.request.as_ref();
            budget.take(request.map_or(0, |r| r.url.len() + r.method.len()))
        });
        {
            let subsegment = &mut self.subsegments[index];
            subsegment.name = mapped.name;
            subsegment.parent = parent;
            subsegment.start_time = start;
            subsegment.namespace = mapped.namespace;
            subsegment.http = http;
            subsegment.aws = mapped.aws;
            let failures = &mut subsegment.fields.failures;
            if mapped.fault {
                failures.push(FailureKind::Fault);
            }
            if mapped.throttle {
                failures.push(FailureKind::Throttle);
            } else if mapped.error {
                failures.push(FailureKind::Error);
            }
            subsegment.fields.exceptions.extend(exceptions);
        }
        for (key, value) in mapped.annotations {
            let json = serde_json::to_value(&value).unwrap_or_default();
            if !budget.take(key.len() + json.to_string().len()) {
                continue;
            }
            if self
                .add_annotation(Target::Subsegment(index), &key, value)
                .is_err()
            {
                self.span_metadata(index, DEFAULT_NAMESPACE)
                    .insert(key, json);
            }
        }
        for (namespace, values) in mapped.metadata.namespaces {
            for (key, value) in values {
                if budget.take(key.len() + value.to_string().len()) {
                    self.span_metadata(index, &namespace).insert(key, value);
                }
            }
        }
        if budget.dropped > 0 {
            self.span_metadata(index, DEFAULT_NAMESPACE)
                .insert(DROPPED_KEY.to_string(), Value::from(budget.dropped));
        }
        self.usage.bytes = self.limits.bytes - budget.left;
        if budget.dropped > 0 {
            self.usage.exceeded(Limit::Bytes);
        }
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

    /// A metadata namespace of the subsegment at `index`.
    fn span_metadata(
        &mut self,
        index: usize,
        namespace: &str,
    ) -> &mut std::collections::BTreeMap<String, Value> {
        self.subsegments[index]
            .fields
            .metadata
            .namespaces
            .entry(namespace.to_string())
            .or_default()
    }
}

/// wasi:otel's attributes (values as JSON text) as typed ones.
fn attributes(pairs: &[(String, String)]) -> Attributes {
    Attributes(
        pairs
            .iter()
            .map(|(key, value)| (key.clone(), otel::Value::from_json_text(value)))
            .collect(),
    )
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

#[cfg(test)]
mod tests;
