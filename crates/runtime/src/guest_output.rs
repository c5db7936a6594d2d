//! What a component prints, and the host's warnings about its calls, kept from forging or
//! stalling the host's log.
//!
//! A component's stdout and stderr are cut into lines here and never reach the host's stdout
//! directly. Each instance's streams ([`InstanceOutput`]) buffer at most one line per stream; a
//! complete line goes to its service's sink ([`ServiceOutput::emit`]: the service, the stream,
//! the request's trace id where one is known, the bytes), which rate-limits it, bounds what
//! the service may have queued, and hands it to one writer thread without ever waiting. The
//! writer thread logs each line through `tracing` (target `component`, fields `service`,
//! `stream`, `trace_id`, `cut`, then the line as the message), with control characters
//! escaped, so every guest line is one log line that starts with the service's name; when the
//! host's stdout blocks, only that thread waits, and what does not fit is dropped and counted.
//! Every [`REPORT_INTERVAL`] the thread logs one warning per service naming how many lines and
//! per-call warnings were dropped.
//!
//! Attribution: each write is attributed to the request whose task made it
//! ([`crate::stdio_attribution`] tells [`InstanceOutput::set_writer`] before the write), so under
//! reuse, also with several requests at once in a WASI 0.3 instance, each line carries the trace
//! id of the request that printed it. A WASI 0.2 instance serves one request at a time, which
//! [`InstanceOutput::serve_one_request`] notes when it starts, for writes nothing attributes.
//!
//! The per-call warnings the host logs about a component (a refused outgoing call, a refused
//! wasi:otel span) pass through a [`LogLimiter`] of the same kind ([`ServiceOutput::warnings`]).

use bytes::Bytes;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use xray::ids::TraceId;

/// The longest line written, in bytes of the guest's output; the rest of a longer line is
/// dropped and the line is marked `cut=true`.
pub const MAX_LINE_BYTES: usize = 4096;
/// What one service may have queued for the writer thread, in bytes; lines beyond it are
/// dropped (and counted) until the writer catches up.
pub const MAX_QUEUED_BYTES_PER_SERVICE: usize = 1024 * 1024;
/// Lines queued for the writer thread, all services together.
const MAX_QUEUED_LINES: usize = 8192;
/// How often the writer thread reports what was dropped.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Default guest output rate per service; bursts of [`BURST_SECONDS`] worth pass at once.
pub const DEFAULT_LINES_PER_SECOND: u32 = 100;
/// A burst is this many seconds of the rate.
pub const BURST_SECONDS: u32 = 5;
/// Per-call warnings per service: a burst of this many, then one a second.
const WARNING_BURST: u32 = 10;

/// Which of a component's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `wasi:cli/stdout`.
    Stdout,
    /// `wasi:cli/stderr`.
    Stderr,
}

impl Stream {
    /// The name logged in the `stream` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A token bucket: `rate` a second, at most `burst` at once.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if there is one at `now`.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A rate limit on one kind of log line of one service, counting what it refuses. Every
/// limiter is reported on by the writer thread, once per [`REPORT_INTERVAL`] in which it
/// refused something.
#[derive(Debug)]
pub struct LogLimiter {
    service: Arc<str>,
    /// What it limits, plural, for the report ("lines of guest output").
    what: &'static str,
    bucket: Mutex<TokenBucket>,
    dropped: AtomicU64,
    reported: AtomicU64,
}

impl LogLimiter {
    /// A limiter of `rate` a second with bursts of `burst`, reported on by the writer thread.
    fn new(service: &Arc<str>, what: &'static str, rate: u32, burst: u32) -> Arc<Self> {
        let limiter = Arc::new(Self {
            service: service.clone(),
            what,
            bucket: Mutex::new(TokenBucket::new(rate, burst, Instant::now())),
            dropped: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        });
        register(&limiter);
        limiter
    }

    /// Whether one more line may be logged now; if not, it is counted as dropped.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let allowed = lock(&self.bucket).take(now);
        if !allowed {
            self.count_dropped();
        }
        allowed
    }

    /// Counts a line dropped for another reason than the rate.
    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Lines dropped since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines dropped since the last call (what the next report names).
    fn take_unreported(&self) -> u64 {
        let dropped = self.dropped();
        dropped - self.reported.swap(dropped, Ordering::Relaxed)
    }
}

/// The guest output and warnings of one service: its sink, its limits and its counters.
#[derive(Debug)]
pub struct ServiceOutput {
    service: Arc<str>,
    lines: Arc<LogLimiter>,
    warnings: Arc<LogLimiter>,
    queued_bytes: AtomicUsize,
    written: AtomicU64,
    cut: AtomicU64,
}

impl ServiceOutput {
    /// The sink of `service`, letting through `lines_per_second` lines of guest output a second
    /// (bursts of [`BURST_SECONDS`] worth; 0 drops them all).
    pub fn new(service: &str, lines_per_second: u32) -> Arc<Self> {
        let service: Arc<str> = service.into();
        Arc::new(Self {
            lines: LogLimiter::new(
                &service,
                "lines of guest output",
                lines_per_second,
                lines_per_second.saturating_mul(BURST_SECONDS),
            ),
            warnings: LogLimiter::new(&service, "warnings about its calls", 1, WARNING_BURST),
            service,
            queued_bytes: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.service
    }

    /// The limiter of the component's own lines (stdout, stderr, wasi:otel log records): log
    /// one only when [`LogLimiter::allow`] says so.
    pub fn lines(&self) -> &LogLimiter {
        &self.lines
    }

    /// The limiter of the host's per-call warnings about this service's component: log one only
    /// when [`LogLimiter::allow`] says so.
    pub fn warnings(&self) -> &LogLimiter {
        &self.warnings
    }

    /// The streams of one new instance of the component version `version` (its short content
    /// hash, which its lines carry).
    pub fn instance(self: &Arc<Self>, version: &str) -> InstanceOutput {
        InstanceOutput {
            shared: Arc::new(InstanceShared {
                output: self.clone(),
                version: Arc::from(version),
                state: Mutex::new(InstanceState::default()),
            }),
            guest_streams: Vec::new(),
        }
    }

    /// One line of `stream` (without its newline), printed by the component version
    /// `version` (its short content hash) for the request traced as `trace_id` if known; `cut`
    /// when the line was longer than [`MAX_LINE_BYTES`]. Never waits: a line over the rate, or
    /// beyond what the service may have queued, is dropped and counted.
    pub fn emit(
        self: &Arc<Self>,
        stream: Stream,
        version: Option<&Arc<str>>,
        trace_id: Option<TraceId>,
        line: &[u8],
        cut: bool,
    ) {
        if cut {
            self.cut.fetch_add(1, Ordering::Relaxed);
        }
        if !self.lines.allow() {
            return;
        }
        let size = line.len();
        let queued = self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if queued + size > MAX_QUEUED_BYTES_PER_SERVICE {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.lines.count_dropped();
            return;
        }
        let record = Line {
            output: self.clone(),
            stream,
            version: version.cloned(),
            trace_id,
            bytes: line.to_vec(),
            cut,
        };
        if let Err(TrySendError::Full(record) | TrySendError::Disconnected(record)) =
            writer().try_send(record)
        {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            record.output.lines.count_dropped();
        }
    }

    /// The counters `/stats` shows: lines written, dropped (over the rate, or queued beyond
    /// the bound) and cut, and the per-call warnings dropped.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "written_lines": self.written.load(Ordering::Relaxed),
            "dropped_lines": self.lines.dropped(),
            "cut_lines": self.cut.load(Ordering::Relaxed),
            "dropped_warnings": self.warnings.dropped(),
        })
    }
}

/// One line on its way to the writer thread.
struct Line {
    output: Arc<ServiceOutput>,
    stream: Stream,
    version: Option<Arc<str>>,
    trace_id: Option<TraceId>,
    bytes: Vec<u8>,
    cut: bool,
}

/// The writer thread's queue, started on first use.
fn writer() -> &'static SyncSender<Line> {
    static WRITER: OnceLock<SyncSender<Line>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(MAX_QUEUED_LINES);
        // If the thread cannot start, its receiver is dropped with the closure and every line
        // is dropped and counted.
        if let Err(error) = std::thread::Builder::new()
            .name("guest-output".into())
            .spawn(move || write_lines(receiver))
        {
            tracing::error!(
                "cannot start the guest output thread, guest output is dropped: {error}"
            );
        }
        sender
    })
}

/// Every limiter, for the writer thread's reports.
fn limiters() -> &'static Mutex<Vec<Weak<LogLimiter>>> {
    static LIMITERS: OnceLock<Mutex<Vec<Weak<LogLimiter>>>> = OnceLock::new();
    LIMITERS.get_or_init(Mutex::default)
}

fn register(limiter: &Arc<LogLimiter>) {
    let mut all = lock(limiters());
    all.retain(|weak| weak.strong_count() > 0);
    all.push(Arc::downgrade(limiter));
    // The writer thread reports; make sure it runs.
    drop(all);
    let _ = writer();
}

/// The writer thread: logs each line, and every [`REPORT_INTERVAL`] what was dropped.
fn write_lines(receiver: Receiver<Line>) {
    let mut next_report = Instant::now() + REPORT_INTERVAL;
    loop {
        match receiver.recv_timeout(next_report.saturating_duration_since(Instant::now())) {
            Ok(line) => write_line(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_report {
            report_drops();
            next_report = Instant::now() + REPORT_INTERVAL;
        }
    }
}

fn write_line(line: Line) {
    let output = &line.output;
    output
        .queued_bytes
        .fetch_sub(line.bytes.len(), Ordering::Relaxed);
    output.written.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        target: "component",
        service = %output.service,
        version = line.version.as_deref(),
        stream = %line.stream.as_str(),
        trace_id = line.trace_id.as_ref().map(tracing::field::display),
        cut = line.cut.then_some(true),
        message = %escape(&line.bytes),
    );
}

/// One warning per limiter that dropped lines since the last report.
fn report_drops() {
    let all: Vec<Arc<LogLimiter>> = lock(limiters()).iter().filter_map(Weak::upgrade).collect();
    for limiter in all {
        let dropped = limiter.take_unreported();
        if dropped > 0 {
            tracing::warn!(
                service = %limiter.service,
                dropped,
                "{dropped} {} dropped in the last {} s (over the rate, or more than the host \
                 buffers); counted in GET /stats",
                limiter.what,
                REPORT_INTERVAL.as_secs()
            );
        }
    }
}

/// `bytes` as one line of text: invalid UTF-8 replaced, and every control character (C0, DEL,
/// C1, the Unicode line and paragraph separators, the bidirectional overrides) and the
/// backslash escaped, so the text cannot end the log line or pass for another one.
pub fn escape(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The bytes of one stream not yet ending in a newline: at most [`MAX_LINE_BYTES`].
#[derive(Debug, Default)]
struct LineBuffer {
    bytes: Vec<u8>,
    /// The line was cut and written: the rest of it, up to its newline, is dropped.
    skipping: bool,
}

impl LineBuffer {
    /// Adds `data`, calling `emit(line, cut)` for every line it completes or cuts.
    fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            let newline = data.iter().position(|&b| b == b'\n');
            let (part, rest) = match newline {
                Some(at) => (&data[..at], &data[at + 1..]),
                None => (data, &[][..]),
            };
            if !self.skipping {
                let room = MAX_LINE_BYTES - self.bytes.len();
                if part.len() > room {
                    self.bytes.extend_from_slice(&part[..room]);
                    emit(&self.bytes, true);
                    self.bytes.clear();
                    self.skipping = true;
                } else {
                    self.bytes.extend_from_slice(part);
                    if newline.is_some() {
                        let line = self.bytes.strip_suffix(b"\r").unwrap_or(&self.bytes);
                        emit(line, false);
                        self.bytes.clear();
                    }
                }
            }
            if newline.is_some() {
                self.skipping = false;
            }
            data = rest;
        }
    }

    /// Emits what is left without a newline, if anything.
    fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.bytes.is_empty() {
            emit(&self.bytes, false);
            self.bytes.clear();
        }
    }
}

/// The stdout and stderr of one instance, given to its store's WASI context.
pub struct InstanceOutput {
    shared: Arc<InstanceShared>,
    /// The table entries of the streams handed to the guest (`crate::stdio_attribution`); the
    /// latest few, since a guest may ask for them again and entries are reused.
    guest_streams: Vec<u32>,
}

/// How many handed-out streams [`InstanceOutput`] remembers.
const REMEMBERED_GUEST_STREAMS: usize = 8;

struct InstanceShared {
    output: Arc<ServiceOutput>,
    version: Arc<str>,
    state: Mutex<InstanceState>,
}

#[derive(Default)]
struct InstanceState {
    stdout: LineBuffer,
    stderr: LineBuffer,
    /// The request a WASI 0.2 instance serves now.
    trace_id: Option<TraceId>,
}

impl InstanceOutput {
    /// The instance's stdout.
    pub fn stdout(&self) -> GuestStream {
        GuestStream {
            shared: self.shared.clone(),
            stream: Stream::Stdout,
        }
    }

    /// The instance's stderr.
    pub fn stderr(&self) -> GuestStream {
        GuestStream {
            shared: self.shared.clone(),
            stream: Stream::Stderr,
        }
    }

    /// The request a WASI 0.2 instance serves now (one at a time): its lines carry its trace id.
    pub fn serve_one_request(&self, trace_id: TraceId) {
        self.set_writer(Some(trace_id));
    }

    /// The request whose task writes next (`None`: no request's). A line begun by another
    /// request is logged as it stands first, as that request's.
    pub fn set_writer(&self, writer: Option<TraceId>) {
        let mut state = lock(&self.shared.state);
        if state.trace_id == writer {
            return;
        }
        let InstanceState {
            stdout,
            stderr,
            trace_id,
        } = &mut *state;
        let (output, version) = (&self.shared.output, Some(&self.shared.version));
        stdout
            .finish(|line, cut| output.emit(Stream::Stdout, version, trace_id.clone(), line, cut));
        stderr
            .finish(|line, cut| output.emit(Stream::Stderr, version, trace_id.clone(), line, cut));
        *trace_id = writer;
    }

    /// Notes that the table entry `rep` is a stream of this instance's stdout or stderr.
    pub fn note_guest_stream(&mut self, rep: u32) {
        if !self.guest_streams.contains(&rep) {
            if self.guest_streams.len() == REMEMBERED_GUEST_STREAMS {
                self.guest_streams.remove(0);
            }
            self.guest_streams.push(rep);
        }
    }

    /// Whether the table entry `rep` is one [`Self::note_guest_stream`] noted.
    pub fn is_guest_stream(&self, rep: u32) -> bool {
        self.guest_streams.contains(&rep)
    }

    /// The component version's short content hash, which its lines carry.
    pub fn version(&self) -> &str {
        &self.shared.version
    }

    /// The service's sink (its warnings limiter, its counters).
    pub fn service(&self) -> &Arc<ServiceOutput> {
        &self.shared.output
    }
}

impl InstanceShared {
    fn write(&self, stream: Stream, data: &[u8]) {
        let mut state = lock(&self.state);
        let InstanceState {
            stdout,
            stderr,
            trace_id,
        } = &mut *state;
        let buffer = match stream {
            Stream::Stdout => stdout,
            Stream::Stderr => stderr,
        };
        buffer.push(data, |line, cut| {
            self.output
                .emit(stream, Some(&self.version), trace_id.clone(), line, cut)
        });
    }
}

impl Drop for InstanceShared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let (output, version) = (&self.output, Some(&self.version));
        let trace_id = state.trace_id.clone();
        state
            .stdout
            .finish(|line, cut| output.emit(Stream::Stdout, version, trace_id.clone(), line, cut));
        state
            .stderr
            .finish(|line, cut| output.emit(Stream::Stderr, version, trace_id.clone(), line, cut));
    }
}

/// One of an instance's output streams, as WASI 0.2's `output-stream` and as the writer WASI
/// 0.3's `write-via-stream` copies into: every write is taken at once, whole.
#[derive(Clone)]
pub struct GuestStream {
    shared: Arc<InstanceShared>,
    stream: Stream,
}

/// The permit a WASI 0.2 guest gets for each write: any size is taken, this only bounds one
/// call.
const WRITE_PERMIT: usize = 64 * 1024;

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.shared.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.shared.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A lock that a panic elsewhere does not poison for good: the counters and buffers stay
/// usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.push(chunk, |line, cut| {
                out.push((String::from_utf8_lossy(line).into_owned(), cut))
            });
        }
        buffer.finish(|line, cut| out.push((String::from_utf8_lossy(line).into_owned(), cut)));
        out
    }

    #[test]
    fn control_characters_are_escaped_so_a_line_cannot_pass_for_a_host_line() {
        let forged = "ok\n2026-01-01T00:00:00Z  INFO component loaded\r\u{1b}[2K\u{7f}\u{85}";
        let escaped = escape(forged.as_bytes());
        assert_eq!(
            escaped,
            "ok\\n2026-01-01T00:00:00Z  INFO component loaded\\r\\u{1b}[2K\\u{7f}\\u{85}"
        );
        assert!(!escaped.chars().any(char::is_control));
        assert_eq!(
            escape(b"a\\nb"),
            "a\\\\nb",
            "a printed escape stays distinct"
        );
        assert_eq!(
            escape("\u{2028}\u{202e}x".as_bytes()),
            "\\u{2028}\\u{202e}x"
        );
        assert_eq!(escape(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
        assert_eq!(escape(b"tab\there"), "tab\\there");
    }

    #[test]
    fn output_is_cut_into_lines_whatever_the_writes() {
        assert_eq!(
            lines_of(&[b"one\ntw", b"o\r\n", b"\nthree"]),
            [
                ("one".to_string(), false),
                ("two".to_string(), false),
                (String::new(), false),
                ("three".to_string(), false),
            ]
        );
    }

    #[test]
    fn an_overlong_line_is_cut_at_the_limit_and_its_rest_dropped() {
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let lines = lines_of(&[&long[..100], &long[100..], b"tail\nnext\n"]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].0.len(), MAX_LINE_BYTES);
        assert!(lines[0].1);
        assert_eq!(lines[1], ("next".to_string(), false));
        // A line of exactly the limit is whole.
        let exact = [vec![b'y'; MAX_LINE_BYTES], b"\n".to_vec()].concat();
        assert_eq!(lines_of(&[&exact]), [("y".repeat(MAX_LINE_BYTES), false)]);
    }

    #[test]
    fn the_rate_lets_a_burst_through_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 50, start);
        assert_eq!((0..100).filter(|_| bucket.take(start)).count(), 50);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| bucket.take(later)).count(), 5);
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| bucket.take(much_later)).count(), 50);
        let mut closed = TokenBucket::new(0, 0, start);
        assert!(!closed.take(start + Duration::from_secs(1)));
    }

    #[test]
    fn dropped_lines_are_counted_and_reported_once() {
        let service: Arc<str> = "Counting".into();
        let limiter = LogLimiter::new(&service, "test lines", 1, 3);
        let now = Instant::now();
        let allowed = (0..10).filter(|_| limiter.allow_at(now)).count();
        assert_eq!(allowed, 3);
        assert_eq!(limiter.dropped(), 7);
        assert_eq!(limiter.take_unreported(), 7);
        assert_eq!(limiter.take_unreported(), 0, "each drop is reported once");
        assert!(!limiter.allow_at(now));
        assert_eq!((limiter.dropped(), limiter.take_unreported()), (8, 1));
    }

    #[test]
    fn a_flood_is_dropped_and_counted_without_waiting() {
        let output = ServiceOutput::new("Flooding", 10);
        let instance = output.instance("0123456789ab");
        let mut stream = instance.stdout();
        let started = Instant::now();
        for i in 0..10_000 {
            OutputStream::write(&mut stream, Bytes::from(format!("line {i}\n"))).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        // The burst (5 s of 10 a second) passes, and perhaps a few more as time passes.
        let dropped = output.lines.dropped();
        assert!((9_900..=9_950).contains(&dropped), "{dropped}");
        assert_eq!(output.stats()["dropped_lines"], dropped);
    }

    #[test]
    fn a_service_queues_at_most_its_bound() {
        let output = ServiceOutput::new("Bounded", 1_000_000);
        // As if the writer thread were stuck: the queue is full up to the bound.
        output
            .queued_bytes
            .store(MAX_QUEUED_BYTES_PER_SERVICE - 10, Ordering::Relaxed);
        output.emit(Stream::Stderr, None, None, &[b'z'; 11], false);
        assert_eq!(output.lines.dropped(), 1);
        assert_eq!(
            output.queued_bytes.load(Ordering::Relaxed),
            MAX_QUEUED_BYTES_PER_SERVICE - 10
        );
    }

    #[test]
    fn a_partial_line_is_written_when_the_instance_goes() {
        let output = ServiceOutput::new("Partial", 0);
        let instance = output.instance("0123456789ab");
        let mut stream = instance.stderr();
        OutputStream::write(&mut stream, Bytes::from_static(b"no newline")).unwrap();
        assert_eq!(output.lines.dropped(), 0);
        drop(stream);
        drop(instance);
        // The rate is 0: the flushed line is dropped, which shows it was emitted.
        assert_eq!(output.lines.dropped(), 1);
    }
}
