//! The JSON error answers the host gives when it, not the component, decides the response.
//!
//! Every such answer has a body `{"error":"<code>","message":"<for a person>"}` plus, where it
//! helps, the service name, so a client (or the BFF component calling a backend) can tell
//! which hop failed and why without reading logs.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The body type of every response the host sends.
pub type ResponseBody = HyperOutgoingBody;

/// A response with a complete body in memory.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON error response: `code` is a stable machine-readable word, `message` is for a person.
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    service: Option<&str>,
) -> Response<ResponseBody> {
    let mut body = json!({ "error": code, "message": message });
    if let Some(service) = service {
        body["service"] = json!(service);
    }
    json_response(status, &body)
}

/// A JSON response with any body.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_bodies_name_the_code_the_message_and_the_service() {
        let response = json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            "took \"too\" long",
            Some("Backend #1"),
        );
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"error": "deadline_exceeded", "message": "took \"too\" long", "service": "Backend #1"})
        );
    }
}
