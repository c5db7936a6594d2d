//! A component cannot grow the host through its trace: metadata, exception and subsegment
//! bombs run beside normal traffic are refused past the request's budget, the host's memory
//! stays bounded, the segment says it was truncated, and the refusal is logged once per
//! request.

use crate::support;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::schema::assert_valid;
use support::{TestHost, component, get, request};

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib / 1024
}

#[test]
fn trace_bombs_are_refused_past_the_budget_while_other_requests_are_served() {
    // Fewer subsegments than the default, so that the bombed trace is one document: a
    // thousand independent subsegment datagrams in a burst would test the UDP buffers instead.
    let host = TestHost::serve(&component("test_p3"), "P3")
        .sample_everything()
        .traced()
        .args(["--max-trace-subsegments", "50"])
        .start();
    let port = host.port();
    let daemon = host.daemon();
    assert_eq!(get(port, "/count").status, 200, "{}", host.log());
    let baseline = rss_mib(host.pid());

    // Normal traffic, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = get(port, "/sleep?ms=5");
                if answer.status == 200 {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(answer.status);
                }
            }
            failures
        })
    };

    let bombs = [
        ("metadata", 2000, "--max-trace-bytes", "bytes"),
        (
            "exceptions",
            500,
            "--max-trace-stack-frames",
            "stack_frames",
        ),
        (
            "subsegments",
            5000,
            "--max-trace-subsegments",
            "subsegments",
        ),
    ];
    let mut peak = baseline;
    for (i, (kind, n, flag, truncated)) in bombs.into_iter().enumerate() {
        let root = format!("1-5f84c7a1-{:024x}", 0xb0b0 + i);
        let header = format!("Root={root};Sampled=1");
        let answer = request(
            port,
            "GET",
            &format!("/bomb?kind={kind}&n={n}"),
            &[("X-Amzn-Trace-Id", &header)],
            b"",
        );
        assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
        let body = answer.json();
        let refused = body["refused"].as_u64().unwrap();
        assert!(refused > 0, "{kind}: nothing refused: {body}");
        let first = body["first_refusal"].as_str().unwrap();
        assert!(
            first.contains("LimitExceeded") && first.contains(flag),
            "{kind}: the component is told which limit and which flag: {first}"
        );
        peak = peak.max(rss_mib(host.pid()));

        // The segment is sent whole, says it was truncated and holds only what fit.
        // A trace of many subsegments arrives as independent subsegment documents first.
        let is_segment = |d: &serde_json::Value| d["trace_id"] == root && d["name"] == "P3";
        let documents = daemon.wait_for(Duration::from_secs(10), |documents| {
            documents.iter().any(is_segment)
        });
        let documents: Vec<_> = documents
            .into_iter()
            .filter(|d| d["trace_id"] == root)
            .collect();
        documents.iter().for_each(assert_valid);
        let segment = documents
            .iter()
            .find(|d| is_segment(d))
            .unwrap_or_else(|| panic!("{kind}: no segment: {documents:#?}"));
        assert_eq!(
            segment["metadata"]["xray_host"]["truncated"], truncated,
            "{kind}: {segment:#}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let failures = traffic.join().unwrap();
    assert!(failures.is_empty(), "other requests failed: {failures:?}");
    assert!(
        served.load(Ordering::Relaxed) > 0,
        "no other request was served"
    );

    // Two thousand 1 MiB metadata values would be 2 GiB; the host holds its budget (256 KiB a
    // request) and its instances. The ceiling leaves room for the instance's own 1 MiB
    // strings and the allocator.
    assert!(
        peak < baseline + 200,
        "the host grew from {baseline} MiB to {peak} MiB under the bombs"
    );
    // One log line per request that ran into its budget, not one per refused call.
    let notices = host.wait_for_log_count("reached its trace budget", 3, Duration::from_secs(10));
    // A moment for a fourth, wrong one to arrive too.
    std::thread::sleep(Duration::from_millis(200));
    let log = host.log();
    assert_eq!(
        (notices, log.matches("reached its trace budget").count()),
        (3, 3),
        "{log}"
    );
}
