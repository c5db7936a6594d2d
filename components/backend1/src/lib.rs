//! Backend #1 of the reference application.
//!
//! `GET /` answers `{"currentDate":"YYYY/MM/DD"}` at the configured UTC offset (UTC+09:00 by
//! default, `UTC_OFFSET` to change it), inside a manual subsegment `current-date`;
//! `GET /health` answers `{"status":"ok"}`. Every `GET /` records `{SubAppId: "backend1",
//! LastAccessed: "<epoch seconds>"}` in the service's table, as the original did in DynamoDB;
//! a failed write is logged and the answer is unchanged.

use reference_support::clock::LocalDateTime;
use reference_support::last_access;
use reference_support::routes::{self, Answer};
use spin_sdk::http::Request;
use spin_sdk::http_service;
use xray_platform::tracing::Subsegment;

#[http_service]
async fn handle(request: Request) -> Answer {
    let method = request.method().to_string();
    match routes::conventional(&method, request.uri().path(), &["/"]) {
        Some(answer) => answer,
        None => current_date().await,
    }
}

async fn current_date() -> Answer {
    // The manual subsegment the original's README shows by hand, around the backend's work.
    let work = Subsegment::begin("current-date");
    last_access::record_last_access("backend1").await;
    let date = LocalDateTime::now().date();
    work.annotate("current_date", date.as_str());
    Answer::json(200, format!(r#"{{"currentDate":"{date}"}}"#))
}
