//! Keeps the centralized rules fresh through the daemon's TCP proxy (xray-spec §3.6, §4.2):
//! `POST /GetSamplingRules` at start and every 300 s (plus up to 5 s of jitter, so a fleet does
//! not poll in step; sooner, with a backoff, until a first fetch works), `POST /SamplingTargets` every 10 s (plus up to 0.1 s), and the rules again
//! whenever the targets say they changed.
//!
//! A daemon that does not answer never affects requests: the sampler keeps what it has (and
//! after an hour without rules the local rules decide). The first failed call is logged at info
//! level with the time of the next try (a sidecar often starts after the host); a warning follows
//! only when the daemon keeps failing ([`WARN_AFTER_FAILURES`] calls in a row), and one line when
//! it answers again.

use super::centralized::{CentralizedSampler, parse_rules_response};
use super::wire::SamplingTargetsRequest;
use super::{Clock, RandomSource};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How often rules are fetched.
pub const RULES_INTERVAL: Duration = Duration::from_secs(300);
/// How often targets are fetched.
pub const TARGETS_INTERVAL: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed calls in a row after which the daemon not answering is a warning rather than news.
pub const WARN_AFTER_FAILURES: u32 = 3;

/// Polls the daemon for one sampler.
pub struct SamplingPoller {
    sampler: Arc<CentralizedSampler>,
    daemon: String,
    client: Client<HttpConnector, Full<Bytes>>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    refetch_rules: Notify,
    failures_in_a_row: AtomicU32,
    spawned: AtomicBool,
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
            failures_in_a_row: AtomicU32::new(0),
            spawned: AtomicBool::new(false),
        })
    }

    /// Starts the two polling loops on the current tokio runtime; a second call does nothing.
    pub fn spawn(self: &Arc<Self>) {
        if self.spawned.swap(true, Ordering::Relaxed) {
            return;
        }
        let rules = self.clone();
        tokio::spawn(async move {
            // Until the first fetch succeeds (the daemon sidecar may start after the host), retry
            // after 1, 2, 4 … seconds, up to the regular interval.
            let mut retry = Duration::from_secs(1);
            loop {
                let fetched = rules.fetch_rules(retry).await;
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

    /// Fetches the rules once; returns whether it worked. `retry_in` is when the caller tries
    /// again if it did not, for the log.
    pub async fn fetch_rules(&self, retry_in: Duration) -> bool {
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
                self.report_down(&error, retry_in);
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
        let body = serde_json::to_string(&SamplingTargetsRequest {
            sampling_statistics_documents: documents,
        })
        .expect("statistics always serialize");
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
            Err(error) => self.report_down(&error, TARGETS_INTERVAL),
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

    fn report_down(&self, error: &anyhow::Error, retry_in: Duration) {
        let failures = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if failures == 1 {
            tracing::info!(
                "the X-Ray daemon at {} does not answer sampling calls ({error:#}); trying again \
                 in {retry_in:?}, sampling with the rules already fetched or the local rules \
                 meanwhile",
                self.daemon
            );
        } else if failures == WARN_AFTER_FAILURES {
            tracing::warn!(
                "the X-Ray daemon at {} has failed {failures} sampling calls in a row \
                 ({error:#}); sampling with the rules already fetched, or the local rules, until \
                 it answers (is the daemon or CloudWatch agent sidecar running, and is \
                 AWS_XRAY_DAEMON_ADDRESS right?)",
                self.daemon
            );
        }
    }

    fn report_up(&self) {
        if self.failures_in_a_row.swap(0, Ordering::Relaxed) >= WARN_AFTER_FAILURES {
            tracing::info!(
                "the X-Ray daemon at {} answers sampling calls again",
                self.daemon
            );
        }
    }
}
