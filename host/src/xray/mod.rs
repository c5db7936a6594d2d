//! AWS X-Ray, built into the host: what the X-Ray SDK middleware, `patch_all()` and hand-made
//! segments did in each service of the original, done for every component.
//!
//! - [`trace_header`]: the `X-Amzn-Trace-Id` header, parsed leniently and serialized.
//! - [`ids`]: trace and segment ids from the operating system's CSPRNG.
//! - [`request_trace`]: what one request records (segment, manual and call subsegments,
//!   annotations, metadata, failures), with X-Ray's rules enforced as it is added.
//! - [`sampling`]: centralized rules through the daemon, local rules, the built-in default.
//! - [`segment`]: segment documents, split to fit a datagram.
//! - [`emitter`]: UDP to the daemon, never blocking a request.
//! - [`daemon_address`]: where the daemon is (`AWS_XRAY_DAEMON_ADDRESS`).
//! - [`ecs_metadata`]: `origin` and `aws.ecs` from the ECS task metadata endpoint.
//! - [`recorder`]: the per-process recorder tying them together.

pub mod daemon_address;
pub mod ecs_metadata;
pub mod emitter;
pub mod ids;
pub mod recorder;
pub mod request_trace;
pub mod sampling;
pub mod segment;
pub mod trace_header;
