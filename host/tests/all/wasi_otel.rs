//! `wasi:otel`: a component instrumented with the OpenTelemetry SDK through wasi:otel
//! (`test_otel`, spin-sdk 7, WASI 0.3) reports its spans into the request's trace, as
//! subsegments of the request's segment, also when one instance serves several requests at once;
//! its log records are the service's attributed lines and its metrics are EMF lines with the
//! service's dimensions, bounded.

use crate::support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::documents::{segment, subsegment_named, subsegments};
use support::schema::assert_valid;
use support::{Host, Response, TestHost, component, get, request};

/// The test component served as `Otel`, sampling everything into its own stand-in.
fn otel_host() -> Host {
    TestHost::serve(&component("test_otel"), "Otel")
        .sample_everything()
        .traced()
        .start()
}

/// A new trace, X-Ray-valid: (X-Ray id, the same as 32 hex digits).
fn new_trace(i: usize) -> (String, String) {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let random = format!("{:024x}", 0x07e1_0000 + i);
    (
        format!("1-{seconds:08x}-{random}"),
        format!("{seconds:08x}{random}"),
    )
}

/// `GET path` as part of trace `root`, sampled, by the X-Ray header.
fn traced_get(port: u16, path: &str, root: &str) -> Response {
    let header = format!("Root={root};Sampled=1");
    request(port, "GET", path, &[("X-Amzn-Trace-Id", &header)], b"")
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[test]
fn nested_spans_are_subsegments_of_the_request_and_the_outer_context_is_its_segment() {
    let host = otel_host();
    let (port, daemon) = (host.port(), host.daemon());
    let (root, hex) = new_trace(1);
    let traceparent = format!("00-{hex}-00f067aa0ba902b7-01");
    let answer = request(
        port,
        "GET",
        "/spans?id=a",
        &[
            ("traceparent", &traceparent),
            ("tracestate", "ot=p:8,vendor=x"),
        ],
        b"",
    );
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
    let body = answer.json();

    let documents = daemon.trace(&root, 1, Duration::from_secs(5));
    documents.iter().for_each(assert_valid);
    let ours = segment(&documents, "Otel").unwrap_or_else(|| panic!("{documents:#?}"));

    // `outer-span-context` named the request's trace and segment.
    assert_eq!(
        body["outer"],
        json!({
            "trace_id": hex,
            "span_id": ours["id"],
            "sampled": true,
            "is_remote": false,
            "trace_state": [["ot", "p:8"], ["vendor", "x"]],
        }),
        "{body:#}"
    );

    // The parent span is a subsegment directly under the segment, with the SDK's span id.
    let top: Vec<&Value> = ours["subsegments"].as_array().unwrap().iter().collect();
    let parent = *top
        .iter()
        .find(|s| s["name"] == "handle-a")
        .unwrap_or_else(|| panic!("handle-a is not under the segment: {ours:#}"));
    assert_eq!(parent["id"], body["parent"], "{parent:#}");
    assert_eq!(parent["annotations"]["app_request_id"], "a", "{parent:#}");
    assert_eq!(parent["metadata"]["default"]["app.detail"], "parent span");
    assert!(
        parent["metadata"]["default"]
            .get("app.request_id")
            .is_none()
    );
    assert!(parent.get("fault").is_none_or(|f| f == false), "{parent:#}");
    assert!(parent.get("namespace").is_none(), "{parent:#}");

    // The child span is nested in it: a failed CLIENT span.
    let child = subsegment_named(parent, "load-a")
        .unwrap_or_else(|| panic!("load-a is not under handle-a: {ours:#}"));
    assert_eq!(child["id"], body["child"], "{child:#}");
    assert_eq!(child["namespace"], "remote", "{child:#}");
    assert_eq!(child["fault"], true, "{child:#}");
    assert_eq!(child["metadata"]["default"]["app.items"], 3, "{child:#}");
    let exceptions = child["cause"]["exceptions"].as_array().unwrap();
    assert!(
        exceptions
            .iter()
            .any(|e| e["type"] == "LoadError" && e["message"] == "could not load a"),
        "{child:#}"
    );
    // The exception events are the cause; the status's description stands in only for none
    // (the collector's rule, the same as for a span the stand-in takes over OTLP).
    assert_eq!(exceptions.len(), 1, "{child:#}");
    // Only those two spans, each once.
    let names: Vec<&str> = subsegments(ours)
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["handle-a", "load-a"], "{ours:#}");

    // The SDK's times: the child inside the parent, the parent inside the request.
    let (segment_start, segment_end) = (number(&ours["start_time"]), number(&ours["end_time"]));
    let (parent_start, parent_end) = (number(&parent["start_time"]), number(&parent["end_time"]));
    let (child_start, child_end) = (number(&child["start_time"]), number(&child["end_time"]));
    assert!(
        segment_start <= parent_start && parent_end <= segment_end,
        "{ours:#}"
    );
    assert!(
        parent_start <= child_start && child_end <= parent_end,
        "{ours:#}"
    );
    assert!(child_start <= child_end, "{child:#}");
}

#[test]
fn concurrent_requests_in_one_instance_report_spans_only_into_their_own_traces() {
    let host = otel_host();
    let (port, daemon) = (host.port(), host.daemon());
    // Staggered so that the instance has yielded (and accepts) before the next arrives, and
    // long enough that all are in flight at once.
    let requests: Vec<_> = (0..8)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(60));
            let (root, hex) = new_trace(100 + i);
            let path = format!("/spans?id=r{i}&ms=1500");
            let thread = {
                let root = root.clone();
                std::thread::spawn(move || traced_get(port, &path, &root))
            };
            (i, root, hex, thread)
        })
        .collect();
    let mut served = BTreeSet::new();
    for (i, root, hex, thread) in requests {
        let answer = thread.join().unwrap();
        assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
        let body = answer.json();
        served.insert(body["served"].as_u64().unwrap());
        assert_eq!(body["outer"]["trace_id"], hex, "r{i}: {body:#}");

        let documents = daemon.trace(&root, 1, Duration::from_secs(5));
        documents.iter().for_each(assert_valid);
        let ours = segment(&documents, "Otel").unwrap_or_else(|| panic!("{documents:#?}"));
        assert_eq!(body["outer"]["span_id"], ours["id"], "r{i}");
        let names: Vec<&str> = subsegments(ours)
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        let (parent, child) = (format!("handle-r{i}"), format!("load-r{i}"));
        assert_eq!(names, [parent.as_str(), child.as_str()], "{ours:#}");
        let parent = subsegment_named(ours, &parent).unwrap();
        assert_eq!(parent["id"], body["parent"]);
        assert_eq!(parent["annotations"]["app_request_id"], format!("r{i}"));
        assert_eq!(subsegments(parent)[0]["id"], body["child"]);
    }
    // One instance served them all.
    assert_eq!(served, (1..=8).collect(), "{}", host.log());
    let log = host.log();
    assert!(!log.contains("wasi:otel"), "no span was refused: {log}");
}

#[test]
fn a_span_of_another_trace_is_refused_without_failing_the_request_and_logs_and_metrics_answer() {
    let host = otel_host();
    let (port, daemon) = (host.port(), host.daemon());
    let (root, _) = new_trace(200);
    let answer = traced_get(port, "/foreign", &root);
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
    let foreign = answer.json()["trace_id"].as_str().unwrap().to_string();
    assert_ne!(foreign.len(), 0);
    let documents = daemon.trace(&root, 1, Duration::from_secs(5));
    let ours = segment(&documents, "Otel").unwrap_or_else(|| panic!("{documents:#?}"));
    assert!(subsegments(ours).is_empty(), "{ours:#}");
    assert!(ours.get("fault").is_none_or(|f| f == false), "{ours:#}");
    // Logged once for the request: the start; the end's refusal is not logged again.
    assert!(
        host.wait_for_log("not the request's", Duration::from_secs(5)),
        "{}",
        host.log()
    );
    let log = host.log();
    assert_eq!(log.matches("wasi:otel").count(), 1, "{log}");
    assert!(log.contains(&foreign), "{log}");

    let (root, _) = new_trace(201);
    let answer = traced_get(port, "/signals", &root);
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
    assert_eq!(
        answer.json()["metrics_export"],
        Value::Null,
        "the metrics are taken"
    );
    assert!(
        host.wait_for_log("a log record from the component", Duration::from_secs(5)),
        "{}",
        host.log()
    );
    let line = host
        .log()
        .lines()
        .find(|l| l.contains("a log record from the component"))
        .unwrap()
        .to_string();
    assert!(line.contains(&root) && line.contains("WARN"), "{line}");
    // A plain request still works afterwards.
    assert_eq!(get(port, "/spans?id=z").status, 200);
}

#[test]
fn a_components_metrics_are_emf_lines_with_its_dimensions_and_its_log_records_attributed_lines() {
    let host = TestHost::serve(&component("test_otel"), "Otel")
        .sample_everything()
        .traced()
        .args(["--metrics", "emf", "--metrics-interval", "1s"])
        .args(["--log-format", "json"])
        .start();
    let port = host.port();
    let (root, w3c) = new_trace(300);
    for _ in 0..3 {
        let answer = traced_get(port, "/signals", &root);
        assert_eq!(answer.status, 200, "{}\n{}", answer.body, host.log());
        assert_eq!(
            answer.json()["metrics_export"],
            Value::Null,
            "{}",
            answer.body
        );
    }
    // More series than a component version may have: refused with the reason, and counted.
    let flood = get(port, "/metrics-flood");
    let refused = flood.json()["metrics_export"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", flood.body))
        .to_string();
    assert!(
        refused.contains("not kept") && refused.contains("series"),
        "{refused}"
    );

    let lines = |log: &str| -> Vec<Value> {
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (documents, orders) = loop {
        let documents: Vec<Value> = lines(&host.log())
            .into_iter()
            .filter(|doc| doc["MetricGroup"] == "Component")
            .collect();
        let orders: f64 = documents
            .iter()
            .filter_map(|doc| doc["app.orders"].as_f64())
            .sum();
        if orders >= 6.0 || std::time::Instant::now() > deadline {
            break (documents, orders);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Three exports of 2 orders, delta: 6 in all, under the service's dimensions and the
    // component's own attribute.
    assert_eq!(orders, 6.0, "{documents:#?}");
    let order_line = documents
        .iter()
        .find(|doc| doc.get("app.orders").is_some())
        .unwrap();
    assert_eq!(order_line["Service"], "Otel");
    assert_eq!(order_line["Version"].as_str().map(str::len), Some(12));
    assert_eq!(order_line["app.kind"], "test");
    let dimensions = &order_line["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
    assert!(
        dimensions
            .as_array()
            .unwrap()
            .contains(&json!(["Service", "Version", "app.kind"])),
        "{order_line:#}"
    );
    // The histogram: two values per export, in milliseconds.
    let latency: Vec<f64> = documents
        .iter()
        .filter_map(|doc| doc["app.latency"].as_array())
        .flatten()
        .map(number)
        .collect();
    assert_eq!(latency.len(), 6, "{documents:#?}");
    assert!(
        latency.contains(&10.0) && latency.contains(&55.0),
        "{latency:?}"
    );
    let refusals = |documents: &[Value]| -> u64 {
        documents
            .iter()
            .filter_map(|doc| doc["ComponentMetricsRefused"].as_u64())
            .sum()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut all = documents;
    while refusals(&all) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        all = lines(&host.log())
            .into_iter()
            .filter(|doc| doc["MetricGroup"] == "Component")
            .collect();
    }
    // 70 series asked for, 64 kept at most, the orders' and the latency's among them.
    assert_eq!(refusals(&all), 70 - (64 - 2), "{all:#?}");
    let schema = support::workspace().join("host/tests/fixtures/cloudwatch-emf.schema.json");
    let texts: Vec<String> = all.iter().map(Value::to_string).collect();
    support::peers::validate_json(&schema, &texts).unwrap_or_else(|e| panic!("{e}"));

    // The log record: the service's line, with the version and the request's trace.
    let record = lines(&host.log())
        .into_iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.contains("a log record from the component"))
        })
        .unwrap_or_else(|| panic!("{}", host.log()));
    assert_eq!(record["service"], "Otel", "{record}");
    assert_eq!(
        record["version"].as_str().map(str::len),
        Some(12),
        "{record}"
    );
    assert_eq!(record["AWS-XRAY-TRACE-ID"], root, "{record}");
    assert_eq!(record["trace_id"], w3c, "{record}");
}
