//! The SDK for components served by `xray-host`: what a component may ask the host for beyond
//! WASI, over the bindings generated from the `xray-host:platform` WIT package.
//!
//! - [`tracing`]: the request's X-Ray segment and manual subsegments (an RAII
//!   [`tracing::Subsegment`] ends itself when dropped), annotations from plain Rust scalars,
//!   metadata, failures.
//! - [`table`]: the service's table with nested values: `async` calls for WASI 0.3 handlers
//!   (the `async` feature, on by default), [`table::blocking`] for WASI 0.2 ones.
//! - [`raw`]: the generated bindings, for callers that want every `Result` as the host returns it.
//!
//! With the `serde` feature, metadata can be any `Serialize` value and items can be read and
//! written as serde types. The crate is independent of the HTTP SDK a component uses.

pub mod table;
pub mod tracing;

/// The bindings generated from `wit/`, as they are.
///
/// With the `async` feature (on by default) `table` and `tracing` are the package's 0.3.0, whose
/// table calls are `async func`s; without it they are 0.2.0's, and the crate embeds nothing a
/// toolchain that predates the component model's async ABI cannot read (cargo-component 0.21
/// refuses 0.3.0's world). `table_v0_2` is 0.2.0's table either way.
pub mod raw {
    #[cfg(feature = "async")]
    #[allow(missing_docs, clippy::all)]
    mod generated {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "service",
        });
    }

    #[allow(missing_docs, clippy::all)]
    mod generated_v0_2 {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "xray-host:platform/service@0.2.0",
        });
    }

    #[cfg(feature = "async")]
    pub use generated::xray_host::platform0_3_0::{table, tracing};
    #[cfg(not(feature = "async"))]
    pub use generated_v0_2::xray_host::platform0_2_0::{table, tracing};

    /// `table` of the package's 0.2.0, whose calls are synchronous: the one a WASI 0.2 handler
    /// can call (see [`crate::table::blocking`]).
    pub use generated_v0_2::xray_host::platform0_2_0::table as table_v0_2;
}
