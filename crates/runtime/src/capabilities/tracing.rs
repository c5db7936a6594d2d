//! `xray-host:platform/tracing`: the component's manual subsegments, annotations, metadata and
//! failures, recorded into the request's trace (see
//! [`ActiveTrace`](xray::active_trace::ActiveTrace)).
//!
//! The request's segment and its subsegments are resources. Each handle carries the trace it
//! belongs to, so a call is attributed to the request that made the handle, not to whatever
//! request the store serves when the call arrives.
//!
//! A refused call (a bad key, name or JSON, a limit reached) is the component's mistake, not a
//! reason to fail the request: it gets an error value back and nothing is recorded.
//!
//! The interface is the same in every version of the package the host serves; each version has
//! its own generated types, so one body (`serve_tracing_version!`) is expanded once per version.

use crate::host_state::HostState;
use wasmtime::component::{HasSelf, Linker, Resource};
use xray::active_trace::ActiveTrace;
use xray::document::{Exception, StackFrame};
use xray::ids::SegmentId;
use xray::request_trace::TraceError;

/// The host's side of a `segment` handle: the request's trace.
pub struct SegmentHandle {
    trace: ActiveTrace,
}

/// The host's side of a `subsegment` handle: the request's trace and the subsegment's index in
/// it.
pub struct SubsegmentHandle {
    trace: ActiveTrace,
    index: usize,
}

/// Adds the tracing interface, in every version the host serves, to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    current::wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    v0_2::wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}

impl HostState {
    fn segment(&self, handle: &Resource<SegmentHandle>) -> ActiveTrace {
        // A handle the guest holds is always in the table; a missing one would be a host bug.
        // Recording into a detached trace keeps it from touching any request's trace.
        self.table
            .get(handle)
            .map(|h| h.trace.clone())
            .unwrap_or_else(|_| ActiveTrace::detached())
    }

    fn subsegment(
        &self,
        handle: &Resource<SubsegmentHandle>,
    ) -> Result<(ActiveTrace, usize), TraceError> {
        // As above; reported to the guest as an ended subsegment rather than a trap.
        self.table
            .get(handle)
            .map(|h| (h.trace.clone(), h.index))
            .map_err(|_| TraceError::AlreadyEnded)
    }

    fn push_subsegment(
        &mut self,
        trace: ActiveTrace,
        index: usize,
    ) -> Result<Resource<SubsegmentHandle>, TraceError> {
        // The instance's resource table is bounded (see `StoreFactory::new_store`).
        self.table
            .push(SubsegmentHandle { trace, index })
            .map_err(|_| TraceError::LimitExceeded("too many open tracing handles".into()))
    }
}

fn exception(
    message: String,
    kind: Option<String>,
    remote: bool,
    stack: impl Iterator<Item = StackFrame>,
) -> Exception {
    Exception {
        id: SegmentId::new(),
        message,
        kind,
        remote,
        stack: stack.collect(),
    }
}

/// Implements one version's generated `tracing` traits for [`HostState`], in a module named
/// `$version` whose `wit` is that version's bindings.
macro_rules! serve_tracing_version {
    ($version:ident, $($bindings:ident)::+) => {
        mod $version {
            use super::{SegmentHandle, SubsegmentHandle, exception};
            use crate::host_state::HostState;
            use crate::task_traces::calling_request;
            use wasmtime::component::{Access, HasSelf, Resource};
            use xray::document::{AnnotationValue, Exception, StackFrame};
            use xray::request_trace::{FailureKind, Target, TraceError};

            pub(super) use $($bindings)::+ as wit;

            impl wit::Host for HostState {}

            impl wit::HostWithStore<HostState> for HasSelf<HostState> {
                fn current_segment(
                    mut access: Access<'_, HostState, Self>,
                ) -> wasmtime::Result<Resource<SegmentHandle>> {
                    let task = calling_request(&mut access);
                    let state = access.get();
                    let trace = state.traces.trace_of(task);
                    // Only a component that holds on to thousands of handles fills the bounded
                    // table: a trap, which the host answers like any other.
                    Ok(state.table.push(SegmentHandle { trace })?)
                }
            }

            impl wit::HostSegment for HostState {
                fn id(&mut self, handle: Resource<SegmentHandle>) -> String {
                    self.segment(&handle).segment_id().to_string()
                }

                fn begin_subsegment(
                    &mut self,
                    handle: Resource<SegmentHandle>,
                    name: String,
                ) -> Result<Resource<SubsegmentHandle>, wit::TracingError> {
                    let trace = self.segment(&handle);
                    let index = trace
                        .begin_subsegment(Target::Segment, &name)
                        .map_err(to_wit)?;
                    self.push_subsegment(trace, index).map_err(to_wit)
                }

                fn add_annotation(
                    &mut self,
                    handle: Resource<SegmentHandle>,
                    key: String,
                    value: wit::AnnotationValue,
                ) -> Result<(), wit::TracingError> {
                    self.segment(&handle)
                        .annotate(Target::Segment, &key, from_wit_value(value))
                        .map_err(to_wit)
                }

                fn add_metadata(
                    &mut self,
                    handle: Resource<SegmentHandle>,
                    namespace: String,
                    key: String,
                    json: String,
                ) -> Result<(), wit::TracingError> {
                    self.segment(&handle)
                        .add_metadata(Target::Segment, &namespace, &key, &json)
                        .map_err(to_wit)
                }

                fn record_failure(
                    &mut self,
                    handle: Resource<SegmentHandle>,
                    kind: wit::FailureKind,
                    exception: Option<wit::Exception>,
                ) -> Result<(), wit::TracingError> {
                    let exception = exception.map(from_wit_exception);
                    self.segment(&handle)
                        .record_failure(Target::Segment, from_wit_kind(kind), exception)
                        .map_err(to_wit)
                }

                fn trace_header(&mut self, handle: Resource<SegmentHandle>) -> String {
                    self.segment(&handle).own_header()
                }

                fn is_sampled(&mut self, handle: Resource<SegmentHandle>) -> bool {
                    self.segment(&handle).is_sampled()
                }

                fn drop(&mut self, handle: Resource<SegmentHandle>) -> wasmtime::Result<()> {
                    self.table.delete(handle)?;
                    Ok(())
                }
            }

            impl wit::HostSubsegment for HostState {
                fn id(&mut self, handle: Resource<SubsegmentHandle>) -> String {
                    let Ok((trace, index)) = self.subsegment(&handle) else {
                        return String::new();
                    };
                    trace
                        .subsegment_id(index)
                        .map(|id| id.to_string())
                        .unwrap_or_default()
                }

                fn begin_child(
                    &mut self,
                    handle: Resource<SubsegmentHandle>,
                    name: String,
                ) -> Result<Resource<SubsegmentHandle>, wit::TracingError> {
                    let (trace, parent) = self.subsegment(&handle).map_err(to_wit)?;
                    let index = trace
                        .begin_subsegment(Target::Subsegment(parent), &name)
                        .map_err(to_wit)?;
                    self.push_subsegment(trace, index).map_err(to_wit)
                }

                fn add_annotation(
                    &mut self,
                    handle: Resource<SubsegmentHandle>,
                    key: String,
                    value: wit::AnnotationValue,
                ) -> Result<(), wit::TracingError> {
                    let (trace, index) = self.subsegment(&handle).map_err(to_wit)?;
                    trace
                        .annotate(Target::Subsegment(index), &key, from_wit_value(value))
                        .map_err(to_wit)
                }

                fn add_metadata(
                    &mut self,
                    handle: Resource<SubsegmentHandle>,
                    namespace: String,
                    key: String,
                    json: String,
                ) -> Result<(), wit::TracingError> {
                    let (trace, index) = self.subsegment(&handle).map_err(to_wit)?;
                    trace
                        .add_metadata(Target::Subsegment(index), &namespace, &key, &json)
                        .map_err(to_wit)
                }

                fn record_failure(
                    &mut self,
                    handle: Resource<SubsegmentHandle>,
                    kind: wit::FailureKind,
                    exception: Option<wit::Exception>,
                ) -> Result<(), wit::TracingError> {
                    let (trace, index) = self.subsegment(&handle).map_err(to_wit)?;
                    let exception = exception.map(from_wit_exception);
                    trace
                        .record_failure(Target::Subsegment(index), from_wit_kind(kind), exception)
                        .map_err(to_wit)
                }

                fn end(
                    &mut self,
                    handle: Resource<SubsegmentHandle>,
                ) -> Result<(), wit::TracingError> {
                    let (trace, index) = self.subsegment(&handle).map_err(to_wit)?;
                    trace.end_subsegment(index).map_err(to_wit)
                }

                fn drop(&mut self, handle: Resource<SubsegmentHandle>) -> wasmtime::Result<()> {
                    // Dropping a handle does not end the subsegment: the host ends forgotten
                    // ones when the request ends (see the WIT documentation).
                    self.table.delete(handle)?;
                    Ok(())
                }
            }

            fn to_wit(error: TraceError) -> wit::TracingError {
                use wit::TracingError as E;
                match error {
                    TraceError::InvalidAnnotationKey(key) => E::InvalidAnnotationKey(key),
                    TraceError::AnnotationValueTooLong(n) => E::AnnotationValueTooLong(n),
                    TraceError::InvalidAnnotationValue(v) => E::InvalidAnnotationValue(v),
                    TraceError::TooManyAnnotations(n) => E::TooManyAnnotations(n),
                    TraceError::InvalidMetadataNamespace(ns) => E::InvalidMetadataNamespace(ns),
                    TraceError::InvalidMetadataJson(m) => E::InvalidMetadataJson(m),
                    TraceError::InvalidName(name) => E::InvalidName(name),
                    TraceError::LimitExceeded(what) => E::LimitExceeded(what),
                    TraceError::AlreadyEnded => E::AlreadyEnded,
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

            fn from_wit_exception(e: wit::Exception) -> Exception {
                let stack = e.stack.into_iter().map(|frame| StackFrame {
                    path: frame.path,
                    line: frame.line,
                    label: frame.label,
                });
                exception(e.message, e.kind, e.remote, stack)
            }
        }
    };
}

serve_tracing_version!(
    current,
    crate::capabilities::bindings::current::xray_host::platform0_3_0::tracing
);
serve_tracing_version!(
    v0_2,
    crate::capabilities::bindings::v0_2::xray_host::platform0_2_0::tracing
);
