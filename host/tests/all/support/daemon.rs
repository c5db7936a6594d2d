//! A stand-in for the X-Ray daemon: a UDP socket that keeps every datagram, and optionally the
//! daemon's TCP sampling endpoints on the same port number, answering from fixed rules.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The stand-in.
pub struct Daemon {
    /// The port, for UDP and (when serving sampling) TCP.
    pub port: u16,
    datagrams: Arc<Mutex<Vec<String>>>,
    sampling_calls: Arc<Mutex<Vec<(String, String)>>>,
}

/// The template's `ignore-healthcheck` rule and a `Default` rule that samples everything.
pub fn template_rules() -> Value {
    let rule = |name: &str, priority: u32, reservoir: u32, rate: f64, method: &str, path: &str| {
        json!({"SamplingRule": {"RuleName": name, "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "ResourceARN": "*", "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
            "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": method, "URLPath": path,
            "Version": 1, "Attributes": {}}, "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9})
    };
    json!({"SamplingRuleRecords": [
        rule("xray-ecs-dev-ignore-healthcheck", 1, 0, 0.0, "GET", "/health"),
        rule("Default", 10000, 0, 1.0, "*", "*"),
    ]})
}

impl Daemon {
    /// UDP only, on a free port.
    pub fn start() -> Daemon {
        Self::start_with(None)
    }

    /// UDP, plus `POST /GetSamplingRules` answering `rules` and `POST /SamplingTargets`.
    pub fn with_sampling(rules: Value) -> Daemon {
        Self::start_with(Some(rules))
    }

    fn start_with(rules: Option<Value>) -> Daemon {
        // Find a port free for both protocols.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if rules.is_none() {
                break (udp, None);
            }
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
                break (udp, Some(tcp));
            }
        };
        let port = udp.local_addr().unwrap().port();
        let datagrams = Arc::new(Mutex::new(Vec::new()));
        let sink = datagrams.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            while let Ok(length) = udp.recv(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..length]).into_owned());
            }
        });
        let sampling_calls = Arc::new(Mutex::new(Vec::new()));
        if let (Some(tcp), Some(rules)) = (tcp, rules) {
            let calls = sampling_calls.clone();
            std::thread::spawn(move || {
                for stream in tcp.incoming() {
                    let Ok(stream) = stream else { continue };
                    let rules = rules.clone();
                    let calls = calls.clone();
                    std::thread::spawn(move || serve_sampling(stream, &rules, &calls));
                }
            });
        }
        Daemon {
            port,
            datagrams,
            sampling_calls,
        }
    }

    /// `AWS_XRAY_DAEMON_ADDRESS` for this stand-in.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The segment documents received so far (header lines checked and removed).
    pub fn documents(&self) -> Vec<Value> {
        self.datagrams
            .lock()
            .unwrap()
            .iter()
            .map(|datagram| {
                let (header, body) = datagram
                    .split_once('\n')
                    .expect("a datagram without a header line");
                assert_eq!(header, r#"{"format":"json","version":1}"#);
                serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
            })
            .collect()
    }

    /// Waits until `predicate` holds for the documents received, or the timeout passes.
    pub fn wait_for(&self, timeout: Duration, predicate: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let documents = self.documents();
            if predicate(&documents) || Instant::now() > deadline {
                return documents;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The documents of trace `trace_id` once there are at least `count` of them (or what has
    /// arrived when `timeout` passes): for tests that share a daemon with others.
    pub fn trace(&self, trace_id: &str, count: usize, timeout: Duration) -> Vec<Value> {
        let of_trace = |documents: &[Value]| -> Vec<Value> {
            documents
                .iter()
                .filter(|d| d["trace_id"] == trace_id)
                .cloned()
                .collect()
        };
        of_trace(&self.wait_for(timeout, |documents| of_trace(documents).len() >= count))
    }

    /// The sampling calls received: (path, body).
    pub fn sampling_calls(&self) -> Vec<(String, String)> {
        self.sampling_calls.lock().unwrap().clone()
    }
}

fn serve_sampling(
    mut stream: std::net::TcpStream,
    rules: &Value,
    calls: &Mutex<Vec<(String, String)>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        calls.lock().unwrap().push((path.clone(), body));
        let answer = match path.as_str() {
            "/GetSamplingRules" => rules.to_string(),
            "/SamplingTargets" => {
                json!({"SamplingTargetDocuments": [], "UnprocessedStatistics": []}).to_string()
            }
            _ => "{}".to_string(),
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
