//! The trace exporters' counters (items sent, dropped at a full queue, failed) as a
//! [`MetricSource`] per exporter, dimensioned by the exporter's kind (`xray`, `otlp`).

use crate::metric_sources::{self, MetricSource, Reading, Unit, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use xray::export::{ExportCounters, TraceExporter};
use xray::recorder::Tracer;

/// One exporter's counters, read for the reporters.
pub struct ExporterMetrics {
    kind: String,
    counters: Box<dyn Fn() -> [u64; 3] + Send + Sync>,
}

impl ExporterMetrics {
    /// The counters of an exporter of `kind` that `counters` reads (sent, dropped, failed).
    pub fn new(kind: &str, counters: impl Fn() -> [u64; 3] + Send + Sync + 'static) -> Self {
        ExporterMetrics {
            kind: kind.to_string(),
            counters: Box::new(counters),
        }
    }
}

/// Lists the counters of every exporter of `tracer` for the rest of the process.
pub fn register_trace_exporters(tracer: &Tracer) {
    for exporter in tracer.exporters() {
        let exporter: Arc<dyn TraceExporter> = exporter.clone();
        metric_sources::register_for_process(Arc::new(ExporterMetrics::new(
            exporter.name(),
            move || read(exporter.counters()),
        )));
    }
}

/// Sent, dropped and failed of `counters`.
pub fn read(counters: &ExportCounters) -> [u64; 3] {
    [
        counters.sent.load(Ordering::Relaxed),
        counters.dropped.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
    ]
}

impl MetricSource for ExporterMetrics {
    fn group(&self) -> &'static str {
        "Export"
    }

    fn dimensions(&self) -> Vec<(&'static str, String)> {
        vec![("Exporter", self.kind.clone())]
    }

    fn read(&self) -> Vec<Reading> {
        let [sent, dropped, failed] = (self.counters)();
        [
            ("ExportSent", "xray_host.export.sent", "Items sent", sent),
            (
                "ExportDropped",
                "xray_host.export.dropped",
                "Items dropped because the exporter's queue was full",
                dropped,
            ),
            (
                "ExportFailed",
                "xray_host.export.failed",
                "Items the destination refused or could not be reached for",
                failed,
            ),
        ]
        .into_iter()
        .map(|(name, otel_name, description, count)| Reading {
            name: name.into(),
            otel_name: otel_name.into(),
            description: description.into(),
            unit: Unit::Count("{item}"),
            attributes: Vec::new(),
            value: Value::Counter(count),
        })
        .collect()
    }
}
