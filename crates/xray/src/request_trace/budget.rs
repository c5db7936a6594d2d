//! How much one request may record, and what it has drawn.
//!
//! A component is not trusted, and everything it records through the tracing interface or
//! wasi:otel stays in the host's memory until its request ends. Without a bound, one request
//! could grow the host without limit: thousands of metadata documents, exceptions with
//! endless stacks, subsegments by the million. So every request draws on one budget, whichever
//! interface the component records through:
//!
//! | limit | default | counts |
//! |---|---|---|
//! | bytes | 256 KiB | names, annotation keys and text, metadata namespaces, keys and JSON, exception types, messages and frames, span attributes |
//! | subsegments | 1000 | the component's own, its spans, and the host's records of its calls |
//! | metadata entries | 500 | distinct `namespace` / `key` pairs |
//! | exceptions | 100 | exceptions the component records |
//! | stack frames | 64 | frames of one exception |
//!
//! X-Ray's own limits stand beside these: 50 annotations per trace, and 64 KiB per segment
//! document (a larger trace is sent as independent subsegment documents, as the SDKs stream). The
//! defaults keep about four full documents per request, far more than the reference services
//! record (a few KiB), and bound the default 256 concurrent requests to about 64 MiB of
//! recorded text.
//!
//! X-Ray itself keeps about 500 kB of documents per trace.
//!
//! Past a limit, the call is refused with `limit-exceeded` naming the limit and the flag that
//! raises it, the segment records that the trace was truncated (`xray_host.truncated` in its
//! metadata), and the host logs it once per request. What the host records about a request on
//! its own (its faults, the response) never draws on the budget.

use crate::document::Exception;

/// How much one request may record (see the module documentation for what each counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingLimits {
    /// Bytes of text and JSON.
    pub bytes: usize,
    /// Subsegments.
    pub subsegments: usize,
    /// Distinct metadata entries.
    pub metadata_entries: usize,
    /// Exceptions.
    pub exceptions: usize,
    /// Stack frames of one exception.
    pub stack_frames: usize,
}

impl Default for RecordingLimits {
    fn default() -> Self {
        Self {
            bytes: 256 * 1024,
            subsegments: 1000,
            metadata_entries: 500,
            exceptions: 100,
            stack_frames: 64,
        }
    }
}

/// One of the [`RecordingLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`RecordingLimits::bytes`].
    Bytes,
    /// [`RecordingLimits::subsegments`].
    Subsegments,
    /// [`RecordingLimits::metadata_entries`].
    MetadataEntries,
    /// [`RecordingLimits::exceptions`].
    Exceptions,
    /// [`RecordingLimits::stack_frames`].
    StackFrames,
}

impl Limit {
    /// The name the trace records (`xray_host.truncated`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Subsegments => "subsegments",
            Self::MetadataEntries => "metadata_entries",
            Self::Exceptions => "exceptions",
            Self::StackFrames => "stack_frames",
        }
    }

    /// The command-line flag that raises it.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Bytes => "--max-trace-bytes",
            Self::Subsegments => "--max-trace-subsegments",
            Self::MetadataEntries => "--max-trace-metadata-entries",
            Self::Exceptions => "--max-trace-exceptions",
            Self::StackFrames => "--max-trace-stack-frames",
        }
    }

    /// What the component is told: the limit, its value and the flag.
    pub fn message(self, limits: &RecordingLimits) -> String {
        let (what, value) = match self {
            Self::Bytes => ("bytes of recorded text and JSON", limits.bytes),
            Self::Subsegments => ("subsegments", limits.subsegments),
            Self::MetadataEntries => ("metadata entries", limits.metadata_entries),
            Self::Exceptions => ("exceptions", limits.exceptions),
            Self::StackFrames => ("stack frames in one exception", limits.stack_frames),
        };
        format!(
            "this request's trace may hold at most {value} {what} ({}); nothing was recorded",
            self.flag()
        )
    }
}

/// What a request has drawn from its budget.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Usage {
    /// Bytes drawn.
    pub(crate) bytes: usize,
    /// Metadata entries made.
    pub(crate) metadata_entries: usize,
    /// Exceptions recorded.
    pub(crate) exceptions: usize,
    /// The first limit the request ran into.
    pub(crate) truncated: Option<Limit>,
    /// Whether that has been logged.
    logged: bool,
}

impl Usage {
    /// Notes that `limit` refused something; the first limit is what the trace names.
    pub(crate) fn exceeded(&mut self, limit: Limit) {
        self.truncated.get_or_insert(limit);
    }

    /// The limit to log, the first time one is run into in the request.
    pub(crate) fn take_notice(&mut self) -> Option<Limit> {
        match self.truncated {
            Some(limit) if !self.logged => {
                self.logged = true;
                Some(limit)
            }
            _ => None,
        }
    }

    /// The bytes left.
    pub(crate) fn bytes_left(&self, limits: &RecordingLimits) -> usize {
        limits.bytes.saturating_sub(self.bytes)
    }
}

/// The bytes an exception holds: its type, message and frames.
pub(crate) fn exception_bytes(exception: &Exception) -> usize {
    let frames: usize = exception
        .stack
        .iter()
        .map(|frame| {
            frame.path.as_ref().map_or(0, String::len) + frame.label.as_ref().map_or(0, String::len)
        })
        .sum();
    exception.kind.as_ref().map_or(0, String::len) + exception.message.len() + frames
}
