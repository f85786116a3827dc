//! The one outbound HTTP client of the OAuth2 flow: the token exchange, the
//! provider's user info, Apple's signing keys and the avatar download all
//! go out through it. Bounded: a global timeout per request, a cap on every
//! body read, at most 5 redirects. The avatar download also refuses
//! addresses that aren't public (loopback, private, link-local, multicast,
//! unspecified), checked on the resolved addresses so a name can't point
//! it inside the network (as PocketBase's avatar client does), unless the
//! operator allows them (`oauth2_private_addresses`, for an identity
//! provider on the local network).

use std::net::IpAddr;
use std::time::Duration;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Largest provider answer read (token, user info, keys).
pub const MAX_BODY: u64 = 1 << 20;
/// Largest avatar downloaded; a larger one is dropped, not cut.
pub const MAX_AVATAR: u64 = 5 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);
/// PocketBase gives the avatar download 10 seconds.
const AVATAR_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an address is one an outbound request may reach when private
/// addresses are refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v) => {
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_multicast()
                || v.is_unspecified()
                || v.is_broadcast()
                // 100.64.0.0/10 (carrier-grade NAT)
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v) => {
            let seg = v.segments()[0];
            !(v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (seg & 0xfe00) == 0xfc00 // unique local
                || (seg & 0xffc0) == 0xfe80) // link local
        }
    }
}

/// Resolves as usual, then keeps only public addresses.
#[derive(Debug, Default)]
struct PublicOnly(DefaultResolver);

impl Resolver for PublicOnly {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = self.0.resolve(uri, config, timeout)?;
        let mut out = self.empty();
        for a in all.iter().filter(|a| is_public(a.ip())) {
            out.push(*a);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

fn config(timeout: Duration) -> ureq::config::Config {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(5)
        .build()
}

/// The client for the provider's endpoints (whose URLs the operator set).
pub fn provider_agent() -> ureq::Agent {
    config(TIMEOUT).into()
}

/// The client for avatar URLs (which the provider's answer names).
pub fn avatar_agent(allow_private: bool) -> ureq::Agent {
    if allow_private {
        return config(AVATAR_TIMEOUT).into();
    }
    ureq::Agent::with_parts(
        config(AVATAR_TIMEOUT),
        DefaultConnector::default(),
        PublicOnly::default(),
    )
}

/// Reads at most `cap` bytes of a body; more is an error, never a cut.
pub fn read_capped(
    resp: &mut ureq::http::Response<ureq::Body>,
    cap: u64,
) -> Result<Vec<u8>, String> {
    resp.body_mut()
        .with_config()
        .limit(cap)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Downloads an avatar: (bytes, file name from the URL's path). Errors for
/// a status outside 200..=399, a body over `MAX_AVATAR`, or a refused
/// address.
pub fn download_avatar(url: &str, allow_private: bool) -> Result<(Vec<u8>, String), String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("not an http(s) URL".into());
    }
    let mut resp = avatar_agent(allow_private)
        .get(url)
        .call()
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if !(200..=399).contains(&status) {
        return Err(format!("status {status}"));
    }
    let data = read_capped(&mut resp, MAX_AVATAR)?;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "avatar".into());
    Ok((data, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "17.253.144.10", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn loopback_refused_unless_allowed() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            while let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nGIF",
                );
            }
        });
        let url = format!("http://127.0.0.1:{port}/pic/me.gif");
        assert!(download_avatar(&url, false).is_err());
        let (data, name) = download_avatar(&url, true).unwrap();
        assert_eq!((data.as_slice(), name.as_str()), (&b"GIF"[..], "me.gif"));
        let url = format!("http://localhost:{port}/x.gif");
        assert!(download_avatar(&url, false).is_err(), "a name for loopback");
        assert!(download_avatar("file:///etc/passwd", true).is_err());
    }
}
