//! The one owner of a request's trace while the request runs.
//!
//! A request's trace is reached from several places at once: the component's tracing calls (in
//! the store), the outgoing-HTTP hook and the table capability (whose futures run outside the
//! store), and the host's own answers (a fault, the response). They all go through
//! [`ActiveTrace`], which offers the operations they need and nothing else: none of them builds
//! a document, formats a header or mints an id. When X-Ray is off the calls are not recorded
//! and no header is injected, but the component's own tracing calls are still checked, so a
//! component behaves the same with X-Ray on or off.

use crate::document::Exception;
use crate::document::HttpResponse;
use crate::ids::{SegmentId, TraceId};
use crate::request_trace::{CallEnd, CallStart, FailureKind, RequestTrace, Target};
use crate::trace_header::HEADER_NAME;
use crate::traceparent;
use std::sync::{Arc, Mutex, MutexGuard};

/// A request's trace, shared by everything that records into it.
#[derive(Clone)]
pub struct ActiveTrace {
    shared: Arc<Mutex<RequestTrace>>,
    record_calls: bool,
}

impl ActiveTrace {
    /// The trace of a request; `record_calls` is whether X-Ray is on (calls are recorded and
    /// the header injected).
    pub fn new(trace: RequestTrace, record_calls: bool) -> Self {
        Self {
            shared: Arc::new(Mutex::new(trace)),
            record_calls,
        }
    }

    /// A trace that records nothing and is never sent: for a throwaway instance (checking that
    /// a component instantiates).
    pub fn detached() -> Self {
        Self::new(
            RequestTrace::new(TraceId::new(), SegmentId::new(), false),
            false,
        )
    }

    /// Whether this is the last handle on the trace: the request it belongs to has ended and
    /// nothing can record into it any more.
    pub fn is_unreferenced(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.lock().trace_id.clone()
    }

    /// Runs `f` on the recorded trace: the component's tracing calls, which check X-Ray's rules
    /// as they record (see [`RequestTrace`]).
    pub fn with<R>(&self, f: impl FnOnce(&mut RequestTrace) -> R) -> R {
        f(&mut self.lock())
    }

    /// Begins an outgoing HTTP call: a `remote` subsegment under the component's innermost open
    /// subsegment, and the headers naming it set on `request`: `X-Amzn-Trace-Id`, and W3C's
    /// `traceparent` (with the incoming `tracestate`) for the same trace and parent, so that
    /// X-Ray SDKs and OpenTelemetry services both continue the trace.
    pub fn begin_http_call<B>(&self, request: &mut http::Request<B>) -> CallSpan {
        if !self.record_calls {
            return CallSpan::unrecorded();
        }
        let uri = request.uri();
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
            uri.path()
        );
        let (index, header) = {
            let mut trace = self.lock();
            let index = trace.begin_call(CallStart::Http {
                host: uri.host().unwrap_or(""),
                method: request.method().as_str(),
                url: &url,
            });
            (
                index,
                (
                    trace.downstream_header(index),
                    trace.downstream_traceparent(index),
                    trace.trace_state.clone(),
                ),
            )
        };
        let (header, traceparent, trace_state) = header;
        let headers = request.headers_mut();
        if let Ok(value) = http::HeaderValue::from_str(&header.to_string()) {
            headers.insert(HEADER_NAME, value);
        }
        if let Ok(value) = http::HeaderValue::from_str(&traceparent) {
            headers.insert(traceparent::HEADER_NAME, value);
        }
        match trace_state.and_then(|state| http::HeaderValue::from_str(&state).ok()) {
            Some(value) => {
                headers.insert(traceparent::STATE_HEADER_NAME, value);
            }
            // Whatever the component set belongs to no trace the host knows.
            None => {
                headers.remove(traceparent::STATE_HEADER_NAME);
            }
        }
        self.span(index)
    }

    /// Begins a call to an AWS service (`service` is the subsegment's name, e.g. `DynamoDB`).
    pub fn begin_aws_call(&self, service: &str, operation: &str, table: &str) -> CallSpan {
        self.begin(CallStart::Aws {
            service,
            operation,
            table,
        })
    }

    /// Begins a table call that the embedded store answers.
    pub fn begin_embedded_table_call(&self, operation: &str, table: &str) -> CallSpan {
        self.begin(CallStart::EmbeddedTable { operation, table })
    }

    /// Records on the segment why the host answered instead of the component: a fault with a
    /// cause of type `kind`.
    pub fn record_fault(&self, kind: &str, message: &str) {
        let exception = Exception::new(kind, message, false);
        let _ = self
            .lock()
            .record_failure(Target::Segment, FailureKind::Fault, Some(exception));
    }

    /// Records the response the client gets.
    pub fn set_response(&self, status: u16, content_length: Option<u64>) {
        self.lock().response = Some(HttpResponse {
            status: Some(status),
            content_length,
        });
    }

    fn begin(&self, call: CallStart<'_>) -> CallSpan {
        if !self.record_calls {
            return CallSpan::unrecorded();
        }
        let index = self.lock().begin_call(call);
        self.span(index)
    }

    fn span(&self, index: usize) -> CallSpan {
        CallSpan {
            call: Some((self.clone(), index)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RequestTrace> {
        // Only a panic while holding the lock poisons it; the data is still consistent enough
        // to record into.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One call's subsegment while the call runs. A span dropped without an end (the component
/// gave up on the call) stays open and is closed, marked, when the request ends.
#[must_use = "a call's subsegment ends when its span is ended"]
pub struct CallSpan {
    call: Option<(ActiveTrace, usize)>,
}

impl CallSpan {
    fn unrecorded() -> Self {
        Self { call: None }
    }

    /// Ends the call with what its answer said.
    pub fn end(self, end: CallEnd) {
        if let Some((trace, index)) = self.call {
            trace.lock().end_call(index, end);
        }
    }

    /// Ends an HTTP call that got a response head.
    pub fn answered(self, status: u16, content_length: Option<u64>) {
        self.end(CallEnd {
            status: Some(status),
            content_length,
            ..CallEnd::default()
        });
    }

    /// Ends a call that failed as `kind`, with `exception` as its cause.
    pub fn failed(self, kind: FailureKind, exception: Exception) {
        self.end(CallEnd {
            failure: Some((kind, exception)),
            ..CallEnd::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Namespace;
    use crate::trace_header::TraceHeader;

    fn active(record_calls: bool) -> ActiveTrace {
        let trace = RequestTrace::new(TraceId::new(), SegmentId::new(), true);
        ActiveTrace::new(trace, record_calls)
    }

    #[test]
    fn an_http_call_is_a_remote_subsegment_named_in_the_injected_header() {
        let trace = active(true);
        let mut request = http::Request::get("http://backend1.local:8081/api?x=1")
            .body(())
            .unwrap();
        let call = trace.begin_http_call(&mut request);
        call.answered(503, Some(12));
        let header = request.headers()[HEADER_NAME].to_str().unwrap();
        let parsed = TraceHeader::parse(header);
        trace.with(|t| {
            let recorded = &t.subsegments[0];
            assert_eq!(recorded.name, "backend1.local");
            assert_eq!(recorded.namespace, Some(Namespace::Remote));
            assert_eq!(parsed.parent.as_ref(), Some(&recorded.id));
            assert_eq!(parsed.root.as_ref(), Some(&t.trace_id));
            let http = recorded.http.as_ref().unwrap();
            assert_eq!(
                http.request.as_ref().unwrap().url,
                "http://backend1.local:8081/api"
            );
            assert_eq!(http.response.as_ref().unwrap().status, Some(503));
            assert!(recorded.end_time.is_some());
        });
    }

    #[test]
    fn with_x_ray_off_calls_are_not_recorded_and_no_header_is_injected() {
        let trace = active(false);
        let mut request = http::Request::get("http://b/").body(()).unwrap();
        trace.begin_http_call(&mut request).answered(200, None);
        trace
            .begin_aws_call("DynamoDB", "PutItem", "t")
            .end(CallEnd::default());
        assert!(request.headers().get(HEADER_NAME).is_none());
        trace.with(|t| assert!(t.subsegments.is_empty()));
    }

    #[test]
    fn faults_and_failed_calls_carry_exceptions_with_fresh_ids() {
        let trace = active(true);
        trace.record_fault("deadline_exceeded", "too slow");
        trace.begin_aws_call("DynamoDB", "PutItem", "t").failed(
            FailureKind::Throttle,
            Exception::new("ThrottlingException", "slow down", true),
        );
        trace.with(|t| {
            assert_eq!(t.segment.failures, vec![FailureKind::Fault]);
            let segment_cause = &t.segment.exceptions[0];
            let call_cause = &t.subsegments[0].fields.exceptions[0];
            assert_eq!(segment_cause.kind.as_deref(), Some("deadline_exceeded"));
            assert!(call_cause.remote);
            assert_ne!(segment_cause.id, call_cause.id);
        });
    }
}
