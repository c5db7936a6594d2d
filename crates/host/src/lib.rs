//! The library of `xray-host`, a wasmtime host that serves WASI HTTP components and traces every
//! request to AWS X-Ray. It has no command line: the `xray-host` binary (`host/`) parses flags
//! and manifests into the configuration types here.
//!
//! X-Ray itself (the protocol and the recorder) is the `xray` crate; the local daemon stand-in
//! (the `xray-local` crate) and the local frontend are composed by the binary, as listener
//! sites, and this library does not depend on them. This library runs components and gives them their
//! capabilities, and records into a request's trace only through `xray::active_trace`.
//!
//! The modules are laid out one concern each:
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
//! - [`host_state`]: the per-instance store data every host capability reads.
//! - [`task_traces`]: which request a capability call belongs to, with several in flight.
//! - [`limits`]: the limits every request runs under.
//! - [`request_body`]: the size-limited request body.
//! - [`outbound`], [`p3_client`] and [`allow_list`]: outgoing HTTP from components.
//! - [`local_calls`]: calls between the services of one process, without a connection.
//! - [`keep_alive`]: the header read and keep-alive timeouts of a connection.
//! - [`server`]: listeners, the [`server::SiteHandler`] seam for what else a listener serves,
//!   concurrency caps and graceful shutdown.
//! - [`capabilities`]: the host side of the WIT interfaces in `wit/`.
//! - [`table`]: the service's table (DynamoDB, or the embedded store).
//! - [`error_response`]: the JSON error bodies the host answers with.

pub mod admin;
pub mod allow_list;
pub mod capabilities;
pub mod compile_cache;
pub mod component_pin;
pub mod component_source;
pub mod error_response;
pub mod host;
pub mod host_state;
pub mod instance_pool;
pub mod invoke;
pub mod keep_alive;
pub mod limits;
pub mod local_calls;
pub mod network_policy;
pub mod outbound;
pub mod p3_client;
pub mod request_body;
pub mod runtime;
pub mod s3_source;
pub mod server;
pub mod service;
pub mod swap;
pub mod table;
pub mod task_traces;
