//! The console's own endpoints, beside the X-Ray API it shares with the AWS CLI:
//!
//! - `GET /console/logs?trace_id=ID`: the log lines the trace printed ([`crate::trace_logs`]);
//!   `ID` in the X-Ray form (`1-5759e988-bd862e3fe1be46a994272793`) or the W3C form the JSON
//!   log's `trace_id` holds (`5759e988bd862e3fe1be46a994272793`).
//! - `GET /console/metrics`: requests per second, error rate and latency histogram per service
//!   ([`crate::service_metrics`]).
//!
//! Both answer whether the stand-in gets anything to show: it does only when it runs in the
//! host's process (`xray-host run` with a `[daemon]`), not as `xray-host daemon`.

use crate::service_metrics::MetricsPanel;
use crate::trace_logs::{TraceLines, TraceLogStore};
use serde::Serialize;
use xray::ids::TraceId;

/// The path of the trace's log lines.
pub const LOGS_PATH: &str = "/console/logs";
/// The path of the metrics panel.
pub const METRICS_PATH: &str = "/console/metrics";

/// The answer of [`LOGS_PATH`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogsAnswer {
    /// The trace, in the X-Ray form.
    #[serde(rename = "TraceId")]
    pub trace_id: String,
    /// Whether the host hands this stand-in its log lines; when it does not, `Lines` is always
    /// empty and `Note` says why.
    #[serde(rename = "Collected")]
    pub collected: bool,
    /// What the console shows when there is nothing else to say.
    #[serde(rename = "Note", skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// The lines and how many were not kept.
    #[serde(flatten)]
    pub lines: TraceLines,
}

/// The answer of [`METRICS_PATH`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsAnswer {
    /// Whether the stand-in reads the host's counters.
    #[serde(rename = "Collected")]
    pub collected: bool,
    /// What the console shows when there is nothing to show.
    #[serde(rename = "Note", skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// The panel (empty when not collected).
    #[serde(flatten)]
    pub panel: MetricsPanel,
}

/// Why a stand-in of its own has no lines or metrics.
const APART: &str = "This stand-in runs apart from the host (xray-host daemon): log lines and \
                     metrics show when it runs in the host's process (xray-host run with a \
                     [daemon] in the manifest)";

/// The trace id a query string (`trace_id=…`, other parameters ignored) names, in the X-Ray
/// form; or why there is none, in words for the console.
pub fn trace_id_of_query(query: Option<&str>) -> Result<TraceId, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("trace_id="))
        .ok_or("name the trace: ?trace_id=1-5759e988-bd862e3fe1be46a994272793")?;
    let value = value.trim_matches(|c: char| c == '+' || c.is_ascii_whitespace());
    TraceId::parse(value)
        .or_else(|| TraceId::from_w3c(&value.to_ascii_lowercase()))
        .ok_or_else(|| {
            let shown: String = value.chars().take(80).collect();
            format!(
                "{shown:?} is not a trace id: give the X-Ray form (1-5759e988-bd862e3fe1be46a994272793) \
                 or the W3C form of the JSON log's trace_id (32 hex digits)"
            )
        })
}

/// The lines of the trace the query names.
pub fn logs(
    store: &TraceLogStore,
    collected: bool,
    query: Option<&str>,
) -> Result<LogsAnswer, String> {
    let trace_id = trace_id_of_query(query)?;
    let lines = if collected {
        store.lines(trace_id.as_str()).unwrap_or_default()
    } else {
        TraceLines::default()
    };
    Ok(LogsAnswer {
        trace_id: trace_id.as_str().to_string(),
        collected,
        note: (!collected).then_some(APART),
        lines,
    })
}

/// The metrics panel, or an empty one that says why.
pub fn metrics(panel: Option<MetricsPanel>) -> MetricsAnswer {
    match panel {
        Some(panel) => MetricsAnswer {
            collected: true,
            note: None,
            panel,
        },
        None => MetricsAnswer {
            collected: false,
            note: Some(APART),
            panel: MetricsPanel {
                window_seconds: 0.0,
                slots: 0,
                services: Vec::new(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_id_is_read_in_either_form_and_anything_else_is_refused_with_a_reason() {
        let xray = "1-5759e988-bd862e3fe1be46a994272793";
        for query in [
            format!("trace_id={xray}"),
            format!("x=1&trace_id={xray}&y=2"),
            "trace_id=5759e988bd862e3fe1be46a994272793".to_string(),
            "trace_id=5759E988BD862E3FE1BE46A994272793".to_string(),
            format!("trace_id=+{xray}+"),
        ] {
            assert_eq!(
                trace_id_of_query(Some(&query)).map(|id| id.as_str().to_string()),
                Ok(xray.to_string()),
                "{query}"
            );
        }
        for query in [
            None,
            Some(""),
            Some("id=1"),
            Some("trace_id="),
            Some("trace_id=1-zz"),
        ] {
            let why = trace_id_of_query(query).unwrap_err();
            assert!(why.contains("1-5759e988-"), "{query:?}: {why}");
        }
    }

    #[test]
    fn a_stand_in_apart_from_the_host_says_why_it_has_nothing() {
        let store = TraceLogStore::new(1);
        let answer = logs(
            &store,
            false,
            Some("trace_id=1-5759e988-bd862e3fe1be46a994272793"),
        )
        .unwrap();
        assert!(!answer.collected);
        assert!(answer.note.unwrap().contains("xray-host run"));
        let answer = metrics(None);
        assert!(!answer.collected && answer.panel.services.is_empty());
    }
}
