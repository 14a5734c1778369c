//! The proxy's route table: longest prefix wins; each route has its upstreams (round robin
//! with health checks, plain or TLS), its auth mode and its timeouts.

use super::upstream_check::{PeerSource, UpstreamCheck};
use crate::config::{AuthMode, Config, CorsConfig, RouteConfig, Upstream};
use crate::tls::{CertInfo, UpstreamTls};
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// How often dead upstreams are probed to put them back (and live ones to take them out).
pub const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct Route {
    pub prefix: String,
    pub auth: AuthMode,
    pub require_staff: bool,
    /// A sign-in with a second factor only (SPEC §17).
    pub require_mfa: bool,
    /// The credential kinds the route takes (SPEC §19).
    pub accept: crate::auth::Accept,
    /// Members of any one of these only; empty: no group needed.
    pub require_groups: Vec<String>,
    /// Empty: every method.
    pub methods: Vec<http::Method>,
    /// `methods` as the `Allow` header of a 405.
    pub allow: String,
    pub strip_prefix: bool,
    /// Browsers that are not signed in go to the sign-in page (SPEC §15).
    pub login_redirect: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub cors: Option<CorsConfig>,
    /// The `aud` of the identity assertion sent upstream; `None`: no assertion.
    pub assertion_audience: Option<Arc<str>>,
    pub upstreams: Arc<LoadBalancer<RoundRobin>>,
    /// How each upstream address is reached (the proxy and the health checks share it).
    pub peers: Arc<Peers>,
    /// This route's upstream-latency histogram, resolved once.
    pub upstream_duration: prometheus::Histogram,
    /// `rate_limit` (SPEC §20); `None`: unlimited.
    pub rate_limit: Option<crate::limits::RouteLimit>,
}

/// A route's upstream addresses with their scheme and host, and its TLS material.
pub struct Peers {
    by_addr: HashMap<SocketAddr, Upstream>,
    /// Each address's metric label, formatted once.
    labels: HashMap<SocketAddr, Arc<str>>,
    tls: UpstreamTls,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// Keeps this route's TLS connections in a pool of their own when it has its own roots
    /// or client certificate (Pingora's pool key does not include the roots).
    group_key: u64,
}

impl Peers {
    /// The peer to connect to for `addr`: TLS with SNI and verification for `https://`
    /// upstreams (never a downgrade: a certificate that does not verify fails the connect).
    pub fn http_peer(&self, addr: &SocketAddr) -> Option<HttpPeer> {
        let up = self.by_addr.get(addr)?;
        let mut peer = HttpPeer::new(
            *addr,
            up.tls,
            if up.tls {
                up.host.clone()
            } else {
                String::new()
            },
        );
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        if up.tls {
            peer.options.verify_cert = true;
            peer.options.verify_hostname = true;
            peer.options.ca = self.tls.ca.clone();
            peer.client_cert_key = self.tls.client.clone();
            peer.group_key = self.group_key;
        }
        Some(peer)
    }

    /// The certificate files this route uses.
    pub fn certs(&self) -> &[CertInfo] {
        &self.tls.certs
    }
}

/// The health check connects to the same peer as the proxy.
impl PeerSource for Peers {
    fn http_peer(&self, addr: &SocketAddr) -> Option<HttpPeer> {
        Peers::http_peer(self, addr)
    }
}

pub struct RouteTable {
    /// Longest prefix first.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn from_config(config: &Config) -> Result<RouteTable, String> {
        let mut routes = config
            .routes
            .iter()
            .map(build)
            .collect::<Result<Vec<_>, _>>()?;
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(RouteTable { routes })
    }

    /// The route for `path`: the longest prefix that matches on a segment boundary (a prefix
    /// without a trailing slash does not match `/apiary` for `/api`).
    pub fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| prefix_matches(&r.prefix, path))
    }

    pub fn all(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Every certificate file the routes use.
    pub fn certs(&self) -> Vec<CertInfo> {
        self.routes
            .iter()
            .flat_map(|r| r.peers.certs().iter().cloned())
            .collect()
    }
}

/// Resolves each upstream (names through the system resolver, once, when the routes are
/// built: at start and at each reload) to its addresses.
fn resolve(cfg: &RouteConfig) -> Result<HashMap<SocketAddr, Upstream>, String> {
    let mut by_addr: HashMap<SocketAddr, Upstream> = HashMap::new();
    for up in &cfg.upstreams {
        let addrs = (up.host.as_str(), up.port).to_socket_addrs().map_err(|e| {
            format!(
                "route {}: upstream {up}: cannot resolve {}: {e}",
                cfg.prefix, up.host
            )
        })?;
        for addr in addrs {
            match by_addr.get(&addr) {
                Some(other) if other != up => {
                    return Err(format!(
                        "route {}: upstreams {other} and {up} are both {addr}",
                        cfg.prefix
                    ))
                }
                _ => {
                    by_addr.insert(addr, up.clone());
                }
            }
        }
    }
    if by_addr.is_empty() {
        return Err(format!(
            "route {}: no upstream address resolved",
            cfg.prefix
        ));
    }
    Ok(by_addr)
}

pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn build(cfg: &RouteConfig) -> Result<Arc<Route>, String> {
    let by_addr = resolve(cfg)?;
    let tls = UpstreamTls::load(cfg)?;
    let group_key = if tls.ca.is_some() || tls.client.is_some() {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        cfg.prefix.hash(&mut h);
        h.finish()
    } else {
        0
    };
    let mut addrs: Vec<SocketAddr> = by_addr.keys().copied().collect();
    addrs.sort();
    let labels = addrs
        .iter()
        .map(|a| (*a, Arc::from(a.to_string())))
        .collect();
    let peers = Arc::new(Peers {
        by_addr,
        labels,
        tls,
        connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
        read_timeout: Duration::from_millis(cfg.read_timeout_ms),
        group_key,
    });
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(addrs)
        .map_err(|e| format!("route {}: upstreams: {e}", cfg.prefix))?;
    lb.set_health_check(Box::new(UpstreamCheck::new(
        &cfg.prefix,
        Arc::clone(&peers),
    )));
    lb.health_check_frequency = Some(HEALTH_CHECK_EVERY);
    lb.parallel_health_check = true;
    Ok(Arc::new(Route {
        prefix: cfg.prefix.clone(),
        auth: cfg.auth,
        require_staff: cfg.require_staff,
        require_mfa: cfg.require_mfa,
        accept: crate::auth::Accept::of(&cfg.accept),
        require_groups: cfg.require_groups.clone(),
        methods: cfg.methods.clone(),
        allow: cfg
            .methods
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        strip_prefix: cfg.strip_prefix,
        login_redirect: cfg.login_redirect,
        connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
        read_timeout: Duration::from_millis(cfg.read_timeout_ms),
        cors: cfg.cors.clone(),
        assertion_audience: cfg
            .identity_assertion
            .then(|| Arc::from(cfg.audience.as_deref().unwrap_or(&cfg.prefix))),
        upstreams: Arc::new(lb),
        peers,
        upstream_duration: crate::metrics::UPSTREAM_DURATION.with_label_values(&[&cfg.prefix]),
        rate_limit: cfg
            .rate_limit
            .as_ref()
            .map(|l| crate::limits::RouteLimit::new(&cfg.prefix, l, cfg.rate_limit_shared)),
    }))
}

impl Route {
    /// The path sent upstream (borrowed unless the prefix is stripped).
    pub fn upstream_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if !self.strip_prefix {
            return Cow::Borrowed(path);
        }
        let rest = path
            .strip_prefix(self.prefix.trim_end_matches('/'))
            .unwrap_or(path);
        if rest.starts_with('/') {
            Cow::Borrowed(rest)
        } else {
            Cow::Owned(format!("/{rest}"))
        }
    }

    /// The metric label of the upstream at `addr`.
    pub fn upstream_label(&self, addr: &pingora::protocols::l4::socket::SocketAddr) -> Arc<str> {
        let known = addr
            .as_inet()
            .and_then(|inet| self.peers.labels.get(inet).cloned());
        known.unwrap_or_else(|| Arc::from(addr.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(prefixes: &[&str]) -> RouteTable {
        let toml: String = prefixes
            .iter()
            .map(|p| format!("[[routes]]\nprefix = \"{p}\"\nupstreams = [\"127.0.0.1:9\"]\nstrip_prefix = true\n"))
            .collect();
        let config = Config::from_toml_and_env(&toml, "t", &[]).expect("config");
        RouteTable::from_config(&config).expect("routes")
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let t = table(&["/", "/api", "/api/v2/"]);
        let hit = |p: &str| t.lookup(p).map(|r| r.prefix.clone());
        assert_eq!(hit("/api/v2/users").as_deref(), Some("/api/v2/"));
        assert_eq!(hit("/api/v1").as_deref(), Some("/api"));
        assert_eq!(hit("/api").as_deref(), Some("/api"));
        assert_eq!(hit("/apiary").as_deref(), Some("/"));
        let none = table(&["/only"]);
        assert!(none.lookup("/other").is_none());
    }

    #[test]
    fn strip_prefix_keeps_a_rooted_path() {
        let t = table(&["/svc", "/x/"]);
        let svc = t.lookup("/svc/a/b").expect("route");
        assert_eq!(svc.upstream_path("/svc/a/b"), "/a/b");
        assert_eq!(svc.upstream_path("/svc"), "/");
        let x = t.lookup("/x/y").expect("route");
        assert_eq!(x.upstream_path("/x/y"), "/y");
    }
}
