//! The data of one request's store: everything the host capabilities of that request read.
//!
//! A fresh store, and so a fresh `HostState`, is made for every request: nothing a component
//! does in one request is visible in another.

use crate::limits::InstanceLimiter;
use crate::outbound::OutboundHooks;
use crate::table::Table;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use xray::active_trace::ActiveTrace;

/// The store data of one request.
pub struct HostState {
    /// WASI: the service's environment variables, stdio forwarded to the host's, no files.
    pub wasi: WasiCtx,
    /// wasi:http state.
    pub http: WasiHttpCtx,
    /// Resources the component holds handles to.
    pub table: ResourceTable,
    /// Outgoing HTTP for this service.
    pub outbound: OutboundHooks,
    /// The memory limit, and whether it was hit.
    pub limiter: InstanceLimiter,
    /// The request's trace, shared with the outgoing-HTTP hook (which records calls only when
    /// X-Ray is on).
    pub trace: ActiveTrace,
    /// The service's table.
    pub service_table: Arc<Table>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
