//! What one request records through the tracing interface, with X-Ray's rules enforced as each
//! item is added, so that a document built from it later is always valid.
//!
//! The rules (xray-spec §2.2, §2.9): subsegment names are 1 to 200 characters of letters,
//! numbers, white space and `_ . : / % & # = + \ - @`; annotation keys are 1 to 500 characters
//! of `[A-Za-z0-9_]`, values are scalars and strings at most 1000 characters, and at most 50
//! annotations are kept per trace; metadata namespaces are not empty and do not start with
//! `AWS.`, and values are JSON.

use crate::xray::ids::new_segment_id;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// At most this many annotations per trace are indexed by X-Ray.
pub const MAX_ANNOTATIONS: usize = 50;
/// Longest string annotation value.
pub const MAX_ANNOTATION_TEXT: usize = 1000;
/// Longest annotation key.
pub const MAX_ANNOTATION_KEY: usize = 500;
/// Longest (sub)segment name.
pub const MAX_NAME: usize = 200;
/// Subsegments one request may open; more would only make a document X-Ray refuses (64 KiB).
pub const MAX_SUBSEGMENTS: usize = 1000;

/// Why a tracing call was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceError {
    /// The annotation key breaks the key rules.
    InvalidAnnotationKey(String),
    /// The string value is longer than [`MAX_ANNOTATION_TEXT`] characters; the length.
    AnnotationValueTooLong(u32),
    /// Already [`MAX_ANNOTATIONS`] annotations.
    TooManyAnnotations(u32),
    /// The namespace is empty or reserved.
    InvalidMetadataNamespace(String),
    /// The metadata value is not JSON; the parser's message.
    InvalidMetadataJson(String),
    /// The name breaks the name rules (or the request opened too many subsegments).
    InvalidName(String),
    /// The subsegment was already ended.
    AlreadyEnded,
}

/// A scalar annotation value.
#[derive(Debug, Clone, PartialEq)]
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

/// An exception for a `cause`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionRecord {
    /// A random id, as X-Ray wants one per exception.
    pub id: String,
    /// The message.
    pub message: String,
    /// The type name.
    pub kind: Option<String>,
    /// Whether it came from a downstream call.
    pub remote: bool,
    /// Frames: (path, line, label).
    pub stack: Vec<(Option<String>, Option<u32>, Option<String>)>,
}

/// The fields a component may set on the segment or on one of its subsegments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotated {
    /// Indexed annotations.
    pub annotations: BTreeMap<String, AnnotationValue>,
    /// `namespace -> key -> value`.
    pub metadata: BTreeMap<String, BTreeMap<String, Value>>,
    /// The failure flags set, in order.
    pub failures: Vec<FailureKind>,
    /// Exceptions for the `cause`.
    pub exceptions: Vec<ExceptionRecord>,
}

/// A subsegment a component opened.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsegmentRecord {
    /// Its id.
    pub id: String,
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
    /// `remote` for outgoing HTTP, `aws` for AWS calls, none for the component's own.
    pub namespace: Option<&'static str>,
    /// The `http` object of a call (`request`, `response`).
    pub http: Option<Value>,
    /// The `aws` object of an AWS call (`operation`, `table_name`, …).
    pub aws: Option<Value>,
    /// What the component (or the host, for calls) added.
    pub fields: Annotated,
}

/// The incoming request, as the segment's `http.request` records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncomingRequest {
    /// The method.
    pub method: String,
    /// `scheme://host/path`, without the query.
    pub url: String,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client: the first `X-Forwarded-For` address, else the peer.
    pub client_ip: Option<String>,
    /// Whether `client_ip` came from `X-Forwarded-For`.
    pub x_forwarded_for: bool,
}

/// Everything one request records: the segment and its subsegments.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTrace {
    /// The trace id.
    pub trace_id: String,
    /// The id of the request's segment.
    pub segment_id: String,
    /// The caller's (sub)segment id, from the incoming `Parent`.
    pub parent_id: Option<String>,
    /// Whether the trace is sent.
    pub sampled: bool,
    /// The centralized sampling rule that decided, if one did.
    pub rule_name: Option<String>,
    /// Incoming header fields to pass downstream (`Lineage`, …).
    pub extra_header_fields: Vec<(String, String)>,
    /// When the request arrived, epoch seconds.
    pub start_time: f64,
    /// When the response was finished, once it was.
    pub end_time: Option<f64>,
    /// The incoming request.
    pub request: IncomingRequest,
    /// The response status and `Content-Length`, once known.
    pub response: Option<(u16, Option<u64>)>,
    /// What the component (and the host, for failures) added to the segment itself.
    pub segment: Annotated,
    /// The subsegments, in the order they were opened.
    pub subsegments: Vec<SubsegmentRecord>,
}

/// A request's trace, shared by the store (tracing calls) and the outgoing-HTTP hook, whose
/// futures run outside the store.
pub type TraceHandle = std::sync::Arc<std::sync::Mutex<RequestTrace>>;

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
    pub fn new(trace_id: String, segment_id: String, sampled: bool) -> Self {
        Self {
            trace_id,
            segment_id,
            parent_id: None,
            sampled,
            rule_name: None,
            extra_header_fields: Vec::new(),
            start_time: now(),
            end_time: None,
            request: IncomingRequest::default(),
            response: None,
            segment: Annotated::default(),
            subsegments: Vec::new(),
        }
    }

    /// Opens a subsegment the host records for a call the component makes (`remote` for HTTP,
    /// `aws` for AWS services), under the innermost subsegment the component has open (as the
    /// SDKs nest calls under the current context); returns its index.
    pub fn begin_call(
        &mut self,
        name: &str,
        namespace: &'static str,
        http: Option<Value>,
        aws: Option<Value>,
    ) -> usize {
        let parent = self
            .subsegments
            .iter()
            .rposition(|s| s.end_time.is_none() && s.namespace.is_none());
        let name: String = name.chars().take(MAX_NAME).collect();
        self.subsegments.push(SubsegmentRecord {
            id: new_segment_id(),
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
            http,
            aws,
            fields: Annotated::default(),
        });
        self.subsegments.len() - 1
    }

    /// Ends a call's subsegment: merges `http` into its `http` object, sets `aws` fields, and
    /// records a failure if there was one.
    pub fn end_call(
        &mut self,
        index: usize,
        http: Option<Value>,
        failure: Option<(FailureKind, Option<ExceptionRecord>)>,
    ) {
        let Some(subsegment) = self.subsegments.get_mut(index) else {
            return;
        };
        if let Some(Value::Object(extra)) = http {
            let target = subsegment
                .http
                .get_or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(target) = target {
                for (key, value) in extra {
                    match (target.get_mut(&key), value) {
                        (Some(Value::Object(existing)), Value::Object(more)) => {
                            existing.extend(more)
                        }
                        (_, value) => {
                            target.insert(key, value);
                        }
                    }
                }
            }
        }
        if let Some((kind, exception)) = failure {
            subsegment.fields.failures.push(kind);
            subsegment.fields.exceptions.extend(exception);
        }
        subsegment.end_time = Some(now());
    }

    /// Adds fields to a call's `aws` object.
    pub fn merge_call_aws(&mut self, index: usize, fields: Value) {
        let Some(subsegment) = self.subsegments.get_mut(index) else {
            return;
        };
        let target = subsegment
            .aws
            .get_or_insert_with(|| Value::Object(Default::default()));
        if let (Value::Object(target), Value::Object(fields)) = (target, fields) {
            target.extend(fields);
        }
    }

    /// Sets `metadata[namespace]` of a call's subsegment (host-owned namespaces only).
    pub fn set_call_metadata(&mut self, index: usize, namespace: &str, value: Value) {
        if let (Some(subsegment), Value::Object(fields)) = (self.subsegments.get_mut(index), value)
        {
            subsegment
                .fields
                .metadata
                .entry(namespace.to_string())
                .or_default()
                .extend(fields);
        }
    }

    /// The id of a subsegment.
    pub fn subsegment_id(&self, index: usize) -> Option<&str> {
        self.subsegments.get(index).map(|s| s.id.as_str())
    }

    /// The header for a call made from the subsegment at `index`.
    pub fn downstream_header(&self, index: usize) -> String {
        crate::xray::trace_header::TraceHeader::downstream(
            &self.trace_id,
            self.subsegment_id(index).unwrap_or(&self.segment_id),
            self.sampled,
            &self.extra_header_fields,
        )
    }

    /// The `X-Amzn-Trace-Id` value naming the segment as parent.
    pub fn header_value(&self) -> String {
        format!(
            "Root={};Parent={};Sampled={}",
            self.trace_id,
            self.segment_id,
            u8::from(self.sampled)
        )
    }

    /// Opens a subsegment under `parent`; returns its index.
    pub fn begin_subsegment(&mut self, parent: Target, name: &str) -> Result<usize, TraceError> {
        validate_name(name)?;
        if self.subsegments.len() >= MAX_SUBSEGMENTS {
            return Err(TraceError::InvalidName(format!(
                "this request already opened {MAX_SUBSEGMENTS} subsegments"
            )));
        }
        let parent = match parent {
            Target::Segment => None,
            Target::Subsegment(index) => {
                self.open(index)?;
                Some(index)
            }
        };
        self.subsegments.push(SubsegmentRecord {
            id: new_segment_id(),
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

    /// Ends every subsegment still open, marking them as ended by the host; called when the
    /// request ends.
    pub fn end_open_subsegments(&mut self) {
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
        fields.annotations.insert(key.to_string(), value);
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
        let value: Value = serde_json::from_str(json)
            .map_err(|error| TraceError::InvalidMetadataJson(error.to_string()))?;
        self.fields(target)?
            .metadata
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value);
        Ok(())
    }

    /// Records a failure.
    pub fn record_failure(
        &mut self,
        target: Target,
        kind: FailureKind,
        exception: Option<ExceptionRecord>,
    ) -> Result<(), TraceError> {
        let fields = self.fields(target)?;
        fields.failures.push(kind);
        fields.exceptions.extend(exception);
        Ok(())
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
    let length = name.chars().count();
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c);
    if length == 0 || length > MAX_NAME || !name.chars().all(allowed) {
        return Err(TraceError::InvalidName(
            name.chars().take(MAX_NAME + 1).collect(),
        ));
    }
    Ok(())
}

fn validate_annotation(key: &str, value: &AnnotationValue) -> Result<(), TraceError> {
    if key.is_empty()
        || key.len() > MAX_ANNOTATION_KEY
        || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(TraceError::InvalidAnnotationKey(
            key.chars().take(MAX_ANNOTATION_KEY + 1).collect(),
        ));
    }
    match value {
        AnnotationValue::Text(text) if text.chars().count() > MAX_ANNOTATION_TEXT => Err(
            TraceError::AnnotationValueTooLong(text.chars().count().min(u32::MAX as usize) as u32),
        ),
        AnnotationValue::Number(number) if !number.is_finite() => Err(
            TraceError::InvalidMetadataJson(format!("{number} is not a JSON number")),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> RequestTrace {
        RequestTrace::new(
            "1-5f84c7a1-0123456789abcdef01234567".into(),
            "0123456789abcdef".into(),
            true,
        )
    }

    #[test]
    fn nested_subsegments_remember_their_parents_and_end_once() {
        let mut t = trace();
        let outer = t
            .begin_subsegment(Target::Segment, "call backend 1")
            .unwrap();
        let inner = t
            .begin_subsegment(Target::Subsegment(outer), "parse")
            .unwrap();
        assert_eq!(t.subsegments[inner].parent, Some(outer));
        assert_ne!(t.subsegments[inner].id, t.subsegments[outer].id);
        t.end_subsegment(inner).unwrap();
        assert_eq!(t.end_subsegment(inner), Err(TraceError::AlreadyEnded));
        assert_eq!(
            t.add_annotation(
                Target::Subsegment(inner),
                "k",
                AnnotationValue::Boolean(true)
            ),
            Err(TraceError::AlreadyEnded)
        );
        t.end_open_subsegments();
        assert!(t.subsegments[outer].ended_by_host);
        assert!(!t.subsegments[inner].ended_by_host);
        assert!(
            t.subsegments
                .iter()
                .all(|s| s.end_time.unwrap() >= s.start_time)
        );
    }

    #[test]
    fn names_follow_the_x_ray_rules() {
        let mut t = trace();
        for good in ["current-date", "Backend #1", "a/b:c=d+e@f%g&h\\i", "日付"] {
            assert!(t.begin_subsegment(Target::Segment, good).is_ok(), "{good}");
        }
        for bad in ["", "semi;colon", "star*", &"x".repeat(201)] {
            assert!(
                matches!(
                    t.begin_subsegment(Target::Segment, bad),
                    Err(TraceError::InvalidName(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn annotations_follow_the_key_value_and_count_rules() {
        let mut t = trace();
        let text = |s: &str| AnnotationValue::Text(s.into());
        assert!(
            t.add_annotation(Target::Segment, "user_id", text("42"))
                .is_ok()
        );
        assert!(matches!(
            t.add_annotation(Target::Segment, "user-id", text("x")),
            Err(TraceError::InvalidAnnotationKey(_))
        ));
        assert_eq!(
            t.add_annotation(Target::Segment, "long", text(&"é".repeat(1001))),
            Err(TraceError::AnnotationValueTooLong(1001))
        );
        assert!(
            t.add_annotation(Target::Segment, "nan", AnnotationValue::Number(f64::NAN))
                .is_err()
        );
        let sub = t.begin_subsegment(Target::Segment, "work").unwrap();
        for i in 1..MAX_ANNOTATIONS {
            t.add_annotation(
                Target::Subsegment(sub),
                &format!("k{i}"),
                AnnotationValue::Integer(i as i64),
            )
            .unwrap();
        }
        assert_eq!(
            t.add_annotation(Target::Segment, "one_more", text("x")),
            Err(TraceError::TooManyAnnotations(50))
        );
        // Replacing an existing key is not a new annotation.
        assert!(
            t.add_annotation(Target::Segment, "user_id", text("43"))
                .is_ok()
        );
        assert_eq!(t.segment.annotations["user_id"], text("43"));
    }

    #[test]
    fn metadata_must_be_json_in_a_non_reserved_namespace() {
        let mut t = trace();
        t.add_metadata(Target::Segment, "default", "request", r#"{"a":[1,2]}"#)
            .unwrap();
        assert_eq!(t.segment.metadata["default"]["request"]["a"][1], 2);
        assert!(matches!(
            t.add_metadata(Target::Segment, "AWS.xray", "k", "1"),
            Err(TraceError::InvalidMetadataNamespace(_))
        ));
        assert!(matches!(
            t.add_metadata(Target::Segment, "default", "k", "{not json"),
            Err(TraceError::InvalidMetadataJson(_))
        ));
    }

    #[test]
    fn the_header_names_the_segment_as_parent() {
        assert_eq!(
            trace().header_value(),
            "Root=1-5f84c7a1-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"
        );
    }
}
