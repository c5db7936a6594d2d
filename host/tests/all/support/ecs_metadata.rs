//! A stand-in for the ECS task metadata endpoint v4: a local HTTP server answering the
//! container document at `/v4/<id>` and the task document at `/v4/<id>/task`, as ECS does at
//! `${ECS_CONTAINER_METADATA_URI_V4}`. The documents are the Fargate fixtures of the `xray`
//! crate (`crates/xray/tests/fixtures/ecs/`), changed as a test needs.

use super::workspace;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fixture document of `crates/xray/tests/fixtures/ecs/`.
pub fn fixture(name: &str) -> Value {
    let path = workspace()
        .join("crates/xray/tests/fixtures/ecs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The endpoint, serving until the test process ends.
pub struct MetadataEndpoint {
    uri: String,
    served: Arc<AtomicUsize>,
}

impl MetadataEndpoint {
    /// Serves `container` and `task` (each answer closes its connection, so every document is
    /// one connection).
    pub fn start(container: Value, task: Value) -> MetadataEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!(
            "http://{}/v4/0123456789abcdef",
            listener.local_addr().unwrap()
        );
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The head's other lines, up to the blank one.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let body = if path.ends_with("/task") {
                    &task
                } else {
                    &container
                };
                let body = body.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        MetadataEndpoint { uri, served }
    }

    /// The Fargate fixtures, the container document changed by `change`.
    pub fn fargate(change: impl FnOnce(&mut Value)) -> MetadataEndpoint {
        let mut container = fixture("container-fargate.json");
        change(&mut container);
        MetadataEndpoint::start(container, fixture("task-fargate.json"))
    }

    /// `ECS_CONTAINER_METADATA_URI_V4` for the host.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Waits (at most 10 s) until both documents have been answered.
    pub fn wait_until_read(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.served.load(Ordering::SeqCst) < 2 {
            assert!(
                Instant::now() < deadline,
                "the host did not read the task metadata"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
