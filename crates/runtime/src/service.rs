//! One service: a component with its name, environment, outgoing-HTTP policy and limits,
//! loaded and ready to serve.

use crate::compile_cache::ContentHash;
use crate::component_pin::ComponentPin;
use crate::component_source::{ComponentBytes, ComponentSource};
use crate::guest_output::ServiceOutput;
use crate::host_state::StoreFactory;
use crate::instance_pool::{InstanceReuse, ServedComponent};
use crate::limits::Limits;
use crate::local_calls::{LocalService, LocalServices};
use crate::memory_budget::MemoryBudget;
use crate::outbound::{OutboundConfig, OutboundHttp};
use crate::runtime::{LoadedComponent, Runtime};
use crate::s3_source::{Fetched, S3Source};
use crate::swap::{ComponentLoader, ComponentSlot, ReloadLock, ReloadOutcome};
use crate::table::Table;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;
use xray::recorder::{IncomingPolicy, Tracer};

/// Everything that defines a service, from the command line or a manifest.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The service (and X-Ray segment) name, e.g. `Backend #1`.
    pub name: String,
    /// Where the component comes from: a file or an S3 object.
    pub component: ComponentSource,
    /// The SHA-256 the component must have, if the service is pinned to one: other bytes are
    /// refused at start and on every swap.
    pub pin: Option<ComponentPin>,
    /// Where it listens on its own, if anywhere.
    pub listen: Option<SocketAddr>,
    /// The environment the component sees through `wasi:cli/environment`, and nothing else.
    pub env: Vec<(String, String)>,
    /// What it may call, and how calls are bounded.
    pub outbound: OutboundConfig,
    /// Request limits.
    pub limits: Limits,
    /// How instances are reused between requests.
    pub reuse: InstanceReuse,
    /// Whether every request is logged (one INFO line with its status, time and trace id).
    pub access_log: bool,
    /// What its requests' `X-Forwarded-For` and trace headers are believed: how many proxies
    /// stand in front of it, and whether it continues its callers' traces or starts its own.
    pub incoming: IncomingPolicy,
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
    pub(crate) stores: Arc<StoreFactory>,
    pub(crate) output: Arc<ServiceOutput>,
}

impl Service {
    /// Loads the service's component (from its file, or from S3 with a local copy kept under
    /// `cache_dir`); fails if it cannot be served. Its requests are traced by `tracer`; its table
    /// capability is `table`.
    pub async fn load(
        runtime: Arc<Runtime>,
        tracer: Arc<Tracer>,
        table: Arc<Table>,
        budget: Arc<MemoryBudget>,
        config: ServiceConfig,
        cache_dir: &Path,
    ) -> anyhow::Result<Arc<Self>> {
        let s3 = match &config.component {
            ComponentSource::S3 { bucket, key } => Some(S3Source::new(bucket, key, cache_dir)),
            ComponentSource::File(_) => None,
        };
        let fetched = match (&config.component, &s3) {
            (ComponentSource::File(path), _) => tokio::fs::read(path)
                .await
                .map(ComponentBytes::from_file)
                .with_context(|| format!("cannot read the component file {}", path.display())),
            (_, Some(s3)) => s3.fetch_initial().await,
            (ComponentSource::S3 { .. }, None) => unreachable!("an S3 source is made above"),
        }
        .with_context(|| format!("service {:?}", config.name))?;
        if let Some(pin) = &config.pin {
            pin.check(&fetched.bytes, &config.component)
                .with_context(|| format!("service {:?} cannot start", config.name))?;
        }
        let ComponentBytes {
            bytes,
            s3_version_id,
        } = fetched;
        let component = compile(&runtime, bytes).await.with_context(|| {
            format!(
                "service {:?}: cannot serve the component {}",
                config.name, config.component
            )
        })?;
        let output = ServiceOutput::new(&config.name, config.limits.guest_output_lines_per_second);
        let outbound = OutboundHttp::new(&config.name, config.outbound.clone(), output.clone());
        let stores = Arc::new(StoreFactory::new(
            runtime.engine().clone(),
            config.env.clone(),
            config.limits.clone(),
            output.clone(),
            outbound.clone(),
            table.clone(),
            budget,
        ));
        check_instantiates(&stores, &table, &component)
            .await
            .with_context(|| format!("service {:?}", config.name))?;
        let served = ServedComponent::new(&config.name, component, stores.clone(), &config.reuse)
            .with_s3_version(s3_version_id);
        let reuse = served.reuse();
        tracing::info!(
            service = %config.name,
            component = %config.component,
            version = %served.content_hash.short(),
            sha256 = %served.content_hash,
            s3_version_id = served.s3_version_id.as_deref().unwrap_or("none"),
            pinned = config.pin.is_some(),
            abi = %served.abi,
            requests_per_instance = reuse.requests_per_instance,
            requests_at_once = reuse.requests_at_once,
            idle_ms = reuse.idle_timeout.as_millis() as u64,
            warm_instances = reuse.warm_instances,
            compiled = if served.from_cache { "from cache" } else { "now" },
            "component loaded"
        );
        let permits = Arc::new(Semaphore::new(config.limits.max_concurrent_requests));
        Ok(Arc::new(Self {
            config,
            runtime,
            component: ComponentSlot::new(served),
            s3,
            reload_lock: ReloadLock::default(),
            outbound,
            permits,
            tracer,
            table,
            stores,
            output,
        }))
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

    /// What identifies the component served now, for `/versions` and `/stats`: its short and
    /// whole SHA-256, the S3 version id it came from, and the pin, if any.
    pub fn version_report(&self) -> serde_json::Value {
        let current = self.component.current();
        serde_json::json!({
            "service": self.name(),
            "version": current.content_hash.short(),
            "sha256": current.content_hash.as_str(),
            "s3_version_id": current.s3_version_id.as_deref(),
            "pinned_sha256": self.config.pin.as_ref().map(|pin| pin.hash().as_str()),
            "source": self.config.component.to_string(),
        })
    }

    /// The warm pool of the version served now, for `/stats`: its version, how many instances
    /// it keeps ready, how many are, and how requests found it (see [`crate::warm_instances`]).
    pub fn warm_instances_report(&self) -> serde_json::Value {
        let current = self.component.current();
        let mut report = serde_json::to_value(current.warm_report()).unwrap_or_default();
        report["version"] = current.content_hash.short().into();
        report
    }

    /// The counters of the component's output and of the host's warnings about its calls, for
    /// `/stats` (see [`crate::guest_output`]).
    pub fn guest_output_report(&self) -> serde_json::Value {
        self.output.stats()
    }

    /// Lets each of `services` (one process's services) call the others that listen on an
    /// address in process, without a connection (see [`crate::local_calls`]).
    pub fn call_each_other_in_process(services: &[Arc<Service>]) {
        let mut local = LocalServices::default();
        for service in services {
            if let Some(listen) = service.config.listen {
                let callee: Arc<dyn LocalService> = service.clone();
                local.add(listen, &callee);
                tracing::info!(
                    service = %service.name(),
                    "calls to http://{listen} from the other services of this process go in process"
                );
            }
        }
        for service in services {
            service.outbound.call_in_process(local.clone());
        }
    }

    /// Reloads the component from its source (see [`crate::swap`]); `trigger` says why, for
    /// the log.
    pub async fn reload(&self, trigger: &str) -> ReloadOutcome {
        crate::swap::reload(self, trigger).await
    }
}

/// Instantiates `component` once in a throwaway store, so that a component that type-checks but
/// cannot be instantiated (a trapping start function, a data segment out of bounds) is refused
/// before it serves a request; a component that imports the table capability is refused too
/// when its store cannot be opened.
async fn check_instantiates(
    stores: &StoreFactory,
    table: &Table,
    component: &LoadedComponent,
) -> anyhow::Result<()> {
    if component.imports_table {
        table
            .prepare()
            .await
            .context("the component imports the table capability")?;
    }
    let mut store = stores.new_store(component.content_hash.short());
    let timeout = stores.limits().request_timeout;
    tokio::time::timeout(timeout, component.pre.instantiate_async(&mut store))
        .await
        .map_err(|_| anyhow::anyhow!("instantiating it took longer than {timeout:?}"))?
        .map(|_| ())
        .map_err(anyhow::Error::from)
        .context("the component fails to instantiate")
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

    fn pin(&self) -> Option<&ComponentPin> {
        self.config.pin.as_ref()
    }

    async fn fetch(&self) -> anyhow::Result<Option<ComponentBytes>> {
        match (&self.config.component, &self.s3) {
            (ComponentSource::File(path), _) => tokio::fs::read(path)
                .await
                .map(|bytes| Some(ComponentBytes::from_file(bytes)))
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display())),
            (ComponentSource::S3 { .. }, Some(s3)) => match s3.fetch().await? {
                Fetched::New(fetched) => Ok(Some(fetched)),
                Fetched::Unchanged => Ok(None),
            },
            (ComponentSource::S3 { .. }, None) => unreachable!("an S3 service has an S3 source"),
        }
    }

    async fn prepare(&self, fetched: ComponentBytes) -> anyhow::Result<ServedComponent> {
        let component = self.compile(fetched.bytes).await?;
        check_instantiates(&self.stores, &self.table, &component).await?;
        Ok(ServedComponent::new(
            self.name(),
            component,
            self.stores.clone(),
            &self.config.reuse,
        )
        .with_s3_version(fetched.s3_version_id))
    }
}
