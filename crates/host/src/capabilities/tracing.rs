//! `xray-host:platform/tracing`: the component's manual subsegments, annotations, metadata and
//! failures, recorded into the request's trace (see [`ActiveTrace`](xray::active_trace::ActiveTrace)).
//!
//! A refused call (a bad key, name or JSON) is the component's mistake, not a reason to fail the
//! request: it gets an error value back and nothing is recorded.

use crate::host_state::HostState;
use wasmtime::component::{HasSelf, Linker, Resource};
use xray::document::{AnnotationValue, Exception, StackFrame};
use xray::ids::SegmentId;
use xray::request_trace::{FailureKind, RequestTrace, Target, TraceError};

use super::bindings::xray_host::platform::tracing as wit;

/// The host's side of a `subsegment` handle: its index in the request's trace.
pub struct SubsegmentHandle {
    index: usize,
}

/// Adds the tracing interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}

impl HostState {
    fn recorded<R>(&self, f: impl FnOnce(&mut RequestTrace) -> R) -> R {
        self.trace.with(f)
    }

    fn subsegment_index(
        &self,
        handle: &Resource<SubsegmentHandle>,
    ) -> Result<usize, wit::TracingError> {
        // A handle the guest holds is always in the table; a missing one would be a host bug,
        // reported to the guest as an ended subsegment rather than a trap.
        self.table
            .get(handle)
            .map(|h| h.index)
            .map_err(|_| wit::TracingError::AlreadyEnded)
    }

    fn push_handle(
        &mut self,
        index: usize,
    ) -> Result<Resource<SubsegmentHandle>, wit::TracingError> {
        self.table
            .push(SubsegmentHandle { index })
            .map_err(|_| wit::TracingError::InvalidName("too many open subsegment handles".into()))
    }

    fn target(&self, handle: &Resource<SubsegmentHandle>) -> Result<Target, wit::TracingError> {
        self.subsegment_index(handle).map(Target::Subsegment)
    }
}

impl wit::Host for HostState {
    fn begin_subsegment(
        &mut self,
        name: String,
    ) -> Result<Resource<SubsegmentHandle>, wit::TracingError> {
        let index = self
            .recorded(|t| t.begin_subsegment(Target::Segment, &name))
            .map_err(to_wit)?;
        self.push_handle(index)
    }

    fn add_annotation(
        &mut self,
        key: String,
        value: wit::AnnotationValue,
    ) -> Result<(), wit::TracingError> {
        self.recorded(|t| t.add_annotation(Target::Segment, &key, from_wit_value(value)))
            .map_err(to_wit)
    }

    fn add_metadata(
        &mut self,
        namespace: String,
        key: String,
        json: String,
    ) -> Result<(), wit::TracingError> {
        self.recorded(|t| t.add_metadata(Target::Segment, &namespace, &key, &json))
            .map_err(to_wit)
    }

    fn record_failure(
        &mut self,
        kind: wit::FailureKind,
        exception: Option<wit::Exception>,
    ) -> Result<(), wit::TracingError> {
        self.recorded(|t| {
            t.record_failure(
                Target::Segment,
                from_wit_kind(kind),
                exception.map(from_wit_exception),
            )
        })
        .map_err(to_wit)
    }

    fn trace_header(&mut self) -> String {
        self.recorded(|t| t.own_header().to_string())
    }

    fn is_sampled(&mut self) -> bool {
        self.recorded(|t| t.sampled)
    }
}

impl wit::HostSubsegment for HostState {
    fn id(&mut self, handle: Resource<SubsegmentHandle>) -> String {
        let Ok(index) = self.subsegment_index(&handle) else {
            return String::new();
        };
        self.recorded(|t| {
            t.subsegment_id(index)
                .map(SegmentId::to_string)
                .unwrap_or_default()
        })
    }

    fn begin_child(
        &mut self,
        handle: Resource<SubsegmentHandle>,
        name: String,
    ) -> Result<Resource<SubsegmentHandle>, wit::TracingError> {
        let parent = self.target(&handle)?;
        let index = self
            .recorded(|t| t.begin_subsegment(parent, &name))
            .map_err(to_wit)?;
        self.push_handle(index)
    }

    fn add_annotation(
        &mut self,
        handle: Resource<SubsegmentHandle>,
        key: String,
        value: wit::AnnotationValue,
    ) -> Result<(), wit::TracingError> {
        let target = self.target(&handle)?;
        self.recorded(|t| t.add_annotation(target, &key, from_wit_value(value)))
            .map_err(to_wit)
    }

    fn add_metadata(
        &mut self,
        handle: Resource<SubsegmentHandle>,
        namespace: String,
        key: String,
        json: String,
    ) -> Result<(), wit::TracingError> {
        let target = self.target(&handle)?;
        self.recorded(|t| t.add_metadata(target, &namespace, &key, &json))
            .map_err(to_wit)
    }

    fn record_failure(
        &mut self,
        handle: Resource<SubsegmentHandle>,
        kind: wit::FailureKind,
        exception: Option<wit::Exception>,
    ) -> Result<(), wit::TracingError> {
        let target = self.target(&handle)?;
        self.recorded(|t| {
            t.record_failure(
                target,
                from_wit_kind(kind),
                exception.map(from_wit_exception),
            )
        })
        .map_err(to_wit)
    }

    fn end(&mut self, handle: Resource<SubsegmentHandle>) -> Result<(), wit::TracingError> {
        let index = self.subsegment_index(&handle)?;
        self.recorded(|t| t.end_subsegment(index)).map_err(to_wit)
    }

    fn drop(&mut self, handle: Resource<SubsegmentHandle>) -> wasmtime::Result<()> {
        // Dropping a handle does not end the subsegment: the host ends forgotten ones when the
        // request ends (see the WIT documentation).
        self.table.delete(handle)?;
        Ok(())
    }
}

fn to_wit(error: TraceError) -> wit::TracingError {
    match error {
        TraceError::InvalidAnnotationKey(key) => wit::TracingError::InvalidAnnotationKey(key),
        TraceError::AnnotationValueTooLong(n) => wit::TracingError::AnnotationValueTooLong(n),
        TraceError::TooManyAnnotations(n) => wit::TracingError::TooManyAnnotations(n),
        TraceError::InvalidMetadataNamespace(ns) => wit::TracingError::InvalidMetadataNamespace(ns),
        TraceError::InvalidMetadataJson(m) => wit::TracingError::InvalidMetadataJson(m),
        TraceError::InvalidName(name) => wit::TracingError::InvalidName(name),
        TraceError::AlreadyEnded => wit::TracingError::AlreadyEnded,
    }
}

fn from_wit_value(value: wit::AnnotationValue) -> AnnotationValue {
    match value {
        wit::AnnotationValue::Text(text) => AnnotationValue::Text(text),
        wit::AnnotationValue::Integer(n) => AnnotationValue::Integer(n),
        wit::AnnotationValue::Number(n) => AnnotationValue::Number(n),
        wit::AnnotationValue::Boolean(b) => AnnotationValue::Boolean(b),
    }
}

fn from_wit_kind(kind: wit::FailureKind) -> FailureKind {
    match kind {
        wit::FailureKind::Error => FailureKind::Error,
        wit::FailureKind::Throttle => FailureKind::Throttle,
        wit::FailureKind::Fault => FailureKind::Fault,
    }
}

fn from_wit_exception(exception: wit::Exception) -> Exception {
    Exception {
        id: SegmentId::new(),
        message: exception.message,
        kind: exception.kind,
        remote: exception.remote,
        stack: exception
            .stack
            .into_iter()
            .map(|frame| StackFrame {
                path: frame.path,
                line: frame.line,
                label: frame.label,
            })
            .collect(),
    }
}
