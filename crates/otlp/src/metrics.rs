//! Metrics as an OTLP `ExportMetricsServiceRequest`: the host's readings, described in this
//! module's own types (the binary fills them from the runtime's counters), grouped by resource
//! (a service and version, or the process) and written with opentelemetry-proto's types.
//!
//! Every sum and histogram is cumulative (`AGGREGATION_TEMPORALITY_CUMULATIVE`), from when its
//! counter was registered: the counters are never reset, so the exporter keeps no state, and a
//! lost export loses nothing (the next one carries the totals).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::time::{SystemTime, UNIX_EPOCH};

/// The instrumentation scope of every metric the host writes.
pub const SCOPE_NAME: &str = "xray-host";

/// The metrics of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceReadings {
    /// `service.name`; `None` for the process's own metrics (then `OTEL_SERVICE_NAME`, or
    /// `xray-host`).
    pub service_name: Option<String>,
    /// `service.version`: the component version's short content hash.
    pub service_version: Option<String>,
    /// Its metrics. Two with the same name are one metric with their points together.
    pub metrics: Vec<MetricReading>,
}

/// One metric with its points.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReading {
    /// The OpenTelemetry name (`http.server.request.duration`).
    pub name: String,
    /// What it measures.
    pub description: String,
    /// Its UCUM unit (`s`, `{request}`).
    pub unit: String,
    /// How its points add up.
    pub kind: Kind,
    /// Its points, one per attribute set.
    pub points: Vec<Point>,
}

/// A metric's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A cumulative sum; `monotonic` for a count that only grows.
    Sum {
        /// Whether it only grows.
        monotonic: bool,
    },
    /// A value now.
    Gauge,
    /// A cumulative explicit-bucket histogram.
    Histogram,
}

/// One point of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Its attributes (strings; bounded by whoever made them).
    pub attributes: Vec<(String, String)>,
    /// The start of its cumulative values.
    pub start: SystemTime,
    /// When it was read.
    pub time: SystemTime,
    /// Its value.
    pub value: PointValue,
}

/// A point's value.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// A whole number (a count).
    Int(i64),
    /// A number.
    Double(f64),
    /// Histogram buckets: `counts` has one more entry than `bounds`.
    Histogram {
        /// Upper bounds (inclusive) of all buckets but the last.
        bounds: Vec<f64>,
        /// Values per bucket.
        counts: Vec<u64>,
        /// Sum of the values.
        sum: f64,
        /// The largest value, if known.
        max: Option<f64>,
    },
}

/// The request body's message for `readings`, each resource named as `resource_attributes`
/// (`OTEL_RESOURCE_ATTRIBUTES`) and `process_service_name` (`OTEL_SERVICE_NAME`) say.
pub fn export_request(
    readings: Vec<ResourceReadings>,
    process_service_name: Option<&str>,
    resource_attributes: &[(String, String)],
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: readings
            .into_iter()
            .filter(|resource| !resource.metrics.is_empty())
            .map(|resource| ResourceMetrics {
                resource: Some(resource_of(
                    &resource,
                    process_service_name,
                    resource_attributes,
                )),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    metrics: merge_by_name(resource.metrics)
                        .into_iter()
                        .map(proto_metric)
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn resource_of(
    resource: &ResourceReadings,
    process_service_name: Option<&str>,
    attributes: &[(String, String)],
) -> Resource {
    let service_name = resource
        .service_name
        .as_deref()
        .or(process_service_name)
        .unwrap_or(SCOPE_NAME);
    let mut pairs: Vec<(String, String)> = vec![("service.name".into(), service_name.into())];
    if let Some(version) = &resource.service_version {
        pairs.push(("service.version".into(), version.clone()));
    }
    pairs.push(("telemetry.sdk.name".into(), SCOPE_NAME.into()));
    pairs.push(("telemetry.sdk.language".into(), "rust".into()));
    // The variable's attributes add to these; a service's name and version stay its own.
    for (key, value) in attributes {
        if key == "service.name" || key == "service.version" {
            continue;
        }
        pairs.retain(|(k, _)| k != key);
        pairs.push((key.clone(), value.clone()));
    }
    Resource {
        attributes: pairs.iter().map(|(k, v)| text(k, v)).collect(),
        ..Default::default()
    }
}

/// One metric per name, its points together (a metric read from several sources, as the
/// retirements per cause are).
fn merge_by_name(metrics: Vec<MetricReading>) -> Vec<MetricReading> {
    let mut merged: Vec<MetricReading> = Vec::new();
    for metric in metrics {
        match merged
            .iter_mut()
            .find(|m| m.name == metric.name && m.kind == metric.kind)
        {
            Some(existing) => existing.points.extend(metric.points),
            None => merged.push(metric),
        }
    }
    merged
}

fn proto_metric(metric: MetricReading) -> Metric {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let data = match metric.kind {
        Kind::Sum { monotonic } => metric::Data::Sum(Sum {
            data_points: metric.points.iter().map(number_point).collect(),
            aggregation_temporality: cumulative,
            is_monotonic: monotonic,
        }),
        Kind::Gauge => metric::Data::Gauge(Gauge {
            data_points: metric.points.iter().map(number_point).collect(),
        }),
        Kind::Histogram => metric::Data::Histogram(Histogram {
            data_points: metric.points.iter().map(histogram_point).collect(),
            aggregation_temporality: cumulative,
        }),
    };
    Metric {
        name: metric.name,
        description: metric.description,
        unit: metric.unit,
        data: Some(data),
        ..Default::default()
    }
}

fn number_point(point: &Point) -> NumberDataPoint {
    let value = match &point.value {
        PointValue::Int(n) => number_data_point::Value::AsInt(*n),
        PointValue::Double(x) => number_data_point::Value::AsDouble(*x),
        PointValue::Histogram { sum, .. } => number_data_point::Value::AsDouble(*sum),
    };
    NumberDataPoint {
        attributes: point.attributes.iter().map(|(k, v)| text(k, v)).collect(),
        start_time_unix_nano: nanos(point.start),
        time_unix_nano: nanos(point.time),
        value: Some(value),
        ..Default::default()
    }
}

fn histogram_point(point: &Point) -> HistogramDataPoint {
    let (bounds, counts, sum, max) = match &point.value {
        PointValue::Histogram {
            bounds,
            counts,
            sum,
            max,
        } => (bounds.clone(), counts.clone(), *sum, *max),
        // A number where a histogram was expected: one bucket holding it.
        PointValue::Int(n) => (Vec::new(), vec![1], *n as f64, Some(*n as f64)),
        PointValue::Double(x) => (Vec::new(), vec![1], *x, Some(*x)),
    };
    let count = counts.iter().sum();
    HistogramDataPoint {
        attributes: point.attributes.iter().map(|(k, v)| text(k, v)).collect(),
        start_time_unix_nano: nanos(point.start),
        time_unix_nano: nanos(point.time),
        count,
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: bounds,
        max: max.filter(|_| count > 0),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::time::Duration;

    fn point(attributes: &[(&str, &str)], value: PointValue) -> Point {
        Point {
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_060),
            value,
        }
    }

    #[test]
    fn readings_become_cumulative_metrics_per_resource_that_decode_back() {
        let histogram = MetricReading {
            name: "http.server.request.duration".into(),
            description: "".into(),
            unit: "s".into(),
            kind: Kind::Histogram,
            points: vec![point(
                &[("http.response.status_code", "2xx")],
                PointValue::Histogram {
                    bounds: vec![0.1, 1.0],
                    counts: vec![3, 1, 0],
                    sum: 0.9,
                    max: Some(0.6),
                },
            )],
        };
        let retired = |cause: &str, n| MetricReading {
            name: "xray_host.instances.retired".into(),
            description: "".into(),
            unit: "{instance}".into(),
            kind: Kind::Sum { monotonic: true },
            points: vec![point(&[("cause", cause)], PointValue::Int(n))],
        };
        let request = export_request(
            vec![
                ResourceReadings {
                    service_name: Some("Backend #2".into()),
                    service_version: Some("0123456789ab".into()),
                    metrics: vec![histogram, retired("idle", 2), retired("failed", 1)],
                },
                ResourceReadings {
                    service_name: None,
                    service_version: None,
                    metrics: Vec::new(),
                },
            ],
            Some("edge"),
            &[("deployment.environment.name".into(), "test".into())],
        );
        let decoded = ExportMetricsServiceRequest::decode(&*request.encode_to_vec()).unwrap();
        assert_eq!(
            decoded.resource_metrics.len(),
            1,
            "an empty resource is left out"
        );
        let resource = &decoded.resource_metrics[0];
        let attributes: Vec<(String, String)> = resource
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| match &kv.value.as_ref().unwrap().value {
                Some(any_value::Value::StringValue(s)) => (kv.key.clone(), s.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(attributes.contains(&("service.name".into(), "Backend #2".into())));
        assert!(attributes.contains(&("service.version".into(), "0123456789ab".into())));
        assert!(attributes.contains(&("deployment.environment.name".into(), "test".into())));
        let metrics = &resource.scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 2, "the retirements are one metric");
        let Some(metric::Data::Histogram(h)) = &metrics[0].data else {
            panic!("{metrics:?}")
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(h.data_points[0].count, 4);
        assert_eq!(h.data_points[0].explicit_bounds, [0.1, 1.0]);
        assert_eq!(
            h.data_points[0].start_time_unix_nano,
            1_700_000_000_000_000_000
        );
        let Some(metric::Data::Sum(sum)) = &metrics[1].data else {
            panic!("{metrics:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 2);
    }
}
