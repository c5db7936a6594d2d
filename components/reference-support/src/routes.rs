//! The routing conventions every reference service follows, independent of the HTTP SDK:
//! `GET /health` answers `{"status":"ok"}`, the service's own paths answer `GET` (and `HEAD`),
//! a known path with another method is 405, anything else is 404, always with a JSON body.

/// The body of every health check answer, as in the original sample.
pub const HEALTH_BODY: &str = r#"{"status":"ok"}"#;

/// The path of the health check.
pub const HEALTH_PATH: &str = "/health";

/// The methods the reference services answer on their paths.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `GET` on one of the service's own paths.
    Main,
    /// A known path with a method other than `GET` or `HEAD`: answer 405 with `Allow`.
    MethodNotAllowed,
    /// Any other path: answer 404.
    NotFound,
}

/// Classifies a request. `path` may carry a query string, which is ignored; `main_paths` are
/// the service's own paths, matched exactly.
pub fn classify(method: &str, path: &str, main_paths: &[&str]) -> Route {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let known = path == HEALTH_PATH || main_paths.contains(&path);
    if !known {
        Route::NotFound
    } else if !(method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) {
        Route::MethodNotAllowed
    } else if path == HEALTH_PATH {
        Route::Health
    } else {
        Route::Main
    }
}

/// A response to send, independent of the HTTP SDK: always JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// The `Allow` header, set on 405.
    pub allow: Option<&'static str>,
}

impl Answer {
    /// A JSON answer with this status.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            allow: None,
        }
    }
}

#[cfg(feature = "spin")]
impl spin_sdk::http::IntoResponse for Answer {
    fn into_response(
        self,
    ) -> Result<spin_sdk::wasip3::http::types::Response, spin_sdk::wasip3::http::types::ErrorCode>
    {
        let mut response = http::Response::builder()
            .status(self.status)
            .header("content-type", "application/json");
        if let Some(allow) = self.allow {
            response = response.header("allow", allow);
        }
        match response.body(self.body) {
            Ok(response) => response.into_response(),
            Err(error) => Err(spin_sdk::wasip3::http::types::ErrorCode::InternalError(
                Some(error.to_string()),
            )),
        }
    }
}

/// Answers what the conventions answer (`/health`, 404 and 405), or `None` when the request
/// is a `GET` on one of the service's own paths, which the service answers itself.
pub fn conventional(method: &str, path: &str, main_paths: &[&str]) -> Option<Answer> {
    match classify(method, path, main_paths) {
        Route::Health => Some(Answer::json(200, HEALTH_BODY)),
        Route::Main => None,
        Route::MethodNotAllowed => Some(Answer {
            allow: Some(ALLOWED_METHODS),
            ..Answer::json(405, method_not_allowed_body(method))
        }),
        Route::NotFound => Some(Answer::json(404, not_found_body(path))),
    }
}

/// A JSON error body: `{"error":"<message>"}` plus any extra string fields, escaped properly.
pub fn error_body(message: &str, extra: &[(&str, &str)]) -> String {
    let mut body = format!("{{\"error\":{}", json_string(message));
    for (key, value) in extra {
        body.push_str(&format!(",{}:{}", json_string(key), json_string(value)));
    }
    body.push('}');
    body
}

/// The 404 body.
pub fn not_found_body(path: &str) -> String {
    error_body("not found", &[("path", path)])
}

/// The 405 body.
pub fn method_not_allowed_body(method: &str) -> String {
    error_body(
        "method not allowed",
        &[("method", method), ("allow", ALLOWED_METHODS)],
    )
}

/// `value` as a JSON string literal.
pub fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_like_the_contract_says() {
        let main = ["/"];
        assert_eq!(classify("GET", "/", &main), Route::Main);
        assert_eq!(classify("GET", "/?x=1", &main), Route::Main);
        assert_eq!(classify("HEAD", "/", &main), Route::Main);
        assert_eq!(classify("GET", "/health", &main), Route::Health);
        assert_eq!(classify("POST", "/", &main), Route::MethodNotAllowed);
        assert_eq!(
            classify("DELETE", "/health", &main),
            Route::MethodNotAllowed
        );
        assert_eq!(classify("GET", "/nope", &main), Route::NotFound);
        assert_eq!(classify("POST", "/nope", &main), Route::NotFound);
        assert_eq!(classify("GET", "/api/", &["/api", "/api/"]), Route::Main);
        assert_eq!(
            classify("GET", "/api/x", &["/api", "/api/"]),
            Route::NotFound
        );
    }

    #[test]
    fn conventions_leave_only_the_services_own_paths_to_it() {
        assert_eq!(conventional("GET", "/", &["/"]), None);
        assert_eq!(
            conventional("GET", "/health", &["/"]).unwrap().body,
            HEALTH_BODY
        );
        let not_allowed = conventional("PUT", "/", &["/"]).unwrap();
        assert_eq!(
            (not_allowed.status, not_allowed.allow),
            (405, Some(ALLOWED_METHODS))
        );
        assert_eq!(conventional("GET", "/x", &["/"]).unwrap().status, 404);
    }

    #[test]
    fn error_bodies_are_valid_json_even_with_hostile_input() {
        assert_eq!(
            error_body("bad \"thing\"\n", &[("path", "/a\\b\u{1}")]),
            r#"{"error":"bad \"thing\"\n","path":"/a\\b\u0001"}"#
        );
    }
}
