//! The one owner of a request's trace while the request runs.
//!
//! A request's trace is reached from several places at once: the component's tracing calls (in
//! the store), the outgoing-HTTP hook and the table capability (whose futures run outside the
//! store), and the host's own answers (a fault, the response). They all go through
//! [`ActiveTrace`], which offers the operations they need and nothing else: none of them builds
//! a document, formats a header or mints an id, and none of them sees the recorded model. When
//! X-Ray is off the calls are not recorded and no header is injected, but the component's own
//! tracing calls are still checked, so a component behaves the same with X-Ray on or off.
//!
//! Nothing is made that nobody uses: with X-Ray off the request's trace (its ids, its model) is
//! made only if the component asks for it, from the headers kept as sent; the response header is
//! formatted when the response is ready; a trace that will not be sent (X-Ray off, or not
//! sampled) records nothing about its response and its guard finishes nothing.
//!
//! The request ends with [`ActiveTrace::respond`]: it records the response, puts the
//! `X-Amzn-Trace-Id` answer on it, and returns the [`SegmentGuard`] that finishes the segment
//! (and hands it to the exporters) when the response body is done.

use crate::document::{AnnotationValue, Exception};
use crate::ids::{SegmentId, TraceId};
use crate::incoming::SentHeaders;
use crate::request_trace::guest_span::{FinishedSpan, SpanRefusal};
use crate::request_trace::{CallEnd, CallStart, FailureKind, RequestTrace, Target, TraceError};
use crate::trace_header::{HEADER_NAME, SampledFlag, TraceHeader};
use crate::traceparent;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// What finishes a request's trace once its response is done: the recorder, which ends it and
/// hands it to the exporters if it was sampled.
pub(crate) trait FinishTrace: Send + Sync {
    /// Ends `trace` and exports it as the segment of service `name` at `version`.
    fn finish(&self, trace: &mut RequestTrace, name: &str, version: &str);
}

/// A request's trace, shared by everything that records into it.
#[derive(Clone)]
pub struct ActiveTrace {
    shared: Arc<Shared>,
}

struct Shared {
    /// The recorded model; for an unrecorded trace, made from `unborn` the first time it is
    /// needed.
    trace: OnceLock<Mutex<RequestTrace>>,
    /// What an unrecorded trace is made from (X-Ray off, or detached).
    unborn: Option<SentHeaders>,
    /// Whether X-Ray is on: calls are recorded and the header injected.
    record_calls: bool,
    /// The `X-Amzn-Trace-Id` the response carries.
    response_header: ResponseHeader,
    /// Who finishes the trace; none for a detached one.
    finisher: Option<Arc<dyn FinishTrace>>,
}

/// What the response's `X-Amzn-Trace-Id` says, written from the trace when the response is
/// ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseHeader {
    /// No header (X-Ray off, a detached trace).
    Omitted,
    /// `Root=<trace id>`.
    Root,
    /// `Root=<trace id>;Sampled=<1|0>`: the caller sent `Sampled=?`.
    RootAndDecision,
}

/// The trace context a component's OpenTelemetry SDK continues: the request's segment as the
/// parent span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace id as W3C writes it (32 hex digits).
    pub trace_id: String,
    /// The segment's id, the component's root spans' parent.
    pub span_id: String,
    /// Whether the trace is sent.
    pub sampled: bool,
    /// The incoming W3C `tracestate`, when it belongs to this trace.
    pub trace_state: Option<String>,
}

/// A span the request's trace did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRefused {
    /// Why.
    pub reason: SpanRefusal,
    /// True for the first refusal in the request, the one worth a log line.
    pub first_in_request: bool,
}

/// Which component answered: what the finished segment names.
#[derive(Debug, Clone)]
pub struct Responder<'a> {
    /// The service, the segment's name.
    pub service: &'a str,
    /// The component version (its whole content hash), the segment's `service.version`.
    pub version: &'a str,
    /// The S3 version id of the component's object, when it came from a versioned bucket.
    pub s3_version_id: Option<Arc<str>>,
}

impl ActiveTrace {
    /// The trace of a request; `record_calls` is whether X-Ray is on (calls are recorded and
    /// the header injected); `finisher` ends and exports it when the response is done.
    pub(crate) fn new(
        trace: RequestTrace,
        record_calls: bool,
        response_header: ResponseHeader,
        finisher: Option<Arc<dyn FinishTrace>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                trace: OnceLock::from(Mutex::new(trace)),
                unborn: None,
                record_calls,
                response_header,
                finisher,
            }),
        }
    }

    /// The trace of a request nothing records (X-Ray off): no header, no finisher, and no
    /// model until the component asks for its trace (then made from `sent`, so that it names
    /// the trace the caller named, as with X-Ray on).
    pub(crate) fn unrecorded(sent: SentHeaders) -> Self {
        Self {
            shared: Arc::new(Shared {
                trace: OnceLock::new(),
                unborn: Some(sent),
                record_calls: false,
                response_header: ResponseHeader::Omitted,
                finisher: None,
            }),
        }
    }

    /// A trace that records nothing and is never sent: for a throwaway instance (checking that
    /// a component instantiates), and for a call no request can be found for.
    pub fn detached() -> Self {
        Self::unrecorded(SentHeaders::none())
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

    /// The id of the request's segment.
    pub fn segment_id(&self) -> SegmentId {
        self.lock().segment_id.clone()
    }

    /// Whether the trace is sent.
    pub fn is_sampled(&self) -> bool {
        // A trace not made yet is an unrecorded one: never sent.
        self.shared.trace.get().is_some_and(|_| self.lock().sampled)
    }

    /// The `X-Amzn-Trace-Id` naming the segment as parent: what a component reads as its
    /// context.
    pub fn own_header(&self) -> String {
        self.lock().own_header().to_string()
    }

    /// The context a component's OpenTelemetry spans continue.
    pub fn span_context(&self) -> SpanContext {
        let trace = self.lock();
        SpanContext {
            trace_id: trace.otel_trace_id(),
            span_id: trace.segment_id.to_string(),
            sampled: trace.sampled,
            trace_state: trace.trace_state.clone(),
        }
    }

    /// Opens a component's subsegment under `parent` (the segment, or one of its open
    /// subsegments); returns its index.
    pub fn begin_subsegment(&self, parent: Target, name: &str) -> Result<usize, TraceError> {
        self.recording(|trace| trace.begin_subsegment(parent, name))
    }

    /// Ends a component's subsegment.
    pub fn end_subsegment(&self, index: usize) -> Result<(), TraceError> {
        self.lock().end_subsegment(index)
    }

    /// The id of the subsegment at `index`.
    pub fn subsegment_id(&self, index: usize) -> Option<SegmentId> {
        self.lock().subsegment_id(index).cloned()
    }

    /// Adds or replaces an annotation on `target`.
    pub fn annotate(
        &self,
        target: Target,
        key: &str,
        value: AnnotationValue,
    ) -> Result<(), TraceError> {
        self.recording(|trace| trace.add_annotation(target, key, value))
    }

    /// Adds or replaces `metadata[namespace][key]` on `target`; `json` is the value.
    pub fn add_metadata(
        &self,
        target: Target,
        namespace: &str,
        key: &str,
        json: &str,
    ) -> Result<(), TraceError> {
        self.recording(|trace| trace.add_metadata(target, namespace, key, json))
    }

    /// Records a failure the component reports on `target`.
    pub fn record_failure(
        &self,
        target: Target,
        kind: FailureKind,
        exception: Option<Exception>,
    ) -> Result<(), TraceError> {
        self.recording(|trace| trace.record_failure(target, kind, exception))
    }

    /// A component's span has started (wasi:otel `on-start`), at `now`.
    pub fn start_guest_span(
        &self,
        trace_id: &str,
        span_id: &str,
        now: f64,
    ) -> Result<(), SpanRefused> {
        self.recording(|trace| {
            let result = trace.start_guest_span(trace_id, span_id, now);
            refused(trace, result)
        })
    }

    /// A component's span has ended (wasi:otel `on-end`).
    pub fn end_guest_span(&self, span: FinishedSpan) -> Result<(), SpanRefused> {
        self.recording(|trace| {
            let result = trace.end_guest_span(span);
            refused(trace, result)
        })
    }

    /// Begins an outgoing HTTP call to `uri`: a `remote` subsegment under the component's
    /// innermost open subsegment, and the headers naming it set in `headers`:
    /// `X-Amzn-Trace-Id`, and W3C's `traceparent` (with the incoming `tracestate`) for the same
    /// trace and parent, so that X-Ray SDKs and OpenTelemetry services both continue the trace.
    pub fn begin_http_call(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &mut http::HeaderMap,
    ) -> CallSpan {
        if !self.shared.record_calls {
            return CallSpan::unrecorded();
        }
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
            uri.path()
        );
        let (index, header, traceparent, trace_state) = self.recording(|trace| {
            let index = trace.begin_call(CallStart::Http {
                host: uri.host().unwrap_or(""),
                method: method.as_str(),
                url: &url,
            });
            (
                index,
                trace.downstream_header(index),
                trace.downstream_traceparent(index),
                trace.trace_state.clone(),
            )
        });
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
        CallSpan::of(self, index)
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
        if !self.shared.record_calls {
            // Nothing would send it.
            return;
        }
        let exception = Exception::new(kind, message, false);
        let _ =
            self.lock()
                .record_host_failure(Target::Segment, FailureKind::Fault, Some(exception));
    }

    /// Finishes the response the client gets: records its status and `Content-Length` (and
    /// the S3 version of the component that answered), puts the `X-Amzn-Trace-Id` answer on
    /// it, and returns the guard that ends and exports the segment when dropped; keep it with
    /// the response body, so that the segment ends when the body has been sent.
    pub fn respond<B>(
        &self,
        response: &mut http::Response<B>,
        responder: Responder<'_>,
    ) -> SegmentGuard {
        if let Some(value) = self
            .response_header()
            .and_then(|header| http::HeaderValue::try_from(header.to_string()).ok())
        {
            response.headers_mut().insert(HEADER_NAME, value);
        }
        // What is recorded from here on is read only by the finisher, for a sent segment.
        if self.shared.finisher.is_none() || !self.is_sampled() {
            return SegmentGuard {
                trace: self.clone(),
                finish: None,
            };
        }
        let content_length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        {
            let mut trace = self.lock();
            trace.set_response(response.status().as_u16(), content_length);
            if let Some(version_id) = responder.s3_version_id {
                trace.segment.metadata.host.component_s3_version_id = Some(version_id);
            }
        }
        SegmentGuard {
            trace: self.clone(),
            finish: Some((responder.service.to_string(), responder.version.to_string())),
        }
    }

    /// Runs `f` on the recorded model: for this crate only (the recorder and its tests).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RequestTrace) -> R) -> R {
        f(&mut self.lock())
    }

    /// The `X-Amzn-Trace-Id` the response gets, if any.
    pub(crate) fn response_header(&self) -> Option<TraceHeader> {
        let decision = match self.shared.response_header {
            ResponseHeader::Omitted => return None,
            ResponseHeader::Root => None,
            ResponseHeader::RootAndDecision => Some(if self.is_sampled() {
                SampledFlag::Yes
            } else {
                SampledFlag::No
            }),
        };
        Some(TraceHeader {
            root: Some(self.trace_id()),
            sampled: decision,
            ..TraceHeader::default()
        })
    }

    fn begin(&self, call: CallStart<'_>) -> CallSpan {
        if !self.shared.record_calls {
            return CallSpan::unrecorded();
        }
        let index = self.recording(|trace| trace.begin_call(call));
        CallSpan::of(self, index)
    }

    /// Runs one of the component's recording operations; the first time in the request that
    /// the budget refuses something, says so in the log (once: a component that keeps trying
    /// cannot flood it).
    fn recording<R>(&self, f: impl FnOnce(&mut RequestTrace) -> R) -> R {
        let mut trace = self.lock();
        let result = f(&mut trace);
        if let Some(limit) = trace.take_limit_notice() {
            tracing::warn!(
                trace_id = %trace.trace_id,
                limit = limit.name(),
                "a component reached its trace budget: {}; its further recording in this \
                 request past the limit is refused, and the segment says it was truncated",
                limit.message(&trace.limits)
            );
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, RequestTrace> {
        let shared = &*self.shared;
        let trace = shared.trace.get_or_init(|| {
            let sent = shared.unborn.as_ref();
            Mutex::new(
                sent.expect("a recorded trace is made with its model")
                    .trace(),
            )
        });
        // Only a panic while holding the lock poisons it; the data is still consistent enough
        // to record into.
        trace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A refusal, counted; marked when it is the request's first.
fn refused(trace: &mut RequestTrace, result: Result<(), SpanRefusal>) -> Result<(), SpanRefused> {
    result.map_err(|reason| SpanRefused {
        reason,
        first_in_request: trace.note_refused_span(),
    })
}

/// Finishes a request's segment when dropped: attached to the response body, so the segment
/// ends when the body has been sent (or the client went away). Made by
/// [`ActiveTrace::respond`].
pub struct SegmentGuard {
    trace: ActiveTrace,
    /// The service and component version the segment names, when it is to be finished and
    /// sent; none for a trace nothing sends.
    finish: Option<(String, String)>,
}

impl SegmentGuard {
    /// Notes that the response body was not sent to its end (the client went away or stopped
    /// reading, or the body failed): the segment says so in the host's metadata.
    pub fn note_response_incomplete(&self) {
        if self.finish.is_some() {
            self.trace.lock().segment.metadata.host.response_incomplete = true;
        }
    }
}

impl Drop for SegmentGuard {
    fn drop(&mut self) {
        if let (Some(finisher), Some((service, version))) =
            (&self.trace.shared.finisher, &self.finish)
        {
            self.trace
                .with(|trace| finisher.finish(trace, service, version));
        }
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

    fn of(trace: &ActiveTrace, index: Option<usize>) -> Self {
        Self {
            call: index.map(|index| (trace.clone(), index)),
        }
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
        ActiveTrace::new(trace, record_calls, ResponseHeader::Omitted, None)
    }

    #[test]
    fn an_http_call_is_a_remote_subsegment_named_in_the_injected_header() {
        let trace = active(true);
        let uri: http::Uri = "http://backend1.local:8081/api?x=1".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        let call = trace.begin_http_call(&http::Method::GET, &uri, &mut headers);
        call.answered(503, Some(12));
        let header = headers[HEADER_NAME].to_str().unwrap();
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
        let mut headers = http::HeaderMap::new();
        let uri = http::Uri::from_static("http://b/");
        trace
            .begin_http_call(&http::Method::GET, &uri, &mut headers)
            .answered(200, None);
        trace
            .begin_aws_call("DynamoDB", "PutItem", "t")
            .end(CallEnd::default());
        assert!(headers.get(HEADER_NAME).is_none());
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

    /// Keeps what it was asked to finish.
    #[derive(Default)]
    struct Finished(Mutex<Vec<(String, String, RequestTrace)>>);

    impl FinishTrace for Finished {
        fn finish(&self, trace: &mut RequestTrace, name: &str, version: &str) {
            trace.end(crate::request_trace::now());
            let mut finished = self.0.lock().unwrap();
            finished.push((name.into(), version.into(), trace.clone()));
        }
    }

    #[test]
    fn the_response_gets_the_answer_header_and_the_guard_finishes_the_segment() {
        let finished = Arc::new(Finished::default());
        let answer = TraceHeader::parse("Root=1-5f84c7a1-0123456789abcdef01234567;Sampled=1");
        let trace = ActiveTrace::new(
            RequestTrace::new(answer.root.clone().unwrap(), SegmentId::new(), true),
            true,
            ResponseHeader::RootAndDecision,
            Some(finished.clone()),
        );
        let open = trace.begin_subsegment(Target::Segment, "work").unwrap();
        let mut response = http::Response::builder()
            .status(201)
            .header(http::header::CONTENT_LENGTH, "7")
            .body(())
            .unwrap();
        let guard = trace.respond(
            &mut response,
            Responder {
                service: "backend1",
                version: "abc",
                s3_version_id: Some("v1".into()),
            },
        );
        assert_eq!(response.headers()[HEADER_NAME], answer.to_string().as_str());
        assert!(
            finished.0.lock().unwrap().is_empty(),
            "finished before the body was sent"
        );
        drop(guard);
        let finished = finished.0.lock().unwrap();
        let (name, version, recorded) = &finished[0];
        assert_eq!((name.as_str(), version.as_str()), ("backend1", "abc"));
        let response = recorded.response.as_ref().unwrap();
        assert_eq!(
            (response.status, response.content_length),
            (Some(201), Some(7))
        );
        assert_eq!(
            recorded
                .segment
                .metadata
                .host
                .component_s3_version_id
                .as_deref(),
            Some("v1")
        );
        assert!(recorded.subsegments[open].ended_by_host);
    }

    #[test]
    fn a_detached_trace_answers_no_header_and_finishes_nothing() {
        let trace = ActiveTrace::detached();
        let mut response = http::Response::new(());
        drop(trace.respond(
            &mut response,
            Responder {
                service: "s",
                version: "v",
                s3_version_id: None,
            },
        ));
        assert!(response.headers().get(HEADER_NAME).is_none());
    }

    #[test]
    fn an_unrecorded_trace_is_made_only_when_the_component_asks_and_names_the_callers_trace() {
        let root = "1-5759e988-bd862e3fe1be46a994272793";
        let mut headers = http::HeaderMap::new();
        let sent = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1");
        headers.insert(HEADER_NAME, sent.parse().unwrap());
        let limits = crate::request_trace::budget::RecordingLimits::default();
        let trace = ActiveTrace::unrecorded(SentHeaders::keep(
            &headers,
            crate::incoming::IncomingTraceHeader::Trust,
            limits,
        ));
        // What the host does for every request: nothing made, nothing answered.
        trace.record_fault("deadline_exceeded", "too slow");
        let mut response = http::Response::new(());
        let guard = trace.respond(
            &mut response,
            Responder {
                service: "s",
                version: "v",
                s3_version_id: None,
            },
        );
        guard.note_response_incomplete();
        drop(guard);
        assert!(!trace.is_sampled());
        assert!(response.headers().get(HEADER_NAME).is_none());
        assert!(trace.shared.trace.get().is_none(), "no trace was made");
        // The component asks: the caller's trace, never sampled, and nothing of the above.
        assert_eq!(trace.trace_id(), root);
        assert!(
            trace
                .own_header()
                .starts_with(&format!("Root={root};Parent="))
        );
        assert!(!trace.is_sampled());
        trace.with(|t| {
            assert!(t.segment.failures.is_empty() && t.response.is_none());
            assert_eq!(t.parent_id.as_ref().unwrap(), "53995c3f42cd8ad8");
        });
    }

    #[test]
    fn only_the_first_refused_span_of_a_request_is_marked_for_the_log() {
        let trace = active(true);
        let first = trace
            .start_guest_span("00", "0000000000000001", 1.0)
            .unwrap_err();
        let second = trace
            .start_guest_span("00", "0000000000000002", 1.0)
            .unwrap_err();
        assert!(matches!(first.reason, SpanRefusal::OtherTrace(_)));
        assert!(first.first_in_request && !second.first_in_request);
    }
}
