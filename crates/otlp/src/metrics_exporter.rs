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
use crate::exporter::{Transport, encode};
use crate::metrics::{ResourceReadings, export_request};
use crate::sigv4::Signer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use xray::export::ExportCounters;

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
        let answer = self
            .transport
            .post_with_retries(
                body,
                &self.config.endpoint,
                self.config.batch.export_timeout,
                "the metrics",
                &self.counters.retried,
            )
            .await;
        match answer {
            Ok(_) => {
                self.counters.sent.fetch_add(points, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("OTLP metrics reach {} again", self.config.endpoint);
                }
            }
            Err(why) => self.give_up(points, &why),
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
