//! The header policy at the edge: what is stripped from a client request before anything is
//! added (identity headers, Connection-nominated headers), request ids, and X-Forwarded-For
//! with trusted-proxy networks.

use crate::config::Network;
use http::{HeaderMap, HeaderName};
use std::net::IpAddr;

pub const X_REQUEST_ID: &str = "x-request-id";
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// How the caller proved who they are (`jwt | session | apikey`, SPEC §19), sent with the
/// identity headers and stripped from clients like them.
pub const X_USER_AUTH: &str = "x-user-auth";
/// Longest client-supplied request id kept.
const MAX_REQUEST_ID: usize = 128;

/// Every header name the upstream must not get from the client: the configured identity
/// headers and whatever the client's `Connection` header nominates (hop-by-hop by RFC 9110).
/// `upgrade` stays: it is how WebSocket requests reach the upstream.
pub fn untrusted_names(headers: &HeaderMap, identity: &[HeaderName]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = identity.to_vec();
    for value in headers.get_all(http::header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || ["close", "keep-alive", "upgrade"]
                    .iter()
                    .any(|t| token.eq_ignore_ascii_case(t))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.to_ascii_lowercase().as_bytes()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// The client's `X-Request-Id` when it is sane (short, visible ASCII), else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(crate::ids::new_id, str::to_string)
}

/// The `X-Forwarded-For` to send upstream: the client's chain is kept only when the peer is
/// a trusted proxy; the peer is always appended.
pub fn forwarded_for(peer: IpAddr, client_xff: Option<&str>, trusted: &[Network]) -> String {
    match client_xff.filter(|_| trusted.iter().any(|n| n.contains(peer))) {
        Some(chain) if !chain.trim().is_empty() => format!("{}, {peer}", chain.trim()),
        _ => peer.to_string(),
    }
}

/// The address a request comes from: the peer, or, behind trusted proxies, the rightmost
/// `X-Forwarded-For` hop that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, client_xff: Option<&str>, trusted: &[Network]) -> IpAddr {
    if !trusted.iter().any(|n| n.contains(peer)) {
        return peer;
    }
    let hops = client_xff.unwrap_or("").split(',').rev();
    for hop in hops {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.iter().any(|n| n.contains(ip)) => continue,
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn connection_nominated_headers_are_untrusted() {
        let identity = [HeaderName::from_static("x-user-id")];
        let h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "Upgrade, x-other"),
        ]);
        let names = untrusted_names(&h, &identity);
        let names: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-user-id", "x-secret", "x-other"]);
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        let fresh = request_id(&map(&[("x-request-id", "bad id\"<script>")]));
        assert_eq!(fresh.len(), 32);
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }

    #[test]
    fn forwarded_for_trusts_only_configured_proxies() {
        let peer: IpAddr = "10.0.0.5".parse().expect("ip");
        let trusted = ["10.0.0.0/8".parse::<Network>().expect("net")];
        assert_eq!(forwarded_for(peer, Some("1.2.3.4"), &[]), "10.0.0.5");
        assert_eq!(
            forwarded_for(peer, Some("1.2.3.4"), &trusted),
            "1.2.3.4, 10.0.0.5"
        );
        assert_eq!(
            client_ip(peer, Some("1.2.3.4, 10.0.0.9"), &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(peer, Some("1.2.3.4"), &[]), peer);
    }
}
