//! OTLP into the local stand-in: the OpenTelemetry Python SDK (`peers/otlp_client.py`) exports
//! to `/v1/traces` in protobuf, gzipped protobuf and OTLP/JSON; the AWS CLI reads the trace back
//! as X-Ray documents, the console shows it in headless Chromium, and an OpenTelemetry backend
//! our BFF calls is one trace, and one service map, with our UDP segments.

use crate::daemon::{
    aws_cli, now, render, sampled_page_load, stand_in, status, texts, wait_for_services,
};
use crate::support;

use serde_json::Value;
use std::process::Command;
use support::peers::{Peer, peers_installed};
use support::schema::assert_valid;
use support::{TestHost, free_port, request, workspace};
use xray::ids::TraceId;

/// Runs the peer's `send` mode against the stand-in on `port`: the hex ids it printed.
fn send_checkout(port: u16, encoding: &str) -> Value {
    let python = peers_installed().join("venv/bin/python");
    let output = Command::new(python)
        .arg(workspace().join("host/tests/peers/otlp_client.py"))
        .args([
            "send",
            &format!("http://127.0.0.1:{port}/v1/traces"),
            encoding,
        ])
        .output()
        .expect("cannot run peers/otlp_client.py");
    assert!(
        output.status.success(),
        "the OpenTelemetry SDK could not export {encoding} to the stand-in: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the peer prints its ids as JSON")
}

/// The documents of one trace, through `aws xray batch-get-traces`.
fn fetched(port: u16, trace: &str) -> Vec<Value> {
    let answer = aws_cli(port, &["xray", "batch-get-traces", "--trace-ids", trace]);
    answer["Traces"][0]["Segments"]
        .as_array()
        .unwrap_or_else(|| panic!("{trace} is not in the stand-in: {answer:#}"))
        .iter()
        .map(|segment| {
            let document: Value =
                serde_json::from_str(segment["Document"].as_str().unwrap()).unwrap();
            assert_eq!(segment["Id"], document["id"]);
            document
        })
        .collect()
}

#[test]
fn the_opentelemetry_sdk_exports_in_every_encoding_and_the_aws_cli_reads_x_ray_documents() {
    let (_daemon, port) = stand_in();
    let mut traces = Vec::new();
    for encoding in ["protobuf", "gzip", "json"] {
        let ids = send_checkout(port, encoding);
        let hex = ids["trace_id"].as_str().unwrap();
        let trace_id = TraceId::from_w3c(hex)
            .unwrap_or_else(|| panic!("{encoding}: {hex} is not a W3C trace id"));
        assert_eq!(trace_id.to_w3c(), hex);
        let trace = trace_id.as_str().to_string();
        let documents = fetched(port, &trace);
        assert_eq!(documents.len(), 1, "{encoding}: one segment {documents:#?}");
        let segment = &documents[0];
        assert_valid(segment);
        assert_eq!(segment["trace_id"], trace.as_str());
        assert_eq!(segment["id"], ids["server"], "{encoding}");
        assert_eq!(segment["name"], "OTel Checkout");
        assert_eq!(segment["origin"], "AWS::ECS::Fargate");
        assert_eq!(
            segment["http"]["request"]["url"],
            "http://shop.local/checkout"
        );
        assert_eq!(segment["http"]["response"]["status"], 200);
        assert_eq!(segment["annotations"]["cart"], "c-42");
        let calls = segment["subsegments"].as_array().unwrap();
        let call = |id: &Value| {
            calls
                .iter()
                .find(|c| c["id"] == *id)
                .unwrap_or_else(|| panic!("{encoding}: no subsegment {id} in {segment:#}"))
        };
        let client = call(&ids["client"]);
        assert_eq!(
            (&client["namespace"], &client["name"]),
            (&Value::from("remote"), &Value::from("inventory.local"))
        );
        assert_eq!(client["http"]["response"]["status"], 503);
        assert_eq!(client["fault"], true, "an ERROR span with a 503 is a fault");
        let exception = &client["cause"]["exceptions"][0];
        assert_eq!(exception["type"], "RuntimeError");
        assert_eq!(exception["message"], "inventory unavailable");
        let dynamodb = call(&ids["dynamodb"]);
        assert_eq!(
            (&dynamodb["namespace"], &dynamodb["name"]),
            (&Value::from("aws"), &Value::from("DynamoDB"))
        );
        assert_eq!(dynamodb["aws"]["operation"], "PutItem");
        assert_eq!(dynamodb["aws"]["table_name"], "orders");
        traces.push(trace);
    }
    assert_eq!(status(port)["accepted"], 9, "three spans per export");
    assert_eq!(status(port)["rejected"], 0);

    // Indexed as X-Ray indexes annotations and services.
    let (start, end) = (
        (now() - 300.0).floor().to_string(),
        (now() + 60.0).ceil().to_string(),
    );
    let listed = aws_cli(
        port,
        &[
            "xray",
            "get-trace-summaries",
            "--start-time",
            &start,
            "--end-time",
            &end,
            "--filter-expression",
            r#"annotation.cart = "c-42" AND service("OTel Checkout") AND fault"#,
        ],
    );
    let mut found: Vec<String> = listed["TraceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Id"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    traces.sort();
    assert_eq!(found, traces);
}

#[test]
fn a_request_the_stand_in_cannot_read_is_refused_as_otlp_says() {
    let (_daemon, port) = stand_in();
    for (content_type, body, expected) in [
        ("application/x-protobuf", &b"\xff\xff"[..], 400),
        ("application/json", br#"{"resourceSpans": 1}"#, 400),
        ("text/plain", b"{}", 415),
    ] {
        let response = request(
            port,
            "POST",
            "/v1/traces",
            &[("Content-Type", content_type)],
            body,
        );
        assert_eq!(
            response.status, expected,
            "{content_type}: {}",
            response.body
        );
    }
    let response = request(
        port,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "00000000000000000000000000000000", "spanId": "0102030405060708", "name": "zero trace id", "startTimeUnixNano": "1"}]}]}]}"#,
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = response.json();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], 1, "{answer}");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace id")
    );
    assert_eq!(status(port)["rejected"], 1);
}

#[test]
fn the_console_shows_a_trace_the_opentelemetry_sdk_exported() {
    let (_daemon, port) = stand_in();
    send_checkout(port, "protobuf");
    let dom = render(
        &format!("http://127.0.0.1:{port}/#newest"),
        "console-otlp.png",
    );
    let nodes = texts(&dom, "node-name");
    for expected in ["Client", "OTel Checkout", "inventory.local", "orders"] {
        // Once in the service map and once in the trace map.
        assert_eq!(
            nodes.iter().filter(|n| *n == expected).count(),
            2,
            "{expected} in {nodes:?}"
        );
    }
    let labels = texts(&dom, "label");
    for expected in [
        "OTel Checkout",
        "Remote: GET http://inventory.local/items",
        "PutItem: orders",
    ] {
        assert!(
            labels.iter().any(|l| l == expected),
            "{expected} in {labels:?}"
        );
    }
}

#[test]
fn our_bff_and_an_opentelemetry_backend_are_one_trace_and_one_service_map() {
    let interop = peers_installed();
    let (_daemon, port) = stand_in();
    let address = format!("127.0.0.1:{port}");
    // Backend 1 is the OpenTelemetry service: it continues our X-Amzn-Trace-Id with AWS's
    // X-Ray propagator and exports its span over OTLP to the stand-in we send UDP segments to.
    let peer_port = free_port();
    let script = workspace().join("host/tests/peers/otlp_client.py");
    let _peer = Peer::start(
        &interop.join("venv/bin/python"),
        &[
            &script.display().to_string(),
            "serve",
            &peer_port.to_string(),
            &format!("http://{address}/v1/traces"),
        ],
        peer_port,
        &address,
    );
    let host = TestHost::application()
        .backend_1_url(&format!("http://127.0.0.1:{peer_port}"))
        .sample_everything()
        .daemon_at(&address)
        .start();
    let front = host.port();
    let root = sampled_page_load(front);
    wait_for_services(
        port,
        &root,
        &["BFF", "OTel Backend", "Backend #2"],
        "our UDP segments and the OTLP spans are not one trace",
    );

    // The OpenTelemetry segment hangs under the BFF's call to it.
    let documents = fetched(port, &root);
    let named = |name: &str| {
        documents
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no {name} segment in {documents:#?}"))
    };
    let otel = named("OTel Backend");
    assert_valid(otel);
    let bff = named("BFF");
    let call_ids = support::documents::subsegments(bff)
        .into_iter()
        .filter(|s| s["namespace"] == "remote")
        .map(|s| s["id"].clone())
        .collect::<Vec<_>>();
    assert!(
        call_ids.contains(&otel["parent_id"]),
        "the OpenTelemetry segment's parent {} is not one of the BFF's calls {call_ids:?}",
        otel["parent_id"]
    );

    // One service map: Client → BFF → the OpenTelemetry service.
    let (start, end) = (
        (now() - 300.0).floor().to_string(),
        (now() + 60.0).ceil().to_string(),
    );
    let graph = aws_cli(
        port,
        &[
            "xray",
            "get-service-graph",
            "--start-time",
            &start,
            "--end-time",
            &end,
        ],
    );
    let services = graph["Services"].as_array().unwrap();
    let node = |name: &str| {
        services
            .iter()
            .find(|s| s["Name"] == name)
            .unwrap_or_else(|| panic!("no {name} in the service graph {graph:#}"))
    };
    let bff_edges: Vec<&Value> = node("BFF")["Edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["ReferenceId"])
        .collect();
    let otel_node = node("OTel Backend");
    assert!(
        bff_edges.contains(&&otel_node["ReferenceId"]),
        "no edge BFF → OTel Backend: {graph:#}"
    );
    assert_eq!(otel_node["Type"], "AWS::ECS::Fargate");
}
