//! The local stand-in for the X-Ray daemon and console, so that traces can be inspected with no
//! AWS account: on one address (127.0.0.1:2000 by default, like the daemon),
//! - UDP: segment documents, checked as the daemon checks them ([`datagram`]) and kept
//!   ([`store`]);
//! - TCP: the daemon's sampling proxy answered from a local rules file ([`sampling_service`]),
//!   the X-Ray API calls the AWS CLI makes ([`api`], [`filter`]), and the trace console, a page
//!   served at `/` that reads the same API;
//! - TCP too: OTLP/HTTP traces on `/v1/traces` ([`otlp_ingest`]), turned into X-Ray documents
//!   ([`span_documents`]) in the same store, so OpenTelemetry services appear beside ours;
//! - and, when it runs in the host's process, the console's own endpoints ([`console_api`]): the
//!   log lines each trace printed, which the host hands it ([`trace_logs`]), and a metrics panel
//!   per service read from the host's counters through a [`service_metrics::ServiceMetricsSource`].
//!
//! The TCP side has no authentication: it answers only requests addressed to a loopback name
//! (or, served on another address on purpose, to that address), so a web page cannot reach it
//! through a browser under a name of its own (DNS rebinding); see [`xray::loopback`].

pub mod api;
pub mod console_api;
pub mod datagram;
pub mod filter;
pub mod otlp_ingest;
pub mod sampling_service;
pub mod service_metrics;
pub mod span_documents;
pub mod store;
pub mod trace_logs;

use api::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use sampling_service::SamplingService;
use serde::Serialize;
use serde_json::{Value, json};
use service_metrics::{MetricsHistory, SAMPLE_INTERVAL, ServiceMetricsSource};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use store::TraceStore;
use tokio::net::UdpSocket;
use trace_logs::TraceLogStore;
use xray::loopback::{AuthorityHost, authority_host, is_loopback_authority, refused_authority};
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
    listen: SocketAddr,
    store: Arc<TraceStore>,
    sampling: SamplingService,
    rejected_logged: AtomicU64,
    /// The log lines of each trace, when the host hands them over ([`Self::collect_log_lines`]).
    trace_logs: Arc<TraceLogStore>,
    collecting_log_lines: AtomicBool,
    /// The metrics panel's history, once the host gives a source ([`Self::watch_metrics`]).
    metrics: Mutex<Option<MetricsHistory>>,
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
        if !options.listen.ip().is_loopback() {
            tracing::warn!(
                "the X-Ray daemon stand-in listens on {}, not a loopback address: it has no \
                 authentication, so anyone who can reach this address over the network can send \
                 it segments and spans and read every trace it keeps through its API and console; \
                 its TCP side answers only requests addressed to a loopback name or an address \
                 of this machine, never another name",
                options.listen
            );
        }
        let stand_in = Arc::new(Self::new(options.listen, options.max_traces, sampling));
        tokio::spawn(stand_in.clone().receive(socket));
        Ok(stand_in)
    }

    fn new(listen: SocketAddr, max_traces: usize, sampling: SamplingService) -> Self {
        Self {
            listen,
            store: Arc::new(TraceStore::new(max_traces)),
            sampling,
            rejected_logged: AtomicU64::new(0),
            // As many traces' lines as traces kept: a trace's lines outlive it little.
            trace_logs: Arc::new(TraceLogStore::new(max_traces)),
            collecting_log_lines: AtomicBool::new(false),
            metrics: Mutex::new(None),
        }
    }

    /// The traces.
    pub fn store(&self) -> &TraceStore {
        &self.store
    }

    /// The store of each trace's log lines, for the host of the same process to add to; from
    /// now on the console shows them (before, it says the stand-in gets none).
    pub fn collect_log_lines(&self) -> Arc<TraceLogStore> {
        self.collecting_log_lines.store(true, Ordering::Relaxed);
        self.trace_logs.clone()
    }

    /// Reads `source` every [`SAMPLE_INTERVAL`] for the console's metrics panel, from now until
    /// the stand-in is dropped.
    pub fn watch_metrics(self: &Arc<Self>, source: Arc<dyn ServiceMetricsSource>) {
        let mut history = MetricsHistory::new(source.bucket_bounds_ms());
        history.record(now(), source.read());
        *lock(&self.metrics) = Some(history);
        let stand_in: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
            // A late tick (a busy machine) is one longer interval, not a burst of short ones:
            // each interval is divided by its own length.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(stand_in) = stand_in.upgrade() else {
                    return;
                };
                let reading = source.read();
                if let Some(history) = lock(&stand_in.metrics).as_mut() {
                    history.record(now(), reading);
                }
            }
        });
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
        if let Some(refusal) = host_refusal(&request, self.listen) {
            return refusal;
        }
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
                console_api::LOGS_PATH => match console_api::logs(
                    &self.trace_logs,
                    self.collecting_log_lines.load(Ordering::Relaxed),
                    request.uri().query(),
                ) {
                    Ok(answer) => json_response(StatusCode::OK, &answer),
                    Err(why) => json_error(StatusCode::BAD_REQUEST, "bad_trace_id", &why),
                },
                console_api::METRICS_PATH => {
                    let panel = lock(&self.metrics).as_ref().map(MetricsHistory::panel);
                    json_response(StatusCode::OK, &console_api::metrics(panel))
                }
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

/// The lock, also after a panic elsewhere held it: the history is replaced whole, never left
/// half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Refuses a request not addressed to a loopback name (DNS rebinding: a page on a hostile name
/// that resolves to 127.0.0.1 would otherwise read the traces through the visitor's browser).
/// Served on another address (`xray-host daemon --listen`), the stand-in also answers a request
/// addressed to that address, or to any IP address when it listens on all of them: a rebinding
/// page always uses a name.
fn host_refusal<B>(request: &Request<B>, listen: SocketAddr) -> Option<Response<StandInBody>> {
    let allowed = |authority: &str| {
        if is_loopback_authority(authority) {
            return true;
        }
        match authority_host(authority) {
            Some(AuthorityHost::Address(ip)) if !listen.ip().is_loopback() => {
                listen.ip().is_unspecified() || ip == listen.ip()
            }
            _ => false,
        }
    };
    let refused = refused_authority(request.uri(), request.headers(), allowed)?;
    let port = listen.port();
    let mut message = format!(
        "the X-Ray daemon stand-in answers only requests addressed to localhost, 127.x.x.x or \
         [::1] (Host {refused:?}): a page on another name may be reaching it through the \
         browser (DNS rebinding); use http://127.0.0.1:{port}/"
    );
    if !listen.ip().is_loopback() {
        message.push_str(&format!(
            " or, since it listens on {listen}, {}",
            if listen.ip().is_unspecified() {
                "an IP address of this machine".to_string()
            } else {
                format!("http://{listen}/")
            }
        ));
    }
    Some(json_error(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        &message,
    ))
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
            .header(header::HOST, "127.0.0.1:2000")
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

    async fn status_for(stand_in: &DaemonStandIn, hosts: &[&str], uri: &str) -> StatusCode {
        let mut request = Request::get(uri);
        for host in hosts {
            request = request.header(header::HOST, *host);
        }
        let response = stand_in
            .handle(request.body(Full::new(Bytes::new())).unwrap())
            .await;
        let status = response.status();
        if status == StatusCode::MISDIRECTED_REQUEST {
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let answer: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(answer["error"], "host_not_allowed");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("DNS rebinding"),
                "{answer}"
            );
        }
        status
    }

    async fn stand_in_on(listen: &str) -> Arc<DaemonStandIn> {
        DaemonStandIn::start(&DaemonOptions {
            listen: listen.parse().unwrap(),
            max_traces: 10,
            sampling_rules: None,
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn only_requests_addressed_to_a_loopback_name_are_answered() {
        let stand_in = stand_in_on("127.0.0.1:0").await;
        for host in ["127.0.0.1:2000", "localhost:2000", "[::1]:2000"] {
            assert_eq!(status_for(&stand_in, &[host], "/").await, StatusCode::OK);
        }
        let refused = StatusCode::MISDIRECTED_REQUEST;
        for host in ["rebind.example:2000", "192.168.1.20:2000"] {
            assert_eq!(status_for(&stand_in, &[host], "/").await, refused, "{host}");
            assert_eq!(status_for(&stand_in, &[host], "/status").await, refused);
        }
        assert_eq!(status_for(&stand_in, &[], "/").await, refused, "no Host");
        assert_eq!(
            status_for(&stand_in, &["127.0.0.1:2000", "evil.example"], "/").await,
            refused,
            "two Host lines, one of them hostile"
        );
        assert_eq!(
            status_for(&stand_in, &["127.0.0.1:2000"], "http://evil.example/").await,
            refused,
            "an absolute URI names the host too"
        );
        // Every path is behind the check: the API, sampling and OTLP.
        for path in [
            "/TraceSummaries",
            "/GetSamplingRules",
            otlp_ingest::TRACES_PATH,
        ] {
            let request = Request::post(path)
                .header(header::HOST, "rebind.example:2000")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            assert_eq!(stand_in.handle(request).await.status(), refused, "{path}");
        }
        assert_eq!(stand_in.store().counts().accepted, 0);
    }

    #[tokio::test]
    async fn served_on_another_address_it_also_answers_that_address_never_a_name() {
        // An address of this machine that is not loopback is not at hand in every sandbox:
        // all addresses stand for it.
        let stand_in = stand_in_on("0.0.0.0:0").await;
        for host in ["127.0.0.1:2000", "10.1.2.3:2000", "[fd00::5]:2000"] {
            assert_eq!(
                status_for(&stand_in, &[host], "/").await,
                StatusCode::OK,
                "{host}"
            );
        }
        for host in ["xray-daemon:2000", "rebind.example"] {
            assert_eq!(
                status_for(&stand_in, &[host], "/").await,
                StatusCode::MISDIRECTED_REQUEST,
                "{host}"
            );
        }
        // Bound to one address, it answers that address and loopback, not others.
        let specific = DaemonStandIn::new(
            "10.1.2.3:2000".parse().unwrap(),
            1,
            SamplingService::parse(sampling_service::DEFAULT_RULES, now()).unwrap(),
        );
        assert_eq!(
            status_for(&specific, &["10.1.2.3:2000"], "/").await,
            StatusCode::OK
        );
        assert_eq!(
            status_for(&specific, &["localhost"], "/").await,
            StatusCode::OK
        );
        assert_eq!(
            status_for(&specific, &["10.1.2.4:2000"], "/").await,
            StatusCode::MISDIRECTED_REQUEST
        );
    }

    #[tokio::test]
    async fn the_status_page_counts_what_the_caps_dropped() {
        let stand_in = stand_in_on("127.0.0.1:0").await;
        let response = stand_in
            .handle(
                Request::get("/status")
                    .header(header::HOST, "127.0.0.1:2000")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let status: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status["documents_over_trace_cap"], 0, "{status}");
        assert_eq!(status["spans_over_request_cap"], 0, "{status}");
    }
}
