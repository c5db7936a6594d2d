//! Running one request through a service's component (an instance from its
//! [`instance pool`](crate::instance_pool)), and turning every way that can go wrong into a
//! prompt JSON answer.
//!
//! | what happened                                   | answer |
//! |-------------------------------------------------|--------|
//! | `Content-Length` over the body limit            | 413 before the component runs |
//! | the body streamed past the limit                | 413, whatever the component did |
//! | the service is at its concurrency cap           | 503 at once, with `Retry-After` |
//! | no room in the process's instance memory budget | 503 `memory_budget`, with `Retry-After` |
//! | no Host header, or one not visible ASCII        | 400 before the component runs |
//! | the request outlived its deadline               | 504 (a looping guest is interrupted) |
//! | the component ran out of memory                 | 500 `out_of_memory` |
//! | the component trapped or failed to instantiate  | 500 `component_trapped` / `component_failed` |
//! | it answered with a wasi:http error code         | 500 `component_error` |
//! | it returned without answering                   | 500 `no_response` |
//!
//! With instance reuse, a trap or memory exhaustion fails every request in flight on that
//! instance (each gets its own answer and fault), and the instance is replaced. The instance
//! runs in the handler's task, so a response body the component is still writing keeps
//! streaming after the head is sent; the concurrency permit is held until the body is sent.
//!
//! Every request is traced: the segment starts here, the host's failures above are recorded on
//! it as a fault with a cause, and it is finished when the response body has been sent.

use crate::error_response::{ResponseBody, json_error};
use crate::instance_pool::{InstanceFate, RequestTicket, ServedComponent};
use crate::local_calls::LocalService;
use crate::memory_budget::BudgetExhausted;
use crate::metrics::RouteClass;
use crate::request_body::LimitedBody;
use crate::service::Service;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Trap;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode as P2ErrorCode;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;
use wasmtime_wasi_http::{Error as WasiHttpError, WasiBody};
use xray::active_trace::{ActiveTrace, Responder, SegmentGuard};

/// The response header naming the component version (its content hash, shortened) that the
/// service serves.
pub const VERSION_HEADER: &str = "x-component-version";

/// A request body the host can hand to a component: hyper's [`Incoming`](hyper::body::Incoming)
/// in the server, a caller's outgoing body for an in-process call.
pub trait RequestBody:
    Body<Data = Bytes, Error: Into<WasiHttpError>> + Send + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: Body<Data = Bytes, Error: Into<WasiHttpError>> + Send + Unpin + 'static
{
}

impl LocalService for Service {
    fn local_name(&self) -> &str {
        self.name()
    }

    fn call(
        self: Arc<Self>,
        request: Request<WasiBody>,
    ) -> Pin<Box<dyn Future<Output = Response<WasiBody>> + Send>> {
        Box::pin(async move { invoke(&self, request, None).await })
    }
}

/// Serves one request with `service`, answering every failure with a JSON error, and traces it.
///
/// The body is hyper's [`Incoming`](hyper::body::Incoming) when serving; any body with the same
/// item and error types works, so the benchmarks can drive a request without a connection.
/// `peer` is the client's address, the segment's client unless `X-Forwarded-For` names one
/// behind the service's trusted proxies.
pub async fn invoke<B>(
    service: &Arc<Service>,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody>
where
    B: RequestBody,
{
    let started = Instant::now();
    // Only what the access log needs is kept past the request (it is off by default: at
    // thousands of requests a second, formatting and writing a line per request costs more
    // than tracing it).
    let logged = service
        .config
        .access_log
        .then(|| (request.method().clone(), request.uri().path().to_string()));
    // hyper sends no body in answer to HEAD: not sending it is not cutting it.
    let head_only = request.method() == http::Method::HEAD;
    let route = RouteClass::of(request.uri().path());
    let trace = service.tracer.begin(
        service.name(),
        request.method(),
        request.uri(),
        request.headers(),
        peer,
        service.config.incoming,
    );

    // The version current when the request starts serves all of it, even if a swap happens
    // meanwhile; the response and the segment name that version.
    let component = service.component.current();
    let (mut response, permit) = serve(service, &component, request, &trace).await;

    let status = response.status().as_u16();
    component.metrics.record(route, status, started.elapsed());
    response
        .headers_mut()
        .insert(VERSION_HEADER, component.version_header.clone());
    let logged = logged.map(|(method, path)| (method, path, trace.trace_id()));
    let guard = trace.respond(
        &mut response,
        Responder {
            service: service.name(),
            // The whole SHA-256: a trace names exactly the bytes that answered.
            version: component.content_hash.as_str(),
            s3_version_id: component.s3_version_id.clone(),
        },
    );
    let response = response.map(|body| {
        GuardedBody {
            inner: body,
            finished: head_only,
            guard,
            _permit: permit,
        }
        .boxed_unsync()
    });

    if let Some((method, path, trace_id)) = logged {
        tracing::info!(
            service = %service.name(),
            %method,
            path = %path,
            status,
            ms = %format_args!("{:.2}", started.elapsed().as_secs_f64() * 1e3),
            %trace_id,
            "request"
        );
    }
    response
}

/// A host error answer that is also recorded as the segment's fault.
fn host_fault(
    trace: &ActiveTrace,
    status: StatusCode,
    code: &str,
    message: &str,
    service: &Service,
) -> Response<ResponseBody> {
    trace.record_fault(code, message);
    json_error(status, code, message, Some(service.name()))
}

async fn serve<B: RequestBody>(
    service: &Arc<Service>,
    component: &ServedComponent,
    request: Request<B>,
    trace: &ActiveTrace,
) -> (Response<ResponseBody>, Option<OwnedSemaphorePermit>) {
    let name = service.name();
    let limits = &service.config.limits;

    if declared_length(&request).is_some_and(|length| length > limits.max_request_body_bytes) {
        return (body_too_large(service), None);
    }
    // wasi:http 0.2 gives a component the request's authority as text; without one (an
    // HTTP/1.0 request with no Host) or with a Host that is not visible ASCII, wasmtime cannot
    // make the request, and that failure would take down the instance and every request on it.
    let has_authority = request.uri().authority().is_some()
        || request
            .headers()
            .get(header::HOST)
            .is_some_and(|host| host.to_str().is_ok());
    if !has_authority {
        let response = json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request has no usable Host header (none, or not visible ASCII)",
            Some(name),
        );
        return (response, None);
    }
    let Ok(permit) = service.permits.clone().try_acquire_owned() else {
        let mut response = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_requests",
            &format!(
                "the service is already serving {} requests (--max-concurrent-requests); retry shortly",
                limits.max_concurrent_requests
            ),
            Some(name),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return (response, None);
    };

    let body_too_big = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        LimitedBody::new(body, limits.max_request_body_bytes, body_too_big.clone()).boxed_unsync()
    });
    let served_by = Arc::new(OnceLock::new());
    let ticket = RequestTicket {
        trace: trace.clone(),
        served_by: served_by.clone(),
    };
    // The instance handler gives the request its deadline once an instance accepts it; this
    // bound also covers the wait for an instance and its instantiation.
    let answer = tokio::time::timeout(
        limits.request_timeout,
        component.instances.handle(ticket, request),
    )
    .await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Err(_elapsed) => deadline_exceeded(service, trace),
        Ok(Err(error)) => failure_response(service, &error, served_by.get(), trace).await,
    };
    if body_too_big.load(Ordering::SeqCst) {
        return (body_too_large(service), Some(permit));
    }
    (response, Some(permit))
}

/// The message wasmtime's handler fails a WASI 0.2 request with when the component returned
/// without setting its response.
const NO_RESPONSE: &str = "guest never invoked `response-outparam::set` method";

/// The answer when the instance handler reports a failure instead of a response; `instance` is
/// what became of the instance that served the request, if one accepted it.
async fn failure_response(
    service: &Service,
    error: &wasmtime::Error,
    instance: Option<&Arc<InstanceFate>>,
    trace: &ActiveTrace,
) -> Response<ResponseBody> {
    let name = service.name();
    let limits = &service.config.limits;
    let trace_id = trace.trace_id();
    if error.is::<ExpirationError>() {
        tracing::warn!(service = %name, %trace_id, "the request passed its deadline");
        return deadline_exceeded(service, trace);
    }
    if let Some(failed) = error.downcast_ref::<InstantiationError<RequestTicket>>() {
        if let Some(exhausted) = failed.error.downcast_ref::<BudgetExhausted>() {
            return memory_budget_exhausted(service, trace, exhausted);
        }
        tracing::warn!(service = %name, %trace_id, "the component failed to instantiate: {:?}", failed.error);
        return host_fault(
            trace,
            StatusCode::INTERNAL_SERVER_ERROR,
            "component_failed",
            &format!(
                "the component failed to instantiate: {}",
                root_cause(&failed.error)
            ),
            service,
        );
    }
    if let Some(code) = error_code(error) {
        return host_fault(
            trace,
            StatusCode::INTERNAL_SERVER_ERROR,
            "component_error",
            &format!("the component answered with an error instead of a response: {code}"),
            service,
        );
    }
    // Every other failure leaves the instance unusable (a trap poisons it): no further request
    // may be given to it.
    if let Some(fate) = instance {
        fate.retire();
    }
    if instance.is_some_and(|fate| fate.budget_exhausted.load(Ordering::Relaxed)) {
        let limit = service.stores.budget().limit().unwrap_or(usize::MAX);
        return memory_budget_exhausted(service, trace, &BudgetExhausted { limit });
    }
    if instance.is_some_and(|fate| fate.memory_exhausted.load(Ordering::Relaxed)) {
        tracing::warn!(service = %name, %trace_id, "component ran out of memory: {error:#}");
        return host_fault(
            trace,
            StatusCode::INTERNAL_SERVER_ERROR,
            "out_of_memory",
            &format!(
                "the component needed more than its memory limit of {} MiB (--max-memory-mib)",
                limits.max_memory_bytes / (1024 * 1024)
            ),
            service,
        );
    }
    // An instance that fails takes every request in flight on it, and those requests learn it
    // (as "trapped or panicked", or, for WASI 0.2, as "no response") a moment before the
    // handler reports why.
    let handler_says_no_response = error.to_string() == NO_RESPONSE && error.chain().count() == 1;
    let cause = match (error.downcast_ref::<Trap>(), instance) {
        (Some(trap), _) => Some(trap.to_string()),
        (None, Some(fate)) if error.is::<TrapOrPanicError>() || handler_says_no_response => {
            fate.failure(INSTANCE_FAILURE_WAIT).await
        }
        _ => None,
    };
    if cause.as_deref() == Some(&Trap::Interrupt.to_string()) {
        tracing::warn!(service = %name, %trace_id, "component interrupted at its deadline");
        return deadline_exceeded(service, trace);
    }
    if cause.is_none() && handler_says_no_response {
        return host_fault(
            trace,
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_response",
            "the component returned without sending a response",
            service,
        );
    }
    let (code, what) = match (&cause, error.is::<TrapOrPanicError>()) {
        (Some(_), _) | (None, true) => ("component_trapped", "the component trapped"),
        (None, false) => ("component_failed", "the component failed"),
    };
    tracing::warn!(service = %name, %trace_id, "{what}: {error:?}");
    let detail = cause.unwrap_or_else(|| root_cause(error));
    host_fault(
        trace,
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        &format!("{what}: {detail}"),
        service,
    )
}

/// The answer when the process's memory budget has no room for the request's instance: 503 with
/// `Retry-After`, recorded as the segment's fault (the host's, not the component's).
fn memory_budget_exhausted(
    service: &Service,
    trace: &ActiveTrace,
    exhausted: &BudgetExhausted,
) -> Response<ResponseBody> {
    tracing::warn!(service = %service.name(), trace_id = %trace.trace_id(), "{exhausted}");
    let mut response = host_fault(
        trace,
        StatusCode::SERVICE_UNAVAILABLE,
        "memory_budget",
        &exhausted.to_string(),
        service,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// How long a request whose instance failed waits to learn why.
const INSTANCE_FAILURE_WAIT: Duration = Duration::from_millis(200);

/// The wasi:http error code a component answered with, of either ABI.
fn error_code(error: &wasmtime::Error) -> Option<String> {
    if let Some(code) = error.downcast_ref::<P2ErrorCode>() {
        return Some(format!("{code:?}"));
    }
    error
        .downcast_ref::<P3ErrorCode>()
        .map(|code| format!("{code:?}"))
}

fn root_cause(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    }
}

fn deadline_exceeded(service: &Service, trace: &ActiveTrace) -> Response<ResponseBody> {
    host_fault(
        trace,
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
        &format!(
            "the component did not finish within {:?} (--request-timeout)",
            service.config.limits.request_timeout
        ),
        service,
    )
}

fn body_too_large(service: &Service) -> Response<ResponseBody> {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &format!(
            "the request body is larger than {} bytes (--max-body-bytes)",
            service.config.limits.max_request_body_bytes
        ),
        Some(service.name()),
    )
}

fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The response body, holding the segment open and the request's place under the service's
/// concurrency cap until it is sent (or dropped: a body dropped before its end is noted on the
/// segment as incomplete).
struct GuardedBody {
    inner: ResponseBody,
    /// Whether the body was sent to its end.
    finished: bool,
    guard: SegmentGuard,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        if !self.finished && !self.inner.is_end_stream() {
            self.guard.note_response_incomplete();
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = poll {
            self.finished = true;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
