//! The BFF (backend for frontend) of the reference application.
//!
//! `GET /api` and `GET /api/` call backend 1, then backend 2 (in sequence, as the original
//! does), and answer `{"currentDate":…,"currentTime":…}`. The backends' URLs come from
//! `BACKEND_1_URL` and `BACKEND_2_URL`.
//!
//! Unlike the original, which left the browser hanging when a backend failed, every failure
//! answers at once with a JSON error that names the backend: 504 when the backend did not
//! answer in time, 502 for anything else (refused connection, an error status, a body that is
//! not the expected JSON, a URL that is not configured or not allowed).

use reference_support::routes::{self, Answer, error_body};
use serde_json::{Value, json};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{EmptyBody, Request, send};
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types::ErrorCode;
use xray_platform::tracing::{self, FailureKind, Subsegment};

/// The paths the BFF serves besides `/health`.
const API_PATHS: &[&str] = &["/api", "/api/"];

/// One backend the BFF calls.
struct Backend {
    /// Its name in errors and traces.
    name: &'static str,
    /// The environment variable holding its URL.
    url_env: &'static str,
    /// The field of its answer the BFF passes on.
    field: &'static str,
}

const BACKEND_1: Backend = Backend {
    name: "Backend #1",
    url_env: "BACKEND_1_URL",
    field: "currentDate",
};

const BACKEND_2: Backend = Backend {
    name: "Backend #2",
    url_env: "BACKEND_2_URL",
    field: "currentTime",
};

#[http_service]
async fn handle(request: Request) -> Answer {
    let method = request.method().to_string();
    match routes::conventional(&method, request.uri().path(), API_PATHS) {
        Some(answer) => answer,
        None => api().await,
    }
}

async fn api() -> Answer {
    let date = match fetch_field(&BACKEND_1).await {
        Ok(date) => date,
        Err(failure) => return failure,
    };
    let time = match fetch_field(&BACKEND_2).await {
        Ok(time) => time,
        Err(failure) => return failure,
    };
    Answer::json(
        200,
        json!({ BACKEND_1.field: date, BACKEND_2.field: time }).to_string(),
    )
}

/// Calls `backend` inside a manual subsegment and returns its field, or the error answer.
async fn fetch_field(backend: &Backend) -> Result<String, Answer> {
    let work = Subsegment::begin(&format!("call {}", backend.name));
    work.annotate("backend", backend.name);
    let result = call(backend).await;
    if let Err((status, message)) = &result {
        let kind = if *status == 504 {
            "Timeout"
        } else {
            "BadGateway"
        };
        work.fail(
            FailureKind::Fault,
            Some(tracing::exception(kind, message.clone(), true)),
        );
    }
    result.map_err(|(status, message)| {
        Answer::json(status, error_body(&message, &[("backend", backend.name)]))
    })
}

/// The call itself: `Err((status, message))` on any failure.
async fn call(backend: &Backend) -> Result<String, (u16, String)> {
    let url = std::env::var(backend.url_env).map_err(|_| {
        (
            502,
            format!(
                "{} is not configured ({} is unset)",
                backend.name, backend.url_env
            ),
        )
    })?;
    let request = http::Request::get(&url)
        .body(EmptyBody::new())
        .map_err(|_| (502, format!("{} has an invalid URL ({url})", backend.name)))?;
    let response = send(request)
        .await
        .map_err(|error| describe_send_error(backend, &url, error))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err((502, format!("{} answered HTTP {status}", backend.name)));
    }
    let body = response
        .into_body()
        .bytes()
        .await
        .map_err(|error| describe_send_error(backend, &url, error))?;
    let body: Value = serde_json::from_slice(&body).map_err(|_| {
        (
            502,
            format!("{} answered something that is not JSON", backend.name),
        )
    })?;
    match body.get(backend.field) {
        Some(Value::String(value)) => Ok(value.clone()),
        _ => Err((
            502,
            format!(
                "{} answered JSON without a string {:?}",
                backend.name, backend.field
            ),
        )),
    }
}

fn describe_send_error(backend: &Backend, url: &str, error: ErrorCode) -> (u16, String) {
    let name = backend.name;
    match error {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => (504, format!("{name} did not answer in time ({url})")),
        ErrorCode::ConnectionRefused => (502, format!("{name} refused the connection ({url})")),
        ErrorCode::HttpRequestDenied => (
            502,
            format!("the host does not allow calls to {name} ({url}): check its allow-list"),
        ),
        other => (502, format!("calling {name} ({url}) failed: {other:?}")),
    }
}
