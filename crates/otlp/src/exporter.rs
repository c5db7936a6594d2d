//! The `otlp` exporter: finished segments become spans, batched off the request path and posted
//! to the OTLP/HTTP endpoint.
//!
//! - A request only queues its segment ([`TraceExporter::export`]): the mapping to spans, the
//!   encoding and the network happen on the exporter's own task.
//! - The queue is bounded in spans (`OTEL_BSP_MAX_QUEUE_SIZE`); what does not fit is dropped and
//!   counted, as the UDP emitter does.
//! - A batch goes out when it holds `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans or its oldest span
//!   has waited `OTEL_BSP_SCHEDULE_DELAY`.
//! - 429, 502, 503 and 504 answers and connection failures are retried with exponential backoff
//!   (1 s, 2 s, 4 s… with jitter), honouring `Retry-After`, until `OTEL_BSP_EXPORT_TIMEOUT`;
//!   then the batch is counted as failed. Any other refusal fails the batch at once, with one
//!   log line that says why (a 401 or 403 names the credentials and region it was signed with).
//! - [`TraceExporter::flush`] sends everything queued at once: called at shutdown.

use crate::config::{OtlpConfig, Protocol};
use crate::sigv4::{SignedWith, Signer};
use crate::spans::{ResourceInfo, ServiceSpans, group_by_resource, segment_spans};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use xray::document::Entity;
use xray::export::{ExportCounters, FlushFuture, LINGER, TraceExporter};

/// The longest wait between two tries of one batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The handle the recorder holds.
pub struct OtlpExporter {
    queue: mpsc::UnboundedSender<Entity>,
    counters: Arc<ExportCounters>,
    flush_now: Arc<Notify>,
    max_queue_size: usize,
}

impl OtlpExporter {
    /// Starts the exporter's task on the current tokio runtime. With SigV4 on, the credential
    /// chain and region are resolved first: a missing region stops the host at start-up with a
    /// message, rather than failing every export later.
    pub async fn start(config: OtlpConfig) -> anyhow::Result<Self> {
        let signer = match config.sigv4 {
            true => Some(Signer::for_endpoint(&config.endpoint).await?),
            false => None,
        };
        let transport = Transport::new(&config, signer)?;
        tracing::info!(
            endpoint = %config.endpoint,
            protocol = ?config.protocol,
            gzip = config.gzip,
            sigv4 = transport.signer.as_ref().map(|s| s.region().to_string()),
            "traces are exported as OTLP spans"
        );
        let (queue, segments) = mpsc::unbounded_channel();
        let counters = Arc::new(ExportCounters::default());
        let flush_now = Arc::new(Notify::new());
        let worker = Worker {
            config: config.clone(),
            transport,
            counters: counters.clone(),
            flush_now: flush_now.clone(),
            resource: ResourceInfo {
                service_name: config.service_name.clone(),
                attributes: config.resource_attributes.clone(),
            },
            failing: AtomicBool::new(false),
        };
        tokio::spawn(worker.run(segments));
        Ok(Self {
            queue,
            counters,
            flush_now,
            max_queue_size: config.batch.max_queue_size,
        })
    }
}

impl TraceExporter for OtlpExporter {
    fn name(&self) -> &'static str {
        "otlp"
    }

    fn export(&self, segment: Entity) {
        let spans = 1 + span_count(&segment) as u64;
        let pending = self.counters.pending.fetch_add(spans, Ordering::SeqCst) + spans;
        if pending > self.max_queue_size as u64 || self.queue.send(segment).is_err() {
            self.counters.pending.fetch_sub(spans, Ordering::SeqCst);
            self.counters
                .count_dropped(spans, "OTLP spans", self.max_queue_size);
        }
    }

    fn counters(&self) -> &ExportCounters {
        &self.counters
    }

    fn flush(&self, timeout: Duration) -> FlushFuture<'_> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            self.flush_now.notify_one();
            while self.counters.pending.load(Ordering::SeqCst) > 0 {
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            true
        })
    }
}

fn span_count(entity: &Entity) -> usize {
    entity.subsegments.iter().map(|s| 1 + span_count(s)).sum()
}

struct Worker {
    config: OtlpConfig,
    transport: Transport,
    counters: Arc<ExportCounters>,
    flush_now: Arc<Notify>,
    resource: ResourceInfo,
    failing: AtomicBool,
}

impl Worker {
    async fn run(self, mut segments: mpsc::UnboundedReceiver<Entity>) {
        let batch_size = self.config.batch.max_export_batch_size;
        let mut batch: Vec<ServiceSpans> = Vec::new();
        let mut spans_in_batch = 0usize;
        let mut oldest: Option<Instant> = None;
        loop {
            let due = oldest.map(|at| at + self.config.batch.schedule_delay);
            let mut flushing = false;
            let mut first = None;
            tokio::select! {
                received = segments.recv() => match received {
                    Some(segment) => first = Some(segment),
                    None => flushing = true,
                },
                _ = sleep_until(due) => {}
                _ = self.flush_now.notified() => flushing = true,
            }
            // With everything queued meanwhile, without waiting again: under load one wake
            // takes many segments.
            let queued = std::iter::from_fn(|| segments.try_recv().ok());
            for segment in first.into_iter().chain(queued) {
                let mapped = segment_spans(&segment, &self.resource);
                spans_in_batch += mapped.spans.len();
                batch.push(mapped);
                oldest.get_or_insert_with(Instant::now);
            }
            let ripe = spans_in_batch >= batch_size
                || due.is_some_and(|due| Instant::now() >= due)
                || flushing;
            if ripe && !batch.is_empty() {
                for part in split_batch(std::mem::take(&mut batch), batch_size) {
                    let count = part.iter().map(|s| s.spans.len()).sum::<usize>() as u64;
                    self.send(part, count).await;
                    self.counters.pending.fetch_sub(count, Ordering::SeqCst);
                }
                spans_in_batch = 0;
                oldest = None;
            }
            if segments.is_closed() && segments.is_empty() && batch.is_empty() {
                return;
            }
            // Segments queued while this task waits wake nobody (a flush request is kept by
            // `flush_now` and seen next turn).
            if !flushing {
                tokio::time::sleep(LINGER).await;
            }
        }
    }

    /// Sends one batch, retrying what may succeed later, and counts the outcome.
    async fn send(&self, batch: Vec<ServiceSpans>, count: u64) {
        let request = ExportTraceServiceRequest {
            resource_spans: group_by_resource(batch),
        };
        let body = match encode(&request, self.config.protocol, self.config.gzip) {
            Ok(body) => body,
            Err(error) => {
                self.counters.failed.fetch_add(count, Ordering::Relaxed);
                tracing::error!("OTLP spans could not be encoded ({error:#}); {count} dropped");
                return;
            }
        };
        let answer = self
            .transport
            .post_with_retries(
                body,
                &self.config.endpoint,
                self.config.batch.export_timeout,
                "the batch",
                &self.counters.retried,
            )
            .await;
        match answer {
            Ok(answer) => {
                let rejected = answer.rejected_spans(self.config.protocol);
                self.counters
                    .sent
                    .fetch_add(count.saturating_sub(rejected.0), Ordering::Relaxed);
                if rejected.0 > 0 {
                    self.counters
                        .failed
                        .fetch_add(rejected.0, Ordering::Relaxed);
                    tracing::warn!(
                        "the OTLP endpoint {} took the batch but rejected {} of its {count} \
                         spans: {}",
                        self.config.endpoint,
                        rejected.0,
                        rejected.1
                    );
                }
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("OTLP spans reach {} again", self.config.endpoint);
                }
            }
            Err(why) => self.give_up(count, &why),
        }
    }

    fn give_up(&self, count: u64, why: &str) {
        self.counters.failed.fetch_add(count, Ordering::Relaxed);
        // One line when exports start failing, not one per batch.
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{why}; {count} spans dropped, and later batches are dropped the same way \
                 (counted on the admin endpoint) until it takes them; requests are served"
            );
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

/// Splits a batch into parts of at most `size` spans (a segment's spans stay together).
fn split_batch(batch: Vec<ServiceSpans>, size: usize) -> Vec<Vec<ServiceSpans>> {
    let mut parts = Vec::new();
    let mut part = Vec::new();
    let mut spans = 0;
    for segment in batch {
        if spans > 0 && spans + segment.spans.len() > size {
            parts.push(std::mem::take(&mut part));
            spans = 0;
        }
        spans += segment.spans.len();
        part.push(segment);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

pub(crate) fn is_retryable(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// `backoff` less up to a fifth, so many hosts refused together do not retry together. Jitter
/// needs no cryptographic randomness: the clock's sub-second digits will do.
pub(crate) fn jittered(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    backoff.mul_f64(1.0 - f64::from(nanos % 1000) / 1000.0 * 0.2)
}

/// The request body: protobuf or OTLP/JSON, gzip-compressed when configured.
pub fn encode<M: Message + serde::Serialize>(
    request: &M,
    protocol: Protocol,
    gzip: bool,
) -> anyhow::Result<Bytes> {
    let raw = match protocol {
        Protocol::Protobuf => request.encode_to_vec(),
        Protocol::Json => serde_json::to_vec(request).context("OTLP/JSON")?,
    };
    if !gzip {
        return Ok(raw.into());
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&raw)?;
    Ok(encoder.finish()?.into())
}

/// Posts bodies to the endpoint: one HTTP/1.1 client (TLS for `https`), the configured headers,
/// and the signature when SigV4 is on.
pub(crate) struct Transport {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: http::Uri,
    headers: http::HeaderMap,
    timeout: Duration,
    signer: Option<Signer>,
}

/// What the endpoint answered.
pub(crate) struct Answer {
    pub(crate) status: http::StatusCode,
    pub(crate) retry_after: Option<Duration>,
    body: Bytes,
    signed_with: Option<SignedWith>,
}

impl Transport {
    pub(crate) fn new(config: &OtlpConfig, signer: Option<Signer>) -> anyhow::Result<Self> {
        let endpoint: http::Uri = config.endpoint.parse().context("the OTLP endpoint")?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).with_context(|| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: {name:?} is not a header name")
            })?;
            let value = http::HeaderValue::from_str(value).with_context(|| {
                format!("OTEL_EXPORTER_OTLP_HEADERS: the value of {name} is not a header value")
            })?;
            headers.append(name, value);
        }
        let content_type = match config.protocol {
            Protocol::Protobuf => "application/x-protobuf",
            Protocol::Json => "application/json",
        };
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        if config.gzip {
            headers.insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }
        if let Some(authority) = endpoint.authority() {
            headers.insert(
                http::header::HOST,
                http::HeaderValue::from_str(authority.as_str()).context("the endpoint's host")?,
            );
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS for the OTLP endpoint")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            endpoint,
            headers,
            timeout: config.timeout,
            signer,
        })
    }

    /// Posts `body` until the endpoint takes it (a 2xx answer, returned), retrying what may
    /// pass (a retryable status, honouring its `Retry-After`; no answer; no credentials yet)
    /// with a jittered exponential backoff and counting each retry in `retried`, for at most
    /// `export_timeout`. Otherwise, why it gave up: a refusal, or `what` (the batch, the
    /// metrics) not taken in time; `endpoint` is the endpoint as configured, for those
    /// messages.
    pub(crate) async fn post_with_retries(
        &self,
        body: Bytes,
        endpoint: &str,
        export_timeout: Duration,
        what: &str,
        retried: &AtomicU64,
    ) -> Result<Answer, String> {
        let give_up_at = Instant::now() + export_timeout;
        let mut backoff = Duration::from_secs(1);
        loop {
            let (wait, last_failure) = match self.post(body.clone()).await {
                Ok(answer) if answer.status.is_success() => return Ok(answer),
                Ok(answer) if is_retryable(answer.status) => (
                    answer.retry_after.unwrap_or_else(|| jittered(backoff)),
                    format!("it answered {}", answer.status),
                ),
                Ok(answer) => return Err(answer.refusal(endpoint)),
                // Unreachable, no answer in time, or no credentials to sign with: all may
                // pass, so they are retried like a 503.
                Err(error) => (jittered(backoff), format!("{error:#}")),
            };
            if Instant::now() + wait > give_up_at {
                return Err(format!(
                    "the OTLP endpoint {endpoint} did not take {what} within OTEL_BSP_EXPORT_TIMEOUT \
                     ({export_timeout:?}) of retries (the last try: {last_failure})"
                ));
            }
            retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    pub(crate) async fn post(&self, body: Bytes) -> anyhow::Result<Answer> {
        let mut request = http::Request::post(self.endpoint.clone())
            .body(Full::new(body.clone()))
            .context("the export request")?;
        *request.headers_mut() = self.headers.clone();
        let signed_with = match &self.signer {
            Some(signer) => Some(signer.sign(&mut request, &body).await?),
            None => None,
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // An answer's body is small (a partial success, an error message); a larger one is
            // cut rather than read whole.
            let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            anyhow::Ok(Answer {
                status,
                retry_after,
                body,
                signed_with,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .with_context(|| format!("no answer within {:?}", self.timeout))?
    }
}

impl Answer {
    /// The spans a 2xx answer's `partial_success` says were rejected, and its message.
    fn rejected_spans(&self, protocol: Protocol) -> (u64, String) {
        let response = match protocol {
            Protocol::Protobuf => ExportTraceServiceResponse::decode(self.body.as_ref()).ok(),
            Protocol::Json => serde_json::from_slice(&self.body).ok(),
        };
        response
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans.max(0) as u64, p.error_message))
            .unwrap_or_default()
    }

    /// Why the endpoint refused, for the log: the status, the start of its message, and for
    /// 401 and 403 what the request was signed with (never the secret).
    pub(crate) fn refusal(&self, endpoint: &str) -> String {
        let message: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect();
        let mut text = format!(
            "the OTLP endpoint {endpoint} refused the batch with {}: {}",
            self.status,
            message.trim()
        );
        if matches!(self.status.as_u16(), 401 | 403) {
            match &self.signed_with {
                Some(with) => text.push_str(&format!(
                    " (signed with SigV4 for service xray in region {} with access key {} from \
                     {}: check that this identity may write spans, xray:PutSpans, and that \
                     Transaction Search is enabled in that region)",
                    with.region, with.access_key_id, with.source
                )),
                None => text.push_str(
                    " (the request was not signed: for X-Ray's endpoint set \
                     XRAY_HOST_OTLP_SIGV4=true; for a collector, check \
                     OTEL_EXPORTER_OTLP_HEADERS)",
                ),
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BatchConfig;
    use std::sync::Mutex;
    use tokio::net::TcpListener;

    /// A receiver that answers each request with the next status (then 200) and keeps bodies.
    async fn receiver(
        statuses: Vec<(u16, Option<&'static str>)>,
    ) -> (String, Arc<Mutex<Vec<Bytes>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(statuses));
        let kept = bodies.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let bodies = kept.clone();
                let statuses = statuses.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let bodies = bodies.clone();
                            let statuses = statuses.clone();
                            async move {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                bodies.lock().unwrap().push(body);
                                let (status, retry_after) = {
                                    let mut statuses = statuses.lock().unwrap();
                                    if statuses.is_empty() {
                                        (200, None)
                                    } else {
                                        statuses.remove(0)
                                    }
                                };
                                let mut response = http::Response::builder().status(status);
                                if let Some(after) = retry_after {
                                    response = response.header("retry-after", after);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    response.body(Full::new(Bytes::new())).unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{address}/v1/traces"), bodies)
    }

    fn config(endpoint: String) -> OtlpConfig {
        OtlpConfig {
            endpoint,
            headers: vec![],
            protocol: Protocol::Protobuf,
            gzip: false,
            timeout: Duration::from_secs(5),
            service_name: None,
            resource_attributes: vec![],
            sigv4: false,
            batch: BatchConfig {
                schedule_delay: Duration::from_millis(20),
                export_timeout: Duration::from_secs(5),
                ..BatchConfig::default()
            },
        }
    }

    fn segment() -> Entity {
        let mut segment = Entity::new("svc".into(), xray::ids::SegmentId::new(), 1.0, 2.0);
        segment.trace_id = Some(xray::ids::TraceId::new());
        segment
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_retryable_refusal_is_retried_after_its_retry_after() {
        let (endpoint, bodies) = receiver(vec![(503, Some("1")), (429, None)]).await;
        let exporter = OtlpExporter::start(config(endpoint)).await.unwrap();
        exporter.export(segment());
        assert!(exporter.flush(Duration::from_secs(10)).await);
        let counters = exporter.counters();
        assert_eq!(counters.sent.load(Ordering::Relaxed), 1);
        assert_eq!(counters.retried.load(Ordering::Relaxed), 2);
        assert_eq!(bodies.lock().unwrap().len(), 3);
        let decoded =
            ExportTraceServiceRequest::decode(bodies.lock().unwrap()[2].as_ref()).unwrap();
        assert_eq!(decoded.resource_spans[0].scope_spans[0].spans.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refusal_is_counted_and_a_full_queue_drops_without_blocking() {
        let (endpoint, _) = receiver(vec![(403, None)]).await;
        let mut config = config(endpoint);
        config.batch.max_queue_size = 4;
        config.batch.max_export_batch_size = 4;
        let exporter = OtlpExporter::start(config).await.unwrap();
        let started = Instant::now();
        for _ in 0..10 {
            exporter.export(segment());
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(exporter.flush(Duration::from_secs(10)).await);
        let counters = exporter.counters();
        let (sent, failed, dropped) = (
            counters.sent.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
            counters.dropped.load(Ordering::Relaxed),
        );
        assert_eq!(sent + failed + dropped, 10, "{sent} {failed} {dropped}");
        assert!(failed >= 1 && dropped >= 1, "{sent} {failed} {dropped}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_endpoint_is_retried_until_the_export_timeout_then_counted() {
        // A port nothing listens on: every try is refused at connect.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = config(format!("http://127.0.0.1:{port}/v1/traces"));
        config.batch.export_timeout = Duration::from_millis(1500);
        let exporter = OtlpExporter::start(config).await.unwrap();
        exporter.export(segment());
        assert!(exporter.flush(Duration::from_secs(10)).await);
        let counters = exporter.counters();
        assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
        assert_eq!(counters.sent.load(Ordering::Relaxed), 0);
        assert!(counters.retried.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn batches_split_at_the_size_and_keep_a_segments_spans_together() {
        let one = |n: usize| ServiceSpans {
            resource: Default::default(),
            spans: vec![Default::default(); n],
        };
        let parts = split_batch(vec![one(3), one(3), one(1), one(5)], 4);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| p.iter().map(|s| s.spans.len()).sum())
            .collect();
        assert_eq!(sizes, vec![3, 4, 5]);
    }

    #[test]
    fn gzip_and_json_bodies_decode() {
        let request = ExportTraceServiceRequest {
            resource_spans: group_by_resource(vec![segment_spans(
                &segment(),
                &ResourceInfo::default(),
            )]),
        };
        let zipped = encode(&request, Protocol::Protobuf, true).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(zipped.as_ref()), &mut raw)
            .unwrap();
        assert_eq!(
            ExportTraceServiceRequest::decode(raw.as_slice()).unwrap(),
            request
        );
        let json = encode(&request, Protocol::Json, false).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        // OTLP/JSON: camelCase keys, ids as hex.
        assert!(text.contains("\"resourceSpans\""), "{text}");
        let trace_hex: String = request.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            text.contains(&format!("\"traceId\":\"{trace_hex}\"")),
            "{text}"
        );
    }
}
