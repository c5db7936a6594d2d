//! Backend #2 of the reference application.
//!
//! `GET /` answers `{"currentTime":"HH:MM:SS"}` at the configured UTC offset (UTC+09:00 by
//! default, `UTC_OFFSET` to change it); `GET /health` answers `{"status":"ok"}`. Every `GET /`
//! records `{SubAppId: "backend2", LastAccessed: "<epoch seconds>"}` in the service's table, as
//! the original did in DynamoDB; a failed write is logged and the answer is unchanged.
//!
//! Built with `--features standalone` it neither writes the table nor opens a subsegment, so it
//! imports nothing but WASI and also runs under `wasmtime serve` or Spin: the benchmarks serve
//! that one file with every host they compare.

use reference_support::clock::LocalDateTime;
#[cfg(not(feature = "standalone"))]
use reference_support::last_access;
use reference_support::routes::{self, Answer};
use spin_sdk::http::Request;
use spin_sdk::http_service;
#[cfg(not(feature = "standalone"))]
use xray_platform::tracing::Subsegment;

#[http_service]
async fn handle(request: Request) -> Answer {
    let method = request.method().to_string();
    match routes::conventional(&method, request.uri().path(), &["/"]) {
        Some(answer) => answer,
        None => current_time().await,
    }
}

#[cfg(not(feature = "standalone"))]
async fn current_time() -> Answer {
    last_access::record_last_access("backend2").await;
    let work = Subsegment::begin("current-time");
    let time = LocalDateTime::now().time();
    work.annotate("current_time", time.as_str());
    time_answer(&time)
}

#[cfg(feature = "standalone")]
async fn current_time() -> Answer {
    time_answer(&LocalDateTime::now().time())
}

fn time_answer(time: &str) -> Answer {
    Answer::json(200, format!(r#"{{"currentTime":"{time}"}}"#))
}
