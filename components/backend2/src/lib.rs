//! Backend #2 of the reference application.
//!
//! `GET /` answers `{"currentTime":"HH:MM:SS"}` at the configured UTC offset (UTC+09:00 by
//! default, `UTC_OFFSET` to change it); `GET /health` answers `{"status":"ok"}`.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use xray_guest::clock::LocalDateTime;
use xray_guest::routes::{self, Answer};
use xray_guest::tracing::{AnnotationValue, Subsegment};

#[http_component]
fn handle(request: Request) -> Response {
    let method = request.method().to_string();
    routes::conventional(&method, request.path(), &["/"])
        .unwrap_or_else(current_time)
        .into()
}

fn current_time() -> Answer {
    let work = Subsegment::begin("current-time");
    let time = LocalDateTime::now().time();
    work.annotate("current_time", AnnotationValue::Text(time.clone()));
    Answer::json(200, format!(r#"{{"currentTime":"{time}"}}"#))
}
