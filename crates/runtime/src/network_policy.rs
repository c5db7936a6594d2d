//! Which addresses outgoing calls may connect to, whatever a component's allow-list says.
//!
//! On ECS the task role's credentials and the task metadata are served over plain HTTP at
//! `169.254.170.2`, and on EC2 the instance metadata service answers at `169.254.169.254` and
//! `fd00:ec2::254`. A component that could reach them would hold the role the host keeps from
//! it, so every address a call would connect to, after DNS resolution, is checked here:
//! link-local (`169.254.0.0/16`, `fe80::/10`), the EC2 metadata IPv6 address, unspecified,
//! broadcast and multicast addresses are always refused; private ranges (`10/8`, `172.16/12`,
//! `192.168/16`, `100.64/10`, `fc00::/7`) only when the operator asks
//! (`--block-private-networks`). An allow-list entry that names an address literally lets that
//! one address through: the operator meant it.
//!
//! Host names are normalised first ([`TargetHost::parse`]), so that forms which hide an address
//! (`2852039170`, `0xa9.0xfe.0xaa.0x02`, `[::ffff:169.254.170.2]`) are treated as the address
//! they are, by the allow-list and by this check alike.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
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

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::LinkLocal => {
                "a link-local address (where ECS and EC2 serve credentials and metadata)"
            }
            Refusal::InstanceMetadata => "the EC2 instance metadata address",
            Refusal::Unspecified => "the unspecified address",
            Refusal::Broadcast => "the broadcast address",
            Refusal::Multicast => "a multicast address",
            Refusal::Private => "a private network (--block-private-networks is on)",
        })
    }
}

/// The addresses outgoing calls of one service may connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Refuse private ranges too.
    pub block_private: bool,
    /// Addresses an allow-list entry names literally: let through whatever they are.
    pub exempt: Vec<IpAddr>,
}

/// The EC2 instance metadata service's IPv6 address.
const EC2_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

impl AddressPolicy {
    /// Whether a call may connect to `ip`, and why not.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if self.exempt.iter().any(|&exempt| canonical(exempt) == ip) {
            return Ok(());
        }
        let refusal = match ip {
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
            assert_eq!(policy.check(ip(address)), Err(refusal), "{address}");
        }
        for allowed in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.1.1",
            "fd00::1",
            "8.8.8.8",
        ] {
            assert_eq!(policy.check(ip(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn private_ranges_are_refused_on_request_and_loopback_stays() {
        let policy = AddressPolicy {
            block_private: true,
            exempt: Vec::new(),
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
                policy.check(ip(private)),
                Err(Refusal::Private),
                "{private}"
            );
        }
        for allowed in ["127.0.0.1", "::1", "172.32.0.1", "100.128.0.1", "8.8.8.8"] {
            assert_eq!(policy.check(ip(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn an_address_named_literally_is_let_through() {
        let policy = AddressPolicy {
            block_private: true,
            exempt: vec![ip("169.254.170.2"), ip("10.0.0.1")],
        };
        assert_eq!(policy.check(ip("169.254.170.2")), Ok(()));
        assert_eq!(policy.check(ip("::ffff:169.254.170.2")), Ok(()));
        assert_eq!(policy.check(ip("10.0.0.1")), Ok(()));
        assert_eq!(policy.check(ip("169.254.169.254")), Err(Refusal::LinkLocal));
        assert_eq!(policy.check(ip("10.0.0.2")), Err(Refusal::Private));
    }
}
