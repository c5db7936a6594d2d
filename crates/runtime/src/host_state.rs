//! The data of one instance's store: everything the host capabilities of its requests read, and
//! the factory that makes such stores for a service.
//!
//! One store holds one instance. Without reuse (the default for WASI 0.2 components) it serves
//! one request, so nothing a component does in one request is visible in another; with reuse,
//! the requests an instance serves share its memory (the guest's globals) but never a trace:
//! every capability call is attributed to the request that made it ([`crate::task_traces`]).

use crate::guest_metrics::{GuestMetrics, InstanceReports};
use crate::guest_output::{InstanceOutput, ServiceOutput};
use crate::limits::{InstanceLimiter, Limits};
use crate::memory_budget::MemoryBudget;
use crate::outbound::{OutboundHooks, OutboundHttp};
use crate::table::Table;
use crate::task_traces::TaskTraces;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How many epoch ticks a guest runs before it yields to other tasks (10 to 20 ms).
const TIME_SLICE_TICKS: u64 = 2;

/// The store data of one instance.
pub struct HostState {
    /// WASI: the service's environment variables, stdout and stderr into the service's guest
    /// output ([`crate::guest_output`]), no files.
    pub wasi: WasiCtx,
    /// The instance's stdout and stderr, and the service's limiter of per-call warnings.
    pub output: InstanceOutput,
    /// wasi:http state.
    pub http: WasiHttpCtx,
    /// Resources the component holds handles to.
    pub table: ResourceTable,
    /// Outgoing HTTP for this service.
    pub outbound: OutboundHooks,
    /// The memory limit, and whether it was hit.
    pub limiter: InstanceLimiter,
    /// The traces of the requests the instance serves, by their task.
    pub traces: TaskTraces,
    /// When the guest is stopped if it is still running: the deadline of the latest request
    /// the instance accepted (so every request it serves is past its own deadline by then).
    pub deadline: Option<Instant>,
    /// The service's table.
    pub service_table: Arc<Table>,
    /// Where the component version's wasi:otel metrics are kept (set by the instance pool).
    pub guest_metrics: Option<Arc<GuestMetrics>>,
    /// What this instance exported of its cumulative wasi:otel metrics.
    pub guest_metric_reports: InstanceReports,
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
        self.http_view()
    }
}

impl HostState {
    /// The wasi:http view, as a plain function (what the instance handler asks for).
    pub fn http_view(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Denies wasi:sockets whole: no TCP or UDP socket, no address, no name lookup. Components
/// reach the network only through wasi:http, where every call is checked against the service's
/// allow-list and every address it resolves to against the network policy (`outbound.rs`);
/// a socket would pass by both. wasmtime's defaults deny addresses and lookups too, but the
/// host does not rely on a default that another version could change.
fn deny_sockets(wasi: &mut WasiCtxBuilder) {
    wasi.socket_addr_check(|_, _| Box::pin(async { false }))
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false);
}

/// Makes the stores of one service: its environment, limits, guest output, outgoing HTTP and
/// table.
pub struct StoreFactory {
    engine: Engine,
    env: Vec<(String, String)>,
    limits: Limits,
    output: Arc<ServiceOutput>,
    outbound: Arc<OutboundHttp>,
    table: Arc<Table>,
    budget: Arc<MemoryBudget>,
}

impl StoreFactory {
    /// A factory for a service with this environment, limits, guest output, outgoing HTTP and
    /// table.
    pub fn new(
        engine: Engine,
        env: Vec<(String, String)>,
        limits: Limits,
        output: Arc<ServiceOutput>,
        outbound: Arc<OutboundHttp>,
        table: Arc<Table>,
        budget: Arc<MemoryBudget>,
    ) -> Self {
        Self {
            engine,
            env,
            limits,
            output,
            outbound,
            table,
            budget,
        }
    }

    /// The process's memory budget the service's instances draw on.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// The limits every store and request of the service run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh store for one instance of the component version `version` (its short content
    /// hash): the service's environment and limits, a new resource table, and no request yet.
    pub fn new_store(&self, version: &str) -> Store<HostState> {
        let limits = &self.limits;
        let mut wasi = WasiCtx::builder();
        // Never the host's own stdout: lines, escaped, prefixed, rate-limited, never waited on.
        let output = self.output.instance(version);
        wasi.stdout(output.stdout()).stderr(output.stderr());
        for (key, value) in &self.env {
            wasi.env(key, value);
        }
        deny_sockets(&mut wasi);
        let mut http = WasiHttpCtx::new();
        // The in-memory size of header maps the component builds (the wire limit on incoming
        // heads is enforced by the server); generous, like wasmtime's default, but bounded.
        http.set_field_size_limit(limits.max_header_bytes.max(64 * 1024) * 2);
        let mut table = ResourceTable::new();
        table.set_max_capacity(10_000);
        let state = HostState {
            wasi: wasi.build(),
            output,
            http,
            table,
            outbound: OutboundHooks::new(self.outbound.clone()),
            limiter: InstanceLimiter::new(limits, self.budget.clone()),
            traces: TaskTraces::default(),
            deadline: None,
            service_table: self.table.clone(),
            guest_metrics: None,
            guest_metric_reports: InstanceReports::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Every time slice the guest yields to tokio, so a guest that never returns to the host
        // (a busy loop) cannot hold a worker thread, and the requests' deadlines can fire; once
        // every request of the instance is past its deadline, a guest still running is stopped
        // with an interrupt trap.
        restart_time_slice(&mut store);
        store.epoch_deadline_callback(|store| match store.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Ok(UpdateDeadline::Interrupt),
            _ => Ok(UpdateDeadline::YieldCustom(
                TIME_SLICE_TICKS,
                Box::pin(tokio::task::yield_now()),
            )),
        });
        store
    }
}

/// Gives the guest of `store` a whole time slice from now: for a new store, and for an instance
/// made ahead of its request (whose slice would otherwise have run out while it waited).
pub fn restart_time_slice(store: &mut Store<HostState>) {
    store.set_epoch_deadline(TIME_SLICE_TICKS);
}
