//! Where finished traces go: the seam between the recorder and its outputs.
//!
//! The recorder turns each sampled request into one typed segment ([`Entity`], with its
//! subsegments nested) and hands it to every configured [`TraceExporter`]: the UDP segments for
//! the daemon ([`crate::emitter::Emitter`]) and, beside or instead of them, OTLP (the
//! `otlp-export` crate). An exporter never blocks a request: it queues and sends from its own
//! task, and counts what it could not send in [`ExportCounters`].

use crate::document::Entity;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an exporter's task waits, after it has taken what was queued, before it looks at
/// its queue again. While it waits, segments queued meanwhile wake nobody: under load one wake
/// takes a batch, where a wake per segment (of the task, and for UDP of the daemon's reader on
/// another core) cost more than building the segment (issue 27: traced CPU per request 20 %
/// lower). A segment reaches its destination at most this much later; an idle exporter still
/// takes the first segment at once.
pub const LINGER: Duration = Duration::from_millis(1);

/// What an exporter has done over the process's life, for logs and the admin endpoint.
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Items sent (datagrams for UDP, spans for OTLP).
    pub sent: AtomicU64,
    /// Items dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Items the destination refused or could not be reached for (after any retries).
    pub failed: AtomicU64,
    /// Items queued and not yet sent (or failed).
    pub pending: AtomicU64,
    /// Sends tried again after a retryable answer (OTLP only).
    pub retried: AtomicU64,
}

impl ExportCounters {
    /// The counters as JSON, for the admin endpoint's `GET /stats`.
    pub fn to_json(&self) -> serde_json::Value {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        serde_json::json!({
            "sent": load(&self.sent),
            "dropped": load(&self.dropped),
            "failed": load(&self.failed),
            "pending": self.pending.load(Ordering::SeqCst),
            "retried": load(&self.retried),
        })
    }

    /// Counts `count` items dropped at a full queue, and logs the first drop and then every
    /// power of two (not every drop), naming the exporter and its queue size.
    pub fn count_dropped(&self, count: u64, exporter: &str, capacity: usize) {
        if count == 0 {
            return;
        }
        let before = self.dropped.fetch_add(count, Ordering::Relaxed);
        let after = before + count;
        // A power of two crossed in (before, after]: log once for it.
        if before == 0 || (64 - before.leading_zeros()) != (64 - after.leading_zeros()) {
            tracing::warn!(
                dropped = after,
                "{exporter}: trace data dropped: more than {capacity} items are waiting to be sent"
            );
        }
    }
}

/// A boxed future that [`TraceExporter::flush`] returns: it resolves to whether everything
/// queued was sent (or failed) in time.
pub type FlushFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// One output of finished traces.
pub trait TraceExporter: Send + Sync {
    /// The exporter's name as `OTEL_TRACES_EXPORTER` spells it (`xray`, `otlp`): logs and the
    /// admin endpoint's counters are keyed by it.
    fn name(&self) -> &'static str;

    /// Takes a finished, sampled request's segment (subsegments nested); never blocks and never
    /// fails the request: what cannot be queued is dropped and counted.
    fn export(&self, segment: Entity);

    /// What the exporter has done.
    fn counters(&self) -> &ExportCounters;

    /// Sends what is queued, for at most `timeout`: called at shutdown so that the last
    /// requests' traces are not lost.
    fn flush(&self, timeout: Duration) -> FlushFuture<'_>;
}
