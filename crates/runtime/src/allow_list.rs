//! Which hosts a component may call: deny by default, allow what `--allow-outbound` lists.
//!
//! An entry is `scheme://host[:port]`:
//! - `scheme` is `http` or `https`;
//! - `host` is a name or address matched exactly (case-insensitive), `*.example.com` for any
//!   subdomain of `example.com`, or `*` for any host;
//! - `port` is a number, `*` for any port, or omitted for the scheme's default (80, 443).
//!
//! Paths are not part of an entry: the allow-list decides which servers a component reaches,
//! not what it asks them.
//!
//! A loopback address is reached only through an entry that names the call's host and port
//! exactly ([`AllowList::names_exactly`]): `http://*:*`, `http://localhost:*` or
//! `http://*.example.com` covering a name that resolves to `127.0.0.1` never reach it (see
//! [`crate::network_policy`]).

use crate::network_policy::TargetHost;
use anyhow::{Context, bail};
use http::Uri;
use std::fmt;
use std::net::IpAddr;

/// The parsed `--allow-outbound` entries of one service.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: String,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
}

impl AllowList {
    /// Parses entries; an invalid one is an error that names it and says what is expected.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        let entries = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref();
                Entry::parse(entry).with_context(|| {
                    format!(
                        "invalid --allow-outbound entry {entry:?}: expected scheme://host[:port], \
                         for example http://backend1.local:8080 or https://*.amazonaws.com"
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { entries })
    }

    /// Whether a request to `uri` may be sent.
    pub fn allows(&self, uri: &Uri) -> bool {
        self.matching(uri, |_| true)
    }

    /// Whether an entry without a wildcard (neither for the host nor for the port) covers
    /// `uri`: what a call to a loopback address needs.
    pub fn names_exactly(&self, uri: &Uri) -> bool {
        self.matching(uri, |entry| {
            matches!(entry.host, HostPattern::Exact(_))
                && matches!(entry.port, PortPattern::Exact(_))
        })
    }

    /// Whether an entry that passes `filter` covers `uri`.
    fn matching(&self, uri: &Uri, filter: impl Fn(&Entry) -> bool) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let Some(port) = uri.port_u16().or_else(|| default_port(scheme)) else {
            return false;
        };
        // `http://2852039170/` is `http://169.254.170.2/`: compare what the host really is.
        let host = TargetHost::parse(host).as_text();
        self.entries
            .iter()
            .any(|entry| filter(entry) && entry.matches(scheme, &host, port))
    }

    /// The addresses entries name literally (`http://169.254.170.2`): the operator means them,
    /// so the address check lets them through (see [`crate::network_policy`]).
    pub fn literal_addresses(&self) -> Vec<IpAddr> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.host {
                HostPattern::Exact(host) => match TargetHost::parse(host) {
                    TargetHost::Ip(ip) => Some(ip),
                    TargetHost::Name(_) => None,
                },
                _ => None,
            })
            .collect()
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Entry {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = text.split_once("://").context("the scheme is missing")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            bail!("the scheme must be http or https");
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('?') || authority.contains('@') {
            bail!("an entry names a server only: no path, query or user");
        }
        let (host, port) = split_host_port(authority)?;
        let host = match host {
            "" => bail!("the host is missing"),
            "*" => HostPattern::Any,
            _ if host.starts_with("*.") && host.len() > 2 => {
                HostPattern::Suffix(host[1..].to_ascii_lowercase())
            }
            _ if host.contains('*') => bail!("a wildcard may only be `*` or lead as `*.`"),
            _ => HostPattern::Exact(TargetHost::parse(host).as_text()),
        };
        let port =
            match port {
                None => PortPattern::Exact(default_port(&scheme).expect("http or https")),
                Some("*") => PortPattern::Any,
                Some(port) => PortPattern::Exact(port.parse().with_context(|| {
                    format!("the port {port:?} is not a number from 0 to 65535")
                })?),
            };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if !self.scheme.eq_ignore_ascii_case(scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(allowed) => allowed == port,
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(allowed) => *allowed == host,
            HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
        };
        port_ok && host_ok
    }
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 address.
fn split_host_port(authority: &str) -> anyhow::Result<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .context("unclosed `[` in an IPv6 address")?;
        return match after {
            "" => Ok((host, None)),
            _ => Ok((
                host,
                Some(after.strip_prefix(':').context("junk after `]`")?),
            )),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return write!(f, "(nothing)");
        }
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            let host = match &entry.host {
                HostPattern::Any => "*".to_string(),
                HostPattern::Exact(host) if host.contains(':') => format!("[{host}]"),
                HostPattern::Exact(host) => host.clone(),
                HostPattern::Suffix(suffix) => format!("*{suffix}"),
            };
            match entry.port {
                PortPattern::Any => write!(f, "{}://{host}:*", entry.scheme)?,
                PortPattern::Exact(port) => write!(f, "{}://{host}:{port}", entry.scheme)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(list: &[&str], uri: &str) -> bool {
        AllowList::parse(list)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn denies_everything_by_default() {
        assert!(!allows(&[], "http://127.0.0.1:8081/"));
    }

    #[test]
    fn matches_scheme_host_and_port_exactly() {
        let list = [
            "http://127.0.0.1:8081",
            "http://backend1.ecs.dev.xray-ecs.private",
        ];
        assert!(allows(&list, "http://127.0.0.1:8081/"));
        assert!(allows(&list, "http://127.0.0.1:8081/deep/path?q=1"));
        assert!(!allows(&list, "http://127.0.0.1:8082/"));
        assert!(!allows(&list, "https://127.0.0.1:8081/"));
        assert!(allows(&list, "http://BACKEND1.ecs.dev.xray-ecs.private/"));
        assert!(allows(
            &list,
            "http://backend1.ecs.dev.xray-ecs.private:80/"
        ));
        assert!(!allows(
            &list,
            "http://backend1.ecs.dev.xray-ecs.private:8080/"
        ));
        assert!(!allows(
            &list,
            "http://backend1.ecs.dev.xray-ecs.private.evil.com/"
        ));
    }

    #[test]
    fn wildcards_cover_subdomains_any_host_and_any_port() {
        assert!(allows(
            &["https://*.amazonaws.com"],
            "https://dynamodb.us-east-1.amazonaws.com/"
        ));
        assert!(!allows(
            &["https://*.amazonaws.com"],
            "https://amazonaws.com/"
        ));
        assert!(!allows(
            &["https://*.amazonaws.com"],
            "https://evilamazonaws.com/"
        ));
        assert!(allows(&["http://*:*"], "http://anything:1234/"));
        assert!(allows(&["http://localhost:*"], "http://localhost:9/"));
        assert!(allows(&["http://[::1]:8080"], "http://[::1]:8080/"));
    }

    #[test]
    fn hosts_are_compared_as_the_addresses_they_are() {
        let list = ["http://169.254.170.2"];
        assert!(allows(&list, "http://2852039170/"));
        assert!(allows(&list, "http://0xa9.0xfe.0xaa.0x02/"));
        assert!(allows(&list, "http://[::ffff:169.254.170.2]/"));
        assert!(allows(&list, "http://allowed.example@169.254.170.2/"));
        assert!(!allows(
            &["http://allowed.example"],
            "http://allowed.example@169.254.170.2/"
        ));
        assert!(allows(&["http://0xA9FEAA02"], "http://169.254.170.2/"));
        let parsed = AllowList::parse(&list).unwrap();
        assert_eq!(
            parsed.literal_addresses(),
            vec!["169.254.170.2".parse::<IpAddr>().unwrap()]
        );
        assert!(
            AllowList::parse(&["http://*.example.com", "http://backend"])
                .unwrap()
                .literal_addresses()
                .is_empty()
        );
    }

    #[test]
    fn only_entries_without_wildcards_name_a_url_exactly() {
        let exactly = |list: &[&str], uri: &str| {
            AllowList::parse(list)
                .unwrap()
                .names_exactly(&uri.parse().unwrap())
        };
        assert!(exactly(
            &["http://localhost:8081"],
            "http://localhost:8081/x"
        ));
        assert!(exactly(
            &["http://LOCALHOST:8081"],
            "http://localhost:8081/"
        ));
        assert!(exactly(
            &["http://127.0.0.1:8081"],
            "http://127.0.0.1:8081/"
        ));
        assert!(exactly(
            &["http://127.0.0.1:8081"],
            "http://2130706433:8081/"
        ));
        assert!(exactly(&["http://[::1]:8081"], "http://[::1]:8081/"));
        assert!(exactly(
            &["http://backend.local"],
            "http://backend.local:80/"
        ));
        assert!(!exactly(
            &["http://localhost:8081"],
            "http://localhost:8082/"
        ));
        assert!(!exactly(
            &["http://localhost:8081"],
            "https://localhost:8081/"
        ));
        for wildcard in ["http://*:*", "http://*:8081", "http://127.0.0.1:*"] {
            assert!(allows(&[wildcard], "http://127.0.0.1:8081/"), "{wildcard}");
            assert!(
                !exactly(&[wildcard], "http://127.0.0.1:8081/"),
                "{wildcard}"
            );
        }
        assert!(!exactly(&["http://localhost:*"], "http://localhost:8081/"));
        assert!(!exactly(
            &["http://*.example.com:8081"],
            "http://a.example.com:8081/"
        ));
        // An exact entry elsewhere in the list does not lend its exactness to a wildcard's URL.
        assert!(!exactly(
            &["http://localhost:8081", "http://*.example.com:*"],
            "http://evil.example.com:8081/"
        ));
    }

    #[test]
    fn rejects_malformed_entries_with_the_entry_in_the_message() {
        for bad in [
            "127.0.0.1:8081",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://a:port",
            "http://a*b",
            "http://u@h",
        ] {
            let error = AllowList::parse(&[bad]).unwrap_err();
            assert!(format!("{error:#}").contains(bad), "{bad}: {error:#}");
        }
    }

    #[test]
    fn displays_the_normalised_entries() {
        let list = AllowList::parse(&["HTTP://Backend:81/", "https://*.aws.com", "http://[::1]:*"])
            .unwrap();
        assert_eq!(
            list.to_string(),
            "http://backend:81, https://*.aws.com:443, http://[::1]:*"
        );
    }
}
