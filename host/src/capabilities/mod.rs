//! The host side of the WIT interfaces in `wit/`: what components may ask the host for beyond
//! WASI.
//!
//! - [`tracing`]: `xray-host:platform/tracing`, manual X-Ray instrumentation.

pub mod tracing;

use crate::host_state::HostState;
use wasmtime::component::Linker;

/// Adds every platform capability to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    tracing::add_to_linker(linker)
}
