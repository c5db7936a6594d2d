//! The table capability: the embedded store by default, DynamoDB against a real
//! DynamoDB-compatible server (moto's, installed by scripts/setup-interop.sh), and the
//! `DynamoDB` subsegments X-Ray needs to draw the table.

use crate::support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::daemon::Daemon;
use support::documents::subsegment_named;
use support::peers::Peer;
use support::schema::assert_valid;
use support::{
    TestHost, component, free_port, get, python_component, python_p2_component, request,
};

const REGION: &str = "us-east-1";

/// A moto server with the original's table created in it.
struct Moto {
    peer: Peer,
    port: u16,
}

impl Moto {
    fn start(table: &str) -> Moto {
        let port = free_port();
        let peer = support::peers::Peer::moto(port);
        let moto = Moto { peer, port };
        let created = moto.call(
            "CreateTable",
            json!({"TableName": table,
                   "KeySchema": [{"AttributeName": "SubAppId", "KeyType": "HASH"}],
                   "AttributeDefinitions": [{"AttributeName": "SubAppId", "AttributeType": "S"}],
                   "BillingMode": "PAY_PER_REQUEST"}),
        );
        assert_eq!(created["TableDescription"]["TableName"], table, "{created}");
        moto
    }

    /// One DynamoDB JSON-protocol call, as the AWS SDKs make it.
    fn call(&self, operation: &str, body: Value) -> Value {
        let target = format!("DynamoDB_20120810.{operation}");
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
        );
        let response = request(
            self.port,
            "POST",
            "/",
            &[
                ("X-Amz-Target", &target),
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Authorization", &authorization),
            ],
            body.to_string().as_bytes(),
        );
        serde_json::from_str(&response.body)
            .unwrap_or_else(|_| panic!("moto answered {response:?}"))
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The backends under test, backend 1 then backend 2: the Rust ones or the Python ones (their
/// WASI 0.3 build, whose table calls are `async func`s, and their WASI 0.2 build, whose calls
/// hold the instance), which must write, trace and fail the same way.
#[derive(Clone, Copy)]
enum Backends {
    Rust,
    Python,
    PythonP2,
}

/// Both builds of the Python backends.
const PYTHON: [Backends; 2] = [Backends::Python, Backends::PythonP2];

impl Backends {
    /// The component of backend `number` (1 or 2).
    fn component(self, number: u8) -> PathBuf {
        match self {
            Backends::Rust => component(&format!("backend{number}")),
            Backends::Python => python_component(&format!("backend{number}-py")),
            Backends::PythonP2 => python_p2_component(&format!("backend{number}-py")),
        }
    }
}

/// A backend bound to `table` at `endpoint`, sampling everything (into the daemon the caller
/// traces it into).
fn backend(name: &str, component: &Path, table: &str, endpoint: &str) -> TestHost {
    TestHost::serve(component, name)
        .sample_everything()
        .args(["--dynamodb-endpoint", endpoint])
        .env("DYNAMO_DB_TABLE_NAME", table)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn both_backends_record_their_last_access_in_dynamodb_traced_like_patch_all() {
    record_the_last_access_in_dynamodb(Backends::Rust);
}

#[test]
fn both_python_backends_record_their_last_access_in_dynamodb_traced_like_patch_all() {
    PYTHON
        .into_iter()
        .for_each(record_the_last_access_in_dynamodb);
}

fn record_the_last_access_in_dynamodb(backends: Backends) {
    let table = "xray-ecs-dev-last-accessed";
    let moto = Moto::start(table);
    let daemon = Daemon::start();
    for (name, number, sub_app_id) in [("Backend #1", 1, "backend1"), ("Backend #2", 2, "backend2")]
    {
        let component = backends.component(number);
        let host = backend(name, &component, table, &moto.endpoint())
            .daemon_at(&daemon.address())
            .start();
        let port = host.port();
        let before = now();
        assert_eq!(get(port, "/").status, 200);
        let item = moto.call(
            "GetItem",
            json!({"TableName": table, "Key": {"SubAppId": {"S": sub_app_id}}}),
        );
        let last: u64 = item["Item"]["LastAccessed"]["S"]
            .as_str()
            .unwrap_or_else(|| panic!("{item}"))
            .parse()
            .unwrap();
        assert!(
            last >= before && last <= now(),
            "LastAccessed {last} is not fresh"
        );

        let documents = daemon.wait_for(Duration::from_secs(5), |docs| {
            docs.iter().any(|d| d["name"] == name)
        });
        let segment = documents
            .iter()
            .find(|d| d["name"] == name)
            .expect("the backend's segment");
        assert_valid(segment);
        let call = subsegment_named(segment, "DynamoDB")
            .unwrap_or_else(|| panic!("no DynamoDB subsegment: {segment:#}"));
        assert_eq!(call["namespace"], "aws");
        assert_eq!(call["aws"]["operation"], "PutItem");
        assert_eq!(call["aws"]["table_name"], table);
        assert_eq!(call["aws"]["region"], REGION);
        assert_eq!(call["aws"]["retries"], 0);
        assert!(
            !call["aws"]["request_id"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{call}"
        );
        assert_eq!(call["http"]["response"]["status"], 200);
        assert!(call.get("fault").is_none() && call.get("error").is_none());
    }
}

#[test]
fn a_dynamodb_call_exports_as_a_client_span_with_the_aws_sdk_conventions() {
    use crate::otlp_export::{attribute, spans};
    let table = "xray-ecs-dev-last-accessed";
    let moto = Moto::start(table);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.jsonl");
    let receiver_port = free_port();
    let _receiver = support::peers::Peer::otlp_receiver(receiver_port, &out, &[], &[]);
    let endpoint = format!("http://127.0.0.1:{receiver_port}");
    let host = backend(
        "Backend #2",
        &component("backend2"),
        table,
        &moto.endpoint(),
    )
    .traced()
    .env("OTEL_TRACES_EXPORTER", "otlp")
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
    .env("OTEL_BSP_SCHEDULE_DELAY", "50")
    .start();
    let (port, daemon) = (host.port(), host.daemon());
    assert_eq!(get(port, "/").status, 200);
    let spans = spans(&out, 2);
    let call = spans
        .iter()
        .find(|s| attribute(s, "rpc.system") == "aws-api")
        .unwrap_or_else(|| panic!("no AWS SDK span: {spans:#?}"));
    assert_eq!(call["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(call["name"], "DynamoDB.PutItem");
    assert_eq!(attribute(call, "rpc.service"), "DynamoDB");
    assert_eq!(attribute(call, "rpc.method"), "PutItem");
    assert_eq!(
        attribute(call, "aws.dynamodb.table_names"),
        json!({"values": [{"stringValue": table}]})
    );
    assert!(
        attribute(call, "aws.request_id")
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{call:#}"
    );
    assert_eq!(attribute(call, "cloud.region"), REGION);
    assert_eq!(attribute(call, "http.response.status_code"), "200");
    // With OTLP alone no segment goes to the daemon.
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.documents().is_empty(), "{:#?}", daemon.documents());
}

#[test]
fn a_missing_table_is_an_error_subsegment_and_the_backend_still_answers() {
    a_missing_table_is_an_error_subsegment(Backends::Rust);
}

#[test]
fn a_missing_table_is_an_error_subsegment_and_the_python_backend_still_answers() {
    PYTHON
        .into_iter()
        .for_each(a_missing_table_is_an_error_subsegment);
}

fn a_missing_table_is_an_error_subsegment(backends: Backends) {
    let moto = Moto::start("some-other-table");
    let host = backend(
        "Backend #1",
        &backends.component(1),
        "no-such-table",
        &moto.endpoint(),
    )
    .traced()
    .start();
    let (port, daemon) = (host.port(), host.daemon());
    let response = get(port, "/");
    assert_eq!(response.status, 200);
    assert!(response.json()["currentDate"].is_string());
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| !docs.is_empty());
    let call = subsegment_named(&documents[0], "DynamoDB").expect("a DynamoDB subsegment");
    assert_valid(&documents[0]);
    assert_eq!(call["error"], true, "{call}");
    assert_eq!(call["http"]["response"]["status"], 400);
    assert_eq!(
        call["cause"]["exceptions"][0]["type"],
        "ResourceNotFoundException"
    );
    assert_eq!(call["cause"]["exceptions"][0]["remote"], true);
    assert!(
        host.wait_for_log("could not record the last access", Duration::from_secs(5)),
        "{}",
        host.log()
    );
}

#[test]
fn with_dynamodb_down_the_backend_answers_within_its_timeout_and_the_call_is_a_fault() {
    with_dynamodb_down_the_call_is_a_fault(Backends::Rust);
}

#[test]
fn with_dynamodb_down_the_python_backend_answers_within_its_timeout_and_the_call_is_a_fault() {
    PYTHON
        .into_iter()
        .for_each(with_dynamodb_down_the_call_is_a_fault);
}

fn with_dynamodb_down_the_call_is_a_fault(backends: Backends) {
    let table = "xray-ecs-dev-last-accessed";
    let mut moto = Moto::start(table);
    let component = backends.component(2);
    let host = backend("Backend #2", &component, table, &moto.endpoint())
        .traced()
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    assert_eq!(get(port, "/").status, 200);
    moto.peer.stop();
    let started = Instant::now();
    let response = get(port, "/");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= 2);
    let last = documents.last().unwrap();
    assert_valid(last);
    let call = subsegment_named(last, "DynamoDB").expect("a DynamoDB subsegment");
    assert_eq!(call["fault"], true, "{call}");
    assert_eq!(call["cause"]["exceptions"][0]["type"], "DispatchFailure");
}

#[test]
fn with_dynamodb_hanging_the_backend_answers_within_the_operation_timeout_and_the_call_is_a_fault()
{
    with_dynamodb_hanging_the_call_is_a_fault(Backends::Rust);
}

#[test]
fn with_dynamodb_hanging_the_python_backend_answers_within_the_operation_timeout() {
    PYTHON
        .into_iter()
        .for_each(with_dynamodb_hanging_the_call_is_a_fault);
}

/// A DynamoDB endpoint that accepts connections and reads requests but never answers.
fn hanging_dynamodb() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream); // kept open, never answered
        }
    });
    endpoint
}

fn with_dynamodb_hanging_the_call_is_a_fault(backends: Backends) {
    let endpoint = hanging_dynamodb();
    let host = backend(
        "Backend #1",
        &backends.component(1),
        "xray-ecs-dev-last-accessed",
        &endpoint,
    )
    .traced()
    .start();
    let (port, daemon) = (host.port(), host.daemon());
    let started = Instant::now();
    let response = get(port, "/");
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.body.contains("currentDate"), "{}", response.body);
    // The client's operation timeout is 5 s (2 s per attempt); the request waits no longer.
    assert!(elapsed < Duration::from_secs(7), "{elapsed:?}");
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| !docs.is_empty());
    let document = &documents[0];
    assert_valid(document);
    let call = subsegment_named(document, "DynamoDB").expect("a DynamoDB subsegment");
    assert_eq!(call["fault"], true, "{call}");
    assert_eq!(
        call["cause"]["exceptions"][0]["type"], "TimeoutError",
        "{call}"
    );
    // And the backend keeps serving.
    assert_eq!(get(port, "/health").status, 200);
}

/// WASI 0.3 components call the table through the package's 0.3.0, whose calls are `async
/// func`s: a request waiting for a hanging DynamoDB holds its own task, not the instance the
/// others share.
#[test]
fn a_hanging_table_stalls_only_the_request_that_waits_for_it() {
    let endpoint = hanging_dynamodb();
    let host = backend(
        "P3",
        &component("test_p3"),
        "xray-ecs-dev-last-accessed",
        &endpoint,
    )
    .start();
    let port = host.port();
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        (get(port, "/work?id=waits"), started.elapsed())
    });
    // Long enough for the first request to reach the table.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let other = get(port, "/count");
    let other_took = started.elapsed();
    let (waited, waited_took) = waiting.join().unwrap();

    // The second request ran in the instance the first one holds (its second request) ...
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(other.body, r#"{"served":2}"#);
    // ... while the first one was still waiting for the table, which finally timed out.
    assert!(other_took < Duration::from_secs(1), "{other_took:?}");
    assert!(waited_took > Duration::from_secs(2), "{waited_took:?}");
    assert_eq!(waited.status, 500, "{}", waited.body);
    assert!(waited.body.contains("Unavailable"), "{}", waited.body);
}

#[test]
fn the_embedded_store_stands_in_keeps_data_across_restarts_and_says_so_in_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tables.redb").display().to_string();
    // One stand-in for both hosts, the second started after the first stopped.
    let daemon = Daemon::start();
    let start = || {
        TestHost::serve(&component("test_faults"), "Faults")
            .args(["--table-store", &store])
            .sample_everything()
            .daemon_at(&daemon.address())
            .start()
    };
    let host = start();
    let port = host.port();
    assert_eq!(get(port, "/table-put?key=k1&value=hello").body, "stored");
    assert_eq!(get(port, "/table-get?key=nobody").body, "none");
    drop(host);
    let host = start();
    let port = host.port();
    let found = get(port, "/table-get?key=k1").body;
    assert!(found.contains("\"hello\""), "{found}");
    let documents = daemon.wait_for(Duration::from_secs(5), |docs| docs.len() >= 3);
    for document in &documents {
        assert_valid(document);
        let call =
            subsegment_named(document, "embedded table").unwrap_or_else(|| panic!("{document:#}"));
        assert_eq!(call["namespace"], "local");
        assert_eq!(call["metadata"]["xray_host"]["store"], "redb");
        assert!(subsegment_named(document, "DynamoDB").is_none());
    }
}

#[test]
fn items_dynamodb_would_refuse_are_refused_with_a_clear_error() {
    let host = TestHost::serve(&component("test_faults"), "Faults").start();
    let port = host.port();
    for (case, expected) in [
        ("too-large", "TooLarge("),
        (
            "empty-key",
            "InvalidItem(\"the key attribute \\\"SubAppId\\\" is an empty string\")",
        ),
        ("bad-number", "is not a DynamoDB number"),
        ("empty-set", "is an empty set"),
        ("bad-index", "value index 7 is out of range"),
    ] {
        let response = get(port, &format!("/table-bad?case={case}"));
        assert_eq!(response.status, 400, "{case}: {}", response.body);
        assert!(
            response.body.contains(expected),
            "{case}: {}",
            response.body
        );
    }
    assert_eq!(get(port, "/ok").status, 200);
}
