//! The host as a whole: the engine, the services and their tracer, started and stopped in one
//! order. `xray-host serve` and `run`, `xray-host check` and the benchmarks all start through
//! [`HostBuilder`], so the order is written once:
//!
//! 1. the wasmtime engine, sized for every service's concurrency ([`HostBuilder::load`]);
//! 2. every service's component, fetched, compiled and checked before anything listens (a
//!    component that cannot serve fails the start, naming its service);
//! 3. calls between the services of one process wired in process, and the host's own endpoints
//!    ([`HostBuilder::host_endpoints`]) refused to every service's outgoing calls;
//!
//! then [`Host::serve`]: bind every listener (a taken port fails the start as a whole), start
//! the centralized sampling poller (once a co-located daemon stand-in listens too), serve until
//! the shutdown signal, drain in-flight requests, and flush the last segments before returning.
//!
//! What a caller composes around it (the local run's frontend and daemon stand-in) are
//! [`Site`]s with their own [`crate::server::SiteHandler`].

use crate::admin::Admin;
use crate::memory_budget::MemoryBudget;
use crate::network_policy::HostEndpoint;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::server::{self, Backend, ServerOptions, Site};
use crate::service::{Service, ServiceConfig};
use crate::swap;
use crate::table::Table;
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use xray::recorder::Tracer;

/// How long the last segments get to leave when the host stops.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// Instances the engine's pool holds beyond the services' concurrency: a swap's new version
/// and the trial instantiation of a component being checked need their own.
const SPARE_INSTANCES: u32 = 16;

/// What a host is made of, before anything is loaded.
pub struct HostBuilder {
    services: Vec<ServiceConfig>,
    table: Arc<Table>,
    tracer: Arc<Tracer>,
    cache_dir: Option<PathBuf>,
    max_instances: Option<u32>,
    host_endpoints: Vec<HostEndpoint>,
    memory_budget: Arc<MemoryBudget>,
}

impl HostBuilder {
    /// Adds a service.
    pub fn service(mut self, config: ServiceConfig) -> Self {
        self.services.push(config);
        self
    }

    /// Adds services.
    pub fn services(mut self, configs: impl IntoIterator<Item = ServiceConfig>) -> Self {
        self.services.extend(configs);
        self
    }

    /// Traces every service's requests with `tracer` (by default nothing is traced).
    pub fn tracer(mut self, tracer: Arc<Tracer>) -> Self {
        self.tracer = tracer;
        self
    }

    /// Keeps compiled components, and the local copies of S3 components, under `dir` (none:
    /// compile at every start, and keep S3 copies in the temporary directory).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Sizes the engine's instance pool (by default every service's concurrency plus a few
    /// spares).
    pub fn max_instances(mut self, count: u32) -> Self {
        self.max_instances = Some(count);
        self
    }

    /// The host's own endpoints (its admin endpoint, a daemon stand-in it serves, the X-Ray
    /// daemon and OTLP collector it sends to): no service's outgoing call reaches them, whatever
    /// its allow-list says (see [`crate::network_policy`]).
    pub fn host_endpoints(mut self, endpoints: impl IntoIterator<Item = HostEndpoint>) -> Self {
        self.host_endpoints.extend(endpoints);
        self
    }

    /// Bounds the memory all instances of all services hold together (by default only each
    /// instance's own limit applies; see [`crate::memory_budget`]).
    pub fn memory_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.memory_budget = budget;
        self
    }

    /// Starts the engine and loads every service; nothing listens yet.
    pub async fn load(mut self) -> anyhow::Result<Host> {
        anyhow::ensure!(
            !self.services.is_empty(),
            "no service to load: give the host at least one component"
        );
        let max_instances = self.max_instances.unwrap_or_else(|| {
            self.services
                .iter()
                // Instances ready ahead of requests take slots too.
                .map(|c| {
                    (c.limits.max_concurrent_requests + c.reuse.warm_instances_at_most()) as u32
                })
                .sum::<u32>()
                + SPARE_INSTANCES
        });
        let max_memory_bytes = self
            .services
            .iter()
            .map(|c| c.limits.max_memory_bytes)
            .max()
            .unwrap_or_default();
        let options = RuntimeOptions {
            max_instances,
            max_memory_bytes,
            cache_dir: self.cache_dir.clone(),
        };
        let runtime = tokio::task::spawn_blocking(move || Runtime::new(&options))
            .await
            .context("starting the wasmtime engine panicked")??;
        for config in &mut self.services {
            config
                .outbound
                .host_endpoints
                .extend(self.host_endpoints.iter().cloned());
        }
        // S3 components keep their local copy beside the compiled artifacts.
        let copies = self.cache_dir.unwrap_or_else(std::env::temp_dir);
        let mut services = Vec::new();
        for config in self.services {
            services.push(
                Service::load(
                    runtime.clone(),
                    self.tracer.clone(),
                    self.table.clone(),
                    self.memory_budget.clone(),
                    config,
                    &copies,
                )
                .await?,
            );
        }
        if services.len() > 1 {
            Service::call_each_other_in_process(&services);
        }
        Ok(Host {
            services,
            tracer: self.tracer,
        })
    }
}

/// Loaded services, ready to be served.
pub struct Host {
    services: Vec<Arc<Service>>,
    tracer: Arc<Tracer>,
}

impl Host {
    /// A host whose components use `table` for the table capability.
    pub fn builder(table: Arc<Table>) -> HostBuilder {
        HostBuilder {
            services: Vec::new(),
            table,
            tracer: Tracer::disabled(),
            cache_dir: None,
            max_instances: None,
            host_endpoints: Vec::new(),
            memory_budget: MemoryBudget::unlimited(),
        }
    }

    /// The services, in the order they were added.
    pub fn services(&self) -> &[Arc<Service>] {
        &self.services
    }

    /// Swaps in new components when their files change or their S3 objects get a new version
    /// (polled every `s3_poll`), and on SIGHUP.
    pub fn watch_components(&self, s3_poll: Duration) {
        swap::watch(&self.services, s3_poll);
    }

    /// Reloads every component on SIGHUP.
    pub fn reload_on_sighup(&self) {
        let services = self.services.clone();
        #[cfg(unix)]
        tokio::spawn(async move {
            let Ok(mut hangup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!(
                    "cannot listen for SIGHUP; reload through the admin endpoint instead"
                );
                return;
            };
            while hangup.recv().await.is_some() {
                tracing::info!("received SIGHUP: reloading every component");
                for service in &services {
                    service.reload("SIGHUP").await;
                }
            }
        });
        #[cfg(not(unix))]
        drop(services);
    }

    /// A listener for each service that has its own address.
    pub fn service_sites(&self) -> Vec<Site> {
        self.services
            .iter()
            .filter_map(|service| {
                Some(Site {
                    addr: service.config.listen?,
                    backend: Backend::Service(service.clone()),
                })
            })
            .collect()
    }

    /// The admin endpoint on `addr`, which must be a loopback address.
    pub fn admin_site(&self, addr: SocketAddr) -> anyhow::Result<Site> {
        Admin::check_address(addr)?;
        Ok(Site {
            addr,
            backend: Backend::Handler(Arc::new(Admin::new(
                self.services.clone(),
                self.tracer.clone(),
            ))),
        })
    }

    /// Binds `sites`, starts the sampling poller, serves until `shutdown` resolves, drains, and
    /// flushes the last segments.
    pub async fn serve(
        self,
        sites: Vec<Site>,
        options: ServerOptions,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            !sites.is_empty(),
            "nothing to serve: give a service a listen address or add a [frontend]"
        );
        let bound = server::bind(sites).await?;
        // Now that a co-located daemon stand-in, if there is one, listens, the first sampling
        // call finds it.
        self.tracer.start_sampling_poller();
        let served = bound.serve(options, shutdown).await;
        // The last requests' segments leave before the process does.
        self.tracer.flush(FLUSH_AT_EXIT).await;
        served
    }
}
