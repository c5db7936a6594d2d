//! Keeps the centralized rules fresh through the daemon's TCP proxy (xray-spec §3.6, §4.2):
//! `POST /GetSamplingRules` at start and every 300 s (plus up to 5 s of jitter, so a fleet does
//! not poll in step; sooner, with a backoff, until a first fetch works), `POST /SamplingTargets` every 10 s (plus up to 0.1 s), and the rules again
//! whenever the targets say they changed.
//!
//! A daemon that does not answer never affects requests: the sampler keeps what it has (and
//! after an hour without rules the local rules decide). One log line is written when the daemon
//! stops answering and one when it answers again.

use super::centralized::{CentralizedSampler, parse_rules_response};
use super::{Clock, RandomSource};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How often rules are fetched.
pub const RULES_INTERVAL: Duration = Duration::from_secs(300);
/// How often targets are fetched.
pub const TARGETS_INTERVAL: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Polls the daemon for one sampler.
pub struct SamplingPoller {
    sampler: Arc<CentralizedSampler>,
    daemon: String,
    client: Client<HttpConnector, Full<Bytes>>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    refetch_rules: Notify,
    daemon_down: AtomicBool,
}

impl SamplingPoller {
    /// A poller asking the daemon at `daemon` (`host:port`, TCP).
    pub fn new(
        sampler: Arc<CentralizedSampler>,
        daemon: String,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
    ) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CALL_TIMEOUT));
        Arc::new(Self {
            sampler,
            daemon,
            client: Client::builder(TokioExecutor::new()).build(connector),
            clock,
            random,
            refetch_rules: Notify::new(),
            daemon_down: AtomicBool::new(false),
        })
    }

    /// Starts the two polling loops on the current tokio runtime.
    pub fn spawn(self: &Arc<Self>) {
        let rules = self.clone();
        tokio::spawn(async move {
            // Until the first fetch succeeds (the daemon sidecar may start after the host), retry
            // after 1, 2, 4 … seconds, up to the regular interval.
            let mut retry = Duration::from_secs(1);
            loop {
                let fetched = rules.fetch_rules().await;
                let wait = if fetched {
                    RULES_INTERVAL + rules.jitter(5.0)
                } else {
                    let wait = retry;
                    retry = (retry * 2).min(RULES_INTERVAL);
                    wait
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = rules.refetch_rules.notified() => {}
                }
            }
        });
        let targets = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TARGETS_INTERVAL + targets.jitter(0.1)).await;
                targets.fetch_targets().await;
            }
        });
    }

    fn jitter(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64(self.random.next_f64() * seconds)
    }

    /// Fetches the rules once; returns whether it worked.
    pub async fn fetch_rules(&self) -> bool {
        let result = match self
            .post("GetSamplingRules", Bytes::from_static(b"{}"))
            .await
        {
            Ok(body) => parse_rules_response(&body),
            Err(error) => Err(error),
        };
        match result {
            Ok(rules) => {
                tracing::debug!(
                    count = rules.len(),
                    "sampling rules fetched from the daemon"
                );
                self.sampler.apply_rules(rules, self.clock.now());
                self.report_up();
                true
            }
            Err(error) => {
                self.report_down(&error);
                false
            }
        }
    }

    /// Reports statistics and applies the targets once.
    pub async fn fetch_targets(&self) {
        let documents = self.sampler.take_statistics(self.clock.now());
        if documents.is_empty() {
            return;
        }
        let body = serde_json::json!({ "SamplingStatisticsDocuments": documents }).to_string();
        let result = match self.post("SamplingTargets", Bytes::from(body)).await {
            Ok(body) => self.sampler.apply_targets(&body, self.clock.now()),
            Err(error) => Err(error),
        };
        match result {
            Ok(rules_changed) => {
                self.report_up();
                if rules_changed {
                    self.refetch_rules.notify_one();
                }
            }
            Err(error) => self.report_down(&error),
        }
    }

    async fn post(&self, path: &str, body: Bytes) -> anyhow::Result<Bytes> {
        let request = http::Request::post(format!("http://{}/{path}", self.daemon))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {CALL_TIMEOUT:?}"))??;
        let status = response.status();
        let body = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| anyhow::anyhow!("the answer did not finish within {CALL_TIMEOUT:?}"))??
            .to_bytes();
        anyhow::ensure!(status.is_success(), "{path} answered HTTP {status}");
        Ok(body)
    }

    fn report_down(&self, error: &anyhow::Error) {
        if !self.daemon_down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the X-Ray daemon at {} does not answer sampling calls ({error:#}); sampling with \
                 the rules already fetched, or the local rules",
                self.daemon
            );
        }
    }

    fn report_up(&self) {
        if self.daemon_down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "the X-Ray daemon at {} answers sampling calls again",
                self.daemon
            );
        }
    }
}
