//! `xray-host`: see `xray-host --help`.
//!
//! The command line over the `xray-host-runtime` library: flags and environment variables
//! ([`cli`]), the manifest of a local run ([`manifest`]) and `xray-host check` ([`check`]);
//! and what only the local run serves, composed here as listener sites: the frontend's files
//! with its routes ([`frontend`], [`static_files`]) and the X-Ray daemon stand-in
//! ([`stand_in_site`]); the log's format ([`log_format`]) and its writer, which never makes a
//! request wait on stdout ([`log_output`]); the copy of each trace's log lines into the
//! stand-in ([`trace_log_tee`]) and the request counters its metrics panel reads
//! ([`console_metrics`]); the runtime's metrics as OTLP readings ([`metrics_otlp`]). Start-up
//! order and shutdown are the library's (`xray_host_runtime::Host`).

mod check;
mod cli;
mod console_metrics;
mod frontend;
mod log_format;
mod log_output;
mod manifest;
mod metrics_otlp;
mod stand_in_site;
mod static_files;
mod trace_log_tee;

use crate::cli::{Cli, Command, MetricsExport, SHARED_STORE_FILE, store_file_for_service};
use crate::frontend::Frontend;
use crate::log_format::{JsonLines, LogFormat};
use crate::log_output::LogOutput;
use crate::manifest::Manifest;
use crate::stand_in_site::StandInSite;
use crate::static_files::StaticFiles;
use crate::trace_log_tee::TraceLogTee;
use anyhow::Context;
use clap::Parser;
use otlp_export::{OtlpExporter, OtlpMetricsExporter};
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::prelude::*;
use xray::export::TraceExporter;
use xray::recorder::Tracer;
use xray_host_runtime::Admin;
use xray_host_runtime::Host;
use xray_host_runtime::HostEndpoint;
use xray_host_runtime::Table;
use xray_host_runtime::{Backend, ServerOptions, Site};
use xray_host_runtime::{EmfReporter, ExporterMetrics, LineSink};
use xray_local::DaemonStandIn;

use std::io::IsTerminal;

/// How long the last OTLP metrics export may take at shutdown.
const OTLP_METRICS_FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the process waits at exit for its last log lines to be written.
const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_output = match LogOutput::start(std::io::stdout()) {
        Ok(output) => output,
        Err(error) => {
            eprintln!("error: cannot start the thread that writes the log: {error}");
            return ExitCode::FAILURE;
        }
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(log_output.clone())
        .with_target(false);
    let lines = match cli.log_format {
        LogFormat::Text => lines
            // Colours only on a terminal: CloudWatch Logs and log files would keep the codes.
            .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .boxed(),
        LogFormat::Json => lines.with_ansi(false).event_format(JsonLines).boxed(),
    };
    // Beside the log's writer, after the same filter: a trace's lines in the local console are
    // the ones its log shows.
    let trace_log_tee = TraceLogTee::default();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with(lines)
        .with(trace_log_tee.clone())
        .init();
    let runtime = match async_runtime(cli.worker_threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            log_output.flush(LOG_FLUSH_TIMEOUT);
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli, log_output.clone(), trace_log_tee)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    };
    // The last lines (the shutdown's, or why the host could not start) are still queued.
    log_output.flush(LOG_FLUSH_TIMEOUT);
    code
}

/// The tokio runtime: `worker_threads` workers (by default one per CPU the process may use,
/// which honours its CPU affinity and its cgroup's CPU quota), or, for one, tokio's
/// current-thread runtime, which runs every task on the main thread: with one CPU (a 1-vCPU
/// Fargate task, a host pinned to one core) a second worker could only take turns with the
/// first, and handing a task from one thread to the other costs wake-ups and system calls.
fn async_runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = worker_threads
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
}

async fn run(cli: Cli, log_output: LogOutput, trace_log_tee: TraceLogTee) -> anyhow::Result<()> {
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
            // Apart from any host: no lines and no counters to show.
            let stand_in = DaemonStandIn::start(&args.options()).await?;
            let site = stand_in_site(args.listen, stand_in);
            let options = ServerOptions {
                max_header_bytes: 16 * 1024,
                header_read_timeout: std::time::Duration::from_secs(30),
                keep_alive_timeout: std::time::Duration::from_secs(75),
                response_write_timeout: std::time::Duration::from_secs(30),
                shutdown_timeout: args.shutdown_timeout,
            };
            return xray_host_runtime::serve(vec![site], options, shutdown_signal()).await;
        }
    };
    // The stand-in starts first, so that the services' first segments and sampling calls find it.
    let stand_in = match &daemon {
        Some(options) => {
            let stand_in = DaemonStandIn::start(options).await?;
            trace_log_tee.send_to(stand_in.collect_log_lines());
            Some(stand_in)
        }
        None => None,
    };
    if let Some(addr) = common.admin_listen {
        Admin::check_address(addr)?;
    }
    // The OTLP exporter starts here, in the composition (its task needs the runtime; with
    // SigV4 on it resolves credentials and region first).
    let mut exporters: Vec<Arc<dyn TraceExporter>> = Vec::new();
    // What the host listens on or sends to on this machine: no component reaches it.
    let mut own = Vec::new();
    own.extend(
        common
            .admin_listen
            .map(|addr| HostEndpoint::new("admin endpoint", addr)),
    );
    own.extend(
        daemon
            .as_ref()
            .map(|options| HostEndpoint::new("X-Ray daemon stand-in", options.listen)),
    );
    let xray_options = common.xray_options()?;
    own.extend(resolve_endpoint("X-Ray daemon (UDP)", &xray_options.daemon.udp, false).await);
    own.extend(resolve_endpoint("X-Ray daemon (TCP)", &xray_options.daemon.tcp, false).await);
    // Checked before anything starts: a bad OTEL_METRICS_EXPORTER stops the host here.
    let metrics_export = common.metrics_export()?;
    let metrics_otlp_config = match metrics_export {
        MetricsExport::Otlp => Some(common.metrics_otlp_config()?),
        _ => None,
    };
    if let Some(config) = &metrics_otlp_config
        && let Some(authority) = otlp_authority(&config.endpoint)
    {
        own.extend(resolve_endpoint("OTLP metrics endpoint", &authority, true).await);
    }
    if let Some(config) = common.otlp_config()? {
        if let Some(authority) = otlp_authority(&config.endpoint) {
            own.extend(resolve_endpoint("OTLP collector", &authority, true).await);
        }
        exporters.push(Arc::new(OtlpExporter::start(config).await?));
    }
    let tracer = Tracer::start(xray_options, exporters);
    xray_host_runtime::register_trace_exporters(&tracer);
    let host = Host::builder(Table::start(&common.table_options(&store_file)))
        .services(services)
        .host_endpoints(own)
        .tracer(tracer)
        .cache_dir(common.cache_dir())
        .memory_budget(common.memory_budget())
        .load()
        .await?;
    if !common.no_watch {
        host.watch_components(common.component_poll_interval);
    }
    host.reload_on_sighup();

    let mut sites = host.service_sites();
    if let Some(frontend) = frontend {
        let routes = frontend
            .routes
            .into_iter()
            .map(|(prefix, name)| {
                let service = host
                    .services()
                    .iter()
                    .find(|s| s.name() == name)
                    .expect("the manifest checked that routes name services")
                    .clone();
                (prefix, service)
            })
            .collect();
        sites.push(Site {
            addr: frontend.listen,
            backend: Backend::Handler(Arc::new(Frontend {
                files: StaticFiles::new(&frontend.dir)?,
                routes,
            })),
        });
    }
    if let (Some(options), Some(stand_in)) = (daemon, stand_in) {
        // The panel reads the counters of the services this host loaded.
        stand_in.watch_metrics(Arc::new(console_metrics::HostRequestCounters));
        sites.push(stand_in_site(options.listen, stand_in));
    }
    if let Some(addr) = common.admin_listen {
        sites.push(host.admin_site(addr)?);
    }
    // Metrics as EMF lines on stdout, through the log's writer: never waited on.
    let emf = (metrics_export == MetricsExport::Emf).then(|| {
        let sink: LineSink = Arc::new(move |line| log_output.write_raw(line));
        EmfReporter::start(&common.metrics_namespace, common.metrics_interval, sink)
    });
    let otlp_metrics = match metrics_otlp_config {
        Some(config) => {
            let exporter = OtlpMetricsExporter::start(
                config,
                common.metrics_interval.min(EmfReporter::MAX_INTERVAL),
                Arc::new(metrics_otlp::collect),
            )
            .await?;
            let counters = exporter.counters();
            xray_host_runtime::metric_sources::register_for_process(Arc::new(
                ExporterMetrics::new("otlp_metrics", move || {
                    xray_host_runtime::read_export_counters(&counters)
                }),
            ));
            Some(exporter)
        }
        None => None,
    };
    let served = host
        .serve(sites, common.server_options(), shutdown_signal())
        .await;
    if let Some(emf) = emf {
        emf.finish();
    }
    if let Some(exporter) = otlp_metrics {
        exporter.finish(OTLP_METRICS_FINISH_TIMEOUT).await;
    }
    served
}

/// The addresses of `host:port` (a daemon or collector the host sends to) as host endpoints,
/// only its loopback ones when `loopback_only`. A name that does not resolve within two seconds
/// is logged and left out: calls there are then judged by the other rules alone.
async fn resolve_endpoint(what: &str, host_port: &str, loopback_only: bool) -> Vec<HostEndpoint> {
    let lookup = tokio::net::lookup_host(host_port.to_string());
    let addresses = match tokio::time::timeout(std::time::Duration::from_secs(2), lookup).await {
        Ok(Ok(addresses)) => addresses,
        Ok(Err(error)) => {
            tracing::warn!(
                "cannot resolve the {what}'s address {host_port} ({error}): components' calls \
                 to it are not refused as calls to the host's own endpoints"
            );
            return Vec::new();
        }
        Err(_) => {
            tracing::warn!(
                "resolving the {what}'s address {host_port} took over 2 s: components' calls \
                 to it are not refused as calls to the host's own endpoints"
            );
            return Vec::new();
        }
    };
    addresses
        .filter(|address| {
            !loopback_only || xray_host_runtime::parsers::judged(address.ip()).is_loopback()
        })
        .map(|address| HostEndpoint::new(what, address))
        .collect()
}

/// The `host:port` of an OTLP endpoint URL, the port defaulting to the scheme's.
fn otlp_authority(endpoint: &str) -> Option<String> {
    let uri: http::Uri = endpoint.parse().ok()?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some(format!("{}:{port}", uri.host()?))
}

/// The daemon stand-in as a site on `addr`.
fn stand_in_site(addr: std::net::SocketAddr, stand_in: Arc<DaemonStandIn>) -> Site {
    Site {
        addr,
        backend: Backend::Handler(Arc::new(StandInSite(stand_in))),
    }
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
