//! Outgoing HTTP from components, through the host's `send_request` hook.
//!
//! Every call a component makes with `wasi:http/outgoing-handler` lands here. The host:
//! 1. refuses it with `HTTP-request-denied` unless the service's allow-list covers the URL (one
//!    warning line names the URL and the flag to change);
//! 2. sends plain-HTTP calls through one pooled client per service, so the BFF reuses its
//!    connections to the backends instead of opening one per call (wasmtime's default sender
//!    does), and HTTPS calls through wasmtime's TLS sender;
//! 3. bounds the call: a connect timeout, and a timeout for the response head; a component may
//!    ask for shorter ones through `request-options`.
//!
//! Every call is also traced as X-Ray `remote` subsegment, named after the URL's host, with the
//! request's method and URL (without the query), `traced: true`, the response status and the
//! error flags, or a fault with a cause when the call failed; and the call carries the header
//! `X-Amzn-Trace-Id: Root=…;Parent=<that subsegment>;Sampled=…` so the service called continues
//! the trace (xray-spec §5.4, §7.2).

use crate::allow_list::AllowList;
use crate::xray::request_trace::{ExceptionRecord, FailureKind, TraceHandle};
use crate::xray::trace_header::HEADER_NAME;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How outgoing calls of one service are bounded.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// What the service may call.
    pub allow_list: AllowList,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long to wait for the response head once connected.
    pub response_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow_list: AllowList::default(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The outgoing-HTTP side of one service: its policy and its connection pool.
pub struct OutboundHttp {
    service: String,
    config: OutboundConfig,
    client: Client<HttpConnector, WasiBody>,
}

impl OutboundHttp {
    /// The outgoing HTTP of `service`, with its own connection pool.
    pub fn new(service: &str, config: OutboundConfig) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .build(connector);
        Arc::new(Self {
            service: service.to_string(),
            config,
            client,
        })
    }

    async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
        let uri = request.uri().clone();
        if !self.config.allow_list.allows(&uri) {
            tracing::warn!(
                service = %self.service,
                url = %uri,
                allowed = %self.config.allow_list,
                "outgoing call refused: the URL is not on the service's allow-list \
                 (add it with --allow-outbound or allow_outbound in the manifest)"
            );
            return Err(Error::HttpRequestDenied);
        }
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(self.config.connect_timeout);
        let response_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(self.config.response_timeout);

        if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            let options = RequestOptions {
                connect_timeout: Some(connect_timeout),
                first_byte_timeout: Some(response_timeout),
                between_bytes_timeout: options.and_then(|o| o.between_bytes_timeout),
            };
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            // wasmtime drives `io`, the TLS connection, until the response body ends.
            return Ok((response.map(BodyExt::boxed_unsync), Box::new(io)));
        }

        match tokio::time::timeout(response_timeout, self.client.request(request)).await {
            Err(_elapsed) => Err(Error::HttpResponseTimeout),
            Ok(Err(error)) => Err(classify_client_error(&error)),
            Ok(Ok(response)) => {
                let response = response.map(|body| {
                    body.map_err(Error::from)
                        .map_frame(|frame| frame.map_data(Bytes::from))
                        .boxed_unsync()
                });
                // The pool drives its own connections; nothing more to wait for.
                Ok((response, Box::new(async { Ok(()) })))
            }
        }
    }
}

/// Turns the pooled client's error into the `wasi:http` error code the component sees.
fn classify_client_error(error: &hyper_util::client::legacy::Error) -> Error {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => Error::ConnectionTimeout,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    Error::ConnectionTerminated
                }
                _ => Error::Connect(std::io::Error::new(io.kind(), io.to_string())),
            };
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                return Error::HttpResponseIncomplete;
            }
            if hyper.is_timeout() {
                return Error::HttpResponseTimeout;
            }
            return Error::HttpProtocolError;
        }
        source = cause.source();
    }
    if error.is_connect() {
        Error::ConnectionRefused
    } else {
        Error::InternalError(Some(error.to_string()))
    }
}

/// The `WasiHttpHooks` of one request's store: the service's [`OutboundHttp`], and the
/// request's trace when X-Ray is on.
#[derive(Clone)]
pub struct OutboundHooks {
    http: Arc<OutboundHttp>,
    trace: Option<TraceHandle>,
}

impl OutboundHooks {
    /// Hooks that send through `http` and record calls into `trace`, if given.
    pub fn new(http: Arc<OutboundHttp>, trace: Option<TraceHandle>) -> Self {
        Self { http, trace }
    }
}

/// Records one outgoing call as a `remote` subsegment and adds the trace header to it.
struct TracedCall {
    trace: TraceHandle,
    index: usize,
}

impl TracedCall {
    fn begin(trace: TraceHandle, request: &mut http::Request<WasiBody>) -> Self {
        let uri = request.uri();
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
            uri.path()
        );
        let http =
            json!({"request": {"method": request.method().as_str(), "url": url, "traced": true}});
        let (index, header) = {
            let mut recorded = trace.lock().unwrap_or_else(|p| p.into_inner());
            let index = recorded.begin_call(uri.host().unwrap_or(""), "remote", Some(http), None);
            (index, recorded.downstream_header(index))
        };
        if let Ok(value) = http::HeaderValue::from_str(&header) {
            request.headers_mut().insert(HEADER_NAME, value);
        }
        Self { trace, index }
    }

    fn end(&self, result: &Result<(http::Response<WasiBody>, IoFuture), Error>) {
        let (http, failure) = match result {
            Ok((response, _)) => {
                let mut http = json!({"response": {"status": response.status().as_u16()}});
                if let Some(length) = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    http["response"]["content_length"] = json!(length);
                }
                (Some(http), None)
            }
            Err(error) => {
                let exception = ExceptionRecord {
                    id: crate::xray::ids::new_segment_id(),
                    message: error.to_string(),
                    kind: Some(
                        format!("{error:?}")
                            .split(['(', ' ', '{'])
                            .next()
                            .unwrap_or("Error")
                            .to_string(),
                    ),
                    remote: true,
                    stack: Vec::new(),
                };
                (None, Some((FailureKind::Fault, Some(exception))))
            }
        };
        self.trace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .end_call(self.index, http, failure);
    }
}

/// The future that drives a connection after the response head arrived.
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

type ResponseFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let http = self.http.clone();
        let mut request = request;
        let call = self
            .trace
            .clone()
            .map(|trace| TracedCall::begin(trace, &mut request));
        Box::new(async move {
            let result = http.send(request, options).await;
            if let Some(call) = call {
                call.end(&result);
            }
            result
        })
    }
}
