//! `wasi:http/client@0.3.0`, attributed: wasmtime's implementation of `send`, preceded by
//! naming the trace of the request that makes the call.
//!
//! A WASI 0.3 instance serves several requests at once, and wasmtime's outgoing-HTTP hook
//! ([`OutboundHooks`](crate::outbound::OutboundHooks)) only sees the store, not the task that
//! called. So `send` is linked here instead of by `wasmtime_wasi_http::p3::add_to_linker`: it
//! finds the caller's request ([`crate::task_traces`]) and hands its trace to the hook, then runs
//! wasmtime's own `send`, whose first step (before it can yield to another task) is the hook.

use crate::host_state::HostState;
use crate::task_traces::calling_request;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi_http::WasiHttp;
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::{self, ErrorCode};

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
                accessor.with(|mut access| {
                    let task = calling_request(&mut access);
                    let state = access.get();
                    let trace = state.traces.trace_of(task);
                    state.outbound.set_next_call_trace(trace);
                });
                let http = accessor.with_getter::<WasiHttp>(HostState::http_view);
                let result: Result<Resource<types::Response>, ErrorCode> =
                    match <WasiHttp as HostWithStore<HostState>>::send(&http, request).await {
                        Ok(response) => Ok(response),
                        Err(error) => Err(error.downcast()?),
                    };
                Ok((result,))
            })
        },
    )?;
    Ok(())
}
