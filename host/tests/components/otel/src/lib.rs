//! A WASI 0.3 component (spin-sdk 7) instrumented the way a Spin user instruments one: the
//! OpenTelemetry SDK, with a span processor that hands every span to `wasi:otel/tracing` and the
//! host's `outer-span-context` as the parent of the component's spans.
//!
//! - `GET /spans?id=ID&ms=N`: a span `handle-ID` (annotation `app.request_id` = ID listed in
//!   `aws.xray.annotations`, metadata `app.detail`), and under it, after `N` ms (so that requests
//!   overlap in one instance), a span `load-ID` that fails (status ERROR and an `exception`
//!   event). Answers the outer span context, the two span ids and how many requests this
//!   instance has served (a global: shared under reuse) as JSON.
//! - `GET /foreign`: a span of a trace of its own (no parent), which the host must refuse.
//! - `GET /signals`: a log record through `wasi:otel/logs`, and through `wasi:otel/metrics` an
//!   export of a delta sum `app.orders` (2, attribute `app.kind` = `test`) and a delta
//!   histogram `app.latency` (ms, buckets up to 10 and 100: one value in each of the first two,
//!   sum 60); answers what the export returned.
//! - `GET /metrics-flood`: one export of 70 series of `app.visits`, each with its own
//!   `app.customer`: more series than the host keeps; answers what the export returned.
//!
//! Contexts are passed explicitly rather than through `Context::current()`: one instance runs
//! several requests at once, and the SDK's current context is per thread, not per request.

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span, SpanData, SpanProcessor};
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::wasip3::clocks::monotonic_clock;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[allow(missing_docs, clippy::all)]
mod wasi_otel {
    wit_bindgen::generate!({
        path: "../../../../wit",
        world: "wasi:otel/imports",
        generate_all,
    });
}

use wasi_otel::wasi::clocks::wall_clock::Datetime;
use wasi_otel::wasi::otel::{logs, metrics, tracing as wasi, types};

/// Requests this instance has served.
static SERVED: AtomicU64 = AtomicU64::new(0);

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    match request.uri().path() {
        "/spans" => {
            let id = param("id").unwrap_or_default();
            let ms = param("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
            (StatusCode::OK, spans(&id, ms, served).await)
        }
        "/foreign" => {
            let mut span = tracer().start_with_context("foreign", &Context::new());
            let trace_id = span.span_context().trace_id().to_string();
            span.end();
            (
                StatusCode::OK,
                serde_json::json!({ "trace_id": trace_id }).to_string(),
            )
        }
        "/signals" => (StatusCode::OK, signals()),
        "/metrics-flood" => (StatusCode::OK, metrics_flood()),
        _ => (StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
    }
}

async fn spans(id: &str, ms: u64, served: u64) -> String {
    let outer = wasi::outer_span_context();
    let tracer = tracer();
    let request_cx = Context::new().with_remote_span_context(from_wasi(&outer));
    let parent = tracer
        .span_builder(format!("handle-{id}"))
        .with_attributes([
            KeyValue::new("app.request_id", id.to_string()),
            KeyValue::new("app.detail", "parent span"),
            KeyValue::new(
                "aws.xray.annotations",
                Value::Array(Array::String(vec!["app.request_id".into()])),
            ),
        ])
        .start_with_context(&tracer, &request_cx);
    let parent_id = parent.span_context().span_id().to_string();
    let parent_cx = request_cx.with_span(parent);
    if ms > 0 {
        monotonic_clock::wait_for(ms * 1_000_000).await;
    }
    let mut child = tracer
        .span_builder(format!("load-{id}"))
        .with_kind(SpanKind::Client)
        .with_attributes([KeyValue::new("app.items", 3_i64)])
        .start_with_context(&tracer, &parent_cx);
    let child_id = child.span_context().span_id().to_string();
    child.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "LoadError"),
            KeyValue::new("exception.message", format!("could not load {id}")),
        ],
    );
    child.set_status(Status::error("load failed"));
    child.end();
    parent_cx.span().end();
    serde_json::json!({
        "id": id,
        "served": served,
        "outer": {
            "trace_id": outer.trace_id,
            "span_id": outer.span_id,
            "sampled": outer.trace_flags == wasi::TraceFlags::SAMPLED,
            "is_remote": outer.is_remote,
            "trace_state": outer.trace_state,
        },
        "parent": parent_id,
        "child": child_id,
    })
    .to_string()
}

fn signals() -> String {
    let now = datetime(SystemTime::now());
    logs::on_emit(&logs::LogRecord {
        timestamp: Some(now),
        observed_timestamp: None,
        severity_text: Some("WARN".into()),
        severity_number: Some(13),
        body: Some(r#""a log record from the component""#.into()),
        attributes: None,
        event_name: None,
        resource: None,
        instrumentation_scope: None,
        trace_id: None,
        span_id: None,
        trace_flags: None,
    });
    let orders = metrics::Metric {
        name: "app.orders".into(),
        description: "Orders taken".into(),
        unit: "{order}".into(),
        data: metrics::MetricData::U64Sum(metrics::Sum {
            data_points: vec![metrics::SumDataPoint {
                attributes: vec![types::KeyValue {
                    key: "app.kind".into(),
                    value: r#""test""#.into(),
                }],
                value: metrics::MetricNumber::U64(2),
                exemplars: Vec::new(),
            }],
            start_time: now,
            time: now,
            temporality: metrics::Temporality::Delta,
            is_monotonic: true,
        }),
    };
    let latency = metrics::Metric {
        name: "app.latency".into(),
        description: "Time to take an order".into(),
        unit: "ms".into(),
        data: metrics::MetricData::F64Histogram(metrics::Histogram {
            data_points: vec![metrics::HistogramDataPoint {
                attributes: Vec::new(),
                count: 2,
                bounds: vec![10.0, 100.0],
                bucket_counts: vec![1, 1, 0],
                min: Some(metrics::MetricNumber::F64(5.0)),
                max: Some(metrics::MetricNumber::F64(55.0)),
                sum: metrics::MetricNumber::F64(60.0),
                exemplars: Vec::new(),
            }],
            start_time: now,
            time: now,
            temporality: metrics::Temporality::Delta,
        }),
    };
    let exported = export(vec![orders, latency]);
    serde_json::json!({ "metrics_export": exported.err() }).to_string()
}

fn metrics_flood() -> String {
    let now = datetime(SystemTime::now());
    let visits = metrics::Metric {
        name: "app.visits".into(),
        description: String::new(),
        unit: "{visit}".into(),
        data: metrics::MetricData::U64Sum(metrics::Sum {
            data_points: (0..70)
                .map(|customer| metrics::SumDataPoint {
                    attributes: vec![types::KeyValue {
                        key: "app.customer".into(),
                        value: format!("\"{customer}\""),
                    }],
                    value: metrics::MetricNumber::U64(1),
                    exemplars: Vec::new(),
                })
                .collect(),
            start_time: now,
            time: now,
            temporality: metrics::Temporality::Delta,
            is_monotonic: true,
        }),
    };
    let exported = export(vec![visits]);
    serde_json::json!({ "metrics_export": exported.err() }).to_string()
}

/// Exports `metrics` in one scope, as an SDK's exporter would.
fn export(metrics: Vec<metrics::Metric>) -> Result<(), String> {
    metrics::export(&metrics::ResourceMetrics {
        resource: types::Resource {
            attributes: Vec::new(),
            schema_url: None,
        },
        scope_metrics: vec![metrics::ScopeMetrics {
            scope: types::InstrumentationScope {
                name: "otel-test".into(),
                version: None,
                schema_url: None,
                attributes: Vec::new(),
            },
            metrics,
        }],
    })
}

/// The component's tracer, over one provider for the instance's lifetime.
fn tracer() -> SdkTracer {
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            SdkTracerProvider::builder()
                .with_span_processor(WasiProcessor)
                .build()
        })
        .tracer("test-otel")
}

/// Hands spans to the host through `wasi:otel/tracing` as they start and end.
#[derive(Debug)]
struct WasiProcessor;

impl SpanProcessor for WasiProcessor {
    fn on_start(&self, span: &mut Span, _cx: &Context) {
        wasi::on_start(&to_wasi(span.span_context()));
    }

    fn on_end(&self, span: SpanData) {
        let parent = if span.parent_span_id == SpanId::INVALID {
            String::new()
        } else {
            span.parent_span_id.to_string()
        };
        let scope = &span.instrumentation_scope;
        wasi::on_end(&wasi::SpanData {
            span_context: to_wasi(&span.span_context),
            parent_span_id: parent,
            span_kind: match span.span_kind {
                SpanKind::Client => wasi::SpanKind::Client,
                SpanKind::Server => wasi::SpanKind::Server,
                SpanKind::Producer => wasi::SpanKind::Producer,
                SpanKind::Consumer => wasi::SpanKind::Consumer,
                SpanKind::Internal => wasi::SpanKind::Internal,
            },
            name: span.name.to_string(),
            start_time: datetime(span.start_time),
            end_time: datetime(span.end_time),
            attributes: attributes(&span.attributes),
            events: span
                .events
                .iter()
                .map(|event| wasi::Event {
                    name: event.name.to_string(),
                    time: datetime(event.timestamp),
                    attributes: attributes(&event.attributes),
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| wasi::Link {
                    span_context: to_wasi(&link.span_context),
                    attributes: attributes(&link.attributes),
                })
                .collect(),
            status: match &span.status {
                Status::Unset => wasi::Status::Unset,
                Status::Ok => wasi::Status::Ok,
                Status::Error { description } => wasi::Status::Error(description.to_string()),
            },
            instrumentation_scope: types::InstrumentationScope {
                name: scope.name().to_string(),
                version: scope.version().map(str::to_string),
                schema_url: scope.schema_url().map(str::to_string),
                attributes: attributes(&scope.attributes().cloned().collect::<Vec<_>>()),
            },
            dropped_attributes: span.dropped_attributes_count,
            dropped_events: span.events.dropped_count,
            dropped_links: span.links.dropped_count,
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn to_wasi(context: &SpanContext) -> wasi::SpanContext {
    wasi::SpanContext {
        trace_id: context.trace_id().to_string(),
        span_id: context.span_id().to_string(),
        trace_flags: if context.is_sampled() {
            wasi::TraceFlags::SAMPLED
        } else {
            wasi::TraceFlags::empty()
        },
        is_remote: context.is_remote(),
        trace_state: context
            .trace_state()
            .header()
            .split(',')
            .filter_map(|member| member.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    }
}

fn from_wasi(context: &wasi::SpanContext) -> SpanContext {
    SpanContext::new(
        TraceId::from_hex(&context.trace_id).unwrap_or(TraceId::INVALID),
        SpanId::from_hex(&context.span_id).unwrap_or(SpanId::INVALID),
        if context.trace_flags == wasi::TraceFlags::SAMPLED {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::from_key_value(
            context
                .trace_state
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .unwrap_or_default(),
    )
}

/// Attributes as wasi:otel carries them: values JSON-encoded.
fn attributes(attributes: &[KeyValue]) -> Vec<types::KeyValue> {
    attributes
        .iter()
        .map(|kv| types::KeyValue {
            key: kv.key.to_string(),
            value: json(&kv.value).to_string(),
        })
        .collect()
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::I64(n) => (*n).into(),
        Value::F64(n) => (*n).into(),
        Value::String(s) => s.as_str().into(),
        Value::Array(Array::Bool(v)) => v.clone().into(),
        Value::Array(Array::I64(v)) => v.clone().into(),
        Value::Array(Array::F64(v)) => v.clone().into(),
        Value::Array(Array::String(v)) => v.iter().map(|s| s.as_str()).collect::<Vec<_>>().into(),
        other => other.to_string().into(),
    }
}

fn datetime(time: SystemTime) -> Datetime {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    Datetime {
        seconds: since.as_secs(),
        nanoseconds: since.subsec_nanos(),
    }
}
