//! Which addresses outgoing calls may connect to, whatever a component's allow-list says.
//!
//! On ECS the task role's credentials and the task metadata are served over plain HTTP at
//! `169.254.170.2`, and on EC2 the instance metadata service answers at `169.254.169.254` and
//! `fd00:ec2::254`. A component that could reach them would hold the role the host keeps from
//! it, so every address a call would connect to, after DNS resolution, is checked here, in this
//! order:
//!
//! 1. the host's own endpoints ([`HostEndpoint`]: the admin endpoint, the local daemon
//!    stand-in, the X-Ray daemon and the OTLP collector when they are on this machine) are
//!    refused always, whatever the allow-list says: the admin endpoint reloads components
//!    without authentication, and a daemon or collector signs what it forwards with the task
//!    role;
//! 2. loopback (`127.0.0.0/8`, `::1`) is reached only through an allow-list entry that names
//!    the call's host (or address) and port exactly (`http://localhost:8081`), never through a
//!    wildcard host or port (`http://*:*`, `http://localhost:*`, or `*.example.com` resolving to
//!    `127.0.0.1`);
//! 3. an allow-list entry that names an address literally lets that one address through: the
//!    operator meant it;
//! 4. link-local (`169.254.0.0/16`, `fe80::/10`), the EC2 metadata IPv6 address, unspecified,
//!    broadcast and multicast addresses are refused; private ranges (`10/8`, `172.16/12`,
//!    `192.168/16`, `100.64/10`, `fc00::/7`) only when the operator asks
//!    (`--block-private-networks`).
//!
//! Host names are normalised first ([`TargetHost::parse`]), so that forms which hide an address
//! (`2852039170`, `0xa9.0xfe.0xaa.0x02`, `[::ffff:169.254.170.2]`) are treated as the address
//! they are, by the allow-list and by this check alike. The check also judges an IPv6 address
//! that carries an IPv4 address as that IPv4 address ([`embedded_ipv4`]: NAT64 `64:ff9b::/96`,
//! IPv4-compatible `::a.b.c.d`, 6to4 `2002::/16`), so `[64:ff9b::7f00:1]` is loopback and
//! `[2002:a9fe:aa02::]` link-local.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The host of a URL, normalised: an address in whatever form it was written, or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    /// An IP address (IPv4-mapped IPv6 addresses are given as IPv4).
    Ip(IpAddr),
    /// A DNS name, lower case, without a trailing dot.
    Name(String),
}

impl TargetHost {
    /// Normalises a URL's host as resolvers would read it: bracketed IPv6 addresses, and IPv4
    /// addresses in the forms `inet_aton` accepts (one to four parts, each decimal, octal with a
    /// leading `0`, or hexadecimal with `0x`), become addresses; anything else is a name.
    pub fn parse(host: &str) -> TargetHost {
        let host = host.trim_end_matches('.');
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if let Ok(ip) = inner.parse::<Ipv6Addr>() {
                return TargetHost::Ip(canonical(IpAddr::V6(ip)));
            }
            return TargetHost::Name(host.to_ascii_lowercase());
        }
        if let Ok(ip) = host.parse::<Ipv6Addr>() {
            return TargetHost::Ip(canonical(IpAddr::V6(ip)));
        }
        match parse_ipv4_loose(host) {
            Some(ip) => TargetHost::Ip(IpAddr::V4(ip)),
            None => TargetHost::Name(host.to_ascii_lowercase()),
        }
    }

    /// The host as the allow-list compares it: the address's canonical text, or the name.
    pub fn as_text(&self) -> String {
        match self {
            TargetHost::Ip(ip) => ip.to_string(),
            TargetHost::Name(name) => name.clone(),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The NAT64 well-known prefix, `64:ff9b::/96` (RFC 6052).
const NAT64_PREFIX: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];

/// The IPv4-translated prefix of SIIT, `::ffff:0:0/96` (RFC 2765).
const TRANSLATED_PREFIX: [u16; 6] = [0, 0, 0, 0, 0xffff, 0];

/// The IPv4 address an IPv6 address carries, if it is of a form that carries one: IPv4-mapped
/// `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d` (deprecated; `::` and `::1` are themselves, not `0.0.0.0` and
/// `0.0.0.1`) and 6to4 `2002:aabb:ccdd::/48`.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let last_32_bits = Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
    let prefix = &s[..6];
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if prefix == NAT64_PREFIX
        || prefix == TRANSLATED_PREFIX
        || (prefix == [0; 6] && !v6.is_unspecified() && !v6.is_loopback())
    {
        Some(last_32_bits)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32))
    } else {
        None
    }
}

/// The address the check judges: the IPv4 address an IPv6 form carries, or the address itself.
pub fn judged(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// IPv4 in `inet_aton`'s forms: `a.b.c.d`, `a.b.c` (c: 16 bits), `a.b` (b: 24 bits), `a`
/// (32 bits); each part decimal, octal (leading 0) or hexadecimal (`0x`).
fn parse_ipv4_loose(text: &str) -> Option<Ipv4Addr> {
    if text.is_empty() {
        return None;
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|part| parse_number(part))
        .collect::<Option<_>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut value: u64 = 0;
    for (i, n) in leading.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((value | last) as u32))
}

fn parse_number(part: &str) -> Option<u64> {
    // Longer than any 32-bit number in any base: refuse before parsing (and overflowing).
    if part.is_empty() || part.len() > 34 {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // `0x` alone is 0 for inet_aton.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|&n| n <= u32::MAX as u64)
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// One of the host's own endpoints (what it is), refused whatever the allow-list says.
    HostEndpoint(String),
    /// A loopback address, reached through a wildcard allow-list entry.
    LoopbackByWildcard,
    /// `169.254.0.0/16` or `fe80::/10`: where ECS and EC2 serve credentials and metadata.
    LinkLocal,
    /// `fd00:ec2::254`, the EC2 instance metadata service over IPv6.
    InstanceMetadata,
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// A multicast group.
    Multicast,
    /// A private range, refused with `--block-private-networks`.
    Private,
}

impl Refusal {
    /// The rule's short name, for the log.
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::HostEndpoint(_) => "host-endpoint",
            Refusal::LoopbackByWildcard => "loopback-by-wildcard",
            Refusal::LinkLocal => "link-local",
            Refusal::InstanceMetadata => "instance-metadata",
            Refusal::Unspecified => "unspecified",
            Refusal::Broadcast => "broadcast",
            Refusal::Multicast => "multicast",
            Refusal::Private => "private-network",
        }
    }

    /// What the operator can change to let such a call through, if anything.
    pub fn remedy(&self) -> &'static str {
        match self {
            Refusal::HostEndpoint(_) => {
                "the host's own endpoints are refused whatever the allow-list says; nothing \
                 lets a component reach them"
            }
            Refusal::LoopbackByWildcard => {
                "only an allow-list entry naming this host and port exactly (no `*` for the \
                 host or the port, e.g. http://localhost:8081) reaches a loopback address"
            }
            Refusal::Private => {
                "an allow-list entry naming this address literally would let it through, or \
                 turn --block-private-networks off"
            }
            _ => "an allow-list entry naming this address literally would let it through",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::HostEndpoint(what) => write!(f, "the host's own {what}"),
            Refusal::LoopbackByWildcard => {
                f.write_str("a loopback address reached through a wildcard allow-list entry")
            }
            Refusal::LinkLocal => f.write_str(
                "a link-local address (where ECS and EC2 serve credentials and metadata)",
            ),
            Refusal::InstanceMetadata => f.write_str("the EC2 instance metadata address"),
            Refusal::Unspecified => f.write_str("the unspecified address"),
            Refusal::Broadcast => f.write_str("the broadcast address"),
            Refusal::Multicast => f.write_str("a multicast address"),
            Refusal::Private => f.write_str("a private network (--block-private-networks is on)"),
        }
    }
}

/// An address the host itself listens on or sends to, on this machine: outgoing calls are
/// never let through to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// What it is, for the log: `admin endpoint`, `X-Ray daemon (UDP)`, ….
    pub what: String,
    /// Its address. A loopback or unspecified address stands for every loopback address with
    /// that port (a listener on `0.0.0.0` accepts them all, and `127.0.0.2` is as local as
    /// `127.0.0.1`).
    pub address: SocketAddr,
}

impl HostEndpoint {
    /// An endpoint named `what` at `address`.
    pub fn new(what: impl Into<String>, address: SocketAddr) -> Self {
        Self {
            what: what.into(),
            address,
        }
    }

    /// Whether a connection to `ip` (judged) and `port` would reach this endpoint.
    fn covers(&self, ip: IpAddr, port: u16) -> bool {
        if self.address.port() != port {
            return false;
        }
        let own = judged(self.address.ip());
        own == ip || ((own.is_loopback() || own.is_unspecified()) && ip.is_loopback())
    }
}

/// The addresses outgoing calls of one service may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Refuse private ranges too.
    pub block_private: bool,
    /// Addresses an allow-list entry names literally: let through whatever they are (but
    /// loopback and the host's own endpoints, which have rules of their own).
    pub exempt: Vec<IpAddr>,
    /// The host's own endpoints: refused always.
    pub host_endpoints: Vec<HostEndpoint>,
}

/// The EC2 instance metadata service's IPv6 address.
const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

impl AddressPolicy {
    /// Whether a call may connect to `ip` on `port`, and why not. `named_exactly` says whether
    /// an allow-list entry names the call's host and port exactly (no wildcard), which loopback
    /// requires.
    pub fn check(&self, ip: IpAddr, port: u16, named_exactly: bool) -> Result<(), Refusal> {
        let ip = canonical(ip);
        let seen_as = judged(ip);
        if let Some(endpoint) = self
            .host_endpoints
            .iter()
            .find(|endpoint| endpoint.covers(seen_as, port))
        {
            return Err(Refusal::HostEndpoint(format!(
                "{} ({})",
                endpoint.what, endpoint.address
            )));
        }
        if seen_as.is_loopback() {
            return if named_exactly {
                Ok(())
            } else {
                Err(Refusal::LoopbackByWildcard)
            };
        }
        if self.exempt.iter().any(|&exempt| canonical(exempt) == ip) {
            return Ok(());
        }
        let refusal = match seen_as {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                if v4.is_link_local() {
                    Some(Refusal::LinkLocal)
                } else if v4.is_unspecified() {
                    Some(Refusal::Unspecified)
                } else if v4.is_broadcast() {
                    Some(Refusal::Broadcast)
                } else if v4.is_multicast() {
                    Some(Refusal::Multicast)
                } else if self.block_private
                    && (v4.is_private() || (a == 100 && (64..128).contains(&b)))
                {
                    Some(Refusal::Private)
                } else {
                    None
                }
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                if v6 == EC2_METADATA_V6 {
                    Some(Refusal::InstanceMetadata)
                } else if first & 0xffc0 == 0xfe80 {
                    Some(Refusal::LinkLocal)
                } else if v6.is_unspecified() {
                    Some(Refusal::Unspecified)
                } else if v6.is_multicast() {
                    Some(Refusal::Multicast)
                } else if self.block_private && first & 0xfe00 == 0xfc00 {
                    Some(Refusal::Private)
                } else {
                    None
                }
            }
        };
        refusal.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forms_that_hide_an_address_are_that_address() {
        for form in [
            "169.254.170.2",
            "2852039170",
            "0xa9.0xfe.0xaa.0x02",
            "0xA9FEAA02",
            "0251.0376.0252.02",
            "169.254.43522",
            "169.16689666",
            "[::ffff:169.254.170.2]",
            "[::ffff:a9fe:aa02]",
            "::ffff:169.254.170.2",
            "169.254.170.2.",
        ] {
            assert_eq!(
                TargetHost::parse(form),
                TargetHost::Ip(ip("169.254.170.2")),
                "{form}"
            );
        }
        assert_eq!(
            TargetHost::parse("[FD00:EC2::254]"),
            TargetHost::Ip(ip("fd00:ec2::254"))
        );
    }

    #[test]
    fn names_stay_names() {
        for (form, name) in [
            ("Backend1.local", "backend1.local"),
            ("example.com.", "example.com"),
            ("1.2.3.4.5", "1.2.3.4.5"),
            ("256.1.1.1", "256.1.1.1"),
            ("08.1.1.1", "08.1.1.1"),
            ("4294967296", "4294967296"),
            ("1e3", "1e3"),
            ("[not-ipv6]", "[not-ipv6]"),
        ] {
            assert_eq!(
                TargetHost::parse(form),
                TargetHost::Name(name.into()),
                "{form}"
            );
        }
        // `0x` as one part of several is 0, as for inet_aton.
        assert_eq!(TargetHost::parse("0x.0.0.1"), TargetHost::Ip(ip("0.0.0.1")));
    }

    /// A call through a wildcard entry (port 80).
    fn wildcard(policy: &AddressPolicy, address: &str) -> Result<(), Refusal> {
        policy.check(ip(address), 80, false)
    }

    #[test]
    fn metadata_link_local_and_special_addresses_are_always_refused() {
        let policy = AddressPolicy::default();
        for (address, refusal) in [
            ("169.254.170.2", Refusal::LinkLocal),
            ("169.254.169.254", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("febf::1", Refusal::LinkLocal),
            ("fd00:ec2::254", Refusal::InstanceMetadata),
            ("::ffff:169.254.169.254", Refusal::LinkLocal),
            ("0.0.0.0", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("255.255.255.255", Refusal::Broadcast),
            ("224.0.0.1", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
        ] {
            assert_eq!(
                wildcard(&policy, address),
                Err(refusal.clone()),
                "{address}"
            );
            // Naming the host and port exactly changes nothing for these.
            assert_eq!(
                policy.check(ip(address), 80, true),
                Err(refusal),
                "{address}"
            );
        }
        for allowed in [
            "10.0.0.1",
            "192.168.1.1",
            "fd00::1",
            "8.8.8.8",
            "2001:db8::1",
        ] {
            assert_eq!(wildcard(&policy, allowed), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn loopback_is_refused_through_a_wildcard() {
        let policy = AddressPolicy::default();
        for loopback in [
            "127.0.0.1",
            "127.0.0.2",
            "127.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(
                wildcard(&policy, loopback),
                Err(Refusal::LoopbackByWildcard),
                "{loopback}"
            );
        }
        // A literal entry without its port (`http://127.0.0.1:*`) is not an exact one.
        let literal = AddressPolicy {
            exempt: vec![ip("127.0.0.1")],
            ..AddressPolicy::default()
        };
        assert_eq!(
            wildcard(&literal, "127.0.0.1"),
            Err(Refusal::LoopbackByWildcard)
        );
    }

    #[test]
    fn loopback_is_reached_through_an_entry_naming_host_and_port() {
        let policy = AddressPolicy {
            block_private: true,
            ..AddressPolicy::default()
        };
        for loopback in ["127.0.0.1", "127.255.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(policy.check(ip(loopback), 8081, true), Ok(()), "{loopback}");
        }
    }

    #[test]
    fn the_hosts_own_endpoints_are_refused_even_through_an_exact_entry() {
        let policy = AddressPolicy {
            exempt: vec![ip("127.0.0.1"), ip("10.0.0.7")],
            host_endpoints: vec![
                HostEndpoint::new("admin endpoint", "127.0.0.1:9901".parse().unwrap()),
                HostEndpoint::new("daemon stand-in", "0.0.0.0:2000".parse().unwrap()),
                HostEndpoint::new("X-Ray daemon (UDP)", "10.0.0.7:2000".parse().unwrap()),
                HostEndpoint::new("OTLP collector", "[::1]:4318".parse().unwrap()),
            ],
            ..AddressPolicy::default()
        };
        for (address, port, what) in [
            ("127.0.0.1", 9901, "admin endpoint"),
            ("127.0.0.2", 9901, "admin endpoint"),
            ("::1", 9901, "admin endpoint"),
            ("::ffff:127.0.0.1", 9901, "admin endpoint"),
            ("64:ff9b::7f00:1", 9901, "admin endpoint"),
            ("127.0.0.1", 2000, "daemon stand-in"),
            ("::1", 2000, "daemon stand-in"),
            ("10.0.0.7", 2000, "X-Ray daemon (UDP)"),
            ("127.0.0.1", 4318, "OTLP collector"),
        ] {
            for named_exactly in [true, false] {
                match policy.check(ip(address), port, named_exactly) {
                    Err(Refusal::HostEndpoint(text)) => {
                        assert!(text.starts_with(what), "{address}:{port}: {text}")
                    }
                    other => panic!("{address}:{port}: {other:?}"),
                }
            }
        }
        // Other ports of the same addresses are judged as usual.
        assert_eq!(policy.check(ip("127.0.0.1"), 8081, true), Ok(()));
        assert_eq!(policy.check(ip("10.0.0.7"), 80, false), Ok(()));
        assert_eq!(
            policy.check(ip("127.0.0.1"), 8081, false),
            Err(Refusal::LoopbackByWildcard)
        );
    }

    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_judged_as_it() {
        for (v6, v4) in [
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("64:ff9b::7f00:1", "127.0.0.1"),
            ("64:ff9b::a9fe:aa02", "169.254.170.2"),
            ("64:ff9b::10.0.0.1", "10.0.0.1"),
            ("::127.0.0.1", "127.0.0.1"),
            ("::169.254.169.254", "169.254.169.254"),
            ("::ffff:0:127.0.0.1", "127.0.0.1"),
            ("2002:7f00:1::", "127.0.0.1"),
            ("2002:a9fe:a9fe:1::1", "169.254.169.254"),
            ("2002:c0a8:101::1", "192.168.1.1"),
        ] {
            let v6: Ipv6Addr = v6.parse().unwrap();
            assert_eq!(embedded_ipv4(v6), Some(v4.parse().unwrap()), "{v6}");
        }
        for alone in ["::", "::1", "2001:db8::1", "fd00:ec2::254", "64:ff9c::1"] {
            let v6: Ipv6Addr = alone.parse().unwrap();
            assert_eq!(embedded_ipv4(v6), None, "{alone}");
        }

        let policy = AddressPolicy {
            block_private: true,
            ..AddressPolicy::default()
        };
        for loopback in ["64:ff9b::7f00:1", "::127.0.0.1", "2002:7f00:1::1"] {
            assert_eq!(
                wildcard(&policy, loopback),
                Err(Refusal::LoopbackByWildcard),
                "{loopback}"
            );
        }
        for (address, refusal) in [
            ("64:ff9b::a9fe:aa02", Refusal::LinkLocal),
            ("::169.254.170.2", Refusal::LinkLocal),
            ("2002:a9fe:a9fe::", Refusal::LinkLocal),
            ("64:ff9b::0.0.0.0", Refusal::Unspecified),
            ("64:ff9b::10.0.0.1", Refusal::Private),
            ("::192.168.0.1", Refusal::Private),
            ("2002:ac10:1::1", Refusal::Private),
            ("64:ff9b::100.64.0.1", Refusal::Private),
        ] {
            assert_eq!(wildcard(&policy, address), Err(refusal), "{address}");
        }
        assert_eq!(wildcard(&policy, "64:ff9b::8.8.8.8"), Ok(()));
        assert_eq!(wildcard(&policy, "2002:808:808::1"), Ok(()));
    }

    #[test]
    fn private_ranges_are_refused_on_request() {
        let policy = AddressPolicy {
            block_private: true,
            ..AddressPolicy::default()
        };
        for private in [
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "100.64.0.1",
            "fc00::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(
                wildcard(&policy, private),
                Err(Refusal::Private),
                "{private}"
            );
        }
        for allowed in ["172.32.0.1", "100.128.0.1", "8.8.8.8"] {
            assert_eq!(wildcard(&policy, allowed), Ok(()), "{allowed}");
        }
        // Loopback named exactly stays reachable (Service Connect's names resolve to it).
        assert_eq!(policy.check(ip("127.255.0.1"), 80, true), Ok(()));
    }

    #[test]
    fn an_address_named_literally_is_let_through() {
        let policy = AddressPolicy {
            block_private: true,
            exempt: vec![ip("169.254.170.2"), ip("10.0.0.1")],
            ..AddressPolicy::default()
        };
        assert_eq!(wildcard(&policy, "169.254.170.2"), Ok(()));
        assert_eq!(wildcard(&policy, "::ffff:169.254.170.2"), Ok(()));
        assert_eq!(wildcard(&policy, "10.0.0.1"), Ok(()));
        assert_eq!(
            wildcard(&policy, "169.254.169.254"),
            Err(Refusal::LinkLocal)
        );
        assert_eq!(wildcard(&policy, "10.0.0.2"), Err(Refusal::Private));
        // Another spelling that only carries the address is not the address named.
        assert_eq!(
            wildcard(&policy, "64:ff9b::a9fe:aa02"),
            Err(Refusal::LinkLocal)
        );
    }

    #[test]
    fn every_refusal_names_its_rule_and_what_to_change() {
        for refusal in [
            Refusal::HostEndpoint("admin endpoint (127.0.0.1:9901)".into()),
            Refusal::LoopbackByWildcard,
            Refusal::LinkLocal,
            Refusal::InstanceMetadata,
            Refusal::Unspecified,
            Refusal::Broadcast,
            Refusal::Multicast,
            Refusal::Private,
        ] {
            assert!(!refusal.rule().is_empty() && !refusal.remedy().is_empty());
            assert!(!refusal.to_string().is_empty());
        }
        assert!(
            Refusal::LoopbackByWildcard
                .remedy()
                .contains("http://localhost:8081")
        );
        assert!(
            Refusal::HostEndpoint("admin endpoint (127.0.0.1:9901)".into())
                .to_string()
                .contains("127.0.0.1:9901")
        );
    }
}
