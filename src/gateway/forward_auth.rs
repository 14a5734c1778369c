//! Forward-auth: gatehouse as the authentication service of an ingress that stays in front of
//! it (nginx `auth_request`, Traefik ForwardAuth, Envoy's ext_authz HTTP service). The asking
//! proxy's request names the original one; that is decided by the same route table and the
//! same `decide` as the inline proxy. This file only reads the original request off the
//! asking one and shapes the answer.

use super::decide::Decision;
use crate::auth::Identity;
use crate::config::ProxyConfig;
use crate::error::ApiError;
use crate::response::Response;
use http::{HeaderMap, Method};

/// nginx `auth_request` and Traefik ForwardAuth.
pub const AUTH: &str = "/_gatehouse/auth";
/// Envoy ext_authz (`path_prefix`): the original path follows it.
pub const EXT_AUTHZ: &str = "/_gatehouse/ext_authz";

pub const ORIGINAL_METHOD: [&str; 2] = ["x-original-method", "x-forwarded-method"];
pub const ORIGINAL_URI: [&str; 2] = ["x-original-uri", "x-forwarded-uri"];

/// Who asks: the answer that sends a browser to sign in differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// `auth_request` with `X-Original-URI`: a 401 carrying `Location`.
    Nginx,
    /// Traefik ForwardAuth (`X-Forwarded-Uri`) and Envoy ext_authz: the 302/303 itself.
    Redirecting,
}

/// The request the ingress asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// The path as the client sent it (query removed), to be checked and normalized.
    pub path: String,
    /// The path and query as the client sent them (where a sign-in comes back to).
    pub uri: String,
    pub asker: Asker,
}

/// The original request's origin ("scheme://host"): `X-Forwarded-Proto`/`-Host` as the
/// ingress sets them, else `Host`, else the pages' `public_url`.
pub fn origin(headers: &HeaderMap, web: &crate::config::WebConfig) -> String {
    let proto = first_header(headers, &["x-forwarded-proto"]).unwrap_or("http");
    let proto = if proto.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    };
    match first_header(headers, &["x-forwarded-host", "host"]) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ', '@']) => {
            format!("{proto}://{host}")
        }
        _ => web.public_url().unwrap_or("").to_string(),
    }
}

fn first_header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
}

/// The original request of a forward-auth ask at `path` (already under
/// `config::owned::FORWARD_AUTH_PREFIX`, where these endpoints live); `None`
/// when `path` is no forward-auth endpoint. An ask that does not say which request it is
/// about is a 400.
pub fn original(
    path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Result<Original, ApiError>> {
    if let Some(rest) = path.strip_prefix(EXT_AUTHZ) {
        if rest.starts_with('/') {
            return Some(Ok(Original {
                method: method.clone(),
                path: rest.to_string(),
                uri: rest.to_string(),
                asker: Asker::Redirecting,
            }));
        }
    }
    if path != AUTH && path != "/_gatehouse/auth/" {
        return None;
    }
    let Some(uri) = first_header(headers, &ORIGINAL_URI) else {
        return Some(Err(ApiError::field(
            "X-Original-URI",
            crate::error::FORWARD_AUTH_NO_URI,
        )));
    };
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    // An absolute URI (some proxies send one): its path.
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    let method = match first_header(headers, &ORIGINAL_METHOD) {
        Some(m) => match m.parse::<Method>() {
            Ok(m) => m,
            Err(_) => {
                return Some(Err(ApiError::field(
                    "X-Original-Method",
                    crate::error::FORWARD_AUTH_BAD_METHOD,
                )))
            }
        },
        None => method.clone(),
    };
    let asker = if headers.contains_key(ORIGINAL_URI[0]) {
        Asker::Nginx
    } else {
        Asker::Redirecting
    };
    Some(Ok(Original {
        method,
        path: path.to_string(),
        uri: uri_of(uri),
        asker,
    }))
}

/// The path and query of a sent URI (an absolute one: its path on), without a fragment.
fn uri_of(sent: &str) -> String {
    let sent = sent.split('#').next().unwrap_or(sent);
    match sent.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()),
        None => sent.to_string(),
    }
}

/// The headers of an allowed answer that carry the request's cookies without gatehouse's
/// session cookie, for the ingress to send upstream instead of the client's `Cookie`
/// (nginx: `auth_request_set` from `X-Gatehouse-Cookie`; Traefik: `authResponseHeaders`
/// naming `Cookie`).
pub const COOKIE_HEADERS: [&str; 2] = ["X-Gatehouse-Cookie", "Cookie"];

/// The `Cookie` value the upstream should see: the client's cookies without `session`
/// (`None`: nothing to send).
pub fn cookies_to_forward(headers: &HeaderMap, session: Option<&str>) -> Option<String> {
    match session {
        Some(name) => {
            crate::cookies::without(headers, name).and_then(|v| v.to_str().ok().map(str::to_string))
        }
        None => {
            let all: Vec<&str> = headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!all.is_empty()).then(|| all.join("; "))
        }
    }
}

/// The answer to the ingress: 200 with the identity headers for it to copy upstream, or the
/// same refusal the inline proxy would send.
pub fn answer(decision: Decision, proxy: &ProxyConfig) -> Response {
    match decision.into_response() {
        Err(identity) => allowed(identity.as_ref(), proxy),
        Ok(refused) => refused,
    }
}

fn allowed(identity: Option<&Identity>, proxy: &ProxyConfig) -> Response {
    let mut resp = Response::json_text(200, bytes::Bytes::new());
    if let Some(who) = identity {
        resp.add_header(
            proxy.user_id_header.as_str().to_string(),
            who.user_id.to_string(),
        );
        resp.add_header(
            proxy.user_name_header.as_str().to_string(),
            who.username.to_string(),
        );
        resp.add_header(
            proxy.user_is_staff_header.as_str().to_string(),
            if who.is_staff { "true" } else { "false" },
        );
        resp.add_header(
            proxy.user_groups_header.as_str().to_string(),
            crate::auth::identity::groups_value(&who.groups),
        );
        resp.add_header(super::headers::X_USER_AUTH, who.via.name());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_original_request_from_each_ingress() {
        // nginx auth_request with the documented headers.
        let nginx = headers(&[
            ("x-original-uri", "/svc/a?x=1"),
            ("x-original-method", "POST"),
        ]);
        assert_eq!(
            original(AUTH, &Method::GET, &nginx),
            Some(Ok(Original {
                method: Method::POST,
                path: "/svc/a".into(),
                uri: "/svc/a?x=1".into(),
                asker: Asker::Nginx,
            }))
        );
        // Traefik ForwardAuth.
        let traefik = headers(&[
            ("x-forwarded-method", "DELETE"),
            ("x-forwarded-uri", "/svc/b"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            original(AUTH, &Method::GET, &traefik).and_then(Result::ok),
            Some(Original {
                method: Method::DELETE,
                path: "/svc/b".into(),
                uri: "/svc/b".into(),
                asker: Asker::Redirecting,
            })
        );
        // Envoy ext_authz: the path after the prefix, the request's own method.
        assert_eq!(
            original(
                "/_gatehouse/ext_authz/svc/c",
                &Method::PUT,
                &HeaderMap::new()
            )
            .and_then(Result::ok),
            Some(Original {
                method: Method::PUT,
                path: "/svc/c".into(),
                uri: "/svc/c".into(),
                asker: Asker::Redirecting,
            })
        );
        // No original URI: 400; not an endpoint: none.
        assert!(matches!(
            original(AUTH, &Method::GET, &HeaderMap::new()),
            Some(Err(_))
        ));
        assert_eq!(
            original("/_gatehouse/other", &Method::GET, &HeaderMap::new()),
            None
        );
        let bad = headers(&[
            ("x-original-uri", "/x"),
            ("x-original-method", "NOT A METHOD"),
        ]);
        assert!(matches!(original(AUTH, &Method::GET, &bad), Some(Err(_))));
    }

    #[test]
    fn the_original_origin_comes_from_the_ingress_headers() {
        let web = crate::config::WebConfig::default();
        let traefik = headers(&[
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-proto", "https"),
            ("host", "gatehouse:8080"),
        ]);
        assert_eq!(origin(&traefik, &web), "https://app.example.com");
        assert_eq!(
            origin(&headers(&[("host", "127.0.0.1:81")]), &web),
            "http://127.0.0.1:81"
        );
        assert_eq!(origin(&headers(&[("host", "evil/x")]), &web), "");
        assert_eq!(uri_of("https://a.example/x?y=1#f"), "/x?y=1");
        assert_eq!(uri_of("/x?y"), "/x?y");
    }
}
