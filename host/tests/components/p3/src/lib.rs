//! A WASI 0.3 component (spin-sdk 7, `wasi:http/handler@0.3.0`) for the host's integration
//! tests. Each route does one thing the tests need to see under instance reuse:
//!
//! - `GET /work?id=ID&backend=URL&ms=N`: opens a subsegment `work-ID` annotated with `ID`,
//!   writes `{SubAppId: ID}` to the table, prints `work ID begins`, waits `N` ms (so that
//!   requests overlap in one instance), prints `work ID ends`, calls `URL` if given, and answers `{"id":ID,"served":N,"trace":"<header>"}`
//!   (`N`: this request's place among the instance's requests; the header as the component
//!   sees its request's trace).
//! - `GET /count`: how many requests this instance has served (a global: shared under reuse).
//! - `GET /sleep?ms=N`: answers after `N` ms without using the CPU.
//! - `GET /trap?ms=N`: traps after `N` ms.
//! - `GET /oom?ms=N`: allocates without bound after `N` ms.
//! - `GET /loop`: never returns to the host.
//! - `GET /fetch-p2?url=URL&ms=N`: waits `N` ms, then GETs `URL` through WASI 0.2's
//!   `outgoing-handler` (not `wasi:http/client@0.3.0`) and answers `{"status":N}` or
//!   `{"error":"..."}`.
//! - `GET /bomb?kind=metadata|exceptions|subsegments&n=N`: tries to record `N` huge things in
//!   its trace (metadata values of 1 MiB, exceptions of 1000 frames, subsegments) and answers
//!   `{"accepted":A,"refused":R,"first_refusal":"..."}`: what the host took and refused.

use spin_sdk::http::{EmptyBody, IntoResponse, Request, StatusCode, send};
use spin_sdk::http_service;
use spin_sdk::wasip3::clocks::monotonic_clock;
use std::sync::atomic::{AtomicU64, Ordering};
use xray_platform::table::{self, Value};
use xray_platform::tracing::{Segment, Subsegment};

/// Requests this instance has served.
static SERVED: AtomicU64 = AtomicU64::new(0);

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
    match path.as_str() {
        "/work" => {
            let id = param("id").unwrap_or_default();
            work(&id, served, ms, param("backend")).await
        }
        "/count" => (StatusCode::OK, format!(r#"{{"served":{served}}}"#)),
        "/sleep" => {
            sleep(ms).await;
            (StatusCode::OK, r#"{"slept":true}"#.to_string())
        }
        "/trap" => {
            sleep(ms).await;
            panic!("the test asked for a trap");
        }
        "/oom" => {
            sleep(ms).await;
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
            }
        }
        "/fetch-p2" => {
            sleep(ms).await;
            fetch_p2(&param("url").unwrap_or_default())
        }
        "/bomb" => {
            let n = param("n").and_then(|v| v.parse().ok()).unwrap_or(1000);
            bomb(&param("kind").unwrap_or_default(), n)
        }
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found"}"#.to_string(),
        ),
    }
}

/// A GET through WASI 0.2's outgoing-handler, blocking this instance until the answer's head.
fn fetch_p2(url: &str) -> (StatusCode, String) {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let Ok(uri) = url.parse::<http::Uri>() else {
        return (StatusCode::BAD_REQUEST, r#"{"error":"bad url"}"#.into());
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(uri.authority().map(|a| a.as_str()));
    let _ = request.set_path_with_query(uri.path_and_query().map(|p| p.as_str()));
    let answer = match outgoing_handler::handle(request, None) {
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => Ok(response.status()),
                Some(Ok(Err(code))) => Err(format!("{code:?}")),
                other => Err(format!("{other:?}")),
            }
        }
        Err(code) => Err(format!("{code:?}")),
    };
    match answer {
        Ok(status) => (StatusCode::OK, format!(r#"{{"status":{status}}}"#)),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!(r#"{{"error":"{}"}}"#, error.replace('"', "'")),
        ),
    }
}

/// Records `n` things of `kind` through the raw interface, counting what the host refuses.
fn bomb(kind: &str, n: usize) -> (StatusCode, String) {
    use xray_platform::raw::tracing as wit;
    let segment = wit::current_segment();
    let megabyte = format!("\"{}\"", "x".repeat(1 << 20));
    let frames: Vec<wit::StackFrame> = (0..1000)
        .map(|line| wit::StackFrame {
            path: Some("bomb.rs".into()),
            line: Some(line),
            label: Some("bomb".into()),
        })
        .collect();
    let (mut accepted, mut refused, mut first) = (0, 0, None);
    for i in 0..n {
        let result = match kind {
            "metadata" => segment.add_metadata("bomb", &format!("k{i}"), &megabyte),
            "exceptions" => segment.record_failure(
                wit::FailureKind::Error,
                Some(&wit::Exception {
                    message: format!("exception {i}"),
                    kind: Some("Bomb".into()),
                    remote: false,
                    stack: frames.clone(),
                }),
            ),
            "subsegments" => segment
                .begin_subsegment(&format!("s{i}"))
                .and_then(|subsegment| subsegment.end()),
            _ => return (StatusCode::NOT_FOUND, r#"{"error":"no such kind"}"#.into()),
        };
        match result {
            Ok(()) => accepted += 1,
            Err(error) => {
                refused += 1;
                first.get_or_insert_with(|| format!("{error:?}").replace('"', "'"));
            }
        }
    }
    let first = first.unwrap_or_default();
    (
        StatusCode::OK,
        format!(r#"{{"accepted":{accepted},"refused":{refused},"first_refusal":"{first}"}}"#),
    )
}

async fn sleep(ms: u64) {
    if ms > 0 {
        monotonic_clock::wait_for(ms * 1_000_000).await;
    }
}

async fn work(id: &str, served: u64, ms: u64, backend: Option<String>) -> (StatusCode, String) {
    let work = Subsegment::begin(&format!("work-{id}"));
    work.annotate("request_id", id);
    println!("work {id} begins");
    if let Err(error) = table::put_item(&[("SubAppId", Value::Text(id.to_string()))]).await {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(r#"{{"error":"{error}"}}"#),
        );
    }
    sleep(ms).await;
    println!("work {id} ends");
    if let Some(url) = backend {
        let request = http::Request::get(url)
            .body(EmptyBody::new())
            .expect("a valid URL");
        if let Err(error) = send(request).await {
            return (
                StatusCode::BAD_GATEWAY,
                format!(r#"{{"error":"{error:?}"}}"#),
            );
        }
    }
    drop(work);
    let header = Segment::current().trace_header();
    (
        StatusCode::OK,
        format!(r#"{{"id":"{id}","served":{served},"trace":"{header}"}}"#),
    )
}
