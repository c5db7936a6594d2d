//! The library of `xray-host`, a wasmtime host that serves WASI HTTP components and traces every
//! request to AWS X-Ray. It has no command line: the `xray-host` binary (`host/`) parses flags
//! and manifests into the configuration types here.
//!
//! X-Ray itself (the protocol and the recorder) is the `xray` crate; the local daemon stand-in
//! (the `xray-local` crate) and the local frontend are composed by the binary, as listener
//! sites, and this library does not depend on them. This library runs components and gives them their
//! capabilities, and records into a request's trace only through `xray::active_trace`.
//!
//! The crate root re-exports the API the binary uses (below); the modules are private, laid
//! out one concern each:
//!
//! - [`host`]: the host as a whole: start-up order, serving, shutdown (a builder every entry
//!   point uses).
//! - [`runtime`]: the wasmtime engine, the pooling allocator, epoch ticks and the linker.
//! - [`compile_cache`]: compiled components on disk, keyed by content and engine.
//! - [`service`]: one loaded component with its configuration, ready to serve requests.
//! - [`component_source`], [`s3_source`] and [`swap`]: where components come from, and
//!   replacing them while the host serves; [`component_pin`]: running only the pinned bytes.
//! - [`admin`]: the loopback-only admin endpoint (reload, versions).
//! - [`invoke`]: running one request, and what a failure answers.
//! - [`instance_pool`]: the instances of a served component: reuse, deadlines, failures.
//! - [`warm_instances`]: instances made ahead of requests, refilled in the background.
//! - [`host_state`]: the per-instance store data every host capability reads.
//! - [`guest_output`]: a component's stdout and stderr as escaped, rate-limited log lines, and
//!   the rate limit on the host's per-call warnings.
//! - [`task_traces`]: which request a capability call belongs to, with several in flight.
//! - [`limits`]: the limits every request runs under.
//! - [`memory_budget`]: the memory all instances of the process may hold together.
//! - [`request_body`]: the size-limited request body.
//! - [`outbound`], [`p3_client`] and [`allow_list`]: outgoing HTTP from components.
//! - [`local_calls`]: calls between the services of one process, without a connection.
//! - [`keep_alive`]: the header read and keep-alive timeouts of a connection.
//! - [`server`]: listeners, the [`server::SiteHandler`] seam for what else a listener serves,
//!   concurrency caps and graceful shutdown.
//! - [`capabilities`]: the host side of the WIT interfaces in `wit/`.
//! - [`table`]: the service's table (DynamoDB, or the embedded store).
//! - [`error_response`]: the JSON error bodies the host answers with.

mod admin;
mod allow_list;
mod capabilities;
mod compile_cache;
mod component_pin;
mod component_source;
mod emf;
mod error_response;
mod export_metrics;
mod guest_metrics;
mod guest_output;
mod host;
mod host_state;
mod instance_pool;
mod invoke;
mod keep_alive;
mod lazy_timer;
mod limits;
mod local_calls;
mod memory_budget;
pub mod metric_sources;
pub mod metrics;
mod network_policy;
mod outbound;
mod p3_client;
mod pool_metrics;
mod request_body;
mod runtime;
mod s3_source;
mod server;
mod service;
mod stdio_attribution;
mod swap;
mod table;
mod task_traces;
mod warm_instances;

// The API the binary, the benchmarks and the fuzz targets use; everything else stays inside.
pub use admin::Admin;
pub use allow_list::AllowList;
pub use compile_cache::{ContentHash, per_user_temp_dir};
pub use component_pin::ComponentPin;
pub use component_source::ComponentSource;
pub use emf::{EmfReporter, LineSink};
pub use error_response::{ResponseBody, full_body, json_error};
pub use export_metrics::{ExporterMetrics, read as read_export_counters, register_trace_exporters};
pub use host::{Host, HostBuilder};
pub use instance_pool::InstanceReuse;
pub use invoke::invoke;
pub use limits::Limits;
pub use memory_budget::{MemoryBudget, container_memory_limit, default_budget};
pub use network_policy::HostEndpoint;
pub use outbound::OutboundConfig;
pub use server::{Backend, HandlerFuture, ServerOptions, Site, SiteHandler, serve};
pub use service::{Service, ServiceConfig};
pub use swap::ReloadOutcome;
pub use table::{Table, TableOptions};

/// The parsers of outside input that the fuzz targets (`crates/fuzzing`) reach directly.
pub mod parsers {
    pub use crate::capabilities::table::{WitItem, WitValue, item_from_wit, item_to_wit};
    pub use crate::guest_metrics::{
        ExportedPoint, ExportedValue, GuestMetrics, InstanceReports, MAX_SERIES,
    };
    pub use crate::memory_budget::parse_cgroup_memory_limit;
    pub use crate::network_policy::{
        AddressPolicy, HostEndpoint, Refusal, TargetHost, canonical, embedded_ipv4, judged,
    };
    pub use crate::table::item::{from_json, to_json, validate};
}
