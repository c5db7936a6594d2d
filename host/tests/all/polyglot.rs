//! The mixed application: the Rust BFF with the Python backends (componentize-py, WASI 0.3 by
//! default, and their WASI 0.2 build), served by the same host, held to the Rust application's
//! contracts and trace shape; the Python guest library's errors, in both builds; and requests
//! interleaved in one WASI 0.3 Python instance (`interleaving.rs`).

mod interleaving;

use crate::application::{check_backend_contracts, check_bff_contract};
use crate::polyglot_js::js_component;
use crate::support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::documents::{segment, subsegment_named, subsegments};
use support::schema::assert_valid;
use support::{
    Services, SharedApplication, TestHost, component, get, python_component, python_p2_component,
    traced_application,
};

/// The mixed application (the Python backends on WASI 0.3), traced into its own daemon stand-in
/// with every request sampled, started once by the first test that asks for it.
fn mixed() -> &'static SharedApplication {
    static MIXED: OnceLock<SharedApplication> = OnceLock::new();
    MIXED.get_or_init(|| {
        traced_application(TestHost::application_of(Services {
            bff: component("bff"),
            backend_1: python_component("backend1-py"),
            backend_2: python_component("backend2-py"),
        }))
    })
}

#[test]
fn the_mixed_application_answers_the_rust_applications_contracts() {
    let app = mixed();
    check_backend_contracts(app.one, app.two);
    check_bff_contract(app.front);
    assert!(
        app.host.log().contains("abi=wasi:http 0.3"),
        "the Python backends are WASI 0.3 components: {}",
        app.host.log()
    );
}

/// The WASI 0.2 build (`--python-wasi 0.2`), for hosts that serve only WASI 0.2: the same
/// contracts and trace shape. Its host lives for this test alone (the statics are the
/// applications several tests share).
#[test]
fn the_mixed_application_with_the_wasi_0_2_python_backends_answers_the_same_way() {
    let host = TestHost::application_of(Services {
        bff: component("bff"),
        backend_1: python_p2_component("backend1-py"),
        backend_2: python_p2_component("backend2-py"),
    })
    .traced()
    .sample_everything()
    .start();
    let app = SharedApplication {
        front: host.port(),
        one: host.port_of("Backend #1"),
        two: host.port_of("Backend #2"),
        host,
    };
    check_backend_contracts(app.one, app.two);
    check_bff_contract(app.front);
    check_the_rust_applications_trace_shape(&app);
    assert!(
        app.host.log().contains("abi=wasi:http 0.2"),
        "the -p2 builds are WASI 0.2 components: {}",
        app.host.log()
    );
}

/// The manual subsegment `name` of a backend's segment, annotated with `key`, and the table call
/// the backend made.
fn work_and_table_call<'a>(backend: &'a Value, name: &str, key: &str) -> (&'a Value, &'a Value) {
    let work = subsegment_named(backend, name).unwrap_or_else(|| panic!("no {name}: {backend:#}"));
    assert!(
        work["annotations"][key]
            .as_str()
            .is_some_and(|v| v.len() == 10 || v.len() == 8),
        "{work:#}"
    );
    assert!(work["end_time"].as_f64().is_some(), "{work:#}");
    let call = subsegment_named(backend, "embedded table").unwrap_or_else(|| panic!("{backend:#}"));
    assert_eq!(call["namespace"], "local");
    (work, call)
}

/// The application of the original's languages: the JavaScript BFF with the Python backends.
fn javascript_and_python() -> &'static SharedApplication {
    static APP: OnceLock<SharedApplication> = OnceLock::new();
    APP.get_or_init(|| {
        traced_application(TestHost::application_of(Services {
            bff: js_component("bff-js"),
            backend_1: python_component("backend1-py"),
            backend_2: python_component("backend2-py"),
        }))
    })
}

#[test]
fn the_mixed_applications_trace_has_the_rust_applications_shape() {
    check_the_rust_applications_trace_shape(mixed());
}

#[test]
fn the_javascript_and_python_application_answers_the_contracts_with_the_same_trace_shape() {
    let app = javascript_and_python();
    check_backend_contracts(app.one, app.two);
    check_bff_contract(app.front);
    check_the_rust_applications_trace_shape(app);
}

/// One page load's trace: a BFF segment with a manual subsegment around each remote call, each
/// backend's segment continuing its call, with its manual subsegment and its table call.
fn check_the_rust_applications_trace_shape(app: &SharedApplication) {
    let response = get(app.front, "/api/");
    assert_eq!(response.status, 200, "{}", response.body);
    let echoed = response
        .header("x-amzn-trace-id")
        .expect("the trace id is echoed");
    let root = echoed.strip_prefix("Root=").expect("Root=…").to_string();

    let documents = app.daemon().trace(&root, 3, Duration::from_secs(10));
    documents.iter().for_each(assert_valid);
    let bff = segment(&documents, "BFF").unwrap_or_else(|| panic!("{documents:#?}"));
    let backend_1 = segment(&documents, "Backend #1").unwrap_or_else(|| panic!("{documents:#?}"));
    let backend_2 = segment(&documents, "Backend #2").unwrap_or_else(|| panic!("{documents:#?}"));

    // The BFF: a manual subsegment around each call holding the host's remote subsegment,
    // which each Python backend's segment continues.
    let all = subsegments(bff);
    for (name, backend) in [("Backend #1", backend_1), ("Backend #2", backend_2)] {
        let manual = all
            .iter()
            .find(|s| s["name"] == format!("call {name}"))
            .unwrap_or_else(|| panic!("no manual subsegment for {name}: {bff:#}"));
        let remote = &manual["subsegments"][0];
        assert_eq!(remote["namespace"], "remote");
        assert_eq!(remote["http"]["response"]["status"], 200);
        assert_eq!(
            backend["parent_id"], remote["id"],
            "{name} continues the call"
        );
        assert_eq!(backend["trace_id"], bff["trace_id"]);
        assert_eq!(backend["http"]["response"]["status"], 200);
    }

    // Backend 1 writes its item inside its manual subsegment, as the Rust one does.
    let (work, call) = work_and_table_call(backend_1, "current-date", "current_date");
    assert_eq!(
        subsegment_named(work, "embedded table").map(|c| &c["id"]),
        Some(&call["id"]),
        "{backend_1:#}"
    );
    // Backend 2 writes it first, then opens its subsegment: both directly under the segment.
    let (_, call) = work_and_table_call(backend_2, "current-time", "current_time");
    let top: Vec<&Value> = backend_2["subsegments"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(top.iter().any(|s| s["id"] == call["id"]), "{backend_2:#}");
}

/// The test component of the guest library's errors, in both builds: the library is the same.
fn faults_builds() -> [PathBuf; 2] {
    [
        python_component("faults-py"),
        python_p2_component("faults-py"),
    ]
}

#[test]
fn the_python_guest_library_refuses_bad_input_with_a_clear_error() {
    for faults in faults_builds() {
        refuses_bad_input_with_a_clear_error(&faults);
    }
}

fn refuses_bad_input_with_a_clear_error(faults: &Path) {
    let host = TestHost::serve(faults, "Faults").start();
    let port = host.port();

    let bad_key = get(port, "/annotate?key=bad%20key");
    assert_eq!(bad_key.status, 400, "{}", bad_key.body);
    assert_eq!(
        bad_key.body,
        "TracingError (InvalidAnnotationKey): invalid annotation key 'bad key': \
         a key is 1 to 500 characters of a-z, A-Z, 0-9 and _"
    );
    assert_eq!(get(port, "/annotate?key=good_key").status, 200);

    let large = get(port, "/put-large");
    assert_eq!(large.status, 400, "{}", large.body);
    assert!(
        large
            .body
            .starts_with("TableError (TooLarge): item too large: 5000"),
        "{}",
        large.body
    );
    assert!(
        large.body.ends_with("bytes, DynamoDB takes at most 400 KB"),
        "{}",
        large.body
    );

    // A good item goes through the dict conversion both ways.
    let item = get(port, "/put-item?id=round-trip");
    assert_eq!(item.status, 200, "{}", item.body);
    let item: Value = item.json();
    assert_eq!(item["SubAppId"], "round-trip");
    assert_eq!(
        item["Nested"]["list"],
        serde_json::json!(["1", "2.5", true, null, "01"])
    );
    assert_eq!(item["Nested"]["tags"], serde_json::json!(["a", "b"]));
}

#[test]
fn python_subsegments_nest_and_record_the_exception_that_leaves_them() {
    for faults in faults_builds() {
        subsegments_nest_and_record_the_exception_that_leaves_them(&faults);
    }
}

fn subsegments_nest_and_record_the_exception_that_leaves_them(faults: &Path) {
    let host = TestHost::serve(faults, "Faults")
        .sample_everything()
        .traced()
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    assert_eq!(get(port, "/nested").status, 200);
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| {
        segment(docs, "Faults").is_some()
    });
    documents.iter().for_each(assert_valid);
    let faults = segment(&documents, "Faults").unwrap();
    let outer = &faults["subsegments"][0];
    assert_eq!(outer["name"], "outer", "{faults:#}");
    assert_eq!(outer["annotations"]["level"], 1);
    let inner = &outer["subsegments"][0];
    assert_eq!(inner["name"], "inner", "{faults:#}");
    assert_eq!(
        inner["metadata"]["default"]["detail"],
        serde_json::json!({"n": [1, 2]})
    );
    let failing = &inner["subsegments"][0];
    assert_eq!(failing["name"], "failing", "{faults:#}");
    assert_eq!(failing["fault"], true);
    let exception = &failing["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "KeyError", "{failing:#}");
    assert_eq!(exception["message"], "'boom'");
    assert!(
        outer.get("fault").is_none(),
        "the exception was caught: {outer:#}"
    );
}
