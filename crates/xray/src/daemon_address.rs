//! `AWS_XRAY_DAEMON_ADDRESS`: where segments (UDP) and sampling calls (TCP) go (xray-spec §3.4).
//!
//! Two forms, as in every SDK:
//! - `host:port`: the same address for UDP and TCP;
//! - `tcp:host:port udp:host:port` (either order, one space): separate addresses.
//!
//! The host may be a name (resolved when used) or an IPv4 address; like the SDKs' colon-splitting
//! parsers we do not accept IPv6 literals. The default is `127.0.0.1:2000`, where the daemon
//! sidecar listens in an ECS task.

use anyhow::{Context, bail};
use std::fmt;

/// The default daemon address.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// The daemon's two addresses, as `host:port` strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonAddress {
    /// Where segment documents are sent, over UDP.
    pub udp: String,
    /// Where sampling calls are sent, over HTTP on TCP.
    pub tcp: String,
}

impl Default for DaemonAddress {
    fn default() -> Self {
        Self::parse(DEFAULT_DAEMON_ADDRESS).expect("the default address is valid")
    }
}

impl DaemonAddress {
    /// Parses either form; the error says which form was expected.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = text.split(' ').collect();
        match parts.as_slice() {
            [single] => {
                let address = host_port(single).with_context(|| {
                    format!("invalid daemon address {text:?}: expected host:port or tcp:host:port udp:host:port")
                })?;
                Ok(Self {
                    udp: address.clone(),
                    tcp: address,
                })
            }
            [first, second] => {
                let mut udp = None;
                let mut tcp = None;
                for part in [first, second] {
                    let (kind, address) = part.split_once(':').with_context(|| {
                        format!("invalid daemon address {text:?}: {part:?} is not tcp:host:port or udp:host:port")
                    })?;
                    let address = host_port(address)
                        .with_context(|| format!("invalid daemon address {text:?}: {part:?}"))?;
                    let slot = match kind {
                        "udp" => &mut udp,
                        "tcp" => &mut tcp,
                        _ => bail!(
                            "invalid daemon address {text:?}: {kind:?} is neither tcp nor udp"
                        ),
                    };
                    if slot.replace(address).is_some() {
                        bail!("invalid daemon address {text:?}: {kind} is given twice");
                    }
                }
                match (udp, tcp) {
                    (Some(udp), Some(tcp)) => Ok(Self { udp, tcp }),
                    _ => bail!("invalid daemon address {text:?}: give both tcp: and udp:"),
                }
            }
            _ => bail!(
                "invalid daemon address {text:?}: expected host:port or tcp:host:port udp:host:port \
                 (one space between the two)"
            ),
        }
    }
}

/// Checks `host:port` (exactly one colon, a non-empty host, a port from 1 to 65535).
fn host_port(text: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [host, port] = parts.as_slice() else {
        bail!("{text:?} is not host:port");
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        bail!("{text:?} has no host");
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("{text:?} has no valid port (1 to 65535)"))?;
    Ok(format!("{host}:{port}"))
}

impl fmt::Display for DaemonAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.udp == self.tcp {
            write!(f, "{}", self.udp)
        } else {
            write!(f, "tcp:{} udp:{}", self.tcp, self.udp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_single_form_serves_both_protocols() {
        let address = DaemonAddress::parse("127.0.0.1:2000").unwrap();
        assert_eq!(
            (address.udp.as_str(), address.tcp.as_str()),
            ("127.0.0.1:2000", "127.0.0.1:2000")
        );
        assert_eq!(
            DaemonAddress::parse("xray-daemon:3000").unwrap().udp,
            "xray-daemon:3000"
        );
        assert_eq!(
            DaemonAddress::default(),
            DaemonAddress::parse("127.0.0.1:2000").unwrap()
        );
    }

    #[test]
    fn the_double_form_works_in_either_order() {
        let a = DaemonAddress::parse("tcp:127.0.0.1:2000 udp:127.0.0.2:2001").unwrap();
        assert_eq!(
            (a.tcp.as_str(), a.udp.as_str()),
            ("127.0.0.1:2000", "127.0.0.2:2001")
        );
        let b = DaemonAddress::parse("udp:127.0.0.2:2001 tcp:127.0.0.1:2000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "tcp:127.0.0.1:2000 udp:127.0.0.2:2001");
    }

    #[test]
    fn every_malformed_form_is_refused_with_the_value_in_the_message() {
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:",
            ":2000",
            "127.0.0.1:port",
            "127.0.0.1:0",
            "127.0.0.1:70000",
            "a:b:c",
            "[::1]:2000",
            "tcp:127.0.0.1:2000",
            "udp:127.0.0.1:2000 udp:127.0.0.1:2001",
            "tcp:127.0.0.1:2000 tcp:127.0.0.1:2001",
            "tcp:127.0.0.1:2000  udp:127.0.0.1:2001",
            "tcp:127.0.0.1:2000 udp:127.0.0.1:2001 x",
            "http:127.0.0.1:2000 udp:127.0.0.1:2001",
            "tcp:127.0.0.1 udp:127.0.0.1:2001",
        ] {
            let error = DaemonAddress::parse(bad).expect_err(bad);
            assert!(
                format!("{error:#}").contains(&format!("{bad:?}")),
                "{bad}: {error:#}"
            );
        }
    }
}
