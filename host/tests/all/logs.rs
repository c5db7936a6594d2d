//! The host's log as an operator reads it: `--log-format json` lines that carry the trace of
//! the request they belong to, so that a trace's lines can be found from its segment.

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
