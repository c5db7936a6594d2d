//! What the host records for AWS X-Ray.
//!
//! - [`ids`]: trace and segment ids from the operating system's CSPRNG.
//! - [`request_trace`]: what one request records (the component's manual subsegments,
//!   annotations, metadata and failures), with X-Ray's rules for each enforced as it is added.

pub mod ids;
pub mod request_trace;
