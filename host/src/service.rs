//! One service: a component with its name, environment, outgoing-HTTP policy and limits,
//! loaded and ready to serve.

use crate::host_state::HostState;
use crate::limits::{InstanceLimiter, Limits};
use crate::outbound::{OutboundConfig, OutboundHooks, OutboundHttp};
use crate::runtime::{LoadedComponent, Runtime};

use crate::table::Table;
use crate::xray::recorder::Tracer;
use crate::xray::request_trace::TraceHandle;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

/// How many epoch ticks a guest runs before it yields to other tasks (10 to 20 ms).
const TIME_SLICE_TICKS: u64 = 2;

/// Everything that defines a service, from the command line or a manifest.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The service (and X-Ray segment) name, e.g. `Backend #1`.
    pub name: String,
    /// The component file.
    pub component: PathBuf,
    /// Where it listens on its own, if anywhere.
    pub listen: Option<SocketAddr>,
    /// The environment the component sees through `wasi:cli/environment`, and nothing else.
    pub env: Vec<(String, String)>,
    /// What it may call, and how calls are bounded.
    pub outbound: OutboundConfig,
    /// Request limits.
    pub limits: Limits,
}

/// A service ready to serve requests.
pub struct Service {
    /// Its configuration.
    pub config: ServiceConfig,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) component: LoadedComponent,
    pub(crate) outbound: Arc<OutboundHttp>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) tracer: Arc<Tracer>,
    pub(crate) table: Arc<Table>,
}

impl Service {
    /// Loads the service's component; fails if it cannot be served. Its requests are traced by
    /// `tracer`; its table capability is `table`.
    pub fn load(
        runtime: Arc<Runtime>,
        tracer: Arc<Tracer>,
        table: Arc<Table>,
        config: ServiceConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let component = runtime
            .load(&config.component)
            .with_context(|| format!("service {:?}", config.name))?;
        tracing::info!(
            service = %config.name,
            component = %config.component.display(),
            version = %&component.content_hash[..12],
            compiled = if component.from_cache { "from cache" } else { "now" },
            "component loaded"
        );
        let outbound = OutboundHttp::new(&config.name, config.outbound.clone());
        let permits = Arc::new(Semaphore::new(config.limits.max_concurrent_requests));
        Ok(Arc::new(Self {
            config,
            runtime,
            component,
            outbound,
            permits,
            tracer,
            table,
        }))
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The content hash of the component being served.
    pub fn version(&self) -> &str {
        &self.component.content_hash
    }

    /// A fresh store for one request: the service's environment and limits, a new resource
    /// table, and the request's trace.
    pub(crate) fn new_store(&self, trace: TraceHandle) -> Store<HostState> {
        let limits = &self.config.limits;
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        for (key, value) in &self.config.env {
            wasi.env(key, value);
        }
        let mut http = WasiHttpCtx::new();
        // The in-memory size of header maps the component builds (the wire limit on incoming
        // heads is enforced by the server); generous, like wasmtime's default, but bounded.
        http.set_field_size_limit(limits.max_header_bytes.max(64 * 1024) * 2);
        let mut table = ResourceTable::new();
        table.set_max_capacity(10_000);
        let state = HostState {
            wasi: wasi.build(),
            http,
            table,
            outbound: OutboundHooks::new(
                self.outbound.clone(),
                self.tracer.enabled().then(|| trace.clone()),
            ),
            limiter: InstanceLimiter::new(limits),
            record_calls: self.tracer.enabled(),
            service_table: self.table.clone(),
            trace,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        // Every time slice the guest yields to tokio, so a guest that never returns to the host
        // (a busy loop) cannot hold a worker thread; past the request deadline it is stopped
        // with an interrupt trap, which `invoke` answers with 504.
        let deadline = Instant::now() + limits.request_timeout;
        store.set_epoch_deadline(TIME_SLICE_TICKS);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(
                    TIME_SLICE_TICKS,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }
}
