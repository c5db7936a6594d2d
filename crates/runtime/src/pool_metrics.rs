//! The instance pool's metrics of one served component version ([`crate::instance_pool`]):
//! instances live, made and retired by cause, requests each instance served, and how long
//! instantiation took. A [`MetricSource`] of [`crate::metric_sources`], dimensioned by service
//! and version.

use crate::metric_sources::{AtomicGauge, AtomicHistogram, MetricSource, Reading, Unit, Value};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the instantiation-time buckets, ms.
static INSTANTIATION_BOUNDS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    30_000.0,
];
/// Upper bounds of the requests-per-instance buckets: powers of two up to twice the default
/// reuse count of a WASI 0.3 instance.
static REQUESTS_BOUNDS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Why an instance was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RetireCause {
    /// Idle past the idle timeout.
    Idle = 1,
    /// Busy past every request's deadline.
    Deadline = 2,
    /// It served as many requests as an instance may.
    ReuseLimit = 3,
    /// It trapped, ran out of memory or otherwise failed.
    Failed = 4,
    /// None of these was seen (the pool itself was dropped).
    Other = 5,
}

impl RetireCause {
    const ALL: [RetireCause; 5] = [
        RetireCause::Idle,
        RetireCause::Deadline,
        RetireCause::ReuseLimit,
        RetireCause::Failed,
        RetireCause::Other,
    ];

    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetireCause::Idle => "idle",
            RetireCause::Deadline => "deadline",
            RetireCause::ReuseLimit => "reuse_limit",
            RetireCause::Failed => "failed",
            RetireCause::Other => "other",
        }
    }
}

/// The first cause noted for one instance: shared by its worker and its expiry, which each
/// see part of the story.
#[derive(Default)]
pub struct PendingCause(AtomicU8);

impl PendingCause {
    /// Notes `cause` unless one was noted before.
    pub fn note(&self, cause: RetireCause) {
        let _ = self
            .0
            .compare_exchange(0, cause as u8, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The noted cause, [`RetireCause::Other`] if none.
    pub fn get(&self) -> RetireCause {
        let noted = self.0.load(Ordering::Relaxed);
        RetireCause::ALL
            .into_iter()
            .find(|cause| *cause as u8 == noted)
            .unwrap_or(RetireCause::Other)
    }
}

/// The pool metrics of one service's component version.
pub struct PoolMetrics {
    service: String,
    version: String,
    live: AtomicGauge,
    created: AtomicU64,
    retired: [AtomicU64; RetireCause::ALL.len()],
    requests_per_instance: AtomicHistogram,
    instantiation_ms: AtomicHistogram,
}

impl PoolMetrics {
    /// Empty metrics for `service` serving `version`.
    pub fn new(service: &str, version: &str) -> PoolMetrics {
        PoolMetrics {
            service: service.to_string(),
            version: version.to_string(),
            live: AtomicGauge::default(),
            created: AtomicU64::new(0),
            retired: Default::default(),
            requests_per_instance: AtomicHistogram::new(&REQUESTS_BOUNDS),
            instantiation_ms: AtomicHistogram::new(&INSTANTIATION_BOUNDS_MS),
        }
    }

    /// Counts an instance made in `took`.
    pub fn created(&self, took: Duration) {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.live.add(1);
        self.instantiation_ms.record(took.as_secs_f64() * 1_000.0);
    }

    /// Counts an instance dropped for `cause` after serving `requests`.
    pub fn retired(&self, cause: RetireCause, requests: u64) {
        self.live.add(-1);
        let index = RetireCause::ALL
            .iter()
            .position(|c| *c == cause)
            .unwrap_or(0);
        self.retired[index].fetch_add(1, Ordering::Relaxed);
        self.requests_per_instance.record(requests as f64);
    }
}

impl MetricSource for PoolMetrics {
    fn group(&self) -> &'static str {
        "InstancePool"
    }

    fn dimensions(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Service", self.service.clone()),
            ("Version", self.version.clone()),
        ]
    }

    fn read(&self) -> Vec<Reading> {
        let mut readings = vec![
            Reading {
                name: "InstancesLive".into(),
                otel_name: "xray_host.instances.live".into(),
                description: "Instances of the component version in memory".into(),
                unit: Unit::Count("{instance}"),
                attributes: Vec::new(),
                value: Value::Gauge(self.live.get()),
            },
            Reading {
                name: "InstancesCreated".into(),
                otel_name: "xray_host.instances.created".into(),
                description: "Instances made".into(),
                unit: Unit::Count("{instance}"),
                attributes: Vec::new(),
                value: Value::Counter(self.created.load(Ordering::Relaxed)),
            },
            Reading {
                name: "RequestsPerInstance".into(),
                otel_name: "xray_host.instance.requests".into(),
                description: "Requests each retired instance served".into(),
                unit: Unit::Count("{request}"),
                attributes: Vec::new(),
                value: Value::Histogram(self.requests_per_instance.read()),
            },
            Reading {
                name: "InstantiationTime".into(),
                otel_name: "xray_host.instance.instantiation.duration".into(),
                description: "Time to instantiate the component".into(),
                unit: Unit::Milliseconds,
                attributes: Vec::new(),
                value: Value::Histogram(self.instantiation_ms.read()),
            },
        ];
        readings.extend(
            RetireCause::ALL
                .iter()
                .zip(&self.retired)
                .map(|(cause, count)| Reading {
                    name: "InstancesRetired".into(),
                    otel_name: "xray_host.instances.retired".into(),
                    description: "Instances dropped, by cause".into(),
                    unit: Unit::Count("{instance}"),
                    attributes: vec![("Cause".into(), cause.as_str().to_string())],
                    value: Value::Counter(count.load(Ordering::Relaxed)),
                }),
        );
        readings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_noted_is_the_one_counted() {
        let pending = PendingCause::default();
        assert_eq!(pending.get(), RetireCause::Other);
        pending.note(RetireCause::ReuseLimit);
        pending.note(RetireCause::Idle);
        assert_eq!(pending.get(), RetireCause::ReuseLimit);
    }

    #[test]
    fn instances_made_and_retired_are_counted_and_the_live_ones_follow() {
        let pool = PoolMetrics::new("pool-test", "000000000003");
        pool.created(Duration::from_millis(3));
        pool.created(Duration::from_millis(30));
        pool.retired(RetireCause::Idle, 5);
        let readings = pool.read();
        let value = |name: &str, cause: Option<&str>| {
            readings
                .iter()
                .find(|r| r.name == name && r.attributes.first().map(|(_, v)| v.as_str()) == cause)
                .map(|r| r.value.clone())
                .unwrap()
        };
        assert_eq!(value("InstancesLive", None), Value::Gauge(1.0));
        assert_eq!(value("InstancesCreated", None), Value::Counter(2));
        assert_eq!(value("InstancesRetired", Some("idle")), Value::Counter(1));
        assert_eq!(value("InstancesRetired", Some("failed")), Value::Counter(0));
        let Value::Histogram(requests) = value("RequestsPerInstance", None) else {
            panic!()
        };
        assert_eq!(requests.counts[3], 1, "5 requests: in the bucket up to 8");
        let Value::Histogram(took) = value("InstantiationTime", None) else {
            panic!()
        };
        assert_eq!(took.count(), 2);
    }
}
