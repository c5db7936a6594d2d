//! Manual X-Ray subsegments, annotations, metadata and failures, recorded by the host.
//!
//! ```no_run
//! use xray_guest::tracing::{self, AnnotationValue};
//!
//! let work = tracing::Subsegment::begin("compute-date");
//! work.annotate("sub_app_id", AnnotationValue::Text("backend1".into()));
//! // ... the work ...
//! drop(work); // or work.end()
//! ```
//!
//! Tracing must never break a request: the helpers here log a refused call to stderr (which
//! the host forwards to its log) instead of returning errors the caller would have to handle.
//! The raw interface, with its `Result`s, is available as [`raw`].

use crate::bindings::xray_host::platform::tracing as wit;

pub use wit::{AnnotationValue, Exception, FailureKind, StackFrame, TracingError};

/// The raw generated bindings of `xray-host:platform/tracing`, for callers that want errors.
pub mod raw {
    pub use crate::bindings::xray_host::platform::tracing::*;
}

/// A subsegment that is ended when dropped, so it brackets a scope like the SDKs'
/// `in_subsegment` context managers.
///
/// When the host refuses to open it (an invalid name), the handle is inert: every method is a
/// no-op, and the refusal is logged once.
pub struct Subsegment {
    inner: Option<wit::Subsegment>,
}

impl Subsegment {
    /// Opens a subsegment under the request's segment.
    pub fn begin(name: &str) -> Self {
        Self::from_result(name, wit::begin_subsegment(name))
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
    pub fn annotate(&self, key: &str, value: AnnotationValue) {
        if let Some(inner) = &self.inner {
            log_refusal(
                &format!("annotation {key:?}"),
                inner.add_annotation(key, &value),
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
pub fn annotate(key: &str, value: AnnotationValue) {
    log_refusal(
        &format!("annotation {key:?}"),
        wit::add_annotation(key, &value),
    );
}

/// Adds or replaces `metadata[namespace][key]` on the request's segment.
pub fn metadata(namespace: &str, key: &str, json: &str) {
    log_refusal(
        &format!("metadata {namespace:?}/{key:?}"),
        wit::add_metadata(namespace, key, json),
    );
}

/// Flags the request's segment as failed, with an exception for its `cause` if given.
pub fn fail(kind: FailureKind, exception: Option<Exception>) {
    log_refusal("failure", wit::record_failure(kind, exception.as_ref()));
}

/// The `X-Amzn-Trace-Id` value of the request's segment.
pub fn trace_header() -> String {
    wit::trace_header()
}

/// Whether the request is sampled (its trace will be sent).
pub fn is_sampled() -> bool {
    wit::is_sampled()
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

fn log_refusal<T>(what: &str, result: Result<T, TracingError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            eprintln!("tracing: the host refused {what}: {error:?}");
            None
        }
    }
}
