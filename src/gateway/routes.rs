//! The proxy's route table: longest prefix wins; each route has its upstreams (round robin
//! with TCP health checks), its auth mode and its timeouts.

use super::health::UpstreamCheck;
use crate::config::{AuthMode, Config, CorsConfig, RouteConfig};
use pingora::lb::{selection::RoundRobin, LoadBalancer};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// How often dead upstreams are probed to put them back (and live ones to take them out).
pub const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct Route {
    pub prefix: String,
    pub auth: AuthMode,
    pub require_staff: bool,
    /// Members of any one of these only; empty: no group needed.
    pub require_groups: Vec<String>,
    /// Empty: every method.
    pub methods: Vec<http::Method>,
    /// `methods` as the `Allow` header of a 405.
    pub allow: String,
    pub strip_prefix: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub cors: Option<CorsConfig>,
    /// The `aud` of the identity assertion sent upstream; `None`: no assertion.
    pub assertion_audience: Option<Arc<str>>,
    pub upstreams: Arc<LoadBalancer<RoundRobin>>,
    /// Each upstream address's metric label, formatted once.
    upstream_labels: Vec<(std::net::SocketAddr, Arc<str>)>,
    /// This route's upstream-latency histogram, resolved once.
    pub upstream_duration: prometheus::Histogram,
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
}

pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn build(cfg: &RouteConfig) -> Result<Arc<Route>, String> {
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(cfg.upstreams.iter().copied())
        .map_err(|e| format!("route {}: upstreams: {e}", cfg.prefix))?;
    lb.set_health_check(Box::new(UpstreamCheck::new(&cfg.prefix)));
    lb.health_check_frequency = Some(HEALTH_CHECK_EVERY);
    lb.parallel_health_check = true;
    Ok(Arc::new(Route {
        prefix: cfg.prefix.clone(),
        auth: cfg.auth,
        require_staff: cfg.require_staff,
        require_groups: cfg.require_groups.clone(),
        methods: cfg.methods.clone(),
        allow: cfg
            .methods
            .iter()
            .map(http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        strip_prefix: cfg.strip_prefix,
        connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
        read_timeout: Duration::from_millis(cfg.read_timeout_ms),
        cors: cfg.cors.clone(),
        assertion_audience: cfg
            .identity_assertion
            .then(|| Arc::from(cfg.audience.as_deref().unwrap_or(&cfg.prefix))),
        upstreams: Arc::new(lb),
        upstream_labels: cfg
            .upstreams
            .iter()
            .map(|a| (*a, Arc::from(a.to_string())))
            .collect(),
        upstream_duration: crate::metrics::UPSTREAM_DURATION.with_label_values(&[&cfg.prefix]),
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
        let known = addr.as_inet().and_then(|inet| {
            self.upstream_labels
                .iter()
                .find(|(a, _)| a == inet)
                .map(|(_, label)| label.clone())
        });
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
