//! The two waits of an HTTP/1 connection, timed apart: how long a client may take to send a
//! request head (slowloris protection, `--header-read-timeout`) and how long an idle keep-alive
//! connection stays open between requests (`--keep-alive-timeout`).
//!
//! hyper's own `header_read_timeout` starts as soon as a connection goes idle, so it closes idle
//! keep-alive connections too. A load balancer that keeps idle connections longer than that and
//! reuses them (the ALB keeps them 60 s) then sends a request on a connection the host is
//! closing, and its client gets a 502. So hyper's timer is off and [`ConnectionClock`] keeps
//! the time instead, from what it sees of the connection:
//!
//! - a new connection must deliver its first request head within the header timeout;
//! - once a response is finished, the connection may sit idle for the keep-alive timeout;
//! - from the first byte of the next request, its head must be complete within the header
//!   timeout;
//! - while a request is being served, neither applies (`--request-timeout` does).
//!
//! A client pipelining a second request behind the first, so that part of its head was read
//! with the first request, gets the keep-alive timeout for the rest of that head.
//!
//! Writes are timed too (`--response-write-timeout`): a client that stops reading a response
//! larger than the socket buffers would otherwise hold the connection, the request's place
//! under the service's concurrency cap and its open segment for as long as TCP keeps a zero
//! window. When a write makes no progress for that long, the connection fails; the response
//! body is dropped, which ends the segment (marked as cut) and frees the place. The timer
//! exists only while a write waits: a client that keeps reading never pays for it.

use crate::lazy_timer;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head: closed at `idle_until` if no byte of it has come, else at
    /// `head_started + header_read_timeout`.
    AwaitingHead {
        idle_until: Instant,
        head_started: Option<Instant>,
    },
    /// A request is being served.
    Serving,
}

/// The timing state of one connection, shared by its stream and its service.
#[derive(Debug)]
pub struct ConnectionClock {
    phase: Mutex<Phase>,
    /// A read left waiting with no deadline while a request was served: woken when the
    /// response is finished, so that it picks up the keep-alive deadline.
    reader: Mutex<Option<Waker>>,
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
    write_stall_timeout: Duration,
}

impl ConnectionClock {
    /// The clock of a connection accepted now.
    pub fn new(
        header_read_timeout: Duration,
        keep_alive_timeout: Duration,
        write_stall_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::AwaitingHead {
                idle_until: Instant::now() + header_read_timeout,
                head_started: None,
            }),
            reader: Mutex::new(None),
            header_read_timeout,
            keep_alive_timeout,
            write_stall_timeout,
        })
    }

    fn with_phase<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        f(&mut self.phase.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A whole request head has arrived: no read deadline while it is served.
    pub fn request_started(&self) {
        self.with_phase(|phase| *phase = Phase::Serving);
    }

    /// The response is finished: the keep-alive wait starts.
    pub fn response_finished(&self) {
        let idle_until = Instant::now() + self.keep_alive_timeout;
        self.with_phase(|phase| {
            *phase = Phase::AwaitingHead {
                idle_until,
                head_started: None,
            }
        });
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// Notes that bytes were read; returns the read deadline now in force, if any.
    fn after_read(&self, got_bytes: bool) -> Option<Instant> {
        self.with_phase(|phase| match phase {
            Phase::Serving => None,
            Phase::AwaitingHead {
                idle_until,
                head_started,
            } => {
                if got_bytes && head_started.is_none() {
                    *head_started = Some(Instant::now());
                }
                Some(match head_started {
                    Some(started) => *started + self.header_read_timeout,
                    None => *idle_until,
                })
            }
        })
    }

    /// Wraps the connection's stream so that its reads keep this clock's deadlines.
    pub fn stream<S>(self: &Arc<Self>, inner: S) -> TimedStream<S> {
        TimedStream {
            inner,
            clock: self.clone(),
            sleep: None,
            write_stall: None,
        }
    }

    /// Wraps a response body so that the keep-alive wait starts when it is finished.
    pub fn body<B>(self: &Arc<Self>, inner: B) -> TimedBody<B> {
        TimedBody {
            inner,
            clock: self.clone(),
        }
    }
}

/// A stream whose reads fail with `TimedOut` past the [`ConnectionClock`]'s deadline, and whose
/// writes fail with `TimedOut` when they make no progress for its write timeout.
pub struct TimedStream<S> {
    inner: S,
    clock: Arc<ConnectionClock>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Set while a write waits for the client to read.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<S> TimedStream<S> {
    /// Runs one write-side poll: progress (or an error) clears the stall timer; waiting starts
    /// it, or fails the write once it has run out.
    fn timed_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut S, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let result = poll(&mut self.inner, cx);
        if result.is_ready() {
            self.write_stall = None;
            return result;
        }
        let timeout = self.clock.write_stall_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing of the response for {timeout:?} \
                     (--response-write-timeout)"
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let got_bytes = matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        let deadline = this.clock.after_read(got_bytes);
        if poll.is_ready() {
            return poll;
        }
        let Some(deadline) = deadline else {
            *this.clock.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            // The response may have finished since the phase was read.
            if this.clock.after_read(false).is_some() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match lazy_timer::poll_until(sleep.as_mut(), deadline, cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head within the header read timeout, or idle past the \
                 keep-alive timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.timed_write(cx, |inner, cx| Pin::new(inner).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.timed_write(cx, |inner, cx| {
            Pin::new(inner).poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.timed_write(cx, |inner, cx| Pin::new(inner).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that starts the connection's keep-alive wait when hyper is done with it
/// (sent to its end, or dropped because the client went away).
pub struct TimedBody<B> {
    inner: B,
    clock: Arc<ConnectionClock>,
}

impl<B> Drop for TimedBody<B> {
    fn drop(&mut self) {
        self.clock.response_finished();
    }
}

impl<B: Body + Unpin> Body for TimedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_phase_of_the_connection() {
        let header = Duration::from_secs(10);
        let idle = Duration::from_secs(75);
        let within = |deadline: Option<Instant>, from: Instant, wait: Duration| {
            let deadline = deadline.expect("a deadline");
            deadline >= from + wait && deadline <= Instant::now() + wait
        };
        let accepted = Instant::now();
        let clock = ConnectionClock::new(header, idle, Duration::from_secs(30));
        // A new connection: the first head within the header timeout.
        assert!(within(clock.after_read(false), accepted, header));
        clock.request_started();
        assert_eq!(clock.after_read(true), None, "no deadline while serving");
        let finished = Instant::now();
        clock.response_finished();
        assert!(within(clock.after_read(false), finished, idle));
        // The next head's first bytes: its header timeout runs from then, and keeps running.
        let first_byte = Instant::now();
        let deadline = clock.after_read(true);
        assert!(within(deadline, first_byte, header));
        assert_eq!(clock.after_read(true), deadline);
        assert_eq!(clock.after_read(false), deadline);
    }

    #[tokio::test]
    async fn a_write_that_waits_past_the_write_timeout_fails_and_progress_resets_it() {
        use tokio::io::AsyncWriteExt;
        let stall = Duration::from_millis(200);
        let clock = ConnectionClock::new(Duration::from_secs(1), Duration::from_secs(1), stall);
        // A pipe whose reader reads nothing: writes wait once its buffer is full.
        let (writer, _reader) = tokio::io::duplex(1024);
        let mut stream = clock.stream(writer);
        let started = Instant::now();
        let error = stream
            .write_all(&vec![0u8; 64 * 1024])
            .await
            .expect_err("the write cannot finish");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= stall);
        // A reader that keeps reading, however slowly, keeps the writes alive.
        let (writer, mut slow) = tokio::io::duplex(1024);
        let mut stream = clock.stream(writer);
        let reading = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            let mut total = 0;
            while total < 8 * 1024 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                total += slow.read(&mut buf).await.unwrap();
            }
        });
        stream.write_all(&vec![0u8; 8 * 1024]).await.unwrap();
        reading.await.unwrap();
    }
}
