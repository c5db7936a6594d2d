//! Instances made ahead of requests (`--warm-instances`), with the JavaScript BFF, whose
//! engine takes a fresh instance per request: requests take the ready ones, a swap drops the
//! old version's, requests are served with the pool empty or off, and the memory budget bounds
//! the pool.

use crate::polyglot_js::{js_component, serve_js, shared_cache};
use crate::support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::{TestHost, get, request};

/// The header `POST /reload` needs.
const RELOAD: &[(&str, &str)] = &[("X-Xray-Host-Reload", "1")];

/// The warm pool of `service` as `/stats` on the admin endpoint `admin` shows it.
fn warm(admin: u16, service: &str) -> Value {
    get(admin, "/stats").json()["warm_instances"][service].clone()
}

/// Waits up to 60 s (a loaded test machine instantiates slowly) for `condition` on the pool.
fn wait_for_pool(admin: u16, service: &str, what: &str, condition: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pool = warm(admin, service);
        if condition(&pool) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the pool never had {what}: {pool}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The BFF's health check answered, as it is with or without a ready instance.
fn assert_healthy(port: u16) {
    let health = get(port, "/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "ok");
}

#[test]
fn requests_take_ready_instances_and_a_swap_drops_the_old_versions() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("bff.wasm");
    std::fs::copy(js_component("bff-js"), &served).unwrap();
    let (cache, cache_dir) = shared_cache();
    let host = TestHost::serve(&served, "BFF")
        .env(cache, cache_dir)
        .admin()
        .args(["--warm-instances", "3", "--no-watch"])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    wait_for_pool(admin, "BFF", "3 ready", |pool| pool["ready"] == 3);
    let before = warm(admin, "BFF");
    assert_eq!(before["target"], 3, "{before}");

    for _ in 0..5 {
        assert_healthy(port);
    }
    let after = warm(admin, "BFF");
    let hits = after["hits"].as_u64().unwrap();
    assert!(
        hits >= 3,
        "sequential requests find a ready instance: {after}"
    );
    assert_eq!(
        hits + after["misses"].as_u64().unwrap(),
        5,
        "every request took a ready instance or made one: {after}"
    );
    // The pool is refilled in the background.
    wait_for_pool(admin, "BFF", "3 ready again", |pool| pool["ready"] == 3);
    let old_version = after["version"].as_str().unwrap().to_string();

    // Another component in the same file, then a reload: the old version's ready instances
    // are dropped with the swap, and the new version gets its own.
    let replacement = dir.path().join("bff.partial");
    std::fs::copy(js_component("test_js_guest"), &replacement).unwrap();
    std::fs::rename(&replacement, &served).unwrap();
    let reload = request(admin, "POST", "/reload", RELOAD, b"").json();
    assert_eq!(
        reload["reloads"][0]["result"]["outcome"], "swapped",
        "{reload}"
    );
    assert!(
        host.wait_for_log("warm_dropped=3", Duration::from_secs(5)),
        "the swap dropped the old version's three ready instances: {}",
        host.log()
    );
    wait_for_pool(admin, "BFF", "the new version's 3 ready", |pool| {
        pool["version"] != old_version.as_str() && pool["ready"] == 3
    });
}

#[test]
fn requests_are_served_with_the_pool_off_or_empty() {
    // Off: every request makes its own instance, as before the pool existed.
    let host = serve_js("bff-js", "BFF")
        .admin()
        .args(["--warm-instances", "0"])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    assert_healthy(port);
    assert_healthy(port);
    let off = warm(admin, "BFF");
    assert_eq!(off["target"], 0, "{off}");
    assert_eq!(off["made"], 0, "{off}");
    assert_eq!(off["hits"], 0, "{off}");

    // Empty: more requests at once than instances ready; the ones that find none make their
    // own, and every one is answered.
    let host = serve_js("bff-js", "BFF")
        .admin()
        .args(["--warm-instances", "1"])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    wait_for_pool(admin, "BFF", "1 ready", |pool| pool["ready"] == 1);
    let burst: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || get(port, "/health")))
        .collect();
    for answer in burst {
        let answer = answer.join().unwrap();
        assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
    }
    let empty = warm(admin, "BFF");
    assert!(empty["misses"].as_u64().unwrap() >= 1, "{empty}");
    assert_eq!(
        empty["hits"].as_u64().unwrap() + empty["misses"].as_u64().unwrap(),
        8,
        "{empty}"
    );
}

#[test]
fn the_memory_budget_bounds_the_pool() {
    // What one ready instance holds, from a host that keeps exactly one and serves nothing.
    let host = serve_js("bff-js", "BFF")
        .admin()
        .args(["--warm-instances", "1"])
        .start();
    let admin = host.admin_port();
    wait_for_pool(admin, "BFF", "1 ready", |pool| pool["ready"] == 1);
    let one = get(admin, "/stats").json()["instance_memory"]["used_bytes"]
        .as_u64()
        .unwrap();
    assert!(one > 0);
    drop(host);

    // A budget of three instances: a spare is made only while there is room for it and for
    // one a request would make, so at most two of the ten asked for are ready.
    let budget_mib = (3 * one).div_ceil(1 << 20);
    let host = serve_js("bff-js", "BFF")
        .admin()
        .args(["--warm-instances", "10"])
        .args(["--instance-memory-budget-mib", &budget_mib.to_string()])
        .start();
    let (port, admin) = (host.port(), host.admin_port());
    wait_for_pool(admin, "BFF", "waited for the budget", |pool| {
        pool["waited_for_budget"].as_u64().unwrap() >= 1
    });
    let bounded = warm(admin, "BFF");
    let ready = bounded["ready"].as_u64().unwrap();
    assert!((1..=2).contains(&ready), "{bounded}");
    // A request still gets an instance, ready or its own.
    assert_healthy(port);
    let stats = get(admin, "/stats").json();
    assert_eq!(
        stats["instance_memory"]["refused"], 0,
        "the pool never took the room a request needed: {stats}"
    );
}
