//! The `X-Amzn-Trace-Id` header: a lenient parser and the serializer (xray-spec §5).
//!
//! Parsing follows the spec's recommendation for a tolerant reader, which is a blend of what the
//! SDKs do (§5.2):
//! - the value and every `;`-separated part are trimmed; keys are case-insensitive;
//! - a part without `=`, with an empty key or an empty value is skipped, not the whole header
//!   (Python discards the whole header; we keep what is usable);
//! - a value is everything after the first `=` (Go and Java), so values containing `=` survive;
//! - `Root` must be a valid trace id and `Parent` a valid segment id; an invalid one is dropped,
//!   so an invalid Root starts a new trace (Java and Node behaviour);
//! - `Self` (added by load balancers) is dropped;
//! - other fields (`Lineage`, custom ones) are kept in order and sent downstream, up to
//!   [`MAX_EXTRA_BYTES`] of keys and values (Node's bound), as Go, Java and Python do.

use crate::ids::{SegmentId, TraceId};
use std::fmt;

/// Bytes of unknown fields (keys plus values) kept from an incoming header.
pub const MAX_EXTRA_BYTES: usize = 256;

/// The header name, lowercase as HTTP/2 wants it.
pub const HEADER_NAME: &str = "x-amzn-trace-id";

/// The `Sampled` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampledFlag {
    /// `Sampled=1`.
    Yes,
    /// `Sampled=0`.
    No,
    /// `Sampled=?`: decide, and say what was decided in the response.
    Requested,
}

/// A parsed `X-Amzn-Trace-Id` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeader {
    /// `Root`, when present and valid.
    pub root: Option<TraceId>,
    /// `Parent`, when present and valid.
    pub parent: Option<SegmentId>,
    /// `Sampled`, when present and one of `1`, `0`, `?`.
    pub sampled: Option<SampledFlag>,
    /// Other fields, in order, within [`MAX_EXTRA_BYTES`].
    pub extra: Vec<(String, String)>,
}

impl TraceHeader {
    /// Parses a header value; never fails (a useless value yields an empty header).
    pub fn parse(value: &str) -> Self {
        let mut header = TraceHeader::default();
        let mut extra_bytes = 0;
        for part in value.trim().split(';') {
            let Some((key, field)) = part.split_once('=') else {
                continue;
            };
            let (key, field) = (key.trim(), field.trim());
            if key.is_empty() || field.is_empty() {
                continue;
            }
            match key.to_ascii_lowercase().as_str() {
                "root" => header.root = TraceId::parse(field),
                "parent" => header.parent = SegmentId::parse(field),
                "sampled" => {
                    header.sampled = match field {
                        "1" => Some(SampledFlag::Yes),
                        "0" => Some(SampledFlag::No),
                        "?" => Some(SampledFlag::Requested),
                        _ => None,
                    }
                }
                "self" => {}
                _ => {
                    let size = key.len() + field.len();
                    if extra_bytes + size <= MAX_EXTRA_BYTES
                        && !header
                            .extra
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case(key))
                    {
                        extra_bytes += size;
                        header.extra.push((key.to_string(), field.to_string()));
                    }
                }
            }
        }
        header
    }

    /// The header naming `parent` in trace `root`, with `Sampled=1|0` and the extra fields:
    /// what is sent downstream and what a component reads as its own context.
    pub fn for_parent(
        root: &TraceId,
        parent: &SegmentId,
        sampled: bool,
        extra: &[(String, String)],
    ) -> Self {
        TraceHeader {
            root: Some(root.clone()),
            parent: Some(parent.clone()),
            sampled: Some(if sampled {
                SampledFlag::Yes
            } else {
                SampledFlag::No
            }),
            extra: extra.to_vec(),
        }
    }
}

impl fmt::Display for TraceHeader {
    /// `Root=<id>` (if set) `;Parent=<id>` (if set) `;Sampled=<1|0|?>` (if set) `;k=v`…, with no
    /// leading or trailing `;` (xray-spec §5.3, without Java's trailing-`;` quirk).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sampled = self.sampled.map(|s| match s {
            SampledFlag::Yes => "1",
            SampledFlag::No => "0",
            SampledFlag::Requested => "?",
        });
        let fields = [
            ("Root", self.root.as_ref().map(TraceId::as_str)),
            ("Parent", self.parent.as_ref().map(SegmentId::as_str)),
            ("Sampled", sampled),
        ];
        let mut first = true;
        let mut write = |f: &mut fmt::Formatter<'_>, key: &str, value: &str| {
            let separator = if first { "" } else { ";" };
            first = false;
            write!(f, "{separator}{key}={value}")
        };
        for (key, value) in fields {
            if let Some(value) = value {
                write(f, key, value)?;
            }
        }
        for (key, value) in &self.extra {
            write(f, key, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    fn parse(value: &str) -> TraceHeader {
        TraceHeader::parse(value)
    }

    #[test]
    fn parses_the_documented_examples() {
        let h = parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
        assert_eq!(h.root.as_ref().map(TraceId::as_str), Some(ROOT));
        assert_eq!(
            h.parent.as_ref().map(SegmentId::as_str),
            Some("53995c3f42cd8ad8")
        );
        assert_eq!(h.sampled, Some(SampledFlag::Yes));
        let h = parse(&format!(
            "Root={ROOT};Sampled=1;Lineage=a87bd80c:1|68fd508a:5|c512fbe3:2"
        ));
        assert_eq!(
            h.extra,
            vec![("Lineage".into(), "a87bd80c:1|68fd508a:5|c512fbe3:2".into())]
        );
    }

    #[test]
    fn trims_the_value_and_each_part() {
        let h = parse(&format!(
            "  Root={ROOT} ;  Parent = 53995c3f42cd8ad8 ; Sampled=0  "
        ));
        assert_eq!(h.root.as_ref().map(TraceId::as_str), Some(ROOT));
        assert_eq!(
            h.parent.as_ref().map(SegmentId::as_str),
            Some("53995c3f42cd8ad8")
        );
        assert_eq!(h.sampled, Some(SampledFlag::No));
    }

    #[test]
    fn keys_are_case_insensitive() {
        let h = parse(&format!("root={ROOT};PARENT=53995c3f42cd8ad8;sAmPlEd=?"));
        assert_eq!(h.root.as_ref().map(TraceId::as_str), Some(ROOT));
        assert_eq!(
            h.parent.as_ref().map(SegmentId::as_str),
            Some("53995c3f42cd8ad8")
        );
        assert_eq!(h.sampled, Some(SampledFlag::Requested));
    }

    #[test]
    fn malformed_parts_are_skipped_not_the_whole_header() {
        let h = parse(&format!("garbage;Root={ROOT};=x;Parent=;Sampled=1;;"));
        assert_eq!(h.root.as_ref().map(TraceId::as_str), Some(ROOT));
        assert_eq!(h.parent, None);
        assert_eq!(h.sampled, Some(SampledFlag::Yes));
        assert!(h.extra.is_empty());
    }

    #[test]
    fn values_keep_everything_after_the_first_equals_sign() {
        let h = parse(&format!("Root={ROOT};Custom=a=b=c"));
        assert_eq!(h.extra, vec![("Custom".into(), "a=b=c".into())]);
    }

    #[test]
    fn invalid_roots_and_parents_are_dropped() {
        for root in [
            "1-5759e988-bd862e3fe1be46a99427279",  // 23 hex
            "2-5759e988-bd862e3fe1be46a994272793", // version 2
            "1-5759e98g-bd862e3fe1be46a994272793", // not hex
            "1_5759e988-bd862e3fe1be46a994272793", // separator
            "15759e988-bd862e3fe1be46a9942727931", // no dash
        ] {
            assert_eq!(
                parse(&format!("Root={root};Sampled=1")).root,
                None,
                "{root}"
            );
        }
        for parent in ["53995c3f42cd8ad", "53995c3f42cd8ad8a", "53995c3f42cd8adz"] {
            assert_eq!(
                parse(&format!("Root={ROOT};Parent={parent}")).parent,
                None,
                "{parent}"
            );
        }
        // Upper-case hex is valid and normalised.
        let h = parse("Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8");
        assert_eq!(h.root.as_ref().map(TraceId::as_str), Some(ROOT));
        assert_eq!(
            h.parent.as_ref().map(SegmentId::as_str),
            Some("53995c3f42cd8ad8")
        );
    }

    #[test]
    fn sampled_accepts_only_one_zero_and_question_mark() {
        for (value, expected) in [
            ("1", Some(SampledFlag::Yes)),
            ("0", Some(SampledFlag::No)),
            ("?", Some(SampledFlag::Requested)),
            ("true", None),
            ("2", None),
            ("01", None),
        ] {
            assert_eq!(
                parse(&format!("Sampled={value}")).sampled,
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn self_is_dropped_and_unknown_fields_are_bounded() {
        let h = parse(&format!(
            "Self=1-67891234-12456789abcdef012345678;Root={ROOT};Foo=bar"
        ));
        assert_eq!(h.extra, vec![("Foo".into(), "bar".into())]);
        let long = "v".repeat(200);
        let h = parse(&format!(
            "Root={ROOT};A={long};B={long};C=small;a=duplicate"
        ));
        assert_eq!(
            h.extra,
            vec![("A".into(), long.clone()), ("C".into(), "small".into())]
        );
    }

    #[test]
    fn empty_and_garbage_values_yield_an_empty_header() {
        assert_eq!(parse(""), TraceHeader::default());
        assert_eq!(parse(";;;"), TraceHeader::default());
        assert_eq!(parse("not a header"), TraceHeader::default());
    }

    #[test]
    fn serializes_present_fields_in_order_without_stray_separators() {
        let h = parse(&format!(
            "Lineage=x:1;Sampled=1;Parent=53995c3f42cd8ad8;Root={ROOT}"
        ));
        assert_eq!(
            h.to_string(),
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=x:1")
        );
        assert_eq!(
            parse("Parent=53995c3f42cd8ad8;Sampled=1").to_string(),
            "Parent=53995c3f42cd8ad8;Sampled=1"
        );
        assert_eq!(
            parse(&format!("Root={ROOT}")).to_string(),
            format!("Root={ROOT}")
        );
        assert_eq!(parse("Foo=bar").to_string(), "Foo=bar");
        assert_eq!(TraceHeader::default().to_string(), "");
    }

    #[test]
    fn the_downstream_header_names_the_subsegment_and_keeps_extra_fields() {
        let extra = vec![("Lineage".to_string(), "x:1".to_string())];
        assert_eq!(
            TraceHeader::for_parent(
                &TraceId::parse(ROOT).unwrap(),
                &SegmentId::parse("0123456789abcdef").unwrap(),
                false,
                &extra
            )
            .to_string(),
            format!("Root={ROOT};Parent=0123456789abcdef;Sampled=0;Lineage=x:1")
        );
    }

    #[test]
    fn round_trips() {
        let text = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=?;Lineage=a:1");
        assert_eq!(parse(&parse(&text).to_string()), parse(&text));
    }
}
