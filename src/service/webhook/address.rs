//! Which destinations a webhook may reach: the URL's shape, and the
//! addresses its host resolves to. Loopback, private, link-local,
//! unique-local, multicast, unspecified and other special-purpose
//! addresses (IPv4 and IPv6, IPv4-mapped IPv6 included) are refused unless
//! `WEBHOOK_ALLOW_PRIVATE` is on: a webhook must not become a way to make
//! the server call into its own network. The rule is checked when an
//! endpoint is saved and again on every connection, on the very addresses
//! connected to (see [`Resolver`]), so a name that resolves differently
//! later (DNS rebinding) gains nothing.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use crate::error::{AppError, AppResult};

/// Longest endpoint URL.
pub const MAX_URL_LEN: usize = 2048;

/// May a webhook connect to `ip`? Only to globally routable unicast
/// addresses, unless private ones are allowed.
pub fn is_allowed(ip: IpAddr, allow_private: bool) -> bool {
    allow_private || is_public(ip)
}

/// A globally routable unicast address: none of the special-purpose
/// ranges of RFC 6890 and its updates that a webhook could use to reach a
/// private network or the server itself.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d)
            // addresses reach the IPv4 address: judge that one.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // Carrier-grade NAT, 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let first = segments[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // IPv4-compatible ::a.b.c.d (deprecated) and the rest of ::/96.
        || (segments[..6].iter().all(|s| *s == 0))
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the old site-local, fec0::/10.
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || (first == 0x2001 && segments[1] == 0x0db8)
        // NAT64 64:ff9b::/96 reaches IPv4 space: refuse rather than map.
        || (first == 0x0064 && segments[1] == 0xff9b)
        // Discard-only, 100::/64.
        || (first == 0x0100 && segments[1..4].iter().all(|s| *s == 0)))
}

/// An endpoint URL as saved: `http` or `https`, a host, no user name or
/// password, at most [`MAX_URL_LEN`] characters. The host is not resolved
/// here (see [`check_host`]).
pub fn parse_url(text: &str) -> AppResult<reqwest::Url> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_URL_LEN {
        return Err(AppError::bad_input(
            "url",
            format!("a webhook URL must be 1 to {MAX_URL_LEN} characters"),
        ));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| AppError::bad_input("url", format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AppError::bad_input(
            "url",
            "a webhook URL must be http or https",
        ));
    }
    if url.host().is_none() {
        return Err(AppError::bad_input("url", "a webhook URL needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AppError::bad_input(
            "url",
            "a webhook URL may not hold a user name or password",
        ));
    }
    if url.fragment().is_some() {
        return Err(AppError::bad_input(
            "url",
            "a webhook URL may not have a #fragment",
        ));
    }
    Ok(url)
}

/// Resolves the host of `url` and refuses it when it names no address, or
/// any address the rule does not allow.
pub async fn check_host(url: &reqwest::Url, allow_private: bool) -> AppResult<()> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => match tokio::net::lookup_host((name, port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    if addresses.is_empty() {
        return Err(AppError::bad_input(
            "url",
            "the webhook URL's host does not resolve",
        ));
    }
    if let Some(refused) = addresses.iter().find(|ip| !is_allowed(**ip, allow_private)) {
        return Err(AppError::bad_input(
            "url",
            format!(
                "the webhook URL's host resolves to {refused}, a loopback, private or other \
                 non-public address (allowed only with WEBHOOK_ALLOW_PRIVATE=true)"
            ),
        ));
    }
    Ok(())
}

/// The HTTP client's name resolution: the system's, then only the
/// addresses the rule allows. reqwest connects to what this answers, so
/// the address checked is the address connected to. (A URL with an IP
/// literal is not resolved: its address is checked before each attempt.)
pub struct Resolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_allowed(a.ip(), allow_private))
                .collect();
            if allowed.is_empty() {
                let error: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} does not resolve").into()
                } else {
                    format!("{host} resolves only to non-public addresses").into()
                };
                return Err(error);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl Resolver {
    pub fn shared(allow_private: bool) -> Arc<Self> {
        Arc::new(Self { allow_private })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused_and_public_ones_allowed() {
        let refused = [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "192.0.2.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "100::1",
        ];
        for text in refused {
            let ip: IpAddr = text.parse().unwrap();
            assert!(!is_public(ip), "{text} must be refused");
            assert!(is_allowed(ip, true), "{text} is allowed with the flag");
        }
        for text in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            "::ffff:8.8.8.8",
            "2a00:1450:4001::1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert!(is_public(ip), "{text} is public");
        }
    }

    #[test]
    fn urls_are_checked_for_shape() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/x?y=1").is_ok());
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "not a url",
            &format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)),
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
    }
}
