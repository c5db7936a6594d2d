//! W3C Trace Context's `traceparent` header, and how its ids map onto X-Ray's.
//!
//! `traceparent: 00-<trace id, 32 hex>-<parent span id, 16 hex>-<flags, 2 hex>`, lowercase.
//! The same trace in X-Ray is `1-<first 8 hex>-<last 24 hex>`, and a span id is a segment id
//! (16 hex) as it is, so one id names the trace on both sides. X-Ray ids begin with the trace's
//! start time in epoch seconds; an id from elsewhere may not, and X-Ray accepts it as long as
//! those 8 digits are a time within its retention window (xray-spec §5.1), so an incoming trace
//! id is kept as it is and only new ids are made X-Ray-valid ([`TraceId::new`]).
//!
//! Parsing follows the W3C recommendation (level 1, §3.2 and §4.3): version `ff` is invalid;
//! version `00` must be exactly 55 characters; a later version is read by its first four fields
//! if the fifth character after them is a `-` or the value ends there; upper-case hex, an
//! all-zero trace id and an all-zero parent id are invalid. An invalid header is ignored, as if
//! absent.

use crate::ids::{SegmentId, TraceId};

/// The header name, lowercase as HTTP/2 wants it.
pub const HEADER_NAME: &str = "traceparent";

/// The `tracestate` header, passed on unchanged beside `traceparent`.
pub const STATE_HEADER_NAME: &str = "tracestate";

/// The `sampled` bit of the trace flags.
const SAMPLED: u8 = 0x01;

/// A valid `traceparent`, its ids in X-Ray's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the segment that continues the trace.
    pub parent_id: SegmentId,
    /// Whether the caller recorded its part of the trace (the `sampled` flag).
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a header value; `None` when it is not a valid `traceparent`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        let bytes = value.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let version = hex_byte(&bytes[0..2])?;
        match version {
            0xff => return None,
            0x00 if bytes.len() != 55 => return None,
            _ if bytes.len() > 55 && bytes[55] != b'-' => return None,
            _ => {}
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace = &value[3..35];
        let parent = &value[36..52];
        let flags = hex_byte(&bytes[53..55])?;
        if !is_lower_hex(trace) || !is_lower_hex(parent) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: TraceId::from_w3c(trace)?,
            parent_id: SegmentId::parse(parent)?,
            sampled: flags & SAMPLED != 0,
        })
    }

    /// The header value naming `trace_id`, with `parent_id` as the caller's span.
    pub fn format(trace_id: &TraceId, parent_id: &SegmentId, sampled: bool) -> String {
        format!(
            "00-{}-{}-{}",
            trace_id.to_w3c(),
            parent_id.as_str(),
            if sampled { "01" } else { "00" }
        )
    }
}

/// Two lowercase hex digits as a byte (upper case is invalid in `traceparent`).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(pair).ok()?;
    if !is_lower_hex(text) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_maps_onto_x_ray_ids() {
        let parent = TraceParent::parse(EXAMPLE).expect("valid");
        assert_eq!(
            parent.trace_id.as_str(),
            "1-4bf92f35-77b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.parent_id.as_str(), "00f067aa0ba902b7");
        assert!(parent.sampled);
        assert_eq!(
            TraceParent::format(&parent.trace_id, &parent.parent_id, true),
            EXAMPLE
        );
        let unsampled = EXAMPLE.replace("-01", "-00");
        assert!(!TraceParent::parse(&unsampled).unwrap().sampled);
    }

    #[test]
    fn a_new_x_ray_id_round_trips() {
        let trace = TraceId::new();
        let span = SegmentId::new();
        let header = TraceParent::format(&trace, &span, false);
        let parsed = TraceParent::parse(&header).unwrap();
        assert_eq!(
            (parsed.trace_id, parsed.parent_id, parsed.sampled),
            (trace, span, false)
        );
    }

    #[test]
    fn later_versions_are_read_by_their_first_four_fields() {
        let later = EXAMPLE.replacen("00-", "cc-", 1);
        assert!(TraceParent::parse(&later).is_some());
        assert!(TraceParent::parse(&format!("{later}-what-comes-next")).is_some());
        assert!(TraceParent::parse(&format!("{later}x")).is_none());
    }

    #[test]
    fn invalid_headers_are_refused() {
        for bad in [
            "",
            "00",
            &EXAMPLE.replacen("00-", "ff-", 1),
            &format!("{EXAMPLE}-"),
            &EXAMPLE.to_uppercase(),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
