//! `--metrics otlp`: the host's metrics posted as OTLP, decoded by a receiver built on the
//! official definitions (`peers/otlp_receiver.py`, opentelemetry-proto's
//! ExportMetricsServiceRequest): the request duration histogram per status class and route
//! class counts the requests sent, under the service's resource, and the instance pool's
//! metrics come with it.

use crate::otlp_export::attribute;
use crate::support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::peers::{Peer, peers_installed};
use support::{TestHost, component, free_port};

/// The last metrics request the receiver decoded, if any.
fn last_metrics(out: &Path) -> Option<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .rfind(|line| line["path"] == "/v1/metrics")
        .map(|line| line["request"].clone())
}

/// The metric named `name` of the resource whose `service.name` is `service`.
fn metric<'a>(request: &'a Value, service: &str, name: &str) -> Option<&'a Value> {
    request["resourceMetrics"]
        .as_array()?
        .iter()
        .filter(|resource| attribute(&resource["resource"], "service.name") == service)
        .flat_map(|resource| resource["scopeMetrics"].as_array().into_iter().flatten())
        .flat_map(|scope| scope["metrics"].as_array().into_iter().flatten())
        .find(|metric| metric["name"] == name)
}

/// A histogram's count (protobuf's JSON mapping writes 64-bit integers as strings).
fn count(point: &Value) -> u64 {
    point["count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .or_else(|| point["count"].as_u64())
        .unwrap_or(0)
}

/// The counts of `histogram`'s points, keyed by status class and route class.
fn counts_by_class(histogram: &Value) -> Vec<(String, String, u64)> {
    let mut counts: Vec<(String, String, u64)> = histogram["histogram"]["dataPoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|point| {
            let text = |key| attribute(point, key).as_str().unwrap_or("").to_string();
            (
                text("http.response.status_code"),
                text("xray_host.route_class"),
                count(point),
            )
        })
        .collect();
    counts.sort();
    counts
}

#[test]
fn otlp_metrics_decode_with_the_official_definitions_and_count_the_requests_sent() {
    peers_installed();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let receiver_port = free_port();
    let _receiver = Peer::otlp_receiver(receiver_port, &out, &[], &[]);
    let host = TestHost::serve(&component("backend2"), "Backend #2")
        .args(["--metrics-interval", "1s"])
        .env("OTEL_METRICS_EXPORTER", "otlp")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{receiver_port}"),
        )
        .env("RECORD_LAST_ACCESS", "off")
        .start();
    let port = host.port();
    support::send_metrics_mix(port);

    // The sums are cumulative: the last export holds every request.
    let expected = vec![
        ("2xx".to_string(), "health".to_string(), 3),
        ("2xx".to_string(), "main".to_string(), 6),
        ("4xx".to_string(), "main".to_string(), 1),
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    let request = loop {
        let last = last_metrics(&out);
        let counts = last
            .as_ref()
            .and_then(|r| metric(r, "Backend #2", "http.server.request.duration"))
            .map(counts_by_class);
        if counts.as_ref() == Some(&expected) || Instant::now() > deadline {
            break last
                .unwrap_or_else(|| panic!("no metrics received; the host's log:\n{}", host.log()));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let duration = metric(&request, "Backend #2", "http.server.request.duration")
        .unwrap_or_else(|| panic!("{request:#}"));
    assert_eq!(counts_by_class(duration), expected, "{duration:#}");
    assert_eq!(duration["unit"], "s");
    assert_eq!(
        duration["histogram"]["aggregationTemporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let resource = request["resourceMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| attribute(&r["resource"], "service.name") == "Backend #2")
        .unwrap();
    assert_eq!(
        attribute(&resource["resource"], "service.version")
            .as_str()
            .map(str::len),
        Some(12)
    );
    // The pool's instances, made for these requests.
    let created = metric(&request, "Backend #2", "xray_host.instances.created")
        .unwrap_or_else(|| panic!("{request:#}"));
    let made: u64 = created["sum"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["asInt"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .sum();
    assert!(made >= 1, "{created:#}");
    assert_eq!(created["sum"]["isMonotonic"], true);
}
