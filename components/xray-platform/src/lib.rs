//! The SDK for components served by `xray-host`: what a component may ask the host for beyond
//! WASI, over the bindings generated from the `xray-host:platform` WIT package.
//!
//! - [`tracing`]: the request's X-Ray segment and manual subsegments (an RAII
//!   [`tracing::Subsegment`] ends itself when dropped), annotations from plain Rust scalars,
//!   metadata, failures.
//! - [`table`]: the service's table with nested values.
//! - [`raw`]: the generated bindings, for callers that want every `Result` as the host returns it.
//!
//! With the `serde` feature, metadata can be any `Serialize` value and items can be read and
//! written as serde types. The crate is independent of the HTTP SDK a component uses.

pub mod table;
pub mod tracing;

/// The bindings generated from `wit/`, as they are.
pub mod raw {
    #[allow(missing_docs, clippy::all)]
    mod generated {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "service",
        });
    }

    pub use generated::xray_host::platform::{table, tracing};
}
