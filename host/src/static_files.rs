//! The frontend's files, served by the local run the way nginx serves them on ECS: `/` is
//! `index.html`, `/health` answers `{"status": "ok"}` without touching the disk, anything
//! else is a file from the directory or a 404.
//!
//! Paths are checked segment by segment (no `..`, no hidden files, no backslashes), so a
//! request can never name a file outside the directory.

use http::{HeaderValue, Method, Response, StatusCode, header};
use std::path::{Path, PathBuf};
use xray_host_runtime::{ResponseBody, full_body, json_error};

/// A directory of static files.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: PathBuf,
}

impl StaticFiles {
    /// Serves files from `root`, which must exist.
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            root.join("index.html").is_file(),
            "the frontend directory {} has no index.html",
            root.display()
        );
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Answers a request for `path`.
    pub async fn serve(&self, method: &Method, path: &str) -> Response<ResponseBody> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the frontend serves GET and HEAD only",
                None,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        if path == "/health" {
            let mut response = Response::new(full_body(r#"{"status": "ok"}"#));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return response;
        }
        let Some(file) = self.resolve(path) else {
            return not_found(path);
        };
        match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let mut response = Response::new(full_body(bytes));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, content_type(&file));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                response
            }
            Err(_) => not_found(path),
        }
    }

    /// The file a URL path names, if it is a safe path inside the root.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut file = self.root.clone();
        let mut segments = 0;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let safe = !segment.starts_with('.')
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !safe {
                return None;
            }
            file.push(segment);
            segments += 1;
        }
        if segments == 0 || path.ends_with('/') {
            file.push("index.html");
        }
        Some(file)
    }
}

fn not_found(path: &str) -> Response<ResponseBody> {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no file for {path}"),
        None,
    )
}

fn content_type(file: &Path) -> HeaderValue {
    let kind = match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    HeaderValue::from_static(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn site() -> (tempfile::TempDir, StaticFiles) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<h2>hi</h2>").unwrap();
        std::fs::write(dir.path().join("app.js"), "1").unwrap();
        std::fs::write(dir.path().join(".secret"), "x").unwrap();
        let files = StaticFiles::new(dir.path()).unwrap();
        (dir, files)
    }

    async fn get(files: &StaticFiles, path: &str) -> (StatusCode, String, String) {
        let response = files.serve(&Method::GET, path).await;
        let status = response.status();
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_index_files_and_health() {
        let (_dir, files) = site();
        assert_eq!(get(&files, "/").await.2, "<h2>hi</h2>");
        assert_eq!(
            get(&files, "/index.html?x=1").await.1,
            "text/html; charset=utf-8"
        );
        assert_eq!(
            get(&files, "/app.js").await.1,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(get(&files, "/health").await.2, r#"{"status": "ok"}"#);
    }

    #[tokio::test]
    async fn never_leaves_the_directory() {
        let (_dir, files) = site();
        for path in [
            "/../Cargo.toml",
            "/.secret",
            "/%2e%2e/x",
            "/a\\b",
            "/nope.js",
        ] {
            assert_eq!(get(&files, path).await.0, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
