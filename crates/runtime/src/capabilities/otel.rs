//! `wasi:otel@0.2.0-rc.2` (the version spin-sdk 7 bundles): a component instrumented with an
//! OpenTelemetry SDK through wasi:otel, as Spin serves it with `--experimental-wasi-otel`,
//! reports its spans into the request's trace.
//!
//! - `tracing`: every span becomes a subsegment of the request's trace (the mapping is in
//!   [`xray::request_trace::guest_span`]); `outer-span-context` is the request's segment, so the component's
//!   root spans are its children.
//! - `logs`: each record is written to the host's log as the component's stdout lines are:
//!   with the service, the component version and the request's trace id, through the same
//!   per-service rate limit.
//! - `metrics`: sums, gauges and explicit-bucket histograms are kept per component version in
//!   a bounded store ([`crate::guest_metrics`]) that the EMF and OTLP reporters write with the
//!   service's dimensions; what breaks a bound (too many series, an exponential histogram) is
//!   refused with an error the component sees, and counted.
//!
//! One instance serves several requests at once (WASI 0.3), so every call finds the request it
//! belongs to from the calling task, as the tracing interface's `current-segment` does
//! ([`crate::task_traces`]). A span the request's trace does not accept (another trace, a
//! reused or malformed id, the end of a span never started) is recorded nowhere and logged once
//! per request: the component's mistake never fails the request, and it cannot reach another
//! request's trace.

use crate::guest_metrics::{ExportedPoint, ExportedValue};
use crate::host_state::HostState;
use crate::task_traces::calling_request;
use wasmtime::component::{Access, HasSelf, Linker};
use xray::active_trace::{ActiveTrace, SpanRefused};
use xray::otel::{SpanKind, Status};
use xray::request_trace::guest_span::{FinishedSpan, SpanEvent};
use xray::request_trace::now;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "wasi:otel/imports",
        // HostState is Send; said here because the world's generated add_to_linker (unused:
        // see `add_to_linker` below) passes the store to wasmtime-wasi's, which needs it.
        require_store_data_send: true,
        // Every call belongs to the request of the calling task, which only the store knows.
        imports: {
            "wasi:otel/tracing.on-start": store,
            "wasi:otel/tracing.on-end": store,
            "wasi:otel/tracing.outer-span-context": store,
            "wasi:otel/logs.on-emit": store,
        },
        // The clock types (and the poll they use) are WASI's own, served by wasmtime-wasi.
        with: {
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
        },
    });
}

use bindings::wasi::otel::{logs, metrics, tracing as wit, types};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;

/// W3C `tracestate` allows at most this many entries.
const MAX_TRACE_STATE_ENTRIES: usize = 32;
/// Longest log body written to the host's log, in characters.
const MAX_LOG_BODY: usize = 4096;

/// Adds `wasi:otel`'s `types`, `tracing`, `logs` and `metrics` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    // Interface by interface: the world's own function would add wasi:clocks too, which the
    // WASI linker already serves.
    types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    logs::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    metrics::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}

/// The trace of the request making the current call, or `None` when the call belongs to no
/// request the instance is serving (it then records nothing).
fn calling_trace(access: &mut Access<'_, HostState, HasSelf<HostState>>) -> Option<ActiveTrace> {
    let task = calling_request(&mut *access)?;
    access.get().traces.get(task).cloned()
}

/// Records a span call into the caller's trace; a refusal is logged the first time in the
/// request.
fn record(
    access: &mut Access<'_, HostState, HasSelf<HostState>>,
    call: &str,
    f: impl FnOnce(&ActiveTrace) -> Result<(), SpanRefused>,
) {
    let Some(trace) = calling_trace(access) else {
        return;
    };
    if let Err(refused) = f(&trace)
        && refused.first_in_request
        && access.get().output.service().warnings().allow()
    {
        tracing::warn!(
            trace_id = %trace.trace_id(),
            "wasi:otel {call}: {}; the span is not recorded (further refusals in this request are not logged)",
            refused.reason
        );
    }
}

impl types::Host for HostState {}

impl wit::Host for HostState {}

impl wit::HostWithStore<HostState> for HasSelf<HostState> {
    fn on_start(mut access: Access<'_, HostState, Self>, context: wit::SpanContext) {
        record(&mut access, "on-start", |t| {
            t.start_guest_span(&context.trace_id, &context.span_id, now())
        });
    }

    fn on_end(mut access: Access<'_, HostState, Self>, span: wit::SpanData) {
        record(&mut access, "on-end", |t| t.end_guest_span(finished(span)));
    }

    fn outer_span_context(mut access: Access<'_, HostState, Self>) -> wit::SpanContext {
        let trace = calling_trace(&mut access).unwrap_or_else(ActiveTrace::detached);
        let context = trace.span_context();
        wit::SpanContext {
            trace_id: context.trace_id,
            span_id: context.span_id,
            trace_flags: if context.sampled {
                wit::TraceFlags::SAMPLED
            } else {
                wit::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: trace_state_entries(context.trace_state.as_deref().unwrap_or("")),
        }
    }
}

impl logs::Host for HostState {}

impl logs::HostWithStore<HostState> for HasSelf<HostState> {
    fn on_emit(mut access: Access<'_, HostState, Self>, record: logs::LogRecord) {
        // Bounded like the component's stdout: past the service's rate, dropped and counted.
        if !access.get().output.service().lines().allow() {
            return;
        }
        let trace_id = calling_trace(&mut access).map(|trace| trace.trace_id());
        let output = &access.get().output;
        let (service, version) = (
            output.service().name().to_string(),
            output.version().to_string(),
        );
        let trace_id = trace_id.as_ref().map_or("", |id| id.as_str());
        let body = record.body.as_deref().map(log_text).unwrap_or_default();
        let severity = record.severity_text.as_deref().unwrap_or("");
        let span_id = record.span_id.as_deref().unwrap_or("");
        // Debug formatting escapes line breaks, so a component cannot forge log lines.
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    target: "component",
                    service = %service,
                    version = %version,
                    trace_id,
                    span_id = ?span_id,
                    severity = ?severity,
                    "{body:?}"
                )
            };
        }
        // OpenTelemetry's severity numbers: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN,
        // 17-24 ERROR and FATAL.
        match record.severity_number.unwrap_or(9) {
            0..=8 => emit!(debug),
            9..=12 => emit!(info),
            13..=16 => emit!(warn),
            _ => emit!(error),
        }
    }
}

impl metrics::Host for HostState {
    fn export(&mut self, exported: metrics::ResourceMetrics) -> Result<(), metrics::Error> {
        let Some(store) = self.guest_metrics.clone() else {
            return Err("this instance keeps no metrics (it is not served)".into());
        };
        store.record(&mut self.guest_metric_reports, exported_points(exported))
    }
}

/// The points of an export, one per data point, in the store's terms.
fn exported_points(exported: metrics::ResourceMetrics) -> Vec<ExportedPoint> {
    use metrics::MetricData as D;
    let mut points = Vec::new();
    for metric in exported.scope_metrics.into_iter().flat_map(|s| s.metrics) {
        let point = |attributes: Vec<types::KeyValue>, value| ExportedPoint {
            name: metric.name.clone(),
            description: metric.description.clone(),
            unit: metric.unit.clone(),
            attributes: attribute_texts(attributes),
            value,
        };
        match metric.data {
            D::F64Sum(sum) | D::U64Sum(sum) | D::S64Sum(sum) => {
                let cumulative = cumulative(sum.temporality);
                for p in sum.data_points {
                    points.push(point(
                        p.attributes,
                        ExportedValue::Sum {
                            monotonic: sum.is_monotonic,
                            cumulative,
                            value: number(p.value),
                        },
                    ));
                }
            }
            D::F64Gauge(gauge) | D::U64Gauge(gauge) | D::S64Gauge(gauge) => {
                for p in gauge.data_points {
                    points.push(point(p.attributes, ExportedValue::Gauge(number(p.value))));
                }
            }
            D::F64Histogram(histogram)
            | D::U64Histogram(histogram)
            | D::S64Histogram(histogram) => {
                let cumulative = cumulative(histogram.temporality);
                for p in histogram.data_points {
                    points.push(point(
                        p.attributes,
                        ExportedValue::Histogram {
                            cumulative,
                            bounds: p.bounds,
                            counts: p.bucket_counts,
                            sum: number(p.sum),
                            max: p.max.map(number),
                        },
                    ));
                }
            }
            D::F64ExponentialHistogram(histogram)
            | D::U64ExponentialHistogram(histogram)
            | D::S64ExponentialHistogram(histogram) => {
                for p in histogram.data_points {
                    points.push(point(
                        p.attributes,
                        ExportedValue::Unsupported(
                            "exponential histograms are not kept; use explicit buckets",
                        ),
                    ));
                }
            }
        }
    }
    points
}

/// Attributes with their JSON-encoded values decoded: a string as its text, anything else as
/// its JSON (the dimension's value).
fn attribute_texts(attributes: Vec<types::KeyValue>) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .map(|kv| {
            let text = match serde_json::from_str::<serde_json::Value>(&kv.value) {
                Ok(serde_json::Value::String(text)) => text,
                _ => kv.value,
            };
            (kv.key, text)
        })
        .collect()
}

fn cumulative(temporality: metrics::Temporality) -> bool {
    // Low-memory is delta for sums and histograms of synchronous instruments.
    matches!(temporality, metrics::Temporality::Cumulative)
}

fn number(value: metrics::MetricNumber) -> f64 {
    match value {
        metrics::MetricNumber::F64(x) => x,
        metrics::MetricNumber::S64(n) => n as f64,
        metrics::MetricNumber::U64(n) => n as f64,
    }
}

/// A log body (a JSON-encoded value) as text: a string as it is, anything else as its JSON,
/// cut to [`MAX_LOG_BODY`] characters.
fn log_text(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(text)) => text,
        _ => body.to_string(),
    };
    text.chars().take(MAX_LOG_BODY).collect()
}

fn finished(span: wit::SpanData) -> FinishedSpan {
    FinishedSpan {
        trace_id: span.span_context.trace_id,
        span_id: span.span_context.span_id,
        parent_span_id: span.parent_span_id,
        kind: match span.span_kind {
            wit::SpanKind::Client => SpanKind::Client,
            wit::SpanKind::Server => SpanKind::Server,
            wit::SpanKind::Producer => SpanKind::Producer,
            wit::SpanKind::Consumer => SpanKind::Consumer,
            wit::SpanKind::Internal => SpanKind::Internal,
        },
        name: span.name,
        start_time: seconds(span.start_time),
        end_time: seconds(span.end_time),
        attributes: pairs(span.attributes),
        events: span
            .events
            .into_iter()
            .map(|event| SpanEvent {
                name: event.name,
                attributes: pairs(event.attributes),
            })
            .collect(),
        status: match span.status {
            wit::Status::Unset => Status::Unset,
            wit::Status::Ok => Status::Ok,
            wit::Status::Error(description) => Status::Error(description),
        },
    }
}

fn pairs(attributes: Vec<types::KeyValue>) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

fn seconds(time: Datetime) -> f64 {
    time.seconds as f64 + f64::from(time.nanoseconds) / 1e9
}

/// The entries of a W3C `tracestate` value, in order; malformed members are skipped.
fn trace_state_entries(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|member| {
            let (key, value) = member.trim().split_once('=')?;
            (!key.is_empty() && !value.is_empty()).then(|| (key.to_string(), value.to_string()))
        })
        .take(MAX_TRACE_STATE_ENTRIES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_state_members_become_entries_in_order() {
        assert_eq!(
            trace_state_entries("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,bad,=x"),
            vec![
                ("rojo".to_string(), "00f067aa0ba902b7".to_string()),
                ("congo".to_string(), "t61rcWkgMzE".to_string()),
            ]
        );
        assert!(trace_state_entries("").is_empty());
    }

    #[test]
    fn log_bodies_are_decoded_and_bounded() {
        assert_eq!(log_text(r#""hello\nworld""#), "hello\nworld");
        assert_eq!(log_text(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(log_text(&"x".repeat(10_000)).len(), MAX_LOG_BODY);
    }

    #[test]
    fn datetimes_are_epoch_seconds() {
        let time = Datetime {
            seconds: 1_700_000_000,
            nanoseconds: 250_000_000,
        };
        assert_eq!(seconds(time), 1_700_000_000.25);
    }
}
