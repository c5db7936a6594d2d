//! Sends segment documents to the X-Ray daemon over UDP (xray-spec §3.1): one document per
//! datagram, after the header line `{"format":"json","version":1}`.
//!
//! A request never waits for the daemon: documents go into a bounded queue that one task drains.
//! When the queue is full the document is dropped and counted; when sending fails (the daemon
//! address does not resolve, the network refuses) one line is logged, and one more when it works
//! again.

use crate::document::Entity;
use crate::export::{ExportCounters, FlushFuture, TraceExporter};
use crate::segment::{DATAGRAM_HEADER, segment_documents};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Documents waiting to be sent before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// The handle requests use to emit documents.
#[derive(Clone)]
pub struct Emitter {
    queue: mpsc::Sender<String>,
    stats: Arc<ExportCounters>,
}

impl Emitter {
    /// Starts the sending task for the daemon at `address` (`host:port`, UDP).
    pub fn start(address: String) -> Self {
        let (queue, documents) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(ExportCounters::default());
        tokio::spawn(send_loop(address, documents, stats.clone()));
        Self { queue, stats }
    }

    /// Queues a document; never blocks.
    pub fn emit(&self, document: String) {
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        if self.queue.try_send(document).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
            self.stats
                .count_dropped(1, "X-Ray segment documents (UDP)", QUEUE_CAPACITY);
        }
    }

    /// The counters.
    pub fn stats(&self) -> &ExportCounters {
        &self.stats
    }

    /// Waits until every queued document was sent (or failed), for at most `timeout`: called at
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
        for document in segment_documents(segment) {
            self.emit(document);
        }
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
    mut documents: mpsc::Receiver<String>,
    stats: Arc<ExportCounters>,
) {
    let socket = match UdpSocket::bind("0.0.0.0:0").await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(
                "cannot open a UDP socket for X-Ray segments ({error}); segments are not sent"
            );
            while documents.recv().await.is_some() {
                stats.pending.fetch_sub(1, Ordering::SeqCst);
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    let failing = AtomicBool::new(false);
    let mut datagram = Vec::with_capacity(64 * 1024);
    let mut target = Resolved::default();
    while let Some(document) = documents.recv().await {
        datagram.clear();
        datagram.extend_from_slice(DATAGRAM_HEADER.as_bytes());
        datagram.extend_from_slice(document.as_bytes());
        let sent = match target.get(&address).await {
            Ok(peer) => socket
                .send_to(&datagram, peer)
                .await
                .inspect_err(|_| target.forget()),
            Err(error) => Err(error),
        };
        stats.pending.fetch_sub(1, Ordering::SeqCst);
        match sent {
            Ok(_) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("X-Ray segments reach the daemon at {address} again");
                }
            }
            Err(error) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if !failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "cannot send X-Ray segments to the daemon at {address} ({error}); requests \
                         are served, their segments are lost until it is reachable"
                    );
                }
            }
        }
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

    #[tokio::test(flavor = "multi_thread")]
    async fn sends_one_datagram_per_document_with_the_header_line() {
        let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let emitter = Emitter::start(daemon.local_addr().unwrap().to_string());
        emitter.emit(r#"{"id":"a"}"#.into());
        emitter.emit(r#"{"id":"b"}"#.into());
        let mut buffer = [0u8; 65536];
        for id in ["a", "b"] {
            let received = tokio::task::block_in_place(|| daemon.recv(&mut buffer)).unwrap();
            let text = std::str::from_utf8(&buffer[..received]).unwrap();
            assert_eq!(
                text,
                format!("{{\"format\":\"json\",\"version\":1}}\n{{\"id\":\"{id}\"}}")
            );
        }
        // The emitter counts a datagram after sending it: the count may trail the receipt.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while emitter.stats().sent.load(Ordering::Relaxed) < 2
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(emitter.stats().sent.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn an_unresolvable_daemon_costs_requests_nothing() {
        let emitter = Emitter::start("no-such-daemon.invalid:2000".into());
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            emitter.emit("{}".into());
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
