//! The host's metrics beside the request metrics ([`crate::metrics`]): the instance pool, the
//! table, the trace exporters, the refused outgoing calls, and what components record through
//! wasi:otel. Each is a [`MetricSource`] that the module owning the counted thing defines and
//! registers here; the reporters (EMF, OTLP) read every source the same way.
//!
//! As with the request metrics, the values are cumulative and never reset ([`read_all`]), each
//! reader keeps its own previous values ([`SourceDeltas`]), and a source nobody else holds any
//! more (a version no longer served) stays listed for [`ORPHAN_GRACE`] so each reader sees its
//! last values.
//!
//! A source's dimensions are bounded by construction: the service and version where they
//! apply, a table operation, an exporter's kind, a refusal's rule, never a path, a client or a
//! trace.

use crate::metrics::ORPHAN_GRACE;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Instant, SystemTime};

/// A metric's unit, as both outputs spell it.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// A number of things, with the UCUM unit OTLP carries (`{instance}`, `1`).
    Count(&'static str),
    /// Milliseconds (OTLP's conventions want seconds: histograms in this unit are written in
    /// seconds there).
    Milliseconds,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
    /// What a component named (UCUM), passed on as written to OTLP; EMF gets its own name for
    /// `ms`, `s`, `By` and counts, `None` for the rest (it accepts only its own list).
    Other(String),
}

impl Unit {
    /// The unit for EMF's `Unit` field.
    pub fn emf(&self) -> &'static str {
        match self {
            Unit::Count(_) => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
            Unit::Other(unit) => match unit.as_str() {
                "ms" => "Milliseconds",
                "s" => "Seconds",
                "By" => "Bytes",
                "1" => "Count",
                // UCUM's annotations (`{request}`) count things.
                count if count.starts_with('{') && count.ends_with('}') => "Count",
                _ => "None",
            },
        }
    }
}

/// How a metric's values add up.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count that only grows: cumulative since the source was registered.
    Counter(u64),
    /// The same in any number (a component's sum): cumulative since registered.
    Sum(f64),
    /// A level that goes up and down (instances live): its value now.
    Gauge(f64),
    /// A distribution, cumulative since the source was registered.
    Histogram(HistogramCounts),
}

/// A histogram's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramCounts {
    /// The buckets' upper bounds, in the metric's unit; a last bucket holds the rest.
    pub bounds: Cow<'static, [f64]>,
    /// Values per bucket: one more than `bounds`.
    pub counts: Vec<u64>,
    /// Sum of the values.
    pub sum: f64,
    /// The largest value since the source was registered, if any.
    pub max: Option<f64>,
}

impl HistogramCounts {
    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One metric of a source as read now.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Its EMF name (`InstancesCreated`).
    pub name: Cow<'static, str>,
    /// Its OTLP name (`xray_host.instances.created`).
    pub otel_name: Cow<'static, str>,
    /// What it counts, for OTLP's description.
    pub description: Cow<'static, str>,
    /// Its unit.
    pub unit: Unit,
    /// Dimensions of this reading beyond the source's own (a retirement's cause): each a
    /// bounded set of values.
    pub attributes: Attributes,
    /// Its value.
    pub value: Value,
}

/// Something that counts, registered with [`register`].
pub trait MetricSource: Send + Sync {
    /// The group's name, written beside the values (`InstancePool`, `Table`).
    fn group(&self) -> &'static str;

    /// Its dimensions, EMF's names and values (`Service`, `Version`); empty for the process's
    /// own (the table, the exporters). `Service` and `Version` become the OTLP resource's
    /// `service.name` and `service.version`.
    fn dimensions(&self) -> Vec<(&'static str, String)>;

    /// Its metrics now.
    fn read(&self) -> Vec<Reading>;
}

/// A histogram of fixed buckets, written with relaxed atomic adds.
pub struct AtomicHistogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    /// Sum of the values, in thousandths of the unit, so it stays an atomic integer.
    sum_milli: AtomicU64,
    /// The largest value, in thousandths of the unit, plus one (zero: none yet).
    max_milli: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram over `bounds` (ascending upper bounds).
    pub fn new(bounds: &'static [f64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_milli: AtomicU64::new(0),
            max_milli: AtomicU64::new(0),
        }
    }

    /// Counts `value`.
    pub fn record(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let milli = (value.max(0.0) * 1_000.0) as u64;
        self.sum_milli.fetch_add(milli, Ordering::Relaxed);
        self.max_milli
            .fetch_max(milli.saturating_add(1), Ordering::Relaxed);
    }

    /// Its counts now.
    pub fn read(&self) -> HistogramCounts {
        let max = self.max_milli.load(Ordering::Relaxed);
        HistogramCounts {
            bounds: Cow::Borrowed(self.bounds),
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum_milli.load(Ordering::Relaxed) as f64 / 1_000.0,
            max: (max != 0).then(|| (max - 1) as f64 / 1_000.0),
        }
    }
}

/// A level, as a counter pair would not survive a reset: added to and taken from.
#[derive(Default)]
pub struct AtomicGauge(AtomicI64);

impl AtomicGauge {
    /// Adds `delta` (negative to take).
    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }

    /// Its value now.
    pub fn get(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64
    }
}

/// A registered source with what it read now, and when it was registered (the start of its
/// cumulative values).
#[derive(Clone)]
pub struct SourceReading {
    /// The source.
    pub source: Arc<dyn MetricSource>,
    /// When it was registered.
    pub registered_at: SystemTime,
    /// Its metrics.
    pub readings: Vec<Reading>,
}

/// Lists `source` for every reader; it stays listed while anybody else holds it, and for
/// [`ORPHAN_GRACE`] after.
pub fn register(source: Arc<dyn MetricSource>) {
    registry().add(source, false);
}

/// Lists `source` for the rest of the process, whether or not anybody else holds it: for
/// what lives as long as the process (the trace exporters' counters).
pub fn register_for_process(source: Arc<dyn MetricSource>) {
    registry().add(source, true);
}

/// Every listed source with its cumulative values. Nothing is reset: any number of readers may
/// call this at their own pace.
pub fn read_all() -> Vec<SourceReading> {
    registry().read_at(Instant::now())
}

#[derive(Default)]
struct Registry {
    entries: Mutex<Vec<Registered>>,
}

struct Registered {
    source: Arc<dyn MetricSource>,
    registered_at: SystemTime,
    /// Listed whoever holds it.
    for_process: bool,
    /// When a read first found nobody else holding it.
    orphaned_at: Option<Instant>,
}

impl Registry {
    fn add(&self, source: Arc<dyn MetricSource>, for_process: bool) {
        lock(&self.entries).push(Registered {
            source,
            registered_at: SystemTime::now(),
            for_process,
            orphaned_at: None,
        });
    }

    fn read_at(&self, now: Instant) -> Vec<SourceReading> {
        let mut all = lock(&self.entries);
        all.retain_mut(|entry| {
            // Only the registry holds it: nothing can count into it again.
            if !entry.for_process
                && entry.orphaned_at.is_none()
                && Arc::strong_count(&entry.source) == 1
            {
                entry.orphaned_at = Some(now);
            }
            entry
                .orphaned_at
                .is_none_or(|since| now.saturating_duration_since(since) < ORPHAN_GRACE)
        });
        all.iter()
            .map(|entry| SourceReading {
                source: entry.source.clone(),
                registered_at: entry.registered_at,
                readings: entry.source.read(),
            })
            .collect()
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is a list of sources: a panic elsewhere cannot leave it inconsistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One reader's memory of the values it last read, to report what changed since.
///
/// Sources are held weakly, so a reader never keeps one listed, and a forgotten source's
/// address cannot be taken by a new one while it is remembered.
#[derive(Default)]
pub struct SourceDeltas {
    previous: HashMap<usize, Remembered>,
}

/// A source as a reader remembers it: weakly, with its values when last read.
type Remembered = (Weak<dyn MetricSource>, HashMap<ReadingKey, Value>);

/// A reading's identity within its source: its name and attributes.
type ReadingKey = (Cow<'static, str>, Attributes);

/// A reading's attributes.
pub type Attributes = Vec<(Cow<'static, str>, String)>;

impl SourceDeltas {
    /// An empty memory: the first call reports everything counted so far.
    pub fn new() -> SourceDeltas {
        SourceDeltas::default()
    }

    /// `current` (from [`read_all`]) with counters and histograms as the change since the
    /// last call (gauges as they are); sources no longer listed are forgotten.
    pub fn advance(&mut self, current: Vec<SourceReading>) -> Vec<SourceReading> {
        let mut next = HashMap::with_capacity(current.len());
        let deltas = current
            .into_iter()
            .map(|mut reading| {
                let key = Arc::as_ptr(&reading.source) as *const () as usize;
                let earlier = self.previous.remove(&key).map(|(_, values)| values);
                let mut values = HashMap::with_capacity(reading.readings.len());
                for metric in &mut reading.readings {
                    let id = (metric.name.clone(), metric.attributes.clone());
                    let cumulative = metric.value.clone();
                    if let Some(before) = earlier.as_ref().and_then(|e| e.get(&id)) {
                        metric.value = difference(&metric.value, before);
                    }
                    values.insert(id, cumulative);
                }
                next.insert(key, (Arc::downgrade(&reading.source), values));
                reading
            })
            .collect();
        self.previous = next;
        deltas
    }
}

/// `now` less `before` for what accumulates; a gauge, or values of another shape, as `now`.
fn difference(now: &Value, before: &Value) -> Value {
    match (now, before) {
        (Value::Counter(now), Value::Counter(before)) => {
            Value::Counter(now.saturating_sub(*before))
        }
        (Value::Sum(now), Value::Sum(before)) => Value::Sum((now - before).max(0.0)),
        (Value::Histogram(now), Value::Histogram(before)) if now.bounds == before.bounds => {
            Value::Histogram(HistogramCounts {
                bounds: now.bounds.clone(),
                counts: now
                    .counts
                    .iter()
                    .zip(&before.counts)
                    .map(|(n, b)| n.saturating_sub(*b))
                    .collect(),
                sum: (now.sum - before.sum).max(0.0),
                max: now.max,
            })
        }
        (now, _) => now.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    static BOUNDS: [f64; 3] = [1.0, 10.0, 100.0];

    struct Calls {
        calls: AtomicU64,
        live: AtomicGauge,
        sizes: AtomicHistogram,
    }

    impl MetricSource for Calls {
        fn group(&self) -> &'static str {
            "Test"
        }

        fn dimensions(&self) -> Vec<(&'static str, String)> {
            vec![("Service", "sources-test".into())]
        }

        fn read(&self) -> Vec<Reading> {
            let reading = |name: &'static str, value| Reading {
                name: name.into(),
                otel_name: name.into(),
                description: "".into(),
                unit: Unit::Count("1"),
                attributes: Vec::new(),
                value,
            };
            vec![
                reading("Calls", Value::Counter(self.calls.load(Ordering::Relaxed))),
                reading("Live", Value::Gauge(self.live.get())),
                reading("Sizes", Value::Histogram(self.sizes.read())),
            ]
        }
    }

    fn source() -> Arc<Calls> {
        Arc::new(Calls {
            calls: AtomicU64::new(0),
            live: AtomicGauge::default(),
            sizes: AtomicHistogram::new(&BOUNDS),
        })
    }

    #[test]
    fn histograms_count_each_value_in_the_first_bucket_that_holds_it() {
        let histogram = AtomicHistogram::new(&BOUNDS);
        for value in [0.5, 1.0, 7.0, 250.0] {
            histogram.record(value);
        }
        let counts = histogram.read();
        assert_eq!(counts.counts, [2, 1, 0, 1]);
        assert_eq!(counts.sum, 258.5);
        assert_eq!(counts.max, Some(250.0));
        assert_eq!(counts.count(), 4);
    }

    #[test]
    fn each_reader_gets_the_change_since_its_own_last_read_and_gauges_as_they_are() {
        let registry = Registry::default();
        let calls = source();
        registry.add(calls.clone(), false);
        let (mut first, mut second) = (SourceDeltas::new(), SourceDeltas::new());
        calls.calls.fetch_add(3, Ordering::Relaxed);
        calls.live.add(2);
        calls.sizes.record(5.0);
        let values = |readings: Vec<SourceReading>| -> Vec<Value> {
            readings[0]
                .readings
                .iter()
                .map(|r| r.value.clone())
                .collect()
        };
        let start = Instant::now();
        let a = values(first.advance(registry.read_at(start)));
        assert_eq!(a[0], Value::Counter(3));
        calls.calls.fetch_add(1, Ordering::Relaxed);
        calls.live.add(-1);
        let b = values(first.advance(registry.read_at(start)));
        assert_eq!(b[0], Value::Counter(1));
        assert_eq!(b[1], Value::Gauge(1.0));
        let Value::Histogram(sizes) = &b[2] else {
            panic!("{b:?}")
        };
        assert_eq!(sizes.count(), 0, "no new value since the last read");
        let c = values(second.advance(registry.read_at(start)));
        assert_eq!(
            c[0],
            Value::Counter(4),
            "a reader of its own sees the totals"
        );
    }

    #[test]
    fn a_source_nobody_holds_is_read_for_the_grace_period_then_forgotten() {
        let registry = Registry::default();
        let calls = source();
        registry.add(calls.clone(), false);
        registry.add(source(), true);
        calls.calls.fetch_add(1, Ordering::Relaxed);
        drop(calls);
        let start = Instant::now();
        assert_eq!(registry.read_at(start).len(), 2);
        assert_eq!(
            registry
                .read_at(start + ORPHAN_GRACE - Duration::from_secs(1))
                .len(),
            2
        );
        // The process's own stays.
        assert_eq!(registry.read_at(start + ORPHAN_GRACE).len(), 1);
    }
}
