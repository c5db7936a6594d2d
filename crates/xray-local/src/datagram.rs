//! Reading the daemon protocol's datagrams (xray-spec §3.1): a JSON header line, a newline,
//! then one segment document. Checked as the real daemon checks them: the header's `format` is
//! `json` in any case and its `version` is the number 1; anything else is rejected.

use serde_json::Value;
use std::fmt;

/// Why a datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatagramError {
    /// No newline, or nothing after it.
    MissingHeaderOrDocument,
    /// The header is not `{"format":"json","version":1}` (in substance).
    InvalidHeader,
    /// The document is not a JSON object; the parser's message.
    InvalidDocument(String),
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeaderOrDocument => write!(f, "missing header or segment document"),
            Self::InvalidHeader => write!(
                f,
                "invalid header (expected {{\"format\":\"json\",\"version\":1}})"
            ),
            Self::InvalidDocument(why) => {
                write!(f, "the segment document is not a JSON object: {why}")
            }
        }
    }
}

/// Parses one datagram into its document.
pub fn parse_datagram(bytes: &[u8]) -> Result<Value, DatagramError> {
    let Some(newline) = bytes.iter().position(|b| *b == b'\n') else {
        return Err(DatagramError::MissingHeaderOrDocument);
    };
    let (header, document) = (&bytes[..newline], &bytes[newline + 1..]);
    if document.iter().all(u8::is_ascii_whitespace) {
        return Err(DatagramError::MissingHeaderOrDocument);
    }
    let header: Value = serde_json::from_slice(header).map_err(|_| DatagramError::InvalidHeader)?;
    let format_ok = header
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let version_ok = header.get("version").and_then(Value::as_u64) == Some(1)
        && header.get("version").is_some_and(|v| v.is_u64());
    if !(format_ok && version_ok) {
        return Err(DatagramError::InvalidHeader);
    }
    match serde_json::from_slice::<Value>(document) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(DatagramError::InvalidDocument("not an object".into())),
        Err(error) => Err(DatagramError::InvalidDocument(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_header_spellings_and_any_case_of_json() {
        for header in [
            r#"{"format":"json","version":1}"#,
            r#"{"format": "json", "version": 1}"#,
            r#"{"format":"jSoN","version":1}"#,
        ] {
            let datagram = format!("{header}\n{{\"id\":\"a\"}}");
            assert_eq!(
                parse_datagram(datagram.as_bytes()).unwrap()["id"],
                "a",
                "{header}"
            );
        }
        // Everything after the first newline is the document, newlines included.
        assert!(parse_datagram(b"{\"format\":\"json\",\"version\":1}\n{\"id\":\n\"a\"}").is_ok());
    }

    #[test]
    fn rejects_what_the_daemon_rejects() {
        use DatagramError::*;
        let cases: [(&[u8], DatagramError); 8] = [
            (
                b"{\"format\":\"json\",\"version\":1}",
                MissingHeaderOrDocument,
            ),
            (
                b"{\"format\":\"json\",\"version\":1}\n",
                MissingHeaderOrDocument,
            ),
            (b"{\"format\":\"xml\",\"version\":1}\n{}", InvalidHeader),
            (b"{\"format\":\"json\",\"version\":2}\n{}", InvalidHeader),
            (
                b"{\"format\":\"json\",\"version\":\"1\"}\n{}",
                InvalidHeader,
            ),
            (b"garbage\n{}", InvalidHeader),
            (
                b"{\"format\":\"json\",\"version\":1}\n{\"id\":\"trunc",
                InvalidDocument(String::new()),
            ),
            (
                b"{\"format\":\"json\",\"version\":1}\n[1,2]",
                InvalidDocument(String::new()),
            ),
        ];
        for (bytes, expected) in cases {
            let error = parse_datagram(bytes).unwrap_err();
            match (&error, &expected) {
                (InvalidDocument(_), InvalidDocument(_)) => {}
                _ => assert_eq!(error, expected, "{}", String::from_utf8_lossy(bytes)),
            }
        }
    }
}
