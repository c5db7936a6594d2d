//! The console's metrics panel: requests per second, error rate and a latency histogram per
//! service, from the same counters the host reports as CloudWatch metrics.
//!
//! The stand-in does not know the host: the binary gives it a [`ServiceMetricsSource`] that
//! reads the host's cumulative counters. The stand-in reads it every [`SAMPLE_INTERVAL`] and
//! keeps what each service answered in each interval for the last [`HISTORY_SAMPLES`] of them
//! ([`MetricsHistory`]), so that the panel shows a rate over time without the host keeping
//! anything for it. Differences are taken per series of the source (a service's version and
//! route class), so a series that appears (a new version) or goes (an old one retired) never
//! makes a service's count go backwards.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How often the stand-in reads the source.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// How many intervals the panel covers (two minutes at one a second).
pub const HISTORY_SAMPLES: usize = 120;

/// What one series of the source has counted since it began (cumulative, never reset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestTotals {
    /// Requests answered.
    pub requests: u64,
    /// 4xx answers (429 included).
    pub errors: u64,
    /// 429 answers.
    pub throttles: u64,
    /// 5xx answers.
    pub faults: u64,
    /// Sum of the durations, µs.
    pub duration_sum_us: u64,
    /// Requests per duration bucket: one per [`ServiceMetricsSource::bucket_bounds_ms`] entry
    /// (durations under that bound and not under the previous one), then one for the rest.
    pub buckets: Vec<u64>,
}

impl RequestTotals {
    /// What `self` counted since `earlier`, the same series read before; a counter that went
    /// backwards (the series started again) counts from zero.
    fn since(&self, earlier: &RequestTotals) -> RequestTotals {
        let diff = |now: u64, then: u64| if now >= then { now - then } else { now };
        RequestTotals {
            requests: diff(self.requests, earlier.requests),
            errors: diff(self.errors, earlier.errors),
            throttles: diff(self.throttles, earlier.throttles),
            faults: diff(self.faults, earlier.faults),
            duration_sum_us: diff(self.duration_sum_us, earlier.duration_sum_us),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, now)| diff(*now, earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    fn add(&mut self, other: &RequestTotals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.throttles += other.throttles;
        self.faults += other.faults;
        self.duration_sum_us += other.duration_sum_us;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (sum, count) in self.buckets.iter_mut().zip(&other.buckets) {
            *sum += count;
        }
    }
}

/// One series as the source reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesTotals {
    /// The service (its segment name).
    pub service: String,
    /// What tells this series apart from the service's others (e.g. version and route class):
    /// the history takes differences per series.
    pub series: String,
    /// Its cumulative counts.
    pub totals: RequestTotals,
}

/// Where the panel's numbers come from: the host's request counters, read through the binary.
pub trait ServiceMetricsSource: Send + Sync + 'static {
    /// Every series now, with its cumulative counts. Called every [`SAMPLE_INTERVAL`] from a
    /// task of the stand-in: it must not block.
    fn read(&self) -> Vec<SeriesTotals>;

    /// The upper bounds of the duration buckets, in milliseconds, the last bucket holding the
    /// rest.
    fn bucket_bounds_ms(&self) -> Vec<u64>;
}

/// One interval: what each service answered in it.
struct Interval {
    /// Its end, epoch seconds.
    end: f64,
    /// Its length, seconds.
    seconds: f64,
    services: HashMap<String, RequestTotals>,
}

/// A reading by (service, series), each series' cumulative counts.
type Reading = HashMap<(String, String), RequestTotals>;

/// The last [`HISTORY_SAMPLES`] intervals of every service.
#[derive(Default)]
pub struct MetricsHistory {
    bucket_bounds_ms: Vec<u64>,
    /// The last reading, per (service, series), and when it was taken.
    last: Option<(f64, Reading)>,
    intervals: VecDeque<Interval>,
}

impl MetricsHistory {
    /// An empty history of a source with these duration buckets.
    pub fn new(bucket_bounds_ms: Vec<u64>) -> Self {
        Self {
            bucket_bounds_ms,
            ..Self::default()
        }
    }

    /// Takes one reading at `now` (epoch seconds). The first only sets where counting starts:
    /// what was answered before the stand-in looked belongs to no interval it can place.
    pub fn record(&mut self, now: f64, reading: Vec<SeriesTotals>) {
        let reading: Reading = reading
            .into_iter()
            .map(|s| ((s.service, s.series), s.totals))
            .collect();
        if let Some((then, last)) = &self.last {
            let mut services: HashMap<String, RequestTotals> = HashMap::new();
            for ((service, series), totals) in &reading {
                // A series not read before began in this interval: all of it is new.
                let delta = match last.get(&(service.clone(), series.clone())) {
                    Some(earlier) => totals.since(earlier),
                    None => totals.clone(),
                };
                services.entry(service.clone()).or_default().add(&delta);
            }
            self.intervals.push_back(Interval {
                end: now,
                seconds: (now - then).max(1e-3),
                services,
            });
            while self.intervals.len() > HISTORY_SAMPLES {
                self.intervals.pop_front();
            }
        }
        self.last = Some((now, reading));
    }

    /// The panel's numbers for every service seen in the history, by name.
    pub fn panel(&self) -> MetricsPanel {
        let mut names: Vec<&String> = self
            .intervals
            .iter()
            .flat_map(|i| i.services.keys())
            .chain(self.last.iter().flat_map(|(_, l)| l.keys().map(|(s, _)| s)))
            .collect();
        names.sort();
        names.dedup();
        let window: f64 = self.intervals.iter().map(|i| i.seconds).sum();
        let services = names
            .into_iter()
            .map(|name| {
                let mut total = RequestTotals {
                    buckets: vec![0; self.bucket_bounds_ms.len() + 1],
                    ..RequestTotals::default()
                };
                let mut per_second = Vec::with_capacity(self.intervals.len());
                for interval in &self.intervals {
                    let counted = interval.services.get(name);
                    if let Some(counted) = counted {
                        total.add(counted);
                    }
                    let requests = counted.map_or(0, |c| c.requests);
                    let failed = counted.map_or(0, |c| c.errors + c.faults);
                    per_second.push(RatePoint {
                        end: interval.end,
                        requests_per_second: requests as f64 / interval.seconds,
                        error_rate: ratio(failed, requests),
                    });
                }
                let mut histogram: Vec<HistogramBucket> = total
                    .buckets
                    .iter()
                    .enumerate()
                    .map(|(i, count)| HistogramBucket {
                        below_ms: self.bucket_bounds_ms.get(i).copied(),
                        count: *count,
                    })
                    .collect();
                // The buckets beyond the slowest request tell nothing: the panel stops there
                // (keeping at least the first few, so an idle service still has an axis).
                let last_used = histogram.iter().rposition(|b| b.count > 0).unwrap_or(0);
                histogram.truncate((last_used + 1).max(4).min(histogram.len()));
                ServicePanel {
                    service: name.clone(),
                    requests: total.requests,
                    errors: total.errors,
                    throttles: total.throttles,
                    faults: total.faults,
                    requests_per_second: if window > 0.0 {
                        total.requests as f64 / window
                    } else {
                        0.0
                    },
                    error_rate: ratio(total.errors + total.faults, total.requests),
                    fault_rate: ratio(total.faults, total.requests),
                    average_ms: if total.requests > 0 {
                        total.duration_sum_us as f64 / total.requests as f64 / 1000.0
                    } else {
                        0.0
                    },
                    per_second,
                    histogram,
                }
            })
            .collect();
        MetricsPanel {
            window_seconds: window,
            slots: HISTORY_SAMPLES,
            services,
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The console's metrics panel: `GET /console/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsPanel {
    /// The seconds the numbers cover (up to [`HISTORY_SAMPLES`] intervals).
    #[serde(rename = "WindowSeconds")]
    pub window_seconds: f64,
    /// How many intervals the window holds when full ([`HISTORY_SAMPLES`]), so that the
    /// console draws a rate chart of fixed width from the start.
    #[serde(rename = "Slots")]
    pub slots: usize,
    /// One entry per service, by name.
    #[serde(rename = "Services")]
    pub services: Vec<ServicePanel>,
}

/// One service over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePanel {
    /// The service.
    #[serde(rename = "Service")]
    pub service: String,
    /// Requests answered in the window.
    #[serde(rename = "Requests")]
    pub requests: u64,
    /// 4xx answers in the window (429 included).
    #[serde(rename = "Errors")]
    pub errors: u64,
    /// 429 answers in the window.
    #[serde(rename = "Throttles")]
    pub throttles: u64,
    /// 5xx answers in the window.
    #[serde(rename = "Faults")]
    pub faults: u64,
    /// Requests per second over the window.
    #[serde(rename = "RequestsPerSecond")]
    pub requests_per_second: f64,
    /// (4xx + 5xx) / requests over the window; 0 with no requests.
    #[serde(rename = "ErrorRate")]
    pub error_rate: f64,
    /// 5xx / requests over the window.
    #[serde(rename = "FaultRate")]
    pub fault_rate: f64,
    /// Mean duration over the window, ms.
    #[serde(rename = "AverageMs")]
    pub average_ms: f64,
    /// Each interval of the window, oldest first.
    #[serde(rename = "PerSecond")]
    pub per_second: Vec<RatePoint>,
    /// The window's durations, by bucket, up to the slowest bucket used.
    #[serde(rename = "LatencyHistogram")]
    pub histogram: Vec<HistogramBucket>,
}

/// One interval of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatePoint {
    /// The interval's end, epoch seconds.
    #[serde(rename = "End")]
    pub end: f64,
    /// Requests per second in it.
    #[serde(rename = "RequestsPerSecond")]
    pub requests_per_second: f64,
    /// (4xx + 5xx) / requests in it.
    #[serde(rename = "ErrorRate")]
    pub error_rate: f64,
}

/// One bucket of the latency histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramBucket {
    /// Durations under this many ms (and not under the previous bucket's); `None` for the
    /// last bucket, which holds the rest.
    #[serde(rename = "BelowMs")]
    pub below_ms: Option<u64>,
    /// Requests in it.
    #[serde(rename = "Count")]
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: u64, errors: u64, faults: u64, buckets: [u64; 3]) -> RequestTotals {
        RequestTotals {
            requests,
            errors,
            throttles: 0,
            faults,
            duration_sum_us: requests * 3_000,
            buckets: buckets.to_vec(),
        }
    }

    fn series(service: &str, version: &str, totals: RequestTotals) -> SeriesTotals {
        SeriesTotals {
            service: service.into(),
            series: version.into(),
            totals,
        }
    }

    #[test]
    fn the_panel_counts_what_was_answered_after_the_first_reading() {
        let mut history = MetricsHistory::new(vec![1, 5]);
        // Before the stand-in looked: not counted.
        history.record(100.0, vec![series("A", "v1", totals(50, 0, 0, [50, 0, 0]))]);
        history.record(101.0, vec![series("A", "v1", totals(54, 1, 1, [50, 3, 1]))]);
        history.record(103.0, vec![series("A", "v1", totals(58, 1, 1, [50, 7, 1]))]);
        let panel = history.panel();
        assert_eq!(panel.window_seconds, 3.0);
        let a = &panel.services[0];
        assert_eq!((a.requests, a.errors, a.faults), (8, 1, 1));
        assert_eq!(a.requests_per_second, 8.0 / 3.0);
        assert_eq!(a.error_rate, 2.0 / 8.0);
        assert_eq!(a.fault_rate, 1.0 / 8.0);
        assert_eq!(a.average_ms, 3.0);
        let rates: Vec<f64> = a.per_second.iter().map(|p| p.requests_per_second).collect();
        assert_eq!(rates, [4.0, 2.0]);
        assert_eq!(a.per_second[0].error_rate, 0.5);
        let counts: Vec<(Option<u64>, u64)> =
            a.histogram.iter().map(|b| (b.below_ms, b.count)).collect();
        assert_eq!(counts, [(Some(1), 0), (Some(5), 7), (None, 1)]);
    }

    #[test]
    fn a_new_or_retired_version_never_makes_a_service_count_backwards() {
        let mut history = MetricsHistory::new(vec![1, 5]);
        history.record(0.0, vec![series("A", "v1", totals(10, 0, 0, [10, 0, 0]))]);
        // v2 appears with 3 requests; v1 answered 2 more.
        history.record(
            1.0,
            vec![
                series("A", "v1", totals(12, 0, 0, [12, 0, 0])),
                series("A", "v2", totals(3, 0, 0, [3, 0, 0])),
            ],
        );
        // v1 retired: gone from the reading; v2 answered 1 more.
        history.record(2.0, vec![series("A", "v2", totals(4, 0, 0, [4, 0, 0]))]);
        let a = &history.panel().services[0];
        let rates: Vec<f64> = a.per_second.iter().map(|p| p.requests_per_second).collect();
        assert_eq!(rates, [5.0, 1.0]);
        assert_eq!(a.requests, 6);
    }

    #[test]
    fn the_history_keeps_a_bounded_window_and_services_apart() {
        let mut history = MetricsHistory::new(vec![1, 5]);
        for second in 0..=(HISTORY_SAMPLES as u64 + 10) {
            history.record(
                second as f64,
                vec![
                    series("A", "v1", totals(second, 0, 0, [second, 0, 0])),
                    series("B", "v1", totals(second * 2, 0, second, [0, 0, second * 2])),
                ],
            );
        }
        let panel = history.panel();
        assert_eq!(panel.window_seconds, HISTORY_SAMPLES as f64);
        let names: Vec<&str> = panel.services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
        let (a, b) = (&panel.services[0], &panel.services[1]);
        assert_eq!(a.per_second.len(), HISTORY_SAMPLES);
        assert_eq!(a.requests, HISTORY_SAMPLES as u64);
        assert_eq!(b.requests_per_second, 2.0);
        assert_eq!(b.fault_rate, 0.5);
        assert_eq!(
            b.histogram.last().unwrap().count,
            2 * HISTORY_SAMPLES as u64
        );
    }

    #[test]
    fn an_idle_service_is_listed_with_zeros() {
        let mut history = MetricsHistory::new(vec![1, 2, 5, 10, 20]);
        history.record(0.0, vec![series("A", "v1", totals(0, 0, 0, [0, 0, 0]))]);
        let panel = history.panel();
        let a = &panel.services[0];
        assert_eq!(
            (a.requests, a.requests_per_second, a.error_rate),
            (0, 0.0, 0.0)
        );
        assert_eq!(a.histogram.len(), 4);
    }
}
