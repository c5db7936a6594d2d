//! X-Ray's rules for names and annotation keys, in one place: what the recorder refuses from
//! a component, what the OpenTelemetry mapping makes valid, and what the CLI checks in a
//! service name all read them from here.
//!
//! - A segment or subsegment name is 1 to [`MAX_NAME`] characters of Unicode letters and
//!   numbers, white space and `_ . : / % & # = + \ - @` (xray-spec §2.2). Where a name must be
//!   made valid (an OpenTelemetry span, which has no such rule), the other characters are
//!   dropped, as the OpenTelemetry collector's `awsxray` exporter drops them, and an empty
//!   result is [`DEFAULT_NAME`].
//! - An annotation key is 1 to [`MAX_ANNOTATION_KEY`] characters of `[A-Za-z0-9_]`; made valid,
//!   every other character becomes `_`.

/// Longest (sub)segment name, in characters.
pub const MAX_NAME: usize = 200;
/// Longest annotation key.
pub const MAX_ANNOTATION_KEY: usize = 500;
/// The name of a span whose name has no character X-Ray takes.
pub const DEFAULT_NAME: &str = "span";

/// Whether X-Ray takes `c` in a segment name.
pub fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c)
}

/// Whether `name` is a valid segment or subsegment name.
pub fn is_valid_name(name: &str) -> bool {
    let length = name.chars().count();
    (1..=MAX_NAME).contains(&length) && name.chars().all(is_name_char)
}

/// `name` made valid: the characters X-Ray refuses dropped, cut to [`MAX_NAME`] characters,
/// [`DEFAULT_NAME`] when nothing is left.
pub fn sanitize_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| is_name_char(*c))
        .take(MAX_NAME)
        .collect();
    if kept.is_empty() {
        DEFAULT_NAME.to_string()
    } else {
        kept
    }
}

/// Whether `key` is a valid annotation key.
pub fn is_valid_annotation_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_ANNOTATION_KEY
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `key` as an annotation key: every character outside `[A-Za-z0-9_]` as `_` (an empty key
/// stays empty, and is refused where it is recorded).
pub fn sanitize_annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_made_valid_by_one_rule() {
        for name in [
            "Backend #1",
            "BFF",
            "a.b:c/d%e&f#g=h+i\\j-k@l_m",
            "naïve 名前",
        ] {
            assert!(is_valid_name(name), "{name}");
            assert_eq!(sanitize_name(name), name);
        }
        for name in ["", "a;b", "<x>", &"n".repeat(MAX_NAME + 1)] {
            assert!(!is_valid_name(name), "{name}");
            assert!(is_valid_name(&sanitize_name(name)), "{name}");
        }
        assert_eq!(sanitize_name("load {id}"), "load id");
        assert_eq!(sanitize_name("<>"), DEFAULT_NAME);
        assert_eq!(sanitize_name(&"é".repeat(300)).chars().count(), MAX_NAME);
    }

    #[test]
    fn annotation_keys_are_checked_and_made_valid_by_one_rule() {
        assert!(is_valid_annotation_key("order_id_2"));
        assert!(!is_valid_annotation_key("http.route"));
        assert!(!is_valid_annotation_key(""));
        assert!(!is_valid_annotation_key(
            &"k".repeat(MAX_ANNOTATION_KEY + 1)
        ));
        assert_eq!(sanitize_annotation_key("http.route-x"), "http_route_x");
        assert!(is_valid_annotation_key(&sanitize_annotation_key("a.b")));
    }
}
