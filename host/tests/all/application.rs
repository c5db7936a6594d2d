//! The reference application's contracts, with the real host serving the real components.

use crate::support;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Host, TestHost, component, free_port, get, request, shared_application};

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
    let app = shared_application();
    check_backend_contracts(app.one, app.two);
}

/// The backends' contracts, whatever language serves them: backend 1 on `one`, backend 2 on
/// `two` (configured for UTC), each with `/health`, 404 and 405 as JSON.
pub fn check_backend_contracts(one: u16, two: u16) {
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
    let app = shared_application();
    assert_the_bff_combines_both_backends(&app.host, app.front);
}

/// The BFF's contract through the frontend at `front` of an application served by `host`
/// (started with `--access-log`), and the access log's line for every hop: also run against the
/// BFFs in other languages.
pub(crate) fn assert_the_bff_combines_both_backends(host: &Host, front: u16) {
    check_bff_contract(front);
    // With --access-log, one log line per request with a trace id, for every hop.
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

/// The BFF's contract behind the frontend origin on `front`, whatever languages serve the BFF
/// and the backends: `/api` and `/api/` combine both backends, `/health` and the page.
pub fn check_bff_contract(front: u16) {
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
}

#[test]
fn the_bff_health_check_is_answered_by_the_component() {
    let host = TestHost::serve(&component("bff"), "BFF").start();
    assert_the_bff_answers_its_health_check(host.port());
}

/// The health check of a BFF served alone on `port`.
pub(crate) fn assert_the_bff_answers_its_health_check(port: u16) {
    assert_eq!(
        get(port, "/health").json(),
        serde_json::json!({"status": "ok"})
    );
    assert_eq!(get(port, "/").status, 404);
}

/// A BFF component under test and the environment its hosts need (the JavaScript BFF's tests
/// share a compilation cache): the error tests below run against the BFF of every language.
pub(crate) struct BffUnderTest<'a> {
    /// The component file.
    pub component: &'a Path,
    /// Extra environment variables for its hosts.
    pub env: &'a [(&'a str, &'a str)],
}

impl BffUnderTest<'_> {
    /// The BFF, served as "BFF" with its environment.
    fn serve(&self) -> TestHost {
        TestHost::serve(self.component, "BFF").envs(self.env)
    }
}

/// The Rust BFF.
fn rust_bff(test: impl FnOnce(&BffUnderTest)) {
    test(&BffUnderTest {
        component: &component("bff"),
        env: &[],
    })
}

/// `bff` whose backend 1 is `backend_1` and backend 2 a real backend, with `args`: (the BFF's
/// host, backend 2's host).
fn bff_with_backend_1(bff: &BffUnderTest, backend_1: &str, args: &[&str]) -> (Host, Host) {
    let backend_2 = TestHost::serve(&component("backend2"), "Backend #2").start();
    let two = format!("http://127.0.0.1:{}", backend_2.port());
    let bff = bff
        .serve()
        .args(["--env", &format!("BACKEND_1_URL={backend_1}")])
        .args(["--env", &format!("BACKEND_2_URL={two}")])
        .args(["--allow-outbound", backend_1, "--allow-outbound", &two])
        .args(args)
        .start();
    (bff, backend_2)
}

#[test]
fn a_backend_that_is_down_gives_a_prompt_502_naming_it() {
    rust_bff(assert_a_backend_that_is_down_gives_a_prompt_502_naming_it);
}

/// `bff` answers a prompt 502 that says backend 1 refused the connection.
pub(crate) fn assert_a_backend_that_is_down_gives_a_prompt_502_naming_it(bff: &BffUnderTest) {
    let down = format!("http://127.0.0.1:{}", free_port());
    let (bff, _b2) = bff_with_backend_1(bff, &down, &[]);
    let port = bff.port();
    let body = assert_a_prompt_502_naming_backend_1(port, "/api/");
    assert_eq!(
        body["error"],
        format!("Backend #1 refused the connection ({down})"),
        "{body}"
    );
}

/// The answer of a BFF at `port` (`path` its API) whose backend 1 is down; returns its body.
pub(crate) fn assert_a_prompt_502_naming_backend_1(port: u16, path: &str) -> serde_json::Value {
    let started = Instant::now();
    let response = get(port, path);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 502, "{}", response.body);
    let body = response.json();
    assert_eq!(body["backend"], "Backend #1");
    body
}

#[test]
fn a_backend_that_hangs_gives_a_504_within_the_outbound_timeout() {
    rust_bff(assert_a_backend_that_hangs_gives_a_504_within_the_outbound_timeout);
}

/// `bff` answers 504 naming backend 1, which accepts connections and never answers, once the
/// host's outbound timeout has passed.
pub(crate) fn assert_a_backend_that_hangs_gives_a_504_within_the_outbound_timeout(
    bff: &BffUnderTest,
) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (bff, _b2) = bff_with_backend_1(bff, &url, &["--outbound-timeout", "1s"]);
    let port = bff.port();
    let started = Instant::now();
    let response = get(port, "/api/");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(response.status, 504, "{}", response.body);
    let body = response.json();
    assert_eq!(body["backend"], "Backend #1");
    assert_eq!(
        body["error"],
        format!("Backend #1 did not answer in time ({url})")
    );
    drop(silent);
}

#[test]
fn a_backend_that_answers_garbage_gives_a_502() {
    rust_bff(assert_a_backend_that_answers_garbage_gives_a_502);
}

/// `bff` answers 502 naming backend 1 for each kind of answer it cannot use.
pub(crate) fn assert_a_backend_that_answers_garbage_gives_a_502(bff: &BffUnderTest) {
    for (answer, error) in [
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json",
            "Backend #1 answered something that is not JSON",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            "Backend #1 answered JSON without a string \"currentDate\"",
        ),
        (
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
            "Backend #1 answered HTTP 500",
        ),
        ("this is not HTTP at all\r\n\r\n", "calling Backend #1"),
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
        let (bff, _b2) = bff_with_backend_1(bff, &url, &[]);
        let port = bff.port();
        let response = get(port, "/api/");
        assert_eq!(response.status, 502, "{answer:?}: {}", response.body);
        let body = response.json();
        assert_eq!(body["backend"], "Backend #1", "{answer:?}");
        assert!(
            body["error"].as_str().unwrap().starts_with(error),
            "{answer:?}: {body}"
        );
    }
}

#[test]
fn a_backend_not_on_the_allow_list_is_refused_by_the_host() {
    rust_bff(assert_a_backend_not_on_the_allow_list_is_refused_by_the_host);
}

/// `bff` answers 502 naming backend 2, which runs but is not on its host's allow-list.
pub(crate) fn assert_a_backend_not_on_the_allow_list_is_refused_by_the_host(bff: &BffUnderTest) {
    let backend_1 = TestHost::serve(&component("backend1"), "Backend #1").start();
    let backend_2 = TestHost::serve(&component("backend2"), "Backend #2").start();
    let (one, two) = (backend_1.port(), backend_2.port());
    let b1 = format!("BACKEND_1_URL=http://127.0.0.1:{one}");
    let b2 = format!("BACKEND_2_URL=http://127.0.0.1:{two}");
    let allowed = format!("http://127.0.0.1:{one}");
    let host = bff
        .serve()
        .args(["--env", &b1, "--env", &b2, "--allow-outbound", &allowed])
        .start();
    let port = host.port();
    let response = get(port, "/api/");
    assert_eq!(
        response.status,
        502,
        "{}\n{}\nbackend 1: {}\nbackend 2: {}",
        response.body,
        host.log(),
        backend_1.log(),
        backend_2.log()
    );
    let body = response.json();
    assert_eq!(body["backend"], "Backend #2", "{body}\n{}", host.log());
    assert!(
        body["error"].as_str().unwrap().contains("does not allow"),
        "{body}\n{}",
        host.log()
    );
    assert!(
        host.wait_for_log("outgoing call refused", Duration::from_secs(10)),
        "{}",
        host.log()
    );
}

/// `xray-host serve` with default flags, as README's "One service" section runs it, with the
/// data directory `data` (the default table store lives there).
fn serve_by_default(component_name: &str, name: &str, data: &Path) -> TestHost {
    TestHost::serve(&component(component_name), name)
        .env("XDG_DATA_HOME", data.display().to_string())
        .without_env("XRAY_HOST_TABLE_STORE")
}

#[test]
fn three_hosts_with_default_flags_run_side_by_side_as_on_ecs() {
    let data = tempfile::tempdir().unwrap();
    let backend_1 = serve_by_default("backend1", "Backend #1", data.path()).start();
    let backend_2 = serve_by_default("backend2", "Backend #2", data.path()).start();
    let (url_1, url_2) = (
        format!("http://127.0.0.1:{}", backend_1.port()),
        format!("http://127.0.0.1:{}", backend_2.port()),
    );
    let bff = serve_by_default("bff", "BFF", data.path())
        .args([
            "--env",
            &format!("BACKEND_1_URL={url_1}"),
            "--env",
            &format!("BACKEND_2_URL={url_2}"),
            "--allow-outbound",
            &url_1,
            "--allow-outbound",
            &url_2,
        ])
        .start();
    let response = get(bff.port(), "/api/");
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(is_date(response.json()["currentDate"].as_str().unwrap()));
    // Each backend has a store file of its own; the BFF, which has no table, none.
    let stores = data.path().join("xray-host");
    let mut files: Vec<String> = std::fs::read_dir(&stores)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["tables-backend-1.redb", "tables-backend-2.redb"]);

    // A host whose component has no table starts while another process holds the store file
    // it is configured with.
    let held = stores.join("tables-backend-1.redb").display().to_string();
    let without_table = serve_by_default("bff", "Another BFF", data.path())
        .args(["--table-store", &held])
        .start();
    assert_eq!(get(without_table.port(), "/health").status, 200);
    drop(without_table);

    // A component that imports the table cannot start on a held store, and says why.
    let (started, log) = TestHost::serve(&component("test_faults"), "Backend #1")
        .args(["--table-store", &held])
        .run_to_exit();
    assert!(!started, "{log}");
    assert!(log.contains(&held), "{log}");
    assert!(log.contains("in use by another xray-host process"), "{log}");
    assert!(log.contains("--table-store"), "{log}");
}

#[test]
fn the_first_sampling_poll_finds_the_stand_in_of_the_same_process() {
    let (daemon, service) = (free_port(), free_port());
    let manifest = format!(
        r#"
        [[service]]
        name = "Backend #2"
        component = "{b2}"
        listen = "127.0.0.1:{service}"

        [daemon]
        listen = "127.0.0.1:{daemon}"
        "#,
        b2 = component("backend2").display(),
    );
    let host = TestHost::run(&manifest)
        .port(service)
        .wait_for(&[daemon])
        .daemon_at(&format!("127.0.0.1:{daemon}"))
        // The poller says at debug level when rules arrived.
        .env("RUST_LOG", "info,xray::sampling::poller=debug")
        .start();
    assert_eq!(get(service, "/health").status, 200);
    assert!(
        host.wait_for_log(
            "sampling rules fetched from the daemon",
            Duration::from_secs(5)
        ),
        "{}",
        host.log()
    );
    let log = host.log();
    assert!(!log.contains("does not answer sampling calls"), "{log}");
    assert!(!log.contains(" WARN "), "{log}");
}
