//! Manual X-Ray instrumentation of the request being handled: subsegments, annotations,
//! metadata and failures, recorded by the host.
//!
//! ```no_run
//! use xray_platform::tracing::{self, Subsegment};
//!
//! tracing::annotate("user_tier", "gold");
//! let work = Subsegment::begin("compute-date");
//! work.annotate("attempt", 1);
//! // ... the work ...
//! drop(work); // or work.end()
//! ```
//!
//! Tracing must never break a request: the helpers here log a refused call to stderr (which the
//! host forwards to its log) instead of returning errors the caller would have to handle. The
//! generated interface, with its `Result`s, is [`crate::raw::tracing`].

use crate::raw::tracing as wit;

pub use wit::{AnnotationValue, Exception, FailureKind, StackFrame, TracingError};

impl From<&str> for AnnotationValue {
    fn from(text: &str) -> Self {
        AnnotationValue::Text(text.to_string())
    }
}

impl From<String> for AnnotationValue {
    fn from(text: String) -> Self {
        AnnotationValue::Text(text)
    }
}

impl From<bool> for AnnotationValue {
    fn from(value: bool) -> Self {
        AnnotationValue::Boolean(value)
    }
}

impl From<f64> for AnnotationValue {
    fn from(value: f64) -> Self {
        AnnotationValue::Number(value)
    }
}

impl From<f32> for AnnotationValue {
    fn from(value: f32) -> Self {
        AnnotationValue::Number(f64::from(value))
    }
}

macro_rules! integer_annotations {
    ($($integer:ty),*) => {
        $(impl From<$integer> for AnnotationValue {
            fn from(value: $integer) -> Self {
                AnnotationValue::Integer(i64::from(value))
            }
        })*
    };
}

integer_annotations!(i8, i16, i32, i64, u8, u16, u32);

/// The request's own segment. The host opens and closes it; a component adds to it.
pub struct Segment {
    inner: wit::Segment,
}

impl Segment {
    /// The segment of the request being handled.
    pub fn current() -> Self {
        Self {
            inner: wit::current_segment(),
        }
    }

    /// The segment's id as it appears in the trace.
    pub fn id(&self) -> String {
        self.inner.id()
    }

    /// Opens a subsegment directly under the segment.
    pub fn begin_subsegment(&self, name: &str) -> Subsegment {
        Subsegment::from_result(name, self.inner.begin_subsegment(name))
    }

    /// Adds or replaces an annotation (indexed by X-Ray, usable in filter expressions).
    pub fn annotate(&self, key: &str, value: impl Into<AnnotationValue>) {
        log_refusal(
            &format!("annotation {key:?}"),
            self.inner.add_annotation(key, &value.into()),
        );
    }

    /// Adds or replaces `metadata[namespace][key]`; `json` must be a JSON value.
    pub fn metadata(&self, namespace: &str, key: &str, json: &str) {
        log_refusal(
            &format!("metadata {namespace:?}/{key:?}"),
            self.inner.add_metadata(namespace, key, json),
        );
    }

    /// Adds or replaces `metadata[namespace][key]` with any serializable value.
    #[cfg(feature = "serde")]
    pub fn metadata_value(&self, namespace: &str, key: &str, value: &impl serde::Serialize) {
        if let Some(json) = to_json(namespace, key, value) {
            self.metadata(namespace, key, &json);
        }
    }

    /// Flags the segment as failed, with an exception for its `cause` if given. The status the
    /// component answers with sets the flags too; this is for failures the status hides.
    pub fn fail(&self, kind: FailureKind, exception: Option<Exception>) {
        log_refusal(
            "failure",
            self.inner.record_failure(kind, exception.as_ref()),
        );
    }

    /// The `X-Amzn-Trace-Id` value naming the segment, to pass the context on some other way
    /// than HTTP (the host adds it to outgoing HTTP calls itself).
    pub fn trace_header(&self) -> String {
        self.inner.trace_header()
    }

    /// Whether the request is sampled (its trace will be sent).
    pub fn is_sampled(&self) -> bool {
        self.inner.is_sampled()
    }
}

/// A subsegment that is ended when dropped, so it brackets a scope like the SDKs'
/// `in_subsegment` context managers.
///
/// When the host refuses to open it (an invalid name, too many subsegments), the handle is
/// inert: every method is a no-op, and the refusal is logged once.
pub struct Subsegment {
    inner: Option<wit::Subsegment>,
}

impl Subsegment {
    /// Opens a subsegment under the request's segment.
    pub fn begin(name: &str) -> Self {
        Segment::current().begin_subsegment(name)
    }

    /// Opens a child subsegment under this one.
    pub fn child(&self, name: &str) -> Self {
        match &self.inner {
            Some(inner) => Self::from_result(name, inner.begin_child(name)),
            None => Self { inner: None },
        }
    }

    fn from_result(name: &str, result: Result<wit::Subsegment, TracingError>) -> Self {
        Self {
            inner: log_refusal(&format!("open subsegment {name:?}"), result),
        }
    }

    /// The subsegment's id as it appears in the trace, when it was opened.
    pub fn id(&self) -> Option<String> {
        self.inner.as_ref().map(|inner| inner.id())
    }

    /// Adds or replaces an annotation (indexed by X-Ray, usable in filter expressions).
    pub fn annotate(&self, key: &str, value: impl Into<AnnotationValue>) {
        if let Some(inner) = &self.inner {
            log_refusal(
                &format!("annotation {key:?}"),
                inner.add_annotation(key, &value.into()),
            );
        }
    }

    /// Adds or replaces `metadata[namespace][key]`; `json` must be a JSON value.
    pub fn metadata(&self, namespace: &str, key: &str, json: &str) {
        if let Some(inner) = &self.inner {
            log_refusal(
                &format!("metadata {namespace:?}/{key:?}"),
                inner.add_metadata(namespace, key, json),
            );
        }
    }

    /// Adds or replaces `metadata[namespace][key]` with any serializable value.
    #[cfg(feature = "serde")]
    pub fn metadata_value(&self, namespace: &str, key: &str, value: &impl serde::Serialize) {
        if let Some(json) = to_json(namespace, key, value) {
            self.metadata(namespace, key, &json);
        }
    }

    /// Flags the subsegment as failed, with an exception for its `cause` if given.
    pub fn fail(&self, kind: FailureKind, exception: Option<Exception>) {
        if let Some(inner) = &self.inner {
            log_refusal("failure", inner.record_failure(kind, exception.as_ref()));
        }
    }

    /// Ends the subsegment now (dropping it does the same).
    pub fn end(mut self) {
        self.end_inner();
    }

    fn end_inner(&mut self) {
        if let Some(inner) = self.inner.take() {
            log_refusal("end subsegment", inner.end());
        }
    }
}

impl Drop for Subsegment {
    fn drop(&mut self) {
        self.end_inner();
    }
}

/// Adds or replaces an annotation on the request's segment.
pub fn annotate(key: &str, value: impl Into<AnnotationValue>) {
    Segment::current().annotate(key, value);
}

/// Adds or replaces `metadata[namespace][key]` on the request's segment.
pub fn metadata(namespace: &str, key: &str, json: &str) {
    Segment::current().metadata(namespace, key, json);
}

/// Flags the request's segment as failed, with an exception for its `cause` if given.
pub fn fail(kind: FailureKind, exception: Option<Exception>) {
    Segment::current().fail(kind, exception);
}

/// The `X-Amzn-Trace-Id` value of the request's segment.
pub fn trace_header() -> String {
    Segment::current().trace_header()
}

/// Whether the request is sampled (its trace will be sent).
pub fn is_sampled() -> bool {
    Segment::current().is_sampled()
}

/// Builds an [`Exception`] with just a message and a type name.
pub fn exception(kind: &str, message: impl Into<String>, remote: bool) -> Exception {
    Exception {
        message: message.into(),
        kind: Some(kind.to_string()),
        remote,
        stack: Vec::new(),
    }
}

#[cfg(feature = "serde")]
fn to_json(namespace: &str, key: &str, value: &impl serde::Serialize) -> Option<String> {
    match serde_json::to_string(value) {
        Ok(json) => Some(json),
        Err(error) => {
            eprintln!("tracing: metadata {namespace:?}/{key:?} does not serialize: {error}");
            None
        }
    }
}

fn log_refusal<T>(what: &str, result: Result<T, TracingError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            eprintln!("tracing: the host refused {what}: {error:?}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_become_annotation_values() {
        assert!(matches!(AnnotationValue::from("a"), AnnotationValue::Text(t) if t == "a"));
        assert!(matches!(
            AnnotationValue::from(7u32),
            AnnotationValue::Integer(7)
        ));
        assert!(matches!(
            AnnotationValue::from(-2i64),
            AnnotationValue::Integer(-2)
        ));
        assert!(matches!(AnnotationValue::from(0.5), AnnotationValue::Number(n) if n == 0.5));
        assert!(matches!(
            AnnotationValue::from(true),
            AnnotationValue::Boolean(true)
        ));
    }
}
