//! The request metrics of each served component version: requests, errors (4xx), throttles
//! (429), faults (5xx) and the time to the response head as a histogram, per route class.
//!
//! Recording is a handful of relaxed atomic adds on the request path, with no lock and no
//! allocation: each [`ServedComponent`](crate::instance_pool::ServedComponent) holds its
//! [`VersionMetrics`], registered once in a process-wide list that the reporter
//! ([`crate::emf`]) reads and resets at each interval. A version that is no longer served is
//! reported one last time, then forgotten.
//!
//! Dimensions are bounded on purpose (CloudWatch bills per metric): the service, the
//! component version, and the route class: `health` for `GET /health` (the load balancer's
//! checks, which the original sample's sampling rule also leaves out), `main` for everything
//! else. No per-path, per-client or per-trace dimension.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the duration histogram's buckets, in milliseconds; a last bucket holds the
/// rest.
pub const BUCKET_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// Which requests a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// `/health`.
    Health,
    /// Every other path.
    Main,
}

impl RouteClass {
    /// The class of a request for `path`.
    pub fn of(path: &str) -> RouteClass {
        if path == "/health" {
            RouteClass::Health
        } else {
            RouteClass::Main
        }
    }

    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Health => "health",
            RouteClass::Main => "main",
        }
    }
}

/// The counters of one service, version and route class.
#[derive(Default)]
pub struct RequestCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    throttles: AtomicU64,
    faults: AtomicU64,
    duration_sum_us: AtomicU64,
    duration_max_us: AtomicU64,
    /// The smallest duration, stored as `u64::MAX - µs` so that zero means "none yet" and
    /// `fetch_max` keeps the minimum.
    duration_min_inverted: AtomicU64,
    buckets: [AtomicU64; BUCKET_BOUNDS_MS.len() + 1],
}

impl RequestCounters {
    /// Counts one answered request.
    pub fn record(&self, status: u16, duration: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            429 => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.throttles.fetch_add(1, Ordering::Relaxed);
            }
            400..=499 => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            500..=599 => {
                self.faults.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_us.fetch_add(micros, Ordering::Relaxed);
        self.duration_max_us.fetch_max(micros, Ordering::Relaxed);
        self.duration_min_inverted
            .fetch_max(u64::MAX - micros, Ordering::Relaxed);
        let millis = micros / 1_000;
        let bucket = BUCKET_BOUNDS_MS
            .iter()
            .position(|bound| millis < *bound)
            .unwrap_or(BUCKET_BOUNDS_MS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// What was counted since the last call, and zeroes it. Requests counted while this runs
    /// land in this snapshot or the next, never in neither.
    pub fn take(&self) -> Snapshot {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
        let min_inverted = take(&self.duration_min_inverted);
        Snapshot {
            requests: take(&self.requests),
            errors: take(&self.errors),
            throttles: take(&self.throttles),
            faults: take(&self.faults),
            duration_sum_us: take(&self.duration_sum_us),
            duration_max_us: take(&self.duration_max_us),
            duration_min_us: (min_inverted != 0).then(|| u64::MAX - min_inverted),
            buckets: std::array::from_fn(|i| take(&self.buckets[i])),
        }
    }
}

/// One interval's counts of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
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
    /// Longest duration, µs.
    pub duration_max_us: u64,
    /// Shortest duration, µs, if any request was counted.
    pub duration_min_us: Option<u64>,
    /// Requests per bucket of [`BUCKET_BOUNDS_MS`] (and the last, unbounded one).
    pub buckets: [u64; BUCKET_BOUNDS_MS.len() + 1],
}

/// The series of one served component version.
pub struct VersionMetrics {
    series: [Arc<Series>; 2],
}

/// One service, version and route class, as the registry holds it.
pub struct Series {
    /// The service's name.
    pub service: Arc<str>,
    /// The component version's short content hash.
    pub version: Arc<str>,
    /// The route class.
    pub route: RouteClass,
    /// Its counters.
    pub counters: RequestCounters,
}

impl VersionMetrics {
    /// The series of `service` serving `version`, registered for the reporter.
    pub fn register(service: &str, version: &str) -> VersionMetrics {
        let (service, version): (Arc<str>, Arc<str>) = (service.into(), version.into());
        let series = [RouteClass::Health, RouteClass::Main].map(|route| {
            Arc::new(Series {
                service: service.clone(),
                version: version.clone(),
                route,
                counters: RequestCounters::default(),
            })
        });
        let mut all = lock(registry());
        all.extend(series.iter().cloned());
        VersionMetrics { series }
    }

    /// Counts one answered request of `route`.
    pub fn record(&self, route: RouteClass, status: u16, duration: Duration) {
        let index = match route {
            RouteClass::Health => 0,
            RouteClass::Main => 1,
        };
        self.series[index].counters.record(status, duration);
    }
}

/// Every registered series with what it counted since the last call; series of versions no
/// longer served are dropped from the registry once taken.
pub fn take_all() -> Vec<(Arc<Series>, Snapshot)> {
    let mut all = lock(registry());
    // Only the registry holds the series of a version nobody serves any more (checked before
    // the snapshot holds them too).
    let orphaned: Vec<bool> = all.iter().map(|s| Arc::strong_count(s) == 1).collect();
    let taken = all
        .iter()
        .map(|series| (series.clone(), series.counters.take()))
        .collect();
    let mut index = 0;
    all.retain(|_| {
        index += 1;
        !orphaned[index - 1]
    });
    taken
}

fn registry() -> &'static Mutex<Vec<Arc<Series>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<Series>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is counters: a panic elsewhere cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_durations_are_counted_and_taken_once() {
        let counters = RequestCounters::default();
        counters.record(200, Duration::from_micros(1_500));
        counters.record(404, Duration::from_millis(7));
        counters.record(429, Duration::from_millis(40));
        counters.record(503, Duration::from_secs(40));
        let snapshot = counters.take();
        assert_eq!(
            (
                snapshot.requests,
                snapshot.errors,
                snapshot.throttles,
                snapshot.faults
            ),
            (4, 2, 1, 1)
        );
        assert_eq!(snapshot.duration_min_us, Some(1_500));
        assert_eq!(snapshot.duration_max_us, 40_000_000);
        assert_eq!(
            snapshot.duration_sum_us,
            1_500 + 7_000 + 40_000 + 40_000_000
        );
        // 1.5 ms < 2, 7 ms < 10, 40 ms < 50, 40 s beyond the last bound.
        let mut expected = [0; BUCKET_BOUNDS_MS.len() + 1];
        expected[1] = 1;
        expected[3] = 1;
        expected[5] = 1;
        expected[BUCKET_BOUNDS_MS.len()] = 1;
        assert_eq!(snapshot.buckets, expected);
        let again = counters.take();
        assert_eq!(again.requests, 0);
        assert_eq!(again.duration_min_us, None);
    }

    #[test]
    fn health_checks_are_their_own_route_class() {
        assert_eq!(RouteClass::of("/health"), RouteClass::Health);
        assert_eq!(RouteClass::of("/"), RouteClass::Main);
        assert_eq!(RouteClass::of("/health/x"), RouteClass::Main);
    }
}
