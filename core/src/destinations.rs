//! Where switchboard may connect for a client, and the domain names it is
//! asked for, normalised. A client names the domain; whoever controls that
//! domain's DNS names the addresses: without a policy, switchboard would be
//! an open proxy into the operator's network (SSRF).
//!
//! - Domains are normalised before routing (ASCII lower case, no trailing
//!   dot, international names as IDNA A-labels, RFC 5891), so `LOCALHOST`
//!   and `localhost.` take the `localhost` route.
//! - `allowed` and `denied` lists hold exact domains and `*.suffix`
//!   patterns (any name below the suffix, not the suffix itself).
//! - Addresses found by DNS must be globally reachable (the IANA IPv4 and
//!   IPv6 special-purpose address registries), IPv4 embedded in IPv6
//!   (mapped, compatible, NAT64, 6to4) included, unless the operator allows
//!   private ones; their port must be allowed. Static routes are the
//!   operator's own and always allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::rr::Name;

/// A domain of the `allowed`/`denied` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// `*.example.org`: names below `example.org`.
    Below(String),
}

impl Pattern {
    /// `example.org` or `*.example.org`, normalised.
    pub fn parse(text: &str) -> Option<Pattern> {
        match text.strip_prefix("*.") {
            Some(suffix) => normalize(suffix).map(Pattern::Below),
            None => normalize(text).map(Pattern::Exact),
        }
    }

    fn matches(&self, domain: &str) -> bool {
        match self {
            Pattern::Exact(name) => domain == name,
            Pattern::Below(suffix) => domain
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// The destination policy.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    /// Empty: any domain not denied.
    pub allowed: Vec<Pattern>,
    pub denied: Vec<Pattern>,
    /// Empty: any port.
    pub allowed_ports: Vec<u16>,
    /// Servers found by DNS may be at addresses that are not globally
    /// reachable.
    pub allow_private: bool,
}

impl Destinations {
    /// Whether switchboard serves `domain` (normalised) at all.
    pub fn serves(&self, domain: &str) -> bool {
        let allowed = self.allowed.is_empty() || self.allowed.iter().any(|p| p.matches(domain));
        allowed && !self.denied_matches(domain)
    }

    pub fn denied_matches(&self, domain: &str) -> bool {
        self.denied.iter().any(|p| p.matches(domain))
    }

    /// Why an address found by DNS may not be connected to, if it may not.
    pub fn refuse(&self, addr: SocketAddr) -> Option<&'static str> {
        if !self.allowed_ports.is_empty() && !self.allowed_ports.contains(&addr.port()) {
            return Some("port not allowed (backend.allowed_ports)");
        }
        if !self.allow_private && !is_global(addr.ip()) {
            return Some("not a public address (backend.allow_private_addresses)");
        }
        None
    }
}

/// A domain as routing compares it: ASCII lower case, no trailing dot,
/// A-labels for international names. `None` for what is not a domain name.
pub fn normalize(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.len() > 253 {
        return None;
    }
    if domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        if domain.split('.').any(str::is_empty) {
            return None;
        }
        return Some(domain.to_ascii_lowercase());
    }
    let name = Name::from_utf8(domain).ok()?;
    let ascii = name.to_ascii();
    Some(ascii.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether an address is globally reachable: not in any block of the IANA
/// special-purpose registries marked otherwise. IPv4 carried inside IPv6
/// is judged as IPv4.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_global_v4(v4),
            None => is_global_v6(v6),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                        // 0.0.0.0/8, "this network"
        || a == 10                                  // 10/8, private
        || (a == 100 && (b & 0xc0) == 64)           // 100.64/10, shared (CGN)
        || a == 127                                 // 127/8, loopback
        || (a == 169 && b == 254)                   // 169.254/16, link-local
        || (a == 172 && (b & 0xf0) == 16)           // 172.16/12, private
        || (a == 192 && b == 0 && c == 0)           // 192.0.0/24, IETF assignments
        || (a == 192 && b == 0 && c == 2)           // 192.0.2/24, documentation
        || (a == 192 && b == 88 && c == 99)         // 192.88.99/24, 6to4 relay
        || (a == 192 && b == 168)                   // 192.168/16, private
        || (a == 198 && (b & 0xfe) == 18)           // 198.18/15, benchmarking
        || (a == 198 && b == 51 && c == 100)        // 198.51.100/24, documentation
        || (a == 203 && b == 0 && c == 113)         // 203.0.113/24, documentation
        || a >= 224) // multicast, 240/4 reserved, broadcast
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001) // 64:ff9b:1::/48, local NAT64
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64, discard
        || (s[0] == 0x2001 && s[1] < 0x0200)        // 2001::/23, IETF assignments (Teredo incl.)
        || (s[0] == 0x2001 && s[1] == 0x0db8)       // 2001:db8::/32, documentation
        || (s[0] & 0xfff0) == 0x3ff0                // 3fff::/20, documentation
        || s[0] == 0x5f00                           // 5f00::/16, SRv6 SIDs
        || (s[0] & 0xfe00) == 0xfc00                // fc00::/7, unique local
        || (s[0] & 0xffc0) == 0xfe80                // fe80::/10, link-local
        || (s[0] & 0xff00) == 0xff00) // multicast
}

/// IPv4 inside IPv6: mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`,
/// deprecated but still routed by some stacks), NAT64 (`64:ff9b::/96`) and
/// 6to4 (`2002:aabb:ccdd::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are IPv6's own, not IPv4-compatible.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_before_routing() {
        assert_eq!(normalize("LocalHost").as_deref(), Some("localhost"));
        assert_eq!(normalize("localhost.").as_deref(), Some("localhost"));
        assert_eq!(
            normalize("Bücher.Example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            normalize("xn--bcher-kva.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        for bad in ["", ".", "a..b", "a b", &"x".repeat(300)] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn allowed_and_denied_lists_take_exact_names_and_suffixes() {
        let policy = Destinations {
            allowed: vec![
                Pattern::parse("example.org").unwrap(),
                Pattern::parse("*.example.net").unwrap(),
            ],
            denied: vec![Pattern::parse("bad.example.net").unwrap()],
            ..Destinations::default()
        };
        assert!(policy.serves("example.org"));
        assert!(!policy.serves("sub.example.org"), "exact only");
        assert!(policy.serves("chat.example.net"));
        assert!(policy.serves("a.b.example.net"));
        assert!(
            !policy.serves("example.net"),
            "the suffix itself is not below it"
        );
        assert!(!policy.serves("evilexample.net"));
        assert!(!policy.serves("bad.example.net"), "denied wins");
        assert!(!policy.serves("other.test"));
        assert!(Destinations::default().serves("anything.test"));
    }

    #[test]
    fn special_purpose_addresses_are_not_global() {
        for internal in [
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_global(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "198.20.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2a00:1450::1",
            "2001:4860::8888",
        ] {
            assert!(is_global(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ports_and_private_addresses_follow_the_policy() {
        let strict = Destinations {
            allowed_ports: vec![5222],
            ..Destinations::default()
        };
        assert_eq!(strict.refuse("8.8.8.8:5222".parse().unwrap()), None);
        assert!(strict.refuse("8.8.8.8:25".parse().unwrap()).is_some());
        assert!(strict.refuse("10.0.0.1:5222".parse().unwrap()).is_some());
        let open = Destinations {
            allow_private: true,
            ..Destinations::default()
        };
        assert_eq!(open.refuse("10.0.0.1:25".parse().unwrap()), None);
    }
}
