//! Which request wrote a component's output line, when one instance serves several at once.
//!
//! A component writes its stdout and stderr through WASI 0.2's `output-stream` (Rust's standard
//! library and CPython do, through wasi-libc, also in WASI 0.3 components), and the stream
//! object wasmtime calls ([`GuestStream`](crate::guest_output::GuestStream)) is not told which
//! task wrote: wasi-libc asks for the stream once and keeps it for every later request. So the
//! host links its own `get-stdout` and `get-stderr`, which note the streams they hand out, and
//! its own `output-stream.write` and `blocking-write-and-flush`: for a noted stream, they find
//! the calling request through the per-task table ([`crate::task_traces`]), as every capability
//! does, tell the instance's output who writes
//! ([`InstanceOutput::set_writer`](crate::guest_output::InstanceOutput::set_writer)), then do what
//! wasmtime's own functions do. Writes to other streams (HTTP bodies) pay one comparison.
//!
//! `write-zeroes`, `splice` and the WASI 0.3 `write-via-stream` are left to wasmtime: their
//! lines carry the request that wrote last.

use crate::guest_output::{GuestStream, InstanceOutput};
use crate::host_state::HostState;
use crate::task_traces::calling_request;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynOutputStream;
use wasmtime_wasi::p2::bindings::io::streams::{
    Host as _, HostOutputStream, StreamError as WitStreamError,
};

/// The interfaces as wasmtime-wasi 48 links them (components importing any earlier 0.2 release
/// are matched to these by semver).
const STDOUT: &str = "wasi:cli/stdout@0.2.12";
const STDERR: &str = "wasi:cli/stderr@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// Replaces wasmtime's `get-stdout`, `get-stderr` and the two write functions of
/// `output-stream` in `linker` (after `wasmtime_wasi::p2::add_to_linker_async`).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = shadow(linker);
    linker.allow_shadowing(false);
    result
}

/// Which of an instance's streams a `get-…` function hands out.
type StreamOf = fn(&InstanceOutput) -> GuestStream;

fn shadow(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let getters: [(&str, &str, StreamOf); 2] = [
        (STDOUT, "get-stdout", InstanceOutput::stdout),
        (STDERR, "get-stderr", InstanceOutput::stderr),
    ];
    for (interface, name, stream_of) in getters {
        linker.instance(interface)?.func_wrap(
            name,
            move |mut store: StoreContextMut<HostState>, (): ()| {
                let state = store.data_mut();
                let stream = stream_of(&state.output);
                hand_out(state, Box::new(stream))
            },
        )?;
    }
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap(
        "[method]output-stream.write",
        |mut store: StoreContextMut<HostState>,
         (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            note_writer(&mut store, &stream);
            let table = &mut store.data_mut().table;
            let result = table.write(stream, bytes);
            Ok((to_wit(table, result)?,))
        },
    )?;
    streams.func_wrap_async(
        "[method]output-stream.blocking-write-and-flush",
        |mut store: StoreContextMut<HostState>,
         (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            Box::new(async move {
                note_writer(&mut store, &stream);
                let table = &mut store.data_mut().table;
                let result = table.blocking_write_and_flush(stream, bytes).await;
                Ok((to_wit(table, result)?,))
            })
        },
    )?;
    Ok(())
}

/// Puts a guest stream in the instance's table and notes it as one.
fn hand_out(
    state: &mut HostState,
    stream: DynOutputStream,
) -> wasmtime::Result<(Resource<DynOutputStream>,)> {
    let handle = state.table.push(stream)?;
    state.output.note_guest_stream(handle.rep());
    Ok((handle,))
}

/// For a guest stream, tells the instance's output which request writes now.
fn note_writer(store: &mut StoreContextMut<HostState>, stream: &Resource<DynOutputStream>) {
    if !store.data().output.is_guest_stream(stream.rep()) {
        return;
    }
    let task = calling_request(&mut *store);
    let state = store.data_mut();
    let writer = task.and_then(|task| state.traces.get(task).map(|trace| trace.trace_id()));
    state.output.set_writer(writer);
}

/// The function's result as WIT has it (wasmtime's own conversion).
fn to_wit(
    table: &mut wasmtime::component::ResourceTable,
    result: wasmtime_wasi::p2::StreamResult<()>,
) -> wasmtime::Result<Result<(), WitStreamError>> {
    match result {
        Ok(()) => Ok(Ok(())),
        Err(error) => Ok(Err(table.convert_stream_error(error)?)),
    }
}
