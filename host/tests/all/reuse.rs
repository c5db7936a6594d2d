//! WASI 0.3 components and instance reuse: a spin-sdk 7 component (`test_p3`, p3) served by the
//! same binary as spin-sdk 5 ones (p2), concurrent requests in one instance that keep their own
//! traces, and failures in a shared instance.

use crate::support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::documents::{segment, subsegment_named, subsegments};
use support::schema::assert_valid;
use support::{Host, TestHost, component, get, request};

/// The p3 test component, served as "P3".
fn p3() -> TestHost {
    TestHost::serve(&component("test_p3"), "P3")
}

#[test]
fn a_p3_and_a_p2_component_are_served_by_the_same_binary() {
    let p3_host = p3().start();
    let p3_port = p3_host.port();
    let p2_host = TestHost::serve(&component("test_faults"), "Faults").start();
    let p2_port = p2_host.port();
    let answer = get(p3_port, "/sleep?ms=1");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"slept":true}"#),
        "{}",
        p3_host.log()
    );
    assert_eq!(get(p2_port, "/ok").status, 200, "{}", p2_host.log());
    assert!(p3_host.log().contains("wasi:http 0.3"), "{}", p3_host.log());
    // No access log unless asked for (--access-log).
    assert!(!p3_host.log().contains("path=/sleep"), "{}", p3_host.log());
    assert!(p2_host.log().contains("wasi:http 0.2"), "{}", p2_host.log());
}

#[test]
fn a_p3_instance_is_reused_and_a_p2_instance_is_not() {
    let p3_host = p3().start();
    let p3_port = p3_host.port();
    let counts: Vec<u64> = (0..5)
        .map(|_| get(p3_port, "/count").json()["served"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2, 3, 4, 5], "{}", p3_host.log());

    // Reuse off for this service: every request gets a fresh instance (and fresh globals).
    let off_host = p3().args(["--max-instance-reuse-count", "1"]).start();
    let off_port = off_host.port();
    let counts: Vec<u64> = (0..3)
        .map(|_| get(off_port, "/count").json()["served"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 1], "{}", off_host.log());
}

/// A traced faults backend, and the p3 component allowed to call it (`allowed`, its
/// `127.0.0.1:port`), both sending segments to the backend's stand-in, sampling everything.
fn p3_calling_a_traced_backend() -> (Host, Host, String) {
    let backend = TestHost::serve(&component("test_faults"), "Backend")
        .sample_everything()
        .traced()
        .start();
    let allowed = format!("127.0.0.1:{}", backend.port());
    let host = p3()
        .sample_everything()
        .args(["--allow-outbound", &format!("http://{allowed}")])
        .daemon_at(&backend.daemon().address())
        .start();
    (backend, host, allowed)
}

/// A trace header naming a new trace, sampled.
fn trace_header(i: usize) -> (String, String) {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let root = format!("1-{seconds:08x}-{:024x}", 0xabc000 + i);
    (format!("Root={root};Sampled=1"), root)
}

#[test]
fn sixteen_concurrent_requests_in_one_p3_instance_keep_their_own_traces() {
    let (backend, host, allowed) = p3_calling_a_traced_backend();
    let daemon = backend.daemon();
    let port = host.port();

    // One instance, made and idle before the sixteen arrive (it counts this request as its
    // first). They are staggered so that the instance has yielded (and can accept) before the
    // next arrives, and each waits long enough that all sixteen are in flight at once.
    assert_eq!(get(port, "/count").json()["served"], 1, "{}", host.log());
    let requests: Vec<_> = (0..16)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(60));
            let (header, root) = trace_header(i);
            let path = format!("/work?id=r{i}&ms=2000&backend=http://{allowed}/ok");
            let thread = std::thread::spawn(move || {
                request(port, "GET", &path, &[("X-Amzn-Trace-Id", &header)], b"")
            });
            (i, root, thread)
        })
        .collect();
    let mut served_counts = BTreeSet::new();
    for (i, root, thread) in requests {
        let answer = thread.join().unwrap();
        assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
        let body = answer.json();
        assert_eq!(body["id"], format!("r{i}"));
        // The component saw its own request's trace, not another's.
        let seen = body["trace"].as_str().unwrap();
        assert!(seen.contains(&format!("Root={root}")), "r{i} saw {seen}");
        served_counts.insert(body["served"].as_u64().unwrap());

        let documents = daemon.trace(&root, 2, Duration::from_secs(5));
        documents.iter().for_each(assert_valid);
        assert_eq!(documents.len(), 2, "{documents:#?}");
        let ours = segment(&documents, "P3").unwrap_or_else(|| panic!("{documents:#?}"));
        let theirs = segment(&documents, "Backend").unwrap_or_else(|| panic!("{documents:#?}"));
        let work = subsegment_named(ours, &format!("work-r{i}"))
            .unwrap_or_else(|| panic!("no work-r{i} subsegment: {ours:#}"));
        assert_eq!(work["annotations"]["request_id"], format!("r{i}"));
        // No other request's subsegment landed in this trace.
        let names: Vec<&str> = subsegments(ours)
            .iter()
            .filter_map(|s| s["name"].as_str())
            .filter(|n| n.starts_with("work-"))
            .collect();
        assert_eq!(names, [format!("work-r{i}")], "{ours:#}");
        let table = subsegment_named(ours, "embedded table")
            .unwrap_or_else(|| panic!("no table subsegment: {ours:#}"));
        assert_eq!(table["namespace"], "local", "{table:#}");
        let remote = subsegments(ours)
            .into_iter()
            .find(|s| s["namespace"] == "remote")
            .unwrap_or_else(|| panic!("no remote subsegment: {ours:#}"));
        assert_eq!(theirs["parent_id"], remote["id"], "{documents:#?}");
        assert_eq!(theirs["trace_id"], root);
        // What it printed is logged as its own, although others printed in between. The log
        // writer is a thread of its own, so a line may reach the log just after the response.
        for line in [format!("work r{i} begins"), format!("work r{i} ends")] {
            let logged = format!("stream=stdout trace_id={root} {line}");
            assert!(
                host.wait_for_log(&logged, Duration::from_secs(5)),
                "no {logged:?} in\n{}",
                host.log()
            );
        }
    }
    // One instance served them all: it counted them 2..=17.
    assert_eq!(served_counts, (2..=17).collect(), "{}", host.log());
    let log = host.log();
    assert!(!log.contains("instance failed"), "{log}");
}

/// Sends `path` (which fails the instance after 100 ms) while another request waits on the same
/// instance: both get `error`, and the next request is served by a new instance.
fn fails_with_its_instance(host: &Host, port: u16, path: &'static str, error: &str) {
    // The instance exists, idle, before the two requests arrive.
    assert_eq!(get(port, "/count").json()["served"], 1, "{}", host.log());
    let sleeper = std::thread::spawn(move || get(port, "/sleep?ms=800"));
    std::thread::sleep(Duration::from_millis(100));
    let failing = get(port, path);
    assert_eq!(failing.status, 500, "{}", failing.body);
    assert_eq!(failing.json()["error"], error);
    // The request that shared the instance failed with it, with its own answer.
    let shared = sleeper.join().unwrap();
    assert_eq!(shared.status, 500, "{}", shared.body);
    assert_eq!(shared.json()["error"], error);
    // The next request gets a new instance.
    assert_eq!(get(port, "/count").json()["served"], 1, "{}", host.log());
}

#[test]
fn a_trap_in_a_shared_instance_fails_only_its_in_flight_requests() {
    let host = p3().start();
    let port = host.port();
    fails_with_its_instance(&host, port, "/trap?ms=100", "component_trapped");
}

#[test]
fn memory_exhaustion_in_a_shared_instance_fails_its_requests_and_the_next_one_is_served() {
    let host = p3().args(["--max-memory-mib", "32"]).start();
    let port = host.port();
    fails_with_its_instance(&host, port, "/oom?ms=100", "out_of_memory");
}

#[test]
fn a_request_past_its_deadline_gets_504_without_stalling_the_others_on_its_instance() {
    let host = p3().args(["--request-timeout", "1s"]).start();
    let port = host.port();
    assert_eq!(get(port, "/count").json()["served"], 1, "{}", host.log());
    let slow = std::thread::spawn(move || get(port, "/sleep?ms=5000"));
    std::thread::sleep(Duration::from_millis(100));
    // Served while the slow request waits, and by the same instance (its third request).
    let started = Instant::now();
    let quick = get(port, "/count");
    assert_eq!(quick.status, 200);
    assert_eq!(quick.json()["served"], 3, "{}", host.log());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let slow = slow.join().unwrap();
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(slow.json()["error"], "deadline_exceeded");
    let after: Value = get(port, "/count").json();
    assert!(after["served"].as_u64().is_some(), "{}", host.log());
}

#[test]
fn a_wasi_0_2_call_from_a_shared_p3_instance_lands_in_no_other_requests_trace() {
    // WASI 0.2's outgoing-handler does not say which of the instance's requests calls: the
    // call must not be recorded into (nor carry the header of) the request the instance
    // accepted last.
    let (backend, host, allowed) = p3_calling_a_traced_backend();
    let daemon = backend.daemon();
    let port = host.port();
    assert_eq!(get(port, "/count").status, 200, "{}", host.log());

    // The caller is accepted first and waits; another request is accepted meanwhile (the
    // instance's last); then the caller makes its WASI 0.2 call.
    let (caller_header, caller_root) = trace_header(200);
    let path = format!("/fetch-p2?ms=1000&url=http://{allowed}/ok");
    let caller = std::thread::spawn(move || {
        request(
            port,
            "GET",
            &path,
            &[("X-Amzn-Trace-Id", &caller_header)],
            b"",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let (other_header, other_root) = trace_header(201);
    let other = request(
        port,
        "GET",
        "/work?id=other&ms=2000",
        &[("X-Amzn-Trace-Id", &other_header)],
        b"",
    );
    assert_eq!(other.status, 200, "{}\n{}", other.body, host.log());
    let caller = caller.join().unwrap();
    assert_eq!(caller.status, 200, "{}\n{}", caller.body, host.log());
    assert_eq!(caller.json()["status"], 200, "{}", caller.body);

    for root in [&caller_root, &other_root] {
        let documents = daemon.wait_for(Duration::from_secs(5), |documents| {
            documents
                .iter()
                .any(|d| d["trace_id"] == root.as_str() && d["name"] == "P3")
        });
        let documents: Vec<Value> = documents
            .into_iter()
            .filter(|d| d["trace_id"] == root.as_str())
            .collect();
        assert!(
            documents.iter().all(|d| d["name"] != "Backend"),
            "the WASI 0.2 call carried {root}'s header: {documents:#?}"
        );
        let ours = segment(&documents, "P3").unwrap_or_else(|| panic!("{documents:#?}"));
        assert!(
            subsegments(ours).iter().all(|s| s["namespace"] != "remote"),
            "a WASI 0.2 call was recorded into {root}: {ours:#}"
        );
    }
    // The backend was called, and its segment continues neither request's trace.
    let documents = daemon.wait_for(Duration::from_secs(5), |documents| {
        documents.iter().any(|d| d["name"] == "Backend")
    });
    let theirs = segment(&documents, "Backend").unwrap_or_else(|| panic!("{documents:#?}"));
    assert_ne!(theirs["trace_id"], caller_root.as_str());
    assert_ne!(theirs["trace_id"], other_root.as_str());
}
