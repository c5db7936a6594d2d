//! Our traces connect with those of the official AWS X-Ray SDKs (installed from PyPI and npm by
//! scripts/setup-interop.sh, which this test runs if needed): a Flask backend instrumented with
//! the Python SDK continues a trace our BFF started, and our host continues a trace an Express
//! app instrumented with the Node SDK started. Both sides send to the same daemon stand-in.
//!
//! The same with OpenTelemetry: a service instrumented with the OpenTelemetry Python SDK (W3C
//! trace context, or AWS's X-Ray propagator and id generator) calls our backend and is called by
//! our BFF, in one trace with the right parents on both sides.

use crate::support;

use std::time::Duration;
use support::daemon::Daemon;
use support::documents::{segment, subsegments};
use support::peers::{Peer, peers_installed};
use support::schema::assert_valid;
use support::{TestHost, component, free_port, get};
use xray::ids::TraceId;

#[test]
fn a_flask_backend_with_the_python_sdk_continues_our_trace() {
    peers_installed();
    let daemon = Daemon::start();
    let flask_port = free_port();
    let _flask = Peer::flask(flask_port, &daemon.address());
    let flask_url = format!("http://127.0.0.1:{flask_port}");
    let host = TestHost::application()
        .backend_1_url(&flask_url)
        .sample_everything()
        .traced_into(daemon)
        .start();
    let (front, daemon) = (host.port(), host.daemon());
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
    let backend = TestHost::serve(&component("backend1"), "Backend #1")
        .traced()
        .start();
    let (backend_port, daemon) = (backend.port(), backend.daemon());
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

/// The spans the OpenTelemetry peer wrote, once `count` are there.
fn otel_spans(file: &std::path::Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<serde_json::Value> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        if spans.len() >= count || std::time::Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A document's X-Ray trace id as OpenTelemetry's 32 hex digits.
fn w3c_trace_id(xray: &serde_json::Value) -> String {
    let id = xray.as_str().unwrap();
    TraceId::parse(id)
        .unwrap_or_else(|| panic!("{id} is not an X-Ray trace id"))
        .to_w3c()
}

/// An OpenTelemetry service (the Python SDK, W3C or X-Ray propagation) calls our backend 1: our
/// segment continues its trace under its client span.
fn an_otel_service_calls_our_backend(xray_propagation: bool) {
    peers_installed();
    let backend = TestHost::serve(&component("backend1"), "Backend #1")
        .sample_everything()
        .traced()
        .start();
    let (backend_port, daemon) = (backend.port(), backend.daemon());
    let dir = tempfile::tempdir().unwrap();
    let spans_file = dir.path().join("spans.jsonl");
    let peer_port = free_port();
    let _peer = Peer::otel(peer_port, &spans_file, xray_propagation);
    let answer = get(
        peer_port,
        &format!("/call?url=http://127.0.0.1:{backend_port}/"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let spans = otel_spans(&spans_file, 2);
    let client = spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .unwrap_or_else(|| panic!("no client span: {spans:#?}"));
    let documents = daemon.wait_for(Duration::from_secs(10), |docs| {
        segment(docs, "Backend #1").is_some()
    });
    let ours = segment(&documents, "Backend #1").unwrap();
    assert_valid(ours);
    assert_eq!(
        w3c_trace_id(&ours["trace_id"]),
        client["trace_id"],
        "one trace"
    );
    assert_eq!(
        ours["parent_id"], client["span_id"],
        "under the peer's call"
    );
}

/// Our BFF calls an OpenTelemetry service as backend 1: the peer's server span continues our
/// trace under the BFF's remote subsegment.
fn our_bff_calls_an_otel_service(xray_propagation: bool) {
    peers_installed();
    let dir = tempfile::tempdir().unwrap();
    let spans_file = dir.path().join("spans.jsonl");
    let peer_port = free_port();
    let _peer = Peer::otel(peer_port, &spans_file, xray_propagation);
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let host = TestHost::application()
        .backend_1_url(&peer_url)
        .sample_everything()
        .traced()
        .start();
    let (front, daemon) = (host.port(), host.daemon());
    let response = get(front, "/api/");
    assert_eq!(response.status, 200, "{}", response.body);
    let spans = otel_spans(&spans_file, 1);
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"));
    assert_eq!(server["sampled"], true);
    let documents = daemon.wait_for(Duration::from_secs(10), |docs| {
        segment(docs, "BFF").is_some()
    });
    let bff = segment(&documents, "BFF").unwrap();
    assert_valid(bff);
    assert_eq!(
        w3c_trace_id(&bff["trace_id"]),
        server["trace_id"],
        "one trace"
    );
    let call = subsegments(bff)
        .into_iter()
        .find(|s| s["http"]["request"]["url"] == format!("{peer_url}/"))
        .expect("a remote subsegment for the call to the peer");
    assert_eq!(
        server["parent_id"], call["id"],
        "the peer's span hangs under our call"
    );
}

#[test]
fn an_otel_service_with_w3c_propagation_calls_our_backend_in_one_trace() {
    an_otel_service_calls_our_backend(false);
}

#[test]
fn an_otel_service_with_the_x_ray_propagator_calls_our_backend_in_one_trace() {
    an_otel_service_calls_our_backend(true);
}

#[test]
fn our_bff_calls_an_otel_service_with_w3c_propagation_in_one_trace() {
    our_bff_calls_an_otel_service(false);
}

#[test]
fn our_bff_calls_an_otel_service_with_the_x_ray_propagator_in_one_trace() {
    our_bff_calls_an_otel_service(true);
}
