//! `X-Forwarded-For`: which of its entries names the client, given how many proxies the host
//! trusts.
//!
//! Every proxy appends the address it received the request from, so only the entries appended
//! by our own proxies can be believed; whatever precedes them the client wrote itself. Behind
//! `N` trusted proxies (the ALB is one) the client is therefore the `N`-th entry from the right
//! of the header's comma-separated entries, all its lines joined in order:
//!
//! | trusted proxies | `X-Forwarded-For` | client |
//! |---|---|---|
//! | 0 | anything | none: the header is ignored, the peer is the client |
//! | 1 | `1.2.3.4, 203.0.113.9` | `203.0.113.9` (appended by the ALB) |
//! | 2 | `1.2.3.4, 203.0.113.9, 10.0.0.7` | `203.0.113.9` |
//! | 2 | `203.0.113.9` | none: fewer entries than proxies |
//! | 1 | `1.2.3.4, unknown` | none: the entry is not an IP address |
//!
//! An entry is an IPv4 or IPv6 address alone, spaces and tabs around it allowed (no port, no
//! brackets, no `for=`: that is the `Forwarded` header's syntax). An empty entry counts as one
//! (`a,,b` has three) and is not an address. When [`client_address`] finds no client, the
//! segment's `client_ip` is the peer's address and `x_forwarded_for` stays false.

use std::net::IpAddr;

/// The header's name, as `http` spells it.
pub const HEADER_NAME: &str = "x-forwarded-for";

/// The client named by the `X-Forwarded-For` header `lines` (in the order they arrived) behind
/// `trusted_proxies` proxies, or `None` when the header does not name one there: with no
/// trusted proxy, with fewer entries than trusted proxies, or when that entry is not an IP
/// address. Only the entries it needs are looked at, from the right.
pub fn client_address<'a, I>(lines: I, trusted_proxies: usize) -> Option<IpAddr>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let from_the_right = trusted_proxies.checked_sub(1)?;
    let entry = lines
        .into_iter()
        .rev()
        .flat_map(|line| line.rsplit(|byte| *byte == b','))
        .nth(from_the_right)?;
    let entry = entry.trim_ascii();
    // The longest address text is an IPv6 address with an IPv4 tail (45 characters).
    if entry.len() > 45 {
        return None;
    }
    std::str::from_utf8(entry).ok()?.parse().ok()
}

/// [`client_address`] over the `X-Forwarded-For` lines of `headers`.
pub fn client_from_headers(headers: &http::HeaderMap, trusted_proxies: usize) -> Option<IpAddr> {
    client_address(
        headers
            .get_all(HEADER_NAME)
            .iter()
            .map(http::HeaderValue::as_bytes),
        trusted_proxies,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(lines: &[&str], trusted_proxies: usize) -> Option<String> {
        client_address(lines.iter().map(|l| l.as_bytes()), trusted_proxies).map(|ip| ip.to_string())
    }

    #[test]
    fn the_client_is_the_entry_before_the_trusted_proxies() {
        let cases: &[(&[&str], usize, Option<&str>)] = &[
            // The client wrote the first entry; the ALB appended the last.
            (&["1.2.3.4, 203.0.113.9"], 1, Some("203.0.113.9")),
            (&["1.2.3.4, 203.0.113.9"], 2, Some("1.2.3.4")),
            (&["1.2.3.4, 203.0.113.9, 10.0.0.7"], 2, Some("203.0.113.9")),
            (&["203.0.113.9"], 1, Some("203.0.113.9")),
            // No trusted proxy: the header is the client's own word.
            (&["203.0.113.9"], 0, None),
            (&["1.2.3.4, 203.0.113.9"], 0, None),
            // Fewer entries than proxies.
            (&["203.0.113.9"], 2, None),
            (&[], 1, None),
            (&["1.2.3.4, 203.0.113.9"], 3, None),
            // Not an address, where the client would be.
            (&["1.2.3.4, unknown"], 1, None),
            (&["1.2.3.4, 203.0.113.9:443"], 1, None),
            (&["1.2.3.4, [2001:db8::1]"], 1, None),
            (&["1.2.3.4, for=203.0.113.9"], 1, None),
            (&["1.2.3.4, 203.0.113.999"], 1, None),
            (&["1.2.3.4,"], 1, None),
            (&["1.2.3.4, , 203.0.113.9"], 2, None),
            (&[""], 1, None),
            // Garbage before the entry that counts does not matter.
            (&["<script>, ;;;, 203.0.113.9"], 1, Some("203.0.113.9")),
            (&["\u{e9}t\u{e9}, 203.0.113.9"], 1, Some("203.0.113.9")),
            // Spaces and tabs around an entry, and IPv6.
            (&["1.2.3.4,\t203.0.113.9 "], 1, Some("203.0.113.9")),
            (&["1.2.3.4, 2001:db8::7"], 1, Some("2001:db8::7")),
            (&["2001:DB8::7"], 1, Some("2001:db8::7")),
            // Several header lines are one list, in order.
            (&["1.2.3.4", "203.0.113.9"], 1, Some("203.0.113.9")),
            (&["1.2.3.4", "203.0.113.9"], 2, Some("1.2.3.4")),
            (&["1.2.3.4, 5.6.7.8", "203.0.113.9"], 2, Some("5.6.7.8")),
            (&["1.2.3.4", "203.0.113.9, 10.0.0.7"], 3, Some("1.2.3.4")),
            (&["1.2.3.4", ""], 1, None),
        ];
        for (lines, proxies, expected) in cases {
            assert_eq!(
                client(lines, *proxies).as_deref(),
                *expected,
                "{lines:?} behind {proxies}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_text_are_not_an_address() {
        let lines: [&[u8]; 2] = [b"\xff\xfe, 203.0.113.9", b"1.2.3.4, \xff"];
        assert_eq!(client_address(lines, 1), None);
        assert_eq!(
            client_address(lines, 2).map(|ip| ip.to_string()).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(
            client_address(lines, 3).map(|ip| ip.to_string()).as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn the_header_lines_of_a_request_are_read_in_order() {
        let mut headers = http::HeaderMap::new();
        headers.append(HEADER_NAME, "1.2.3.4".parse().unwrap());
        headers.append("X-Forwarded-For", "203.0.113.9".parse().unwrap());
        assert_eq!(
            client_from_headers(&headers, 1)
                .map(|ip| ip.to_string())
                .as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(client_from_headers(&headers, 0), None);
        assert_eq!(client_from_headers(&http::HeaderMap::new(), 1), None);
    }
}
