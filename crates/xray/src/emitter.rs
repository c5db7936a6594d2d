//! Sends segment documents to the X-Ray daemon over UDP (xray-spec §3.1): one document per
//! datagram, after the header line `{"format":"json","version":1}`.
//!
//! A request never waits for the daemon, nor for its segment's JSON: the finished segment goes
//! into a bounded queue as it is, and one task drains it: it takes every segment waiting (up to
//! [`MAX_BATCH`]), writes their documents into datagram buffers it keeps from batch to batch,
//! and sends them together ([`crate::udp_batch`]: one `sendmmsg` on Linux), then lingers
//! ([`LINGER`]) so that the next batch gathers without a wake per segment. When the queue is
//! full the segment is dropped and counted; when sending fails (the daemon address does not
//! resolve, the network refuses) one line is logged, and one more when it works again.

use crate::document::Entity;
use crate::export::{ExportCounters, FlushFuture, LINGER, TraceExporter};
use crate::segment::{DATAGRAM_HEADER, segment_documents};
use crate::udp_batch::{MAX_BATCH, send_batch};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Segments waiting to be sent before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// The handle requests use to emit segments.
#[derive(Clone)]
pub struct Emitter {
    queue: mpsc::Sender<Entity>,
    stats: Arc<ExportCounters>,
}

impl Emitter {
    /// Starts the sending task for the daemon at `address` (`host:port`, UDP).
    pub fn start(address: String) -> Self {
        let (queue, segments) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(ExportCounters::default());
        tokio::spawn(send_loop(address, segments, stats.clone()));
        Self { queue, stats }
    }

    /// Queues a finished segment; never blocks. Its documents are written and sent by the
    /// emitter's task.
    fn queue(&self, segment: Entity) {
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        if self.queue.try_send(segment).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
            self.stats
                .count_dropped(1, "X-Ray segments (UDP)", QUEUE_CAPACITY);
        }
    }

    /// The counters: `sent` and `failed` count datagrams, `dropped` and `pending` segments.
    pub fn stats(&self) -> &ExportCounters {
        &self.stats
    }

    /// Waits until every queued segment was sent (or failed), for at most `timeout`: called at
    /// shutdown so that the last requests' segments are not lost. Returns whether it drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.stats.pending.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// The UDP segments are the `xray` exporter.
impl TraceExporter for Emitter {
    fn name(&self) -> &'static str {
        "xray"
    }

    fn export(&self, segment: Entity) {
        self.queue(segment);
    }

    fn counters(&self) -> &ExportCounters {
        &self.stats
    }

    fn flush(&self, timeout: Duration) -> FlushFuture<'_> {
        Box::pin(Emitter::flush(self, timeout))
    }
}

async fn send_loop(
    address: String,
    mut segments: mpsc::Receiver<Entity>,
    stats: Arc<ExportCounters>,
) {
    let socket = match UdpSocket::bind("0.0.0.0:0").await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(
                "cannot open a UDP socket for X-Ray segments ({error}); segments are not sent"
            );
            while segments.recv().await.is_some() {
                stats.pending.fetch_sub(1, Ordering::SeqCst);
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    let failing = AtomicBool::new(false);
    let mut target = Resolved::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut datagrams = Datagrams::default();
    while segments.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let taken = batch.len() as u64;
        datagrams.clear();
        for segment in batch.drain(..) {
            for document in segment_documents(segment) {
                datagrams.push(&document);
            }
        }
        let outcome = match target.get(&address).await {
            Ok(peer) => send_batch(&socket, peer, datagrams.filled()).await,
            Err(error) => datagrams
                .filled()
                .iter()
                .map(|_| Err(std::io::Error::new(error.kind(), error.to_string())))
                .collect(),
        };
        let first_error = outcome.iter().find_map(|sent| sent.as_ref().err());
        let failed = outcome.iter().filter(|sent| sent.is_err()).count() as u64;
        stats
            .sent
            .fetch_add(outcome.len() as u64 - failed, Ordering::Relaxed);
        stats.failed.fetch_add(failed, Ordering::Relaxed);
        match first_error {
            None => {
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("X-Ray segments reach the daemon at {address} again");
                }
            }
            Some(error) => {
                target.forget();
                if !failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot send X-Ray segments to the daemon at {address} ({error}); requests \
                         are served, their segments are lost until it is reachable"
                    );
                }
            }
        }
        // Counted last, so that `flush` returns only once the batch's outcome is counted.
        stats.pending.fetch_sub(taken, Ordering::SeqCst);
        // A full batch means more may be waiting: those go at once. Otherwise the queue fills
        // for a moment without waking this task, and the next batch wakes the daemon once.
        if taken < MAX_BATCH as u64 {
            tokio::time::sleep(LINGER).await;
        }
    }
}

/// The datagrams of one batch, in buffers kept from batch to batch: after the first batches
/// no datagram allocates.
#[derive(Default)]
struct Datagrams {
    buffers: Vec<Vec<u8>>,
    filled: usize,
}

impl Datagrams {
    fn clear(&mut self) {
        self.filled = 0;
    }

    /// Appends a datagram: the header line, then `document`.
    fn push(&mut self, document: &str) {
        if self.filled == self.buffers.len() {
            self.buffers.push(Vec::with_capacity(4096));
        }
        let buffer = &mut self.buffers[self.filled];
        buffer.clear();
        buffer.extend_from_slice(DATAGRAM_HEADER.as_bytes());
        buffer.extend_from_slice(document.as_bytes());
        self.filled += 1;
    }

    fn filled(&self) -> &[Vec<u8>] {
        &self.buffers[..self.filled]
    }
}

/// The daemon's address, resolved once and again every minute or after a failure, so a daemon
/// whose name did not resolve at start-up (a sidecar that starts later) is found, without a
/// lookup per datagram. After a failed lookup, datagrams fail at once for a second instead of
/// each waiting for another lookup.
#[derive(Default)]
struct Resolved {
    peer: Option<(std::net::SocketAddr, Instant)>,
    failed_at: Option<Instant>,
}

impl Resolved {
    async fn get(&mut self, address: &str) -> std::io::Result<std::net::SocketAddr> {
        if let Some((peer, at)) = self.peer
            && at.elapsed() < Duration::from_secs(60)
        {
            return Ok(peer);
        }
        if let Some(at) = self.failed_at
            && at.elapsed() < Duration::from_secs(1)
        {
            return Err(std::io::Error::other(format!("{address} did not resolve")));
        }
        match tokio::net::lookup_host(address)
            .await
            .map(|mut peers| peers.next())
        {
            Ok(Some(peer)) => {
                self.peer = Some((peer, Instant::now()));
                self.failed_at = None;
                Ok(peer)
            }
            Ok(None) => {
                self.failed_at = Some(Instant::now());
                Err(std::io::Error::other(format!(
                    "{address} resolves to no address"
                )))
            }
            Err(error) => {
                self.failed_at = Some(Instant::now());
                Err(error)
            }
        }
    }

    fn forget(&mut self) {
        self.peer = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SegmentId;

    /// A segment named `name` whose document is `{"name":…,"id":…,"start_time":1.0,"end_time":2.0}`.
    fn segment(name: &str) -> Entity {
        Entity::new(
            name.into(),
            SegmentId::parse("0123456789abcdef").unwrap(),
            1.0,
            2.0,
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sends_one_datagram_per_document_with_the_header_line_in_order() {
        let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let emitter = Emitter::start(daemon.local_addr().unwrap().to_string());
        // More than one batch, queued at once, so that the task sends them in batches.
        let names: Vec<String> = (0..MAX_BATCH * 2 + 7).map(|i| format!("s{i}")).collect();
        for name in &names {
            emitter.export(segment(name));
        }
        let mut buffer = [0u8; 65536];
        for name in &names {
            let received = tokio::task::block_in_place(|| daemon.recv(&mut buffer)).unwrap();
            let text = std::str::from_utf8(&buffer[..received]).unwrap();
            assert_eq!(
                text,
                format!(
                    "{{\"format\":\"json\",\"version\":1}}\n{{\"name\":\"{name}\",\"id\":\"0123456789abcdef\",\"start_time\":1.0,\"end_time\":2.0}}"
                )
            );
        }
        assert!(emitter.flush(Duration::from_secs(5)).await);
        assert_eq!(
            emitter.stats().sent.load(Ordering::Relaxed),
            names.len() as u64
        );
    }

    #[tokio::test]
    async fn an_unresolvable_daemon_costs_requests_nothing() {
        let emitter = Emitter::start("no-such-daemon.invalid:2000".into());
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            emitter.export(segment("s"));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let stats = emitter.stats();
        let accounted = || {
            stats.sent.load(Ordering::Relaxed)
                + stats.dropped.load(Ordering::Relaxed)
                + stats.failed.load(Ordering::Relaxed)
        };
        // Everything is either dropped at the queue or failed at the socket, never lost silently.
        for _ in 0..200 {
            if accounted() == 10_000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
        assert_eq!(accounted(), 10_000);
    }
}
