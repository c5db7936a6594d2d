//! The OTLP metrics exporter: at each interval, and once more when the host stops, it reads
//! the host's metrics (through the closure the binary gives) and posts them to the metrics
//! endpoint, with the trace exporter's transport: the same headers, compression, SigV4, and
//! retries of 429, 502, 503, 504 and unreachable endpoints with backoff until
//! `OTEL_BSP_EXPORT_TIMEOUT`.
//!
//! Sums and histograms are cumulative ([`crate::metrics`]), so an export that fails is not
//! queued again: the next one carries the totals. What it sent, and what failed, is counted
//! in data points ([`ExportCounters`]).

use crate::config::OtlpConfig;
use crate::exporter::{Transport, encode, is_retryable, jittered};
use crate::metrics::{ResourceReadings, export_request};
use crate::sigv4::Signer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use xray::export::ExportCounters;

/// The longest wait between two tries of one export.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Reads the host's metrics now.
pub type Collect = Arc<dyn Fn() -> Vec<ResourceReadings> + Send + Sync>;

/// The running exporter.
pub struct OtlpMetricsExporter {
    sender: Arc<Sender>,
    task: JoinHandle<()>,
}

struct Sender {
    config: OtlpConfig,
    transport: Transport,
    collect: Collect,
    counters: Arc<ExportCounters>,
    failing: AtomicBool,
    /// One export at a time: the interval's and the last one do not overlap.
    busy: tokio::sync::Mutex<()>,
}

impl OtlpMetricsExporter {
    /// Starts exporting what `collect` reads every `interval` to `config`'s endpoint (signed
    /// with SigV4 when `config.sigv4`: the region and credentials are resolved first, so a
    /// missing region stops the host at start-up).
    pub async fn start(
        config: OtlpConfig,
        interval: Duration,
        collect: Collect,
    ) -> anyhow::Result<Self> {
        let signer = match config.sigv4 {
            true => Some(Signer::for_endpoint(&config.endpoint).await?),
            false => None,
        };
        let transport = Transport::new(&config, signer)?;
        tracing::info!(
            endpoint = %config.endpoint,
            protocol = ?config.protocol,
            interval = ?interval,
            "metrics are exported as OTLP"
        );
        let sender = Arc::new(Sender {
            config,
            transport,
            collect,
            counters: Arc::new(ExportCounters::default()),
            failing: AtomicBool::new(false),
            busy: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn({
            let sender = sender.clone();
            async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    sender.export().await;
                }
            }
        });
        Ok(Self { sender, task })
    }

    /// Data points sent, failed (dropped stays zero: nothing is queued).
    pub fn counters(&self) -> Arc<ExportCounters> {
        self.sender.counters.clone()
    }

    /// Stops the interval and exports once more, for at most `timeout`: the totals of a host
    /// that is shutting down.
    pub async fn finish(self, timeout: Duration) {
        self.task.abort();
        if tokio::time::timeout(timeout, self.sender.export())
            .await
            .is_err()
        {
            tracing::warn!(
                "the last OTLP metrics export did not finish within {timeout:?}; the metrics \
                 since the previous export are not sent"
            );
        }
    }
}

impl Sender {
    async fn export(&self) {
        let _one_at_a_time = self.busy.lock().await;
        let readings = (self.collect)();
        let points: u64 = readings
            .iter()
            .flat_map(|r| &r.metrics)
            .map(|m| m.points.len() as u64)
            .sum();
        if points == 0 {
            return;
        }
        let request = export_request(
            readings,
            self.config.service_name.as_deref(),
            &self.config.resource_attributes,
        );
        let body = match encode(&request, self.config.protocol, self.config.gzip) {
            Ok(body) => body,
            Err(error) => {
                self.counters.failed.fetch_add(points, Ordering::Relaxed);
                tracing::error!("OTLP metrics could not be encoded ({error:#})");
                return;
            }
        };
        let give_up_at = Instant::now() + self.config.batch.export_timeout;
        let mut backoff = Duration::from_secs(1);
        loop {
            let (wait, last_failure) = match self.transport.post(body.clone()).await {
                Ok(answer) if answer.status.is_success() => {
                    self.counters.sent.fetch_add(points, Ordering::Relaxed);
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("OTLP metrics reach {} again", self.config.endpoint);
                    }
                    return;
                }
                Ok(answer) if is_retryable(answer.status) => (
                    answer.retry_after.unwrap_or_else(|| jittered(backoff)),
                    format!("it answered {}", answer.status),
                ),
                Ok(answer) => {
                    self.give_up(points, &answer.refusal(&self.config.endpoint));
                    return;
                }
                Err(error) => (jittered(backoff), format!("{error:#}")),
            };
            if Instant::now() + wait > give_up_at {
                self.give_up(
                    points,
                    &format!(
                        "the OTLP endpoint {} did not take the metrics within \
                         OTEL_BSP_EXPORT_TIMEOUT ({:?}) of retries (the last try: {last_failure})",
                        self.config.endpoint, self.config.batch.export_timeout
                    ),
                );
                return;
            }
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn give_up(&self, points: u64, why: &str) {
        self.counters.failed.fetch_add(points, Ordering::Relaxed);
        // One line when exports start failing, not one per interval.
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{why}; these metrics are not sent, and the next exports carry the totals \
                 (counted as failed on the admin endpoint); requests are served"
            );
        }
    }
}
