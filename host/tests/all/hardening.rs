//! The fault matrix and isolation promises of SECURITY.md, against the real host: each test
//! says what the user sees and checks that the host still serves afterwards.

use crate::support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::{TestHost, component, get, request};

/// The faults component, served as "Faults".
fn faults() -> TestHost {
    TestHost::serve(&component("test_faults"), "Faults")
}

#[test]
fn requests_beyond_the_memory_budget_get_503_and_the_process_lives_on() {
    // The user sees: a component that needs more memory than the host's budget has left gets
    // 503 with Retry-After (the host's limit, not the component's fault), and so do requests
    // that would need a new instance while the budget is full; the process is not killed.
    let host = faults()
        .admin()
        .args(["--instance-memory-budget-mib", "64"])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    let hog = get(port, "/hog");
    assert_eq!(hog.status, 503, "{}\n{}", hog.body, host.log());
    assert!(hog.body.contains("memory_budget"), "{}", hog.body);
    assert_eq!(hog.header("retry-after"), Some("1"));
    assert_eq!(get(port, "/ok").status, 200, "{}", host.log());
    let stats = get(admin, "/stats").json();
    assert_eq!(stats["instance_memory"]["limit_bytes"], 64 << 20);
    assert!(
        stats["instance_memory"]["refused"].as_u64().unwrap() >= 1,
        "{stats}"
    );

    // Room for two instances of about 1 MiB: six slow requests at once, each on its own
    // WASI 0.2 instance.
    let host = faults().args(["--instance-memory-budget-mib", "3"]).start();
    let port = host.port();
    let slow: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || get(port, "/sleep?ms=2500")))
        .collect();
    let answers: Vec<_> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let served = answers.iter().filter(|a| a.status == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(
        served >= 1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(!refused.is_empty(), "{}", host.log());
    let statuses: Vec<_> = answers
        .iter()
        .map(|a| (a.status, a.body.as_str()))
        .collect();
    assert!(
        refused.iter().all(|a| a.body.contains("memory_budget")),
        "{statuses:?}"
    );
    assert_eq!(served + refused.len(), 6, "{statuses:?}\n{}", host.log());
    assert_eq!(get(port, "/ok").status, 200, "{}", host.log());
}

#[test]
fn instances_admitted_together_beyond_the_budget_get_503_not_a_component_failure() {
    // The user sees: requests that arrive together when the budget holds one instance get the
    // budget's 503 for the instances it cannot hold, never a 500 blaming the component.
    // Admission checks the room an instance needs but reserves it only as the instance grows,
    // so several admitted at once find out while instantiating.
    let host = faults()
        .args(["--instance-memory-budget-mib", "2", "--warm-instances", "0"])
        .start();
    let port = host.port();
    for _ in 0..3 {
        let requests: Vec<_> = (0..16)
            .map(|_| std::thread::spawn(move || get(port, "/sleep?ms=500")))
            .collect();
        let answers: Vec<_> = requests.into_iter().map(|r| r.join().unwrap()).collect();
        let statuses: Vec<_> = answers
            .iter()
            .map(|a| (a.status, a.body.as_str()))
            .collect();
        assert!(
            answers
                .iter()
                .all(|a| a.status == 200 || (a.status == 503 && a.body.contains("memory_budget"))),
            "{statuses:?}\n{}",
            host.log()
        );
        assert!(answers.iter().any(|a| a.status == 200), "{statuses:?}");
        assert!(answers.iter().any(|a| a.status == 503), "{statuses:?}");
    }
}

#[test]
fn clients_that_stop_reading_do_not_starve_the_others() {
    // The user sees: clients that ask for large responses and read none of them hold the
    // service only until --response-write-timeout; then a normal client is served, and the
    // cut responses are marked on their segments.
    let host = faults()
        .sample_everything()
        .traced()
        .args([
            "--max-concurrent-requests",
            "4",
            "--response-write-timeout",
            "1s",
        ])
        .start();
    let port = host.port();
    // Twice the cap: every place is taken by a client that reads nothing of 32 MiB, far more
    // than the socket buffers hold.
    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .write_all(b"GET /big?mb=32 HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let served = loop {
        let answer = get(port, "/ok");
        if answer.status == 200 {
            break started.elapsed();
        }
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stalled readers still hold the service: {}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(served < Duration::from_secs(10), "served after {served:?}");
    let cut = host
        .daemon()
        .wait_for(Duration::from_secs(10), |documents| {
            documents
                .iter()
                .filter(|d| d["metadata"]["xray_host"]["response_incomplete"] == true)
                .count()
                >= 4
        });
    let cut: Vec<_> = cut
        .iter()
        .filter(|d| d["metadata"]["xray_host"]["response_incomplete"] == true)
        .collect();
    assert!(cut.len() >= 4, "{cut:#?}\n{}", host.log());
    assert!(
        cut.iter().all(|d| d["http"]["response"]["status"] == 200),
        "{cut:#?}"
    );
    drop(stalled);
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn a_slow_client_is_disconnected_at_the_header_deadline_and_others_are_served() {
    // The user sees: a client trickling its head is cut off after --header-read-timeout.
    let host = faults().args(["--header-read-timeout", "1s"]).start();
    let port = host.port();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buffer = [0u8; 256];
        if let Ok(0) = slow.read(&mut buffer) {
            closed = true;
            break;
        }
        assert_eq!(get(port, "/ok").status, 200, "others are served meanwhile");
    }
    assert!(closed, "the slow client was never disconnected");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn ten_thousand_headers_are_refused_with_431() {
    let host = faults().start();
    let port = host.port();
    let mut head = String::from("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..10_000 {
        head.push_str(&format!("X-{i}: y\r\n"));
    }
    head.push_str("\r\n");
    let response = support::raw(port, head.as_bytes());
    assert_eq!(response.status, 431);
    // And 101 tiny headers, within the byte limit, are too many lines.
    let mut head = String::from("GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..101 {
        head.push_str(&format!("X{i}: y\r\n"));
    }
    head.push_str("\r\n");
    assert_eq!(support::raw(port, head.as_bytes()).status, 431);
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn a_client_that_disconnects_mid_body_costs_only_its_request() {
    let host = faults().start();
    let port = host.port();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(
                b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nonly ten b",
            )
            .unwrap();
        drop(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(port, "/ok").status, 200, "{}", host.log());
    assert_eq!(
        request(port, "POST", "/body", &[], &[b'x'; 100]).body,
        "100"
    );
}

#[test]
fn a_component_that_panics_after_the_response_head_cuts_only_that_body() {
    // The user sees: status 200 and a truncated body (the connection ends early).
    let host = faults().start();
    let port = host.port();
    let response = get(port, "/panic-after-head");
    assert_eq!(response.status, 200);
    assert!(
        response.body.starts_with("partial body"),
        "{:?}",
        response.body
    );
    assert!(
        host.wait_for_log("panicked", Duration::from_secs(5))
            || host.wait_for_log("wasm trap", Duration::from_secs(1)),
        "{}",
        host.log()
    );
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn a_component_has_no_filesystem() {
    let host = faults().start();
    let port = host.port();
    for path in ["/etc/passwd", "/proc/self/environ", "Cargo.toml", "."] {
        let response = get(port, &format!("/read-file?path={path}"));
        assert_eq!(response.status, 403, "{path}: {}", response.body);
    }
}

#[test]
fn a_component_has_no_sockets() {
    // Something listens, so a connection refused is the host's refusal, not the port's.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let host = faults().start();
    let service = host.port();
    for name in ["localhost", "example.com"] {
        let response = get(service, &format!("/sockets?port={port}&name={name}"));
        assert_eq!(response.status, 200, "{}", response.body);
        // wasmtime answers a lookup it may not make as a resolver that failed for good.
        assert_eq!(
            response.body, "connect: access-denied\nlookup: permanent-resolver-failure",
            "{name}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "the component's socket reached the listener"
    );
    assert_eq!(get(service, "/ok").status, 200);
}

#[test]
fn the_hosts_aws_credentials_cannot_be_passed_to_a_component() {
    let secret = "wJalrXUtnFEMI-not-a-real-key";
    for name in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        let (ok, output) = faults()
            .env(name, secret)
            .args(["--pass-env", name])
            .run_to_exit();
        assert!(!ok, "{name} was passed: {output}");
        assert!(
            output.contains(&format!("--pass-env {name} is refused")),
            "{output}"
        );
        assert!(output.contains("task role's credentials"), "{output}");
        assert!(output.contains("the table capability signs"), "{output}");
        assert!(!output.contains(secret), "{output}");
    }
}

#[test]
fn an_unreachable_daemon_does_not_affect_requests_and_losses_are_counted() {
    let host = faults()
        .sample_everything()
        .admin()
        .daemon_at("no-daemon.invalid:2000")
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(get(port, "/ok").status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = get(admin, "/stats").json()["segments"].clone();
        if stats["failed"].as_u64().unwrap_or(0) + stats["dropped"].as_u64().unwrap_or(0) >= 50
            || Instant::now() > deadline
        {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stats["sent"], 0, "{stats}");
    assert!(
        stats["failed"].as_u64().unwrap() + stats["dropped"].as_u64().unwrap() >= 50,
        "{stats}"
    );
    assert_eq!(
        host.log().matches("cannot send X-Ray segments").count(),
        1,
        "logged once:\n{}",
        host.log()
    );
}

/// A daemon whose sampling endpoint answers `reply` (after `delay`) to every call.
fn bad_sampling_endpoint(reply: &'static str, delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                std::thread::sleep(delay);
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    (port, calls)
}

#[test]
fn a_broken_sampling_endpoint_falls_back_to_local_rules_and_is_logged_once() {
    for (reply, delay) in [
        (
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
            Duration::ZERO,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!",
            Duration::ZERO,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            Duration::from_secs(5),
        ),
    ] {
        let (sampling, calls) = bad_sampling_endpoint(reply, delay);
        // Segments to a stand-in, sampling calls to the broken endpoint.
        let daemon = Daemon::start();
        let address = format!("tcp:127.0.0.1:{sampling} udp:127.0.0.1:{}", daemon.port);
        let host = faults().sample_everything().daemon_at(&address).start();
        let port = host.port();
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(get(port, "/ok").status, 200);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "requests waited for sampling: {:?}",
            started.elapsed()
        );
        // The local rules (sample everything) decided.
        assert!(
            daemon
                .wait_for(Duration::from_secs(5), |docs| docs.len() >= 10)
                .len()
                >= 10,
            "{reply:?}"
        );
        std::thread::sleep(Duration::from_millis(3500));
        assert!(
            calls.load(Ordering::SeqCst) >= 2,
            "the host kept retrying the rules"
        );
        assert_eq!(
            host.log().matches("does not answer sampling calls").count(),
            1,
            "{reply:?}:\n{}",
            host.log()
        );
    }
}

#[test]
fn sigterm_under_load_finishes_requests_and_flushes_their_segments() {
    let mut host = faults().sample_everything().traced().start();
    let port = host.port();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok) = (stop.clone(), ok.clone());
            std::thread::spawn(move || {
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        break;
                    };
                    let _ = stream.write_all(
                        b"GET /sleep?ms=20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let mut answer = String::new();
                    let _ = stream.read_to_string(&mut answer);
                    if answer.starts_with("HTTP/1.1 200") {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    host.terminate();
    assert_eq!(
        host.wait_exit(Duration::from_secs(10)),
        Some(true),
        "{}",
        host.log()
    );
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| w.join().unwrap());
    let served = ok.load(Ordering::SeqCst);
    assert!(served > 10, "the load was too light: {served}");
    let documents = host
        .daemon()
        .wait_for(Duration::from_secs(3), |docs| docs.len() >= served);
    assert_eq!(
        documents.len(),
        served,
        "every answered request's segment reached the daemon"
    );
    assert!(
        host.wait_for_log("X-Ray segments flushed", Duration::from_secs(5)),
        "{}",
        host.log()
    );
}

#[test]
fn a_stdout_nobody_reads_stalls_no_request() {
    // The user sees: when the log driver stops reading the host's stdout, requests are served
    // as before; the host's log lines that do not fit its queue are dropped, and once stdout
    // drains it says how many.
    let host = faults().stalled_stdout().start();
    let port = host.port();
    // Each trap is a warning with the component's backtrace, a few hundred bytes: the pipe
    // (64 KiB) is full long before the last one, so every later line would block the worker
    // that logs it if the host wrote from the request's task.
    let started = Instant::now();
    for _ in 0..600 {
        assert_eq!(get(port, "/trap").status, 500);
    }
    assert_eq!(get(port, "/ok").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    host.read_stdout();
    assert!(
        host.wait_for_log("the component trapped", Duration::from_secs(10)),
        "{}",
        host.log()
    );
}

#[test]
fn a_component_flooding_stdout_cannot_forge_or_stall_the_hosts_log() {
    // The user sees: a component printing lines made to look like the host's gets them logged
    // as its own (prefixed with the service and the request's trace id, control characters
    // escaped), at most --guest-output-lines-per-second of them; the rest are dropped, counted
    // in /stats and reported; other requests are served promptly meanwhile.
    let host = faults()
        .admin()
        .args(["--guest-output-lines-per-second", "20"])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    let flood = std::thread::spawn(move || get(port, "/print?lines=50000"));
    let mut slowest = Duration::ZERO;
    let mut served = 0;
    while !flood.is_finished() || served < 5 {
        served += 1;
        let started = Instant::now();
        assert_eq!(get(port, "/ok").status, 200, "{}", host.log());
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let flooded = flood.join().unwrap();
    assert_eq!(
        (flooded.status, flooded.body.as_str()),
        (200, "printed 50000")
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a healthy request waited {slowest:?} during the flood"
    );
    let trace_id = flooded
        .header("x-amzn-trace-id")
        .and_then(|h| h.strip_prefix("Root="))
        .and_then(|h| h.split(';').next())
        .expect("a trace header")
        .to_string();

    // The burst (five seconds' worth) passed, no more than the rate allows since, and the rest
    // was dropped and counted.
    let stats = get(admin, "/stats").json()["guest_output"]["Faults"].clone();
    let dropped = stats["dropped_lines"].as_u64().unwrap();
    let written = stats["written_lines"].as_u64().unwrap();
    assert!(dropped > 99_000, "{stats}");
    assert!((100..=1_000).contains(&written), "{stats}");
    assert_eq!(stats["cut_lines"], 0, "{stats}");

    assert!(
        host.wait_for_log(
            "lines of guest output dropped in the last 10 s",
            Duration::from_secs(15)
        ),
        "{}",
        host.log()
    );
    let log = host.log();
    let stdout = format!(" stream=stdout trace_id={trace_id} forged ");
    let forged: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("forged") || line.contains("2026-01-01T00:00:00"))
        .collect();
    assert!(forged.len() >= 100, "{log}");
    for line in &forged {
        // The service, the component version that printed it, the stream, the request.
        assert!(
            line.contains(" INFO service=Faults version=")
                && (line.contains(" stream=stdout trace_id=1-")
                    || line.contains(" stream=stderr trace_id=1-")),
            "not prefixed: {line:?}"
        );
        assert!(
            !line.starts_with("2026-01-01"),
            "a guest line passed for the host's: {line:?}"
        );
    }
    assert!(log.contains(&stdout), "{log}");
    assert!(
        log.contains(r"component loaded service=Faults\r\u{1b}[31mred"),
        "control characters escaped: {log}"
    );
    assert!(!log.contains('\r') && !log.contains('\u{1b}'), "{log:?}");
    // Once the rate allows again, stderr is logged the same way.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(port, "/print?lines=0").status, 200);
    assert!(
        host.wait_for_log(r"forged stderr\u{7}", Duration::from_secs(5)),
        "{}",
        host.log()
    );
    let log = host.log();
    let stderr = log.lines().find(|l| l.contains("forged stderr")).unwrap();
    assert!(
        stderr.contains(" INFO service=Faults version=")
            && stderr.contains(" stream=stderr trace_id=1-"),
        "{stderr}"
    );
    let report = log
        .lines()
        .find(|line| line.contains("lines of guest output dropped"))
        .unwrap();
    assert!(
        report.contains(" WARN ") && report.contains("service=Faults"),
        "{report}"
    );
}

#[test]
fn refused_calls_are_logged_at_a_bounded_rate_and_counted() {
    // The user sees: every refused outgoing call is refused, but the host's log gets a burst
    // of warnings and then about one a second; the rest are counted in /stats.
    let host = faults().admin().start();
    let (port, admin) = (host.port(), host.admin_port());
    for _ in 0..40 {
        let answer = get(port, "/fetch?url=http://refused.invalid/");
        assert_eq!(answer.body, "error ErrorCode::HttpRequestDenied");
    }
    assert!(host.wait_for_log("outgoing call refused", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(500));
    let warned = host.log().matches("outgoing call refused").count();
    assert!(
        (1..=20).contains(&warned),
        "{warned} warnings: {}",
        host.log()
    );
    let stats = get(admin, "/stats").json()["guest_output"]["Faults"].clone();
    assert_eq!(
        stats["dropped_warnings"].as_u64().unwrap() + warned as u64,
        40,
        "{stats}"
    );
}
