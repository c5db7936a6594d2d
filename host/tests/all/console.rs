//! The local console beside the traces: the log lines each trace printed, kept by the stand-in
//! of the host's own process, and the metrics panel per service read from the host's request
//! counters; through the stand-in's endpoints and in headless Chromium.

use crate::daemon::{render, texts, wait_for};
use crate::support;

use serde_json::Value;
use std::net::UdpSocket;
use std::time::Duration;
use support::{Host, TestHost, component, free_port, get};

/// The second line of each print of the `faults` component, as the host's log escapes it.
const FORGED: &str =
    "2026-01-01T00:00:00.000000Z  INFO component loaded service=Faults\\r\\u{1b}[31mred";

/// `xray-host run` with the `faults` test component as "Faults" and the stand-in in the same
/// process, every request sampled: the host, the service's port and the stand-in's.
fn faults_with_stand_in() -> (Host, u16, u16) {
    let stand_in = loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let service = free_port();
    let manifest = format!(
        r#"
        [[service]]
        name = "Faults"
        component = "{faults}"
        listen = "127.0.0.1:{service}"

        [daemon]
        listen = "127.0.0.1:{stand_in}"
        "#,
        faults = component("test_faults").display(),
    );
    let host = TestHost::run(&manifest)
        .port(service)
        .wait_for(&[stand_in])
        .daemon_at(&format!("127.0.0.1:{stand_in}"))
        .sample_everything()
        .start();
    (host, service, stand_in)
}

/// The X-Ray trace id of the request that `response` answered.
fn trace_of(response: &support::Response) -> String {
    response
        .header("x-amzn-trace-id")
        .and_then(|h| h.strip_prefix("Root="))
        .and_then(|h| h.split(';').next())
        .expect("a trace header")
        .to_string()
}

/// What the stand-in keeps of `trace`'s lines.
fn logs_of(stand_in: u16, trace: &str) -> Value {
    let answer = get(stand_in, &format!("/console/logs?trace_id={trace}"));
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

/// Waits until the stand-in keeps `count` lines of `trace`; its lines.
fn wait_for_lines(host: &Host, stand_in: u16, trace: &str, count: usize) -> Vec<Value> {
    let mut lines = Vec::new();
    let arrived = wait_for(Duration::from_secs(10), || {
        lines = logs_of(stand_in, trace)["Lines"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        lines.len() >= count
    });
    assert!(arrived, "{trace}: {lines:#?}\n{}", host.log());
    lines
}

fn field<'a>(lines: &'a [Value], key: &str) -> Vec<&'a str> {
    lines
        .iter()
        .map(|l| l[key].as_str().unwrap_or(""))
        .collect()
}

#[test]
fn the_stand_in_keeps_exactly_the_lines_each_trace_printed() {
    let (host, service, stand_in) = faults_with_stand_in();
    // Four requests at once, each printing a different number of lines, so that a line given
    // to the wrong trace shows as a count or a text that does not match.
    let answers: Vec<support::Response> = std::thread::scope(|scope| {
        let printing: Vec<_> = (1..=4)
            .map(|lines| scope.spawn(move || get(service, &format!("/print?lines={lines}"))))
            .collect();
        printing.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let trapped = get(service, "/trap");
    assert_eq!(trapped.status, 500);
    // Every trace's lines first, then each checked again: a line given to the wrong trace
    // would have arrived by then.
    for (index, answer) in answers.iter().enumerate() {
        assert_eq!(
            answer.body,
            format!("printed {}", index + 1),
            "{}",
            host.log()
        );
        wait_for_lines(&host, stand_in, &trace_of(answer), 2 * (index + 1) + 1);
    }
    for (index, answer) in answers.iter().enumerate() {
        let printed = index + 1;
        let trace = trace_of(answer);
        let kept = logs_of(stand_in, &trace);
        let lines = kept["Lines"].as_array().unwrap();
        // Each print is two stdout lines (the newline inside ends the first), then the one
        // stderr line, escaped as the host's log writes them.
        let mut expected: Vec<String> = (0..printed)
            .flat_map(|i| [format!("forged {i}"), FORGED.to_string()])
            .collect();
        expected.push("forged stderr\\u{7}".to_string());
        assert_eq!(field(lines, "Message"), expected, "{trace}");
        let mut sources = vec!["stdout"; 2 * printed];
        sources.push("stderr");
        assert_eq!(field(lines, "Source"), sources, "{trace}");
        assert!(field(lines, "Service").iter().all(|s| *s == "Faults"));
        assert!(field(lines, "Version").iter().all(|v| v.len() == 12));
        assert_eq!(kept["DroppedLines"], 0);
    }
    // The host's own warning about a request is the request's line too (beside the panic
    // message the component printed to stderr).
    let trapped = trace_of(&trapped);
    let mut lines = Vec::new();
    let warned = wait_for(Duration::from_secs(10), || {
        lines = logs_of(stand_in, &trapped)["Lines"]
            .as_array()
            .cloned()
            .unwrap();
        lines
            .iter()
            .any(|l| l["Level"] == "WARN" && l["Message"].as_str().unwrap().contains("trapped"))
    });
    assert!(warned, "{lines:#?}\n{}", host.log());
    // The W3C form of the JSON log's trace_id names the same trace.
    let trace = trace_of(&answers[0]);
    let w3c = trace.trim_start_matches("1-").replace('-', "");
    assert_eq!(
        logs_of(stand_in, &w3c)["Lines"],
        logs_of(stand_in, &trace)["Lines"]
    );
    assert_eq!(logs_of(stand_in, &w3c)["TraceId"], trace);
    // A request that printed nothing has no lines; a bad id is refused with what to give.
    let quiet = trace_of(&get(service, "/ok"));
    assert_eq!(logs_of(stand_in, &quiet)["Lines"], serde_json::json!([]));
    let refused = get(stand_in, "/console/logs?trace_id=nope");
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("1-5759e988"), "{}", refused.body);
}

#[test]
fn the_metrics_panel_counts_the_requests_of_each_service() {
    let (host, service, stand_in) = faults_with_stand_in();
    for _ in 0..5 {
        assert_eq!(get(service, "/print?lines=0").status, 200);
    }
    assert_eq!(get(service, "/trap").status, 500);
    assert_eq!(get(service, "/no-such-path").status, 404);
    // Health checks are not the service's traffic (as in the CloudWatch metrics); this
    // component answers them 404, which counts nowhere then.
    for _ in 0..3 {
        get(service, "/health");
    }
    let mut panel = Value::Null;
    let counted = wait_for(Duration::from_secs(10), || {
        panel = get(stand_in, "/console/metrics").json();
        panel["Services"][0]["Requests"] == 7
    });
    assert!(counted, "{panel:#}\n{}", host.log());
    assert_eq!(panel["Collected"], true);
    let faults = &panel["Services"][0];
    assert_eq!(faults["Service"], "Faults");
    assert_eq!(
        (faults["Errors"].as_u64(), faults["Faults"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(faults["ErrorRate"].as_f64(), Some(2.0 / 7.0));
    assert!(
        faults["RequestsPerSecond"].as_f64().unwrap() > 0.0,
        "{faults:#}"
    );
    let histogram: u64 = faults["LatencyHistogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["Count"].as_u64().unwrap())
        .sum();
    assert_eq!(histogram, 7, "{faults:#}");
    let per_second: f64 = faults["PerSecond"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["RequestsPerSecond"].as_f64().unwrap())
        .sum();
    assert!(per_second > 0.0, "{faults:#}");
}

#[test]
fn the_console_shows_a_traces_lines_beside_its_timeline_and_the_metrics_panel() {
    let (host, service, stand_in) = faults_with_stand_in();
    let printed = get(service, "/print?lines=2");
    assert_eq!(printed.status, 200);
    let trace = trace_of(&printed);
    wait_for_lines(&host, stand_in, &trace, 5);
    // Another request's lines, which the trace's view must not show.
    get(service, "/print?lines=5");
    assert!(
        wait_for(Duration::from_secs(10), || {
            get(stand_in, "/console/metrics").json()["Services"][0]["Requests"] == 2
        }),
        "{}",
        host.log()
    );
    // Opened by the W3C form, as copied from a JSON log line.
    let w3c = trace.trim_start_matches("1-").replace('-', "");
    let dom = render(
        &format!("http://127.0.0.1:{stand_in}/#trace={w3c}"),
        "console-logs-metrics.png",
    );
    assert!(dom.contains(&trace), "the trace is open:\n{dom}");
    // The trace's five lines, in order, and no other request's.
    let messages = texts(&dom, "log-message");
    assert_eq!(
        messages,
        [
            "forged 0",
            FORGED,
            "forged 1",
            FORGED,
            "forged stderr\\u{7}"
        ],
    );
    assert_eq!(
        texts(&dom, "log-source"),
        ["stdout", "stdout", "stdout", "stdout", "stderr"]
    );
    assert_eq!(texts(&dom, "log-service"), ["Faults"; 5]);
    // Beside the timeline: both in the trace's body.
    let body = dom.find("id=\"trace-body\"").expect("the trace's body");
    let timeline = dom.find("id=\"timeline\"").unwrap();
    let logs = dom.find("id=\"trace-logs\"").unwrap();
    assert!(body < timeline && timeline < logs, "{dom}");
    assert_eq!(texts(&dom, "label"), ["Faults"], "the timeline's row");
    // The panel: the service, its rate and its two requests in the histogram.
    assert_eq!(texts(&dom, "metric-service"), ["Faults"]);
    let values = texts(&dom, "metric-value");
    let rate: f64 = values[0].parse().unwrap();
    assert!(rate > 0.0, "{values:?}");
    assert_eq!(values[1], "0%", "{values:?}");
    let counts: u64 = texts(&dom, "bucket-count")
        .iter()
        .map(|c| c.parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 2, "{dom}");
    assert!(dom.contains("class=\"rate-chart\""), "{dom}");
}
