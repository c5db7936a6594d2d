//! Backend #2 of the reference application.
//!
//! `GET /` answers `{"currentTime":"HH:MM:SS"}` at the configured UTC offset (UTC+09:00 by
//! default, `UTC_OFFSET` to change it); `GET /health` answers `{"status":"ok"}`. Every `GET /`
//! records `{SubAppId: "backend2", LastAccessed: "<epoch seconds>"}` in the service's table, as
//! the original did in DynamoDB; a failed write is logged and the answer is unchanged.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use xray_guest::clock::LocalDateTime;
use xray_guest::routes::{self, Answer};
use xray_guest::table;
use xray_guest::tracing::{AnnotationValue, Subsegment};

#[http_component]
fn handle(request: Request) -> Response {
    let method = request.method().to_string();
    routes::conventional(&method, request.path(), &["/"])
        .unwrap_or_else(current_time)
        .into()
}

fn current_time() -> Answer {
    table::record_last_access("backend2");
    let work = Subsegment::begin("current-time");
    let time = LocalDateTime::now().time();
    work.annotate("current_time", AnnotationValue::Text(time.clone()));
    Answer::json(200, format!(r#"{{"currentTime":"{time}"}}"#))
}
