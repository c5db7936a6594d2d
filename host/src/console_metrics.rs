//! The host's request counters as the source of the local console's metrics panel: the stand-in
//! (which does not know the runtime) reads them through its `ServiceMetricsSource` trait, from
//! the same cumulative counters the CloudWatch metrics come from.

use xray_host_runtime::metrics::{BUCKET_BOUNDS_MS, RouteClass, snapshot_all};
use xray_local::service_metrics::{RequestTotals, SeriesTotals, ServiceMetricsSource};

/// Every served version's counters of its main routes. `/health` is left out, as the
/// CloudWatch metrics keep it apart: a load balancer's health checks are not the service's
/// traffic.
pub struct HostRequestCounters;

impl ServiceMetricsSource for HostRequestCounters {
    fn read(&self) -> Vec<SeriesTotals> {
        snapshot_all()
            .into_iter()
            .filter(|(series, _)| series.route == RouteClass::Main)
            .map(|(series, counts)| SeriesTotals {
                service: series.service.to_string(),
                // A version served again after a swap registers a new series, counting from
                // zero: its registration time tells it from the old one.
                series: format!(
                    "{} {} {:?}",
                    series.version,
                    series.route.as_str(),
                    series.registered_at
                ),
                totals: RequestTotals {
                    requests: counts.requests,
                    errors: counts.errors,
                    throttles: counts.throttles,
                    faults: counts.faults,
                    duration_sum_us: counts.duration_sum_us,
                    buckets: counts.buckets.to_vec(),
                },
            })
            .collect()
    }

    fn bucket_bounds_ms(&self) -> Vec<u64> {
        BUCKET_BOUNDS_MS.to_vec()
    }
}
