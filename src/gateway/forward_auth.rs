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

/// The request the ingress asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// The path as the client sent it (query removed), to be checked and normalized.
    pub path: String,
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
    Some(Ok(Original {
        method,
        path: path.to_string(),
    }))
}

/// The answer to the ingress: 200 with the identity headers for it to copy upstream, or the
/// same refusal the inline proxy would send.
pub fn answer(decision: Decision, proxy: &ProxyConfig) -> Response {
    match decision {
        Decision::Forward(identity) => allowed(identity.as_ref(), proxy),
        Decision::Respond(refused) => refused,
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
                path: "/svc/a".into()
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
                path: "/svc/b".into()
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
                path: "/svc/c".into()
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
}
