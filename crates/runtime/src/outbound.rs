//! Outgoing HTTP from components, through the host's `send_request` hook.
//!
//! Every call a component makes with `wasi:http/outgoing-handler` lands here. The host:
//! 1. refuses it with `HTTP-request-denied` unless the service's allow-list covers the URL (one
//!    warning line names the URL and the flag to change; these warnings, and the address
//!    check's, pass the service's limiter of per-call warnings, [`crate::guest_output`]);
//! 2. sends plain-HTTP calls through one pooled client per service, so the BFF reuses its
//!    connections to the backends instead of opening one per call (wasmtime's default sender
//!    does), and HTTPS calls through wasmtime's TLS sender;
//! 3. bounds the call: a connect timeout, and a timeout for the response head; a component may
//!    ask for a shorter response timeout through `request-options`, never a longer one (the
//!    operator's `--outbound-timeout` is the most a call may wait; its `connect-timeout` and
//!    `between-bytes-timeout` are not read: the host's connect timeout holds, and the request's
//!    own deadline bounds the body);
//! 4. connects only to addresses [`crate::network_policy`] allows: the URL's host is normalised
//!    (`http://2852039170/` is `http://169.254.170.2/`), an address in the URL is checked before
//!    anything else, and a name is checked after every DNS resolution, on the addresses the
//!    connection is then made to, so a name that resolves (or later re-resolves) to the
//!    credentials endpoint, to loopback through a wildcard entry, or to one of the host's own
//!    endpoints is refused with `destination-ip-prohibited` before any connection.
//!
//! Plain-HTTP and HTTPS calls both go through one pooled client per service whose connector
//! ([`CheckedConnector`]) resolves the URL's host itself ([`Resolve`] is the seam tests use),
//! checks every address with the URL's port and whether an allow-list entry names that host and
//! port exactly, and then connects to the allowed addresses only, by address.
//!
//! Every call is also traced as X-Ray `remote` subsegment, named after the URL's host, with the
//! request's method and URL (without the query), `traced: true`, the response status and the
//! error flags, or a fault with a cause when the call failed; and the call carries the header
//! `X-Amzn-Trace-Id: Root=…;Parent=<that subsegment>;Sampled=…` so the service called continues
//! the trace (xray-spec §5.4, §7.2).

use crate::allow_list::AllowList;
use crate::guest_output::ServiceOutput;
use crate::local_calls::LocalServices;
use crate::metric_sources::{MetricSource, Reading, Unit, Value};
use crate::network_policy::{AddressPolicy, HostEndpoint, Refusal, TargetHost};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};
use xray::active_trace::{ActiveTrace, CallSpan};
use xray::document::Exception;
use xray::request_trace::FailureKind;

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
    /// Refuse private network addresses too, not only link-local and metadata ones.
    pub block_private_networks: bool,
    /// The host's own endpoints (admin, daemon stand-in, daemon, collector): never reached,
    /// whatever the allow-list says.
    pub host_endpoints: Vec<HostEndpoint>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow_list: AllowList::default(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(30),
            block_private_networks: false,
            host_endpoints: Vec::new(),
        }
    }
}

/// Looks up the addresses of a name: the system's resolver in the host, another in tests.
pub trait Resolve: Send + Sync {
    /// The addresses of `name`.
    fn resolve(&self, name: &str) -> BoxFuture<std::io::Result<Vec<IpAddr>>>;
}

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The system's resolver (`getaddrinfo`, on tokio's blocking threads).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: &str) -> BoxFuture<std::io::Result<Vec<IpAddr>>> {
        let name = name.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .map(|address| address.ip())
                .collect())
        })
    }
}

/// Why a call was refused by the address check: carried inside the connector's I/O error, so
/// that [`classify_client_error`] can tell the component `destination-ip-prohibited`.
#[derive(Debug)]
pub struct AddressRefused {
    /// The name resolved (or the host as written).
    pub host: String,
    /// The address refused.
    pub address: IpAddr,
    /// The port the call was for.
    pub port: u16,
    /// Why.
    pub refusal: Refusal,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (port {}) is {}, {}; outgoing calls may not connect there",
            self.host, self.port, self.address, self.refusal
        )
    }
}

impl StdError for AddressRefused {}

/// The address side of one service's policy: what [`AddressPolicy`] allows, given how the
/// allow-list covers the URL.
struct AddressCheck {
    service: Arc<str>,
    /// The refusals counted for the reporters.
    refused: Arc<RefusedCalls>,
    allow_list: AllowList,
    policy: AddressPolicy,
    /// Rate-limits the refusal warnings.
    output: Arc<ServiceOutput>,
}

impl AddressCheck {
    /// The addresses among `addresses` of `host` that a call to `uri` may connect to; when
    /// there are addresses but none is allowed, the refusal of the first (logged).
    fn allowed(
        &self,
        uri: &http::Uri,
        host: &str,
        addresses: Vec<IpAddr>,
    ) -> Result<Vec<SocketAddr>, AddressRefused> {
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
                443
            } else {
                80
            });
        let named_exactly = self.allow_list.names_exactly(uri);
        let mut allowed = Vec::new();
        let mut refused = None;
        for address in addresses {
            match self.policy.check(address, port, named_exactly) {
                Ok(()) => allowed.push(SocketAddr::new(address, port)),
                Err(refusal) => {
                    refused.get_or_insert((address, refusal));
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (true, Some((address, refusal))) => Err(self.refuse(host, address, port, refusal)),
            _ => Ok(allowed),
        }
    }

    /// Logs and returns the refusal of `address` for `host`: which rule, and what to change.
    fn refuse(&self, host: &str, address: IpAddr, port: u16, refusal: Refusal) -> AddressRefused {
        self.refused.count(Refused::Address);
        if self.output.warnings().allow() {
            tracing::warn!(
                service = %self.service,
                host,
                %address,
                port,
                rule = refusal.rule(),
                "outgoing call refused: {host} is {address}, {refusal}; {}",
                refusal.remedy()
            );
        }
        AddressRefused {
            host: host.to_string(),
            address,
            port,
            refusal,
        }
    }
}

/// Connects a call's URL: resolves its host, keeps the addresses the policy allows for its
/// port, and connects to them by address (so no lookup happens past the check).
#[derive(Clone)]
struct CheckedConnector {
    check: Arc<AddressCheck>,
    resolver: Arc<dyn Resolve>,
    tcp: HttpConnector<NoLookup>,
}

/// The resolver of the connector that connects by address: it is never asked for a name.
#[derive(Clone)]
struct NoLookup;

impl tower_service::Service<Name> for NoLookup {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<std::io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        std::future::ready(Err(std::io::Error::other(format!(
            "{name}: names are resolved and checked before connecting"
        ))))
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl tower_service::Service<http::Uri> for CheckedConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("the URL has no host")?.to_string();
            let addresses = match TargetHost::parse(&host) {
                TargetHost::Ip(address) => vec![address],
                TargetHost::Name(_) => this.resolver.resolve(host.trim_matches(['[', ']'])).await?,
            };
            let allowed = this
                .check
                .allowed(&uri, &host, addresses)
                .map_err(|refused| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused)
                })?;
            let mut last_error: Option<BoxError> = None;
            for address in allowed {
                let target: http::Uri = format!("http://{address}").parse()?;
                let mut tcp = this.tcp.clone();
                match tower_service::Service::call(&mut tcp, target).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last_error = Some(error.into()),
                }
            }
            Err(last_error.unwrap_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host} has no address"),
                )
                .into()
            }))
        })
    }
}

/// The outgoing-HTTP side of one service: its policy and its connection pools.
pub struct OutboundHttp {
    service: String,
    config: OutboundConfig,
    check: Arc<AddressCheck>,
    client: Client<CheckedConnector, WasiBody>,
    tls_client: Client<HttpsConnector<CheckedConnector>, WasiBody>,
    /// Services of the same process, called without a connection (`xray-host run` only).
    local: OnceLock<LocalServices>,
}

impl OutboundHttp {
    /// The outgoing HTTP of `service`, with its own connection pools.
    /// Its refusal warnings pass `output`'s limiter of per-call warnings.
    pub fn new(service: &str, config: OutboundConfig, output: Arc<ServiceOutput>) -> Arc<Self> {
        Self::with_resolver(service, config, Arc::new(SystemResolver), output)
    }

    /// As [`OutboundHttp::new`], resolving names with `resolver`.
    pub fn with_resolver(
        service: &str,
        config: OutboundConfig,
        resolver: Arc<dyn Resolve>,
        output: Arc<ServiceOutput>,
    ) -> Arc<Self> {
        let refused = Arc::new(RefusedCalls::new(service));
        crate::metric_sources::register(refused.clone());
        let check = Arc::new(AddressCheck {
            service: service.into(),
            refused,
            output,
            allow_list: config.allow_list.clone(),
            policy: AddressPolicy {
                block_private: config.block_private_networks,
                exempt: config.allow_list.literal_addresses(),
                host_endpoints: config.host_endpoints.clone(),
            },
        });
        let mut tcp = HttpConnector::new_with_resolver(NoLookup);
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_nodelay(true);
        let connector = CheckedConnector {
            check: check.clone(),
            resolver,
            tcp,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .build(connector.clone());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        })
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(connector);
        let tls_client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .build(https);
        Arc::new(Self {
            service: service.to_string(),
            config,
            check,
            client,
            tls_client,
            local: OnceLock::new(),
        })
    }

    /// Calls to `services` (the other services of this process) go in process from now on.
    /// Set once, when every service of the process is loaded.
    pub fn call_in_process(&self, services: LocalServices) {
        if !services.is_empty() {
            let _ = self.local.set(services);
        }
    }

    /// Sends `request` as the service's policy allows.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
        let uri = request.uri().clone();
        if !self.config.allow_list.allows(&uri) {
            self.check.refused.count(Refused::AllowList);
            if self.check.output.warnings().allow() {
                tracing::warn!(
                    service = %self.service,
                    url = %uri,
                    allowed = %self.config.allow_list,
                    "outgoing call refused: the URL is not on the service's allow-list \
                     (add it with --allow-outbound or allow_outbound in the manifest)"
                );
            }
            return Err(Error::HttpRequestDenied);
        }
        let response_timeout = response_timeout(options, self.config.response_timeout);
        // A co-located service: no connection, so no address to check.
        if let Some(callee) = self.local.get().and_then(|local| local.find(&uri)) {
            let response = tokio::time::timeout(response_timeout, callee.call(request))
                .await
                .map_err(|_| Error::HttpResponseTimeout)?;
            return Ok((response, Box::new(async { Ok(()) })));
        }
        // An address in the URL, in any of its forms, is checked here, before a pooled
        // connection could be looked for (the connector checks it again, and every name).
        if let Some(host) = uri.host()
            && let TargetHost::Ip(address) = TargetHost::parse(host)
            && self.check.allowed(&uri, host, vec![address]).is_err()
        {
            return Err(Error::DestinationIpProhibited);
        }
        let sent = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
            tokio::time::timeout(response_timeout, self.tls_client.request(request)).await
        } else {
            tokio::time::timeout(response_timeout, self.client.request(request)).await
        };
        match sent {
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

/// How long a call waits for its response head: the component's `first-byte-timeout` when it
/// is shorter than the operator's `limit` (`--outbound-timeout`), else the limit. A component
/// may only shorten the operator's bound.
fn response_timeout(options: Option<RequestOptions>, limit: Duration) -> Duration {
    options
        .and_then(|options| options.first_byte_timeout)
        .map_or(limit, |asked| asked.min(limit))
}

/// Turns the pooled client's error into the `wasi:http` error code the component sees.
fn classify_client_error(error: &hyper_util::client::legacy::Error) -> Error {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<AddressRefused>())
            {
                return Error::DestinationIpProhibited;
            }
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

/// The `WasiHttpHooks` of one instance's store: the service's [`OutboundHttp`], and, for a
/// WASI 0.2 instance, the trace its calls are recorded into (when X-Ray is on).
///
/// A WASI 0.2 instance runs one request at a time, so its calls belong to the request it was
/// given ([`serve_one_request`](Self::serve_one_request)). A WASI 0.3 instance runs several at
/// once, and this hook cannot tell which of them calls: its `wasi:http/client.send` is wrapped
/// ([`crate::p3_client`]) to record each call into the trace of the calling task, as every other
/// capability does. A WASI 0.3 instance's calls through WASI 0.2's `outgoing-handler` find no
/// trace here and are recorded nowhere, never into another request's trace.
pub struct OutboundHooks {
    http: Arc<OutboundHttp>,
    one_request_trace: Option<ActiveTrace>,
}

impl OutboundHooks {
    /// Hooks that send through `http`, recording nothing until a request is given.
    pub fn new(http: Arc<OutboundHttp>) -> Self {
        Self {
            http,
            one_request_trace: None,
        }
    }

    /// The trace of the request a WASI 0.2 instance serves now (one at a time).
    pub fn serve_one_request(&mut self, trace: ActiveTrace) {
        self.one_request_trace = Some(trace);
    }
}

/// Ends a call's subsegment with the response head: its status and declared length.
pub fn end_answered_call(call: CallSpan, status: http::StatusCode, headers: &http::HeaderMap) {
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    call.answered(status.as_u16(), length);
}

/// Ends a call's subsegment with a fault whose cause is the wasi:http error the component gets
/// (its variant's name is the exception's type).
pub fn end_failed_call(call: CallSpan, error: &(impl std::fmt::Debug + std::fmt::Display)) {
    let debug = format!("{error:?}");
    let kind = debug.split(['(', ' ', '{']).next().unwrap_or("Error");
    call.failed(
        FailureKind::Fault,
        Exception::new(kind, error.to_string(), true),
    );
}

/// The future that drives a connection after the response head arrived.
pub type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

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
        let (mut parts, body) = request.into_parts();
        let call = self
            .one_request_trace
            .as_ref()
            .map(|trace| trace.begin_http_call(&parts.method, &parts.uri, &mut parts.headers));
        let request = http::Request::from_parts(parts, body);
        Box::new(async move {
            let result = http.send(request, options).await;
            if let Some(call) = call {
                match &result {
                    Ok((response, _)) => {
                        end_answered_call(call, response.status(), response.headers())
                    }
                    Err(error) => end_failed_call(call, error),
                }
            }
            result
        })
    }
}

/// Which check refused an outgoing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The URL is not on the allow-list.
    AllowList,
    /// Every address the name resolved to is one the policy refuses.
    Address,
}

/// The outgoing calls one service was refused, by check: a [`MetricSource`] per service.
struct RefusedCalls {
    service: String,
    allow_list: AtomicU64,
    address: AtomicU64,
}

impl RefusedCalls {
    fn new(service: &str) -> RefusedCalls {
        RefusedCalls {
            service: service.to_string(),
            allow_list: AtomicU64::new(0),
            address: AtomicU64::new(0),
        }
    }

    fn count(&self, refused: Refused) {
        match refused {
            Refused::AllowList => &self.allow_list,
            Refused::Address => &self.address,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

impl MetricSource for RefusedCalls {
    fn group(&self) -> &'static str {
        "Outbound"
    }

    fn dimensions(&self) -> Vec<(&'static str, String)> {
        vec![("Service", self.service.clone())]
    }

    fn read(&self) -> Vec<Reading> {
        [("allow_list", &self.allow_list), ("address", &self.address)]
            .into_iter()
            .map(|(rule, count)| Reading {
                name: "OutboundRefused".into(),
                otel_name: "xray_host.outbound.refused".into(),
                description: "Outgoing calls refused, by the check that refused them".into(),
                unit: Unit::Count("{call}"),
                attributes: vec![("Rule".into(), rule.to_string())],
                value: Value::Counter(count.load(Ordering::Relaxed)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    /// Answers every name with the same addresses, and counts the lookups.
    struct FixedResolver {
        addresses: Vec<IpAddr>,
        lookups: AtomicUsize,
    }

    impl Resolve for FixedResolver {
        fn resolve(&self, _name: &str) -> BoxFuture<std::io::Result<Vec<IpAddr>>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let addresses = self.addresses.clone();
            Box::pin(async move { Ok(addresses) })
        }
    }

    fn outbound(
        allow: &[&str],
        block_private: bool,
        answers: &[&str],
    ) -> (Arc<OutboundHttp>, Arc<FixedResolver>) {
        outbound_beside(allow, block_private, answers, Vec::new())
    }

    /// As [`outbound`], in a host whose own endpoints are `host_endpoints`.
    fn outbound_beside(
        allow: &[&str],
        block_private: bool,
        answers: &[&str],
        host_endpoints: Vec<HostEndpoint>,
    ) -> (Arc<OutboundHttp>, Arc<FixedResolver>) {
        let resolver = Arc::new(FixedResolver {
            addresses: answers.iter().map(|a| a.parse().unwrap()).collect(),
            lookups: AtomicUsize::new(0),
        });
        let config = OutboundConfig {
            allow_list: AllowList::parse(allow).unwrap(),
            block_private_networks: block_private,
            host_endpoints,
            ..OutboundConfig::default()
        };
        (
            OutboundHttp::with_resolver(
                "Test",
                config,
                resolver.clone(),
                ServiceOutput::new("Test", 100),
            ),
            resolver,
        )
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        http::Request::get(url)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    async fn outcome(http: &OutboundHttp, url: &str) -> Result<u16, String> {
        match http.send(get(url), None).await {
            Ok((response, _)) => Ok(response.status().as_u16()),
            Err(error) => Err(format!("{error:?}")),
        }
    }

    /// A loopback server that answers 204 to every request and counts the connections.
    async fn loopback_server() -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_request| async {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(204)
                                .body(Empty::<Bytes>::new())
                                .unwrap(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (port, accepted)
    }

    #[test]
    fn a_component_may_shorten_the_response_timeout_but_never_lengthen_it() {
        let limit = Duration::from_secs(10);
        let asking = |timeout: Duration| {
            Some(RequestOptions {
                first_byte_timeout: Some(timeout),
                ..RequestOptions::default()
            })
        };
        assert_eq!(response_timeout(None, limit), limit);
        assert_eq!(
            response_timeout(Some(RequestOptions::default()), limit),
            limit
        );
        assert_eq!(
            response_timeout(asking(Duration::from_millis(250)), limit),
            Duration::from_millis(250)
        );
        assert_eq!(
            response_timeout(asking(Duration::from_secs(3600)), limit),
            limit
        );
        assert_eq!(response_timeout(asking(Duration::MAX), limit), limit);
    }

    #[tokio::test]
    async fn a_longer_first_byte_timeout_than_the_operators_is_cut_to_it() {
        // A server that accepts and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        let config = OutboundConfig {
            allow_list: AllowList::parse(&[url.as_str()]).unwrap(),
            response_timeout: Duration::from_millis(300),
            ..OutboundConfig::default()
        };
        let http = OutboundHttp::with_resolver(
            "Test",
            config,
            Arc::new(FixedResolver {
                addresses: Vec::new(),
                lookups: AtomicUsize::new(0),
            }),
            ServiceOutput::new("Test", 100),
        );
        let options = RequestOptions {
            first_byte_timeout: Some(Duration::from_secs(3600)),
            ..RequestOptions::default()
        };
        let started = std::time::Instant::now();
        let outcome = http.send(get(&format!("{url}/")), Some(options)).await;
        assert!(
            matches!(outcome, Err(Error::HttpResponseTimeout)),
            "{:?}",
            outcome.map(|_| ())
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_the_credentials_endpoint_is_refused_before_connecting() {
        let (http, resolver) = outbound(&["http://*.example.com"], false, &["169.254.170.2"]);
        let started = std::time::Instant::now();
        assert_eq!(
            outcome(&http, "http://allowed.example.com/v2/credentials").await,
            Err("DestinationIpProhibited".into())
        );
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
        // A connection attempt to an unroutable address would wait for the connect timeout.
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        // Resolved again for the next call, and refused again (DNS rebinding gains nothing).
        assert_eq!(
            outcome(&http, "http://allowed.example.com/").await,
            Err("DestinationIpProhibited".into())
        );
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 2);
        // HTTPS goes through the same resolver.
        assert_eq!(
            outcome(&http, "https://allowed.example.com/").await,
            Err("HttpRequestDenied".into()),
            "https is not on this allow-list"
        );
        let (https, _) = outbound(&["https://*.example.com"], false, &["fd00:ec2::254"]);
        assert_eq!(
            outcome(&https, "https://allowed.example.com/").await,
            Err("DestinationIpProhibited".into())
        );
    }

    #[tokio::test]
    async fn urls_that_hide_the_address_are_refused_without_a_lookup() {
        let (http, resolver) = outbound(&["http://*:*"], false, &["127.0.0.1"]);
        for url in [
            "http://169.254.170.2/",
            "http://2852039170/",
            "http://0xa9.0xfe.0xaa.0x02/",
            "http://[::ffff:169.254.170.2]/",
            "http://allowed.example@169.254.170.2/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://255.255.255.255/",
            "http://127.0.0.1:8081/",
            "http://2130706433:8081/",
            "http://[::1]:8081/",
            "http://[64:ff9b::7f00:1]:8081/",
            "http://[::127.0.0.1]:8081/",
            "http://[2002:7f00:1::]:8081/",
            "http://[64:ff9b::a9fe:aa02]/",
            "http://[2002:a9fe:aa02::1]/",
        ] {
            assert_eq!(
                outcome(&http, url).await,
                Err("DestinationIpProhibited".into()),
                "{url}"
            );
        }
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn loopback_is_reached_only_through_an_entry_naming_host_and_port() {
        let (port, accepted) = loopback_server().await;
        let url = format!("http://127.0.0.1:{port}/");
        let (http, _) = outbound(&[&format!("http://127.0.0.1:{port}")], true, &[]);
        assert_eq!(outcome(&http, &url).await, Ok(204));
        // A name on the allow-list, with its port, that resolves to loopback and to a blocked
        // address too: the connection goes to loopback only.
        let (named, _) = outbound(
            &[&format!("http://backend.local:{port}")],
            false,
            &["169.254.170.2", "127.0.0.1"],
        );
        assert_eq!(
            outcome(&named, &format!("http://backend.local:{port}/")).await,
            Ok(204)
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // Wildcards reach loopback neither by address nor by name, and nothing connects.
        for (allow, target) in [
            ("http://*:*", url.clone()),
            ("http://127.0.0.1:*", url.clone()),
            ("http://*:*", format!("http://localhost:{port}/")),
            ("http://localhost:*", format!("http://localhost:{port}/")),
            (
                "http://backend.local:*",
                format!("http://backend.local:{port}/"),
            ),
            (
                &format!("http://*.example.com:{port}"),
                format!("http://rebound.example.com:{port}/"),
            ),
        ] {
            let (wildcard, _) = outbound(&[allow], false, &["127.0.0.1", "::1"]);
            assert_eq!(
                outcome(&wildcard, &target).await,
                Err("DestinationIpProhibited".into()),
                "{allow} {target}"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // The operator names a link-local address literally: the check lets it through (no
        // call is made: these tests send nothing beyond loopback).
        let (literal, _) = outbound(&["http://169.254.170.2"], false, &[]);
        let policy = &literal.check.policy;
        assert_eq!(
            policy.check("169.254.170.2".parse().unwrap(), 80, true),
            Ok(())
        );
        assert!(
            policy
                .check("169.254.169.254".parse().unwrap(), 80, false)
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_hosts_own_endpoints_are_refused_even_when_named_exactly() {
        let (port, accepted) = loopback_server().await;
        let own = vec![HostEndpoint::new(
            "admin endpoint",
            SocketAddr::from(([127, 0, 0, 1], port)),
        )];
        let allow = [
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
            format!("http://[::1]:{port}"),
        ];
        let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
        let (http, _) = outbound_beside(&allow, false, &["127.0.0.1"], own);
        for url in [
            format!("http://127.0.0.1:{port}/reload"),
            format!("http://localhost:{port}/reload"),
            format!("http://[::1]:{port}/reload"),
        ] {
            assert_eq!(
                outcome(&http, &url).await,
                Err("DestinationIpProhibited".into()),
                "{url}"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn private_ranges_are_refused_without_connecting_when_asked() {
        let (http, resolver) = outbound(&["http://*:*"], true, &["10.1.2.3"]);
        let started = std::time::Instant::now();
        assert_eq!(
            outcome(&http, "http://10.0.0.1/").await,
            Err("DestinationIpProhibited".into())
        );
        assert_eq!(
            outcome(&http, "http://internal.example/").await,
            Err("DestinationIpProhibited".into())
        );
        assert_eq!(resolver.lookups.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_millis(500));
        // Off by default.
        let (open, _) = outbound(&["http://*:*"], false, &[]);
        assert_eq!(
            open.check
                .policy
                .check("10.0.0.1".parse().unwrap(), 80, false),
            Ok(())
        );
    }
}
