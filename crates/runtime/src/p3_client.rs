//! `wasi:http/client@0.3.0`, attributed: each call is recorded into the trace of the request
//! whose task makes it, then sent by wasmtime's own `send`.
//!
//! A WASI 0.3 instance serves several requests at once, and wasmtime's outgoing-HTTP hook
//! ([`OutboundHooks`](crate::outbound::OutboundHooks)) only sees the store, not the task that
//! called. So `send` is linked here instead of by `wasmtime_wasi_http::p3::add_to_linker`: it
//! finds the caller's request through the per-task table ([`crate::task_traces`]), as every
//! other capability does, opens the call's subsegment and puts the headers naming it on the
//! request, runs wasmtime's `send`, and ends the subsegment with the response head or the
//! error the component gets.

use crate::host_state::HostState;
use crate::outbound::{end_answered_call, end_failed_call};
use crate::task_traces::calling_request;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::{self, ErrorCode};
use wasmtime_wasi_http::{FieldMap, WasiHttp};
use xray::active_trace::{ActiveTrace, CallSpan};

/// The interface, as the p3 WIT of wasmtime-wasi-http names it.
const CLIENT_INTERFACE: &str = "wasi:http/client@0.3.0";

/// Adds wasi:http 0.3 to `linker`: wasmtime's `types`, and `client` with attributed calls.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<HostState, WasiHttp>(linker, HostState::http_view)?;
    let mut client = linker.instance(CLIENT_INTERFACE)?;
    client.func_wrap_concurrent(
        "send",
        |accessor: &Accessor<HostState>, (request,): (Resource<types::Request>,)| {
            Box::pin(async move {
                let call = accessor.with(|mut access| {
                    let task = calling_request(&mut access);
                    let state = access.get();
                    let trace = state.traces.trace_of(task);
                    // A request the table does not hold is wasmtime's `send` to refuse.
                    let request = state.table.get_mut(&request).ok()?;
                    Some(begin_call(&trace, request, &mut state.outbound))
                });
                let http = accessor.with_getter::<WasiHttp>(HostState::http_view);
                let result: Result<Resource<types::Response>, ErrorCode> =
                    match <WasiHttp as HostWithStore<HostState>>::send(&http, request).await {
                        Ok(response) => Ok(response),
                        Err(error) => Err(error.downcast()?),
                    };
                if let Some(call) = call {
                    accessor.with(|mut access| match &result {
                        Ok(response) => match access.get().table.get(response) {
                            Ok(head) => end_answered_call(call, head.status, &head.headers),
                            Err(error) => end_failed_call(call, &error),
                        },
                        Err(error) => end_failed_call(call, error),
                    });
                }
                Ok((result,))
            })
        },
    )?;
    Ok(())
}

/// Opens the call's subsegment in `trace` and sets the trace headers on `request`.
fn begin_call(
    trace: &ActiveTrace,
    request: &mut types::Request,
    hooks: &mut dyn wasmtime_wasi_http::WasiHttpHooks,
) -> CallSpan {
    let mut uri = http::uri::Parts::default();
    uri.scheme = request.scheme.clone();
    uri.authority = request.authority.clone();
    uri.path_and_query = request.path_with_query.clone();
    // Only a request wasmtime will refuse has no valid URI; its subsegment names no host.
    let uri = http::Uri::from_parts(uri).unwrap_or_default();
    // The guest's fields are immutable once they belong to a request: the host sets its
    // headers on a copy and gives the request that.
    let mut headers: http::HeaderMap = std::mem::take(&mut request.headers).into();
    let call = trace.begin_http_call(&request.method, &uri, &mut headers);
    request.headers = FieldMap::new_immutable(hooks, headers);
    call
}
