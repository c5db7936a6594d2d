//! A misbehaving component fails only its own request, and the host keeps serving.

use crate::support;

use std::time::{Duration, Instant};
use support::{Host, TestHost, component, free_port, get, raw, request};

/// The faults component, served as "Faults".
fn faults() -> TestHost {
    TestHost::serve(&component("test_faults"), "Faults")
}

/// Runs `path` in a thread while a healthy request is served, then checks the host still serves.
fn fails_alone(host: &Host, port: u16, path: &'static str) -> support::Response {
    let bad = std::thread::spawn(move || get(port, path));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let healthy = get(port, "/ok");
    assert_eq!(
        (healthy.status, healthy.body.as_str()),
        (200, "ok"),
        "{}",
        host.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a healthy request waited {:?}",
        started.elapsed()
    );
    let response = bad.join().unwrap();
    assert_eq!(
        get(port, "/ok").status,
        200,
        "the host stopped serving after {path}"
    );
    response
}

#[test]
fn a_trapping_component_fails_its_request_with_500() {
    let host = faults().start();
    let port = host.port();
    let response = fails_alone(&host, port, "/trap");
    assert_eq!(response.status, 500);
    let body = response.json();
    assert_eq!(body["error"], "component_trapped");
    assert_eq!(body["service"], "Faults");
    assert!(host.wait_for_log("the component trapped", Duration::from_secs(5)));
}

#[test]
fn a_looping_component_is_stopped_at_its_deadline_with_504() {
    let host = faults().args(["--request-timeout", "1500ms"]).start();
    let port = host.port();
    let started = Instant::now();
    let response = fails_alone(&host, port, "/loop");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 504, "{}", response.body);
    assert_eq!(response.json()["error"], "deadline_exceeded");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn on_one_worker_thread_a_looping_component_stalls_no_other_request() {
    // `--worker-threads 1` runs every request on the main thread (tokio's current-thread
    // runtime, the default on one CPU): the loop must yield at every time slice for the
    // healthy request to be answered while it runs.
    let host = faults()
        .args(["--worker-threads", "1", "--request-timeout", "1500ms"])
        .start();
    let port = host.port();
    let response = fails_alone(&host, port, "/loop");
    assert_eq!(response.status, 504, "{}", response.body);
    assert_eq!(response.json()["error"], "deadline_exceeded");
    let trapped = fails_alone(&host, port, "/trap");
    assert_eq!(trapped.status, 500, "{}", trapped.body);
}

#[test]
fn a_memory_hungry_component_fails_its_request_with_500() {
    let host = faults().args(["--max-memory-mib", "32"]).start();
    let port = host.port();
    let response = fails_alone(&host, port, "/hog");
    assert_eq!(response.status, 500, "{}", response.body);
    let body = response.json();
    assert_eq!(body["error"], "out_of_memory");
    assert!(
        body["message"].as_str().unwrap().contains("32 MiB"),
        "{body}"
    );
    assert!(host.wait_for_log("ran out of memory", Duration::from_secs(5)));
}

#[test]
fn a_component_that_never_answers_gets_a_500() {
    let host = faults().start();
    let port = host.port();
    let response = get(port, "/no-response");
    assert_eq!(response.status, 500);
    assert_eq!(response.json()["error"], "no_response");
}

#[test]
fn oversized_bodies_get_413_whether_announced_or_streamed() {
    let host = faults().args(["--max-body-bytes", "1000"]).start();
    let port = host.port();
    let small = request(port, "POST", "/body", &[], &[b'x'; 1000]);
    assert_eq!((small.status, small.body.as_str()), (200, "1000"));

    let announced = request(port, "POST", "/body", &[], &[b'x'; 5000]);
    assert_eq!(announced.status, 413);
    assert_eq!(announced.json()["error"], "body_too_large");

    let chunk = format!("{:x}\r\n{}\r\n", 800, "y".repeat(800));
    let chunked = format!("{chunk}{chunk}0\r\n\r\n");
    let streamed = request(
        port,
        "POST",
        "/body",
        &[("Transfer-Encoding", "chunked")],
        chunked.as_bytes(),
    );
    assert_eq!(streamed.status, 413, "{}", streamed.body);
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn oversized_and_malformed_heads_are_refused_by_the_host() {
    let host = faults().args(["--max-header-bytes", "8192"]).start();
    let port = host.port();
    let big = "a".repeat(20_000);
    let response = request(port, "GET", "/ok", &[("X-Big", &big)], b"");
    assert_eq!(response.status, 431);
    let garbage = raw(port, b"NOT HTTP\r\n\r\n");
    assert_eq!(garbage.status, 400);
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn a_request_without_a_usable_host_gets_400_and_costs_no_instance() {
    // Reuse on: a request wasmtime could not hand to the component would fail the instance
    // (and answer 500) instead of being refused.
    let host = faults().args(["--max-instance-reuse-count", "10"]).start();
    let port = host.port();
    assert_eq!(get(port, "/ok").status, 200);
    for head in [
        &b"GET /ok HTTP/1.0\r\n\r\n"[..],
        &b"GET /ok HTTP/1.1\r\nHost: caf\xe9\r\nConnection: close\r\n\r\n"[..],
    ] {
        let refused = raw(port, head);
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.json()["error"], "bad_request");
    }
    assert_eq!(get(port, "/ok").status, 200);
    assert!(!host.log().contains("instance failed"), "{}", host.log());
}

#[test]
fn requests_over_the_concurrency_cap_get_503_at_once() {
    let host = faults().args(["--max-concurrent-requests", "1"]).start();
    let port = host.port();
    let slow = std::thread::spawn(move || get(port, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let refused = get(port, "/ok");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["error"], "too_many_requests");
    assert_eq!(slow.join().unwrap().status, 200);
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn every_request_gets_a_fresh_instance_and_only_its_environment() {
    let host = faults().args(["--env", "GREETING=hello"]).start();
    let port = host.port();
    assert_eq!(get(port, "/counter").body, "1");
    assert_eq!(get(port, "/counter").body, "1");
    assert_eq!(get(port, "/env").body, "GREETING=hello");
}

#[test]
fn outgoing_calls_are_denied_unless_allowed() {
    let backend = TestHost::serve(&component("backend1"), "Backend #1").start();
    let target = backend.port();
    let url = format!("http://127.0.0.1:{target}");
    let query = format!("/fetch?url={url}/health");

    let denied_host = faults().start();
    let denied = denied_host.port();
    let response = get(denied, &query);
    assert_eq!(response.body, "error ErrorCode::HttpRequestDenied");
    assert!(denied_host.wait_for_log("outgoing call refused", Duration::from_secs(5)));

    let allowed_host = faults()
        .args(["--allow-outbound", &url])
        .args(["--metrics", "emf", "--metrics-interval", "1s"])
        .start();
    let allowed = allowed_host.port();
    assert_eq!(get(allowed, &query).body, "status 200");
    // Same host, another port: still denied.
    let other = format!("/fetch?url=http://127.0.0.1:{}/", free_port());
    for _ in 0..2 {
        assert_eq!(
            get(allowed, &other).body,
            "error ErrorCode::HttpRequestDenied"
        );
    }
    // Both refusals counted for the service, by the rule that refused them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let refused: u64 = allowed_host
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|doc| doc["MetricGroup"] == "Outbound" && doc["Service"] == "Faults")
            .filter(|doc| doc["Rule"] == "allow_list")
            .filter_map(|doc| doc["OutboundRefused"].as_u64())
            .sum();
        if refused >= 2 || std::time::Instant::now() > deadline {
            break refused;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(refused, 2, "{}", allowed_host.log());
}

#[test]
fn a_wildcard_allow_list_reaches_neither_loopback_nor_the_hosts_own_endpoints() {
    // A loopback server that is none of the host's own: reachable through an exact entry only.
    let backend = TestHost::serve(&component("backend1"), "Backend #1").start();
    let other = backend.port();
    let (wild, exact, admin, stand_in) = (free_port(), free_port(), free_port(), free_port());
    let manifest = format!(
        r#"
        [[service]]
        name = "Wild"
        component = "{faults}"
        listen = "127.0.0.1:{wild}"
        allow_outbound = ["http://*:*"]

        [[service]]
        name = "Exact"
        component = "{faults}"
        listen = "127.0.0.1:{exact}"
        allow_outbound = [
            "http://127.0.0.1:{other}",
            "http://127.0.0.1:{admin}",
            "http://localhost:{stand_in}",
        ]

        [daemon]
        listen = "127.0.0.1:{stand_in}"
        "#,
        faults = component("test_faults").display(),
    );
    let host = TestHost::run(&manifest)
        .port(wild)
        .wait_for(&[exact, admin, stand_in])
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .start();
    let fetch = |port: u16, url: &str| get(port, &format!("/fetch?url={url}")).body;
    let prohibited = "error ErrorCode::DestinationIpProhibited";

    // Through the wildcard: neither the admin endpoint, in any spelling, nor the stand-in, nor
    // any other loopback server.
    for url in [
        format!("http://127.0.0.1:{admin}/versions"),
        format!("http://localhost:{admin}/versions"),
        format!("http://[::ffff:127.0.0.1]:{admin}/versions"),
        format!("http://[64:ff9b::7f00:1]:{admin}/versions"),
        format!("http://2130706433:{admin}/versions"),
        format!("http://127.0.0.1:{stand_in}/"),
        format!("http://127.0.0.1:{other}/health"),
        format!("http://localhost:{other}/health"),
    ] {
        assert_eq!(fetch(wild, &url), prohibited, "{url}\n{}", host.log());
    }
    // Named exactly: another loopback server is reached, the host's own endpoints never.
    assert_eq!(
        fetch(exact, &format!("http://127.0.0.1:{other}/health")),
        "status 200",
        "{}",
        host.log()
    );
    for url in [
        format!("http://127.0.0.1:{admin}/versions"),
        format!("http://localhost:{stand_in}/"),
    ] {
        assert_eq!(fetch(exact, &url), prohibited, "{url}\n{}", host.log());
    }

    // One line per refusal, naming the service, the rule and what to change.
    let line = |service: &str, rule: &str| {
        host.wait_for_log_line(
            |l| {
                l.contains("outgoing call refused")
                    && l.contains(service)
                    && l.contains(&format!("rule=\"{rule}\""))
            },
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no {rule} refusal for {service}:\n{}", host.log()))
    };
    let wildcard = line("Wild", "loopback-by-wildcard");
    assert!(
        wildcard.contains("naming this host and port exactly"),
        "{wildcard}"
    );
    let own = line("Exact", "host-endpoint");
    assert!(
        own.contains("admin endpoint") || own.contains("daemon stand-in"),
        "{own}"
    );
    for named in [
        format!("admin endpoint (127.0.0.1:{admin})"),
        format!("X-Ray daemon stand-in (127.0.0.1:{stand_in})"),
    ] {
        assert!(
            host.wait_for_log(&named, Duration::from_secs(10)),
            "{named}: {}",
            host.log()
        );
    }

    // The host serves on, and its admin endpoint still answers its operator.
    assert_eq!(get(wild, "/ok").body, "ok");
    assert_eq!(get(exact, "/ok").body, "ok");
    assert_eq!(get(admin, "/versions").status, 200, "{}", host.log());
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let mut host = faults().start();
    let port = host.port();
    let in_flight = std::thread::spawn(move || get(port, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
    host.terminate();
    let response = in_flight.join().unwrap();
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, "slept 1500 ms")
    );
    assert_drained_and_exited(&mut host);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Asserts that `host`, sent SIGTERM, exits successfully within 10 s after its in-flight
/// requests finished.
fn assert_drained_and_exited(host: &mut Host) {
    assert_eq!(
        host.wait_exit(Duration::from_secs(10)),
        Some(true),
        "{}",
        host.log()
    );
    assert!(
        host.wait_for_log("all in-flight requests finished", Duration::from_secs(2)),
        "{}",
        host.log()
    );
}

#[test]
fn sigterm_drops_idle_reused_instances_without_reporting_a_failure() {
    // The user sees: stopping a host whose WASI 0.3 instances wait idle for the next request
    // logs the shutdown, not one "instance failed" warning with a backtrace per instance.
    let mut host = TestHost::serve(&component("backend2"), "Backend #2")
        .args(["--idle-instance-timeout", "60s"])
        .start();
    let port = host.port();
    let requests: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(port, "/").status))
        .collect();
    for request in requests {
        assert_eq!(request.join().unwrap(), 200);
    }
    host.terminate();
    assert_drained_and_exited(&mut host);
    let log = host.log();
    assert!(!log.contains("failed and was dropped"), "{log}");
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn sigterm_cuts_off_requests_that_outlive_the_shutdown_timeout() {
    let mut host = faults().args(["--shutdown-timeout", "500ms"]).start();
    let port = host.port();
    let in_flight = std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| get(port, "/sleep?ms=5000"));
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    host.terminate();
    assert_eq!(
        host.wait_exit(Duration::from_secs(5)),
        Some(true),
        "{}",
        host.log()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        host.wait_for_log("were cut off", Duration::from_secs(2)),
        "{}",
        host.log()
    );
    in_flight.join().unwrap();
}

#[test]
fn an_invalid_component_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("not.wasm");
    std::fs::write(&not_wasm, "hello").unwrap();
    let core_module = dir.path().join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    let empty_component = dir.path().join("empty.wasm");
    std::fs::write(&empty_component, b"\0asm\x0d\0\x01\0").unwrap();
    for (path, expected) in [
        (
            dir.path().join("missing.wasm"),
            "cannot read the component file",
        ),
        (not_wasm, "not WebAssembly"),
        (core_module, "not a valid WebAssembly component"),
        (
            empty_component,
            "exports neither wasi:http/handler@0.3.x nor wasi:http/incoming-handler@0.2.x",
        ),
    ] {
        let path = path.display().to_string();
        let (ok, output) = TestHost::serve(std::path::Path::new(&path), "X").run_to_exit();
        assert!(!ok, "{path} was accepted");
        assert!(output.contains(expected), "{path}: {output}");
    }
}

#[test]
fn a_cache_directory_others_may_write_is_refused_and_the_host_serves_without_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = shared.display().to_string();
    for _ in 0..2 {
        let host = TestHost::serve(&component("backend1"), "Backend #1")
            .args(["--cache-dir", &cache])
            .start();
        let port = host.port();
        assert!(
            host.wait_for_log("compiled=\"now\"", Duration::from_secs(5)),
            "{}",
            host.log()
        );
        let log = host.log();
        assert!(
            log.contains(&format!("the compile cache directory {cache} is refused"))
                && log.contains("its group or other users may write to it (mode 777)"),
            "{log}"
        );
        assert_eq!(get(port, "/health").status, 200);
    }
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
}

#[test]
fn a_restart_loads_the_compiled_component_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().display().to_string();
    for expected in ["compiled=\"now\"", "compiled=\"from cache\""] {
        let host = TestHost::serve(&component("backend1"), "Backend #1")
            .args(["--cache-dir", &cache])
            .start();
        let port = host.port();
        assert!(
            host.wait_for_log(expected, Duration::from_secs(5)),
            "{}",
            host.log()
        );
        assert_eq!(get(port, "/health").status, 200);
    }
}
