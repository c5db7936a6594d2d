//! The log lines each trace printed, kept for the console beside the trace's timeline.
//!
//! When the stand-in runs in the host's process, the host hands it every log line that carries
//! a trace id (its own warnings about a request, the lines a component printed, a component's
//! wasi:otel log records). This store keeps them by trace id, bounded three ways so that a
//! chatty component cannot make the process grow: at most [`MAX_LINES_PER_TRACE`] lines a
//! trace (later ones are counted, not kept), at most [`MAX_MESSAGE_BYTES`] of each message, and
//! at most [`MAX_TOTAL_BYTES`] and a number of traces in all, the trace whose first line came
//! first evicted to make room. Adding a line takes one short lock and never waits on anything
//! else, since the caller may be a request's task.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// Lines kept for one trace; the rest are counted in [`TraceLines::dropped`].
pub const MAX_LINES_PER_TRACE: usize = 200;
/// Bytes of a message kept; a longer one is cut at a character boundary and marked `cut`.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Bytes of lines (messages and their names) kept in all, before the oldest traces go.
pub const MAX_TOTAL_BYTES: usize = 8 * 1024 * 1024;
/// What one kept line costs beyond its texts (its record and its place in the queue), so that
/// many empty lines are bounded too.
const LINE_OVERHEAD_BYTES: usize = 64;

/// One log line of a trace, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceLogLine {
    /// When it was logged, in epoch seconds.
    #[serde(rename = "Time")]
    pub time: f64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    #[serde(rename = "Level")]
    pub level: String,
    /// The service the line belongs to, where the host knows it.
    #[serde(rename = "Service", skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The service's component version (short content hash), where known.
    #[serde(rename = "Version", skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the line came from: a component's `stdout` or `stderr`, or the log target that
    /// wrote it (`component` for a wasi:otel record, the host's module otherwise).
    #[serde(rename = "Source")]
    pub source: String,
    /// The text.
    #[serde(rename = "Message")]
    pub message: String,
    /// Whether the message was longer than [`MAX_MESSAGE_BYTES`] and cut.
    #[serde(rename = "Cut", skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

impl TraceLogLine {
    fn cost(&self) -> usize {
        LINE_OVERHEAD_BYTES
            + self.level.len()
            + self.service.as_ref().map_or(0, String::len)
            + self.version.as_ref().map_or(0, String::len)
            + self.source.len()
            + self.message.len()
    }
}

/// One trace's kept lines, as the console endpoint answers them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraceLines {
    /// The lines, in the order they were logged.
    #[serde(rename = "Lines")]
    pub lines: Vec<TraceLogLine>,
    /// Lines of this trace not kept because it already held [`MAX_LINES_PER_TRACE`].
    #[serde(rename = "DroppedLines")]
    pub dropped: u64,
}

/// What the store holds and has let go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TraceLogCounts {
    /// Traces with lines kept now.
    pub traces: usize,
    /// Lines kept now.
    pub lines: usize,
    /// Bytes the kept lines count for (their texts and a fixed cost each).
    pub bytes: usize,
    /// Lines not kept because their trace held [`MAX_LINES_PER_TRACE`] already.
    pub lines_over_trace_cap: u64,
    /// Traces whose lines were let go to stay within the bounds.
    pub traces_evicted: u64,
}

/// The bounded store of the lines of each trace.
pub struct TraceLogStore {
    max_traces: usize,
    max_lines_per_trace: usize,
    max_total_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    traces: HashMap<String, Kept>,
    /// Trace ids in the order their first line arrived: the front is evicted first.
    order: VecDeque<String>,
    counts: TraceLogCounts,
}

struct Kept {
    lines: TraceLines,
    bytes: usize,
}

impl TraceLogStore {
    /// A store of the lines of at most `max_traces` traces, with the default bounds.
    pub fn new(max_traces: usize) -> Self {
        Self::with_bounds(max_traces, MAX_LINES_PER_TRACE, MAX_TOTAL_BYTES)
    }

    /// A store with the given bounds (the tests use small ones).
    pub fn with_bounds(
        max_traces: usize,
        max_lines_per_trace: usize,
        max_total_bytes: usize,
    ) -> Self {
        Self {
            max_traces: max_traces.max(1),
            max_lines_per_trace,
            max_total_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (every change is one
        // insert or remove), so a poisoned lock is used as it is.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `line` for the trace `trace_id` (the X-Ray form, `1-…-…`), cutting its message to
    /// [`MAX_MESSAGE_BYTES`]; evicts the oldest traces if the bounds are reached.
    pub fn add(&self, trace_id: &str, mut line: TraceLogLine) {
        if line.message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !line.message.is_char_boundary(end) {
                end -= 1;
            }
            line.message.truncate(end);
            line.cut = true;
        }
        let cost = line.cost();
        let mut inner = self.lock();
        if let Some(kept) = inner.traces.get_mut(trace_id) {
            if kept.lines.lines.len() >= self.max_lines_per_trace {
                kept.lines.dropped += 1;
                inner.counts.lines_over_trace_cap += 1;
                return;
            }
        } else {
            if self.max_lines_per_trace == 0 {
                inner.counts.lines_over_trace_cap += 1;
                return;
            }
            while inner.traces.len() >= self.max_traces {
                inner.evict_oldest();
            }
            inner.traces.insert(
                trace_id.to_string(),
                Kept {
                    lines: TraceLines::default(),
                    bytes: 0,
                },
            );
            inner.order.push_back(trace_id.to_string());
            inner.counts.traces += 1;
        }
        // Room for the line: older traces go first; the line's own trace last, so a single
        // trace over the total keeps its newest lines rather than none.
        while inner.counts.bytes + cost > self.max_total_bytes
            && inner.order.front().is_some_and(|oldest| oldest != trace_id)
        {
            inner.evict_oldest();
        }
        if inner.counts.bytes + cost > self.max_total_bytes {
            let kept = inner.traces.get_mut(trace_id).expect("inserted above");
            kept.lines.dropped += 1;
            inner.counts.lines_over_trace_cap += 1;
            return;
        }
        let kept = inner.traces.get_mut(trace_id).expect("inserted above");
        kept.lines.lines.push(line);
        kept.bytes += cost;
        inner.counts.bytes += cost;
        inner.counts.lines += 1;
    }

    /// The lines kept for `trace_id`, oldest first; `None` when none are.
    pub fn lines(&self, trace_id: &str) -> Option<TraceLines> {
        self.lock()
            .traces
            .get(trace_id)
            .map(|kept| kept.lines.clone())
    }

    /// What is kept and what was let go.
    pub fn counts(&self) -> TraceLogCounts {
        self.lock().counts.clone()
    }
}

impl Inner {
    fn evict_oldest(&mut self) {
        let Some(oldest) = self.order.pop_front() else {
            return;
        };
        if let Some(kept) = self.traces.remove(&oldest) {
            self.counts.traces -= 1;
            self.counts.lines -= kept.lines.lines.len();
            self.counts.bytes -= kept.bytes;
            self.counts.traces_evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str) -> TraceLogLine {
        TraceLogLine {
            time: 1.0,
            level: "INFO".into(),
            service: Some("Faults".into()),
            version: None,
            source: "stdout".into(),
            message: message.into(),
            cut: false,
        }
    }

    fn messages(store: &TraceLogStore, trace: &str) -> Vec<String> {
        store
            .lines(trace)
            .map(|kept| kept.lines.into_iter().map(|l| l.message).collect())
            .unwrap_or_default()
    }

    #[test]
    fn lines_are_kept_by_trace_in_the_order_they_came() {
        let store = TraceLogStore::new(10);
        store.add("1-a", line("one"));
        store.add("1-b", line("other"));
        store.add("1-a", line("two"));
        assert_eq!(messages(&store, "1-a"), ["one", "two"]);
        assert_eq!(messages(&store, "1-b"), ["other"]);
        assert!(store.lines("1-c").is_none());
        let counts = store.counts();
        assert_eq!((counts.traces, counts.lines), (2, 3));
    }

    #[test]
    fn a_trace_keeps_its_first_lines_and_counts_the_rest() {
        let store = TraceLogStore::with_bounds(10, 3, MAX_TOTAL_BYTES);
        for i in 0..5 {
            store.add("1-a", line(&i.to_string()));
        }
        let kept = store.lines("1-a").unwrap();
        assert_eq!(messages(&store, "1-a"), ["0", "1", "2"]);
        assert_eq!(kept.dropped, 2);
        assert_eq!(store.counts().lines_over_trace_cap, 2);
    }

    #[test]
    fn the_oldest_trace_goes_when_there_are_too_many() {
        let store = TraceLogStore::new(2);
        store.add("1-a", line("a"));
        store.add("1-b", line("b"));
        // A later line of the oldest trace does not make it younger: first come, first gone.
        store.add("1-a", line("a2"));
        store.add("1-c", line("c"));
        assert!(store.lines("1-a").is_none());
        assert_eq!(messages(&store, "1-b"), ["b"]);
        assert_eq!(messages(&store, "1-c"), ["c"]);
        let counts = store.counts();
        assert_eq!(
            (counts.traces, counts.lines, counts.traces_evicted),
            (2, 2, 1)
        );
    }

    #[test]
    fn the_total_bytes_are_bounded_by_evicting_the_oldest_traces() {
        let cost = line("x".repeat(100).as_str()).cost();
        let store = TraceLogStore::with_bounds(100, 100, cost * 3);
        for trace in ["1-a", "1-b", "1-c", "1-d"] {
            store.add(trace, line(&"x".repeat(100)));
        }
        assert!(store.lines("1-a").is_none());
        assert!(store.lines("1-d").is_some());
        let counts = store.counts();
        assert_eq!(counts.bytes, cost * 3);
        assert_eq!(counts.traces_evicted, 1);
        // One trace alone over the total keeps what fits and counts the rest.
        for _ in 0..5 {
            store.add("1-e", line(&"x".repeat(100)));
        }
        assert_eq!(messages(&store, "1-e").len(), 3);
        assert_eq!(store.lines("1-e").unwrap().dropped, 2);
        assert!(store.counts().bytes <= cost * 3);
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary() {
        let store = TraceLogStore::new(1);
        // 'é' is two bytes: an odd cut would split one.
        store.add("1-a", line(&format!("x{}", "é".repeat(MAX_MESSAGE_BYTES))));
        let kept = store.lines("1-a").unwrap().lines.remove(0);
        assert!(kept.cut);
        assert_eq!(kept.message.len(), MAX_MESSAGE_BYTES - 1);
        assert!(kept.message.ends_with('é'));
    }
}
