//! `xray-host`: see `xray-host --help`.
//!
//! The command line over the `xray-host-runtime` library: flags and environment variables
//! ([`cli`]), the manifest of a local run ([`manifest`]) and `xray-host check` ([`check`]).

mod check;
mod cli;
mod manifest;

use crate::cli::{Cli, Command, CommonArgs, SHARED_STORE_FILE, store_file_for_service};
use crate::manifest::Manifest;
use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use xray::recorder::Tracer;
use xray_host_runtime::admin::Admin;
use xray_host_runtime::runtime::{Runtime, RuntimeOptions};
use xray_host_runtime::server::{self, Backend, Frontend, ServerOptions, Site};
use xray_host_runtime::service::{Service, ServiceConfig};
use xray_host_runtime::static_files::StaticFiles;
use xray_host_runtime::swap;
use xray_host_runtime::table::Table;
use xray_local::DaemonStandIn;

use std::io::IsTerminal;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        // Colours only on a terminal: CloudWatch Logs and log files would keep the escape codes.
        .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (services, frontend, daemon, common, store_file) = match cli.command {
        Command::Serve(args) => {
            let service = args.service_config()?;
            let store_file = store_file_for_service(&service.name);
            (vec![service], None, None, args.common, store_file)
        }
        Command::Run(args) => {
            let manifest = Manifest::load(&args.manifest, &args.common)?;
            (
                manifest.services,
                manifest.frontend,
                manifest.daemon,
                args.common,
                SHARED_STORE_FILE.to_string(),
            )
        }
        Command::Healthcheck(args) => return healthcheck(&args).await,
        Command::Check(args) => return crate::check::run(&args).await,
        Command::Daemon(args) => {
            let stand_in = DaemonStandIn::start(&args.options()).await?;
            let site = Site {
                addr: args.listen,
                backend: Backend::Daemon(stand_in),
            };
            let options = ServerOptions {
                max_header_bytes: 16 * 1024,
                header_read_timeout: std::time::Duration::from_secs(30),
                keep_alive_timeout: std::time::Duration::from_secs(75),
                shutdown_timeout: args.shutdown_timeout,
            };
            return server::serve(vec![site], options, shutdown_signal()).await;
        }
    };
    // The stand-in starts first, so that the services' first segments and sampling calls find it.
    let daemon_site = match daemon {
        Some(options) => Some(Site {
            addr: options.listen,
            backend: Backend::Daemon(DaemonStandIn::start(&options).await?),
        }),
        None => None,
    };
    if let Some(addr) = common.admin_listen {
        Admin::check_address(addr)?;
    }
    let exporters = common.otlp_exporter().await?.into_iter().collect();
    let tracer = Tracer::start(common.xray_options()?, exporters);
    let table = Table::start(&common.table_options(&store_file));
    let loaded = load_services(services, &common, tracer.clone(), table).await?;
    if loaded.len() > 1 {
        Service::call_each_other_in_process(&loaded);
    }
    if !common.no_watch {
        swap::watch(&loaded, common.component_poll_interval);
    }
    reload_on_sighup(loaded.clone());

    let mut sites = Vec::new();
    for service in &loaded {
        if let Some(addr) = service.config.listen {
            sites.push(Site {
                addr,
                backend: Backend::Service(service.clone()),
            });
        }
    }
    if let Some(frontend) = frontend {
        let routes = frontend
            .routes
            .into_iter()
            .map(|(prefix, name)| {
                let service = loaded
                    .iter()
                    .find(|s| s.name() == name)
                    .expect("the manifest checked that routes name services")
                    .clone();
                (prefix, service)
            })
            .collect();
        sites.push(Site {
            addr: frontend.listen,
            backend: Backend::Frontend(Arc::new(Frontend {
                files: StaticFiles::new(&frontend.dir)?,
                routes,
            })),
        });
    }
    sites.extend(daemon_site);
    if let Some(addr) = common.admin_listen {
        sites.push(Site {
            addr,
            backend: Backend::Admin(Arc::new(Admin::new(loaded.clone(), tracer.clone()))),
        });
    }
    anyhow::ensure!(
        !sites.is_empty(),
        "nothing to serve: give a service a listen address or add a [frontend]"
    );
    let bound = server::bind(sites).await?;
    // Now that the daemon stand-in, if this process serves one, is listening, the first
    // sampling call finds it.
    tracer.start_sampling_poller();
    let served = bound
        .serve(common.server_options(), shutdown_signal())
        .await;
    // The last requests' segments leave before the process does.
    tracer.flush(std::time::Duration::from_secs(2)).await;
    served
}

/// Loads every component (compiling off the async threads) before serving anything.
async fn load_services(
    configs: Vec<ServiceConfig>,
    common: &CommonArgs,
    tracer: Arc<Tracer>,
    table: Arc<Table>,
) -> anyhow::Result<Vec<Arc<Service>>> {
    let max_instances = configs
        .iter()
        .map(|c| c.limits.max_concurrent_requests as u32)
        .sum::<u32>()
        + 16;
    let cache_dir = common.cache_dir();
    let options = RuntimeOptions {
        max_instances,
        max_memory_bytes: common.limits().max_memory_bytes,
        cache_dir: cache_dir.clone(),
    };
    let runtime = tokio::task::spawn_blocking(move || Runtime::new(&options))
        .await
        .context("starting the wasmtime engine panicked")??;
    // S3 components keep their local copy beside the compiled artifacts.
    let copies = cache_dir.unwrap_or_else(std::env::temp_dir);
    let mut services = Vec::new();
    for config in configs {
        services.push(
            Service::load(
                runtime.clone(),
                tracer.clone(),
                table.clone(),
                config,
                &copies,
            )
            .await?,
        );
    }
    Ok(services)
}

/// Reloads every component on SIGHUP.
fn reload_on_sighup(services: Vec<Arc<Service>>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload through the admin endpoint instead");
            return;
        };
        while hangup.recv().await.is_some() {
            tracing::info!("received SIGHUP: reloading every component");
            for service in &services {
                service.reload("SIGHUP").await;
            }
        }
    });
}

/// `xray-host healthcheck`: exit 0 when the URL answers 2xx within the timeout.
async fn healthcheck(args: &crate::cli::HealthcheckArgs) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Empty};
    let url = args.target();
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let request = http::Request::get(url.as_str())
        .body(Empty::new())
        .with_context(|| format!("{url} is not a URL"))?;
    let response = tokio::time::timeout(args.timeout, client.request(request))
        .await
        .map_err(|_| anyhow::anyhow!("{url} did not answer within {:?}", args.timeout))?
        .with_context(|| format!("{url} could not be reached"))?;
    let status = response.status();
    let _ = tokio::time::timeout(args.timeout, response.into_body().collect()).await;
    anyhow::ensure!(status.is_success(), "{url} answered HTTP {status}");
    Ok(())
}

/// Resolves on SIGTERM (how ECS stops a task) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(
                        "cannot listen for SIGTERM ({error}); only Ctrl-C stops the host"
                    );
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("received Ctrl-C"),
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
