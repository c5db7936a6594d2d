//! OTLP/HTTP export of the host's traces, beside or instead of X-Ray's UDP segments, and of
//! its metrics.
//!
//! - [`config`]: the standard OpenTelemetry environment variables (`OTEL_TRACES_EXPORTER`,
//!   `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`).
//! - [`spans`]: a finished segment as OpenTelemetry spans (the mapping table is there).
//! - [`exporter`]: the batching, retrying exporter the recorder hands segments to.
//! - [`metrics`]: the host's metrics as an OTLP metrics request (cumulative sums, gauges,
//!   histograms), grouped by resource.
//! - [`metrics_exporter`]: the interval that reads and posts them, over the same transport.
//! - [`sigv4`]: signing for X-Ray's own OTLP endpoint with the AWS credential chain.

pub mod config;
pub mod exporter;
pub mod metrics;
pub mod metrics_exporter;
pub mod sigv4;
pub mod spans;

pub use config::{ExporterChoice, OtlpConfig};
pub use exporter::OtlpExporter;
pub use metrics_exporter::OtlpMetricsExporter;
