//! What is the same for every request of one client connection: the peer's address, whether
//! it is a trusted proxy, and (when it is not) the `X-Forwarded-For` value sent upstream.
//! Made on the connection's first request and carried to the next ones of a keep-alive
//! connection (Pingora's `persist_connection_context` / `on_connection_reuse`).

use super::headers;
use crate::config::Network;
use http::HeaderValue;
use std::any::Any;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: IpAddr,
    /// One of `proxy.trusted_proxies`: its requests' `X-Forwarded-For` is read per request.
    pub trusted: bool,
    /// `X-Forwarded-For` for a peer that is not trusted: the peer alone, whatever the client
    /// sent.
    plain_forwarded_for: HeaderValue,
}

impl Peer {
    pub fn new(ip: IpAddr, trusted_proxies: &[Network]) -> Peer {
        let trusted = trusted_proxies.iter().any(|n| n.contains(ip));
        let text = headers::forwarded_for(ip, None, &[]);
        Peer {
            ip,
            trusted,
            // An address's text is always a valid value.
            plain_forwarded_for: HeaderValue::try_from(text)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        }
    }

    /// The `X-Forwarded-For` to send upstream (`headers::forwarded_for`); the client's chain
    /// (`client_xff`) is read only behind a trusted proxy.
    pub fn forwarded_for<'a>(
        &self,
        client_xff: impl FnOnce() -> Option<&'a str>,
        trusted_proxies: &[Network],
    ) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        if !self.trusted {
            return Ok(self.plain_forwarded_for.clone());
        }
        HeaderValue::try_from(headers::forwarded_for(
            self.ip,
            client_xff(),
            trusted_proxies,
        ))
    }

    /// What the next request of the connection starts with.
    pub fn persist(&self) -> Box<dyn Any + Send + Sync> {
        Box::new(self.clone())
    }

    /// The value `persist` made on the connection's previous request, if it is one.
    pub fn reused(previous: Box<dyn Any + Send + Sync>) -> Option<Peer> {
        previous.downcast::<Peer>().ok().map(|p| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_peer_reads_each_requests_chain_a_plain_one_never_does() {
        let trusted = ["10.0.0.0/8".parse::<Network>().expect("net")];
        let proxy = Peer::new("10.0.0.5".parse().expect("ip"), &trusted);
        assert!(proxy.trusted);
        let xff = proxy.forwarded_for(|| Some("1.2.3.4"), &trusted);
        assert_eq!(xff.expect("value"), "1.2.3.4, 10.0.0.5");
        let xff = proxy.forwarded_for(|| None, &trusted);
        assert_eq!(xff.expect("value"), "10.0.0.5");

        let client = Peer::new("192.0.2.7".parse().expect("ip"), &trusted);
        assert!(!client.trusted);
        let xff = client.forwarded_for(|| Some("1.2.3.4"), &trusted);
        assert_eq!(xff.expect("value"), "192.0.2.7");

        let carried = Peer::reused(client.persist()).expect("a peer");
        assert_eq!(carried.ip, client.ip);
        assert!(Peer::reused(Box::new(7u8)).is_none());
    }
}
