//! The command line. Every flag has an environment variable, so an ECS task definition needs
//! only environment variables.

use crate::log_format::LogFormat;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use otlp_export::{ExporterChoice, OtlpConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use xray::daemon_address::{DEFAULT_DAEMON_ADDRESS, DaemonAddress};
use xray::recorder::{IncomingPolicy, IncomingTraceHeader, XrayOptions};
use xray::request_trace::budget::RecordingLimits;
use xray::sampling::local::LocalRules;
use xray::sdk_env::XrayEnv;
use xray_host_runtime::AllowList;
use xray_host_runtime::ComponentPin;
use xray_host_runtime::ComponentSource;
use xray_host_runtime::InstanceReuse;
use xray_host_runtime::Limits;
use xray_host_runtime::OutboundConfig;
use xray_host_runtime::ServerOptions;
use xray_host_runtime::ServiceConfig;
use xray_host_runtime::TableOptions;
use xray_host_runtime::{MemoryBudget, container_memory_limit, default_budget};
use xray_local::DaemonOptions;

/// Serves WASI HTTP components and traces every request to AWS X-Ray.
#[derive(Debug, Parser)]
#[command(name = "xray-host", version, about, max_term_width = 100)]
pub struct Cli {
    /// How log lines are written to stdout: `text` for a terminal, `json` (one object per line,
    /// with the request's X-Ray and W3C trace ids) for CloudWatch Logs. The ECS templates set
    /// `json`.
    #[arg(
        long,
        global = true,
        env = "XRAY_HOST_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: LogFormat,
    /// Threads that run requests (tokio's workers). Default: one per CPU the process may use
    /// (its CPU affinity and its cgroup's quota count). With one, every request runs on the
    /// main thread (tokio's current-thread runtime), which saves the wake-ups between threads
    /// that a single CPU cannot use anyway. 0 is the default.
    #[arg(
        long,
        global = true,
        env = "XRAY_HOST_WORKER_THREADS",
        value_name = "N"
    )]
    pub worker_threads: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve one component on one address: what each ECS service runs.
    Serve(ServeArgs),
    /// Serve several components (and optionally the frontend and the X-Ray daemon stand-in)
    /// from a manifest file: the local run of the whole application.
    Run(RunArgs),
    /// Run only the local X-Ray daemon stand-in: segments on UDP, sampling, the X-Ray API and
    /// the trace console on TCP, on one address.
    Daemon(DaemonArgs),
    /// Check that a service answers `GET /health` with 2xx (exit status 0) or not (1): the
    /// container health check of the ECS task definitions, with no curl in the image.
    Healthcheck(HealthcheckArgs),
    /// Check that a component file can be served, without serving it: it compiles, imports only
    /// what this host provides, exports wasi:http/incoming-handler and instantiates. Exit status
    /// 0, or 1 with what is wrong. The deployment scripts run it before every upload.
    Check(CheckArgs),
}

/// `xray-host check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component file (a .wasm built for wasm32-wasip2).
    #[arg(value_name = "COMPONENT")]
    pub component: PathBuf,

    /// Largest linear memory of one instance, in MiB, as the service will run it: a component
    /// that needs more to instantiate fails the check.
    #[arg(long, env = "XRAY_HOST_MAX_MEMORY_MIB", default_value_t = 128)]
    pub max_memory_mib: usize,
}

/// `xray-host healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to check. [default: http://127.0.0.1:<port of XRAY_HOST_LISTEN>/health]
    #[arg(long, env = "XRAY_HOST_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl HealthcheckArgs {
    /// The URL to check: `--url`, else the health path on the port the service listens on.
    pub fn target(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let port = std::env::var("XRAY_HOST_LISTEN")
            .ok()
            .and_then(|listen| listen.parse::<SocketAddr>().ok())
            .map(|addr| addr.port())
            .unwrap_or(8080);
        format!("http://127.0.0.1:{port}/health")
    }
}

/// `xray-host daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The address for UDP segments and TCP (sampling, API, console).
    #[arg(
        long,
        env = "XRAY_HOST_DAEMON_LISTEN",
        default_value = "127.0.0.1:2000"
    )]
    pub listen: SocketAddr,

    /// Traces kept; the oldest are evicted beyond this.
    #[arg(long, env = "XRAY_HOST_MAX_TRACES", default_value_t = 10_000)]
    pub max_traces: usize,

    /// The sampling rules served (`{"SamplingRules": [...]}`, the X-Ray API's rule fields).
    /// [default: the template's ignore-healthcheck rule and Default]
    #[arg(long, env = "XRAY_HOST_DAEMON_SAMPLING_RULES", value_name = "FILE")]
    pub sampling_rules: Option<PathBuf>,

    /// Time in-flight console requests get after SIGTERM or Ctrl-C.
    #[arg(long, env = "XRAY_HOST_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

impl DaemonArgs {
    /// The stand-in's settings.
    pub fn options(&self) -> DaemonOptions {
        DaemonOptions {
            listen: self.listen,
            max_traces: self.max_traces,
            sampling_rules: self.sampling_rules.clone(),
        }
    }
}

/// `xray-host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The component to serve: a WASI 0.2 component exporting wasi:http/incoming-handler, as a
    /// file path (watched: a new file is swapped in) or an s3://bucket/key URI (polled by ETag).
    #[arg(long, env = "XRAY_HOST_COMPONENT", value_name = "PATH|S3_URI")]
    pub component: String,

    /// Serve only a component whose SHA-256 is this (64 hex digits, `sha256:` optional): other
    /// bytes are refused at start and on every swap, naming both hashes. Empty: no pin. On ECS
    /// the task definition carries it, so a new component is a new deployment.
    #[arg(long, env = "XRAY_HOST_COMPONENT_SHA256", value_name = "HEX")]
    pub component_sha256: Option<String>,

    /// The address to listen on.
    #[arg(long, env = "XRAY_HOST_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// The service name, used as the X-Ray segment name (e.g. "Backend #1").
    /// AWS_XRAY_TRACING_NAME, when set, wins, as it does in the X-Ray SDKs.
    #[arg(long, env = "XRAY_HOST_NAME")]
    pub name: String,

    /// An environment variable for the component, KEY=VALUE; repeat for more. The component
    /// sees these (and --pass-env ones) and nothing else of the host's environment.
    /// In XRAY_HOST_ENV, separate entries with commas.
    #[arg(long = "env", env = "XRAY_HOST_ENV", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,

    /// The name of a host environment variable to hand to the component with its value, e.g.
    /// BACKEND_1_URL; repeat for more. In XRAY_HOST_PASS_ENV, separate names with commas.
    #[arg(
        long = "pass-env",
        env = "XRAY_HOST_PASS_ENV",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub pass_env: Vec<String>,

    /// A server the component may call, scheme://host[:port] (`*.example.com` and port `*`
    /// allowed); repeat for more. Everything else is refused. In XRAY_HOST_ALLOW_OUTBOUND,
    /// separate entries with commas.
    #[arg(
        long = "allow-outbound",
        env = "XRAY_HOST_ALLOW_OUTBOUND",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub allow_outbound: Vec<String>,

    /// Settings shared with `run`.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `xray-host run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The manifest: a TOML file listing the services (see scripts/local-app.toml).
    #[arg(long, env = "XRAY_HOST_MANIFEST", value_name = "PATH")]
    pub manifest: PathBuf,

    /// Settings shared with `serve`; they apply to every service of the manifest.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Limits, timeouts and caching, for every service of the process.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Largest request body accepted; larger ones are answered 413.
    #[arg(long, env = "XRAY_HOST_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,

    /// Largest request head (request line and headers) accepted; larger ones are answered 431.
    /// Values under 8192 act as 8192.
    #[arg(long, env = "XRAY_HOST_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Largest linear memory of one component instance, in MiB; a component that needs more
    /// fails its request with 500.
    #[arg(long, env = "XRAY_HOST_MAX_MEMORY_MIB", default_value_t = 128)]
    pub max_memory_mib: usize,

    /// The memory all component instances of the process may hold together, in MiB (0: no
    /// budget). A request that would need more waits up to a second, then gets 503 with
    /// Retry-After, so the task is never killed for its memory. [default: 75 % of the
    /// container's memory limit when cgroups set one, else no budget]
    #[arg(long, env = "XRAY_HOST_INSTANCE_MEMORY_BUDGET_MIB", value_name = "MIB")]
    pub instance_memory_budget_mib: Option<u64>,

    /// Time a request may take, waits on outgoing calls included (e.g. 30s, 500ms); then 504.
    #[arg(long, env = "XRAY_HOST_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Requests one service serves at once; further ones are answered 503 at once.
    #[arg(long, env = "XRAY_HOST_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,

    /// Requests one instance serves before it is dropped, as `wasmtime serve` counts them.
    /// [default: 128 for WASI 0.3 components, 1 (a fresh instance per request) for WASI 0.2]
    /// Reused instances share the guest's globals between the requests they serve: 1 turns
    /// reuse off.
    #[arg(long, env = "XRAY_HOST_MAX_INSTANCE_REUSE_COUNT", value_name = "N")]
    pub max_instance_reuse_count: Option<usize>,

    /// Requests one instance serves at once. [default: 16 for WASI 0.3 components; WASI 0.2
    /// instances serve one at a time]
    #[arg(
        long,
        env = "XRAY_HOST_MAX_INSTANCE_CONCURRENT_REUSE_COUNT",
        value_name = "N"
    )]
    pub max_instance_concurrent_reuse_count: Option<usize>,

    /// Instances made ahead of requests, in the background, and kept ready for the next ones;
    /// 0 makes none. Each holds its memory (about 10 MB for a JavaScript component) within the
    /// instance memory budget, which bounds how many are made. [default: 2 where instances
    /// serve one request each (WASI 0.2 without reuse, and JavaScript), else 0]
    #[arg(long, env = "XRAY_HOST_WARM_INSTANCES", value_name = "N")]
    pub warm_instances: Option<usize>,

    /// Time an idle instance is kept for the next request (e.g. 1s, 250ms).
    #[arg(long, env = "XRAY_HOST_IDLE_INSTANCE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub idle_instance_timeout: Duration,

    /// Log every request: one INFO line with the service, method, path, status, time and trace
    /// id. Off by default: at thousands of requests a second the line costs more than the trace,
    /// which records the same and more; failures are logged either way.
    #[arg(long, env = "XRAY_HOST_ACCESS_LOG")]
    pub access_log: bool,

    /// Where the metrics go (requests, errors, throttles, faults and duration per service,
    /// component version and route class; the instance pool, the table, the exporters, the
    /// refused outgoing calls; the components' own wasi:otel metrics): `emf` writes them to
    /// stdout as CloudWatch Embedded Metric Format lines, which CloudWatch Logs turns into
    /// metrics with no agent; `otlp` posts them as OTLP metrics to the endpoint the
    /// OTEL_EXPORTER_OTLP_[METRICS_]* variables name; `none` keeps them in. Default:
    /// OTEL_METRICS_EXPORTER (`otlp` or `none`) when set, else `emf` on ECS
    /// (`ECS_CONTAINER_METADATA_URI_V4` set), else `none`.
    #[arg(long, env = "XRAY_HOST_METRICS", value_enum)]
    pub metrics: Option<MetricsExport>,

    /// How often the metrics are written or exported (at most 60 s, CloudWatch's standard
    /// resolution); the last ones are written at shutdown.
    #[arg(long, env = "XRAY_HOST_METRICS_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub metrics_interval: Duration,

    /// The CloudWatch namespace of the metrics.
    #[arg(long, env = "XRAY_HOST_METRICS_NAMESPACE", default_value = "XrayHost")]
    pub metrics_namespace: String,

    /// Lines of a component's stdout and stderr logged a second, per service, with bursts of
    /// five seconds' worth; more are dropped, counted in `GET /stats` and reported every 10 s.
    /// 0 drops them all.
    #[arg(
        long,
        env = "XRAY_HOST_GUEST_OUTPUT_LINES_PER_SECOND",
        default_value_t = 100
    )]
    pub guest_output_lines_per_second: u32,

    /// Time an outgoing call may take to connect.
    #[arg(long, env = "XRAY_HOST_OUTBOUND_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub outbound_connect_timeout: Duration,

    /// Time an outgoing call may wait for its response head once connected.
    #[arg(long, env = "XRAY_HOST_OUTBOUND_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub outbound_timeout: Duration,

    /// Time a client has to send a whole request head; slower ones are disconnected
    /// (slowloris protection).
    #[arg(long, env = "XRAY_HOST_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Time in-flight requests get to finish after SIGTERM or Ctrl-C (ECS waits 30 s by
    /// default before it kills a task).
    #[arg(long, env = "XRAY_HOST_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Time an idle keep-alive connection stays open between requests. Behind a load balancer
    /// that reuses idle connections, make it longer than the balancer's idle timeout (the ALB's
    /// is 60 s), so that the balancer, not the host, closes them.
    #[arg(long, env = "XRAY_HOST_KEEP_ALIVE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub keep_alive_timeout: Duration,

    /// Time a response may wait for its client to read any of it; then the connection is
    /// closed, the request's place under --max-concurrent-requests is freed and its segment
    /// records the cut response (a client that stops reading cannot hold the service).
    #[arg(long, env = "XRAY_HOST_RESPONSE_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub response_write_timeout: Duration,

    /// Where compiled components are kept between runs. The host runs the machine code it finds
    /// there, so only the host's user may write to it: a missing directory is created 0700, and
    /// one another user owns, or its group or others may write, is refused with a warning (the
    /// run compiles every component instead).
    /// [default: $XDG_CACHE_HOME/xray-host, else $HOME/.cache/xray-host, else
    /// xray-host-<uid> in the temp dir]
    #[arg(long, env = "XRAY_HOST_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile components at every start instead of caching them on disk.
    #[arg(long, env = "XRAY_HOST_NO_COMPILE_CACHE")]
    pub no_compile_cache: bool,

    /// Listen for `POST /reload` (with the header `X-Xray-Host-Reload: 1`), `GET /versions` and
    /// `GET /stats` on this address, which must be a loopback address (127.0.0.1 or [::1]); only
    /// requests addressed to a loopback name are answered.
    #[arg(long, env = "XRAY_HOST_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Refuse outgoing calls to private network addresses (10.0.0.0/8, 172.16.0.0/12,
    /// 192.168.0.0/16, 100.64.0.0/10, fc00::/7) too, whatever the allow-list says, unless an
    /// entry names the address literally. Link-local addresses (where ECS serves the task's
    /// credentials) and the EC2 metadata addresses are refused always.
    #[arg(long, env = "XRAY_HOST_BLOCK_PRIVATE_NETWORKS")]
    pub block_private_networks: bool,

    /// Do not watch component files or poll S3: swap only on SIGHUP or `POST /reload`.
    #[arg(long, env = "XRAY_HOST_NO_WATCH")]
    pub no_watch: bool,

    /// How often a component named by an s3:// URI is checked for a new version (its ETag).
    #[arg(long, env = "XRAY_HOST_COMPONENT_POLL_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub component_poll_interval: Duration,

    /// Trace requests to AWS X-Ray (`on`) or not (`off`, e.g. to measure the cost of tracing).
    /// AWS_XRAY_SDK_ENABLED=false turns tracing off too, as in the X-Ray SDKs.
    #[arg(long, env = "XRAY_HOST_XRAY", default_value = "on", value_parser = ["on", "off"])]
    pub xray: String,

    /// Where traces go: a comma-separated list of `xray` (segments over UDP to the X-Ray
    /// daemon), `otlp` (OpenTelemetry spans over OTLP/HTTP, configured by the standard
    /// OTEL_EXPORTER_OTLP_* variables) and `none`. Centralized sampling rules are asked of the
    /// daemon only when `xray` is on; with `otlp` alone the local rules decide.
    #[arg(long, env = "OTEL_TRACES_EXPORTER", default_value = "xray", value_parser = ExporterChoice::parse)]
    pub traces_exporter: ExporterChoice,

    /// The full URL OTLP spans are posted to [default: OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces,
    /// else http://localhost:4318/v1/traces]. X-Ray's own endpoint is
    /// https://xray.<region>.amazonaws.com/v1/traces (with --otlp-sigv4).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// The OTLP encoding: http/protobuf or http/json [default: OTEL_EXPORTER_OTLP_PROTOCOL, else
    /// http/protobuf].
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        value_name = "PROTOCOL"
    )]
    pub otlp_protocol: Option<String>,

    /// Sign OTLP exports with SigV4 for service `xray`, with the AWS SDK's default credentials
    /// (the task role on ECS) and the endpoint's region (else AWS_REGION): what X-Ray's own
    /// OTLP endpoint requires.
    #[arg(long, env = "XRAY_HOST_OTLP_SIGV4")]
    pub otlp_sigv4: bool,

    /// The X-Ray daemon: host:port, or tcp:host:port udp:host:port. Segments go to the UDP
    /// address, sampling calls to the TCP one.
    #[arg(long, env = "AWS_XRAY_DAEMON_ADDRESS", default_value = DEFAULT_DAEMON_ADDRESS, value_parser = DaemonAddress::parse)]
    pub daemon_address: DaemonAddress,

    /// A local sampling rules file (version 1 or 2), used until the daemon provides centralized
    /// rules and whenever it cannot. [default: 1 request per second and 5 % of the rest]
    #[arg(long, env = "XRAY_HOST_SAMPLING_RULES", value_name = "FILE")]
    pub sampling_rules: Option<PathBuf>,

    /// Proxies in front of the service that append to X-Forwarded-For the address a request
    /// came from (the ALB is one): the segment's client is the entry the last of them appended,
    /// N from the right, else the connection's peer. 0 ignores the header, which the client
    /// writes itself. [default: 1 on ECS (ECS_CONTAINER_METADATA_URI_V4 set), else 0]
    #[arg(long, env = "XRAY_HOST_TRUSTED_PROXIES", value_name = "N")]
    pub trusted_proxies: Option<usize>,

    /// What an incoming X-Amzn-Trace-Id (and W3C traceparent) decides: `trust` continues the
    /// caller's trace, parent and sampling decision (a service its own application calls);
    /// `restart` starts a new trace whatever it says, sampled by the rules, and notes the ids it
    /// named in the segment's metadata (a service at the edge, which anyone can call). For
    /// `run`, a manifest entry's `incoming_trace_header` overrides it.
    #[arg(long, env = "XRAY_HOST_INCOMING_TRACE_HEADER", value_name = "trust|restart", default_value = "trust", value_parser = IncomingTraceHeader::parse)]
    pub incoming_trace_header: IncomingTraceHeader,

    /// Bytes of text and JSON a component may record in one request's trace (names,
    /// annotations, metadata, exceptions, span attributes); past it a tracing call gets
    /// `limit-exceeded` and the segment says it was truncated.
    #[arg(long, env = "XRAY_HOST_MAX_TRACE_BYTES", default_value_t = 256 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_trace_bytes: u32,

    /// Subsegments one request's trace may hold: the component's own, its wasi:otel spans and
    /// the host's records of its calls.
    #[arg(long, env = "XRAY_HOST_MAX_TRACE_SUBSEGMENTS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_trace_subsegments: u32,

    /// Distinct metadata entries (namespace and key) a component may record in one request.
    #[arg(long, env = "XRAY_HOST_MAX_TRACE_METADATA_ENTRIES", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_trace_metadata_entries: u32,

    /// Exceptions a component may record in one request.
    #[arg(long, env = "XRAY_HOST_MAX_TRACE_EXCEPTIONS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_trace_exceptions: u32,

    /// Stack frames of one exception a component records.
    #[arg(long, env = "XRAY_HOST_MAX_TRACE_STACK_FRAMES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_trace_stack_frames: u32,

    /// The DynamoDB table behind the components' table capability. Without one, an embedded
    /// store on disk stands in (--table-store).
    #[arg(long, env = "DYNAMO_DB_TABLE_NAME", value_name = "NAME")]
    pub dynamodb_table: Option<String>,

    /// A DynamoDB endpoint, for DynamoDB-compatible servers (moto, dynalite, DynamoDB Local).
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB", value_name = "URL")]
    pub dynamodb_endpoint: Option<String>,

    /// The embedded store's file, used when no DynamoDB table is configured and a component
    /// imports the table capability. A file serves one process at a time, so by default each
    /// `serve` process has its own, named after its service, and `run` one for all its services.
    /// [default: $XDG_DATA_HOME/xray-host/ (else $HOME/.local/share/xray-host/) + tables-<service>.redb
    /// for `serve` (e.g. tables-backend-1.redb for "Backend #1"), tables.redb for `run`]
    #[arg(long, env = "XRAY_HOST_TABLE_STORE", value_name = "FILE")]
    pub table_store: Option<PathBuf>,

    /// The table's key attributes (comma-separated in XRAY_HOST_TABLE_KEY): every put must
    /// have them, non-empty; the embedded store files items under them.
    #[arg(
        long,
        env = "XRAY_HOST_TABLE_KEY",
        value_delimiter = ',',
        default_value = "SubAppId"
    )]
    pub table_key: Vec<String>,
}

/// `--metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsExport {
    /// CloudWatch Embedded Metric Format lines on stdout.
    Emf,
    /// OTLP metrics posted to the OTLP/HTTP metrics endpoint.
    Otlp,
    /// No metrics written.
    None,
}

/// Where metrics go, from `--metrics` (`flag`), else OTEL_METRICS_EXPORTER (`variable`), else
/// EMF when the host runs on ECS.
fn metrics_export(
    flag: Option<MetricsExport>,
    variable: Option<&str>,
    on_ecs: bool,
) -> anyhow::Result<MetricsExport> {
    if let Some(choice) = flag {
        return Ok(choice);
    }
    match variable.map(str::trim) {
        None | Some("") => Ok(if on_ecs {
            MetricsExport::Emf
        } else {
            MetricsExport::None
        }),
        Some("otlp") => Ok(MetricsExport::Otlp),
        Some("none") => Ok(MetricsExport::None),
        Some(other) => anyhow::bail!(
            "OTEL_METRICS_EXPORTER={other:?}: this host exports metrics as `otlp` or not at all \
             (`none`); for CloudWatch Embedded Metric Format lines use --metrics emf"
        ),
    }
}

impl CommonArgs {
    /// Where metrics go: as `--metrics` says, else as OTEL_METRICS_EXPORTER says, else EMF on
    /// ECS only.
    pub fn metrics_export(&self) -> anyhow::Result<MetricsExport> {
        metrics_export(
            self.metrics,
            std::env::var("OTEL_METRICS_EXPORTER").ok().as_deref(),
            std::env::var_os(xray::ecs_metadata::METADATA_ENV).is_some_and(|v| !v.is_empty()),
        )
    }

    /// The OTLP metrics exporter's configuration: the OTEL_EXPORTER_OTLP_METRICS_* variables,
    /// else the general ones, signed with SigV4 when --otlp-sigv4 says so.
    pub fn metrics_otlp_config(&self) -> anyhow::Result<OtlpConfig> {
        OtlpConfig::from_env_for(
            otlp_export::config::Signal::Metrics,
            |name| std::env::var(name).ok(),
            self.otlp_sigv4,
        )
        .context("the OTLP metrics exporter's configuration")
    }

    /// The table settings; the embedded store is `default_store_file` in the data directory
    /// unless --table-store names another (see [`store_file_for_service`]).
    pub fn table_options(&self, default_store_file: &str) -> TableOptions {
        let store_path = self.table_store.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(std::env::temp_dir)
                .join("xray-host")
                .join(default_store_file)
        });
        TableOptions {
            dynamodb_table: self.dynamodb_table.clone().filter(|t| !t.is_empty()),
            dynamodb_endpoint: self.dynamodb_endpoint.clone().filter(|e| !e.is_empty()),
            store_path,
            embedded_table: "local".into(),
            key_attributes: self.table_key.clone(),
        }
    }

    /// The X-Ray settings, after the SDKs' environment variables.
    pub fn xray_options(&self) -> anyhow::Result<XrayOptions> {
        let local_rules = match &self.sampling_rules {
            Some(path) => LocalRules::load(path)?,
            None => LocalRules::builtin(),
        };
        let env = XrayEnv::from_process_env();
        for warning in &env.warnings {
            tracing::warn!("{warning}");
        }
        Ok(XrayOptions {
            enabled: self.xray == "on" && env.sdk_enabled,
            daemon: self.daemon_address.clone(),
            local_rules,
            centralized_sampling: self.traces_exporter.xray,
            udp_segments: self.traces_exporter.xray,
            recording_limits: self.recording_limits(),
        })
    }

    /// What a service believes of its requests' headers, as the flags say (a manifest entry may
    /// override each): `--trusted-proxies` defaults to 1 on ECS, where the host sits behind the
    /// ALB, and to 0 elsewhere.
    pub fn incoming(&self) -> IncomingPolicy {
        let on_ecs =
            std::env::var_os(xray::ecs_metadata::METADATA_ENV).is_some_and(|v| !v.is_empty());
        IncomingPolicy {
            trusted_proxies: self.trusted_proxies.unwrap_or(usize::from(on_ecs)),
            trace_header: self.incoming_trace_header,
        }
    }

    /// How much a component may record in one request's trace.
    pub fn recording_limits(&self) -> RecordingLimits {
        RecordingLimits {
            bytes: self.max_trace_bytes as usize,
            subsegments: self.max_trace_subsegments as usize,
            metadata_entries: self.max_trace_metadata_entries as usize,
            exceptions: self.max_trace_exceptions as usize,
            stack_frames: self.max_trace_stack_frames as usize,
        }
    }

    /// The OTLP exporter's configuration, when `--traces-exporter` names `otlp` and neither
    /// `--xray off` nor OTEL_SDK_DISABLED=true turns it off: the OTEL_* variables with these
    /// flags over them. Nothing is started here.
    pub fn otlp_config(&self) -> anyhow::Result<Option<OtlpConfig>> {
        if !self.traces_exporter.otlp || self.xray == "off" {
            return Ok(None);
        }
        if otlp_export::config::sdk_disabled(std::env::var("OTEL_SDK_DISABLED").ok().as_deref()) {
            tracing::info!("OTEL_SDK_DISABLED=true: OTLP export is off");
            return Ok(None);
        }
        // The command line wins over the variables it stands for.
        let overrides = [
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                self.otlp_endpoint.clone(),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                self.otlp_protocol.clone(),
            ),
        ];
        let lookup = |name: &str| {
            overrides
                .iter()
                .find(|(key, _)| *key == name)
                .and_then(|(_, value)| value.clone())
                .or_else(|| std::env::var(name).ok())
        };
        OtlpConfig::from_env(lookup, self.otlp_sigv4)
            .context("the OTLP exporter's configuration")
            .map(Some)
    }

    /// The per-request limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_request_body_bytes: self.max_body_bytes,
            max_header_bytes: self.max_header_bytes,
            max_memory_bytes: self.max_memory_mib.saturating_mul(1024 * 1024),
            request_timeout: self.request_timeout,
            max_concurrent_requests: self.max_concurrent_requests.max(1),
            guest_output_lines_per_second: self.guest_output_lines_per_second,
        }
    }

    /// Instance reuse, as the flags say (a manifest entry may override each).
    pub fn reuse(&self) -> InstanceReuse {
        InstanceReuse {
            max_reuse_count: self.max_instance_reuse_count,
            max_concurrent_reuse_count: self.max_instance_concurrent_reuse_count,
            idle_timeout: Some(self.idle_instance_timeout),
            warm_instances: self.warm_instances,
        }
    }

    /// Outgoing-call settings with the given allow-list.
    pub fn outbound(&self, allow_list: AllowList) -> OutboundConfig {
        OutboundConfig {
            allow_list,
            connect_timeout: self.outbound_connect_timeout,
            response_timeout: self.outbound_timeout,
            block_private_networks: self.block_private_networks,
            ..OutboundConfig::default()
        }
    }

    /// Connection settings.
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: self.header_read_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            response_write_timeout: self.response_write_timeout,
            shutdown_timeout: self.shutdown_timeout,
        }
    }

    /// The process's instance memory budget: the flag, else three quarters of the container's
    /// memory limit, else none.
    pub fn memory_budget(&self) -> Arc<MemoryBudget> {
        let limit = match self.instance_memory_budget_mib {
            Some(0) => None,
            Some(mib) => {
                Some(usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX))
            }
            None => container_memory_limit().map(default_budget),
        };
        match limit {
            Some(bytes) => {
                tracing::info!(
                    "component instances may hold {} MiB together (--instance-memory-budget-mib)",
                    bytes / (1024 * 1024)
                );
                MemoryBudget::new(bytes)
            }
            None => MemoryBudget::unlimited(),
        }
    }

    /// The compile cache directory, or `None` when caching is off.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_compile_cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        // Never the shared temporary directory itself, which any user may write: without a
        // home, a directory of the host's user in it (created 0700 by the cache, refused if
        // another user made it first).
        Some(
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .map(|base| base.join("xray-host"))
                .unwrap_or_else(xray_host_runtime::per_user_temp_dir),
        )
    }
}

impl ServeArgs {
    /// The one service this command serves.
    pub fn service_config(&self) -> anyhow::Result<ServiceConfig> {
        let name = XrayEnv::from_process_env()
            .tracing_name
            .unwrap_or_else(|| self.name.clone());
        let mut env = self.env.clone();
        for key in &self.pass_env {
            refuse_aws_pass_env(key)?;
            let value = std::env::var(key).with_context(|| {
                format!("--pass-env {key}: the host has no environment variable {key}")
            })?;
            env.push((key.clone(), value));
        }
        Ok(ServiceConfig {
            name: validate_service_name(&name)?,
            component: ComponentSource::parse(&self.component, std::path::Path::new(""))?,
            pin: match &self.component_sha256 {
                Some(text) => parse_component_pin(text)
                    .context("--component-sha256 (XRAY_HOST_COMPONENT_SHA256)")?,
                None => None,
            },
            listen: Some(self.listen),
            env,
            outbound: self
                .common
                .outbound(AllowList::parse(&self.allow_outbound)?),
            limits: self.common.limits(),
            reuse: self.common.reuse(),
            access_log: self.common.access_log,
            incoming: self.common.incoming(),
        })
    }
}

/// The prefixes of host variables `--pass-env` refuses: every `AWS_` variable (the task role's
/// credentials, or what leads to them: `AWS_CONTAINER_CREDENTIALS_*`,
/// `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, profiles and their files, the endpoints; a
/// list of the secret ones would miss the next the SDKs add), and the addresses of ECS's task
/// metadata endpoint and agent API.
const REFUSED_PASS_ENV_PREFIXES: [&str; 3] =
    ["AWS_", "ECS_CONTAINER_METADATA_URI", "ECS_AGENT_URI"];

/// Refuses `--pass-env name` when `name` is one of the host's AWS credentials or settings
/// ([`REFUSED_PASS_ENV_PREFIXES`], in any case): the component would hold the task role's
/// credentials, which the table capability exists to keep from it.
pub fn refuse_aws_pass_env(name: &str) -> anyhow::Result<()> {
    let upper = name.to_ascii_uppercase();
    if let Some(prefix) = REFUSED_PASS_ENV_PREFIXES
        .iter()
        .find(|prefix| upper.starts_with(*prefix))
    {
        anyhow::bail!(
            "--pass-env {name} is refused: the host's {prefix}* variables are its AWS \
             credentials and settings or lead to them, so a component given one would hold the \
             task role's credentials (or the means to fetch them). Components do not call AWS \
             themselves: the table capability signs DynamoDB calls with the host's credentials \
             without handing them over. Pass a setting that is not a secret with --env \
             NAME=VALUE"
        );
    }
    Ok(())
}

/// The store file `run` uses for all the services of its manifest.
pub const SHARED_STORE_FILE: &str = "tables.redb";

/// The default store file of a `serve` process: `tables-<service>.redb`, the service name in
/// lower case with every run of other characters than letters and digits made one `-`, so that
/// the services of an application run side by side on one machine ("Backend #1" ->
/// `tables-backend-1.redb`).
pub fn store_file_for_service(service: &str) -> String {
    let mut slug = String::new();
    for c in service.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        // A name of only other characters ("#1" is fine, "###" is not): still one file per name.
        let hash = xray_host_runtime::ContentHash::of(service.as_bytes());
        return format!("tables-{}.redb", hash.short());
    }
    format!("tables-{slug}.redb")
}

/// Checks a service name against X-Ray's segment name rules ([`xray::names`]: 1 to 200
/// characters of letters, numbers, white space and `_ . : / % & # = + \ - @`).
pub fn validate_service_name(name: &str) -> anyhow::Result<String> {
    if !xray::names::is_valid_name(name) {
        bail!(
            "the service name {name:?} is not a valid X-Ray segment name: use 1 to 200 letters, \
             numbers, spaces and _ . : / % & # = + \\ - @"
        );
    }
    Ok(name.to_string())
}

/// A `--component-sha256` value: a pin, or none for an empty value (a template that sets the
/// variable to "" when the service is not pinned).
pub fn parse_component_pin(text: &str) -> anyhow::Result<Option<ComponentPin>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    ComponentPin::parse(text).map(Some)
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(text: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = text
        .split_once('=')
        .with_context(|| format!("{text:?} is not KEY=VALUE"))?;
    if key.is_empty() || key.contains('\0') || value.contains('\0') {
        bail!("{text:?} is not KEY=VALUE with a non-empty KEY");
    }
    Ok((key.to_string(), value.to_string()))
}

/// Parses a duration: a number with `ms`, `s` or `m` (`250ms`, `30s`, `2m`, `1.5s`).
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => bail!("{text:?} has no unit: write for example 500ms, 30s or 2m"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 500ms, 30s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => bail!("{text:?} has an unknown unit: use ms, s or m"),
    };
    Duration::try_from_secs_f64(seconds).with_context(|| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_go_where_the_flag_then_the_variable_then_the_platform_says() {
        use MetricsExport::{Emf, Otlp};
        assert_eq!(metrics_export(Some(Emf), Some("otlp"), false).unwrap(), Emf);
        assert_eq!(metrics_export(None, Some("otlp"), true).unwrap(), Otlp);
        assert_eq!(
            metrics_export(None, Some("none"), true).unwrap(),
            MetricsExport::None
        );
        assert_eq!(metrics_export(None, None, true).unwrap(), Emf);
        assert_eq!(
            metrics_export(None, Some(""), false).unwrap(),
            MetricsExport::None
        );
        let error = metrics_export(None, Some("prometheus"), false).unwrap_err();
        assert!(error.to_string().contains("--metrics emf"), "{error}");
    }
    use clap::CommandFactory;

    #[test]
    fn each_service_has_its_own_default_store_file() {
        assert_eq!(store_file_for_service("BFF"), "tables-bff.redb");
        assert_eq!(
            store_file_for_service("Backend #1"),
            "tables-backend-1.redb"
        );
        assert_eq!(
            store_file_for_service("Backend #2"),
            "tables-backend-2.redb"
        );
        assert_eq!(store_file_for_service(" a..b/c "), "tables-a-b-c.redb");
        let odd = store_file_for_service("###");
        assert!(
            odd.starts_with("tables-") && odd.ends_with(".redb"),
            "{odd}"
        );
        assert_ne!(odd, store_file_for_service("%%%"));
        assert_ne!(odd, SHARED_STORE_FILE);
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_trace_budget_flags_default_to_the_librarys_budget_and_refuse_zero() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["xray-host", "serve", "--component", "c.wasm", "--name", "S"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let Command::Serve(serve) = parse(&[]).unwrap().command else {
            panic!("serve")
        };
        assert_eq!(serve.common.recording_limits(), RecordingLimits::default());
        assert!(parse(&["--max-trace-bytes", "0"]).is_err());
        let Command::Serve(serve) = parse(&["--max-trace-exceptions", "3"]).unwrap().command else {
            panic!("serve")
        };
        assert_eq!(serve.common.recording_limits().exceptions, 3);
    }

    #[test]
    fn the_incoming_header_flags_parse_and_default_to_trust() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["xray-host", "serve", "--component", "c.wasm", "--name", "S"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).map(|cli| cli.command) {
                Ok(Command::Serve(serve)) => Ok(serve.common),
                Ok(_) => panic!("serve"),
                Err(e) => Err(e),
            }
        };
        let common = parse(&[]).unwrap();
        assert_eq!(common.incoming_trace_header, IncomingTraceHeader::Trust);
        assert_eq!(common.trusted_proxies, None);
        let common = parse(&[
            "--incoming-trace-header",
            "restart",
            "--trusted-proxies",
            "2",
        ])
        .unwrap();
        assert_eq!(
            common.incoming(),
            IncomingPolicy {
                trusted_proxies: 2,
                trace_header: IncomingTraceHeader::Restart
            }
        );
        assert!(parse(&["--incoming-trace-header", "strip"]).is_err());
        assert!(parse(&["--trusted-proxies", "-1"]).is_err());
    }

    #[test]
    fn pass_env_refuses_the_hosts_aws_credentials_and_settings() {
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_PROFILE",
            "AWS_REGION",
            "aws_secret_access_key",
            "ECS_CONTAINER_METADATA_URI",
            "ECS_CONTAINER_METADATA_URI_V4",
            "ECS_AGENT_URI",
        ] {
            let message = format!("{:#}", refuse_aws_pass_env(name).unwrap_err());
            assert!(
                message.contains(&format!("--pass-env {name} is refused")),
                "{message}"
            );
            assert!(message.contains("task role's credentials"), "{message}");
            assert!(message.contains("the table capability signs"), "{message}");
        }
        for name in ["BACKEND_1_URL", "UTC_OFFSET", "MY_AWS_THING", "ECS_CLUSTER"] {
            refuse_aws_pass_env(name).unwrap();
        }
        // Checked before the variable is read: refused whether the host has it or not.
        let Command::Serve(serve) = Cli::try_parse_from([
            "xray-host",
            "serve",
            "--component",
            "c.wasm",
            "--name",
            "S",
            "--pass-env",
            "AWS_XRAY_HOST_TEST_NOT_SET",
        ])
        .unwrap()
        .command
        else {
            panic!("serve")
        };
        let message = format!("{:#}", serve.service_config().unwrap_err());
        assert!(message.contains("is refused"), "{message}");
    }

    #[test]
    fn an_empty_component_pin_is_no_pin() {
        assert_eq!(parse_component_pin("").unwrap(), None);
        assert_eq!(parse_component_pin("  ").unwrap(), None);
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            parse_component_pin(hex).unwrap().map(|p| p.to_string()),
            Some(hex.to_string())
        );
        assert!(parse_component_pin("nope").is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["30", "s", "5h", "-1s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_key_value("URL=http://a/?x=1").unwrap(),
            ("URL".into(), "http://a/?x=1".into())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=v").is_err());
    }

    #[test]
    fn service_names_follow_segment_name_rules() {
        assert!(validate_service_name("Backend #1").is_ok());
        assert!(validate_service_name("BFF").is_ok());
        assert!(validate_service_name("").is_err());
        assert!(validate_service_name("a;b").is_err());
    }
}
