//! The log lines of each request, copied to the daemon stand-in of the same process so that its
//! console shows a trace's lines beside its timeline.
//!
//! A `tracing` layer beside the one that writes the log: every event that carries an X-Ray
//! `trace_id` field (the host's warnings about a request, the lines a component printed, a
//! component's wasi:otel log records) is also added to the stand-in's bounded
//! [`TraceLogStore`], with its time, level, service, version, stream (or target) and message.
//! The layer exists from the start, since the subscriber is set before the manifest is read;
//! it copies nothing until [`TraceLogTee::send_to`] gives it the store, so a host without a
//! stand-in pays one atomic load per event. Adding a line takes the store's short lock and
//! never waits on the log's writer, so it stalls no request.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use xray::ids::TraceId;
use xray_local::trace_logs::{TraceLogLine, TraceLogStore};

/// The layer, and the handle that later gives it the stand-in's store (clones share it).
#[derive(Clone, Default)]
pub struct TraceLogTee {
    store: Arc<OnceLock<Arc<TraceLogStore>>>,
}

impl TraceLogTee {
    /// From now on, copy each line of a trace into `store`.
    pub fn send_to(&self, store: Arc<TraceLogStore>) {
        // Set once: there is at most one stand-in in a process.
        let _ = self.store.set(store);
    }
}

impl<S: Subscriber> Layer<S> for TraceLogTee {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let Some(store) = self.store.get() else {
            return;
        };
        let mut fields = LineFields::default();
        event.record(&mut fields);
        let Some(trace_id) = fields.trace_id.as_deref().and_then(TraceId::parse) else {
            return;
        };
        let metadata = event.metadata();
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        store.add(
            trace_id.as_str(),
            TraceLogLine {
                time,
                level: metadata.level().as_str().to_string(),
                service: fields.service,
                version: fields.version,
                source: fields
                    .stream
                    .unwrap_or_else(|| metadata.target().to_string()),
                message: fields.message,
                cut: fields.cut,
            },
        );
    }
}

/// The fields of an event the console shows; the others are appended to the message as
/// `key=value`, as the text log shows them.
#[derive(Default)]
struct LineFields {
    trace_id: Option<String>,
    service: Option<String>,
    version: Option<String>,
    stream: Option<String>,
    cut: bool,
    message: String,
    others: String,
}

impl LineFields {
    fn record_text(&mut self, field: &Field, text: String) {
        match field.name() {
            "trace_id" => self.trace_id = Some(text),
            "service" => self.service = Some(text),
            "version" => self.version = Some(text),
            "stream" => self.stream = Some(text),
            "message" => {
                self.message = text;
                if !self.others.is_empty() {
                    // Fields before the message: put them after it.
                    let others = std::mem::take(&mut self.others);
                    self.message.push_str(&others);
                }
            }
            // The segment is the trace's own; the console shows the trace.
            "segment_id" => {}
            name => {
                let target = if self.message.is_empty() {
                    &mut self.others
                } else {
                    &mut self.message
                };
                let _ = write!(target, " {name}={text}");
            }
        }
    }
}

impl Visit for LineFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_text(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "cut" {
            self.cut = value;
        } else {
            self.record_text(field, value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";

    fn lines_logged(log: impl FnOnce()) -> Vec<TraceLogLine> {
        let tee = TraceLogTee::default();
        let store = Arc::new(TraceLogStore::new(10));
        tee.send_to(store.clone());
        let subscriber = tracing_subscriber::registry().with(tee);
        tracing::subscriber::with_default(subscriber, log);
        store
            .lines(TRACE)
            .map(|kept| kept.lines)
            .unwrap_or_default()
    }

    #[test]
    fn a_line_with_a_trace_id_is_kept_with_its_service_stream_and_message() {
        let lines = lines_logged(|| {
            // As the runtime's guest output logs a component's line.
            tracing::info!(
                target: "component",
                service = %"Faults",
                version = Some("0123456789ab"),
                stream = %"stderr",
                trace_id = Some(tracing::field::display(TRACE)),
                cut = Some(true),
                message = %"printed",
            );
            // As the runtime warns about a request.
            tracing::warn!(service = %"Faults", trace_id = %TRACE, "the request passed its deadline");
            // Fields besides the known ones stay readable.
            tracing::warn!(trace_id = TRACE, severity = ?"WARN", "{:?}", "a record");
            // Not this trace's, or no trace's: not kept here.
            tracing::info!(trace_id = %"1-5759e988-000000000000000000000000", "another");
            tracing::info!(trace_id = "", "none");
            tracing::info!("plain");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        let printed = &lines[0];
        assert_eq!(printed.message, "printed");
        assert_eq!(printed.service.as_deref(), Some("Faults"));
        assert_eq!(printed.version.as_deref(), Some("0123456789ab"));
        assert_eq!(printed.source, "stderr");
        assert_eq!(printed.level, "INFO");
        assert!(printed.cut);
        let warning = &lines[1];
        assert_eq!(warning.message, "the request passed its deadline");
        assert_eq!(warning.level, "WARN");
        assert_eq!(warning.source, module_path!());
        assert_eq!(lines[2].message, "\"a record\" severity=\"WARN\"");
    }

    #[test]
    fn nothing_is_copied_until_the_store_is_given() {
        let tee = TraceLogTee::default();
        let subscriber = tracing_subscriber::registry().with(tee.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(trace_id = TRACE, "before");
            let store = Arc::new(TraceLogStore::new(10));
            tee.send_to(store.clone());
            tracing::info!(trace_id = TRACE, "after");
            let kept: Vec<String> = store
                .lines(TRACE)
                .unwrap()
                .lines
                .into_iter()
                .map(|line| line.message)
                .collect();
            assert_eq!(kept, ["after"]);
        });
    }
}
