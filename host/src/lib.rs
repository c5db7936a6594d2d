//! `xray-host`: a wasmtime host that serves WASI HTTP components and traces every request to
//! AWS X-Ray.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; the modules are laid out one
//! concern each:
//!
//! - [`cli`]: the command line and its environment-variable fallbacks.
//! - [`manifest`]: the file that describes several services in one process (the local run).
//! - [`runtime`]: the wasmtime engine, the pooling allocator, epoch ticks and the linker.
//! - [`compile_cache`]: compiled components on disk, keyed by content and engine.
//! - [`service`]: one loaded component with its configuration, ready to serve requests.
//! - [`component_source`], [`s3_source`] and [`swap`]: where components come from, and
//!   replacing them while the host serves.
//! - [`admin`]: the loopback-only admin endpoint (reload, versions).
//! - [`invoke`]: running one request in a fresh instance, and what a failure answers.
//! - [`host_state`]: the per-request store data every host capability reads.
//! - [`limits`]: the limits every request runs under.
//! - [`request_body`]: the size-limited request body.
//! - [`outbound`] and [`allow_list`]: outgoing HTTP from components.
//! - [`keep_alive`]: the header read and keep-alive timeouts of a connection.
//! - [`check`]: `xray-host check`, whether a component can be served, before it is deployed.
//! - [`server`]: listeners, routing, concurrency caps and graceful shutdown.
//! - [`static_files`]: the frontend's files, for the local run.
//! - [`capabilities`]: the host side of the WIT interfaces in `wit/`.
//! - [`table`]: the service's table (DynamoDB, or the embedded store).
//! - [`xray`]: X-Ray, built into the host.
//! - [`local`]: the local X-Ray daemon stand-in, X-Ray API and trace console.
//! - [`error_response`]: the JSON error bodies the host answers with.
//! - [`fuzzing`]: entry points for fuzzing every parser of outside input.

pub mod admin;
pub mod allow_list;
pub mod capabilities;
pub mod check;
pub mod cli;
pub mod compile_cache;
pub mod component_source;
pub mod error_response;
pub mod fuzzing;
pub mod host_state;
pub mod invoke;
pub mod keep_alive;
pub mod limits;
pub mod local;
pub mod manifest;
pub mod network_policy;
pub mod outbound;
pub mod request_body;
pub mod runtime;
pub mod s3_source;
pub mod server;
pub mod service;
pub mod static_files;
pub mod swap;
pub mod table;
pub mod xray;
