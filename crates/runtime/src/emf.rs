//! The request metrics ([`crate::metrics`]) as CloudWatch Embedded Metric Format log lines:
//! CloudWatch Logs turns each line into metrics with no agent and no API call.
//!
//! Every interval (at most a minute, CloudWatch's standard resolution) and once more at
//! shutdown, each series that counted a request gets one line: a JSON object whose `_aws`
//! member names the namespace, the dimension sets (`[Service, RouteClass]` and
//! `[Service, Version, RouteClass]`) and the metrics, with the values beside it:
//!
//! - `Requests`, `Errors` (4xx, 429 included), `Throttles` (429), `Faults` (5xx): `Count`.
//! - `Duration`: the time to the response head, `Milliseconds`. The specification allows an
//!   array of at most 100 values per metric, from which CloudWatch computes the statistics and
//!   percentiles; the host keeps a histogram, not every sample, so the array holds each
//!   bucket's upper bound (the longest duration for the last bucket) repeated in proportion to
//!   its count, 100 values in all. `Requests` carries the exact count.
//!
//! The other sources of [`crate::metric_sources`] (the instance pool, the table, the exporters,
//! the refused outgoing calls, the components' own metrics) get one line per source and
//! attribute set at each interval: the source's dimensions (`Service` and `Version` where they
//! apply; a set without `Version` too) and the reading's attributes (`Cause`, `Operation`) as
//! dimensions, a `MetricGroup` member naming the source, counters as the change since the last
//! line, gauges as they are, histograms as values like `Duration`'s. A line is written when a
//! counter or histogram changed, or for a gauge of a source still listed.
//!
//! The lines go to stdout through the sink the binary gives ([`EmfReporter::start`]), which
//! never waits on it.

use crate::metric_sources::{
    self, Attributes, HistogramCounts, Reading, SourceDeltas, SourceReading,
};
use crate::metrics::{self, BUCKET_BOUNDS_MS, Deltas, Series, Snapshot};
use serde_json::Map;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The longest interval: CloudWatch stores standard-resolution metrics per minute.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl EmfReporter {
    /// The longest interval a reporter of the metrics uses ([`MAX_INTERVAL`]).
    pub const MAX_INTERVAL: Duration = MAX_INTERVAL;
}
/// Most values the specification allows in one metric's array.
pub const MAX_VALUES: usize = 100;
/// The metrics of every line, with their units.
const METRICS: [(&str, &str); 5] = [
    ("Requests", "Count"),
    ("Errors", "Count"),
    ("Throttles", "Count"),
    ("Faults", "Count"),
    ("Duration", "Milliseconds"),
];

/// Where the lines go: one complete JSON document per call, without a newline.
pub type LineSink = Arc<dyn Fn(String) + Send + Sync>;

/// Writes the metrics of every served version as EMF lines at an interval.
pub struct EmfReporter {
    namespace: Arc<str>,
    sink: LineSink,
    /// What this reporter read last: the counters are shared with other readers and never
    /// reset, so each line carries the difference.
    read: Arc<Mutex<Read>>,
    task: JoinHandle<()>,
}

impl EmfReporter {
    /// Starts reporting every `interval` (at most [`MAX_INTERVAL`]) into `sink`, in the
    /// CloudWatch namespace `namespace`.
    pub fn start(namespace: &str, interval: Duration, sink: LineSink) -> EmfReporter {
        let namespace: Arc<str> = namespace.into();
        let interval = interval.clamp(Duration::from_millis(100), MAX_INTERVAL);
        let read = Arc::new(Mutex::new(Read::default()));
        let task = tokio::spawn({
            let (namespace, sink, read) = (namespace.clone(), sink.clone(), read.clone());
            async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    report(&namespace, &sink, &read);
                }
            }
        });
        EmfReporter {
            namespace,
            sink,
            read,
            task,
        }
    }

    /// Stops the interval and writes what was counted since the last report: the last lines
    /// of a process that is shutting down.
    pub fn finish(self) {
        self.task.abort();
        report(&self.namespace, &self.sink, &self.read);
    }
}

/// What one reporter read last, of the request series and of the other sources.
#[derive(Default)]
struct Read {
    requests: Deltas,
    sources: SourceDeltas,
}

fn report(namespace: &str, sink: &LineSink, read: &Mutex<Read>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut read = read.lock().unwrap_or_else(|e| e.into_inner());
    for (series, snapshot) in read.requests.advance(metrics::snapshot_all()) {
        if snapshot.requests > 0 {
            sink(document(namespace, now, &series, &snapshot).to_string());
        }
    }
    for source in read.sources.advance(metric_sources::read_all()) {
        for doc in source_documents(namespace, now, &source) {
            sink(doc.to_string());
        }
    }
}

/// The EMF documents of one source's readings (changes since the last report): one per
/// attribute set that has something to say.
pub fn source_documents(namespace: &str, timestamp_ms: u64, source: &SourceReading) -> Vec<Value> {
    let dimensions = source.source.dimensions();
    let mut by_attributes: Vec<(&Attributes, Vec<&Reading>)> = Vec::new();
    for reading in &source.readings {
        let worth_a_line = match &reading.value {
            metric_sources::Value::Counter(change) => *change > 0,
            metric_sources::Value::Sum(change) => *change > 0.0,
            metric_sources::Value::Histogram(counts) => counts.count() > 0,
            metric_sources::Value::Gauge(_) => true,
        };
        if !worth_a_line {
            continue;
        }
        match by_attributes
            .iter_mut()
            .find(|(attributes, _)| **attributes == reading.attributes)
        {
            Some((_, readings)) => readings.push(reading),
            None => by_attributes.push((&reading.attributes, vec![reading])),
        }
    }
    by_attributes
        .into_iter()
        .map(|(attributes, readings)| {
            let mut root = Map::new();
            let mut full: Vec<String> = Vec::new();
            for (name, value) in &dimensions {
                root.insert(name.to_string(), json!(value));
                full.push(name.to_string());
            }
            for (name, value) in attributes {
                root.insert(name.to_string(), json!(value));
                full.push(name.to_string());
            }
            // Per service across its versions as well, as for the requests.
            let mut sets = vec![];
            if full.iter().any(|d| d == "Version") {
                sets.push(full.iter().filter(|d| *d != "Version").cloned().collect());
            }
            sets.push(full);
            let mut metrics = Vec::new();
            for reading in readings {
                metrics.push(json!({"Name": &*reading.name, "Unit": reading.unit.emf()}));
                let value = match &reading.value {
                    metric_sources::Value::Counter(change) => json!(change),
                    metric_sources::Value::Sum(change) => json!(change),
                    metric_sources::Value::Gauge(level) => json!(level),
                    metric_sources::Value::Histogram(counts) => json!(histogram_values(counts)),
                };
                root.insert(reading.name.to_string(), value);
            }
            root.insert("MetricGroup".into(), json!(source.source.group()));
            root.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": sets,
                        "Metrics": metrics,
                    }],
                }),
            );
            Value::Object(root)
        })
        .collect()
}

/// A histogram's counts as at most [`MAX_VALUES`] values, each bucket's upper bound (the
/// largest value for the last bucket, and for any bucket whose bound is past it).
pub fn histogram_values(counts: &HistogramCounts) -> Vec<f64> {
    let largest = counts
        .max
        .unwrap_or_else(|| counts.bounds.last().copied().unwrap_or(0.0));
    spread(&counts.counts, |i| {
        counts
            .bounds
            .get(i)
            .map(|bound| bound.min(largest))
            .unwrap_or(largest)
    })
}

/// One series' EMF document at `timestamp_ms`.
pub fn document(namespace: &str, timestamp_ms: u64, series: &Series, counts: &Snapshot) -> Value {
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Service", "RouteClass"], ["Service", "Version", "RouteClass"]],
                "Metrics": metrics,
            }],
        },
        "MetricGroup": "Requests",
        "Service": &*series.service,
        "Version": &*series.version,
        "RouteClass": series.route.as_str(),
        "Requests": counts.requests,
        "Errors": counts.errors,
        "Throttles": counts.throttles,
        "Faults": counts.faults,
        "Duration": duration_values(counts),
    })
}

/// [`MAX_VALUES`] values (fewer when fewer requests were counted) spread over the histogram's
/// buckets in proportion to their counts, each the bucket's upper bound in milliseconds.
pub fn duration_values(counts: &Snapshot) -> Vec<f64> {
    let longest_ms = counts.duration_max_us as f64 / 1_000.0;
    spread(&counts.buckets, |i| {
        BUCKET_BOUNDS_MS
            .get(i)
            .map(|bound| (*bound as f64).min(longest_ms.max(0.0)))
            .unwrap_or(longest_ms)
    })
}

/// [`MAX_VALUES`] values (fewer when fewer were counted) spread over `buckets` in proportion to
/// their counts, each `value_of` its bucket's index.
fn spread(buckets: &[u64], value_of: impl Fn(usize) -> f64) -> Vec<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let wanted = total.min(MAX_VALUES as u64);
    let mut values = Vec::with_capacity(wanted as usize);
    // Largest remainders: each bucket gets its floor share, the rest go to the largest
    // fractions, so the shares add up to `wanted` and a bucket with requests is not lost
    // unless it is under one share.
    let shares: Vec<(usize, u64, u64)> = buckets
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let exact = u128::from(count) * u128::from(wanted);
            let floor = (exact / u128::from(total)) as u64;
            let remainder = (exact % u128::from(total)) as u64;
            (i, floor, remainder)
        })
        .collect();
    let mut extra = wanted - shares.iter().map(|(_, floor, _)| floor).sum::<u64>();
    let mut by_remainder: Vec<&(usize, u64, u64)> = shares.iter().collect();
    // Ties go to the slower bucket: the tail is what an operator looks for.
    by_remainder.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
    let mut counts_out = vec![0u64; shares.len()];
    for (i, floor, _) in &shares {
        counts_out[*i] = *floor;
    }
    for (i, _, remainder) in by_remainder {
        if extra == 0 || *remainder == 0 {
            break;
        }
        counts_out[*i] += 1;
        extra -= 1;
    }
    for (i, count) in counts_out.into_iter().enumerate() {
        values.extend(std::iter::repeat_n(value_of(i), count as usize));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{RequestCounters, RouteClass};

    fn snapshot(durations_ms: &[u64], statuses: &[u16]) -> Snapshot {
        let counters = RequestCounters::default();
        for (ms, status) in durations_ms.iter().zip(statuses) {
            counters.record(*status, Duration::from_millis(*ms));
        }
        counters.snapshot()
    }

    #[test]
    fn a_document_names_its_dimensions_and_metrics_and_carries_their_values() {
        let series = Series {
            service: "Backend #2".into(),
            version: "0123456789ab".into(),
            route: RouteClass::Main,
            registered_at: std::time::SystemTime::UNIX_EPOCH,
            counters: RequestCounters::default(),
        };
        let counts = snapshot(&[3, 30, 300], &[200, 404, 500]);
        let doc = document("XrayHost", 1_795_534_205_000, &series, &counts);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "XrayHost");
        assert_eq!(doc["_aws"]["Timestamp"], 1_795_534_205_000u64);
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(doc[key.as_str().unwrap()].is_string(), "{key}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(!doc[metric["Name"].as_str().unwrap()].is_null(), "{metric}");
        }
        assert_eq!(doc["Service"], "Backend #2");
        assert_eq!(doc["RouteClass"], "main");
        assert_eq!(doc["Requests"], 3);
        assert_eq!(doc["Errors"], 1);
        assert_eq!(doc["Faults"], 1);
        assert_eq!(doc["Duration"], json!([5.0, 50.0, 300.0]));
    }

    #[test]
    fn durations_become_at_most_a_hundred_values_in_proportion() {
        // 900 fast requests, 100 slow ones.
        let mut durations = vec![1u64; 900];
        durations.extend([700u64; 100]);
        let statuses = vec![200u16; 1000];
        let values = duration_values(&snapshot(&durations, &statuses));
        assert_eq!(values.len(), MAX_VALUES);
        assert_eq!(values.iter().filter(|v| **v == 2.0).count(), 90);
        assert_eq!(values.iter().filter(|v| **v == 700.0).count(), 10);
        // A single rare bucket still shows when it has a share.
        let mut durations = vec![1u64; 199];
        durations.push(40_000);
        let values = duration_values(&snapshot(&durations, &vec![200; 200]));
        assert_eq!(values.len(), MAX_VALUES);
        assert!(values.contains(&40_000.0), "{values:?}");
    }
}
