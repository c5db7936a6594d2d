//! The local X-Ray daemon stand-in: datagrams from our host, from the official SDKs and
//! malformed ones; the X-Ray API through the real AWS CLI; the console in headless Chromium.

use crate::support;

use serde_json::{Value, json};
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::browser;
use support::peers::{Peer, aws_cli_against, peers_installed};
use support::{Host, TestHost, free_port, get, raw, request};

/// A stand-in on a free port (UDP and TCP).
pub(crate) fn stand_in() -> (Host, u16) {
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let host = TestHost::command(["daemon", "--listen", &format!("127.0.0.1:{port}")])
            .port(port)
            .start();
        return (host, port);
    }
}

pub(crate) fn status(port: u16) -> Value {
    get(port, "/status").json()
}

pub(crate) fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub(crate) fn summaries(port: u16, filter: Option<&str>) -> Vec<Value> {
    let mut body = json!({"StartTime": now() - 600.0, "EndTime": now() + 10.0});
    if let Some(filter) = filter {
        body["FilterExpression"] = json!(filter);
    }
    let response = request(
        port,
        "POST",
        "/TraceSummaries",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["TraceSummaries"]
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) fn send(port: u16, bytes: &[u8]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(bytes, ("127.0.0.1", port)).unwrap();
}

/// Loads the page once through `/api/` with `Sampled=1`: the trace id our host answered with.
pub(crate) fn sampled_page_load(front: u16) -> String {
    let response = request(
        front,
        "GET",
        "/api/",
        &[("X-Amzn-Trace-Id", "Sampled=1")],
        b"",
    );
    assert_eq!(response.status, 200, "{}", response.body);
    response
        .header("x-amzn-trace-id")
        .unwrap()
        .trim_start_matches("Root=")
        .to_string()
}

/// The services of trace `root` in the stand-in on `port`, as its summary lists them.
pub(crate) fn services_of(port: u16, root: &str) -> Vec<String> {
    summaries(port, None)
        .into_iter()
        .find(|s| s["Id"] == root)
        .map(|s| {
            s["ServiceIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["Name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to 10 s for trace `root` to name every one of `expected` among its services.
pub(crate) fn wait_for_services(port: u16, root: &str, expected: &[&str], failure: &str) {
    assert!(
        wait_for(Duration::from_secs(10), || {
            let names = services_of(port, root);
            expected.iter().all(|n| names.iter().any(|m| m == n))
        }),
        "{failure}: {:?}",
        services_of(port, root)
    );
}

/// `method path` with `Host: host` and `Content-Type: application/json`, sent to `port`.
fn addressed(port: u16, method: &str, path: &str, host: &str) -> support::Response {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    raw(port, head.as_bytes())
}

#[test]
fn the_stand_in_answers_only_requests_addressed_to_a_loopback_name() {
    let (_host, port) = stand_in();
    // A page on a hostile name resolving to 127.0.0.1 (DNS rebinding) reads nothing.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/status"),
        ("POST", "/TraceSummaries"),
        ("POST", "/GetSamplingRules"),
        ("POST", "/v1/traces"),
    ] {
        let response = addressed(port, method, path, &format!("rebind.example:{port}"));
        assert_eq!(response.status, 421, "{method} {path}: {}", response.body);
        assert_eq!(response.json()["error"], "host_not_allowed");
        assert!(response.body.contains("DNS rebinding"), "{}", response.body);
    }
    // The console's own names are answered.
    for name in ["127.0.0.1", "localhost", "[::1]"] {
        let response = addressed(port, "GET", "/", &format!("{name}:{port}"));
        assert_eq!(response.status, 200, "{name}");
        assert!(response.body.contains("<html"), "{name}");
        let response = addressed(port, "POST", "/GetSamplingRules", &format!("{name}:{port}"));
        assert_eq!(response.status, 200, "{name}: {}", response.body);
    }
    let counts = status(port);
    assert_eq!(counts["documents_over_trace_cap"], 0, "{counts}");
    assert_eq!(counts["spans_over_request_cap"], 0, "{counts}");
}

#[test]
fn a_stand_in_served_beyond_loopback_warns_and_still_refuses_names() {
    let port = loop {
        let port = free_port();
        if UdpSocket::bind(("0.0.0.0", port)).is_ok() {
            break port;
        }
    };
    let host = TestHost::command(["daemon", "--listen", &format!("0.0.0.0:{port}")])
        .port(port)
        .start();
    assert!(
        host.wait_for_log("not a loopback address", Duration::from_secs(5)),
        "{}",
        host.log()
    );
    let log = host.log();
    assert!(
        log.contains("no authentication") && log.contains("anyone who can reach"),
        "{log}"
    );
    // Addressed by an address (any, as it listens on all), it answers; by a name, never.
    for authority in [format!("127.0.0.1:{port}"), format!("192.0.2.7:{port}")] {
        assert_eq!(addressed(port, "GET", "/status", &authority).status, 200);
    }
    let response = addressed(port, "GET", "/status", &format!("rebind.example:{port}"));
    assert_eq!(response.status, 421, "{}", response.body);
}

#[test]
fn malformed_datagrams_are_rejected_and_counted_and_good_ones_kept() {
    let (host, port) = stand_in();
    let trace = "1-6b05c10e-0123456789abcdef01234567";
    let good = format!(
        r#"{{"format":"json","version":1}}
{{"trace_id":"{trace}","id":"0123456789abcdef","name":"A","start_time":{now},"end_time":{now}}}"#,
        now = now()
    );
    send(port, good.as_bytes());
    let oversized = [
        b"{\"format\":\"json\",\"version\":1}\n{\"id\":\"".as_slice(),
        &vec![b'x'; 65_000],
    ]
    .concat();
    for bad in [
        b"no newline at all".as_slice(),
        b"{\"format\":\"json\",\"version\":1}\n",
        b"{\"format\":\"xml\",\"version\":1}\n{}",
        b"{\"format\":\"json\",\"version\":2}\n{}",
        b"{\"format\":\"json\",\"version\":1}\n{\"trace_id\":\"1-6b05c10e-0123",
        b"{\"format\":\"json\",\"version\":1}\n{\"name\":\"no ids\"}",
        &oversized,
    ] {
        send(port, bad);
    }
    assert!(
        wait_for(Duration::from_secs(5), || status(port)["rejected"] == 7),
        "{}",
        status(port)
    );
    let counts = status(port);
    assert_eq!(
        (counts["accepted"].as_u64(), counts["traces"].as_u64()),
        (Some(1), Some(1)),
        "{counts}"
    );
    // The log is read from the host's pipe by another thread: wait for the line to arrive.
    assert!(
        host.wait_for_log("rejected a datagram", Duration::from_secs(5)),
        "{}",
        host.log()
    );
    let kept = summaries(port, None);
    assert_eq!(kept[0]["Id"], trace);
}

#[test]
fn our_host_and_the_official_sdks_all_land_in_the_stand_in() {
    peers_installed();
    let (_daemon, port) = stand_in();
    let address = format!("127.0.0.1:{port}");
    // Our application, sampling by the stand-in's rules (Default: 1 per second, then 5 %).
    let flask_port = free_port();
    let _flask = Peer::flask(flask_port, &address);
    let flask_url = format!("http://127.0.0.1:{flask_port}");
    let host = TestHost::application()
        .backend_1_url(&flask_url)
        .daemon_at(&address)
        .start();
    let (front, one) = (host.port(), host.port_of("Backend #1"));
    // Give the host a moment to fetch the stand-in's rules, then load the page once.
    std::thread::sleep(Duration::from_millis(1500));
    let root = sampled_page_load(front);
    wait_for_services(
        port,
        &root,
        &["BFF", "Flask Backend", "Backend #2"],
        "our segments and the Python SDK's are not one trace in the stand-in",
    );

    // The Node SDK's caller, continued by our Backend #1.
    let express_port = free_port();
    let _express = Peer::express(express_port, &address);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get(express_port, &format!("/call?url=http://127.0.0.1:{one}/")).status,
        200
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            summaries(
                port,
                Some(r#"service("Express Caller") AND service("Backend #1")"#),
            )
            .len()
                == 1
        }),
        "the Node SDK's and our segments are not one trace in the stand-in"
    );
}

/// What the AWS CLI (`aws ARGS --output json`) prints when pointed at the stand-in on `port`.
pub(crate) fn aws_cli(port: u16, args: &[&str]) -> Value {
    let output = aws_cli_against(port)
        .args(args)
        .args(["--output", "json"])
        .output()
        .expect("cannot run the AWS CLI");
    assert!(
        output.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("aws {args:?} printed something that is not JSON ({e})"))
}

#[test]
fn the_aws_cli_lists_and_fetches_traces_from_the_stand_in() {
    let (_daemon, port) = stand_in();
    let address = format!("127.0.0.1:{port}");
    let host = TestHost::application().daemon_at(&address).start();
    let front = host.port();
    let root = sampled_page_load(front);
    assert!(wait_for(
        Duration::from_secs(5),
        || status(port)["accepted"].as_u64() >= Some(3)
    ));

    let aws = |args: &[&str]| aws_cli(port, args);
    let (start, end) = (
        (now() - 300.0).floor().to_string(),
        (now() + 60.0).ceil().to_string(),
    );
    let listed = aws(&[
        "xray",
        "get-trace-summaries",
        "--start-time",
        &start,
        "--end-time",
        &end,
    ]);
    let summary = listed["TraceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Id"] == root.as_str())
        .unwrap_or_else(|| panic!("{listed:#}"));
    assert_eq!(summary["Http"]["HttpStatus"], 200);
    assert!(summary["Duration"].as_f64().unwrap() > 0.0);
    let filtered = aws(&[
        "xray",
        "get-trace-summaries",
        "--start-time",
        &start,
        "--end-time",
        &end,
        "--filter-expression",
        r#"service("Backend #2") AND http.status = 200"#,
    ]);
    assert!(
        filtered["TraceSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Id"] == root.as_str())
    );

    let fetched = aws(&["xray", "batch-get-traces", "--trace-ids", &root]);
    let segments = fetched["Traces"][0]["Segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3);
    for segment in segments {
        let document: Value = serde_json::from_str(segment["Document"].as_str().unwrap()).unwrap();
        support::schema::assert_valid(&document);
        assert_eq!(document["trace_id"], root.as_str());
        assert_eq!(segment["Id"], document["id"]);
    }

    let graph = aws(&[
        "xray",
        "get-service-graph",
        "--start-time",
        &start,
        "--end-time",
        &end,
    ]);
    let names: Vec<&str> = graph["Services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap())
        .collect();
    for expected in [
        "Client",
        "BFF",
        "Backend #1",
        "Backend #2",
        "embedded table",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
}

/// The DOM of `url` after its scripts ran, and a screenshot kept under target/test-artifacts.
pub(crate) fn render(url: &str, screenshot: &str) -> String {
    browser::screenshot(url, screenshot);
    browser::rendered_dom(url)
}

/// Every text of elements with class `class`.
pub(crate) fn texts(dom: &str, class: &str) -> Vec<String> {
    let marker = format!("class=\"{class}\"");
    dom.match_indices(&marker)
        .filter_map(|(at, _)| {
            let open = at + dom[at..].find('>')? + 1;
            let close = open + dom[open..].find('<')?;
            Some(dom[open..close].to_string())
        })
        .collect()
}

#[test]
fn the_console_shows_the_newest_trace_with_its_map_and_timeline() {
    let (_daemon, port) = stand_in();
    let address = format!("127.0.0.1:{port}");
    let host = TestHost::application().daemon_at(&address).start();
    let front = host.port();
    // The page of the application first, as a user would, then the console.
    let page = browser::rendered_dom(&format!("http://127.0.0.1:{front}/"));
    assert!(page.contains("Current Date (from Backend #1) 2"));
    assert!(
        wait_for(Duration::from_secs(5), || status(port)["accepted"].as_u64()
            >= Some(3)),
        "{}",
        status(port)
    );

    let dom = render(&format!("http://127.0.0.1:{port}/#newest"), "console.png");
    let nodes = texts(&dom, "node-name");
    for expected in [
        "Client",
        "BFF",
        "Backend #1",
        "Backend #2",
        "embedded table",
    ] {
        // Once in the service map and once in the trace map.
        assert_eq!(
            nodes.iter().filter(|n| *n == expected).count(),
            2,
            "{expected} in {nodes:?}"
        );
    }
    let labels = texts(&dom, "label");
    assert_eq!(
        labels
            .iter()
            .filter(|l| l.starts_with("Remote: GET http://127.0.0.1:"))
            .count(),
        2,
        "{labels:?}"
    );
    for expected in [
        "BFF",
        "Backend #1",
        "Backend #2",
        "current-date",
        "current-time",
    ] {
        assert!(
            labels.iter().any(|l| l == expected),
            "{expected} in {labels:?}"
        );
    }
    assert_eq!(
        dom.matches("class=\"bar ").count(),
        labels.len(),
        "one bar per timeline row"
    );
    assert!(dom.contains("/api/"), "the trace list shows the page load");
}

#[test]
fn html_and_script_in_segments_are_shown_as_text() {
    let (_daemon, port) = stand_in();
    let trace = "1-6b05c10e-0123456789abcdef0123abcd";
    let evil =
        "<img src=x onerror=\\\"document.title='pwned'\\\"><script>document.title='pwned'</script>";
    let datagram = format!(
        r#"{{"format":"json","version":1}}
{{"trace_id":"{trace}","id":"0123456789abcdef","name":"{evil}","start_time":{now},"end_time":{now},
 "http":{{"request":{{"method":"GET","url":"http://h/{evil}"}},"response":{{"status":200}}}},
 "annotations":{{"note":"{evil}"}},
 "subsegments":[{{"id":"1123456789abcdef","name":"{evil}","start_time":{now},"end_time":{now},"namespace":"remote",
   "http":{{"request":{{"method":"GET","url":"{evil}"}}}}}}]}}"#,
        now = now()
    );
    send(port, datagram.as_bytes());
    assert!(
        wait_for(Duration::from_secs(5), || status(port)["accepted"] == 1),
        "{}",
        status(port)
    );
    let dom = render(
        &format!("http://127.0.0.1:{port}/#newest"),
        "console-xss.png",
    );
    assert!(
        dom.contains("&lt;img src=x"),
        "the name is shown as text:\n{dom}"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "an img element was created from segment data"
    );
    assert!(
        !dom.contains("<title>pwned"),
        "a script from segment data ran"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the console's own script"
    );
}
