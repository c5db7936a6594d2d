//! Backend #2's `GET /` as a plain native server: tokio and hyper, the same JSON
//! (`{"currentTime":"HH:MM:SS"}` at UTC+09:00) and `/health`, no WebAssembly and no tracing.
//! It is the ceiling in `scripts/bench.sh`: what serving this answer costs with nothing between
//! the socket and the handler.
//!
//! Usage: `native-backend2 [ADDRESS]` (default 127.0.0.1:8082).

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// The reference backends' fixed offset, as in the original sample.
const UTC_OFFSET_SECONDS: u64 = 9 * 3600;

/// The time of day at UTC+09:00, `HH:MM:SS`.
fn current_time() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let of_day = (now + UTC_OFFSET_SECONDS) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

async fn handle(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (request.method().as_str(), request.uri().path()) {
        ("GET", "/") => (
            StatusCode::OK,
            format!(r#"{{"currentTime":"{}"}}"#, current_time()),
        ),
        ("GET", "/health") => (StatusCode::OK, r#"{"status":"ok"}"#.to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found"}"#.to_string(),
        ),
    };
    let response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response");
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".into());
    let listener = TcpListener::bind(&address).await?;
    eprintln!("native-backend2 listening on http://{address}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
