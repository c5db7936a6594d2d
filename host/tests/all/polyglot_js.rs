//! The reference application with its BFF in JavaScript (components/bff-js, built with
//! componentize-js by scripts/build-js-components.sh) and the Rust backends: the same answers,
//! errors and trace shape as the Rust application; and the JavaScript guest library
//! (components/js/xray-host.js) through a test component.

use crate::application::{
    BffUnderTest, assert_a_backend_not_on_the_allow_list_is_refused_by_the_host,
    assert_a_backend_that_answers_garbage_gives_a_502,
    assert_a_backend_that_hangs_gives_a_504_within_the_outbound_timeout,
    assert_a_backend_that_is_down_gives_a_prompt_502_naming_it,
    assert_the_bff_answers_its_health_check, assert_the_bff_combines_both_backends,
};
use crate::support;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::documents::{segment, subsegment_named, subsegments};
use support::schema::assert_valid;
use support::{TestHost, free_port, get, workspace};

/// The JavaScript components, built once per test binary by scripts/build-js-components.sh
/// (which installs the pinned toolchain on first use and skips components that are up to
/// date). Returns the path of component `name`.
pub(crate) fn js_component(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new("bash")
                .arg(workspace().join("scripts/build-js-components.sh"))
                .status()
                .expect("cannot run scripts/build-js-components.sh");
            assert!(
                status.success(),
                "building the JavaScript components failed (Node.js 20 and npm are needed)"
            );
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"))
                .join("wasm32-wasip2/release")
        })
        .join(format!("{name}.wasm"))
}

/// One compilation cache for the hosts of this module: a componentize-js component is a
/// whole JavaScript engine (about 13 MB), which takes seconds to compile, so the BFF is
/// compiled into it once, by a host started for that alone before any test's, and the tests'
/// hosts (started in parallel) find it there instead of each compiling it at the same time in
/// a fresh cache of its own, which could outlast their wait for the host to listen.
pub(crate) fn shared_cache() -> (&'static str, String) {
    const CACHE_DIR: &str = "XRAY_HOST_CACHE_DIR";
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = CACHE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let _compiling = TestHost::serve(&js_component("bff-js"), "BFF")
            .env(CACHE_DIR, &path)
            .start();
        dir
    });
    (CACHE_DIR, dir.path().display().to_string())
}

/// Serves JavaScript component `name` as `service`, with the module's shared cache.
pub(crate) fn serve_js(name: &str, service: &str) -> TestHost {
    let (cache, cache_dir) = shared_cache();
    TestHost::serve(&js_component(name), service).env(cache, cache_dir)
}

#[test]
fn the_javascript_bff_answers_like_the_rust_one_with_the_same_trace_shape() {
    let (cache, cache_dir) = shared_cache();
    let host = TestHost::application()
        .bff(&js_component("bff-js"))
        .sample_everything()
        .arg("--access-log")
        .traced()
        .env(cache, &cache_dir)
        .start();
    let (front, daemon) = (host.port(), host.daemon());
    let (one, two) = (host.port_of("Backend #1"), host.port_of("Backend #2"));
    assert_the_bff_combines_both_backends(&host, front);

    // The trace of one more request: the BFF's segment holds a manual subsegment per backend
    // (opened by the JavaScript library) with the host's remote subsegment for the call in it,
    // and each backend's segment continues that call.
    let response = get(front, "/api");
    assert_eq!(response.status, 200, "{}", response.body);
    let echoed = response
        .header("x-amzn-trace-id")
        .expect("the trace id is echoed");
    let root = echoed.strip_prefix("Root=").expect("Root=…").to_string();
    let documents = daemon.trace(&root, 3, Duration::from_secs(5));
    documents.iter().for_each(assert_valid);
    let bff = segment(&documents, "BFF").unwrap_or_else(|| panic!("{documents:#?}"));
    assert!(bff.get("parent_id").is_none(), "the BFF starts the trace");
    assert_eq!(bff["http"]["response"]["status"], 200);
    assert_eq!(subsegments(bff).len(), 4, "{bff:#}");
    for (backend, port) in [("Backend #1", one), ("Backend #2", two)] {
        let manual = subsegment_named(bff, &format!("call {backend}"))
            .unwrap_or_else(|| panic!("no manual subsegment for {backend}: {bff:#}"));
        assert_eq!(manual["annotations"]["backend"], backend);
        let remote = &manual["subsegments"][0];
        assert_eq!(remote["namespace"], "remote");
        assert_eq!(
            remote["http"]["request"]["url"],
            format!("http://127.0.0.1:{port}/")
        );
        assert_eq!(remote["http"]["response"]["status"], 200);
        let called = segment(&documents, backend).unwrap_or_else(|| panic!("{documents:#?}"));
        assert_eq!(
            called["parent_id"], remote["id"],
            "{backend} continues the call"
        );
    }
}

/// The JavaScript BFF, its hosts sharing the module's compilation cache.
fn javascript_bff(test: impl FnOnce(&BffUnderTest)) {
    let (cache, cache_dir) = shared_cache();
    test(&BffUnderTest {
        component: &js_component("bff-js"),
        env: &[(cache, &cache_dir)],
    })
}

// The Rust BFF's error tests (application.rs), run against the JavaScript one: the same
// statuses and the same messages, because its library's `send` says why a call failed.

#[test]
fn the_javascript_bff_gives_a_prompt_502_naming_backend_1_when_it_is_down() {
    javascript_bff(assert_a_backend_that_is_down_gives_a_prompt_502_naming_it);
}

#[test]
fn the_javascript_bff_gives_a_504_for_a_backend_that_hangs() {
    javascript_bff(assert_a_backend_that_hangs_gives_a_504_within_the_outbound_timeout);
}

#[test]
fn the_javascript_bff_gives_a_502_for_a_backend_that_answers_garbage() {
    javascript_bff(assert_a_backend_that_answers_garbage_gives_a_502);
}

#[test]
fn the_javascript_bff_is_refused_a_backend_not_on_its_allow_list() {
    javascript_bff(assert_a_backend_not_on_the_allow_list_is_refused_by_the_host);
}

#[test]
fn the_javascript_bff_answers_its_health_check() {
    let host = serve_js("bff-js", "BFF").start();
    let port = host.port();
    assert_the_bff_answers_its_health_check(port);
}

#[test]
fn the_javascript_library_records_plain_values_and_throws_the_hosts_refusal() {
    let host = serve_js("test_js_guest", "JS guest")
        .sample_everything()
        .traced()
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    let response = get(port, "/");
    assert_eq!(response.status, 200, "{}", response.body);
    // An invalid annotation key: the host's refusal, thrown as an Error that names the problem.
    assert_eq!(
        response.json(),
        json!({
            "name": "TracingError",
            "code": "invalid-annotation-key",
            "message": "tracing: the host refused annotation \"not a valid key!\": invalid \
                        annotation key \"not a valid key!\": use 1 to 500 of a-z, A-Z, 0-9 and _",
        })
    );

    let documents = daemon.wait_for(Duration::from_secs(5), |documents| !documents.is_empty());
    documents.iter().for_each(assert_valid);
    let guest = segment(&documents, "JS guest").unwrap_or_else(|| panic!("{documents:#?}"));
    assert_eq!(guest["annotations"]["guest"], "js");
    let checks = subsegment_named(guest, "guest checks").unwrap_or_else(|| panic!("{guest:#}"));
    // Plain scalars became the annotation kinds; the refused key was not recorded.
    assert_eq!(
        checks["annotations"],
        json!({"count": 3, "ratio": 0.5, "ok": true, "tier": "gold"})
    );
    assert_eq!(
        checks["metadata"]["details"]["request"],
        json!({"path": "/", "tags": ["a", "b"], "depth": {"level": 2}})
    );
    // The `async` work ended the subsegment when it settled, not the host at the request's end.
    assert!(checks["end_time"].as_f64().is_some(), "{checks:#}");
    assert!(checks.get("in_progress").is_none(), "{checks:#}");
    // The item built from a nested object was written, traced as a table call.
    let table_call: Vec<&Value> = subsegments(guest)
        .into_iter()
        .filter(|s| s["name"] != "guest checks")
        .collect();
    assert_eq!(table_call.len(), 1, "{guest:#}");
    assert!(table_call[0].get("fault").is_none(), "{guest:#}");
}

#[test]
fn the_javascript_library_refuses_an_item_too_large_with_a_clear_error() {
    let host = serve_js("test_js_guest", "JS guest").start();
    let port = host.port();
    let response = get(port, "/put-large");
    assert_eq!(response.status, 400, "{}", response.body);
    let body = response.json();
    assert_eq!(body["name"], "TableError", "{body}");
    assert_eq!(body["code"], "too-large", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("table: put-item failed: item too large (5")
            && message.ends_with(" bytes; DynamoDB takes at most 400 KB)"),
        "{message}"
    );
}

#[test]
fn the_javascript_librarys_send_is_traced_and_says_why_a_call_failed() {
    let backend_host = TestHost::serve(&support::component("backend1"), "Backend #1")
        .sample_everything()
        .traced()
        .start();
    // Both hosts send to the backend's stand-in.
    let daemon = backend_host.daemon();
    let backend = format!("http://127.0.0.1:{}", backend_host.port());
    let down = format!("http://127.0.0.1:{}", free_port());
    let host = serve_js("test_js_guest", "JS guest")
        .sample_everything()
        .args(["--allow-outbound", &backend, "--allow-outbound", &down])
        .daemon_at(&daemon.address())
        .start();
    let port = host.port();

    // A POST with a body and headers reaches the backend, which refuses the method: the
    // status, a header and the JSON body come back whole.
    let response = get(port, &format!("/send?to={backend}/"));
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = response.json();
    assert_eq!(answer["status"], 405, "{answer}");
    assert_eq!(answer["allow"], "GET, HEAD", "{answer}");
    assert_eq!(answer["body"]["error"], "method not allowed", "{answer}");
    assert_eq!(answer["body"]["method"], "POST", "{answer}");

    // The call is the guest's remote subsegment, and the backend's segment continues it.
    let root = response
        .header("x-amzn-trace-id")
        .and_then(|header| header.strip_prefix("Root="))
        .expect("the trace id is echoed")
        .to_string();
    let documents = daemon.trace(&root, 2, Duration::from_secs(5));
    documents.iter().for_each(assert_valid);
    let guest = segment(&documents, "JS guest").unwrap_or_else(|| panic!("{documents:#?}"));
    let remote = subsegments(guest)
        .into_iter()
        .find(|s| s["namespace"] == "remote")
        .unwrap_or_else(|| panic!("{guest:#}"));
    assert_eq!(remote["http"]["request"]["method"], "POST", "{remote:#}");
    assert_eq!(remote["http"]["response"]["status"], 405, "{remote:#}");
    let called = segment(&documents, "Backend #1").unwrap_or_else(|| panic!("{documents:#?}"));
    assert_eq!(called["parent_id"], remote["id"]);

    // A refused connection and a denied one are told apart by their WASI error codes.
    let refused = get(port, &format!("/send?to={down}/")).json();
    assert_eq!(
        refused,
        json!({
            "name": "HttpClientError",
            "code": "connection-refused",
            "timedOut": false,
            "message": format!("calling {down}/ failed: connection-refused"),
        })
    );
    let denied = get(port, "/send?to=http://127.0.0.1:9/").json();
    assert_eq!(denied["code"], "http-request-denied", "{denied}");

    // An answer longer than the caller's limit is refused, not read into memory.
    let too_long = get(port, &format!("/send?to={backend}/&max=16")).json();
    assert_eq!(too_long["code"], "http-response-body-size", "{too_long}");
    assert!(
        too_long["message"]
            .as_str()
            .unwrap()
            .ends_with("(more than 16 bytes)"),
        "{too_long}"
    );
}
