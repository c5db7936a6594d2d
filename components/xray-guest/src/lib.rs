//! Guest-side helpers for components served by `xray-host`.
//!
//! - [`tracing`]: the host's X-Ray tracing interface (`xray-host:platform/tracing`) with an RAII
//!   [`tracing::Subsegment`] that ends itself when dropped.
//! - [`clock`]: wall-clock formatting with a fixed UTC offset, as the reference backends answer.
//! - [`table`]: the service's table (`xray-host:platform/table`) with nested values.
//! - [`routes`]: the small routing and JSON conventions every reference service follows
//!   (`/health`, 404 and 405 as JSON).
//!
//! It is independent of the HTTP SDK a component uses.

pub mod clock;
pub mod routes;
pub mod table;
pub mod tracing;

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "service",
    });
}
