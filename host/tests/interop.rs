//! Our traces connect with those of the official AWS X-Ray SDKs (installed from PyPI and npm by
//! scripts/setup-interop.sh, which this test runs if needed): a Flask backend instrumented with
//! the Python SDK continues a trace our BFF started, and our host continues a trace an Express
//! app instrumented with the Node SDK started. Both sides send to the same daemon stand-in.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::daemon::Daemon;
use support::peers::{Peer, peers_installed, sample_everything};
use support::schema::assert_valid;
use support::{Host, application_with_options, component, free_port, get, workspace};

fn find<'a>(documents: &'a [Value], name: &str) -> Option<&'a Value> {
    documents
        .iter()
        .find(|d| d["name"] == name && d.get("type").is_none())
}

fn all_subsegments(entity: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for child in entity["subsegments"].as_array().into_iter().flatten() {
        out.push(child);
        out.extend(all_subsegments(child));
    }
    out
}

#[test]
fn a_flask_backend_with_the_python_sdk_continues_our_trace() {
    let interop = peers_installed();
    let daemon = Daemon::start();
    let flask_port = free_port();
    let _flask = Peer::start(
        &interop.join("venv/bin/python"),
        &[
            &workspace()
                .join("host/tests/peers/flask_backend.py")
                .display()
                .to_string(),
            &flask_port.to_string(),
        ],
        flask_port,
        &daemon.address(),
    );
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
        find(docs, "BFF").is_some() && find(docs, "Flask Backend").is_some()
    });
    let bff = find(&documents, "BFF").expect("our BFF segment");
    let flask = find(&documents, "Flask Backend")
        .unwrap_or_else(|| panic!("no Flask segment: {documents:#?}"));
    assert_valid(bff);
    assert_eq!(flask["trace_id"], bff["trace_id"], "one trace");
    let call = all_subsegments(bff)
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
    let args: Vec<String> = [
        "serve",
        "--component",
        &component("backend1").display().to_string(),
        "--listen",
        &format!("127.0.0.1:{backend_port}"),
        "--name",
        "Backend #1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _backend = Host::start_with_env(
        &args,
        &[backend_port],
        &[("AWS_XRAY_DAEMON_ADDRESS", &address)],
    );
    let express_port = free_port();
    let _express = Peer::start(
        std::path::Path::new("node"),
        &[
            &workspace()
                .join("host/tests/peers/express_client.js")
                .display()
                .to_string(),
            &express_port.to_string(),
        ],
        express_port,
        &daemon.address(),
    );
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
        find(docs, "Backend #1").is_some() && find(docs, "Express Caller").is_some()
    });
    let ours = find(&documents, "Backend #1")
        .unwrap_or_else(|| panic!("no segment of ours: {documents:#?}"));
    let express = find(&documents, "Express Caller")
        .unwrap_or_else(|| panic!("no Express segment: {documents:#?}"));
    assert_valid(ours);
    assert_eq!(ours["trace_id"], express["trace_id"], "one trace");
    let call = all_subsegments(express)
        .into_iter()
        .find(|s| s["namespace"] == "remote")
        .unwrap_or_else(|| panic!("no remote subsegment in {express:#}"));
    assert_eq!(
        ours["parent_id"], call["id"],
        "our segment hangs under the Node SDK's call"
    );
}
