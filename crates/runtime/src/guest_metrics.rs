//! A component's own metrics, exported through wasi:otel's `metrics.export`
//! ([`crate::capabilities::otel`]): sums, gauges and explicit-bucket histograms, kept per
//! service and component version in a bounded store, a [`MetricSource`] the reporters write
//! with the service's dimensions (EMF lines, OTLP metrics) like the host's own.
//!
//! Bounded like everything a component records:
//!
//! - at most [`MAX_SERIES`] distinct series (a name and its attributes) per component version,
//!   and [`MAX_ATTRIBUTES`] attributes per point, names and values of bounded length: a point
//!   beyond is refused, counted (`ComponentMetricsRefused`), and `export` answers an error
//!   that says why;
//! - names the EMF document uses for itself (`Service`, `Version`, `MetricGroup`, `_aws`) are
//!   refused as metric names and attribute keys.
//!
//! Every instance exports its own values, so a cumulative sum or histogram (an SDK's default
//! temporality) is turned into what it added since that instance's previous export
//! ([`InstanceReports`]); a delta one is added as it is. A gauge is its latest value.

use crate::metric_sources::{HistogramCounts, MetricSource, Reading, Unit, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct series one component version may have.
pub const MAX_SERIES: usize = 64;
/// Attributes one point may carry (each one multiplies the series).
pub const MAX_ATTRIBUTES: usize = 4;
/// Longest metric name or attribute key, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest attribute value, in bytes.
pub const MAX_VALUE: usize = 256;
/// Most buckets of one histogram.
pub const MAX_BUCKETS: usize = 64;
/// Names the EMF document already uses.
const RESERVED: [&str; 4] = ["Service", "Version", "MetricGroup", "_aws"];

/// One point a component exported, read from the WIT types.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedPoint {
    /// The metric's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its UCUM unit as the component wrote it.
    pub unit: String,
    /// The point's attributes.
    pub attributes: Vec<(String, String)>,
    /// Its value.
    pub value: ExportedValue,
}

/// What a point holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportedValue {
    /// A sum.
    Sum {
        /// Whether it only grows (a counter); otherwise it is kept as a level.
        monotonic: bool,
        /// Cumulative since the instance started, or the change since its last export.
        cumulative: bool,
        /// The value.
        value: f64,
    },
    /// A value now.
    Gauge(f64),
    /// An explicit-bucket histogram.
    Histogram {
        /// Cumulative, or the change since the last export.
        cumulative: bool,
        /// Upper bounds.
        bounds: Vec<f64>,
        /// Values per bucket (one more than `bounds`).
        counts: Vec<u64>,
        /// Sum of the values.
        sum: f64,
        /// Largest value, if the component said.
        max: Option<f64>,
    },
    /// Something this host does not keep (an exponential histogram): refused with `why`.
    Unsupported(&'static str),
}

/// A series' identity: its name and attributes, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    name: String,
    attributes: Vec<(String, String)>,
}

enum Data {
    Counter(f64),
    Level(f64),
    Histogram(HistogramCounts),
}

struct Series {
    description: String,
    unit: String,
    data: Data,
}

/// The metrics one component version exported.
pub struct GuestMetrics {
    service: String,
    version: String,
    series: Mutex<Vec<(SeriesKey, Series)>>,
    refused: AtomicU64,
}

/// What one instance last exported of each cumulative series.
#[derive(Default)]
pub struct InstanceReports {
    last: HashMap<SeriesKey, (f64, Vec<u64>)>,
}

impl GuestMetrics {
    /// An empty store for `service` serving `version`.
    pub fn new(service: &str, version: &str) -> GuestMetrics {
        GuestMetrics {
            service: service.to_string(),
            version: version.to_string(),
            series: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        }
    }

    /// Keeps `points`, exported by the instance whose earlier exports `reports` remembers.
    /// The points that break a bound are refused and counted, the others kept; the error
    /// says how many were refused and why the first was.
    pub fn record(
        &self,
        reports: &mut InstanceReports,
        points: Vec<ExportedPoint>,
    ) -> Result<(), String> {
        let mut refused = 0u64;
        let mut first_reason = None;
        let mut all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for point in points {
            if let Err(reason) = self.keep(&mut all, reports, point) {
                refused += 1;
                first_reason.get_or_insert(reason);
            }
        }
        if refused == 0 {
            return Ok(());
        }
        self.refused.fetch_add(refused, Ordering::Relaxed);
        Err(format!(
            "{refused} metric point(s) not kept: {}",
            first_reason.unwrap_or_default()
        ))
    }

    fn keep(
        &self,
        all: &mut Vec<(SeriesKey, Series)>,
        reports: &mut InstanceReports,
        point: ExportedPoint,
    ) -> Result<(), String> {
        check_name("metric name", &point.name)?;
        if point.attributes.len() > MAX_ATTRIBUTES {
            return Err(format!(
                "{} has {} attributes, more than {MAX_ATTRIBUTES}: each one multiplies the \
                 series, so keep the ones with few values",
                point.name,
                point.attributes.len()
            ));
        }
        for (key, value) in &point.attributes {
            check_name("attribute key", key)?;
            if value.len() > MAX_VALUE {
                return Err(format!(
                    "the value of {key} is longer than {MAX_VALUE} bytes"
                ));
            }
        }
        check_value(&point.name, &point.value)?;
        let mut attributes = point.attributes;
        attributes.sort();
        let key = SeriesKey {
            name: point.name,
            attributes,
        };
        let index = match all.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None if all.len() >= MAX_SERIES => {
                return Err(format!(
                    "the component version has {MAX_SERIES} series already (a name and its \
                     attributes), the most it may have; {} with these attributes would be one \
                     more (leave out the attributes with many values)",
                    key.name
                ));
            }
            None => {
                let data = match &point.value {
                    ExportedValue::Sum {
                        monotonic: true, ..
                    } => Data::Counter(0.0),
                    ExportedValue::Sum { .. } | ExportedValue::Gauge(_) => Data::Level(0.0),
                    ExportedValue::Histogram { bounds, .. } => Data::Histogram(HistogramCounts {
                        bounds: Cow::Owned(bounds.clone()),
                        counts: vec![0; bounds.len() + 1],
                        sum: 0.0,
                        max: None,
                    }),
                    ExportedValue::Unsupported(why) => return Err(format!("{}: {why}", key.name)),
                };
                all.push((
                    key.clone(),
                    Series {
                        description: point.description,
                        unit: point.unit,
                        data,
                    },
                ));
                all.len() - 1
            }
        };
        let series = &mut all[index].1;
        match (&mut series.data, point.value) {
            (
                Data::Counter(total),
                ExportedValue::Sum {
                    cumulative, value, ..
                },
            ) => {
                *total += added(reports, &key, cumulative, value);
            }
            (
                Data::Level(level),
                ExportedValue::Sum {
                    monotonic: false,
                    cumulative,
                    value,
                },
            ) => {
                if cumulative {
                    *level = value;
                } else {
                    *level += value;
                }
            }
            (Data::Level(level), ExportedValue::Gauge(value)) => *level = value,
            (
                Data::Histogram(kept),
                ExportedValue::Histogram {
                    cumulative,
                    bounds,
                    counts,
                    sum,
                    max,
                },
            ) if *kept.bounds == *bounds && counts.len() == bounds.len() + 1 => {
                let (sum_added, counts_added) = if cumulative {
                    let (last_sum, last_counts) = reports
                        .last
                        .insert(key.clone(), (sum, counts.clone()))
                        .unwrap_or_default();
                    // Fewer than before: the instance started again from zero.
                    let restarted = last_counts.len() != counts.len()
                        || counts
                            .iter()
                            .zip(&last_counts)
                            .any(|(now, before)| now < before);
                    if restarted {
                        (sum, counts)
                    } else {
                        let added = counts
                            .iter()
                            .zip(&last_counts)
                            .map(|(now, before)| now - before)
                            .collect();
                        ((sum - last_sum).max(0.0), added)
                    }
                } else {
                    (sum, counts)
                };
                for (kept, added) in kept.counts.iter_mut().zip(counts_added) {
                    *kept = kept.saturating_add(added);
                }
                kept.sum += sum_added;
                kept.max = match (kept.max, max) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            _ => {
                return Err(format!(
                    "{} was exported before as another kind of metric, or with other buckets",
                    key.name
                ));
            }
        }
        Ok(())
    }
}

/// What a sum point adds: its value when it is a delta, else the change since the instance's
/// last export of the series (its value when the instance's count went back, a restart).
fn added(reports: &mut InstanceReports, key: &SeriesKey, cumulative: bool, value: f64) -> f64 {
    if !cumulative {
        return value.max(0.0);
    }
    let before = reports
        .last
        .insert(key.clone(), (value, Vec::new()))
        .map_or(0.0, |(before, _)| before);
    if value >= before {
        value - before
    } else {
        value
    }
}

/// Refuses numbers that are not numbers and histograms whose buckets do not add up, before
/// they can become a series.
fn check_value(name: &str, value: &ExportedValue) -> Result<(), String> {
    let finite = |x: f64| {
        x.is_finite()
            .then_some(())
            .ok_or_else(|| format!("{name} has a value that is not a finite number"))
    };
    match value {
        ExportedValue::Sum { value, .. } | ExportedValue::Gauge(value) => finite(*value),
        ExportedValue::Histogram {
            bounds,
            counts,
            sum,
            max,
            ..
        } => {
            finite(*sum)?;
            finite(max.unwrap_or(0.0))?;
            if bounds.len() >= MAX_BUCKETS {
                return Err(format!(
                    "{name} has {} buckets, more than {MAX_BUCKETS}",
                    bounds.len() + 1
                ));
            }
            if counts.len() != bounds.len() + 1 {
                return Err(format!(
                    "{name} has {} bucket counts for {} bounds: there must be one more count \
                     than bounds",
                    counts.len(),
                    bounds.len()
                ));
            }
            let ascending = bounds.windows(2).all(|pair| pair[0] < pair[1]);
            if !ascending || bounds.iter().any(|b| !b.is_finite()) {
                return Err(format!("{name}'s bounds are not finite and ascending"));
            }
            Ok(())
        }
        ExportedValue::Unsupported(_) => Ok(()),
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!(
            "a {what} must have 1 to {MAX_NAME} bytes: {name:?}"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "{name} is a name the host's metric lines use for themselves; pick another {what}"
        ));
    }
    Ok(())
}

impl MetricSource for GuestMetrics {
    fn group(&self) -> &'static str {
        "Component"
    }

    fn dimensions(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Service", self.service.clone()),
            ("Version", self.version.clone()),
        ]
    }

    fn read(&self) -> Vec<Reading> {
        let all = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut readings: Vec<Reading> = all
            .iter()
            .map(|(key, series)| Reading {
                name: key.name.clone().into(),
                otel_name: key.name.clone().into(),
                description: series.description.clone().into(),
                unit: Unit::Other(series.unit.clone()),
                attributes: key
                    .attributes
                    .iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), v.clone()))
                    .collect(),
                value: match &series.data {
                    Data::Counter(total) => Value::Sum(*total),
                    Data::Level(level) => Value::Gauge(*level),
                    Data::Histogram(counts) => Value::Histogram(counts.clone()),
                },
            })
            .collect();
        readings.push(Reading {
            name: "ComponentMetricsRefused".into(),
            otel_name: "xray_host.component.metrics.refused".into(),
            description: "Metric points a component exported that broke a bound".into(),
            unit: Unit::Count("{point}"),
            attributes: Vec::new(),
            value: Value::Counter(self.refused.load(Ordering::Relaxed)),
        });
        readings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(name: &str, attributes: &[(&str, &str)], cumulative: bool, value: f64) -> ExportedPoint {
        ExportedPoint {
            name: name.into(),
            description: String::new(),
            unit: "{order}".into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: ExportedValue::Sum {
                monotonic: true,
                cumulative,
                value,
            },
        }
    }

    fn total(metrics: &GuestMetrics, name: &str) -> Value {
        metrics
            .read()
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| r.value)
            .unwrap()
    }

    #[test]
    fn cumulative_sums_of_several_instances_add_up_and_deltas_add_as_they_are() {
        let metrics = GuestMetrics::new("Otel", "0123456789ab");
        let (mut first, mut second) = (InstanceReports::default(), InstanceReports::default());
        metrics
            .record(&mut first, vec![sum("orders", &[], true, 2.0)])
            .unwrap();
        metrics
            .record(&mut first, vec![sum("orders", &[], true, 5.0)])
            .unwrap();
        metrics
            .record(&mut second, vec![sum("orders", &[], true, 1.0)])
            .unwrap();
        assert_eq!(total(&metrics, "orders"), Value::Sum(6.0));
        metrics
            .record(&mut second, vec![sum("orders", &[], false, 4.0)])
            .unwrap();
        assert_eq!(total(&metrics, "orders"), Value::Sum(10.0));
    }

    #[test]
    fn series_past_the_bound_are_refused_counted_and_explained() {
        let metrics = GuestMetrics::new("Otel", "0123456789ab");
        let mut reports = InstanceReports::default();
        let points: Vec<ExportedPoint> = (0..MAX_SERIES + 3)
            .map(|i| sum("orders", &[("customer", &i.to_string())], false, 1.0))
            .collect();
        let error = metrics.record(&mut reports, points).unwrap_err();
        assert!(error.starts_with("3 metric point(s) not kept"), "{error}");
        assert!(error.contains("attributes with many values"), "{error}");
        assert_eq!(
            total(&metrics, "ComponentMetricsRefused"),
            Value::Counter(3)
        );
        // A series already kept still takes points.
        metrics
            .record(
                &mut reports,
                vec![sum("orders", &[("customer", "0")], false, 1.0)],
            )
            .unwrap();
        let reserved = metrics
            .record(&mut reports, vec![sum("Service", &[], false, 1.0)])
            .unwrap_err();
        assert!(reserved.contains("pick another"), "{reserved}");
    }

    #[test]
    fn cumulative_histograms_add_what_each_export_added() {
        let metrics = GuestMetrics::new("Otel", "0123456789ab");
        let mut reports = InstanceReports::default();
        let histogram = |counts: Vec<u64>, sum: f64| ExportedPoint {
            name: "latency".into(),
            description: String::new(),
            unit: "ms".into(),
            attributes: Vec::new(),
            value: ExportedValue::Histogram {
                cumulative: true,
                bounds: vec![10.0, 100.0],
                counts,
                sum,
                max: Some(50.0),
            },
        };
        metrics
            .record(&mut reports, vec![histogram(vec![1, 0, 0], 5.0)])
            .unwrap();
        metrics
            .record(&mut reports, vec![histogram(vec![1, 2, 0], 105.0)])
            .unwrap();
        let Value::Histogram(counts) = total(&metrics, "latency") else {
            panic!()
        };
        assert_eq!(counts.counts, [1, 2, 0]);
        assert_eq!(counts.sum, 105.0);
    }
}
