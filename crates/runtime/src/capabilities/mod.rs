//! The host side of the WIT interfaces in `wit/`: what components may ask the host for beyond
//! WASI.
//!
//! - [`tracing`]: `xray-host:platform/tracing`, manual X-Ray instrumentation.
//! - [`table`]: `xray-host:platform/table`, the service's table.
//! - [`otel`]: `wasi:otel@0.2.0-rc.2`, spans of a component instrumented with OpenTelemetry.

pub mod otel;
pub mod table;
pub mod tracing;

use crate::host_state::HostState;
use wasmtime::component::Linker;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "service",
        // The calls that start from the request rather than from a handle need the store, to
        // find which request the calling task serves (see `crate::task_traces`).
        imports: {
            "xray-host:platform/table.put-item": async | store,
            "xray-host:platform/table.get-item": async | store,
            "xray-host:platform/tracing.current-segment": store | trappable,
        },
        with: {
            "xray-host:platform/tracing.segment": super::tracing::SegmentHandle,
            "xray-host:platform/tracing.subsegment": super::tracing::SubsegmentHandle,
        },
    });
}

/// Adds every platform capability to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    tracing::add_to_linker(linker)?;
    otel::add_to_linker(linker)?;
    table::add_to_linker(linker)
}
