//! The local stand-in for the X-Ray daemon and console, so that traces can be inspected with no
//! AWS account: on one address (127.0.0.1:2000 by default, like the daemon),
//! - UDP: segment documents, checked as the daemon checks them ([`datagram`]) and kept
//!   ([`store`]);
//! - TCP: the daemon's sampling proxy answered from a local rules file ([`sampling_service`]),
//!   the X-Ray API calls the AWS CLI makes ([`api`], [`filter`]), and the trace console, a page
//!   served at `/` that reads the same API;
//! - TCP too: OTLP/HTTP traces on `/v1/traces` ([`otlp_ingest`]), turned into X-Ray documents
//!   ([`span_documents`]) in the same store, so OpenTelemetry services appear beside ours.

pub mod api;
pub mod datagram;
pub mod filter;
pub mod otlp_ingest;
pub mod sampling_service;
pub mod span_documents;
pub mod store;

use api::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use sampling_service::SamplingService;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::TraceStore;
use tokio::net::UdpSocket;
use xray::request_trace::now;
use xray::sampling::wire::SamplingTargetsRequest;

/// The body of every answer the stand-in gives: complete, in memory.
pub type StandInBody = Full<Bytes>;

const CONSOLE_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// Largest API request body accepted.
const MAX_API_BODY: usize = 1024 * 1024;

/// How the stand-in is configured.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The address, for UDP and TCP.
    pub listen: SocketAddr,
    /// Traces kept before the oldest are evicted.
    pub max_traces: usize,
    /// The sampling rules file (`{"SamplingRules": [...]}`); `None` serves the template's.
    pub sampling_rules: Option<std::path::PathBuf>,
}

/// The running stand-in.
pub struct DaemonStandIn {
    store: Arc<TraceStore>,
    sampling: SamplingService,
    rejected_logged: AtomicU64,
}

impl DaemonStandIn {
    /// Reads the rules, binds the UDP socket and starts receiving; the TCP side is served by
    /// the caller's server through [`DaemonStandIn::handle`].
    pub async fn start(options: &DaemonOptions) -> anyhow::Result<Arc<Self>> {
        let rules = match &options.sampling_rules {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the sampling rules {}: {e}", path.display())
            })?,
            None => sampling_service::DEFAULT_RULES.to_string(),
        };
        let sampling = SamplingService::parse(&rules, now())?;
        let socket = UdpSocket::bind(options.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot receive segments on UDP {} ({e}): is an X-Ray daemon already running there?",
                options.listen
            )
        })?;
        tracing::info!(
            "X-Ray daemon stand-in receiving segments on udp://{}",
            socket.local_addr()?
        );
        let stand_in = Arc::new(Self {
            store: Arc::new(TraceStore::new(options.max_traces)),
            sampling,
            rejected_logged: AtomicU64::new(0),
        });
        tokio::spawn(stand_in.clone().receive(socket));
        Ok(stand_in)
    }

    /// The traces.
    pub fn store(&self) -> &TraceStore {
        &self.store
    }

    async fn receive(self: Arc<Self>, socket: UdpSocket) {
        // The daemon reads into 64 KiB buffers; a larger datagram would be cut and rejected.
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let Ok((length, from)) = socket.recv_from(&mut buffer).await else {
                continue;
            };
            match datagram::parse_datagram(&buffer[..length]) {
                Ok(document) => {
                    if let Err(why) = self.store.add(document, now()) {
                        self.log_rejected(from, why);
                    }
                }
                Err(error) => {
                    self.store.count_rejected();
                    self.log_rejected(from, &error.to_string());
                }
            }
        }
    }

    fn log_rejected(&self, from: SocketAddr, why: &str) {
        let count = self.rejected_logged.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            tracing::warn!(%from, rejected = count, "X-Ray daemon stand-in rejected a datagram: {why}");
        }
    }

    /// Answers one TCP request: sampling, the X-Ray API, OTLP traces, or the console.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<StandInBody>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        if path == otlp_ingest::TRACES_PATH {
            return otlp_ingest::handle(&self.store, request, now()).await;
        }
        if method == Method::GET {
            return match path.as_str() {
                "/" | "/index.html" => asset(CONSOLE_HTML, "text/html; charset=utf-8"),
                "/console.js" => asset(CONSOLE_JS, "text/javascript; charset=utf-8"),
                "/console.css" => asset(CONSOLE_CSS, "text/css; charset=utf-8"),
                "/status" => json_response(StatusCode::OK, &self.store.counts()),
                _ => json_error(StatusCode::NOT_FOUND, "not_found", "no such page"),
            };
        }
        if method != Method::POST {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET or POST",
            );
        }
        let body = match Limited::new(request.into_body(), MAX_API_BODY)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return api_error(ApiError {
                    status: 413,
                    kind: "InvalidRequestException",
                    message: "the request body is too large".into(),
                });
            }
        };
        let answer = match path.as_str() {
            "/GetSamplingRules" => api::check_body(&body, "GetSamplingRules")
                .and_then(|()| to_json(self.sampling.rules_response())),
            "/SamplingTargets" => {
                api::parse_body::<SamplingTargetsRequest>(&body, "SamplingTargets")
                    .and_then(|report| to_json(self.sampling.targets_response(&report, now())))
            }
            "/TraceSummaries" => api::trace_summaries(&self.store, &body, now()),
            "/Traces" => api::batch_get_traces(&self.store, &body),
            "/ServiceGraph" => api::service_graph(&self.store, &body),
            _ => Err(ApiError {
                status: 404,
                kind: "UnknownOperationException",
                message: format!("{path} is not an operation this stand-in answers"),
            }),
        };
        match answer {
            Ok(value) => json_response(StatusCode::OK, &value),
            Err(error) => api_error(error),
        }
    }
}

fn to_json(answer: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(answer).map_err(|error| ApiError {
        status: 500,
        kind: "ServiceException",
        message: error.to_string(),
    })
}

/// A JSON answer.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response<StandInBody> {
    let text = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The JSON error answer the host gives for a page or method it does not serve.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response<StandInBody> {
    json_response(status, &json!({ "error": code, "message": message }))
}

fn asset(text: &'static str, kind: &'static str) -> Response<StandInBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'",
        ),
    );
    response
}

fn api_error(error: ApiError) -> Response<StandInBody> {
    let mut response = json_response(
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"__type": error.kind, "message": error.message}),
    );
    if let Ok(kind) = HeaderValue::from_str(error.kind) {
        response.headers_mut().insert("x-amzn-errortype", kind);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(stand_in: &DaemonStandIn, path: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::post(path)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = stand_in.handle(request).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_sampling_report_that_is_not_one_is_refused_with_a_reason() {
        let stand_in = DaemonStandIn::start(&DaemonOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_traces: 10,
            sampling_rules: None,
        })
        .await
        .unwrap();
        for bad in [
            r#"{"SamplingStatisticsDocuments": "x"}"#,
            "[1, 2]",
            "{not json",
        ] {
            let (status, answer) = post(&stand_in, "/SamplingTargets", bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
            assert_eq!(answer["__type"], "SerializationException", "{bad}");
        }
        let (status, answer) = post(
            &stand_in,
            "/SamplingTargets",
            r#"{"SamplingStatisticsDocuments": [{"RuleName": "Default", "ClientID": "c",
                "Timestamp": 1, "RequestCount": 1, "SampledCount": 1, "BorrowCount": 0}]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["SamplingTargetDocuments"][0]["RuleName"], "Default");
        let (status, answer) = post(&stand_in, "/GetSamplingRules", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["SamplingRuleRecords"].as_array().unwrap().len(), 2);
    }
}
