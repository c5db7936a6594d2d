//! Whether a request is addressed to this machine's loopback: the check the local endpoints
//! (the daemon stand-in, the host's admin endpoint) make before they answer.
//!
//! Both listen on a loopback address, which a browser on the same machine can reach: a web
//! page on a hostile name that resolves to 127.0.0.1 (DNS rebinding) would otherwise read the
//! traces or reload components through the visitor's browser. Such a request names the hostile
//! name in its `Host`; a request addressed to `localhost`, `127.x.x.x` or `[::1]` cannot come
//! from such a page.

use http::{HeaderMap, Uri, header};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host part of a `host[:port]` authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityHost<'a> {
    /// A name, its trailing dot removed.
    Name(&'a str),
    /// An IPv4 address, or an IPv6 address in brackets.
    Address(IpAddr),
}

/// The host of `authority` (a `Host` header's value or a URL's authority), or `None` when it is
/// not `host[:port]` with a numeric port.
pub fn authority_host(authority: &str) -> Option<AuthorityHost<'_>> {
    let port_is_valid = |port: &str| port.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => "",
            after => after.strip_prefix(':')?,
        };
        let ip: Ipv6Addr = inside.parse().ok()?;
        return port_is_valid(port).then_some(AuthorityHost::Address(IpAddr::V6(ip)));
    }
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    if !port_is_valid(port) || host.is_empty() {
        return None;
    }
    Some(match host.parse::<Ipv4Addr>() {
        Ok(ip) => AuthorityHost::Address(IpAddr::V4(ip)),
        Err(_) => AuthorityHost::Name(host.strip_suffix('.').unwrap_or(host)),
    })
}

/// Whether `authority` names this machine's loopback: `localhost`, an IPv4 address in
/// 127.0.0.0/8 or `[::1]`, with any port or none.
pub fn is_loopback_authority(authority: &str) -> bool {
    match authority_host(authority) {
        Some(AuthorityHost::Name(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(AuthorityHost::Address(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The first authority a request names (each `Host` line, and the URL's authority in absolute
/// form) that `allowed` refuses; an empty string when it names none.
pub fn refused_authority(
    uri: &Uri,
    headers: &HeaderMap,
    allowed: impl Fn(&str) -> bool,
) -> Option<String> {
    let mut authorities: Vec<String> = headers
        .get_all(header::HOST)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    authorities.extend(uri.authority().map(|a| a.as_str().to_string()));
    if authorities.is_empty() {
        return Some(String::new());
    }
    authorities.into_iter().find(|a| !allowed(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_authorities_are_localhost_127_and_ipv6_loopback_with_any_port() {
        for good in [
            "localhost",
            "LOCALHOST:2000",
            "localhost.:80",
            "127.0.0.1",
            "127.1.2.3:9901",
            "127.255.0.1:80",
            "[::1]",
            "[::1]:2000",
        ] {
            assert!(is_loopback_authority(good), "{good}");
        }
        for bad in [
            "",
            "localhost.evil.example:2000",
            "a.localhost",
            "10.0.0.1:2000",
            "[::ffff:127.0.0.1]",
            "[::1",
            "127.0.0.1:80x",
            ":2000",
            "127.0.0.1.evil.example",
            "0.0.0.0:2000",
            "[::]:2000",
            "::1",
            "[::1]x",
            "localhost:2000:1",
            "2130706433",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn every_host_line_and_the_absolute_url_are_checked() {
        let mut headers = HeaderMap::new();
        headers.append(header::HOST, "127.0.0.1:2000".parse().unwrap());
        let origin = Uri::from_static("/status");
        assert_eq!(
            refused_authority(&origin, &headers, is_loopback_authority),
            None
        );
        headers.append(header::HOST, "rebind.example".parse().unwrap());
        assert_eq!(
            refused_authority(&origin, &headers, is_loopback_authority).as_deref(),
            Some("rebind.example")
        );
        let absolute = Uri::from_static("http://rebind.example/status");
        assert_eq!(
            refused_authority(&absolute, &HeaderMap::new(), is_loopback_authority).as_deref(),
            Some("rebind.example")
        );
        assert_eq!(
            refused_authority(&origin, &HeaderMap::new(), is_loopback_authority).as_deref(),
            Some(""),
            "no Host at all is refused"
        );
    }
}
