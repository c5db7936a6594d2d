//! How the host spells a log line: `text` (tracing's own format, for people) or `json` (one
//! object per line, for CloudWatch Logs and whatever reads the task's log).
//!
//! A JSON line carries `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, then every
//! field of the event; `service` and `version` (the component's short content hash) where the
//! line belongs to a service. A line that belongs to a request, which the host marks with its
//! X-Ray `trace_id` field (and `segment_id` where it knows it), carries the request in the
//! forms the tools read:
//!
//! - `AWS-XRAY-TRACE-ID`: `1-…-…@<segment id>` (the trace id alone when no segment is known),
//!   the key and value the AWS X-Ray SDK for Java's log listeners (`Log4JSegmentListener`,
//!   `SLF4JSegmentListener`) inject; the X-Ray console's trace-to-logs view finds the lines of
//!   a trace by its id in the log groups the segment names.
//! - `trace_id` and `span_id`: the W3C forms (32 and 16 lowercase hex digits), the field names
//!   OpenTelemetry's "trace context in non-OTLP log formats" gives for JSON logs.
//!
//! Values are escaped by serde_json, so a component's line (already escaped by the runtime's
//! guest output) cannot end the object or pass for another one.

use clap::ValueEnum;
use serde_json::Value;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use xray::ids::{SegmentId, TraceId};

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `2026-12-03T13:27:29.123456Z  INFO service=… message`: for a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the request's trace ids: for CloudWatch Logs.
    Json,
}

/// The `json` format, as a tracing-subscriber event formatter.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        writeln!(
            writer,
            "{}",
            json_line(
                &timestamp,
                metadata.level().as_str(),
                metadata.target(),
                fields
            )
        )
    }
}

/// An event's fields, in the order it gave them.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    others: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, Value::String(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, Value::from(value));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::String(message)) => self.message = Some(message),
            (name, value) => self.others.push((name, value)),
        }
    }

    /// Takes the field `name` if it is text.
    fn take_text(&mut self, name: &str) -> Option<String> {
        let index = self
            .others
            .iter()
            .position(|(n, value)| *n == name && value.is_string())?;
        match self.others.remove(index).1 {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

/// One JSON object: the fixed keys first, so that a person reading the raw log finds them.
fn json_line(timestamp: &str, level: &str, target: &str, mut fields: Fields) -> String {
    let mut out = String::with_capacity(256);
    out.push('{');
    let mut first = true;
    let mut put = |out: &mut String, key: &str, value: &Value| {
        if !first {
            out.push(',');
        }
        first = false;
        // Keys and values through serde_json: escaped whatever they hold.
        let _ = write!(out, "{}:{}", Value::from(key), value);
    };
    put(&mut out, "timestamp", &Value::from(timestamp));
    put(&mut out, "level", &Value::from(level));
    put(&mut out, "target", &Value::from(target));
    for key in ["service", "version"] {
        if let Some(text) = fields.take_text(key) {
            put(&mut out, key, &Value::from(text));
        }
    }
    let trace = fields.take_text("trace_id");
    let segment = fields.take_text("segment_id");
    match trace.as_deref().and_then(TraceId::parse) {
        Some(trace_id) => {
            let segment_id = segment.as_deref().and_then(SegmentId::parse);
            let xray = match &segment_id {
                Some(segment_id) => format!("{}@{}", trace_id.as_str(), segment_id.as_str()),
                None => trace_id.as_str().to_string(),
            };
            put(&mut out, "AWS-XRAY-TRACE-ID", &Value::from(xray));
            put(&mut out, "trace_id", &Value::from(trace_id.to_w3c()));
            if let Some(segment_id) = segment_id {
                put(&mut out, "span_id", &Value::from(segment_id.as_str()));
            }
        }
        // Not an X-Ray id: kept as it came, never dropped.
        None => {
            for (key, value) in [("trace_id", trace), ("segment_id", segment)] {
                if let Some(value) = value {
                    put(&mut out, key, &Value::from(value));
                }
            }
        }
    }
    put(
        &mut out,
        "message",
        &Value::from(fields.message.take().unwrap_or_default()),
    );
    for (key, value) in &fields.others {
        put(&mut out, key, value);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, others: &[(&'static str, Value)]) -> Fields {
        Fields {
            message: Some(message.to_string()),
            others: others.to_vec(),
        }
    }

    #[test]
    fn a_request_line_carries_its_trace_in_the_x_ray_and_w3c_forms() {
        let line = json_line(
            "2026-12-03T13:27:29.123456Z",
            "INFO",
            "component",
            fields(
                "hello \"world\"\n",
                &[
                    ("service", Value::from("Backend #2")),
                    ("version", Value::from("0123456789ab")),
                    ("stream", Value::from("stdout")),
                    (
                        "trace_id",
                        Value::from("1-5759e988-bd862e3fe1be46a994272793"),
                    ),
                    ("segment_id", Value::from("53995c3f42cd8ad8")),
                    ("cut", Value::from(true)),
                ],
            ),
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["timestamp"], "2026-12-03T13:27:29.123456Z");
        assert_eq!(parsed["level"], "INFO");
        assert_eq!(parsed["target"], "component");
        assert_eq!(parsed["service"], "Backend #2");
        assert_eq!(parsed["version"], "0123456789ab");
        assert_eq!(parsed["message"], "hello \"world\"\n");
        assert_eq!(
            parsed["AWS-XRAY-TRACE-ID"],
            "1-5759e988-bd862e3fe1be46a994272793@53995c3f42cd8ad8"
        );
        assert_eq!(parsed["trace_id"], "5759e988bd862e3fe1be46a994272793");
        assert_eq!(parsed["span_id"], "53995c3f42cd8ad8");
        assert_eq!(parsed["stream"], "stdout");
        assert_eq!(parsed["cut"], true);
        assert!(parsed.get("segment_id").is_none());
        // One line, whatever the message held.
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"timestamp":"#));
    }

    #[test]
    fn a_line_of_no_request_has_no_trace_keys_and_a_foreign_id_is_kept_as_it_came() {
        let line = json_line("t", "WARN", "xray_host", fields("plain", &[]));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert!(parsed.get("AWS-XRAY-TRACE-ID").is_none());
        assert!(parsed.get("trace_id").is_none());
        assert_eq!(parsed["message"], "plain");

        let line = json_line(
            "t",
            "WARN",
            "xray_host",
            fields("odd", &[("trace_id", Value::from("not-an-id"))]),
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["trace_id"], "not-an-id");
        assert!(parsed.get("AWS-XRAY-TRACE-ID").is_none());
    }

    #[test]
    fn a_trace_id_without_a_segment_is_the_x_ray_key_alone() {
        let line = json_line(
            "t",
            "WARN",
            "xray_host_runtime",
            fields(
                "the request passed its deadline",
                &[(
                    "trace_id",
                    Value::from("1-5759e988-bd862e3fe1be46a994272793"),
                )],
            ),
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed["AWS-XRAY-TRACE-ID"],
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert!(parsed.get("span_id").is_none());
    }
}
