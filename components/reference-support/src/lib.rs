//! What the services of the reference application share, beyond the platform SDK
//! (`xray-platform`):
//!
//! - [`routes`]: the small routing and JSON conventions every reference service follows
//!   (`/health`, 404 and 405 as JSON).
//! - [`clock`]: wall-clock formatting with a fixed UTC offset, as the reference backends answer.
//! - [`last_access`]: the "last accessed" item both backends write, as the original did.

pub mod clock;
pub mod last_access;
pub mod routes;
