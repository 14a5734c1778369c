//! CORS per route: which origins may call, the preflight answer, and the headers added to
//! real responses.

use crate::config::CorsConfig;
use crate::response::Response;
use http::HeaderMap;

/// A real preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &str, headers: &HeaderMap) -> bool {
    method == "OPTIONS"
        && headers.contains_key("origin")
        && headers.contains_key("access-control-request-method")
}

/// The value for `Access-Control-Allow-Origin`, if `origin` may call.
pub fn allowed_origin(cors: &CorsConfig, origin: &str) -> Option<String> {
    if cors.allowed_origins.iter().any(|o| o == origin) {
        Some(origin.to_string())
    } else if cors.allowed_origins.iter().any(|o| o == "*") {
        Some("*".to_string())
    } else {
        None
    }
}

/// Headers for a real (non-preflight) response to `origin`.
pub fn response_headers(cors: &CorsConfig, origin: &str) -> Vec<(&'static str, String)> {
    let Some(allow) = allowed_origin(cors, origin) else {
        return Vec::new();
    };
    let mut out = vec![
        ("Access-Control-Allow-Origin", allow),
        ("Vary", "Origin".to_string()),
    ];
    if cors.allow_credentials {
        out.push(("Access-Control-Allow-Credentials", "true".to_string()));
    }
    out
}

/// The answer to a preflight: 204 with the grant, or 403 when origin or method is not allowed.
pub fn preflight(cors: &CorsConfig, headers: &HeaderMap) -> Response {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin = get("origin");
    let method = get("access-control-request-method");
    let method_ok = cors
        .allowed_methods
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method));
    let headers_ok = get("access-control-request-headers")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .all(|h| {
            cors.allowed_headers
                .iter()
                .any(|a| a.eq_ignore_ascii_case(h))
        });
    let grant = response_headers(cors, origin);
    if grant.is_empty() || !method_ok || !headers_ok {
        return Response::json(
            403,
            &serde_json::json!({"detail": "CORS preflight refused."}),
        );
    }
    let mut resp = Response::no_content();
    for (name, value) in grant {
        resp.add_header(name, value);
    }
    resp.add_header(
        "Access-Control-Allow-Methods",
        cors.allowed_methods.join(", "),
    );
    resp.add_header(
        "Access-Control-Allow-Headers",
        cors.allowed_headers.join(", "),
    );
    resp.add_header("Access-Control-Max-Age", cors.max_age_seconds.to_string());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> CorsConfig {
        CorsConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            allowed_methods: vec!["GET".into(), "POST".into()],
            allowed_headers: vec!["authorization".into(), "content-type".into()],
            allow_credentials: true,
            max_age_seconds: 60,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preflight_grants_only_configured_origins_and_methods() {
        let ok = headers(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "Authorization, Content-Type",
            ),
        ]);
        assert!(is_preflight("OPTIONS", &ok));
        let r = preflight(&cors(), &ok);
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        let evil = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert_eq!(preflight(&cors(), &evil).status, 403);
        let delete = headers(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "DELETE"),
        ]);
        assert_eq!(preflight(&cors(), &delete).status, 403);
        assert!(!is_preflight(
            "OPTIONS",
            &headers(&[("origin", "https://app.example.com")])
        ));
    }
}
