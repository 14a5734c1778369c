//! The header policy at the edge: what is stripped from a client request before anything is
//! added (identity headers, Connection-nominated headers), request ids, and X-Forwarded-For
//! with trusted-proxy networks.

use crate::config::Network;
use http::{HeaderMap, HeaderName};
use std::net::IpAddr;

// Header names gatehouse writes through Pingora's `insert_header` are `&'static str`: the
// cheapest form the unpatched API takes (benches/README.md "Issue 28"). The case-preserving
// name is then a static `Bytes` and the name is parsed once (a custom name copied once); a
// `HeaderName`, even `from_static`, is copied into the case map and then parsed and copied
// again, and a shared `Bytes` pays a reference count on top of the parse.

pub const X_REQUEST_ID: &str = "x-request-id";
/// The same, in the letter case gatehouse's answers to clients use.
pub const X_REQUEST_ID_ANSWER: &str = "X-Request-Id";
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// How the caller proved who they are (`jwt | session | apikey`, SPEC §19), sent with the
/// identity headers and stripped from clients like them.
pub const X_USER_AUTH: &str = "x-user-auth";
/// Longest client-supplied request id kept.
const MAX_REQUEST_ID: usize = 128;

/// Every header name of `upstream` (the head about to be forwarded) the upstream must not get
/// from the client, each once: the configured identity headers (`identity`, with the
/// credential headers when they are not forwarded) and whatever the client's `Connection`
/// header in `sent` nominates (hop-by-hop by RFC 9110). `upgrade` stays: it is how WebSocket
/// requests reach the upstream.
///
/// Only names the request has: one pass over its (few) names instead of a removal per
/// configured name, which hashes into both of Pingora's maps each time (3.7k instructions
/// per request for six names, benches/README.md "Issue 28"). Nothing is allocated when
/// there is nothing to strip.
pub fn untrusted_names(
    sent: &HeaderMap,
    upstream: &HeaderMap,
    identity: &[HeaderName],
) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = upstream
        .keys()
        .filter(|name| identity.contains(name))
        .cloned()
        .collect();
    for value in sent.get_all(http::header::CONNECTION) {
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
                if !names.contains(&name) && upstream.contains_key(&name) {
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

    /// vendor/patches/pingora-http-0001: a parsed head's header map has room for the headers
    /// gatehouse adds, so adding them does not grow it. Fails when the patch is not in use
    /// (Pingora's own sizing leaves room for one or two).
    #[test]
    fn pingora_patch_header_maps_have_headroom() {
        for parsed in [0, 3, 5, 9, 20] {
            let resp = pingora::http::ResponseHeader::build(200, Some(parsed)).expect("a head");
            let req =
                pingora::http::RequestHeader::build("GET", b"/", Some(parsed)).expect("a head");
            for capacity in [resp.headers.capacity(), req.headers.capacity()] {
                assert!(
                    capacity >= parsed + pingora::http::HEADER_HEADROOM.max(8),
                    "{parsed} parsed headers: room for {capacity}"
                );
            }
        }
    }

    /// vendor/patches/pingora-http-0002: a header inserted under a name parsed once replaces
    /// what the head had under that name and goes on the wire in the letter case given
    /// (does not build without the patch).
    #[test]
    fn pingora_patch_inserts_under_a_parsed_name() {
        use crate::limits::{RATELIMIT_HEADER, RATELIMIT_NAME};
        use pingora::http::ResponseHeader;
        let mut resp = ResponseHeader::build(200, None).expect("a head");
        resp.insert_header("ratelimit", "old").expect("inserted");
        resp.insert_parsed_header(
            &RATELIMIT_NAME,
            RATELIMIT_HEADER,
            http::HeaderValue::from_static("\"default\";r=1;t=2"),
        )
        .expect("inserted");
        let all: Vec<_> = resp.headers.get_all("ratelimit").iter().collect();
        assert_eq!(all, ["\"default\";r=1;t=2"]);
        let mut wire = Vec::new();
        resp.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).expect("ascii");
        assert!(
            wire.contains("RateLimit: \"default\";r=1;t=2\r\n"),
            "{wire:?}"
        );
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn connection_nominated_headers_are_untrusted() {
        let identity = [
            HeaderName::from_static("x-user-id"),
            HeaderName::from_static("x-user-name"),
        ];
        let h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "Upgrade, x-other, x-absent"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-user-id", "7"),
            ("x-user-id", "8"),
            ("upgrade", "websocket"),
        ]);
        let names = untrusted_names(&h, &h, &identity);
        let names: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
        // What the request has, each once; not what it does not have.
        assert_eq!(names, vec!["x-user-id", "x-secret", "x-other"]);
        let plain = map(&[("host", "t")]);
        assert!(untrusted_names(&plain, &plain, &identity).is_empty());
        // Nominated by the client, looked for in what is forwarded.
        assert!(untrusted_names(&h, &plain, &identity).is_empty());
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
