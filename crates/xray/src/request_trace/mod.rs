//! What one request records through the tracing interface, with X-Ray's rules enforced as each
//! item is added, so that a document built from it later is always valid.
//!
//! The rules (xray-spec §2.2, §2.9): subsegment names are 1 to 200 characters of letters,
//! numbers, white space and `_ . : / % & # = + \ - @`; annotation keys are 1 to 500 characters
//! of `[A-Za-z0-9_]`, values are scalars and strings at most 1000 characters, and at most 50
//! annotations are kept per trace; metadata namespaces are not empty and do not start with
//! `AWS.`, and values are JSON.
//!
//! The model is the crate's own: its fields are private, and the request's capabilities reach it
//! through [`ActiveTrace`](crate::active_trace::ActiveTrace)'s named operations. Spans a
//! component reports through wasi:otel are recorded by [`guest_span`]. Everything the component
//! records draws on the request's [`budget`].

pub mod budget;
pub mod guest_span;

use crate::document::{
    AnnotationValue, Aws, Exception, Http, HttpRequest, HttpResponse, Metadata, Namespace,
    StoreNote,
};
use crate::ids::{SegmentId, TraceId};
use crate::trace_header::TraceHeader;
use crate::traceparent::TraceParent;
use budget::{Limit, RecordingLimits, Usage, exception_bytes};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// At most this many annotations per trace are indexed by X-Ray.
pub const MAX_ANNOTATIONS: usize = 50;
/// Longest string annotation value.
pub const MAX_ANNOTATION_TEXT: usize = 1000;
pub use crate::names::{MAX_ANNOTATION_KEY, MAX_NAME};

/// Why a tracing call was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceError {
    /// The annotation key breaks the key rules.
    InvalidAnnotationKey(String),
    /// The string value is longer than [`MAX_ANNOTATION_TEXT`] characters; the length.
    AnnotationValueTooLong(u32),
    /// A number value that JSON cannot hold (NaN, an infinity); the value as text.
    InvalidAnnotationValue(String),
    /// Already [`MAX_ANNOTATIONS`] annotations.
    TooManyAnnotations(u32),
    /// The namespace is empty or reserved.
    InvalidMetadataNamespace(String),
    /// The metadata value is not JSON; the parser's message.
    InvalidMetadataJson(String),
    /// The name breaks the name rules.
    InvalidName(String),
    /// A limit of the request's [`budget`] was reached; which one, its value and the flag that
    /// raises it.
    LimitExceeded(String),
    /// The subsegment was already ended.
    AlreadyEnded,
}

/// How a failure counts: the `error`, `throttle` and `fault` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// `error`.
    Error,
    /// `error` and `throttle`.
    Throttle,
    /// `fault`.
    Fault,
}

/// The fields a component may set on the segment or on one of its subsegments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotated {
    /// Indexed annotations.
    pub annotations: BTreeMap<String, AnnotationValue>,
    /// The component's metadata and the host's notes.
    pub metadata: Metadata,
    /// The failure flags set, in order.
    pub failures: Vec<FailureKind>,
    /// Exceptions for the `cause`.
    pub exceptions: Vec<Exception>,
}

/// A subsegment a component opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsegmentRecord {
    /// Its id.
    pub id: SegmentId,
    /// Its name.
    pub name: String,
    /// The index of its parent in [`RequestTrace::subsegments`], or `None` under the segment.
    pub parent: Option<usize>,
    /// Start, in epoch seconds.
    pub start_time: f64,
    /// End, in epoch seconds, once ended.
    pub end_time: Option<f64>,
    /// True when the host ended it because the request ended first.
    pub ended_by_host: bool,
    /// `remote` for outgoing HTTP, `aws` for AWS calls, `local` for the embedded store, none
    /// for the component's own.
    pub namespace: Option<Namespace>,
    /// The `http` object of a call (`request`, `response`).
    pub http: Option<Http>,
    /// The `aws` object of an AWS call (`operation`, `table_name`, …).
    pub aws: Option<Aws>,
    /// What the component (or the host, for calls) added.
    pub fields: Annotated,
}

/// Everything one request records: the segment and its subsegments.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTrace {
    /// The trace id.
    pub(crate) trace_id: TraceId,
    /// The id of the request's segment.
    pub(crate) segment_id: SegmentId,
    /// The caller's (sub)segment id, from the incoming `Parent`.
    pub(crate) parent_id: Option<SegmentId>,
    /// Whether the trace is sent.
    pub(crate) sampled: bool,
    /// The centralized sampling rule that decided, if one did.
    pub(crate) rule_name: Option<String>,
    /// Incoming header fields to pass downstream (`Lineage`, …).
    pub(crate) extra_header_fields: Vec<(String, String)>,
    /// The incoming W3C `tracestate`, passed downstream beside `traceparent` when it belongs to
    /// this trace.
    pub(crate) trace_state: Option<String>,
    /// When the request arrived, epoch seconds.
    pub(crate) start_time: f64,
    /// When the response was finished, once it was.
    pub(crate) end_time: Option<f64>,
    /// The incoming request.
    pub(crate) request: HttpRequest,
    /// The response status and `Content-Length`, once known.
    pub(crate) response: Option<HttpResponse>,
    /// What the component (and the host, for failures) added to the segment itself.
    pub(crate) segment: Annotated,
    /// The subsegments, in the order they were opened.
    pub(crate) subsegments: Vec<SubsegmentRecord>,
    /// The spans the component reported through wasi:otel (see [`guest_span`]).
    pub(crate) guest_spans: GuestSpanState,
    /// How much the component may record.
    pub(crate) limits: RecordingLimits,
    /// What it has recorded.
    pub(crate) usage: Usage,
}

/// What the request keeps about the component's wasi:otel spans (see [`guest_span`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GuestSpanState {
    /// Subsegments opened by a span's start whose end has not come.
    started: Vec<usize>,
    /// Spans refused so far.
    refused: u32,
}

/// A call the host makes for the component, as its subsegment begins.
#[derive(Debug, Clone, Copy)]
pub enum CallStart<'a> {
    /// Outgoing HTTP: a `remote` subsegment named for the host called.
    Http {
        /// The host called (the subsegment's name).
        host: &'a str,
        /// The method.
        method: &'a str,
        /// `scheme://authority/path`, without the query.
        url: &'a str,
    },
    /// An AWS API call: an `aws` subsegment named for the service.
    Aws {
        /// The service, e.g. `DynamoDB` (the subsegment's name).
        service: &'a str,
        /// The operation, e.g. `PutItem`.
        operation: &'a str,
        /// The table.
        table: &'a str,
    },
    /// A table call the embedded store answers: a `local` subsegment.
    EmbeddedTable {
        /// `PutItem` or `GetItem`.
        operation: &'a str,
        /// The table.
        table: &'a str,
    },
}

/// How a call ended, as its subsegment records it.
#[derive(Debug, Clone, Default)]
pub struct CallEnd {
    /// The HTTP status of the answer, when one came.
    pub status: Option<u16>,
    /// Its `Content-Length`, when declared.
    pub content_length: Option<u64>,
    /// The region of an AWS call.
    pub region: Option<String>,
    /// The AWS request id of the answer.
    pub request_id: Option<String>,
    /// The SDK's retries of an AWS call.
    pub retries: Option<u32>,
    /// The failure, if the call failed.
    pub failure: Option<(FailureKind, Exception)>,
}

/// Where a call applies: the segment or one subsegment (by index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The request's segment.
    Segment,
    /// A subsegment, by index into [`RequestTrace::subsegments`].
    Subsegment(usize),
}

impl RequestTrace {
    /// A trace for a request with these ids, starting now.
    pub fn new(trace_id: TraceId, segment_id: SegmentId, sampled: bool) -> Self {
        Self {
            trace_id,
            segment_id,
            parent_id: None,
            sampled,
            rule_name: None,
            extra_header_fields: Vec::new(),
            trace_state: None,
            start_time: now(),
            end_time: None,
            request: HttpRequest::default(),
            response: None,
            segment: Annotated::default(),
            subsegments: Vec::new(),
            guest_spans: GuestSpanState::default(),
            limits: RecordingLimits::default(),
            usage: Usage::default(),
        }
    }

    /// The same trace, with `limits` in place of the default budget.
    pub fn with_limits(mut self, limits: RecordingLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The first limit of its budget the request ran into, if it did: its trace is truncated.
    pub fn truncated(&self) -> Option<Limit> {
        self.usage.truncated
    }

    /// The limit to log, the first time the request runs into one (then `None`).
    pub(crate) fn take_limit_notice(&mut self) -> Option<Limit> {
        self.usage.take_notice()
    }

    /// The trace id.
    pub fn trace_id(&self) -> &TraceId {
        &self.trace_id
    }

    /// The id of the request's segment.
    pub fn segment_id(&self) -> &SegmentId {
        &self.segment_id
    }

    /// Whether the trace is sent.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// When the request arrived, epoch seconds.
    pub fn start_time(&self) -> f64 {
        self.start_time
    }

    /// When the request ended, once it has.
    pub fn end_time(&self) -> Option<f64> {
        self.end_time
    }

    /// What was added to the segment itself.
    pub fn segment_fields(&self) -> &Annotated {
        &self.segment
    }

    /// The subsegments, in the order they were opened (a subsegment's `parent` indexes this).
    pub fn subsegments(&self) -> &[SubsegmentRecord] {
        &self.subsegments
    }

    /// Records the incoming request, as the segment's `http.request`.
    pub fn set_request(&mut self, request: HttpRequest) {
        self.request = request;
    }

    /// Records the response the client gets.
    pub fn set_response(&mut self, status: u16, content_length: Option<u64>) {
        self.response = Some(HttpResponse {
            status: Some(status),
            content_length,
        });
    }

    /// Ends the request at `at` (unless it has ended already) and every subsegment still open
    /// with it, marked as ended by the host.
    pub fn end(&mut self, at: f64) {
        self.end_time.get_or_insert(at);
        self.end_open_subsegments();
    }

    /// Opens a subsegment the host records for a call the component makes, under the innermost
    /// subsegment the component has open (as the SDKs nest calls under the current context);
    /// returns its index, or `None` when the request has as many subsegments as its budget
    /// allows (the call is then not recorded, and the trace is marked truncated).
    pub fn begin_call(&mut self, call: CallStart<'_>) -> Option<usize> {
        if self.subsegments.len() >= self.limits.subsegments {
            self.usage.exceeded(Limit::Subsegments);
            return None;
        }
        let parent = self
            .subsegments
            .iter()
            .rposition(|s| s.end_time.is_none() && s.namespace.is_none());
        let (name, namespace) = match call {
            CallStart::Http { host, .. } => (host, Namespace::Remote),
            CallStart::Aws { service, .. } => (service, Namespace::Aws),
            CallStart::EmbeddedTable { .. } => ("embedded table", Namespace::Local),
        };
        let name: String = name.chars().take(MAX_NAME).collect();
        let mut record = SubsegmentRecord {
            id: SegmentId::new(),
            name: if name.is_empty() {
                "unknown host".into()
            } else {
                name
            },
            parent,
            start_time: now(),
            end_time: None,
            ended_by_host: false,
            namespace: Some(namespace),
            http: None,
            aws: None,
            fields: Annotated::default(),
        };
        match call {
            CallStart::Http { method, url, .. } => {
                record.http = Some(Http {
                    request: Some(HttpRequest {
                        method: method.to_string(),
                        url: url.to_string(),
                        traced: true,
                        ..HttpRequest::default()
                    }),
                    response: None,
                });
            }
            CallStart::Aws {
                operation, table, ..
            } => {
                record.aws = Some(Aws {
                    operation: Some(operation.to_string()),
                    table_name: Some(table.to_string()),
                    ..Aws::default()
                });
            }
            CallStart::EmbeddedTable { operation, table } => {
                record.fields.metadata.host.store = Some(StoreNote {
                    store: "redb",
                    operation: operation.to_string(),
                    table: table.to_string(),
                });
            }
        }
        self.subsegments.push(record);
        Some(self.subsegments.len() - 1)
    }

    /// Ends a call's subsegment with what the answer said.
    pub fn end_call(&mut self, index: usize, end: CallEnd) {
        let Some(subsegment) = self.subsegments.get_mut(index) else {
            return;
        };
        if end.status.is_some() || end.content_length.is_some() {
            subsegment.http.get_or_insert_with(Http::default).response = Some(HttpResponse {
                status: end.status,
                content_length: end.content_length,
            });
        }
        if let Some(aws) = subsegment.aws.as_mut() {
            aws.region = end.region;
            aws.request_id = end.request_id;
            aws.retries = end.retries;
        }
        if let Some((kind, exception)) = end.failure {
            subsegment.fields.failures.push(kind);
            subsegment.fields.exceptions.push(exception);
        }
        subsegment.end_time = Some(now());
    }

    /// The id of a subsegment.
    pub fn subsegment_id(&self, index: usize) -> Option<&SegmentId> {
        self.subsegments.get(index).map(|s| &s.id)
    }

    /// The header for a call made from the subsegment at `index` (from the segment itself
    /// when there is none: a call the budget left unrecorded): it names that as the parent and
    /// passes the incoming extra fields on.
    pub fn downstream_header(&self, index: Option<usize>) -> TraceHeader {
        TraceHeader::for_parent(
            &self.trace_id,
            self.downstream_parent(index),
            self.sampled,
            &self.extra_header_fields,
        )
    }

    /// The W3C `traceparent` naming the same trace and parent as
    /// [`downstream_header`](Self::downstream_header).
    pub fn downstream_traceparent(&self, index: Option<usize>) -> String {
        TraceParent::format(&self.trace_id, self.downstream_parent(index), self.sampled)
    }

    fn downstream_parent(&self, index: Option<usize>) -> &SegmentId {
        index
            .and_then(|index| self.subsegment_id(index))
            .unwrap_or(&self.segment_id)
    }

    /// The header naming the segment itself as parent (what a component reads as its context).
    pub fn own_header(&self) -> TraceHeader {
        TraceHeader::for_parent(&self.trace_id, &self.segment_id, self.sampled, &[])
    }

    /// Opens a subsegment under `parent`; returns its index.
    pub fn begin_subsegment(&mut self, parent: Target, name: &str) -> Result<usize, TraceError> {
        validate_name(name)?;
        if self.subsegments.len() >= self.limits.subsegments {
            return Err(self.refuse(Limit::Subsegments));
        }
        let parent = match parent {
            Target::Segment => None,
            Target::Subsegment(index) => {
                self.open(index)?;
                Some(index)
            }
        };
        self.draw(name.len())?;
        self.subsegments.push(SubsegmentRecord {
            id: SegmentId::new(),
            name: name.to_string(),
            parent,
            start_time: now(),
            end_time: None,
            ended_by_host: false,
            namespace: None,
            http: None,
            aws: None,
            fields: Annotated::default(),
        });
        Ok(self.subsegments.len() - 1)
    }

    /// Ends a subsegment.
    pub fn end_subsegment(&mut self, index: usize) -> Result<(), TraceError> {
        self.open(index)?.end_time = Some(now());
        Ok(())
    }

    /// Opens a subsegment under `parent` with an id and start time that the caller chose (a
    /// span a component reports, whose span id is the subsegment's id); returns its index. The
    /// caller makes sure `id` names nothing else in the trace (see
    /// [`subsegment_index`](Self::subsegment_index)).
    pub fn begin_subsegment_at(
        &mut self,
        parent: Target,
        id: SegmentId,
        name: &str,
        start_time: f64,
    ) -> Result<usize, TraceError> {
        let index = self.begin_subsegment(parent, name)?;
        let subsegment = &mut self.subsegments[index];
        subsegment.id = id;
        subsegment.start_time = start_time;
        Ok(index)
    }

    /// Ends a subsegment at `end_time` (its start time when `end_time` is earlier).
    pub fn end_subsegment_at(&mut self, index: usize, end_time: f64) -> Result<(), TraceError> {
        let subsegment = self.open(index)?;
        subsegment.end_time = Some(end_time.max(subsegment.start_time));
        Ok(())
    }

    /// The index of the subsegment with this id, if there is one.
    pub fn subsegment_index(&self, id: &SegmentId) -> Option<usize> {
        self.subsegments.iter().position(|s| &s.id == id)
    }

    /// Ends every subsegment still open, marking them as ended by the host; called when the
    /// request ends.
    fn end_open_subsegments(&mut self) {
        let end = self.end_time.unwrap_or_else(now);
        for subsegment in self.subsegments.iter_mut().filter(|s| s.end_time.is_none()) {
            subsegment.end_time = Some(end);
            subsegment.ended_by_host = true;
        }
    }

    /// Adds or replaces an annotation.
    pub fn add_annotation(
        &mut self,
        target: Target,
        key: &str,
        value: AnnotationValue,
    ) -> Result<(), TraceError> {
        validate_annotation(key, &value)?;
        let count = self.annotation_count();
        let fields = self.fields(target)?;
        if !fields.annotations.contains_key(key) && count >= MAX_ANNOTATIONS {
            return Err(TraceError::TooManyAnnotations(MAX_ANNOTATIONS as u32));
        }
        let text = match &value {
            AnnotationValue::Text(text) => text.len(),
            _ => 0,
        };
        self.draw(key.len() + text)?;
        self.fields(target)?
            .annotations
            .insert(key.to_string(), value);
        Ok(())
    }

    /// Adds or replaces `metadata[namespace][key]`.
    pub fn add_metadata(
        &mut self,
        target: Target,
        namespace: &str,
        key: &str,
        json: &str,
    ) -> Result<(), TraceError> {
        if namespace.is_empty() || namespace.starts_with("AWS.") {
            return Err(TraceError::InvalidMetadataNamespace(namespace.to_string()));
        }
        // Checked before the JSON is parsed: an oversized document costs no more than its
        // refusal.
        let bytes = namespace.len() + key.len() + json.len();
        if bytes > self.usage.bytes_left(&self.limits) {
            return Err(self.refuse(Limit::Bytes));
        }
        let value: Value = serde_json::from_str(json)
            .map_err(|error| TraceError::InvalidMetadataJson(error.to_string()))?;
        let exists = self
            .fields(target)?
            .metadata
            .namespaces
            .get(namespace)
            .is_some_and(|values| values.contains_key(key));
        if !exists {
            if self.usage.metadata_entries >= self.limits.metadata_entries {
                return Err(self.refuse(Limit::MetadataEntries));
            }
            self.usage.metadata_entries += 1;
        }
        self.draw(bytes)?;
        self.fields(target)?
            .metadata
            .namespaces
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value);
        Ok(())
    }

    /// Records a failure the component reports; its exception draws on the budget.
    pub fn record_failure(
        &mut self,
        target: Target,
        kind: FailureKind,
        exception: Option<Exception>,
    ) -> Result<(), TraceError> {
        self.fields(target)?;
        if let Some(exception) = &exception {
            if self.usage.exceptions >= self.limits.exceptions {
                return Err(self.refuse(Limit::Exceptions));
            }
            if exception.stack.len() > self.limits.stack_frames {
                return Err(self.refuse(Limit::StackFrames));
            }
            self.draw(exception_bytes(exception))?;
            self.usage.exceptions += 1;
        }
        self.record_host_failure(target, kind, exception)
    }

    /// Records a failure the host observed (a fault it answered for): never refused for the
    /// budget, which bounds what the component records.
    pub(crate) fn record_host_failure(
        &mut self,
        target: Target,
        kind: FailureKind,
        exception: Option<Exception>,
    ) -> Result<(), TraceError> {
        let fields = self.fields(target)?;
        fields.failures.push(kind);
        fields.exceptions.extend(exception);
        Ok(())
    }

    /// Takes `bytes` from the budget, or refuses.
    fn draw(&mut self, bytes: usize) -> Result<(), TraceError> {
        if bytes > self.usage.bytes_left(&self.limits) {
            return Err(self.refuse(Limit::Bytes));
        }
        self.usage.bytes += bytes;
        Ok(())
    }

    /// The refusal for `limit`, noted as the trace's truncation.
    fn refuse(&mut self, limit: Limit) -> TraceError {
        self.usage.exceeded(limit);
        TraceError::LimitExceeded(limit.message(&self.limits))
    }

    fn annotation_count(&self) -> usize {
        self.segment.annotations.len()
            + self
                .subsegments
                .iter()
                .map(|s| s.fields.annotations.len())
                .sum::<usize>()
    }

    fn fields(&mut self, target: Target) -> Result<&mut Annotated, TraceError> {
        match target {
            Target::Segment => Ok(&mut self.segment),
            Target::Subsegment(index) => Ok(&mut self.open(index)?.fields),
        }
    }

    fn open(&mut self, index: usize) -> Result<&mut SubsegmentRecord, TraceError> {
        match self.subsegments.get_mut(index) {
            Some(subsegment) if subsegment.end_time.is_none() => Ok(subsegment),
            _ => Err(TraceError::AlreadyEnded),
        }
    }
}

/// Seconds since the epoch, with microseconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as f64 / 1e6)
        .unwrap_or(0.0)
}

fn validate_name(name: &str) -> Result<(), TraceError> {
    if !crate::names::is_valid_name(name) {
        return Err(TraceError::InvalidName(
            name.chars().take(MAX_NAME + 1).collect(),
        ));
    }
    Ok(())
}

fn validate_annotation(key: &str, value: &AnnotationValue) -> Result<(), TraceError> {
    if !crate::names::is_valid_annotation_key(key) {
        return Err(TraceError::InvalidAnnotationKey(
            key.chars().take(MAX_ANNOTATION_KEY + 1).collect(),
        ));
    }
    match value {
        AnnotationValue::Text(text) if text.chars().count() > MAX_ANNOTATION_TEXT => Err(
            TraceError::AnnotationValueTooLong(text.chars().count().min(u32::MAX as usize) as u32),
        ),
        AnnotationValue::Number(number) if !number.is_finite() => {
            Err(TraceError::InvalidAnnotationValue(number.to_string()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
