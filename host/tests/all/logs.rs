//! The host's log and metrics as an operator reads them: `--log-format json` lines that carry
//! the trace of the request they belong to, so that a trace's lines can be found from its
//! segment; `--metrics emf` lines that CloudWatch turns into the services' request metrics.

use crate::support;

use serde_json::Value;
use std::time::Duration;
use support::{TestHost, component, get};

/// The JSON objects of the host's log (its stdout); panics on a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

#[test]
fn json_lines_of_a_traced_request_carry_the_trace_id_of_its_segment() {
    let host = TestHost::serve(&component("test_faults"), "Faults")
        .traced()
        .args(["--log-format", "json"])
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    // One line the component prints, one warning the host logs about a trap.
    let printed = get(port, "/print?lines=1");
    assert_eq!(printed.status, 200, "{}", host.log());
    let trapped = get(port, "/trap");
    assert_eq!(trapped.status, 500, "{}", host.log());
    let root = |response: &support::Response| {
        response
            .header("x-amzn-trace-id")
            .and_then(|h| h.strip_prefix("Root="))
            .and_then(|h| h.split(';').next())
            .expect("a trace header")
            .to_string()
    };
    let (printed_root, trapped_root) = (root(&printed), root(&trapped));
    let documents = daemon.trace(&printed_root, 1, Duration::from_secs(5));
    let segment = &documents[0];
    assert_eq!(segment["trace_id"], printed_root);
    assert!(host.wait_for_log("the component trapped", Duration::from_secs(5)));

    let lines = json_lines(&host.log());
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "no {key}: {line}");
        }
    }
    let w3c = |root: &str| root.trim_start_matches("1-").replace('-', "");
    // The component's line: its service and version, the request's trace in both forms.
    let component_line = lines
        .iter()
        .find(|line| line["target"] == "component" && line["stream"] == "stdout")
        .unwrap_or_else(|| panic!("no component line: {lines:#?}"));
    assert_eq!(component_line["service"], "Faults");
    assert_eq!(component_line["version"].as_str().map(str::len), Some(12));
    assert_eq!(component_line["AWS-XRAY-TRACE-ID"], printed_root);
    assert_eq!(component_line["trace_id"], w3c(&printed_root));
    assert!(
        component_line["message"]
            .as_str()
            .unwrap()
            .contains("forged"),
        "{component_line}"
    );
    // The host's own warning about the trap names the trapped request.
    let warning = lines
        .iter()
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the component trapped"))
        })
        .unwrap_or_else(|| panic!("no trap warning: {lines:#?}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["service"], "Faults");
    assert_eq!(warning["AWS-XRAY-TRACE-ID"], trapped_root);
    assert_eq!(warning["trace_id"], w3c(&trapped_root));
}

#[test]
fn emf_lines_are_cloudwatch_metrics_that_count_the_requests_sent() {
    let host = TestHost::serve(&component("backend2"), "Backend #2")
        .args(["--metrics", "emf", "--metrics-interval", "1s"])
        .env("RECORD_LAST_ACCESS", "off")
        .start();
    let port = host.port();
    support::send_metrics_mix(port);

    // Every request counted, across however many intervals they fell into.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (documents, totals) = loop {
        let log = host.log();
        let documents: Vec<String> = log
            .lines()
            .filter(|line| {
                serde_json::from_str::<Value>(line).is_ok_and(|doc| doc.get("_aws").is_some())
            })
            .map(str::to_string)
            .collect();
        let mut totals = std::collections::BTreeMap::new();
        for document in &documents {
            let doc: Value = serde_json::from_str(document).unwrap();
            if doc["MetricGroup"] != "Requests" {
                continue;
            }
            let route = doc["RouteClass"].as_str().unwrap().to_string();
            let entry = totals.entry(route).or_insert([0u64; 3]);
            entry[0] += doc["Requests"].as_u64().unwrap();
            entry[1] += doc["Errors"].as_u64().unwrap();
            entry[2] += doc["Faults"].as_u64().unwrap();
        }
        let instances_made = documents.iter().any(|document| {
            let doc: Value = serde_json::from_str(document).unwrap();
            doc["MetricGroup"] == "InstancePool" && doc["InstancesCreated"].as_u64() > Some(0)
        });
        if (totals.values().map(|t| t[0]).sum::<u64>() == 10 && instances_made)
            || std::time::Instant::now() > deadline
        {
            break (documents, totals);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(totals["main"], [7, 1, 0], "{documents:#?}");
    assert_eq!(totals["health"], [3, 0, 0], "{documents:#?}");

    // Each line is an EMF document as CloudWatch's specification has it ...
    let schema = support::workspace().join("host/tests/fixtures/cloudwatch-emf.schema.json");
    support::peers::validate_json(&schema, &documents).unwrap_or_else(|e| panic!("{e}"));
    for document in &documents {
        let doc: Value = serde_json::from_str(document).unwrap();
        // ... whose every dimension and metric is a member of the root, as it requires.
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "XrayHost");
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(doc[key.as_str().unwrap()].is_string(), "{key} in {doc}");
            }
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            let value = &doc[metric["Name"].as_str().unwrap()];
            let numbers = match value {
                Value::Array(values) => values.len() <= 100 && values.iter().all(Value::is_number),
                value => value.is_number(),
            };
            assert!(numbers, "{metric} in {doc}");
        }
        if doc["MetricGroup"] != "Requests" {
            continue;
        }
        assert_eq!(doc["Service"], "Backend #2");
        assert_eq!(doc["Version"].as_str().map(str::len), Some(12));
        let requests = doc["Requests"].as_u64().unwrap() as usize;
        assert_eq!(doc["Duration"].as_array().unwrap().len(), requests.min(100));
    }

    // The instance pool's lines: every instance made was counted, and its instantiation
    // time with it; with instances of WASI 0.2 serving one request each, one per request.
    let pool: Vec<Value> = documents
        .iter()
        .map(|document| serde_json::from_str::<Value>(document).unwrap())
        .filter(|doc| doc["MetricGroup"] == "InstancePool")
        .collect();
    let created: u64 = pool
        .iter()
        .filter_map(|doc| doc["InstancesCreated"].as_u64())
        .sum();
    assert!(created >= 1, "{pool:#?}");
    let timed: usize = pool
        .iter()
        .filter_map(|doc| doc["InstantiationTime"].as_array().map(Vec::len))
        .sum();
    assert_eq!(timed as u64, created.min(100), "{pool:#?}");
    for doc in &pool {
        assert_eq!(doc["Service"], "Backend #2", "{doc}");
        assert_eq!(doc["Version"].as_str().map(str::len), Some(12), "{doc}");
    }
}
