//! X-Ray tracing end to end: the real host and components, a UDP socket standing in for the
//! daemon, and every captured document checked against the segment document rules.

use crate::support;

use serde_json::Value;
use std::time::Duration;
use support::daemon::template_rules;
use support::documents::subsegments;
use support::schema::assert_valid;
use support::{TestHost, component, get, request, shared_application};

fn segments<'a>(documents: &'a [Value], name: &str) -> Vec<&'a Value> {
    documents
        .iter()
        .filter(|d| d["name"] == name && d.get("type").is_none())
        .collect()
}

#[test]
fn one_page_load_is_one_trace_across_the_bff_and_both_backends() {
    let app = shared_application();
    let (front, one, two) = (app.front, app.one, app.two);
    let response = get(front, "/api/");
    assert_eq!(response.status, 200, "{}", response.body);
    let echoed = response
        .header("x-amzn-trace-id")
        .expect("the trace id is echoed")
        .to_string();
    let root = echoed.strip_prefix("Root=").expect("Root=…");

    // Other tests share the application: only this request's trace counts.
    let documents = app.daemon().trace(root, 3, Duration::from_secs(5));
    documents.iter().for_each(assert_valid);
    let bff = segments(&documents, "BFF");
    let backend_1 = segments(&documents, "Backend #1");
    let backend_2 = segments(&documents, "Backend #2");
    assert_eq!(
        (bff.len(), backend_1.len(), backend_2.len()),
        (1, 1, 1),
        "{documents:#?}"
    );
    let (bff, backend_1, backend_2) = (bff[0], backend_1[0], backend_2[0]);

    let trace_id = bff["trace_id"].as_str().unwrap();
    assert_eq!(echoed, format!("Root={trace_id}"));
    assert_eq!(backend_1["trace_id"], trace_id);
    assert_eq!(backend_2["trace_id"], trace_id);
    assert!(bff.get("parent_id").is_none(), "the BFF starts the trace");

    // The BFF's segment: the request, the response, and a manual subsegment around each call
    // holding the host's remote subsegment for it.
    assert_eq!(bff["http"]["request"]["method"], "GET");
    assert_eq!(
        bff["http"]["request"]["url"],
        format!("http://127.0.0.1:{front}/api/")
    );
    assert_eq!(bff["http"]["response"]["status"], 200);
    assert_eq!(bff["aws"]["xray"]["sdk"], "xray-host");
    let all = subsegments(bff);
    for (backend, port, segment) in [
        ("Backend #1", one, backend_1),
        ("Backend #2", two, backend_2),
    ] {
        let manual = all
            .iter()
            .find(|s| s["name"] == format!("call {backend}"))
            .unwrap_or_else(|| panic!("no manual subsegment for {backend}: {bff:#}"));
        assert_eq!(manual["annotations"]["backend"], backend);
        let remote = &manual["subsegments"][0];
        assert_eq!(remote["name"], "127.0.0.1");
        assert_eq!(remote["namespace"], "remote");
        assert_eq!(remote["traced"], true);
        assert_eq!(
            remote["http"]["request"]["url"],
            format!("http://127.0.0.1:{port}/")
        );
        assert_eq!(remote["http"]["response"]["status"], 200);
        assert_eq!(
            segment["parent_id"], remote["id"],
            "{backend} continues the BFF's call"
        );
        // One process: the call went in process, so no socket gave the backend a client.
        assert!(
            segment["http"]["request"].get("client_ip").is_none(),
            "{backend} was called over TCP: {segment:#}"
        );
    }
    assert!(
        app.host.log().contains(&format!(
            "calls to http://127.0.0.1:{one} from the other services of this process go in process"
        )),
        "{}",
        app.host.log()
    );
    // Backend #1's manual subsegment and annotation.
    let work = &backend_1["subsegments"][0];
    assert_eq!(work["name"], "current-date");
    assert!(
        work["annotations"]["current_date"]
            .as_str()
            .unwrap()
            .contains('/')
    );
}

#[test]
fn an_incoming_header_is_continued_and_its_decision_obeyed() {
    let host = TestHost::serve(&component("backend1"), "Backend #1")
        .traced()
        .start();
    let (port, daemon) = (host.port(), host.daemon());

    let root = "1-5759e988-bd862e3fe1be46a994272793";
    let sampled = request(
        port,
        "GET",
        "/",
        &[(
            "X-Amzn-Trace-Id",
            &format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1"),
        )],
        b"",
    );
    assert_eq!(
        sampled.header("x-amzn-trace-id"),
        Some(format!("Root={root}").as_str())
    );
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| !docs.is_empty());
    assert_eq!(documents.len(), 1);
    assert_valid(&documents[0]);
    assert_eq!(documents[0]["trace_id"], root);
    assert_eq!(documents[0]["parent_id"], "53995c3f42cd8ad8");

    let other = "1-5759e988-bd862e3fe1be46a994272794";
    let unsampled = request(
        port,
        "GET",
        "/",
        &[("X-Amzn-Trace-Id", &format!("Root={other};Sampled=0"))],
        b"",
    );
    assert_eq!(unsampled.status, 200);
    let requested = request(
        port,
        "GET",
        "/",
        &[(
            "X-Amzn-Trace-Id",
            "Root=1-5759e988-bd862e3fe1be46a994272795;Sampled=?",
        )],
        b"",
    );
    let echo = requested.header("x-amzn-trace-id").unwrap().to_string();
    assert!(
        echo.starts_with("Root=1-5759e988-bd862e3fe1be46a994272795;Sampled="),
        "{echo}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let documents = daemon.documents();
    assert!(
        documents.iter().all(|d| d["trace_id"] != other),
        "Sampled=0 is obeyed"
    );
    let decided_sampled = echo.ends_with("Sampled=1");
    let traced = documents
        .iter()
        .any(|d| d["trace_id"] == "1-5759e988-bd862e3fe1be46a994272795");
    assert_eq!(
        decided_sampled, traced,
        "the echoed decision is the one applied"
    );
}

#[test]
fn the_template_rules_served_by_the_daemon_keep_health_checks_out_of_the_traces() {
    let host = TestHost::serve(&component("backend2"), "Backend #2")
        .traced_with_sampling(template_rules())
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    // The host asks for the rules as it starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !daemon
        .sampling_calls()
        .iter()
        .any(|(path, _)| path == "/GetSamplingRules")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no GetSamplingRules call: {}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        assert_eq!(get(port, "/health").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(port, "/").status, 200);
    }
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    let documents = if documents.len() >= 3 {
        daemon.documents()
    } else {
        documents
    };
    documents.iter().for_each(assert_valid);
    assert_eq!(
        documents.len(),
        3,
        "only the three GET / are traced: {documents:#?}"
    );
    for document in &documents {
        assert_eq!(
            document["http"]["request"]["url"],
            format!("http://127.0.0.1:{port}/")
        );
        assert_eq!(document["aws"]["xray"]["sampling_rule_name"], "Default");
    }
}

#[test]
fn a_trapping_component_leaves_a_fault_segment_with_a_cause() {
    let host = TestHost::serve(&component("test_faults"), "Faults")
        .traced()
        .sample_everything()
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    assert_eq!(get(port, "/trap").status, 500);
    assert_eq!(
        get(port, "/fetch?url=http://127.0.0.1:9/").body,
        "error ErrorCode::HttpRequestDenied"
    );
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= 2);
    documents.iter().for_each(assert_valid);
    let trap = documents
        .iter()
        .find(|d| {
            d["http"]["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with("/trap")
        })
        .unwrap();
    assert_eq!(trap["fault"], true);
    assert_eq!(trap["http"]["response"]["status"], 500);
    let exception = &trap["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "component_trapped");
    assert!(
        exception["message"].as_str().unwrap().contains("trapped"),
        "{exception}"
    );
    // A refused call is a remote subsegment with a fault and a cause.
    let fetch = documents
        .iter()
        .find(|d| {
            d["http"]["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with("/fetch")
        })
        .unwrap();
    let call = &fetch["subsegments"][0];
    assert_eq!(call["namespace"], "remote");
    assert_eq!(call["fault"], true);
    assert_eq!(call["cause"]["exceptions"][0]["remote"], true);
}

#[test]
fn xray_off_sends_nothing_and_adds_no_header() {
    let host = TestHost::application()
        .args(["--xray", "off"])
        .sample_everything()
        .traced()
        .start();
    let (front, daemon) = (host.port(), host.daemon());
    let response = get(front, "/api/");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-amzn-trace-id"), None);
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.documents().is_empty());
}

#[test]
fn an_unsampled_request_propagates_sampled_0_with_its_root_so_nothing_downstream_is_traced() {
    let host = TestHost::application().sample_everything().traced().start();
    let (front, daemon) = (host.port(), host.daemon());
    let root = "1-6b05c10e-0123456789abcdef01234567";
    let response = request(
        front,
        "GET",
        "/api/",
        &[(
            "X-Amzn-Trace-Id",
            &format!("Root={root};Sampled=0;Lineage=q:1"),
        )],
        b"",
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("x-amzn-trace-id"),
        Some(format!("Root={root}").as_str())
    );
    // The backends would sample everything on their own; they obey the propagated Sampled=0.
    let traced = get(front, "/api/");
    assert_eq!(traced.status, 200);
    daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    let documents = daemon.documents();
    assert_eq!(
        documents.len(),
        3,
        "only the second page load is traced: {documents:#?}"
    );
    assert!(documents.iter().all(|d| d["trace_id"] != root));
}

#[test]
fn a_call_to_the_credentials_endpoint_is_refused_whatever_the_url_form() {
    let host = TestHost::serve(&component("test_faults"), "Faults")
        .traced()
        .sample_everything()
        // Everything is on the allow-list: the address check still refuses.
        .args(["--allow-outbound", "http://*:*"])
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    let forms = [
        "http://169.254.170.2/v2/credentials",
        "http://2852039170/",
        "http://0xa9.0xfe.0xaa.0x02/",
        "http://[::ffff:169.254.170.2]/",
        "http://allowed.example@169.254.170.2/",
    ];
    for url in forms {
        assert_eq!(
            get(port, &format!("/fetch?url={url}")).body,
            "error ErrorCode::DestinationIpProhibited",
            "{url}"
        );
    }
    let line = host
        .wait_for_log_line(
            |l| l.contains("outgoing call refused") && l.contains("2852039170"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("{}", host.log()));
    assert!(
        line.contains("Faults") && line.contains("169.254.170.2"),
        "{line}"
    );
    // Each refused call is a remote subsegment with a fault.
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= forms.len());
    documents.iter().for_each(assert_valid);
    for document in &documents {
        let call = &document["subsegments"][0];
        assert_eq!(call["namespace"], "remote", "{document}");
        assert_eq!(call["fault"], true, "{document}");
    }
    // The host serves on.
    assert_eq!(get(port, "/ok").status, 200);
}

#[test]
fn the_client_is_the_x_forwarded_for_entry_the_trusted_proxy_appended() {
    let host = TestHost::serve(&component("backend1"), "Backend #1")
        .traced()
        .sample_everything()
        .args(["--trusted-proxies", "1"])
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    // The client wrote 1.2.3.4; the ALB appended the address it saw.
    let forwarded = [("X-Forwarded-For", "1.2.3.4, 203.0.113.9")];
    assert_eq!(request(port, "GET", "/", &forwarded, b"").status, 200);
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| !docs.is_empty());
    assert_valid(&documents[0]);
    let client = &documents[0]["http"]["request"];
    assert_eq!(
        (&client["client_ip"], &client["x_forwarded_for"]),
        (&Value::from("203.0.113.9"), &Value::from(true)),
        "{client}"
    );

    // An entry that is not an address: the peer, not from the header.
    let garbage = [("X-Forwarded-For", "203.0.113.9, unknown")];
    assert_eq!(request(port, "GET", "/", &garbage, b"").status, 200);
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= 2);
    let client = &documents[1]["http"]["request"];
    assert_eq!(client["client_ip"], "127.0.0.1", "{client}");
    assert!(
        client.get("x_forwarded_for").is_none_or(|f| f == false),
        "{client}"
    );
}

/// Local sampling rules that sample no request (the file lives as long as the returned value).
fn sample_nothing() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"{"version": 2, "default": {"fixed_target": 0, "rate": 0}}"#,
    )
    .unwrap();
    file
}

#[test]
fn at_the_edge_a_sampled_incoming_header_starts_a_new_trace_that_the_rules_decide() {
    let rules = sample_nothing();
    let host = TestHost::serve(&component("backend1"), "Backend #1")
        .traced()
        .args(["--incoming-trace-header", "restart", "--sampling-rules"])
        .arg(rules.path().display().to_string())
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    let root = "1-5759e988-bd862e3fe1be46a994272793";
    let forced = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1");
    let response = request(port, "GET", "/", &[("X-Amzn-Trace-Id", &forced)], b"");
    assert_eq!(response.status, 200);
    let answer = response.header("x-amzn-trace-id").unwrap_or_default();
    assert!(answer.starts_with("Root=1-"), "{answer}");
    assert!(
        !answer.contains(root),
        "the answer names our root: {answer}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        daemon.documents().is_empty(),
        "Sampled=1 forced nothing past rules that sample nothing: {:#?}",
        daemon.documents()
    );
    drop(host);

    // Sampled by our rules, the segment is in our trace and names the caller's.
    let host = TestHost::serve(&component("backend1"), "Backend #1")
        .traced()
        .sample_everything()
        .args(["--incoming-trace-header", "restart"])
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    let refused = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=0");
    let response = request(port, "GET", "/", &[("X-Amzn-Trace-Id", &refused)], b"");
    let answer = response.header("x-amzn-trace-id").unwrap_or_default();
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| !docs.is_empty());
    assert_valid(&documents[0]);
    let ours = documents[0]["trace_id"].as_str().unwrap();
    assert_ne!(ours, root);
    assert_eq!(answer, format!("Root={ours}"));
    assert!(documents[0].get("parent_id").is_none());
    let notes = &documents[0]["metadata"]["xray_host"];
    assert_eq!(notes["incoming_trace_id"], root, "{notes}");
    assert_eq!(notes["incoming_parent_id"], "53995c3f42cd8ad8", "{notes}");
}
