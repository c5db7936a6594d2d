//! The typed side of the deployment scripts (`scripts/install.sh` and its siblings), which keep
//! only the orchestration in bash:
//!
//! - [`settings`]: the deployment settings (`envs/default.conf` as bash sourced it) checked,
//!   with every default filled in, printed as shell assignments.
//! - [`context`]: the files of a docker build context as docker sees them (its `.dockerignore`
//!   applied), and a short hash of them that names the image built from it.

pub mod context;
pub mod settings;
