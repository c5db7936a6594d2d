//! Our traces connect with those of the official AWS X-Ray SDKs (installed from PyPI and npm by
//! scripts/setup-interop.sh, which this test runs if needed): a Flask backend instrumented with
//! the Python SDK continues a trace our BFF started, and our host continues a trace an Express
//! app instrumented with the Node SDK started. Both sides send to the same daemon stand-in.

use crate::support;

use std::time::Duration;
use support::daemon::Daemon;
use support::documents::{segment, subsegments};
use support::peers::{Peer, peers_installed, sample_everything};
use support::schema::assert_valid;
use support::{Host, application_with_options, component, free_port, get};

#[test]
fn a_flask_backend_with_the_python_sdk_continues_our_trace() {
    peers_installed();
    let daemon = Daemon::start();
    let flask_port = free_port();
    let _flask = Peer::flask(flask_port, &daemon.address());
    let rules = sample_everything();
    let rules_path = rules.path().display().to_string();
    let flask_url = format!("http://127.0.0.1:{flask_port}");
    let address = daemon.address();
    let (_host, front, _, _) = application_with_options(
        Some(&flask_url),
        &["--sampling-rules", &rules_path],
        &[("AWS_XRAY_DAEMON_ADDRESS", &address)],
    );
    let response = get(front, "/api/");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response.json()["currentDate"]
            .as_str()
            .unwrap()
            .contains('/')
    );

    let documents = daemon.wait_for(Duration::from_secs(10), |docs| {
        segment(docs, "BFF").is_some() && segment(docs, "Flask Backend").is_some()
    });
    let bff = segment(&documents, "BFF").expect("our BFF segment");
    let flask = segment(&documents, "Flask Backend")
        .unwrap_or_else(|| panic!("no Flask segment: {documents:#?}"));
    assert_valid(bff);
    assert_eq!(flask["trace_id"], bff["trace_id"], "one trace");
    let call = subsegments(bff)
        .into_iter()
        .find(|s| s["http"]["request"]["url"] == format!("{flask_url}/"))
        .expect("a remote subsegment for the call to Flask");
    assert_eq!(
        flask["parent_id"], call["id"],
        "the Python SDK's segment hangs under our call"
    );
}

#[test]
fn our_backend_continues_a_trace_started_by_express_with_the_node_sdk() {
    peers_installed();
    let daemon = Daemon::start();
    let backend_port = free_port();
    let address = daemon.address();
    let _backend = Host::serve_with_env(
        &component("backend1"),
        backend_port,
        "Backend #1",
        &[],
        &[("AWS_XRAY_DAEMON_ADDRESS", &address)],
    );
    let express_port = free_port();
    let _express = Peer::express(express_port, &daemon.address());
    let response = get(
        express_port,
        &format!("/call?url=http://127.0.0.1:{backend_port}/"),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response.json()["body"]
            .as_str()
            .unwrap()
            .contains("currentDate")
    );

    let documents = daemon.wait_for(Duration::from_secs(10), |docs| {
        segment(docs, "Backend #1").is_some() && segment(docs, "Express Caller").is_some()
    });
    let ours = segment(&documents, "Backend #1")
        .unwrap_or_else(|| panic!("no segment of ours: {documents:#?}"));
    let express = segment(&documents, "Express Caller")
        .unwrap_or_else(|| panic!("no Express segment: {documents:#?}"));
    assert_valid(ours);
    assert_eq!(ours["trace_id"], express["trace_id"], "one trace");
    let call = subsegments(express)
        .into_iter()
        .find(|s| s["namespace"] == "remote")
        .unwrap_or_else(|| panic!("no remote subsegment in {express:#}"));
    assert_eq!(
        ours["parent_id"], call["id"],
        "our segment hangs under the Node SDK's call"
    );
}
