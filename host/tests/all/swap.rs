//! Swapping a component in a running host: under load with zero failed requests, refusing
//! invalid files while the old version serves on, reloading on SIGHUP and through the admin
//! endpoint, and components kept in S3 (moto's S3-compatible server).

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::peers::Peer;
use support::{Host, TestHost, component, free_port, get, raw, request};

/// The header `POST /reload` needs.
const RELOAD: &[(&str, &str)] = &[("X-Xray-Host-Reload", "1")];

/// Replaces `target` with `source` atomically (write beside it, then rename), as a deploy would.
fn install(source: &Path, target: &Path) {
    let temporary = target.with_extension("partial");
    std::fs::copy(source, &temporary).unwrap();
    std::fs::rename(&temporary, target).unwrap();
}

/// Which reference backend answered: `date` for backend1, `time` for backend2.
fn answered_by(body: &str) -> Option<&'static str> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    match (json.get("currentDate"), json.get("currentTime")) {
        (Some(_), None) => Some("date"),
        (None, Some(_)) => Some("time"),
        _ => None,
    }
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A host serving the file `served` (a copy of backend1), with an admin endpoint.
fn watched_host(dir: &Path) -> (Host, std::path::PathBuf) {
    let served = dir.join("service.wasm");
    install(&component("backend1"), &served);
    let host = TestHost::serve(&served, "Swapped").admin().start();
    (host, served)
}

#[test]
fn ten_swaps_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let (host, served) = watched_host(dir.path());
    let port = host.port();
    assert_eq!(answered_by(&get(port, "/").body), Some("date"));

    let stop = Arc::new(AtomicBool::new(false));
    let served_count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served_count) = (stop.clone(), served_count.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                // Which version answered what: with instances reused, a request must still be
                // served wholly by one version, the one its response names.
                let mut seen = std::collections::BTreeMap::new();
                // Bounded: at most 20 000 requests or until told to stop.
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let response = get(port, "/");
                    served_count.fetch_add(1, Ordering::Relaxed);
                    let Some(kind) = answered_by(&response.body).filter(|_| response.status == 200)
                    else {
                        failures.push(format!("{} {}", response.status, response.body));
                        continue;
                    };
                    let version = response
                        .header("x-component-version")
                        .unwrap_or("")
                        .to_string();
                    if *seen.entry(version.clone()).or_insert(kind) != kind {
                        failures.push(format!("version {version} answered both kinds"));
                    }
                }
                failures
            })
        })
        .collect();

    let versions = [component("backend2"), component("backend1")];
    for swap in 0..10 {
        let next = &versions[swap % 2];
        let expected = if swap % 2 == 0 { "time" } else { "date" };
        install(next, &served);
        assert!(
            wait_until(Duration::from_secs(20), || answered_by(
                &get(port, "/").body
            ) == Some(expected)),
            "swap {swap} did not take effect:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        served_count.load(Ordering::Relaxed) > 100,
        "the load was too light to mean anything"
    );
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    // After the last swap (to backend1) only the new version answers.
    for _ in 0..50 {
        assert_eq!(answered_by(&get(port, "/").body), Some("date"));
    }
    assert_eq!(
        host.log().matches("component swapped").count(),
        10,
        "{}",
        host.log()
    );
    // Swapping back to a version seen before skipped the compiler.
    assert!(
        host.wait_for_log("compiled=\"from cache\" ", Duration::from_secs(5)),
        "{}",
        host.log()
    );
}

#[test]
fn invalid_files_are_rejected_and_the_old_version_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (host, served) = watched_host(dir.path());
    let port = host.port();
    let version = get(port, "/")
        .header("x-component-version")
        .unwrap()
        .to_string();
    let bad = dir.path().join("bad.wasm");
    let cases: [(&str, Vec<u8>); 4] = [
        ("not WebAssembly", b"this is not wasm".to_vec()),
        (
            "not a valid WebAssembly component",
            b"\0asm\x01\0\0\0".to_vec(),
        ),
        (
            "exports neither wasi:http/handler@0.3.x nor wasi:http/incoming-handler@0.2.x",
            wat::parse_str("(component)").unwrap(),
        ),
        (
            "imports something this host does not provide",
            wat::parse_str(
                r#"(component (import "unknown:pkg/iface" (instance (export "f" (func)))))"#,
            )
            .unwrap(),
        ),
    ];
    for (index, (expected, bytes)) in cases.into_iter().enumerate() {
        std::fs::write(&bad, bytes).unwrap();
        install(&bad, &served);
        assert!(
            wait_until(Duration::from_secs(10), || host
                .log()
                .matches("rejected the new component")
                .count()
                > index),
            "no rejection logged for {expected}:\n{}",
            host.log()
        );
        assert!(host.log().contains(expected), "{expected}:\n{}", host.log());
        let response = get(port, "/");
        assert_eq!(response.status, 200);
        assert_eq!(answered_by(&response.body), Some("date"));
        assert_eq!(
            response.header("x-component-version"),
            Some(version.as_str())
        );
    }
}

#[test]
fn sighup_and_the_admin_endpoint_reload_and_report_versions() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("service.wasm");
    install(&component("backend1"), &served);
    // A symlink swap is invisible to the file watcher when the target changes in place; use the
    // explicit reloads here.
    let host = TestHost::serve(&served, "Swapped").admin().start();
    let (port, admin) = (host.port(), host.admin_port());
    let versions = get(admin, "/versions").json();
    let first = versions["services"][0]["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(port, "/").header("x-component-version"),
        Some(first.as_str())
    );

    install(&component("backend2"), &served);
    let reload = request(admin, "POST", "/reload", RELOAD, b"").json();
    let result = &reload["reloads"][0]["result"];
    // The watcher may have won the race; either way the new version serves now.
    assert!(
        matches!(result["outcome"].as_str(), Some("swapped" | "unchanged")),
        "{reload}"
    );
    assert_eq!(answered_by(&get(port, "/").body), Some("time"));
    assert_ne!(
        get(admin, "/versions").json()["services"][0]["version"],
        first.as_str()
    );

    install(&component("backend1"), &served);
    host.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || answered_by(
        &get(port, "/").body
    ) == Some("date")));
    assert_eq!(
        request(admin, "POST", "/reload?service=nobody", RELOAD, b"").status,
        404
    );
    assert_eq!(get(admin, "/").status, 404);
}

#[test]
fn the_admin_endpoint_answers_only_loopback_names_and_reloads_only_with_its_header() {
    let host = TestHost::serve(&component("backend1"), "Guarded")
        .admin()
        .start();
    let admin = host.admin_port();
    // A page on a hostile name resolving to 127.0.0.1 (DNS rebinding) reaches nothing.
    for path in ["/versions", "/stats"] {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: rebind.example:{admin}\r\nConnection: close\r\n\r\n"
        );
        let response = raw(admin, head.as_bytes());
        assert_eq!(response.status, 421, "{path}: {}", response.body);
        assert_eq!(response.json()["error"], "host_not_allowed");
    }
    let head = "POST /reload HTTP/1.1\r\nHost: rebind.example\r\nX-Xray-Host-Reload: 1\r\n\
                Content-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(admin, head.as_bytes()).status, 421);
    // What a cross-site form can send is refused, saying what to add.
    let form = request(
        admin,
        "POST",
        "/reload",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1",
    );
    assert_eq!(form.status, 403, "{}", form.body);
    assert_eq!(form.json()["error"], "reload_header_missing");
    assert!(form.body.contains("X-Xray-Host-Reload: 1"), "{}", form.body);
    // Under a loopback name, with the header, it reloads.
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        let head = format!(
            "POST /reload HTTP/1.1\r\nHost: {name}:{admin}\r\nX-Xray-Host-Reload: 1\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let response = raw(admin, head.as_bytes());
        assert_eq!(response.status, 200, "{name}: {}", response.body);
        assert_eq!(
            response.json()["reloads"][0]["result"]["outcome"],
            "unchanged"
        );
    }
    assert_eq!(get(admin, "/versions").status, 200);
}

#[test]
fn the_admin_endpoint_refuses_a_non_loopback_address() {
    let (ok, output) = TestHost::serve(&component("backend1"), "X")
        .args(["--admin-listen", "0.0.0.0:9999"])
        .run_to_exit();
    assert!(!ok);
    assert!(output.contains("loopback"), "{output}");
}

/// moto's server, serving S3.
fn moto() -> (Peer, u16) {
    let port = free_port();
    let peer = support::peers::Peer::moto(port);
    (peer, port)
}

/// Uploads the built component `name` to `path` (`/bucket/key`) of moto's S3.
fn s3_upload_component(port: u16, path: &str, name: &str) {
    s3_put(port, path, &std::fs::read(component(name)).unwrap());
}

/// Waits up to 15 s until the host on `port` answers as `expected` (a swap took effect).
fn wait_for_answer(port: u16, expected: &str, host: &Host, what: &str) {
    assert!(
        wait_until(Duration::from_secs(15), || answered_by(
            &get(port, "/").body
        ) == Some(expected)),
        "{what}:\n{}",
        host.log()
    );
}

fn s3_put(port: u16, path: &str, body: &[u8]) {
    let authorization = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    let response = request(
        port,
        "PUT",
        path,
        &[
            ("Authorization", authorization),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
        body,
    );
    assert_eq!(response.status, 200, "PUT {path}: {}", response.body);
}

#[test]
fn a_component_in_s3_is_fetched_polled_and_kept_for_restarts_without_s3() {
    let (mut moto, s3) = moto();
    s3_put(s3, "/components", b"");
    s3_upload_component(s3, "/components/backend.wasm", "backend1");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let endpoint = format!("http://127.0.0.1:{s3}");
    let env = [
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let start = || {
        TestHost::serve(Path::new("s3://components/backend.wasm"), "From S3")
            .args([
                "--cache-dir",
                &cache_dir,
                "--component-poll-interval",
                "500ms",
            ])
            .envs(&env)
            .start()
    };
    let host = start();
    let port = host.port();
    assert_eq!(answered_by(&get(port, "/").body), Some("date"));

    // Uploading a new object deploys it.
    s3_upload_component(s3, "/components/backend.wasm", "backend2");
    wait_for_answer(port, "time", &host, "the new object was not picked up");
    drop(host);

    // With S3 gone, a restart serves the local copy.
    moto.stop();
    let host = start();
    let port = host.port();
    assert_eq!(answered_by(&get(port, "/").body), Some("time"));
    assert!(
        host.wait_for_log("serving the local copy", Duration::from_secs(5)),
        "{}",
        host.log()
    );
}

/// The SHA-256 of a file, lowercase hex, as `sha256sum` prints it.
fn sha256_of(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_pinned_service_serves_only_its_bytes_at_start_and_on_swap() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("service.wasm");
    install(&component("backend1"), &served);
    let pinned = sha256_of(&component("backend1"));
    let other = sha256_of(&component("backend2"));
    let serve_pinned_to = |pin: &str| {
        TestHost::serve(&served, "Pinned")
            .args(["--component-sha256", pin])
            .run_to_exit()
    };

    // Other bytes than the pin: the host does not start, and says which hashes differ.
    let (ok, output) = serve_pinned_to(&other);
    assert!(!ok, "{output}");
    for expected in [pinned.as_str(), other.as_str(), "pinned to", "cannot start"] {
        assert!(output.contains(expected), "{expected}: {output}");
    }
    // A pin that is not a SHA-256 is refused before anything is read.
    let (ok, output) = serve_pinned_to("abc123");
    assert!(!ok, "{output}");
    assert!(
        output.contains("XRAY_HOST_COMPONENT_SHA256") && output.contains("64 hexadecimal"),
        "{output}"
    );

    // The pinned bytes serve; a file with other bytes is refused on swap (naming both hashes),
    // and the pinned version serves on.
    let upper = format!("sha256:{}", pinned.to_uppercase());
    let host = TestHost::serve(&served, "Pinned")
        .admin()
        .args(["--component-sha256", &upper])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    assert_eq!(answered_by(&get(port, "/").body), Some("date"));
    let report = get(admin, "/versions").json();
    assert_eq!(report["services"][0]["sha256"], pinned.as_str(), "{report}");
    assert_eq!(report["services"][0]["pinned_sha256"], pinned.as_str());
    assert_eq!(report["services"][0]["version"], &pinned[..12]);

    install(&component("backend2"), &served);
    assert!(
        host.wait_for_log("rejected the new component", Duration::from_secs(10)),
        "{}",
        host.log()
    );
    let log = host.log();
    assert!(log.contains(&other) && log.contains("pinned to"), "{log}");
    let reload = request(admin, "POST", "/reload", RELOAD, b"").json();
    assert_eq!(
        reload["reloads"][0]["result"]["outcome"], "rejected",
        "{reload}"
    );
    for _ in 0..20 {
        let response = get(port, "/");
        assert_eq!(answered_by(&response.body), Some("date"));
        assert_eq!(response.header("x-component-version"), Some(&pinned[..12]));
    }
    assert_eq!(log.matches("component swapped").count(), 0, "{log}");

    // Putting the pinned bytes back is not a swap: they are what serves.
    install(&component("backend1"), &served);
    let reload = request(admin, "POST", "/reload", RELOAD, b"").json();
    assert_eq!(
        reload["reloads"][0]["result"]["outcome"], "unchanged",
        "{reload}"
    );
}

/// Turns on versioning for the bucket at `path` (`/bucket`) of moto's S3.
fn s3_enable_versioning(port: u16, path: &str) {
    s3_put(
        port,
        &format!("{path}?versioning"),
        br#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#,
    );
}

#[test]
fn a_hot_swapped_s3_component_names_its_version_id_and_hash_and_a_pin_holds_against_uploads() {
    let (mut moto, s3) = moto();
    s3_put(s3, "/versioned", b"");
    s3_enable_versioning(s3, "/versioned");
    s3_upload_component(s3, "/versioned/backend.wasm", "backend1");
    // One stand-in for the two hosts and the run that does not start.
    let daemon = support::daemon::Daemon::start();
    let daemon_address = daemon.address();
    let endpoint = format!("http://127.0.0.1:{s3}");
    let env = [
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_XRAY_DAEMON_ADDRESS", daemon_address.as_str()),
    ];
    let from_s3 = |pin: Option<&str>| {
        let mut host = TestHost::serve(Path::new("s3://versioned/backend.wasm"), "From S3")
            .args(["--component-poll-interval", "300ms"])
            .admin();
        if let Some(pin) = pin {
            host = host.args(["--component-sha256", pin]);
        }
        host.envs(&env)
    };

    // Hot swap: the served upload is named by its S3 version id and its SHA-256 in the log,
    // /versions, /stats and the segment.
    let host = from_s3(None).start();
    let (port, admin) = (host.port(), host.admin_port());
    let first = get(admin, "/versions").json()["services"][0].clone();
    let first_version_id = first["s3_version_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !first_version_id.is_empty() && first_version_id != "null",
        "{first}"
    );
    assert_eq!(
        first["sha256"],
        sha256_of(&component("backend1")),
        "{first}"
    );
    assert_eq!(first["pinned_sha256"], serde_json::Value::Null, "{first}");
    assert!(host.log().contains(&first_version_id), "{}", host.log());

    s3_upload_component(s3, "/versioned/backend.wasm", "backend2");
    wait_for_answer(port, "time", &host, "the new upload was not swapped in");
    let second = get(admin, "/stats").json()["components"][0].clone();
    let second_version_id = second["s3_version_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !second_version_id.is_empty() && second_version_id != first_version_id,
        "{second}"
    );
    assert_eq!(
        second["sha256"],
        sha256_of(&component("backend2")),
        "{second}"
    );
    assert!(host.log().contains(&second_version_id), "{}", host.log());
    // A request the caller decided to sample, so that its segment is sent whatever the
    // default rule's reservoir has left this second.
    let sampled = request(
        port,
        "GET",
        "/",
        &[(
            "X-Amzn-Trace-Id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )],
        b"",
    );
    assert_eq!(answered_by(&sampled.body), Some("time"));
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| {
        docs.iter().any(|d| {
            d["metadata"]["xray_host"]["component_s3_version_id"] == second_version_id.as_str()
        })
    });
    let segment = documents
        .iter()
        .find(|d| {
            d["metadata"]["xray_host"]["component_s3_version_id"] == second_version_id.as_str()
        })
        .expect("a segment names the served upload");
    assert_eq!(
        segment["service"]["version"],
        sha256_of(&component("backend2")),
        "{segment}"
    );
    drop(host);

    // Pinned to backend2's bytes: an upload of other bytes is refused, and the pinned bytes
    // serve on.
    let pinned = sha256_of(&component("backend2"));
    let host = from_s3(Some(&pinned)).start();
    let port = host.port();
    assert_eq!(answered_by(&get(port, "/").body), Some("time"));
    s3_upload_component(s3, "/versioned/backend.wasm", "backend1");
    assert!(
        host.wait_for_log("rejected the new component", Duration::from_secs(15)),
        "{}",
        host.log()
    );
    assert!(
        host.log().contains(&sha256_of(&component("backend1"))),
        "{}",
        host.log()
    );
    assert_eq!(answered_by(&get(port, "/").body), Some("time"));
    drop(host);

    // A pinned host does not start on other bytes, even from S3.
    let (ok, output) = from_s3(Some(&pinned)).run_to_exit();
    assert!(!ok, "{output}");
    assert!(
        output.contains(&pinned) && output.contains("cannot start"),
        "{output}"
    );
    moto.stop();
}
