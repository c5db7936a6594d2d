//! The table's metrics: calls, failed calls and their duration per operation and backend, a
//! [`MetricSource`] of the process (the table is shared by its services).

use crate::metric_sources::{AtomicHistogram, MetricSource, Reading, Unit, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the call-duration buckets, ms.
static DURATION_BOUNDS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    30_000.0,
];

/// A table operation, as DynamoDB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `PutItem`.
    PutItem,
    /// `GetItem`.
    GetItem,
}

impl Operation {
    const ALL: [Operation; 2] = [Operation::PutItem, Operation::GetItem];

    fn as_str(self) -> &'static str {
        match self {
            Operation::PutItem => "PutItem",
            Operation::GetItem => "GetItem",
        }
    }
}

#[derive(Default)]
struct OperationCounters {
    calls: AtomicU64,
    failures: AtomicU64,
    duration_ms: Option<AtomicHistogram>,
}

/// The counters of the process's table.
pub struct TableMetrics {
    /// `dynamodb` or `embedded`.
    backend: &'static str,
    operations: [OperationCounters; Operation::ALL.len()],
}

impl TableMetrics {
    /// Empty counters for a table on `backend` (`dynamodb`, `embedded`).
    pub fn new(backend: &'static str) -> TableMetrics {
        TableMetrics {
            backend,
            operations: std::array::from_fn(|_| OperationCounters {
                duration_ms: Some(AtomicHistogram::new(&DURATION_BOUNDS_MS)),
                ..OperationCounters::default()
            }),
        }
    }

    /// Counts one call of `operation` that took `took` and failed or not. A call refused
    /// before it reached the backend (an invalid item) is not a table call.
    pub fn call(&self, operation: Operation, took: Duration, failed: bool) {
        let index = Operation::ALL
            .iter()
            .position(|o| *o == operation)
            .unwrap_or(0);
        let counters = &self.operations[index];
        counters.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(histogram) = &counters.duration_ms {
            histogram.record(took.as_secs_f64() * 1_000.0);
        }
    }
}

impl MetricSource for TableMetrics {
    fn group(&self) -> &'static str {
        "Table"
    }

    fn dimensions(&self) -> Vec<(&'static str, String)> {
        vec![("Backend", self.backend.to_string())]
    }

    fn read(&self) -> Vec<Reading> {
        Operation::ALL
            .iter()
            .zip(&self.operations)
            .flat_map(|(operation, counters)| {
                let attributes = vec![("Operation".into(), operation.as_str().to_string())];
                let mut readings = vec![
                    Reading {
                        name: "TableCalls".into(),
                        otel_name: "xray_host.table.calls".into(),
                        description: "Table calls made".into(),
                        unit: Unit::Count("{call}"),
                        attributes: attributes.clone(),
                        value: Value::Counter(counters.calls.load(Ordering::Relaxed)),
                    },
                    Reading {
                        name: "TableFailures".into(),
                        otel_name: "xray_host.table.failures".into(),
                        description: "Table calls that failed".into(),
                        unit: Unit::Count("{call}"),
                        attributes: attributes.clone(),
                        value: Value::Counter(counters.failures.load(Ordering::Relaxed)),
                    },
                ];
                if let Some(histogram) = &counters.duration_ms {
                    readings.push(Reading {
                        name: "TableDuration".into(),
                        otel_name: "db.client.operation.duration".into(),
                        description: "Duration of table calls".into(),
                        unit: Unit::Milliseconds,
                        attributes,
                        value: Value::Histogram(histogram.read()),
                    });
                }
                readings
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_failures_and_durations_are_counted_per_operation() {
        let table = TableMetrics::new("embedded");
        table.call(Operation::PutItem, Duration::from_millis(3), false);
        table.call(Operation::PutItem, Duration::from_millis(30), true);
        table.call(Operation::GetItem, Duration::from_millis(1), false);
        let readings = table.read();
        let value = |name: &str, operation: &str| {
            readings
                .iter()
                .find(|r| r.name == name && r.attributes[0].1 == operation)
                .map(|r| r.value.clone())
                .unwrap()
        };
        assert_eq!(value("TableCalls", "PutItem"), Value::Counter(2));
        assert_eq!(value("TableFailures", "PutItem"), Value::Counter(1));
        assert_eq!(value("TableCalls", "GetItem"), Value::Counter(1));
        let Value::Histogram(durations) = value("TableDuration", "PutItem") else {
            panic!()
        };
        assert_eq!(durations.count(), 2);
        assert_eq!(
            table.dimensions(),
            vec![("Backend", "embedded".to_string())]
        );
    }
}
