//! What a request's trace headers say, as the service's policy reads them: the trace it
//! continues (or, at the edge, the new one it starts and the caller's ids it notes), the
//! parent, the caller's sampling decision, the fields passed on; and, for a request that
//! nothing records (X-Ray off), those headers kept as sent, read only if something asks.
//!
//! [`Tracer::begin`](crate::recorder::Tracer::begin) reads them at once when tracing is on; when
//! it is off, a component that never looks at its trace costs no id, no parse and no trace
//! (issue 27), and one that does sees the same trace id as with tracing on.

use crate::ids::{SegmentId, TraceId};
use crate::request_trace::RequestTrace;
use crate::request_trace::budget::RecordingLimits;
use crate::trace_header::{self, SampledFlag, TraceHeader};
use crate::traceparent::{self, TraceParent};
use http::{HeaderMap, HeaderValue};

/// The longest incoming `tracestate` passed on (W3C: 32 entries; 512 characters is what its
/// implementations are asked to propagate at least).
const MAX_TRACE_STATE_BYTES: usize = 512;

/// What a service makes of an incoming request's headers: a setting of the service (the
/// [`Tracer`] serves the whole process), passed to [`Tracer::begin`] with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncomingPolicy {
    /// The proxies in front of the service that append to `X-Forwarded-For` (1 behind the ALB):
    /// the client is the entry before theirs; 0 ignores the header ([`forwarded_for`]).
    pub trusted_proxies: usize,
    /// Whether the caller's trace header is continued or a new trace started.
    pub trace_header: IncomingTraceHeader,
}

/// What a service does with the incoming `X-Amzn-Trace-Id` and `traceparent`/`tracestate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncomingTraceHeader {
    /// Continue the caller's trace: its root, parent and sampling decision (a service called
    /// by services of the same application).
    #[default]
    Trust,
    /// At the edge, where anyone can send a header: start a new trace, let the sampling rules
    /// decide, and keep the ids the caller sent in the segment's host metadata
    /// (`xray_host.incoming_trace_id`, `xray_host.incoming_parent_id`).
    Restart,
}

impl IncomingTraceHeader {
    /// `trust` or `restart`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "trust" => Ok(Self::Trust),
            "restart" => Ok(Self::Restart),
            other => Err(format!("{other:?} is neither trust nor restart")),
        }
    }

    /// The name [`IncomingTraceHeader::parse`] reads.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Trust => "trust",
            Self::Restart => "restart",
        }
    }
}

/// The trace context an incoming request names.
pub(crate) struct Incoming {
    /// The trace: the caller's, or a new one.
    pub trace_id: TraceId,
    /// The caller's (sub)segment.
    pub parent_id: Option<SegmentId>,
    /// The caller's decision, when it sent one (`Sampled=?` asks for ours).
    pub sampled_flag: Option<SampledFlag>,
    /// Other `X-Amzn-Trace-Id` fields, passed downstream.
    pub extra: Vec<(String, String)>,
    /// The `tracestate` of the continued `traceparent`.
    pub trace_state: Option<String>,
    /// At the edge, the trace and parent the caller named (kept in the segment's metadata).
    pub noted: Option<(TraceId, Option<SegmentId>)>,
}

impl Incoming {
    /// Reads the `X-Amzn-Trace-Id`, `traceparent` and `tracestate` values sent, as `policy`
    /// says: continues the X-Ray header's valid root, else the `traceparent`'s trace, else
    /// starts a new trace; at the edge starts a new one whatever was sent.
    pub(crate) fn read(
        x_amzn_trace_id: Option<&str>,
        traceparent: Option<&str>,
        trace_state: Option<&str>,
        policy: IncomingTraceHeader,
    ) -> Self {
        let sent = x_amzn_trace_id.map(TraceHeader::parse).unwrap_or_default();
        // W3C Trace Context, from an OpenTelemetry caller: continued when no X-Ray header names
        // a trace; when both do, X-Ray's wins and both go downstream naming it.
        let sent_w3c = traceparent.and_then(TraceParent::parse);
        // At the edge nothing the caller sent decides: it is noted, then ignored.
        let (header, w3c, noted) = match policy {
            IncomingTraceHeader::Trust => (sent, sent_w3c, None),
            IncomingTraceHeader::Restart => {
                let noted = match (sent.root, sent_w3c) {
                    (Some(root), _) => Some((root, sent.parent)),
                    (None, Some(parent)) => Some((parent.trace_id, Some(parent.parent_id))),
                    (None, None) => None,
                };
                (TraceHeader::default(), None, noted)
            }
        };
        let (trace_id, parent_id, sampled_flag) = match (header.root, &w3c) {
            (Some(root), _) => (root, header.parent, header.sampled),
            (None, Some(parent)) => (
                parent.trace_id.clone(),
                Some(parent.parent_id.clone()),
                Some(if parent.sampled {
                    SampledFlag::Yes
                } else {
                    SampledFlag::No
                }),
            ),
            (None, None) => (TraceId::new(), None, header.sampled),
        };
        // `tracestate` belongs to the `traceparent` beside it: kept only for that trace.
        let trace_state = w3c
            .filter(|parent| parent.trace_id == trace_id)
            .and(trace_state)
            .filter(|state| state.len() <= MAX_TRACE_STATE_BYTES)
            .map(str::to_string);
        Self {
            trace_id,
            parent_id,
            sampled_flag,
            extra: header.extra,
            trace_state,
            noted,
        }
    }

    /// The request's trace, with a new segment id, `sampled` as decided.
    pub(crate) fn into_trace(
        self,
        sampled: bool,
        rule_name: Option<String>,
        limits: RecordingLimits,
    ) -> RequestTrace {
        let mut trace =
            RequestTrace::new(self.trace_id, SegmentId::new(), sampled).with_limits(limits);
        trace.parent_id = self.parent_id;
        trace.rule_name = rule_name;
        trace.extra_header_fields = self.extra;
        trace.trace_state = self.trace_state;
        if let Some((incoming_trace_id, incoming_parent_id)) = self.noted {
            let notes = &mut trace.segment.metadata.host;
            notes.incoming_trace_id = Some(incoming_trace_id);
            notes.incoming_parent_id = incoming_parent_id;
        }
        trace
    }
}

/// The trace headers of a request nothing records, kept as sent (a reference count on the
/// request head's buffer each, when present): its trace is made from them only if the component
/// asks for it.
pub(crate) struct SentHeaders {
    x_amzn_trace_id: Option<HeaderValue>,
    traceparent: Option<HeaderValue>,
    trace_state: Option<HeaderValue>,
    policy: IncomingTraceHeader,
    limits: RecordingLimits,
}

impl SentHeaders {
    /// What `headers` sent, for a service with `policy`, whose component may record `limits`.
    pub(crate) fn keep(
        headers: &HeaderMap,
        policy: IncomingTraceHeader,
        limits: RecordingLimits,
    ) -> Self {
        let traceparent = headers.get(traceparent::HEADER_NAME).cloned();
        Self {
            x_amzn_trace_id: headers.get(trace_header::HEADER_NAME).cloned(),
            trace_state: traceparent
                .as_ref()
                .and_then(|_| headers.get(traceparent::STATE_HEADER_NAME).cloned()),
            traceparent,
            policy,
            limits,
        }
    }

    /// No headers: a trace of its own (a throwaway instance, a call no request is found for).
    pub(crate) fn none() -> Self {
        Self {
            x_amzn_trace_id: None,
            traceparent: None,
            trace_state: None,
            policy: IncomingTraceHeader::Trust,
            limits: RecordingLimits::default(),
        }
    }

    /// The request's trace, never sampled: what the headers name, read now.
    pub(crate) fn trace(&self) -> RequestTrace {
        fn text(value: &Option<HeaderValue>) -> Option<&str> {
            value.as_ref().and_then(|v| v.to_str().ok())
        }
        Incoming::read(
            text(&self.x_amzn_trace_id),
            text(&self.traceparent),
            text(&self.trace_state),
            self.policy,
        )
        .into_trace(false, None, self.limits)
    }
}
