//! The client's address: the TCP peer, unless the peer is a trusted proxy
//! (`trusted_proxies` in the config), in which case the proxy headers named
//! in the settings (`trustedProxy.headers`, default `X-Forwarded-For`) are
//! read. From `X-Forwarded-For` the rightmost address that is not itself a
//! trusted proxy is taken (what the nearest proxy saw), or the leftmost
//! with `trustedProxy.useLeftmostIP`. A header from anyone else is ignored:
//! a client can't choose the address its limits are counted for.

use crate::auth::limiter::{canonical, in_net};
use crate::settings::TrustedProxy;
use hyper::HeaderMap;
use std::net::IpAddr;

pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[(IpAddr, u8)],
    tp: &TrustedProxy,
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|n| in_net(peer, *n)) {
        return peer;
    }
    let leftmost = tp.use_leftmost_ip;
    let names: Vec<&str> = if tp.headers.is_empty() {
        vec!["X-Forwarded-For"]
    } else {
        tp.headers.iter().map(String::as_str).collect()
    };
    for name in names {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut ips: Vec<IpAddr> = values
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        if ips.is_empty() {
            continue;
        }
        if leftmost {
            return ips[0];
        }
        while let Some(ip) = ips.pop() {
            if ips.is_empty() || !trusted.iter().any(|n| in_net(ip, *n)) {
                return ip;
            }
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::limiter::parse_net;

    fn h(xff: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("x-forwarded-for", xff.parse().unwrap());
        m
    }

    #[test]
    fn headers_only_from_trusted_peers() {
        let trusted = vec![
            parse_net("127.0.0.1").unwrap(),
            parse_net("10.0.0.0/8").unwrap(),
        ];
        let s = TrustedProxy::default();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(client_ip(other, &h("203.0.113.5"), &trusted, &s), other);
        // A trusted peer: the rightmost untrusted hop.
        assert_eq!(
            client_ip(lo, &h("198.51.100.1, 203.0.113.5, 10.1.1.1"), &trusted, &s),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        let left = TrustedProxy {
            headers: vec!["X-Forwarded-For".into()],
            use_leftmost_ip: true,
        };
        assert_eq!(
            client_ip(lo, &h("198.51.100.1, 203.0.113.5"), &trusted, &left),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // Garbage or no header: the peer.
        assert_eq!(client_ip(lo, &h("not an ip"), &trusted, &s), lo);
        assert_eq!(client_ip(lo, &HeaderMap::new(), &trusted, &s), lo);
        // Nothing trusted by default.
        assert_eq!(client_ip(lo, &h("203.0.113.5"), &[], &s), lo);
    }
}
