//! The host's log lines on their way to stdout, written by one thread so that a stdout that
//! does not keep up stalls no request.
//!
//! On ECS the host's stdout is a pipe to the awslogs driver, locally a terminal or a pipe
//! nobody may read. Writing a log line straight from a request's task would block that tokio
//! worker whenever the pipe is full, and with it every request the worker runs. So each
//! formatted line is handed to a bounded queue without waiting ([`LogOutput`] is the
//! subscriber's writer); one thread writes the queue to stdout, and only that thread waits on
//! it. A line that does not fit (more than [`MAX_QUEUED_LINES`] lines or [`MAX_QUEUED_BYTES`]
//! queued) is dropped and counted; every [`REPORT_INTERVAL`] the thread logs how many were
//! dropped, and [`LogOutput::flush`] lets the process write what is queued before it exits.
//!
//! The thread writes the lines waiting in one `write`, then lets new ones gather for a
//! millisecond before it waits again: waking it for every line (a system call and two context
//! switches) cost more than writing the line.
//!
//! A component's own output reaches this writer through the runtime's `guest_output` module,
//! which bounds and rate-limits it per service first.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;

/// Lines queued for the writer thread.
pub const MAX_QUEUED_LINES: usize = 16 * 1024;
/// Bytes queued for the writer thread.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;
/// How often the writer thread reports dropped lines.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// The subscriber's writer: formats each event into a buffer and queues it for the writer
/// thread without waiting.
#[derive(Clone)]
pub struct LogOutput {
    sender: SyncSender<Message>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    queued_bytes: AtomicUsize,
    dropped: AtomicU64,
}

enum Message {
    Line(Vec<u8>),
    /// Write everything queued before this, then answer.
    Flush(SyncSender<()>),
}

impl LogOutput {
    /// Starts the writer thread over `sink` (the process's stdout in `main`).
    pub fn start(sink: impl Write + Send + 'static) -> std::io::Result<LogOutput> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(MAX_QUEUED_LINES);
        let counts = Arc::new(Counts::default());
        let thread_counts = counts.clone();
        std::thread::Builder::new()
            .name("log-output".into())
            .spawn(move || write_lines(receiver, sink, &thread_counts))?;
        Ok(LogOutput { sender, counts })
    }

    /// Lines dropped so far because the writer could not keep up (the writer thread reports
    /// them in the log).
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for the writer thread to write every line queued so far. Whether
    /// it did.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, written) = std::sync::mpsc::sync_channel(1);
        // The flush request waits for room in the queue like no line does: it is the last thing
        // the process does.
        let deadline = Instant::now() + timeout;
        let mut message = Message::Flush(done);
        loop {
            match self.sender.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        written
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Queues `line` as it is, with a newline: a document that must be a log event of its own
    /// (an EMF line), not wrapped in the log's format.
    pub fn write_raw(&self, mut line: String) {
        line.push('\n');
        self.queue(line.into_bytes());
    }

    fn queue(&self, line: Vec<u8>) {
        let len = line.len();
        let queued = self.counts.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if queued + len > MAX_QUEUED_BYTES {
            self.counts.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.sender.try_send(Message::Line(line)).is_err() {
            self.counts.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One event's line, queued when the formatter is done with it.
pub struct LineWriter<'a> {
    output: &'a LogOutput,
    line: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.output.queue(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            output: self,
            line: Vec::with_capacity(256),
        }
    }
}

/// Most bytes the writer thread gathers before one write.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// How long the writer thread lets lines gather after a write before it waits for the next.
/// Waking a waiting thread costs a system call and two context switches, more than the line
/// itself; lines queued while it lingers wake nobody. A line waits at most this much longer.
const LINGER: Duration = Duration::from_millis(1);

/// The writer thread: writes the lines waiting in batches, answers flushes, and reports drops.
fn write_lines(receiver: Receiver<Message>, mut sink: impl Write, counts: &Counts) {
    let mut next_report = Instant::now() + REPORT_INTERVAL;
    let mut reported = 0;
    let mut batch: Vec<u8> = Vec::with_capacity(MAX_BATCH_BYTES);
    loop {
        let mut next = receiver.recv_timeout(next_report.saturating_duration_since(Instant::now()));
        let waited = next.is_ok();
        // Every line already waiting joins the batch (up to its size); a flush, the queue
        // running dry or a full batch writes it.
        loop {
            match next {
                Ok(Message::Line(line)) => {
                    counts.queued_bytes.fetch_sub(line.len(), Ordering::Relaxed);
                    batch.extend_from_slice(&line);
                }
                Ok(Message::Flush(done)) => {
                    write_batch(&mut sink, &mut batch);
                    let _ = sink.flush();
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    write_batch(&mut sink, &mut batch);
                    let _ = sink.flush();
                    return;
                }
            }
            if batch.len() >= MAX_BATCH_BYTES {
                write_batch(&mut sink, &mut batch);
            }
            next = match receiver.try_recv() {
                Ok(message) => Ok(message),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            };
        }
        write_batch(&mut sink, &mut batch);
        if waited {
            std::thread::sleep(LINGER);
        }
        if Instant::now() >= next_report {
            let dropped = counts.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                // Logged like any line (queued from this thread, so it never waits on itself).
                tracing::warn!(
                    dropped = dropped - reported,
                    "{} host log lines dropped in the last {} s: stdout did not keep up",
                    dropped - reported,
                    REPORT_INTERVAL.as_secs()
                );
                reported = dropped;
            }
            next_report = Instant::now() + REPORT_INTERVAL;
        }
    }
}

/// Writes the gathered lines (whole lines only: a batch never ends mid-line) and empties the
/// batch. A failed write has nowhere to be reported; the next batch tries again.
fn write_batch(sink: &mut impl Write, batch: &mut Vec<u8>) {
    if !batch.is_empty() {
        let _ = sink.write_all(batch);
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::Sender;

    /// A sink that blocks every write until the test lets it go, and keeps what it got.
    struct Gate {
        open: Arc<Mutex<bool>>,
        got: Sender<Vec<u8>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            while !*self.open.lock().unwrap() {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = self.got.send(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log(output: &LogOutput, text: &str) {
        let mut writer = output.make_writer();
        writer.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn a_blocked_sink_drops_and_counts_lines_instead_of_blocking_the_caller() {
        let open = Arc::new(Mutex::new(false));
        let (got, lines) = std::sync::mpsc::channel();
        let output = LogOutput::start(Gate {
            open: open.clone(),
            got,
        })
        .unwrap();
        let started = Instant::now();
        // More than the queue and the writer's batch (about 6 000 of these lines) hold.
        let total = MAX_QUEUED_LINES + 8000;
        for i in 0..total {
            log(&output, &format!("line {i}\n"));
        }
        // Every call returned at once although nothing was written.
        assert!(started.elapsed() < Duration::from_secs(5));
        // The writer holds one batch (at most 64 KiB of lines), the queue the rest of what fits.
        let dropped = output.dropped();
        // The most lines a batch can hold: from the first, until their bytes reach its size.
        let mut batch_bytes = 0;
        let batch_lines = (0..total)
            .take_while(|i| {
                let fits = batch_bytes < MAX_BATCH_BYTES;
                batch_bytes += format!("line {i}\n").len();
                fits
            })
            .count() as u64;
        assert!((8000 - batch_lines..=8000).contains(&dropped), "{dropped}");
        *open.lock().unwrap() = true;
        assert!(output.flush(Duration::from_secs(30)));
        let written = written_lines(&lines);
        assert_eq!(written.len() as u64 + dropped, total as u64);
        // Lines arrive whole and in order, a kept line never after a later one.
        assert_eq!(written[0], "line 0");
        assert_eq!(written[1], "line 1");
        let numbers: Vec<usize> = written
            .iter()
            .map(|line| line.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]));
    }

    /// What the sink got, as lines (a write may carry several).
    fn written_lines(writes: &std::sync::mpsc::Receiver<Vec<u8>>) -> Vec<String> {
        let bytes: Vec<u8> = writes.try_iter().flatten().collect();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a write ended mid-line"
        );
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn lines_waiting_together_are_written_in_one_write() {
        let open = Arc::new(Mutex::new(false));
        let (got, writes) = std::sync::mpsc::channel();
        let output = LogOutput::start(Gate {
            open: open.clone(),
            got,
        })
        .unwrap();
        // The first line's write holds the writer; the next 100 wait in the queue meanwhile.
        log(&output, "first\n");
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..100 {
            log(&output, &format!("{i}\n"));
        }
        *open.lock().unwrap() = true;
        assert!(output.flush(Duration::from_secs(10)));
        let writes: Vec<Vec<u8>> = writes.try_iter().collect();
        // "first" alone, then the hundred in one write (not one write each).
        assert_eq!(writes.len(), 2, "{} writes", writes.len());
        let expected: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert_eq!(writes[1], expected.as_bytes());
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let open = Arc::new(Mutex::new(false));
        let (got, _lines) = std::sync::mpsc::channel();
        let output = LogOutput::start(Gate { open, got }).unwrap();
        let big = "x".repeat(1024 * 1024);
        for _ in 0..20 {
            log(&output, &big);
        }
        // At most 8 MiB queued plus the one line the blocked writer holds.
        assert!(output.dropped() >= 11, "{}", output.dropped());
    }

    #[test]
    fn flush_writes_what_is_queued() {
        let open = Arc::new(Mutex::new(true));
        let (got, lines) = std::sync::mpsc::channel();
        let output = LogOutput::start(Gate { open, got }).unwrap();
        for i in 0..100 {
            log(&output, &format!("{i}\n"));
        }
        assert!(output.flush(Duration::from_secs(10)));
        assert_eq!(written_lines(&lines).len(), 100);
        assert_eq!(output.dropped(), 0);
    }
}
