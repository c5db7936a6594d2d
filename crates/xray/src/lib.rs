//! AWS X-Ray, as a library: the protocol and the recorder that the host builds on, with no
//! WebAssembly runtime and no HTTP server in it.
//!
//! - [`trace_header`]: the `X-Amzn-Trace-Id` header, parsed leniently and serialized.
//! - [`traceparent`]: W3C Trace Context's `traceparent`, and its ids as X-Ray's.
//! - [`ids`]: [`TraceId`](ids::TraceId) and [`SegmentId`](ids::SegmentId), from the operating
//!   system's CSPRNG, with their W3C (OpenTelemetry) forms.
//! - `random` (private): the OS generator read through a per-thread buffer (ids), and a
//!   per-thread fast generator (sampling draws): no system call and no lock per request.
//! - [`loopback`]: whether a request is addressed to this machine's loopback (the local
//!   endpoints' check against DNS rebinding).
//! - [`names`]: X-Ray's rules for segment names and annotation keys, checked and made valid.
//! - [`document`]: the segment document, typed.
//! - [`forwarded_for`]: which `X-Forwarded-For` entry names the client, behind how many
//!   trusted proxies.
//! - [`request_trace`]: what one request records (segment, manual and call subsegments,
//!   annotations, metadata, failures, and the component's wasi:otel spans in
//!   [`request_trace::guest_span`]), with X-Ray's rules enforced as it is added.
//! - [`otel`]: OpenTelemetry spans, typed, and the one mapping between them and X-Ray's
//!   documents, both directions (the rule table is there).
//! - [`active_trace`]: the one owner of a request's trace while it runs: the operations the
//!   request's capabilities may perform on it, and the finished response's guard.
//! - [`segment`]: a finished trace as documents, split to fit a datagram.
//! - [`sampling`]: centralized rules through the daemon, local rules, the built-in default, and
//!   the sampling API's wire shapes.
//! - [`export`]: the seam between the recorder and its outputs ([`export::TraceExporter`]).
//! - [`emitter`]: UDP to the daemon, never blocking a request (the `xray` exporter).
//! - [`daemon_address`]: where the daemon is (`AWS_XRAY_DAEMON_ADDRESS`).
//! - [`sdk_env`]: the X-Ray SDKs' other environment variables, with their meaning.
//! - [`ecs_metadata`]: `origin` and `aws.ecs` from the ECS task metadata endpoint.
//! - [`recorder`]: the per-process recorder tying them together.
//! - `incoming` (private): what a request's trace headers say under the service's policy, and
//!   the headers kept as sent for a request nothing records.

pub mod active_trace;
pub mod daemon_address;
pub mod document;
pub mod ecs_metadata;
pub mod emitter;
pub mod export;
pub mod forwarded_for;
pub mod ids;
mod incoming;
pub mod loopback;
pub mod names;
pub mod otel;
mod random;
pub mod recorder;
pub mod request_trace;
pub mod sampling;
pub mod sdk_env;
pub mod segment;
pub mod trace_header;
pub mod traceparent;
mod udp_batch;
