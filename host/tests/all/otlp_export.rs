//! OTLP export, checked by a receiver built on the official definitions (the opentelemetry-proto
//! Python package) and botocore's SigV4 signer (`peers/otlp_receiver.py`): the application's
//! spans decode, carry the conventions' attributes, connect to each other as the segments do and
//! name the same trace; JSON and gzip decode too; signed exports verify for service `xray`; a
//! refused export is retried, then counted, and never holds a request up; on ECS the resource
//! names the task's log group as X-Ray's OTLP endpoint reads it.

use crate::support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::documents::segment;
use support::ecs_metadata::MetadataEndpoint;
use support::peers::{Peer, peers_installed};
use support::{Host, TestHost, component, free_port, get};

/// The receiver's lines so far.
fn lines(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Waits until the receiver has decoded at least `count` spans; returns every span with its
/// resource's `service.name` added as `"service"`.
pub(crate) fn spans(out: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut found = Vec::new();
        for line in lines(out) {
            let Some(resources) = line["request"]["resourceSpans"].as_array() else {
                continue;
            };
            for resource in resources {
                let service = attribute(&resource["resource"], "service.name");
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        let mut span = span.clone();
                        span["service"] = service.clone();
                        found.push(span);
                    }
                }
            }
        }
        if found.len() >= count || Instant::now() > deadline {
            assert!(
                found.len() >= count,
                "{} spans of {count}: {found:#?}",
                found.len()
            );
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An attribute's value (`stringValue`, `intValue`, …) as JSON, `Null` when absent.
pub(crate) fn attribute(holder: &Value, key: &str) -> Value {
    holder["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|kv| kv["key"] == key)
        .map(|kv| {
            let value = &kv["value"];
            value
                .as_object()
                .and_then(|o| o.values().next().cloned())
                .unwrap_or(Value::Null)
        })
        .unwrap_or(Value::Null)
}

fn the_span<'a>(spans: &'a [Value], service: &str, kind: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["service"] == service && s["kind"] == kind)
        .collect()
}

/// The whole application, exporting both ways; one page load.
fn application_exporting(protocol: &str, gzip: bool) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    peers_installed();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let receiver_port = free_port();
    let _receiver = Peer::otlp_receiver(receiver_port, &out, &[], &[]);
    let endpoint = format!("http://127.0.0.1:{receiver_port}");
    let compression = if gzip { "gzip" } else { "none" };
    let host = TestHost::application()
        .sample_everything()
        .traced()
        .env("OTEL_TRACES_EXPORTER", "xray,otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start();
    let (front, daemon) = (host.port(), host.daemon());
    let answer = get(front, "/api");
    assert_eq!(answer.status, 200, "{}", answer.body);
    // BFF: server + two calls; each backend: server + its table call.
    let spans = spans(&out, 7);
    let documents = daemon.wait_for(Duration::from_secs(10), |docs| {
        ["BFF", "Backend #1", "Backend #2"]
            .iter()
            .all(|name| segment(docs, name).is_some())
    });
    (spans, documents, lines(&out))
}

/// Whether `span`'s parent chain (through the component's INTERNAL spans) reaches `ancestor`.
fn descends_from(spans: &[Value], span: &Value, ancestor: &Value) -> bool {
    let mut parent = span["parentSpanId"].clone();
    for _ in 0..spans.len() {
        if parent == ancestor["spanId"] {
            return true;
        }
        match spans.iter().find(|s| s["spanId"] == parent) {
            Some(next) if next["kind"] == "SPAN_KIND_INTERNAL" => {
                parent = next["parentSpanId"].clone()
            }
            _ => return false,
        }
    }
    false
}

fn check_the_application_spans(spans: &[Value], documents: &[Value]) {
    let bff = segment(documents, "BFF").unwrap();
    let trace = bff["trace_id"].as_str().unwrap().replace('-', "");
    let trace = &trace[1..];
    for span in spans {
        assert_eq!(
            span["traceId"], trace,
            "one trace id on both sides: {span:#}"
        );
    }
    let server = the_span(spans, "BFF", "SPAN_KIND_SERVER");
    let [server] = server.as_slice() else {
        panic!("one BFF server span: {spans:#?}")
    };
    assert_eq!(
        server["spanId"], bff["id"],
        "the segment's id is the span's"
    );
    assert_eq!(attribute(server, "http.request.method"), "GET");
    assert_eq!(attribute(server, "url.path"), "/api");
    assert_eq!(attribute(server, "http.response.status_code"), "200");
    let calls = the_span(spans, "BFF", "SPAN_KIND_CLIENT");
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for (call, backend) in calls.iter().zip(["Backend #1", "Backend #2"]) {
        assert!(descends_from(spans, call, server), "{call:#}");
        assert_eq!(attribute(call, "http.request.method"), "GET");
        assert!(
            attribute(call, "url.full")
                .as_str()
                .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
            "{call:#}"
        );
        assert!(attribute(call, "server.address").is_string(), "{call:#}");
        assert_eq!(attribute(call, "http.response.status_code"), "200");
        // The backend's server span is the call's child, as its segment is the subsegment's.
        let [callee] = the_span(spans, backend, "SPAN_KIND_SERVER")[..] else {
            panic!("one {backend} server span: {spans:#?}")
        };
        assert_eq!(callee["parentSpanId"], call["spanId"], "{backend}");
        let document = segment(documents, backend).unwrap();
        assert_eq!(callee["spanId"], document["id"]);
        assert_eq!(document["parent_id"], call["spanId"]);
        // Its table call, a client span under it.
        let [table] = the_span(spans, backend, "SPAN_KIND_CLIENT")[..] else {
            panic!("one {backend} table span: {spans:#?}")
        };
        assert!(descends_from(spans, table, callee), "{table:#}");
        assert_eq!(attribute(table, "db.operation.name"), "PutItem");
    }
}

#[test]
fn the_applications_spans_decode_with_the_official_definitions_and_connect_like_its_segments() {
    let (spans, documents, lines) = application_exporting("http/protobuf", true);
    check_the_application_spans(&spans, &documents);
    assert!(
        lines
            .iter()
            .all(|l| l["content_type"] == "application/x-protobuf" && l["encoding"] == "gzip"),
        "{lines:#?}"
    );
}

#[test]
fn json_export_decodes_with_the_official_definitions_too() {
    let (spans, documents, lines) = application_exporting("http/json", false);
    check_the_application_spans(&spans, &documents);
    assert!(
        lines
            .iter()
            .all(|l| l["content_type"] == "application/json" && l["encoding"].is_null()),
        "{lines:#?}"
    );
    // The resource: the service, the variable's attribute, no ECS outside ECS.
    let line = &lines[0]["request"]["resourceSpans"][0]["resource"];
    assert_eq!(attribute(line, "deployment.environment"), "test");
    assert_eq!(attribute(line, "telemetry.sdk.name"), "xray-host");
    assert!(attribute(line, "cloud.platform").is_null());
}

/// Credentials both sides know: the host signs with them, the receiver checks with them.
const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIDOTLPTEST"),
    ("AWS_SECRET_ACCESS_KEY", "otlp-test-secret"),
    ("AWS_SESSION_TOKEN", "otlp-test-token"),
];

/// Backend 2 alone (with an admin listener), exporting OTLP only, signed, to a receiver that
/// first answers `refusals`.
fn signed_backend(refusals: &str) -> (Host, tempfile::TempDir, Peer) {
    peers_installed();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let receiver_port = free_port();
    let receiver = Peer::otlp_receiver(
        receiver_port,
        &out,
        &["--refuse", refusals, "--sigv4", "us-west-2"],
        &CREDENTIALS,
    );
    let endpoint = format!("http://127.0.0.1:{receiver_port}/v1/traces");
    let host = TestHost::serve(&component("backend2"), "Backend #2")
        .sample_everything()
        .admin()
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint)
        .env("XRAY_HOST_OTLP_SIGV4", "true")
        .env("AWS_REGION", "us-west-2")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_BSP_EXPORT_TIMEOUT", "4000")
        // No daemon at all: OTLP alone must not need one.
        .daemon_at("127.0.0.1:1")
        .envs(&CREDENTIALS)
        .start();
    (host, dir, receiver)
}

fn otlp_counters(admin: u16) -> Value {
    get(admin, "/stats").json()["exporters"]["otlp"].clone()
}

fn wait_counters(admin: u16, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counters = otlp_counters(admin);
        if done(&counters) || Instant::now() > deadline {
            return counters;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn signed_exports_verify_with_botocore_and_retryable_refusals_are_retried() {
    let (host, dir, _receiver) = signed_backend("503,429");
    let (port, admin) = (host.port(), host.admin_port());
    let started = Instant::now();
    let answer = get(port, "/");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the refusals held the request up: {:?}",
        started.elapsed()
    );
    let counters = wait_counters(admin, |c| c["sent"].as_u64() >= Some(1));
    assert_eq!(counters["retried"], 2, "{counters}");
    assert_eq!(counters["failed"], 0, "{counters}");
    let lines = lines(&dir.path().join("received.jsonl"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["refused"], 503);
    assert_eq!(lines[1]["refused"], 429);
    for line in &lines {
        assert_eq!(
            line["signature"], "valid",
            "botocore's signer agrees: {line}"
        );
    }
    let spans = &lines[2]["request"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(spans[0]["kind"], "SPAN_KIND_SERVER");
}

#[test]
fn a_refused_export_is_counted_with_a_clear_log_line_and_requests_go_on() {
    let (host, _dir, _receiver) = signed_backend("403");
    let (port, admin) = (host.port(), host.admin_port());
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(get(port, "/").status, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let counters = wait_counters(admin, |c| {
        c["failed"].as_u64() >= Some(1) && c["pending"] == 0
    });
    assert!(counters["failed"].as_u64() >= Some(1), "{counters}");
    assert!(
        host.wait_for_log("refused the batch with 403", Duration::from_secs(5)),
        "{}",
        host.log()
    );
    let log = host.log();
    assert!(
        log.contains("region us-west-2") && log.contains("AKIDOTLPTEST"),
        "the refusal names the credentials and region: {log}"
    );
    assert!(!log.contains("otlp-test-secret"), "never the secret");
}

#[test]
fn a_traces_exporter_the_host_does_not_have_stops_it_with_a_clear_message() {
    let (ok, output) = TestHost::serve(&component("backend2"), "Backend #2")
        .args(["--traces-exporter", "zipkin"])
        .run_to_exit();
    assert!(!ok);
    assert!(
        output.contains("zipkin") && output.contains("otlp"),
        "{output}"
    );
}

#[test]
fn spans_still_queued_are_sent_at_shutdown() {
    peers_installed();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let receiver_port = free_port();
    let _receiver = Peer::otlp_receiver(receiver_port, &out, &[], &[]);
    let endpoint = format!("http://127.0.0.1:{receiver_port}");
    let mut host = TestHost::serve(&component("backend2"), "Backend #2")
        .sample_everything()
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        // A batch would wait a minute: only the shutdown flush can send it in time.
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .daemon_at("127.0.0.1:1")
        .start();
    let port = host.port();
    assert_eq!(get(port, "/").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        lines(&out).is_empty(),
        "nothing is sent before the batch is due"
    );
    host.terminate();
    assert_eq!(
        host.wait_exit(Duration::from_secs(15)),
        Some(true),
        "{}",
        host.log()
    );
    let spans = spans(&out, 1);
    assert_eq!(spans[0]["kind"], "SPAN_KIND_SERVER", "{spans:#?}");
}

#[test]
fn on_ecs_the_resource_names_the_tasks_log_group_as_x_ray_reads_it() {
    peers_installed();
    let endpoint = MetadataEndpoint::fargate(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let receiver_port = free_port();
    let _receiver = Peer::otlp_receiver(receiver_port, &out, &[], &[]);
    let host = TestHost::serve(&component("backend2"), "Backend #2")
        .sample_everything()
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{receiver_port}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("ECS_CONTAINER_METADATA_URI_V4", endpoint.uri())
        .daemon_at("127.0.0.1:1")
        .start();
    endpoint.wait_until_read();
    // The read is asynchronous: requests until an export carries what the task says.
    let deadline = Instant::now() + Duration::from_secs(15);
    let resource = loop {
        assert_eq!(get(host.port(), "/").status, 200);
        std::thread::sleep(Duration::from_millis(200));
        let last = lines(&out)
            .iter()
            .flat_map(|line| {
                line["request"]["resourceSpans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|spans| spans["resource"].clone())
            .next_back();
        match last {
            Some(resource) if !attribute(&resource, "aws.ecs.task.arn").is_null() => {
                break resource;
            }
            _ => assert!(Instant::now() < deadline, "{:#?}", lines(&out)),
        }
    };
    // String arrays, as the semantic conventions define them.
    assert_eq!(
        attribute(&resource, "aws.log.group.names"),
        json!({"values": [{"stringValue": "/aws/ecs/xray-host/dev"}]}),
        "{resource:#}"
    );
    assert_eq!(
        attribute(&resource, "aws.log.group.arns"),
        json!({"values": [{"stringValue":
            "arn:aws:logs:us-west-2:111122223333:log-group:/aws/ecs/xray-host/dev"}]}),
        "{resource:#}"
    );
    assert_eq!(attribute(&resource, "cloud.platform"), "aws_ecs");
}
