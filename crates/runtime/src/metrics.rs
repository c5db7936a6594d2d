//! The request metrics of each served component version: requests, errors (4xx), throttles
//! (429), faults (5xx) and the time to the response head as a histogram, per route class.
//!
//! Recording is a handful of relaxed atomic adds on the request path, with no lock and no
//! allocation: each [`ServedComponent`](crate::instance_pool::ServedComponent) holds its
//! [`VersionMetrics`], registered once in a process-wide list. The counters are cumulative and
//! never reset, so several readers can share them ([`snapshot_all`]): the EMF reporter
//! ([`crate::emf`]) and the OTLP exporter at their own intervals, a console panel at its own.
//! Each reader keeps what it read last and reports the difference ([`Deltas`]) or the totals.
//! A version that is no longer served stays listed for [`ORPHAN_GRACE`], so that every reader
//! whose interval is at most a minute sees its last counts, then it is forgotten.
//!
//! Dimensions are bounded on purpose (CloudWatch bills per metric): the service, the
//! component version, and the route class: `health` for `GET /health` (the load balancer's
//! checks, which the original sample's sampling rule also leaves out), `main` for everything
//! else. No per-path, per-client or per-trace dimension.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

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

/// The status classes a series counts apart: `1xx` to `5xx`, by the status's first digit.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in [`STATUS_CLASSES`] of `status`'s class; a status past 599 counts as `5xx`.
fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, STATUS_CLASSES.len()) - 1
}

/// The counters of one status class of a series.
#[derive(Default)]
struct ClassCounters {
    requests: AtomicU64,
    duration_sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKET_BOUNDS_MS.len() + 1],
}

/// The counters of one service, version and route class: per status class, so that the OTLP
/// histogram can carry the class as an attribute; the totals are their sums.
#[derive(Default)]
pub struct RequestCounters {
    by_class: [ClassCounters; STATUS_CLASSES.len()],
    throttles: AtomicU64,
    duration_max_us: AtomicU64,
    /// The smallest duration, stored as `u64::MAX - µs` so that zero means "none yet" and
    /// `fetch_max` keeps the minimum.
    duration_min_inverted: AtomicU64,
}

impl RequestCounters {
    /// Counts one answered request.
    pub fn record(&self, status: u16, duration: Duration) {
        let class = &self.by_class[status_class(status)];
        class.requests.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.throttles.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        class.duration_sum_us.fetch_add(micros, Ordering::Relaxed);
        self.duration_max_us.fetch_max(micros, Ordering::Relaxed);
        self.duration_min_inverted
            .fetch_max(u64::MAX - micros, Ordering::Relaxed);
        let millis = micros / 1_000;
        let bucket = BUCKET_BOUNDS_MS
            .iter()
            .position(|bound| millis < *bound)
            .unwrap_or(BUCKET_BOUNDS_MS.len());
        class.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// What was counted since the counters were made. Requests counted while this runs land
    /// in this snapshot or the next, never in neither.
    pub fn snapshot(&self) -> Snapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let by_class: [ClassSnapshot; STATUS_CLASSES.len()] =
            std::array::from_fn(|i| ClassSnapshot {
                requests: read(&self.by_class[i].requests),
                duration_sum_us: read(&self.by_class[i].duration_sum_us),
                buckets: std::array::from_fn(|b| read(&self.by_class[i].buckets[b])),
            });
        let min_inverted = read(&self.duration_min_inverted);
        Snapshot::from_classes(
            by_class,
            read(&self.throttles),
            read(&self.duration_max_us),
            (min_inverted != 0).then(|| u64::MAX - min_inverted),
        )
    }
}

/// The counts of one status class.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassSnapshot {
    /// Requests answered with a status of the class.
    pub requests: u64,
    /// Sum of their durations, µs.
    pub duration_sum_us: u64,
    /// Their requests per bucket of [`BUCKET_BOUNDS_MS`] (and the last, unbounded one).
    pub buckets: [u64; BUCKET_BOUNDS_MS.len() + 1],
}

impl ClassSnapshot {
    fn since(&self, earlier: &ClassSnapshot) -> ClassSnapshot {
        ClassSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            duration_sum_us: self.duration_sum_us.saturating_sub(earlier.duration_sum_us),
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
        }
    }
}

/// The counts of a series: cumulative from [`snapshot_all`], or over an interval from
/// [`Snapshot::since`].
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// Longest duration since the series was registered, µs (a maximum has no difference
    /// over an interval).
    pub duration_max_us: u64,
    /// Shortest duration since the series was registered, µs, if any request was counted.
    pub duration_min_us: Option<u64>,
    /// Requests per bucket of [`BUCKET_BOUNDS_MS`] (and the last, unbounded one).
    pub buckets: [u64; BUCKET_BOUNDS_MS.len() + 1],
    /// The same per status class, in the order of [`STATUS_CLASSES`].
    pub by_class: [ClassSnapshot; STATUS_CLASSES.len()],
}

impl Snapshot {
    /// The totals of `by_class`, with the other counts as given.
    fn from_classes(
        by_class: [ClassSnapshot; STATUS_CLASSES.len()],
        throttles: u64,
        duration_max_us: u64,
        duration_min_us: Option<u64>,
    ) -> Snapshot {
        Snapshot {
            requests: by_class.iter().map(|c| c.requests).sum(),
            errors: by_class[3].requests,
            throttles,
            faults: by_class[4].requests,
            duration_sum_us: by_class.iter().map(|c| c.duration_sum_us).sum(),
            duration_max_us,
            duration_min_us,
            buckets: std::array::from_fn(|b| by_class.iter().map(|c| c.buckets[b]).sum()),
            by_class,
        }
    }

    /// What was counted between `earlier` and this snapshot of the same series. The longest
    /// and shortest durations stay the series' own, since those have no difference.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot::from_classes(
            std::array::from_fn(|i| self.by_class[i].since(&earlier.by_class[i])),
            self.throttles.saturating_sub(earlier.throttles),
            self.duration_max_us,
            self.duration_min_us,
        )
    }
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
    /// When it was registered: the start of its cumulative counts.
    pub registered_at: SystemTime,
    /// Its counters.
    pub counters: RequestCounters,
}

impl VersionMetrics {
    /// The series of `service` serving `version`, registered for the reporter.
    pub fn register(service: &str, version: &str) -> VersionMetrics {
        let (service, version): (Arc<str>, Arc<str>) = (service.into(), version.into());
        let registered_at = SystemTime::now();
        let series = [RouteClass::Health, RouteClass::Main].map(|route| {
            Arc::new(Series {
                service: service.clone(),
                version: version.clone(),
                route,
                registered_at,
                counters: RequestCounters::default(),
            })
        });
        registry().add(&series);
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

/// How long the series of a version no longer served stay listed: several of the longest
/// interval a reader may have ([`crate::emf::MAX_INTERVAL`]), so each reader reads their last
/// counts at least once more.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(180);

/// Every registered series with what it counted since it was registered. Series of a version
/// no longer served are listed for [`ORPHAN_GRACE`] after this first notices it, then dropped.
/// Nothing is reset: any number of readers may call this at their own pace.
pub fn snapshot_all() -> Vec<(Arc<Series>, Snapshot)> {
    registry().snapshot_at(Instant::now())
}

/// The list of registered series, one per process ([`registry`]).
#[derive(Default)]
struct Registry {
    entries: Mutex<Vec<Registered>>,
}

/// A series as the registry lists it.
struct Registered {
    series: Arc<Series>,
    /// When a snapshot first found nobody else holding it.
    orphaned_at: Option<Instant>,
}

impl Registry {
    fn add(&self, series: &[Arc<Series>]) {
        lock(&self.entries).extend(series.iter().map(|series| Registered {
            series: series.clone(),
            orphaned_at: None,
        }));
    }

    fn snapshot_at(&self, now: Instant) -> Vec<(Arc<Series>, Snapshot)> {
        let mut all = lock(&self.entries);
        all.retain_mut(|entry| {
            // Only the registry holds the series of a version nobody serves any more: nothing
            // can count into it again, so its counts are final.
            if entry.orphaned_at.is_none() && Arc::strong_count(&entry.series) == 1 {
                entry.orphaned_at = Some(now);
            }
            entry
                .orphaned_at
                .is_none_or(|since| now.saturating_duration_since(since) < ORPHAN_GRACE)
        });
        all.iter()
            .map(|entry| (entry.series.clone(), entry.series.counters.snapshot()))
            .collect()
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// One reader's memory of what it last read of each series, to report differences.
///
/// It holds the series weakly, so it never keeps a version's series listed and a forgotten
/// series' address cannot be taken by a new one while it is remembered.
#[derive(Default)]
pub struct Deltas {
    previous: HashMap<usize, (Weak<Series>, Snapshot)>,
}

impl Deltas {
    /// An empty memory: the first call reports everything counted so far.
    pub fn new() -> Deltas {
        Deltas::default()
    }

    /// What each series of `current` (from [`snapshot_all`]) counted since the last call; the
    /// series no longer listed are forgotten.
    pub fn advance(
        &mut self,
        current: Vec<(Arc<Series>, Snapshot)>,
    ) -> Vec<(Arc<Series>, Snapshot)> {
        let mut next = HashMap::with_capacity(current.len());
        let deltas = current
            .into_iter()
            .map(|(series, cumulative)| {
                let key = Arc::as_ptr(&series) as usize;
                let delta = match self.previous.get(&key) {
                    Some((_, earlier)) => cumulative.since(earlier),
                    None => cumulative.clone(),
                };
                next.insert(key, (Arc::downgrade(&series), cumulative));
                (series, delta)
            })
            .collect();
        self.previous = next;
        deltas
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is counters: a panic elsewhere cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_durations_are_counted_cumulatively() {
        let counters = RequestCounters::default();
        counters.record(200, Duration::from_micros(1_500));
        counters.record(404, Duration::from_millis(7));
        counters.record(429, Duration::from_millis(40));
        counters.record(503, Duration::from_secs(40));
        let snapshot = counters.snapshot();
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
        // Reading does not reset: a second reader sees the same totals.
        assert_eq!(counters.snapshot(), snapshot);
        counters.record(200, Duration::from_millis(3));
        let later = counters.snapshot();
        assert_eq!(later.requests, 5);
        let interval = later.since(&snapshot);
        assert_eq!(
            (interval.requests, interval.errors, interval.faults),
            (1, 0, 0)
        );
        assert_eq!(interval.duration_sum_us, 3_000);
        assert_eq!(interval.buckets.iter().sum::<u64>(), 1);
        assert_eq!(interval.buckets[2], 1);
        assert_eq!(interval.by_class[1].requests, 1);
        assert_eq!(later.by_class.clone().map(|c| c.requests), [0, 2, 0, 2, 1]);
        assert_eq!(later.by_class[4].duration_sum_us, 40_000_000);
    }

    fn counts_of(all: &[(Arc<Series>, Snapshot)], service: &str, route: RouteClass) -> Option<u64> {
        all.iter()
            .find(|(series, _)| &*series.service == service && series.route == route)
            .map(|(_, snapshot)| snapshot.requests)
    }

    #[test]
    fn every_reader_sees_the_totals_and_its_own_differences() {
        let version = VersionMetrics::register("readers-test", "000000000001");
        let (mut emf, mut otlp) = (Deltas::new(), Deltas::new());
        version.record(RouteClass::Main, 200, Duration::from_millis(1));
        version.record(RouteClass::Main, 500, Duration::from_millis(1));
        let first = emf.advance(snapshot_all());
        assert_eq!(counts_of(&first, "readers-test", RouteClass::Main), Some(2));
        version.record(RouteClass::Main, 200, Duration::from_millis(1));
        // The first reader sees one more; the second, which had not read, all three; the
        // totals are untouched by either.
        let second = emf.advance(snapshot_all());
        assert_eq!(
            counts_of(&second, "readers-test", RouteClass::Main),
            Some(1)
        );
        let other = otlp.advance(snapshot_all());
        assert_eq!(counts_of(&other, "readers-test", RouteClass::Main), Some(3));
        assert_eq!(
            counts_of(&snapshot_all(), "readers-test", RouteClass::Main),
            Some(3)
        );
    }

    #[test]
    fn a_version_no_longer_served_is_listed_for_the_grace_period_then_forgotten() {
        // A registry of its own, so that no other test's snapshot holds the series.
        let registry = Registry::default();
        let series = Arc::new(Series {
            service: "orphan-test".into(),
            version: "000000000002".into(),
            route: RouteClass::Health,
            registered_at: SystemTime::now(),
            counters: RequestCounters::default(),
        });
        registry.add(std::slice::from_ref(&series));
        series.counters.record(200, Duration::from_millis(1));
        let start = Instant::now();
        let served = registry.snapshot_at(start);
        drop(served);
        let later = start + ORPHAN_GRACE * 2;
        assert_eq!(
            counts_of(
                &registry.snapshot_at(later),
                "orphan-test",
                RouteClass::Health
            ),
            Some(1),
            "a served version stays listed however long"
        );
        drop(series);
        // Seen by a reader right away and by one that reads near the end of the grace.
        let now = registry.snapshot_at(later);
        assert_eq!(counts_of(&now, "orphan-test", RouteClass::Health), Some(1));
        drop(now);
        let late = registry.snapshot_at(later + ORPHAN_GRACE - Duration::from_secs(1));
        assert_eq!(counts_of(&late, "orphan-test", RouteClass::Health), Some(1));
        drop(late);
        let gone = registry.snapshot_at(later + ORPHAN_GRACE);
        assert_eq!(counts_of(&gone, "orphan-test", RouteClass::Health), None);
    }

    #[test]
    fn health_checks_are_their_own_route_class() {
        assert_eq!(RouteClass::of("/health"), RouteClass::Health);
        assert_eq!(RouteClass::of("/"), RouteClass::Main);
        assert_eq!(RouteClass::of("/health/x"), RouteClass::Main);
    }
}
