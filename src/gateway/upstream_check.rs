//! The health check each route's load balancer holds (`routes` builds one per route): a
//! connect per upstream (TCP, and for `https://` upstreams the TLS handshake with the same
//! verification as the proxy), and one short log line when an upstream goes down (with why)
//! and one when it is back (after how long). It knows the route's upstreams only through
//! `PeerSource`, so it does not depend on the route table that holds it. The rounds are run
//! by `health`.

use async_trait::async_trait;
use pingora::connectors::TransportConnector;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend;
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the check reaches an upstream address: the same peer (TLS, SNI, roots, timeouts) the
/// proxy connects to (`routes::Peers`).
pub trait PeerSource: Send + Sync {
    /// The peer for `addr`; `None`: not an upstream of this route.
    fn http_peer(&self, addr: &SocketAddr) -> Option<HttpPeer>;
}

#[derive(Default)]
struct Upstream {
    /// Why the last check failed.
    last_error: Option<String>,
    /// When it was taken out of the rotation.
    down_since: Option<(Instant, String)>,
}

pub struct UpstreamCheck {
    route: String,
    peers: Arc<dyn PeerSource>,
    connector: TransportConnector,
    upstreams: Mutex<HashMap<String, Upstream>>,
}

impl UpstreamCheck {
    pub fn new<P: PeerSource + 'static>(route: &str, peers: Arc<P>) -> UpstreamCheck {
        UpstreamCheck {
            route: route.to_string(),
            peers,
            connector: TransportConnector::new(None),
            upstreams: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, addr: &str, f: impl FnOnce(&mut Upstream) -> T) -> Option<T> {
        let mut map = self.upstreams.lock().ok()?;
        Some(f(map.entry(addr.to_string()).or_default()))
    }
}

/// `12 s`, `3 min`, `2 h`: how long an upstream was down, for a person reading the log.
fn spoken(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[async_trait]
impl HealthCheck for UpstreamCheck {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let peer = target.addr.as_inet().and_then(|a| self.peers.http_peer(a));
        let Some(peer) = peer else {
            return pingora::Error::e_explain(
                pingora::ErrorType::InternalError,
                "not an upstream of this route",
            );
        };
        let result = self.connector.new_stream(&peer).await.map(drop);
        let error = result.as_ref().err().map(|e| match e.etype() {
            // The handshake's own words say what did not verify.
            pingora::ErrorType::TLSHandshakeFailure | pingora::ErrorType::InvalidCert => {
                format!("TLS: {}", crate::tls::handshake_reason(e))
            }
            other => other.as_str().to_string(),
        });
        self.with(&target.addr.to_string(), |u| u.last_error = error);
        result
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let addr = target.addr.to_string();
        let route = &self.route;
        if healthy {
            if let Some(Some((since, at))) = self.with(&addr, |u| u.down_since.take()) {
                log::info!(
                    "upstream {addr} of route {route} is back after {} (down since {at})",
                    spoken(since.elapsed())
                );
            }
            return;
        }
        let at = crate::access_log::now_rfc3339();
        let why = self
            .with(&addr, |u| {
                u.down_since = Some((Instant::now(), at));
                u.last_error.clone()
            })
            .flatten()
            .unwrap_or_else(|| "no answer".to_string());
        log::warn!("upstream {addr} of route {route} is down ({why}): its requests get 502 until it is back");
    }

    fn backend_summary(&self, target: &Backend) -> String {
        target.addr.to_string()
    }

    fn health_threshold(&self, _success: bool) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(spoken(Duration::from_secs(12)), "12 s");
        assert_eq!(spoken(Duration::from_secs(300)), "5 min");
        assert_eq!(spoken(Duration::from_secs(4 * 3600)), "4 h");
    }
}
