//! The SSRF guard: deliveries go only to public addresses, or to networks configuration allows
//! (`notifications.allowed_networks`, e.g. `127.0.0.0/8` for tests and labs). Host names are resolved by our own resolver, which refuses when any address it finds is
//! not public (so a name cannot smuggle in an internal address, and the address checked is the
//! address connected to); IP literals, which skip resolution, are checked before sending.
//!
//! Not public: unspecified, loopback, private (10/8, 172.16/12, 192.168/16), carrier-grade NAT
//! (100.64/10), link-local (169.254/16, including cloud metadata), multicast, broadcast,
//! documentation and benchmarking ranges, IPv6 unique-local (fc00::/7) and link-local (fe80::/10),
//! the discard prefix (100::/64), local-use NAT64 (64:ff9b:1::/48) and Teredo (2001::/32, whose
//! IPv4 address is hidden). An IPv4 address inside an IPv6 one is judged as that IPv4 address:
//! mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), translated (`::ffff:0:a.b.c.d`), NAT64
//! (64:ff9b::/96) and 6to4 (2002::/16).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

pub use ipnet::IpNet;

/// The message of a refused destination (also how [`crate::send`] recognises the refusal).
pub const REFUSED: &str = "destination is not a public address";

fn v4_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        || o[0] >= 240)
}

/// The IPv4 address an IPv6 address carries, in the forms that reach it: mapped, compatible,
/// translated, NAT64 and 6to4.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            Some(v4(hi, lo))
        }
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// Whether `ip` is a public address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_public(v4),
        IpAddr::V6(v6) => {
            if v6.is_unspecified() || v6.is_loopback() {
                return false;
            }
            if let Some(v4) = embedded_v4(v6) {
                return v4_public(v4);
            }
            let s = v6.segments();
            !(v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x2001 && s[1] == 0)
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1))
        }
    }
}

/// Parses CIDRs such as `127.0.0.0/8` or `::1/128`; a bare address means just that address.
pub fn parse_networks(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{s}' is not a network in CIDR notation (e.g. 127.0.0.0/8)"))
        })
        .collect()
}

/// Which destinations deliveries may reach: public addresses, plus the allowed networks.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Arc<Vec<IpNet>>,
}

impl Guard {
    /// A guard that also lets `allowed` through.
    pub fn new(allowed: Vec<IpNet>) -> Guard {
        Guard {
            allowed: Arc::new(allowed),
        }
    }

    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => embedded_v4(v6).map_or(ip, IpAddr::V4),
            other => other,
        };
        is_public(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// Whether a URL names an IP literal the guard refuses (literals skip the resolver).
    pub fn literal_refused(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| self.url_refused(&u))
    }

    /// Whether a parsed URL names an IP literal the guard refuses.
    pub fn url_refused(&self, url: &url::Url) -> bool {
        literal_host(url).is_some_and(|ip| !self.permits(ip))
    }
}

/// The IP address a URL names literally, if it does.
pub fn literal_of(url: &str) -> Option<IpAddr> {
    literal_host(&url::Url::parse(url).ok()?)
}

fn literal_host(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The resolver deliveries use: it refuses names resolving to any address the guard refuses, so
/// the address checked is the address connected to (no DNS-rebinding window).
impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let guard = self.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !guard.permits(a.ip())) {
                return Err(REFUSED.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            // IPv4 inside IPv6: compatible, translated, NAT64, 6to4; discard, local NAT64, Teredo.
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "100::1",
            "64:ff9b:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::101:101",
            "2002:101:101::1",
            "::ffff:0:101:101",
        ] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
        let g = Guard::default();
        assert!(g.literal_refused("http://127.0.0.1:8080/x"));
        assert!(g.literal_refused("http://[::1]/x"));
        assert!(g.literal_refused("http://169.254.169.254/latest/meta-data"));
        assert!(g.literal_refused("http://10.0.0.1/x"));
        assert!(g.literal_refused("http://[::127.0.0.1]/x"));
        assert!(g.literal_refused("http://[::ffff:0:7f00:1]:8080/x"));
        assert!(g.literal_refused("http://[64:ff9b::a9fe:a9fe]/latest/meta-data"));
        assert!(g.literal_refused("http://[2002:7f00:1::]/x"));
        assert!(g.literal_refused("http://[100::1]/x"));
        assert!(!g.literal_refused("https://hooks.example.com/x"));
        assert!(!g.literal_refused("https://1.1.1.1/x"));
    }

    #[test]
    fn allowed_networks_lift_the_guard_for_themselves_only() {
        let g = Guard::new(parse_networks(&["127.0.0.0/8".into(), "fd00::1".into()]).unwrap());
        assert!(!g.literal_refused("http://127.0.0.1:8080/x"));
        assert!(
            !g.literal_refused("http://[::ffff:127.0.0.2]/x"),
            "mapped forms count too"
        );
        assert!(!g.literal_refused("http://[fd00::1]/x"));
        assert!(g.literal_refused("http://[fd00::2]/x"));
        assert!(g.literal_refused("http://[::1]/x"));
        assert!(g.literal_refused("http://10.0.0.1/x"));
        assert_eq!(
            parse_networks(&["10.0.0.0/33".into()]).unwrap_err(),
            "'10.0.0.0/33' is not a network in CIDR notation (e.g. 127.0.0.0/8)"
        );
    }
}
