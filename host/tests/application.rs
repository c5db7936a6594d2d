//! The reference application's contracts, with the real host serving the real components.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};
use support::{Host, application, component, free_port, get, request};

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 10
        && bytes[4] == b'/'
        && bytes[7] == b'/'
        && text.chars().filter(|c| c.is_ascii_digit()).count() == 8
}

fn is_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_digit()))
        && parts[0] < "24"
        && parts[1] < "60"
        && parts[2] < "60"
}

#[test]
fn backends_answer_their_contracts() {
    let (_host, _front, one, two) = application();

    let date = get(one, "/");
    assert_eq!(date.status, 200);
    assert_eq!(date.header("content-type"), Some("application/json"));
    let body = date.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(is_date(body["currentDate"].as_str().unwrap()), "{body}");

    let time = get(two, "/").json();
    assert_eq!(time.as_object().unwrap().len(), 1, "{time}");
    let time = time["currentTime"].as_str().unwrap().to_string();
    assert!(is_time(&time), "{time}");
    // Backend #2 was configured for UTC: its hour is the UTC hour (allowing for a tick over).
    let utc_hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let hour: u64 = time[..2].parse().unwrap();
    assert!(
        hour == utc_hour || (hour + 1) % 24 == utc_hour,
        "{time} vs UTC hour {utc_hour}"
    );

    for port in [one, two] {
        let health = get(port, "/health");
        assert_eq!(
            (health.status, health.json()),
            (200, serde_json::json!({"status": "ok"}))
        );
        let missing = get(port, "/nope");
        assert_eq!(missing.status, 404);
        assert_eq!(missing.json()["error"], "not found");
        let post = request(port, "POST", "/", &[], b"{}");
        assert_eq!(post.status, 405);
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
        assert_eq!(post.json()["error"], "method not allowed");
    }
}

#[test]
fn the_bff_combines_both_backends_behind_the_frontend_origin() {
    let (host, front, _one, _two) = application();
    for path in ["/api", "/api/"] {
        let response = get(front, path);
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        let body = response.json();
        assert!(is_date(body["currentDate"].as_str().unwrap()), "{body}");
        assert!(is_time(body["currentTime"].as_str().unwrap()), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 2);
    }
    // The BFF's own health check, through the same origin, and the frontend's (nginx-like).
    assert_eq!(get(front, "/api/health").status, 404);
    assert_eq!(
        get(front, "/health").json(),
        serde_json::json!({"status": "ok"})
    );
    let page = get(front, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Current Date (from Backend #1)"));
    assert!(get(front, "/app.js").body.contains("/api/"));
    // One log line per request with a trace id, for every hop.
    assert!(host.wait_for_log(
        "service=Backend #2 method=GET path=/ status=200",
        Duration::from_secs(5)
    ));
    assert!(
        host.log()
            .contains("service=BFF method=GET path=/api/ status=200"),
        "{}",
        host.log()
    );
    assert!(host.log().contains("trace_id=1-"));
}

#[test]
fn the_bff_health_check_is_answered_by_the_component() {
    let port = free_port();
    let _host = Host::serve(&component("bff"), port, "BFF", &[]);
    assert_eq!(
        get(port, "/health").json(),
        serde_json::json!({"status": "ok"})
    );
    assert_eq!(get(port, "/").status, 404);
}

/// A BFF whose backend 1 is `backend_1` and backend 2 a real backend.
fn bff_with_backend_1(backend_1: &str, args: &[&str]) -> (Host, Host, u16) {
    let (port, two) = (free_port(), free_port());
    let backend_2 = Host::serve(&component("backend2"), two, "Backend #2", &[]);
    let mut all = vec![
        "--env".to_string(),
        format!("BACKEND_1_URL={backend_1}"),
        "--env".into(),
        format!("BACKEND_2_URL=http://127.0.0.1:{two}"),
        "--allow-outbound".into(),
        backend_1.to_string(),
        "--allow-outbound".into(),
        format!("http://127.0.0.1:{two}"),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let bff = Host::serve(&component("bff"), port, "BFF", &all);
    (bff, backend_2, port)
}

#[test]
fn a_backend_that_is_down_gives_a_prompt_502_naming_it() {
    let down = format!("http://127.0.0.1:{}", free_port());
    let (_bff, _b2, port) = bff_with_backend_1(&down, &[]);
    let started = Instant::now();
    let response = get(port, "/api/");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 502, "{}", response.body);
    let body = response.json();
    assert_eq!(body["backend"], "Backend #1");
    assert!(
        body["error"].as_str().unwrap().contains("refused"),
        "{body}"
    );
}

#[test]
fn a_backend_that_hangs_gives_a_504_within_the_outbound_timeout() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (_bff, _b2, port) = bff_with_backend_1(&url, &["--outbound-timeout", "1s"]);
    let started = Instant::now();
    let response = get(port, "/api/");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(response.status, 504, "{}", response.body);
    assert_eq!(response.json()["backend"], "Backend #1");
    drop(silent);
}

#[test]
fn a_backend_that_answers_garbage_gives_a_502() {
    for answer in [
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        "this is not HTTP at all\r\n\r\n",
    ] {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.local_addr().unwrap());
        let reply = answer.to_string();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in server.incoming().take(4) {
                let mut stream = stream.unwrap();
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        let (_bff, _b2, port) = bff_with_backend_1(&url, &[]);
        let response = get(port, "/api/");
        assert_eq!(response.status, 502, "{answer:?}: {}", response.body);
        assert_eq!(response.json()["backend"], "Backend #1", "{answer:?}");
    }
}

#[test]
fn a_backend_not_on_the_allow_list_is_refused_by_the_host() {
    let (one, two) = (free_port(), free_port());
    let _b1 = Host::serve(&component("backend1"), one, "Backend #1", &[]);
    let _b2 = Host::serve(&component("backend2"), two, "Backend #2", &[]);
    let port = free_port();
    let b1 = format!("BACKEND_1_URL=http://127.0.0.1:{one}");
    let b2 = format!("BACKEND_2_URL=http://127.0.0.1:{two}");
    let allowed = format!("http://127.0.0.1:{one}");
    // Backend 2 is running but not allowed.
    let bff = Host::serve(
        &component("bff"),
        port,
        "BFF",
        &["--env", &b1, "--env", &b2, "--allow-outbound", &allowed],
    );
    let response = get(port, "/api/");
    assert_eq!(response.status, 502, "{}", response.body);
    let body = response.json();
    assert_eq!(body["backend"], "Backend #2");
    assert!(
        body["error"].as_str().unwrap().contains("does not allow"),
        "{body}"
    );
    assert!(
        bff.wait_for_log("outgoing call refused", Duration::from_secs(5)),
        "{}",
        bff.log()
    );
}
