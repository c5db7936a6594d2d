//! Running one request through a service's component, in a fresh instance, and turning every
//! way that can go wrong into a prompt JSON answer.
//!
//! | what happened                                   | answer |
//! |-------------------------------------------------|--------|
//! | `Content-Length` over the body limit            | 413 before the component runs |
//! | the body streamed past the limit                | 413, whatever the component did |
//! | the service is at its concurrency cap           | 503 at once, with `Retry-After` |
//! | the request outlived its deadline               | 504 (a looping guest is interrupted) |
//! | the component ran out of memory                 | 500 `out_of_memory` |
//! | the component trapped or failed to instantiate  | 500 `component_trapped` / `component_failed` |
//! | it returned without answering                   | 500 `no_response` |
//!
//! The instance runs in its own task, so a response body the component is still writing keeps
//! streaming after the head is sent; the concurrency permit is held until that task ends.
//!
//! Every request is traced: the segment starts here, the host's failures above are recorded on
//! it as a fault with a cause, and it is finished when the response body has been sent.

use crate::error_response::{ResponseBody, json_error};
use crate::request_body::LimitedBody;
use crate::runtime::LoadedComponent;
use crate::service::Service;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;
use wasmtime::Trap;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use xray::active_trace::ActiveTrace;
use xray::recorder::SegmentGuard;
use xray::trace_header::HEADER_NAME;

/// The response header naming the component version (its content hash, shortened) that the
/// service serves.
pub const VERSION_HEADER: &str = "x-component-version";

/// A request body the host can hand to a component: hyper's [`Incoming`](hyper::body::Incoming) in the server.
pub trait RequestBody:
    Body<Data = Bytes, Error = hyper::Error> + Send + Sync + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: Body<Data = Bytes, Error = hyper::Error> + Send + Sync + Unpin + 'static
{
}

/// What the instance's task reports when it ends.
struct Finished {
    result: wasmtime::Result<()>,
    memory_exhausted: bool,
}

/// Serves one request with `service`, answering every failure with a JSON error, and traces it.
///
/// The body is hyper's [`Incoming`](hyper::body::Incoming) when serving; any body with the same
/// item and error types works, so the benchmarks can drive a request without a connection.
/// `peer` is the client's address, the segment's client when no `X-Forwarded-For` names one.
pub async fn invoke<B>(
    service: &Arc<Service>,
    request: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<ResponseBody>
where
    B: RequestBody,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let start = service.tracer.begin(
        service.name(),
        &method,
        request.uri(),
        request.headers(),
        peer,
    );
    let trace = start.trace;
    let trace_id = trace.trace_id();

    // The version current when the request starts serves all of it, even if a swap happens
    // meanwhile; the response and the segment name that version.
    let component = service.component.current();
    let mut response = serve(service, &component, request, &trace).await;

    let status = response.status().as_u16();
    let content_length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    trace.set_response(status, content_length);
    if let Some(echo) = start
        .response_header
        .and_then(|v| HeaderValue::from_str(&v.to_string()).ok())
    {
        response.headers_mut().insert(HEADER_NAME, echo);
    }
    let version = component.content_hash.short().to_string();
    if let Ok(value) = HeaderValue::from_str(&version) {
        response.headers_mut().insert(VERSION_HEADER, value);
    }
    let guard = SegmentGuard {
        trace,
        tracer: service.tracer.clone(),
        name: service.name().to_string(),
        version,
    };
    let response = response.map(|body| {
        GuardedBody {
            inner: body,
            _guard: guard,
        }
        .boxed_unsync()
    });

    tracing::info!(
        service = %service.name(),
        %method,
        path = %path,
        status,
        ms = %format_args!("{:.2}", started.elapsed().as_secs_f64() * 1e3),
        trace_id = %trace_id,
        "request"
    );
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
    component: &LoadedComponent,
    request: Request<B>,
    trace: &ActiveTrace,
) -> Response<ResponseBody> {
    let name = service.name();
    let limits = &service.config.limits;

    if declared_length(&request).is_some_and(|length| length > limits.max_request_body_bytes) {
        return body_too_large(service);
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
        return response;
    };

    let body_too_big = Arc::new(AtomicBool::new(false));
    let request = request
        .map(|body| LimitedBody::new(body, limits.max_request_body_bytes, body_too_big.clone()));

    let mut store = service.new_store(trace.clone());
    let (sender, mut receiver) = oneshot::channel();
    let handles = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .and_then(|req| {
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((req, out))
        });
    let (incoming, outparam) = match handles {
        Ok(handles) => handles,
        Err(error) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("the request cannot be passed to the component: {error:#}"),
                Some(name),
            );
        }
    };

    let pre = component.pre.clone();
    let mut task = AbortOnDrop(Some(tokio::spawn(async move {
        let _permit = permit;
        let result = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
        }
        .await;
        Finished {
            result,
            memory_exhausted: store.data().limiter.memory_exhausted(),
        }
    })));

    let waited = tokio::time::timeout(limits.request_timeout, async {
        tokio::select! {
            biased;
            answer = &mut receiver => match answer {
                Ok(answer) => Outcome::Answered(answer),
                // The store (and the sender in it) is gone: the task has ended.
                Err(_) => Outcome::Ended(task_result(task.handle()).await),
            },
            finished = task.handle() => {
                match receiver.try_recv() {
                    Ok(answer) => Outcome::Answered(answer),
                    Err(_) => Outcome::Ended(finished.map_err(|e| e.to_string())),
                }
            }
        }
    })
    .await;

    let outcome = match waited {
        Ok(outcome) => {
            task.detach();
            outcome
        }
        Err(_elapsed) => {
            drop(task);
            return deadline_exceeded(service, trace);
        }
    };
    let response = match outcome {
        Outcome::Answered(Ok(response)) => response,
        Outcome::Answered(Err(code)) => host_fault(
            trace,
            StatusCode::INTERNAL_SERVER_ERROR,
            "component_error",
            &format!("the component answered with an error instead of a response: {code:?}"),
            service,
        ),
        Outcome::Ended(Ok(finished)) => failure_response(service, &finished, trace),
        Outcome::Ended(Err(panic)) => host_fault(
            trace,
            StatusCode::INTERNAL_SERVER_ERROR,
            "host_error",
            &format!("the host task serving this request failed: {panic}"),
            service,
        ),
    };
    if body_too_big.load(Ordering::SeqCst) {
        return body_too_large(service);
    }
    response
}

enum Outcome {
    Answered(Result<Response<ResponseBody>, ErrorCode>),
    Ended(Result<Finished, String>),
}

async fn task_result(task: &mut tokio::task::JoinHandle<Finished>) -> Result<Finished, String> {
    task.await.map_err(|error| error.to_string())
}

/// The answer when the component ended without responding.
fn failure_response(
    service: &Service,
    finished: &Finished,
    trace: &ActiveTrace,
) -> Response<ResponseBody> {
    let name = service.name();
    let limits = &service.config.limits;
    let error = match &finished.result {
        Ok(()) => {
            return host_fault(
                trace,
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_response",
                "the component returned without sending a response",
                service,
            );
        }
        Err(error) => error,
    };
    let trace_id = trace.trace_id();
    if finished.memory_exhausted {
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
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        tracing::warn!(service = %name, %trace_id, "component interrupted at its deadline");
        return deadline_exceeded(service, trace);
    }
    let (code, what) = match error.downcast_ref::<Trap>() {
        Some(_) => ("component_trapped", "the component trapped"),
        None => ("component_failed", "the component failed"),
    };
    tracing::warn!(service = %name, %trace_id, "{what}: {error:?}");
    host_fault(
        trace,
        StatusCode::INTERNAL_SERVER_ERROR,
        code,
        &format!("{what}: {}", root_cause(error)),
        service,
    )
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

/// Aborts the instance's task if the request is abandoned before it answered (the client went
/// away, or the deadline passed), so a stuck instance never outlives its request. Once the
/// response head is out, the task is detached: it must go on streaming the body.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    fn handle(&mut self) -> &mut tokio::task::JoinHandle<T> {
        self.0
            .as_mut()
            .expect("the task is only detached at the end")
    }

    fn detach(mut self) {
        self.0 = None;
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The response body, holding the segment open until it is sent (or dropped).
struct GuardedBody {
    inner: ResponseBody,
    _guard: SegmentGuard,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
