//! Trace and segment ids, drawn from the operating system's CSPRNG.
//!
//! Trace ids are echoed to clients in response headers, and predictable ones would let a client
//! forge a traced request, so they never come from a seeded PRNG. The bytes come from a
//! per-thread buffer of the OS generator's output ([`crate::random`]), not a system call each.

use crate::random::os_bytes;
use serde::Serialize;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// An X-Ray trace id: `1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>`, lowercase.
///
/// Only [`TraceId::new`] and [`TraceId::parse`] make one, so a value of this type is always
/// well formed and can be written into a header or a document as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TraceId(String);

impl TraceId {
    /// A new trace id for a request that starts now.
    #[allow(clippy::new_without_default)] // a default id would be a random one: say so at the call
    pub fn new() -> Self {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut id = String::with_capacity(35);
        id.push_str("1-");
        push_hex(&mut id, &(seconds as u32).to_be_bytes());
        id.push('-');
        push_hex(&mut id, &os_bytes::<12>());
        Self(id)
    }

    /// `text` as a trace id, when it is one (`1-` + 8 hex + `-` + 24 hex; upper-case hex is
    /// accepted and lowered).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let valid = bytes.len() == 35
            && bytes[0] == b'1'
            && bytes[1] == b'-'
            && bytes[10] == b'-'
            && bytes[2..10].iter().all(u8::is_ascii_hexdigit)
            && bytes[11..].iter().all(u8::is_ascii_hexdigit);
        valid.then(|| Self(text.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id OpenTelemetry and W3C Trace Context write for this trace: the 32 hex digits
    /// without the version and the dashes.
    pub fn to_w3c(&self) -> String {
        // `1-` + 8 hex + `-` + 24 hex, always (the type's invariant).
        let mut hex = String::with_capacity(32);
        hex.push_str(&self.0[2..10]);
        hex.push_str(&self.0[11..]);
        hex
    }

    /// A W3C trace id (32 hex digits, not all zero) as X-Ray's: `1-<first 8>-<last 24>`. X-Ray
    /// takes any W3C id, so the first 8 digits need not be a recent time.
    pub fn from_w3c(hex: &str) -> Option<Self> {
        let valid = hex.len() == 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && hex.bytes().any(|b| b != b'0');
        if !valid {
            return None;
        }
        let mut id = String::with_capacity(35);
        id.push_str("1-");
        id.push_str(&hex[..8]);
        id.push('-');
        id.push_str(&hex[8..]);
        Some(Self(id.to_ascii_lowercase()))
    }

    /// The 16 bytes OTLP carries.
    pub fn to_w3c_bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        decode_hex(&self.to_w3c(), &mut bytes);
        bytes
    }

    /// OTLP's 16 bytes as a trace id, when there are 16 and they are not all zero.
    pub fn from_w3c_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 {
            return None;
        }
        let mut hex = String::with_capacity(32);
        push_hex(&mut hex, bytes);
        Self::from_w3c(&hex)
    }
}

/// A segment or subsegment id: 64 random bits as 16 lowercase hex digits. Exception ids in a
/// `cause` have the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SegmentId(String);

impl SegmentId {
    /// A new random id.
    #[allow(clippy::new_without_default)] // a default id would be a random one: say so at the call
    pub fn new() -> Self {
        let mut id = String::with_capacity(16);
        push_hex(&mut id, &os_bytes::<8>());
        Self(id)
    }

    /// `text` as a segment id, when it is 16 hex digits (lowered).
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| Self(text.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 8 bytes OTLP carries for a span id (the same 64 bits: a span id and a segment id
    /// are one thing written two ways).
    pub fn to_w3c_bytes(&self) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        decode_hex(&self.0, &mut bytes);
        bytes
    }

    /// OTLP's 8 bytes as a segment id, when there are 8 and they are not all zero (W3C's
    /// invalid span id).
    pub fn from_w3c_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 8 || bytes.iter().all(|b| *b == 0) {
            return None;
        }
        let mut hex = String::with_capacity(16);
        push_hex(&mut hex, bytes);
        Some(Self(hex))
    }
}

macro_rules! text_id {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(TraceId);
text_id!(SegmentId);

/// Appends `bytes` as lowercase hex. By hand rather than `format!("{b:02x}")` per byte: ids are
/// made on every request, and the formatting machinery cost more than the random bytes (the
/// profile in scripts/profile-request.sh).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
}

/// Hex digits into `out` (the caller's invariant: `hex` is `2 * out.len()` hex digits).
fn decode_hex(hex: &str, out: &mut [u8]) {
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        *byte = digit(pair[0]) << 4 | digit(pair[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_the_x_ray_shapes() {
        let trace = TraceId::new().to_string();
        assert_eq!(trace.len(), 35);
        assert!(trace.starts_with("1-"));
        assert_eq!(&trace[10..11], "-");
        assert!(
            trace[2..10]
                .chars()
                .chain(trace[11..].chars())
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let segment = SegmentId::new().to_string();
        assert_eq!(segment.len(), 16);
        assert!(segment.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    }

    #[test]
    fn the_trace_id_starts_with_the_current_epoch_second() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let trace = TraceId::new().to_string();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let seconds = u64::from_str_radix(&trace[2..10], 16).unwrap();
        assert!((before..=after).contains(&seconds), "{trace}");
    }

    #[test]
    fn parsing_accepts_the_shapes_and_lowers_the_case() {
        let root = "1-5759E988-BD862E3FE1BE46A994272793";
        assert_eq!(
            TraceId::parse(root).unwrap(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(
            SegmentId::parse("53995C3F42CD8AD8").unwrap(),
            "53995c3f42cd8ad8"
        );
        assert!(TraceId::parse("2-5759e988-bd862e3fe1be46a994272793").is_none());
        assert!(SegmentId::parse("53995c3f42cd8ad").is_none());
        let fresh = TraceId::new();
        assert_eq!(TraceId::parse(fresh.as_str()), Some(fresh));
    }

    #[test]
    fn w3c_forms_are_the_same_ids_without_the_dashes() {
        let id = TraceId::parse("1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert_eq!(id.to_w3c(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(
            TraceId::from_w3c("5759E988BD862E3FE1BE46A994272793"),
            Some(id.clone())
        );
        assert_eq!(TraceId::from_w3c_bytes(&id.to_w3c_bytes()), Some(id));
        assert_eq!(TraceId::from_w3c(&"0".repeat(32)), None);
        assert_eq!(TraceId::from_w3c("5759e988bd862e3fe1be46a99427279"), None);
        assert_eq!(TraceId::from_w3c_bytes(&[1; 15]), None);
        let span = SegmentId::parse("00f067aa0ba902b7").unwrap();
        assert_eq!(
            span.to_w3c_bytes(),
            [0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(SegmentId::from_w3c_bytes(&span.to_w3c_bytes()), Some(span));
        assert_eq!(SegmentId::from_w3c_bytes(&[0; 8]), None);
        assert_eq!(SegmentId::from_w3c_bytes(&[1; 9]), None);
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| SegmentId::new().to_string()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
