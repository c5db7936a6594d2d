//! The integration tests, in one binary: each module runs the real `xray-host` binary with
//! real components (built once per run, see `support::components`) and checks what a user or a
//! peer would see.
//!
//! `cargo test --release -p xray-host --test all` runs them; a module alone:
//! `cargo test --release -p xray-host --test all -- tracing::`.

mod support;

mod application;
mod architecture;
mod console;
mod daemon;
mod deployment;
mod ecs_metadata;
mod faults;
mod frontend;
mod hardening;
mod interop;
mod logs;
mod otlp_export;
mod otlp_ingest;
mod otlp_metrics;
mod polyglot;
mod polyglot_js;
mod reuse;
mod swap;
mod table;
mod trace_budget;
mod tracing;
mod warm_instances;
mod wasi_otel;
