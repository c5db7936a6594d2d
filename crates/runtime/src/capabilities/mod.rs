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

/// The bindings of every version of `xray-host:platform` the host serves (see `wit/worlds.wit`).
mod bindings {
    /// The current version, `wit/`.
    pub mod current {
        wasmtime::component::bindgen!({
            path: "../../wit",
            world: "service",
            // The calls that start from the request rather than from a handle need the store, to
            // find which request the calling task serves (see `crate::task_traces`). The table
            // calls are `async func`s: wasmtime runs them concurrently with the instance's other
            // tasks.
            imports: {
                "xray-host:platform/table.put-item": store,
                "xray-host:platform/table.get-item": store,
                "xray-host:platform/tracing.current-segment": store | trappable,
            },
            with: {
                "xray-host:platform/tracing.segment": crate::capabilities::tracing::SegmentHandle,
                "xray-host:platform/tracing.subsegment":
                    crate::capabilities::tracing::SubsegmentHandle,
            },
        });
    }

    /// 0.2.0 (`wit/deps/xray-host-platform@0.2.0`): synchronous table calls, which hold the
    /// instance while the table answers.
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../../wit",
            world: "xray-host:platform/service@0.2.0",
            imports: {
                "xray-host:platform/table.put-item": async | store,
                "xray-host:platform/table.get-item": async | store,
                "xray-host:platform/tracing.current-segment": store | trappable,
            },
            with: {
                "xray-host:platform/tracing.segment": crate::capabilities::tracing::SegmentHandle,
                "xray-host:platform/tracing.subsegment":
                    crate::capabilities::tracing::SubsegmentHandle,
            },
        });
    }
}

/// Adds every platform capability to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    tracing::add_to_linker(linker)?;
    otel::add_to_linker(linker)?;
    table::add_to_linker(linker)
}
