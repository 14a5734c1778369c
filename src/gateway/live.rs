//! What a reload swaps in one step (SPEC §14): the route table (routes, upstreams and their
//! health checks, CORS, route policy, upstream TLS) and the edge's TLS rules (redirect to
//! HTTPS, HSTS). A request loads it once and keeps it to its end, so in-flight requests finish
//! on the configuration they started with.

use super::routes::RouteTable;
use crate::config::Config;
use crate::response::Response;
use arc_swap::ArcSwap;
use std::sync::Arc;

pub type SharedLive = Arc<ArcSwap<Live>>;

pub struct Live {
    pub routes: RouteTable,
    pub edge: Edge,
}

impl Live {
    pub fn from_config(config: &Config) -> Result<Live, String> {
        Ok(Live {
            routes: RouteTable::from_config(config)?,
            edge: Edge::from_config(config),
        })
    }
}

pub const HSTS_HEADER: &str = "Strict-Transport-Security";
pub const REDIRECT_DETAIL: &str = "Use HTTPS.";

/// The listeners' TLS rules.
pub struct Edge {
    /// `redirect_to_https`: the TLS listener's port plain requests are sent to.
    pub redirect_port: Option<u16>,
    /// `Strict-Transport-Security` for answers over TLS.
    pub hsts: Option<String>,
}

impl Edge {
    pub fn from_config(config: &Config) -> Edge {
        let s = &config.server;
        Edge {
            redirect_port: s
                .tls_listen
                .filter(|_| s.redirect_to_https)
                .map(|a| a.port()),
            hsts: (s.hsts_max_age_seconds > 0 && s.tls_listen.is_some())
                .then(|| format!("max-age={}", s.hsts_max_age_seconds)),
        }
    }

    /// The 308 to the same path and query on the TLS listener, for a plain request to `host`
    /// (the `Host` header or `:authority`, its port dropped).
    pub fn redirect(&self, host: Option<&str>, path_and_query: &str) -> Option<Response> {
        let port = self.redirect_port?;
        let host = host.map_or("localhost", strip_port);
        let authority = if port == 443 {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        let location = format!("https://{authority}{path_and_query}");
        Some(
            Response::json(308, &serde_json::json!({ "detail": REDIRECT_DETAIL }))
                .with_header("Location", location),
        )
    }
}

/// `example.com:8080` -> `example.com`, `[::1]:80` -> `[::1]`; a host that does not look like
/// one becomes `localhost` (it is echoed into a Location header).
fn strip_port(host: &str) -> &str {
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let fine = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    if fine {
        name
    } else {
        "localhost"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(redirect: bool, hsts: u64) -> Edge {
        let mut c = Config::default();
        c.server.tls_listen = Some("127.0.0.1:8443".parse().expect("addr"));
        c.server.redirect_to_https = redirect;
        c.server.hsts_max_age_seconds = hsts;
        Edge::from_config(&c)
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        let e = edge(true, 0);
        let r = e
            .redirect(Some("example.com:8080"), "/a/b?x=1")
            .expect("on");
        assert_eq!(r.status, 308);
        assert_eq!(
            r.header("Location"),
            Some("https://example.com:8443/a/b?x=1")
        );
        let r = e.redirect(Some("bad\r\nhost"), "/").expect("on");
        assert_eq!(r.header("Location"), Some("https://localhost:8443/"));
        let r = e.redirect(Some("[::1]:80"), "/").expect("on");
        assert_eq!(r.header("Location"), Some("https://[::1]:8443/"));
        assert!(edge(false, 0).redirect(Some("x"), "/").is_none());
    }

    #[test]
    fn hsts_only_when_asked() {
        assert_eq!(edge(false, 600).hsts.as_deref(), Some("max-age=600"));
        assert!(edge(false, 0).hsts.is_none());
    }
}
