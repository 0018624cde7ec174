//! Who a request comes from: the client address that rate limits, connection caps, stream caps
//! and storage quotas count against.
//!
//! A connection from a trusted reverse proxy (a network of [`TrustedProxies`]) carries the real
//! client in `X-Forwarded-For`, to which every proxy appends the address it received the request
//! from. Only the entries appended by trusted proxies can be believed, so the list is walked from
//! the right and the client is the nearest hop that is not a trusted proxy (as nginx's real-ip
//! module with `real_ip_recursive on` and Traefik's `forwardedHeaders.trustedIPs` do). The
//! leftmost entry, which the client itself writes, counts only when every hop after it is trusted.
//! IPv6 clients are counted by their /64 (one host usually holds a whole /64).
//!
//! This module never trusts a header from a connection that is not a trusted proxy.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use warp::Filter;

/// The networks of trusted reverse proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The given networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Comma-separated networks (`10.0.0.0/8, fd00::/8`); a bare address is a one-host network.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut networks = vec![];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = match part.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => IpNet::from(
                    part.parse::<IpAddr>()
                        .map_err(|_| format!("`{part}` is neither a network nor an address"))?,
                ),
            };
            networks.push(net.trunc());
        }
        Ok(Self(networks))
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The bucket a client address is counted in: IPv4 addresses alone, IPv6 addresses by /64.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The client of a request that arrived from `remote` with the `X-Forwarded-For` values
/// `forwarded` (each header line, in order), before bucketing.
pub fn client_of(remote: IpAddr, forwarded: &[&str], trusted: &TrustedProxies) -> IpAddr {
    let mut client = canonical(remote);
    if !trusted.contains(&client) {
        return client;
    }
    let hops = forwarded.iter().flat_map(|line| line.split(',')).rev();
    for hop in hops {
        let hop = hop.trim();
        // `[v6]:port` and `v4:port` forms appear in the wild; keep the address.
        let parsed = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()));
        let Some(ip) = parsed.map(canonical) else {
            // A malformed entry was not written by a trusted proxy: the hop before is the
            // furthest we can believe.
            return client;
        };
        client = ip;
        if !trusted.contains(&ip) {
            return client;
        }
    }
    client
}

/// The remote address of a connection, set by the server on every request.
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub SocketAddr);

/// The client a request counts against (already bucketed), or `None` when the request came
/// without a connection address (warp's test harness).
pub fn client(
    trusted: Arc<TrustedProxies>,
) -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<Remote>()
        .and(warp::header::headers_cloned())
        .map(
            move |remote: Option<Remote>, headers: warp::http::HeaderMap| {
                let remote = remote?;
                let lines: Vec<&str> = headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                Some(bucket(client_of(remote.0.ip(), &lines, &trusted)))
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.168.1.1".parse().unwrap();
        let proxy = ip("10.1.2.3");
        // The client wrote a fake first entry; the proxy appended the real address.
        assert_eq!(
            client_of(proxy, &["6.6.6.6, 203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        // Two trusted proxies in a row, header split over two lines.
        assert_eq!(
            client_of(proxy, &["6.6.6.6, 203.0.113.7", "192.168.1.1"], &trusted),
            ip("203.0.113.7")
        );
        // Every hop trusted: the leftmost is the client.
        assert_eq!(
            client_of(proxy, &["10.9.9.9, 192.168.1.1"], &trusted),
            ip("10.9.9.9")
        );
        // Garbage stops the walk at the last hop a trusted proxy wrote.
        assert_eq!(
            client_of(proxy, &["203.0.113.7, garbage, 10.4.4.4"], &trusted),
            ip("10.4.4.4")
        );
        assert_eq!(client_of(proxy, &[], &trusted), proxy);
    }

    #[test]
    fn an_untrusted_connection_is_its_own_client_whatever_it_says() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            client_of(ip("203.0.113.9"), &["10.0.0.1"], &trusted),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            client_of(ip("10.0.0.1"), &["203.0.113.7"], &none),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_v4_is_v4() {
        assert_eq!(
            bucket(ip("2001:db8:1:2:aaaa::1")),
            bucket(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:3::1")));
        assert_eq!(bucket(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert!(trusted.contains(&ip("::ffff:10.0.0.1")));
        assert_eq!(
            client_of(ip("10.0.0.1"), &["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn proxy_lists_parse_networks_and_addresses_or_fail() {
        let list: TrustedProxies = "10.244.0.0/16, fd00::/8, 127.0.0.1".parse().unwrap();
        assert!(list.contains(&ip("10.244.3.4")));
        assert!(list.contains(&ip("fd12::1")));
        assert!(list.contains(&ip("127.0.0.1")));
        assert!(!list.contains(&ip("127.0.0.2")));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }
}
