//! The runtime's metrics (`xray_host_runtime::metrics`, `xray_host_runtime::metric_sources`)
//! as `otlp_export::metrics` readings: the composition between the counters, which know
//! nothing of OTLP, and the encoder, which knows nothing of the runtime.
//!
//! - Each service and component version is a resource (`service.name`, `service.version`);
//!   what belongs to the process (the table, the exporters) is the process's resource.
//! - The request metrics follow OpenTelemetry's HTTP semantic conventions:
//!   `http.server.request.duration`, a histogram in seconds, with `http.response.status_code`
//!   as the status's class (`2xx`, `4xx`…, a string: the class, not the code, keeps the series
//!   bounded) and `xray_host.route_class` (`main`, `health`); `xray_host.http.server.throttles`
//!   counts the 429s.
//! - The other sources keep their own OpenTelemetry names (`xray_host.instances.created`,
//!   `db.client.operation.duration` for the table); their EMF dimensions become attributes
//!   (`Operation` is `db.operation.name`, the others `xray_host.<snake_case>`, a component's own
//!   keys as they are), milliseconds become seconds.
//! - Everything is cumulative from when its counter was registered.

use otlp_export::metrics::{Kind, MetricReading, Point, PointValue, ResourceReadings};
use std::time::SystemTime;
use xray_host_runtime::metric_sources::{self, Reading, Unit, Value};
use xray_host_runtime::metrics::{self, BUCKET_BOUNDS_MS, STATUS_CLASSES};

/// Everything the runtime counts now, as OTLP readings per resource.
pub fn collect() -> Vec<ResourceReadings> {
    let now = SystemTime::now();
    let mut resources: Vec<ResourceReadings> = Vec::new();
    for (series, counts) in metrics::snapshot_all() {
        if counts.requests == 0 {
            continue;
        }
        let resource = resource(
            &mut resources,
            Some(series.service.to_string()),
            Some(series.version.to_string()),
        );
        let route = (
            "xray_host.route_class".to_string(),
            series.route.as_str().to_string(),
        );
        let points = STATUS_CLASSES
            .iter()
            .zip(&counts.by_class)
            .filter(|(_, class)| class.requests > 0)
            .map(|(name, class)| Point {
                attributes: vec![
                    ("http.response.status_code".into(), name.to_string()),
                    route.clone(),
                ],
                start: series.registered_at,
                time: now,
                value: PointValue::Histogram {
                    bounds: BUCKET_BOUNDS_MS
                        .iter()
                        .map(|ms| *ms as f64 / 1_000.0)
                        .collect(),
                    counts: class.buckets.to_vec(),
                    sum: class.duration_sum_us as f64 / 1_000_000.0,
                    max: None,
                },
            })
            .collect();
        resource.metrics.push(MetricReading {
            name: "http.server.request.duration".into(),
            description: "Duration of HTTP server requests, to the response head".into(),
            unit: "s".into(),
            kind: Kind::Histogram,
            points,
        });
        resource.metrics.push(MetricReading {
            name: "xray_host.http.server.throttles".into(),
            description: "Requests answered 429".into(),
            unit: "{request}".into(),
            kind: Kind::Sum { monotonic: true },
            points: vec![Point {
                attributes: vec![route],
                start: series.registered_at,
                time: now,
                value: PointValue::Int(counts.throttles as i64),
            }],
        });
    }
    for source in metric_sources::read_all() {
        let dimensions = source.source.dimensions();
        let find = |name: &str| {
            dimensions
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        };
        let resource = resource(&mut resources, find("Service"), find("Version"));
        for reading in &source.readings {
            let mut attributes: Vec<(String, String)> = dimensions
                .iter()
                .filter(|(key, _)| *key != "Service" && *key != "Version")
                .map(|(key, value)| (attribute_name(key), value.clone()))
                .collect();
            attributes.extend(
                reading
                    .attributes
                    .iter()
                    .map(|(key, value)| (attribute_name(key), value.clone())),
            );
            resource
                .metrics
                .push(metric(reading, attributes, source.registered_at, now));
        }
    }
    resources
}

/// The resource of `service` and `version` in `resources`, added if new.
fn resource(
    resources: &mut Vec<ResourceReadings>,
    service: Option<String>,
    version: Option<String>,
) -> &mut ResourceReadings {
    let index = match resources
        .iter()
        .position(|r| r.service_name == service && r.service_version == version)
    {
        Some(index) => index,
        None => {
            resources.push(ResourceReadings {
                service_name: service,
                service_version: version,
                metrics: Vec::new(),
            });
            resources.len() - 1
        }
    };
    &mut resources[index]
}

/// An EMF dimension's name as an OpenTelemetry attribute.
fn attribute_name(dimension: &str) -> String {
    match dimension {
        "Operation" => "db.operation.name".into(),
        // The host's own dimensions; anything else is a component's attribute, already an
        // OpenTelemetry name.
        host @ ("Backend" | "Cause" | "Exporter" | "Rule") => {
            let mut snake = String::from("xray_host.");
            for (i, c) in host.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.extend(c.to_lowercase());
            }
            snake
        }
        other => other.to_string(),
    }
}

fn metric(
    reading: &Reading,
    attributes: Vec<(String, String)>,
    start: SystemTime,
    time: SystemTime,
) -> MetricReading {
    // Durations in seconds, as OpenTelemetry's conventions have them.
    let scale =
        if reading.unit == Unit::Milliseconds && matches!(reading.value, Value::Histogram(_)) {
            1_000.0
        } else {
            1.0
        };
    let unit = match &reading.unit {
        Unit::Count(annotation) => annotation.to_string(),
        Unit::Milliseconds if scale > 1.0 => "s".into(),
        Unit::Milliseconds => "ms".into(),
        Unit::Seconds => "s".into(),
        Unit::Bytes => "By".into(),
        Unit::Other(unit) => unit.clone(),
    };
    let (kind, value) = match &reading.value {
        Value::Counter(count) => (
            Kind::Sum { monotonic: true },
            PointValue::Int(i64::try_from(*count).unwrap_or(i64::MAX)),
        ),
        Value::Sum(total) => (Kind::Sum { monotonic: true }, PointValue::Double(*total)),
        Value::Gauge(level) => (Kind::Gauge, PointValue::Double(*level)),
        Value::Histogram(counts) => (
            Kind::Histogram,
            PointValue::Histogram {
                bounds: counts.bounds.iter().map(|b| b / scale).collect(),
                counts: counts.counts.clone(),
                sum: counts.sum / scale,
                max: counts.max.map(|m| m / scale),
            },
        ),
    };
    MetricReading {
        name: reading.otel_name.to_string(),
        description: reading.description.to_string(),
        unit,
        kind,
        points: vec![Point {
            attributes,
            start,
            time,
            value,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_become_attribute_names() {
        assert_eq!(attribute_name("Operation"), "db.operation.name");
        assert_eq!(attribute_name("Cause"), "xray_host.cause");
        assert_eq!(attribute_name("Exporter"), "xray_host.exporter");
        assert_eq!(attribute_name("http.route"), "http.route");
        assert_eq!(attribute_name("kind"), "kind");
    }
}
