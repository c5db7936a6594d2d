//! One service: a component with its name, environment, outgoing-HTTP policy and limits,
//! loaded and ready to serve.

use crate::compile_cache::ContentHash;
use crate::component_source::ComponentSource;
use crate::host_state::HostState;
use crate::limits::{InstanceLimiter, Limits};
use crate::outbound::{OutboundConfig, OutboundHooks, OutboundHttp};
use crate::runtime::{LoadedComponent, Runtime};
use crate::s3_source::{Fetched, S3Source};
use crate::swap::{ComponentLoader, ComponentSlot, ReloadLock, ReloadOutcome};
use crate::table::Table;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;
use xray::active_trace::ActiveTrace;
use xray::recorder::Tracer;

/// How many epoch ticks a guest runs before it yields to other tasks (10 to 20 ms).
const TIME_SLICE_TICKS: u64 = 2;

/// Everything that defines a service, from the command line or a manifest.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The service (and X-Ray segment) name, e.g. `Backend #1`.
    pub name: String,
    /// Where the component comes from: a file or an S3 object.
    pub component: ComponentSource,
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
    pub(crate) component: ComponentSlot,
    pub(crate) s3: Option<S3Source>,
    pub(crate) reload_lock: ReloadLock,
    pub(crate) outbound: Arc<OutboundHttp>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) tracer: Arc<Tracer>,
    pub(crate) table: Arc<Table>,
}

impl Service {
    /// Loads the service's component (from its file, or from S3 with a local copy kept under
    /// `cache_dir`); fails if it cannot be served. Its requests are traced by `tracer`; its table
    /// capability is `table`.
    pub async fn load(
        runtime: Arc<Runtime>,
        tracer: Arc<Tracer>,
        table: Arc<Table>,
        config: ServiceConfig,
        cache_dir: &Path,
    ) -> anyhow::Result<Arc<Self>> {
        let s3 = match &config.component {
            ComponentSource::S3 { bucket, key } => Some(S3Source::new(bucket, key, cache_dir)),
            ComponentSource::File(_) => None,
        };
        let bytes = match (&config.component, &s3) {
            (ComponentSource::File(path), _) => tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read the component file {}", path.display())),
            (_, Some(s3)) => s3.fetch_initial().await,
            (ComponentSource::S3 { .. }, None) => unreachable!("an S3 source is made above"),
        }
        .with_context(|| format!("service {:?}", config.name))?;
        let component = compile(&runtime, bytes).await.with_context(|| {
            format!(
                "service {:?}: cannot serve the component {}",
                config.name, config.component
            )
        })?;
        tracing::info!(
            service = %config.name,
            component = %config.component,
            version = %component.content_hash.short(),
            compiled = if component.from_cache { "from cache" } else { "now" },
            "component loaded"
        );
        let outbound = OutboundHttp::new(&config.name, config.outbound.clone());
        let permits = Arc::new(Semaphore::new(config.limits.max_concurrent_requests));
        let service = Arc::new(Self {
            config,
            runtime,
            component: ComponentSlot::new(component),
            s3,
            reload_lock: ReloadLock::default(),
            outbound,
            permits,
            tracer,
            table,
        });
        service
            .check_instantiates(&service.component.current())
            .await
            .with_context(|| format!("service {:?}", service.name()))?;
        Ok(service)
    }

    /// Instantiates `component` once in a throwaway store, so that a component that type-checks
    /// but cannot be instantiated (a trapping start function, a data segment out of bounds) is
    /// refused before it serves a request; a component that imports the table capability is
    /// refused too when its store cannot be opened.
    pub(crate) async fn check_instantiates(
        &self,
        component: &LoadedComponent,
    ) -> anyhow::Result<()> {
        if component.imports_table {
            self.table
                .prepare()
                .await
                .context("the component imports the table capability")?;
        }
        let mut store = self.new_store(ActiveTrace::detached());
        component
            .pre
            .instantiate_async(&mut store)
            .await
            .map(|_| ())
            .map_err(anyhow::Error::from)
            .context("the component fails to instantiate")
    }

    /// Compiles and type-checks a component off the async threads (Cranelift is CPU-bound).
    pub(crate) async fn compile(&self, bytes: Vec<u8>) -> anyhow::Result<LoadedComponent> {
        compile(&self.runtime, bytes).await
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The content hash of the component being served now.
    pub fn version(&self) -> ContentHash {
        self.component.current().content_hash.clone()
    }

    /// Reloads the component from its source (see [`crate::swap`]); `trigger` says why, for
    /// the log.
    pub async fn reload(&self, trigger: &str) -> ReloadOutcome {
        crate::swap::reload(self, trigger).await
    }

    /// A fresh store for one request: the service's environment and limits, a new resource
    /// table, and the request's trace.
    pub(crate) fn new_store(&self, trace: ActiveTrace) -> Store<HostState> {
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
            outbound: OutboundHooks::new(self.outbound.clone(), trace.clone()),
            limiter: InstanceLimiter::new(limits),
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

async fn compile(runtime: &Arc<Runtime>, bytes: Vec<u8>) -> anyhow::Result<LoadedComponent> {
    let runtime = runtime.clone();
    tokio::task::spawn_blocking(move || runtime.load_bytes(&bytes))
        .await
        .map_err(|e| anyhow::anyhow!("compiling the component panicked: {e}"))?
}

impl ComponentLoader for Service {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn source(&self) -> &ComponentSource {
        &self.config.component
    }

    fn slot(&self) -> &ComponentSlot {
        &self.component
    }

    fn reload_lock(&self) -> &ReloadLock {
        &self.reload_lock
    }

    async fn fetch(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match (&self.config.component, &self.s3) {
            (ComponentSource::File(path), _) => tokio::fs::read(path)
                .await
                .map(Some)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display())),
            (ComponentSource::S3 { .. }, Some(s3)) => match s3.fetch().await? {
                Fetched::New(bytes) => Ok(Some(bytes)),
                Fetched::Unchanged => Ok(None),
            },
            (ComponentSource::S3 { .. }, None) => unreachable!("an S3 service has an S3 source"),
        }
    }

    async fn prepare(&self, bytes: Vec<u8>) -> anyhow::Result<LoadedComponent> {
        let component = self.compile(bytes).await?;
        self.check_instantiates(&component).await?;
        Ok(component)
    }
}
