use crate::common;
// The OpenAPI document (src/api/openapi.json) against the router and against real answers: every
// documented path is a route with exactly the documented methods, every route is documented, and
// every response of a realistic scenario (and of a batch of malformed requests) has a documented
// status and a body that matches the documented schema, checked by a small JSON-schema subset
// validator below (type, nullable, properties, required, additionalProperties, items, oneOf,
// anyOf, enum, $ref, `^literal` patterns, and the min/max keywords the document uses).

use crate::web_sessions::{set_cookie, COOKIE};
use common::client::{FORM, JSON};
use common::paths::*;
use common::*;
use gatehouse::api::router::{self, Endpoint, Route};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// The document under test: src/api/openapi.json (or, to check that these tests catch a broken
/// document, the file named by OPENAPI_UNDER_TEST).
fn document() -> Value {
    let path = std::env::var("OPENAPI_UNDER_TEST").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json").to_string()
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The methods Django's CSRF check applies to.
const UNSAFE_METHODS: &[&str] = &["post", "put", "patch", "delete"];

/// A refusal as the credential step's CSRF check words it.
fn csrf_refusal() -> Value {
    json!({"detail": "CSRF Failed: CSRF token missing."})
}

/// The documented methods of a path item, upper case.
fn documented_methods(item: &Value) -> BTreeSet<String> {
    item.as_object()
        .expect("path item")
        .keys()
        .filter(|k| HTTP_METHODS.contains(&k.as_str()))
        .map(|k| k.to_ascii_uppercase())
        .collect()
}

const SESSION: &str = "/api/auth/session/";
const SESSIONS: &str = "/api/auth/sessions/";
const REVOKE_OTHERS: &str = "/api/auth/sessions/revoke-others/";
const TOTP: &str = "/api/auth/2fa/totp/";
const TOTP_CONFIRM: &str = "/api/auth/2fa/totp/confirm/";
const RECOVERY_CODES: &str = "/api/auth/2fa/recovery-codes/";
const KEYS: &str = "/api/auth/keys/";
const SERVICE_ACCOUNTS: &str = "/api/auth/admin/service-accounts/";

/// The `recovery_codes` of an answer.
fn recovery_codes(r: &Resp) -> Vec<String> {
    let codes: Vec<String> = r.json["recovery_codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes: {}", r.text);
    codes
}

/// `/api/auth/sessions/<id>/`
fn session_end(id: &str) -> String {
    format!("{SESSIONS}{id}/")
}

/// A request path for a templated document path.
fn concrete(path: &str, id: &str) -> String {
    path.replace("{id}", id)
}

/// Every endpoint of the router, with the document path it must appear under. The match has no
/// wildcard: a new endpoint does not compile until it is listed here (and so checked below).
fn document_path(e: &Endpoint) -> &'static str {
    match e {
        Endpoint::TokenObtain => "/api/token/",
        Endpoint::TokenRefresh => "/api/token/refresh/",
        Endpoint::TokenVerify => "/api/token/verify/",
        Endpoint::Register => "/api/auth/register/",
        Endpoint::Logout => "/api/auth/logout/",
        Endpoint::Profile => "/api/auth/profile/",
        Endpoint::PasswordChange => "/api/auth/profile/password/",
        Endpoint::ProfileDelete => "/api/auth/profile/delete/",
        Endpoint::AdminList => "/api/auth/admin/users/",
        Endpoint::AdminDetail(_) => "/api/auth/admin/users/{id}/",
        Endpoint::AdminRestore(_) => "/api/auth/admin/users/restore/{id}/",
        Endpoint::AdminAudit => AUDIT,
        Endpoint::Schema => "/api/schema/",
        Endpoint::Jwks => "/.well-known/jwks.json",
        Endpoint::PasswordReset => "/api/auth/password/reset/",
        Endpoint::PasswordResetConfirm => "/api/auth/password/reset/confirm/",
        Endpoint::EmailVerify => "/api/auth/email/verify/",
        Endpoint::EmailVerifyResend => "/api/auth/email/verify/resend/",
        Endpoint::Session => "/api/auth/session/",
        Endpoint::Sessions => "/api/auth/sessions/",
        Endpoint::SessionEnd(_) => "/api/auth/sessions/{id}/",
        Endpoint::SessionsRevokeOthers => "/api/auth/sessions/revoke-others/",
        Endpoint::Totp => "/api/auth/2fa/totp/",
        Endpoint::TotpConfirm => "/api/auth/2fa/totp/confirm/",
        Endpoint::RecoveryCodes => "/api/auth/2fa/recovery-codes/",
        Endpoint::Keys => "/api/auth/keys/",
        Endpoint::Key(_) => "/api/auth/keys/{id}/",
        Endpoint::AdminUserKeys(_) => "/api/auth/admin/users/{id}/keys/",
        Endpoint::AdminServiceAccounts => "/api/auth/admin/service-accounts/",
    }
}

fn all_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::TokenObtain,
        Endpoint::TokenRefresh,
        Endpoint::TokenVerify,
        Endpoint::Register,
        Endpoint::Logout,
        Endpoint::Profile,
        Endpoint::PasswordChange,
        Endpoint::ProfileDelete,
        Endpoint::AdminList,
        Endpoint::AdminDetail("1".into()),
        Endpoint::AdminRestore("1".into()),
        Endpoint::AdminAudit,
        Endpoint::Schema,
        Endpoint::Jwks,
        Endpoint::PasswordReset,
        Endpoint::PasswordResetConfirm,
        Endpoint::EmailVerify,
        Endpoint::EmailVerifyResend,
        Endpoint::Session,
        Endpoint::Sessions,
        Endpoint::SessionEnd("1".into()),
        Endpoint::SessionsRevokeOthers,
        Endpoint::Totp,
        Endpoint::TotpConfirm,
        Endpoint::RecoveryCodes,
        Endpoint::Keys,
        Endpoint::Key("1".into()),
        Endpoint::AdminUserKeys("1".into()),
        Endpoint::AdminServiceAccounts,
    ]
}

/// The fixed paths `router.rs` matches (under the default `/api/`), read from its source: a
/// path added there without an `Endpoint` variant (or listed here) still has to be documented.
fn router_literal_paths() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/router.rs");
    let source = std::fs::read_to_string(path).expect("read src/api/router.rs");
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix('"')?;
            let (path, tail) = rest.split_once('"')?;
            // The table is relative to `[api] prefix` (default `/api/`).
            (!path.is_empty() && tail.trim_start().starts_with("=> Some("))
                .then(|| format!("/api/{path}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A JSON-schema subset, as OpenAPI 3.0 uses it.

struct Validator<'a> {
    doc: &'a Value,
}

impl Validator<'_> {
    fn resolve<'b>(&'b self, reference: &str) -> &'b Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are used: {reference}"));
        self.doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"))
    }

    /// `Err(where and what)` on the first mismatch.
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let fail = |what: String| Err(format!("{at}: {what} (value {value})"));
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.check(self.resolve(r), value, at);
        }
        if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !options.contains(value) {
                return fail(format!("not one of {}", Value::from(options.clone())));
            }
        }
        if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
            let results: Vec<_> = alternatives
                .iter()
                .map(|s| self.check(s, value, at))
                .collect();
            let matched = results.iter().filter(|r| r.is_ok()).count();
            if matched != 1 {
                let why: Vec<String> = results.into_iter().filter_map(Result::err).collect();
                return fail(format!(
                    "matches {matched} of the oneOf alternatives, not exactly one [{}]",
                    why.join("; ")
                ));
            }
        }
        if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
            if !alternatives
                .iter()
                .any(|s| self.check(s, value, at).is_ok())
            {
                return fail("matches none of the anyOf alternatives".into());
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, value, at)?;
            }
        }
        if let Some(ty) = schema.get("type").and_then(Value::as_str) {
            let ok = match ty {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                other => panic!("unknown type {other} in the document"),
            };
            if !ok {
                return fail(format!("not of type {ty}"));
            }
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if value.as_f64().is_some_and(|v| v < min) {
                return fail(format!("below the minimum {min}"));
            }
        }
        if let Some(s) = value.as_str() {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let prefix = pattern
                    .strip_prefix('^')
                    .filter(|p| !p.contains(|c| "\\.[](){}*+?|^$".contains(c)))
                    .unwrap_or_else(|| panic!("only `^literal` patterns are known: {pattern}"));
                if !s.starts_with(prefix) {
                    return fail(format!("does not match the pattern {pattern}"));
                }
            }
            let len = s.chars().count() as u64;
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                return fail("shorter than minLength".into());
            }
            if schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                return fail("longer than maxLength".into());
            }
        }
        if let Some(items) = value.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    return fail(format!("fewer than {min} items"));
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    self.check(item_schema, item, &format!("{at}[{i}]"))?;
                }
            }
        }
        if let Some(map) = value.as_object() {
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
                if (map.len() as u64) < min {
                    return fail(format!("fewer than {min} properties"));
                }
            }
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().expect("required names are strings");
                if !map.contains_key(name) {
                    return fail(format!("required property {name:?} is missing"));
                }
            }
            let empty = serde_json::Map::new();
            let props = schema
                .get("properties")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            for (name, v) in map {
                let at = format!("{at}.{name}");
                match (props.get(name), schema.get("additionalProperties")) {
                    (Some(s), _) => self.check(s, v, &at)?,
                    (None, Some(Value::Bool(false))) => {
                        return Err(format!("{at}: property not allowed by the schema"))
                    }
                    (None, Some(extra)) if extra.is_object() => self.check(extra, v, &at)?,
                    (None, _) => {}
                }
            }
        }
        Ok(())
    }
}

#[test]
fn the_validator_accepts_and_rejects() {
    let doc = document();
    let v = Validator { doc: &doc };
    let s = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let profile =
        json!({"id": 1, "username": "a", "email": "a@x.io", "first_name": "", "last_name": ""});
    assert!(v.check(&s("Profile"), &profile, "$").is_ok());
    let mut extra = profile.clone();
    extra["is_staff"] = json!(true);
    assert!(v.check(&s("Profile"), &extra, "$").is_err());
    assert!(v.check(&s("Profile"), &json!({"id": 1}), "$").is_err());
    assert!(v
        .check(
            &s("Profile"),
            &json!({"id": "1", "username": "a", "email": "e", "first_name": "", "last_name": ""}),
            "$"
        )
        .is_err());
    let list = json!([{"id": 1, "username": "a", "email": "e", "first_name": "", "last_name": "", "is_active": true, "email_verified": false}]);
    assert!(v.check(&s("AdminUserList"), &list, "$").is_ok());
    let page = json!({"count": 1, "next": null, "previous": null, "results": list});
    assert!(v.check(&s("AdminUserList"), &page, "$").is_ok());
    assert!(v
        .check(&s("AdminUserList"), &json!({"count": 1}), "$")
        .is_err());
    assert!(v
        .check(
            &s("BadRequest"),
            &json!({"username": ["This field is required."]}),
            "$"
        )
        .is_ok());
    assert!(v
        .check(
            &s("BadRequest"),
            &json!({"detail": "JSON parse error - x"}),
            "$"
        )
        .is_ok());
    assert!(v
        .check(&s("BadRequest"), &json!({"username": "not a list"}), "$")
        .is_err());
    assert!(v.check(&s("BadRequest"), &json!({}), "$").is_err());
    assert!(v.check(&s("Unauthorized"), &inactive(), "$").is_ok());
    assert!(v
        .check(
            &s("Unauthorized"),
            &json!({"detail": "x", "code": "made_up"}),
            "$"
        )
        .is_err());
    assert!(v.check(&s("Empty"), &json!({}), "$").is_ok());
    assert!(v.check(&s("Empty"), &json!({"a": 1}), "$").is_err());
    assert!(v.check(&s("CsrfFailure"), &csrf_refusal(), "$").is_ok());
    let not_csrf = json!({"detail": "You do not have permission to perform this action."});
    assert!(v.check(&s("CsrfFailure"), &not_csrf, "$").is_err());
    let device = json!({"id": "ab", "kind": "browser", "created": 1, "last_seen": 2,
                        "client_ip": "", "user_agent": "", "current": true});
    assert!(v
        .check(&s("DeviceList"), &json!([device.clone()]), "$")
        .is_ok());
    let mut tablet = device.clone();
    tablet["kind"] = json!("tablet");
    assert!(v.check(&s("DeviceList"), &json!([tablet]), "$").is_err());
    let mut long_agent = device;
    long_agent["user_agent"] = json!("a".repeat(201));
    assert!(v
        .check(&s("DeviceList"), &json!([long_agent]), "$")
        .is_err());
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_documented_path_is_a_route_and_every_route_is_documented() {
    let doc = document();
    assert_eq!(doc["openapi"], json!("3.0.3"));
    let paths = doc["paths"].as_object().expect("paths");

    // The router's side: every endpoint, and every literal path in router.rs, is in the document.
    for e in all_endpoints() {
        let documented = document_path(&e);
        assert!(
            paths.contains_key(documented),
            "{e:?} is a route but {documented} is not in the document"
        );
        assert_eq!(
            router::route(&concrete(documented, "1"), "/api/"),
            Route::Api(e.clone())
        );
        let methods: BTreeSet<String> = e.methods().iter().map(|m| m.to_string()).collect();
        assert_eq!(
            documented_methods(&paths[documented]),
            methods,
            "documented methods of {documented} differ from the view's"
        );
        for method in e.methods().iter().filter(|m| **m != "OPTIONS") {
            let op = &paths[documented][method.to_ascii_lowercase()];
            let by_cookie = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|req| req.get("cookieAuth").is_some()));
            assert_eq!(
                by_cookie,
                e.authenticates(),
                "{method} {documented}: cookieAuth exactly where the view authenticates"
            );
        }
    }
    let cookie = &doc["components"]["securitySchemes"]["cookieAuth"];
    assert_eq!(
        (&cookie["type"], &cookie["in"]),
        (&json!("apiKey"), &json!("cookie"))
    );
    assert_eq!(
        cookie["name"],
        json!(gatehouse::config::Config::default().web.session_cookie),
        "cookieAuth names the default session cookie"
    );
    let literals = router_literal_paths();
    assert!(
        literals.len() >= 10,
        "router.rs literals not found: {literals:?}"
    );
    for p in literals {
        assert!(
            paths.contains_key(&p),
            "router.rs answers {p}, the document lacks it"
        );
    }

    // The document's side: each path is a route of the running server, with exactly the
    // documented methods in its Allow header, and its OPTIONS answer matches the document.
    let g = Gatehouse::new().start();
    let v = Validator { doc: &doc };
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        assert!(
            matches!(router::route(&concrete(path, "1"), "/api/"), Route::Api(_)),
            "{path} is documented but is not a route"
        );
        let r = g.send(g.request("OPTIONS", &concrete(path, "1")));
        assert_eq!(r.status, 200, "OPTIONS {path}: {}", r.text);
        let allow: BTreeSet<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("OPTIONS {path}: no Allow header"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        assert_eq!(allow, documented_methods(item), "Allow of {path}");
        let schema = &item["options"]["responses"]["200"]["content"]["application/json"]["schema"];
        v.check(schema, &r.json, "$")
            .unwrap_or_else(|e| panic!("OPTIONS {path}: {e}"));

        // Document hygiene: operation ids unique, no catch-all responses, a 401 wherever a
        // token is required, request bodies in both media types.
        for (method, op) in item.as_object().expect("path item") {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().expect("operationId");
            assert!(
                operation_ids.insert(id.to_string()),
                "duplicate operationId {id}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                !responses.contains_key("default"),
                "{method} {path}: no `default` response"
            );
            let takes = |scheme: &str| {
                op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|req| req.get(scheme).is_some()))
            };
            // The credential step reads the bearer token and the session cookie alike, on
            // every view that authenticates.
            assert_eq!(
                takes("bearerAuth"),
                takes("cookieAuth"),
                "{method} {path}: bearerAuth and cookieAuth go together"
            );
            if takes("bearerAuth") {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path}: 401 undocumented"
                );
            }
            // An unsafe request the cookie authenticates may fail Django's CSRF check.
            if takes("cookieAuth") && UNSAFE_METHODS.contains(&method.as_str()) {
                let forbidden = responses
                    .get("403")
                    .unwrap_or_else(|| panic!("{method} {path}: the CSRF 403 undocumented"));
                let forbidden = match forbidden.get("$ref").and_then(Value::as_str) {
                    Some(reference) => v.resolve(reference),
                    None => forbidden,
                };
                let schema = &forbidden["content"]["application/json"]["schema"];
                v.check(schema, &csrf_refusal(), "$")
                    .unwrap_or_else(|e| panic!("{method} {path}: a CSRF refusal: {e}"));
            }
            if let Some(body) = op.get("requestBody") {
                for media in ["application/json", "application/x-www-form-urlencoded"] {
                    assert!(
                        body["content"].get(media).is_some(),
                        "{method} {path}: {media} body"
                    );
                }
                assert!(
                    responses.contains_key("415"),
                    "{method} {path}: 415 undocumented"
                );
                assert!(
                    responses.contains_key("400"),
                    "{method} {path}: 400 undocumented"
                );
            }
        }
    }
    // Every $ref in the document resolves.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        v.resolve(r);
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario: each answer checked against the document.

struct Checked<'a> {
    g: &'a Gatehouse,
    doc: &'a Value,
    /// (METHOD, document path) of every documented operation exercised.
    exercised: RefCell<BTreeSet<(String, String)>>,
}

/// No body (`json(...)` with this sends nothing).
const NO_BODY: Value = Value::Null;

impl Checked<'_> {
    fn new<'a>(g: &'a Gatehouse, doc: &'a Value) -> Checked<'a> {
        Checked {
            g,
            doc,
            exercised: RefCell::new(BTreeSet::new()),
        }
    }

    /// The document path a request path falls under (`{id}` is one non-empty segment).
    fn template(&self, path: &str) -> String {
        let path = path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object().expect("paths");
        let matches = |t: &str| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (*t == "{id}" && !s.is_empty() && *s != "restore"))
        };
        // A literal path wins over a templated one (`/users/restore/...` is not `/users/{id}/`).
        let mut found: Vec<&String> = paths.keys().filter(|t| matches(t)).collect();
        found.sort_by_key(|t| t.contains('{'));
        found
            .first()
            .map(|t| t.to_string())
            .unwrap_or_else(|| panic!("{path} falls under no documented path"))
    }

    /// Checks one answer to `method path` against the document, and returns it.
    #[track_caller]
    fn check(&self, method: &str, path: &str, r: Resp) -> Resp {
        let template = self.template(path);
        let v = Validator { doc: self.doc };
        let item = &self.doc["paths"][&template];
        let label = format!("{method} {path} -> {} {}", r.status, r.text);
        let op = &item[method.to_ascii_lowercase()];
        let definition = if op.is_object() {
            self.exercised
                .borrow_mut()
                .insert((method.to_string(), template.clone()));
            let d = op["responses"]
                .get(r.status.to_string())
                .unwrap_or_else(|| panic!("undocumented status: {label}"));
            match d.get("$ref").and_then(Value::as_str) {
                Some(reference) => v.resolve(reference),
                None => d,
            }
        } else {
            // A method the path does not list: 405 as components/responses/MethodNotAllowed,
            // after authentication and permission (so 401 / 403 come first).
            let name = match r.status {
                405 => "MethodNotAllowed",
                401 => "Unauthorized",
                403 => "Forbidden",
                _ => panic!("an unlisted method got neither 401, 403 nor 405: {label}"),
            };
            let allow: BTreeSet<String> = r
                .header("allow")
                .unwrap_or_default()
                .split(',')
                .map(|m| m.trim().to_string())
                .collect();
            assert_eq!(allow, documented_methods(item), "Allow: {label}");
            &self.doc["components"]["responses"][name]
        };
        for (header, _) in definition["headers"].as_object().into_iter().flatten() {
            assert!(
                r.header(header).is_some(),
                "documented header {header} missing: {label}"
            );
        }
        // The harness has checked the framing (JSON, Content-Length); HEAD has no body to match.
        if method == "HEAD" {
            return r;
        }
        // A response documented without content (204) has none.
        if definition.get("content").is_none() {
            assert!(
                r.text.is_empty(),
                "a body where none is documented: {label}"
            );
            return r;
        }
        let schema = &definition["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "no JSON body documented: {label}");
        assert!(!r.json.is_null(), "not JSON: {label}");
        v.check(schema, &r.json, "$")
            .unwrap_or_else(|e| panic!("{label}\n  does not match the document: {e}"));
        r
    }

    /// `method path` with a JSON body (none for `NO_BODY`); asserts the status.
    #[track_caller]
    fn json(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> Resp {
        let body = (!body.is_null()).then_some(body);
        let r = self.check(method, path, self.g.call(method, path, body, token));
        r.expect_status(status);
        r
    }

    /// `method path` with a raw body of any content type; asserts the status.
    #[track_caller]
    fn raw(
        &self,
        status: u16,
        method: &str,
        path: &str,
        ctype: &str,
        body: impl Into<Vec<u8>>,
        token: Option<&str>,
    ) -> Resp {
        let r = self.check(
            method,
            path,
            self.g.with_body(method, path, ctype, body, token),
        );
        r.expect_status(status);
        r
    }

    /// `method path` with a JSON body (none for `NO_BODY`) and these headers (a cookie, a CSRF
    /// token, an `Origin`), as a browser's script sends them; asserts the status.
    #[track_caller]
    fn browser(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.g.request(method, path);
        if !body.is_null() {
            rb = rb.json(&body);
        }
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        let r = self.check(method, path, self.g.send(rb));
        r.expect_status(status);
        r
    }

    /// `GET path` with this exact `Authorization` value; asserts the status.
    #[track_caller]
    fn authorization(&self, status: u16, path: &str, value: &str) -> Resp {
        let r = self.check(
            "GET",
            path,
            self.g.with_header("GET", path, "authorization", value),
        );
        r.expect_status(status);
        r
    }
}

#[test]
fn a_realistic_scenario_and_malformed_requests_match_the_document() {
    let doc = document();
    let g = Gatehouse::new()
        .superuser("root", "root@example.com", "Root-Pass-2024")
        .start();
    let c = Checked::new(&g, &doc);
    let anon = None;
    let big = format!("{{\"username\": \"{}\"}}", "x".repeat(70_000));

    // Metadata.
    for path in doc["paths"].as_object().expect("paths").keys() {
        c.json(200, "OPTIONS", &concrete(path, "1"), NO_BODY, anon);
    }
    let served = c.json(200, "GET", "/api/schema/", NO_BODY, anon);
    if std::env::var_os("OPENAPI_UNDER_TEST").is_none() {
        assert_eq!(
            served.json, doc,
            "GET /api/schema/ serves src/api/openapi.json"
        );
    }
    c.json(200, "HEAD", "/api/schema/", NO_BODY, anon);
    // HS256 (the default): no JWKS.
    c.json(404, "GET", "/.well-known/jwks.json", NO_BODY, anon);
    c.json(404, "HEAD", "/.well-known/jwks.json", NO_BODY, anon);

    // Register: JSON and form, then the ways it fails.
    let alice = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD, "first_name": "Alice"});
    let alice_id = c.json(201, "POST", REGISTER, alice.clone(), anon).json["id"].to_string();
    let bob_form = format!("username=bob&email=bob%40example.com&password={PASSWORD}");
    let bob_id = c.raw(201, "POST", REGISTER, FORM, bob_form, anon).json["id"].to_string();
    c.json(400, "POST", REGISTER, alice, anon);
    let shouting = json!({"username": "ALICE", "email": "x@example.com", "password": PASSWORD});
    c.json(400, "POST", REGISTER, shouting, anon);
    c.json(400, "POST", REGISTER, json!({}), anon);
    c.json(400, "POST", REGISTER, NO_BODY, anon);
    let invalid = json!({"username": "bad name!", "email": "nope", "password": "123"});
    c.json(400, "POST", REGISTER, invalid, anon);
    let wrong_types =
        json!({"username": null, "email": true, "password": ["x"], "first_name": "x".repeat(151)});
    c.json(400, "POST", REGISTER, wrong_types, anon);
    c.json(400, "POST", REGISTER, json!([1, 2]), anon);
    for body in [
        "\"s\"",
        "1",
        "1.5",
        "null",
        "true",
        "{",
        "{\"a\":",
        "\u{0}",
        "{\"username\": \"\\ud800\"}",
        " ",
    ] {
        c.raw(400, "POST", REGISTER, JSON, body, anon);
    }
    c.raw(400, "POST", REGISTER, JSON, "[".repeat(10_000), anon);
    c.raw(415, "POST", REGISTER, "text/plain", "hello", anon);
    c.raw(415, "POST", REGISTER, "application/xml", "<a/>", anon);
    c.raw(400, "POST", REGISTER, FORM, "%ff%fe=%00&username", anon);
    c.raw(413, "POST", REGISTER, JSON, big.clone(), anon);

    // Tokens.
    let login = |who: &str, password: &str| json!({"username": who, "password": password});
    let r = c.json(200, "POST", TOKEN, login("alice", PASSWORD), anon);
    let (access, refresh) = r.tokens();
    c.raw(
        200,
        "POST",
        TOKEN,
        FORM,
        format!("username=ALICE&password={PASSWORD}"),
        anon,
    );
    c.json(401, "POST", TOKEN, login("alice", "Wrong-Pass-1"), anon);
    c.json(401, "POST", TOKEN, login("ghost", PASSWORD), anon);
    c.json(400, "POST", TOKEN, json!({"username": "alice"}), anon);
    c.raw(400, "POST", TOKEN, JSON, "[]", anon);
    c.raw(415, "POST", TOKEN, "text/csv", "a,b", anon);
    c.raw(413, "POST", TOKEN, JSON, big.clone(), anon);
    c.json(200, "POST", REFRESH, json!({"refresh": refresh}), anon);
    c.json(401, "POST", REFRESH, json!({"refresh": access}), anon);
    c.json(
        401,
        "POST",
        REFRESH,
        json!({"refresh": "not.a.token"}),
        anon,
    );
    c.json(400, "POST", REFRESH, json!({"refresh": ""}), anon);
    c.json(400, "POST", REFRESH, NO_BODY, anon);
    c.json(200, "POST", VERIFY, json!({"token": access}), anon);
    c.json(200, "POST", VERIFY, json!({"token": refresh}), anon);
    c.json(
        401,
        "POST",
        VERIFY,
        json!({"token": "x".repeat(9000)}),
        anon,
    );
    c.json(401, "POST", VERIFY, json!({"token": 5}), anon);
    c.json(400, "POST", VERIFY, json!({"nothing": 1}), anon);
    c.raw(415, "POST", VERIFY, "text/plain; charset=utf-8", "x", anon);

    // Profile, with good and bad credentials.
    c.json(200, "GET", PROFILE, NO_BODY, Some(&access));
    c.json(200, "HEAD", PROFILE, NO_BODY, Some(&access));
    c.json(401, "GET", PROFILE, NO_BODY, anon);
    c.json(401, "HEAD", PROFILE, NO_BODY, anon);
    c.json(401, "GET", PROFILE, NO_BODY, Some("garbage"));
    c.json(401, "GET", PROFILE, NO_BODY, Some(&refresh));
    for value in ["Bearer", "Bearer a b", "Basic YTpi", "Token x", ""] {
        c.authorization(401, PROFILE, value);
    }
    let secret = g.secret();
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = |extra: Value| {
        let mut c = json!({"token_type": "access", "exp": now() + 60, "iat": now(), "jti": "0".repeat(32), "ver": 0});
        for (k, v) in extra.as_object().expect("claims") {
            c[k] = v.clone();
        }
        sign_hs256(&header, &c, secret.as_bytes())
    };
    for forged in [
        claims(json!({"user_id": "999"})),
        claims(json!({})),
        claims(json!({"user_id": "1", "exp": "soon"})),
        claims(json!({"user_id": "1", "token_type": null})),
        claims(json!({"user_id": "1", "exp": now() - 3600})),
    ] {
        c.json(401, "GET", PROFILE, NO_BODY, Some(&forged));
    }
    let update = json!({"username": "alice", "email": "alice@example.org", "last_name": "A", "id": 77, "is_staff": true});
    c.json(200, "PUT", PROFILE, update, Some(&access));
    // The username alone is a full update (a missing email is kept).
    c.json(
        200,
        "PUT",
        PROFILE,
        json!({"username": "alice"}),
        Some(&access),
    );
    c.json(400, "PUT", PROFILE, json!({}), Some(&access));
    let taken = json!({"username": "bob", "email": "bob@example.com"});
    c.json(400, "PUT", PROFILE, taken, Some(&access));
    c.json(
        200,
        "PATCH",
        PROFILE,
        json!({"first_name": ""}),
        Some(&access),
    );
    c.json(
        400,
        "PATCH",
        PROFILE,
        json!({"username": "a b", "email": ""}),
        Some(&access),
    );
    c.json(401, "PATCH", PROFILE, json!({}), anon);
    c.raw(415, "PATCH", PROFILE, "text/plain", "x", Some(&access));
    c.raw(400, "PUT", PROFILE, JSON, "{oops", Some(&access));
    c.raw(413, "GET", PROFILE, JSON, big.clone(), Some(&access));
    c.raw(200, "PATCH", PROFILE, FORM, "last_name=Form", Some(&access));

    // Password change: wrong, invalid, then right (old tokens die), and back.
    let change =
        |old_field: &str, old: &str, new: &str| json!({old_field: old, "new_password": new});
    let wrong = change("old_password", "Wrong-Pass-1", "Other-Pass-77");
    c.json(400, "PUT", PASSWORD_CHANGE, wrong, Some(&access));
    let wrong = change("current_password", "Wrong-Pass-1", "Other-Pass-77");
    c.json(400, "PATCH", PASSWORD_CHANGE, wrong, Some(&access));
    let no_old = json!({"new_password": "Other-Pass-77"});
    c.json(400, "PUT", PASSWORD_CHANGE, no_old, Some(&access));
    for weak in ["alice", "1234", "password", "alice@example.org"] {
        let body = change("old_password", PASSWORD, weak);
        c.json(400, "PUT", PASSWORD_CHANGE, body, Some(&access));
    }
    c.json(401, "PATCH", PASSWORD_CHANGE, json!({}), anon);
    c.raw(400, "PUT", PASSWORD_CHANGE, JSON, "[]", Some(&access));
    c.raw(415, "PUT", PASSWORD_CHANGE, "image/png", "x", Some(&access));
    let right = change("current_password", PASSWORD, "Other-Pass-77");
    let changed = c.json(200, "PATCH", PASSWORD_CHANGE, right, Some(&access));
    c.json(401, "GET", PROFILE, NO_BODY, Some(&access));
    c.json(401, "POST", REFRESH, json!({"refresh": refresh}), anon);
    c.json(401, "POST", VERIFY, json!({"token": access}), anon);
    c.json(
        200,
        "POST",
        VERIFY,
        json!({"token": changed.json["refresh"]}),
        anon,
    );
    let back = change("old_password", "Other-Pass-77", PASSWORD);
    c.json(
        200,
        "PUT",
        PASSWORD_CHANGE,
        back,
        Some(&changed.field("access")),
    );
    let r = c.json(200, "POST", TOKEN, login("alice", PASSWORD), anon);
    let (access, refresh) = r.tokens();

    // Staff views: refused to a normal user, answered to the superuser.
    let root = c
        .json(200, "POST", TOKEN, login("root", "Root-Pass-2024"), anon)
        .field("access");
    let me = Some(access.as_str());
    let staff = Some(root.as_str());
    c.json(403, "GET", ADMIN_USERS, NO_BODY, me);
    c.json(403, "HEAD", ADMIN_USERS, NO_BODY, me);
    c.json(401, "GET", ADMIN_USERS, NO_BODY, anon);
    c.json(403, "GET", &admin_user("1"), NO_BODY, me);
    c.json(403, "HEAD", &admin_user("1"), NO_BODY, me);
    c.json(403, "PUT", &admin_restore("1"), NO_BODY, me);
    c.json(401, "PATCH", &admin_restore("1"), NO_BODY, anon);
    let list = c.json(200, "GET", ADMIN_USERS, NO_BODY, staff).json;
    assert!(list.as_array().is_some_and(|l| l.len() == 3), "{list}");
    c.json(200, "HEAD", ADMIN_USERS, NO_BODY, staff);
    for query in [
        "page=1&page_size=1",
        "page=2&page_size=1",
        "page=last&page_size=2",
        "page=1&page_size=0",
        "page=1&page_size=x",
        "page=1&page_size=100000",
        "status=deleted",
        "status=active&is_active=false",
        "status=bogus",
        "is_active=False",
        "search=ALI",
        "search=&page=1",
        "status=active&is_active=false&page=1",
    ] {
        c.json(
            200,
            "GET",
            &format!("{ADMIN_USERS}?{query}"),
            NO_BODY,
            staff,
        );
    }
    for query in [
        "page=99", "page=0", "page=-1", "page=abc", "page=", "page=1.0",
    ] {
        c.json(
            404,
            "GET",
            &format!("{ADMIN_USERS}?{query}"),
            NO_BODY,
            staff,
        );
    }
    c.json(
        404,
        "HEAD",
        &format!("{ADMIN_USERS}?page=99"),
        NO_BODY,
        staff,
    );
    c.json(200, "GET", &admin_user(&alice_id), NO_BODY, staff);
    c.json(200, "HEAD", &admin_user(&alice_id), NO_BODY, staff);
    // The audit log: pages and filters, then the ways a query fails.
    c.json(401, "GET", AUDIT, NO_BODY, anon);
    c.json(403, "GET", AUDIT, NO_BODY, me);
    c.json(403, "HEAD", AUDIT, NO_BODY, me);
    c.json(200, "HEAD", AUDIT, NO_BODY, staff);
    for query in [
        "",
        "page_size=1",
        "page_size=501",
        "page_size=x",
        "action=user.registered&since=2020-01-01&until=2100-01-01T00:00:00Z",
        "actor=1&target=2",
        "cursor=",
    ] {
        let url = format!("{AUDIT}?{query}");
        let page = c.json(200, "GET", &url, NO_BODY, staff).json;
        if let Some(next) = page["next"].as_str() {
            let (_, rest) = next.split_once(AUDIT).expect("next under the audit path");
            c.json(200, "GET", &format!("{AUDIT}{rest}"), NO_BODY, staff);
        }
    }
    for query in [
        "action=nope",
        "since=soon&until=later",
        "actor=me&target=-1",
    ] {
        c.json(400, "GET", &format!("{AUDIT}?{query}"), NO_BODY, staff);
    }
    c.json(400, "HEAD", &format!("{AUDIT}?action=nope"), NO_BODY, staff);
    c.json(404, "GET", &format!("{AUDIT}?cursor=nope"), NO_BODY, staff);
    c.json(404, "HEAD", &format!("{AUDIT}?cursor=nope"), NO_BODY, staff);
    // The detail's PATCH: staff and groups, bad types in DRF's shapes (items by position).
    let access_change = json!({"is_staff": false, "groups": ["ops", "billing"]});
    c.json(200, "PATCH", &admin_user(&alice_id), access_change, staff);
    c.json(403, "PATCH", &admin_user(&alice_id), json!({}), me);
    c.json(401, "PATCH", &admin_user(&alice_id), json!({}), anon);
    let bad = json!({"is_staff": "maybe", "groups": "billing", "is_active": null});
    c.json(400, "PATCH", &admin_user(&alice_id), bad, staff);
    c.json(
        400,
        "PATCH",
        &admin_user(&alice_id),
        json!({"groups": ["ok", ""]}),
        staff,
    );
    c.raw(
        200,
        "PATCH",
        &admin_user(&alice_id),
        FORM,
        "groups=ops&groups=x",
        staff,
    );
    c.raw(
        415,
        "PATCH",
        &admin_user(&alice_id),
        "text/plain",
        "x",
        staff,
    );
    c.json(200, "GET", &admin_user(&alice_id), NO_BODY, staff);
    for id in [
        "999",
        "abc",
        "0",
        "-1",
        "1.5",
        "99999999999999999999999",
        "%20",
    ] {
        c.json(404, "GET", &admin_user(id), NO_BODY, staff);
        c.json(404, "HEAD", &admin_user(id), NO_BODY, staff);
        c.json(404, "PUT", &admin_restore(id), NO_BODY, staff);
        c.json(404, "PATCH", &admin_restore(id), NO_BODY, staff);
        c.json(404, "PATCH", &admin_user(id), json!({"groups": 5}), staff);
    }

    // Soft delete bob, then restore him: his old token stays dead, a new login works.
    let bob = c
        .json(200, "POST", TOKEN, login("bob", PASSWORD), anon)
        .field("access");
    c.json(401, "DELETE", PROFILE_DELETE, NO_BODY, anon);
    c.raw(
        200,
        "DELETE",
        PROFILE_DELETE,
        "text/plain",
        "ignored",
        Some(&bob),
    );
    c.json(401, "DELETE", PROFILE_DELETE, NO_BODY, Some(&bob));
    c.json(401, "GET", PROFILE, NO_BODY, Some(&bob));
    c.json(401, "POST", TOKEN, login("bob", PASSWORD), anon);
    let deleted = c.json(
        200,
        "GET",
        &format!("{ADMIN_USERS}?status=deleted"),
        NO_BODY,
        staff,
    );
    assert_eq!(
        deleted.json[0]["id"].to_string(),
        bob_id,
        "{}",
        deleted.text
    );
    c.json(200, "PUT", &admin_restore(&bob_id), NO_BODY, staff);
    c.json(
        200,
        "PATCH",
        &admin_restore(&bob_id),
        json!({"is_active": false}),
        staff,
    );
    c.raw(
        200,
        "PATCH",
        &admin_restore(&bob_id),
        "text/plain",
        "x",
        staff,
    );
    c.json(401, "GET", PROFILE, NO_BODY, Some(&bob));
    c.json(200, "POST", TOKEN, login("bob", PASSWORD), anon);

    // Logout: once, then the token is dead.
    c.json(200, "POST", LOGOUT, json!({"refresh": refresh}), anon);
    c.json(401, "POST", LOGOUT, json!({"refresh": refresh}), anon);
    c.json(401, "POST", REFRESH, json!({"refresh": refresh}), anon);
    c.json(401, "POST", LOGOUT, json!({"refresh": access}), anon);
    c.json(400, "POST", LOGOUT, json!({}), anon);
    c.json(
        401,
        "POST",
        LOGOUT,
        json!({"refresh": "x"}),
        Some("garbage"),
    );
    c.raw(415, "POST", LOGOUT, "text/html", "<p>", anon);

    // Password reset and verification (SPEC §10): 204 for any address, djoser's errors.
    for email in ["bob@example.com", "nobody@example.com"] {
        c.json(204, "POST", PASSWORD_RESET, json!({ "email": email }), anon);
        c.json(
            204,
            "POST",
            EMAIL_VERIFY_RESEND,
            json!({ "email": email }),
            anon,
        );
    }
    c.json(400, "POST", PASSWORD_RESET, json!({"email": "nope"}), anon);
    c.json(400, "POST", EMAIL_VERIFY_RESEND, json!({}), anon);
    let link = json!({"uid": "MQ", "token": "1-x", "new_password": "Whatever-123"});
    c.json(400, "POST", PASSWORD_RESET_CONFIRM, link, anon);
    c.json(400, "POST", PASSWORD_RESET_CONFIRM, json!({}), anon);
    c.json(
        400,
        "POST",
        EMAIL_VERIFY,
        json!({"uid": "Zm9v", "token": "x"}),
        anon,
    );
    c.json(
        401,
        "POST",
        EMAIL_VERIFY,
        json!({"uid": "MQ", "token": "x"}),
        Some("garbage"),
    );
    c.raw(415, "POST", PASSWORD_RESET, "text/html", "<p>", anon);

    // Methods a path does not list: 405 after authentication, with the path's Allow. (The
    // logout above ended the family of alice's token, and its access tokens with it.)
    let alice = c
        .json(200, "POST", TOKEN, login("alice", PASSWORD), anon)
        .field("access");
    let me = Some(alice.as_str());
    c.json(405, "GET", TOKEN, NO_BODY, anon);
    c.json(405, "PUT", REFRESH, NO_BODY, anon);
    c.json(405, "DELETE", REGISTER, NO_BODY, anon);
    c.json(401, "GET", PROFILE_DELETE, NO_BODY, anon);
    c.json(405, "GET", PROFILE_DELETE, NO_BODY, me);
    c.json(405, "POST", PROFILE, json!({}), me);
    c.json(403, "POST", ADMIN_USERS, NO_BODY, me);
    c.json(405, "POST", ADMIN_USERS, NO_BODY, staff);
    c.json(405, "POST", AUDIT, NO_BODY, staff);
    c.json(405, "DELETE", &admin_user("1"), NO_BODY, staff);
    c.json(405, "GET", &admin_restore("1"), NO_BODY, staff);
    c.json(405, "PUT", "/api/schema/", NO_BODY, anon);
    c.json(405, "POST", "/.well-known/jwks.json", NO_BODY, anon);

    // Browser sessions (SPEC §15): a sign-in into a cookie, the devices, ending them. An
    // unsafe request the cookie authenticates needs Django's CSRF token, on every view.
    let signed_in = c.json(200, "POST", SESSION, login("alice", PASSWORD), anon);
    let cookie = |name: &str| {
        set_cookie(&signed_in, name)
            .unwrap_or_else(|| panic!("no {name} cookie: {:?}", signed_in.headers))
            .0
    };
    let (session, csrf) = (cookie(COOKIE), cookie("csrftoken"));
    let jar = format!("{COOKIE}={session}; csrftoken={csrf}");
    let own = g.url("").trim_end_matches('/').to_string();
    let by_cookie = [("Cookie", jar.as_str()), ("Origin", own.as_str())];
    let with_csrf = [
        ("Cookie", jar.as_str()),
        ("Origin", own.as_str()),
        ("X-CSRFToken", csrf.as_str()),
    ];
    let stale = [("Cookie", "__Host-gatehouse_session=stale")];
    let form = format!("username=alice&password={PASSWORD}&remember=on");
    c.raw(200, "POST", SESSION, FORM, form, anon);
    c.json(400, "POST", SESSION, json!({"username": "alice"}), anon);
    c.json(401, "POST", SESSION, login("alice", "Wrong-Pass-1"), anon);
    c.json(
        401,
        "POST",
        SESSION,
        login("alice", PASSWORD),
        Some("garbage"),
    );
    c.raw(415, "POST", SESSION, "text/plain", "x", anon);
    c.raw(413, "POST", SESSION, JSON, big.clone(), anon);
    c.browser(200, "POST", SESSION, login("alice", PASSWORD), &stale);
    // Signed in already: signing in again is an unsafe request the cookie authenticates.
    c.browser(403, "POST", SESSION, login("alice", PASSWORD), &by_cookie);
    let app = c.json(200, "POST", TOKEN, login("alice", PASSWORD), anon);
    let app_access = app.field("access");
    let listed = c.browser(200, "GET", SESSIONS, NO_BODY, &by_cookie).json;
    let rows = listed.as_array().cloned().unwrap_or_default();
    let current: Vec<&Value> = rows
        .iter()
        .filter(|d| d["current"] == json!(true))
        .collect();
    assert_eq!(current.len(), 1, "one current session: {listed}");
    assert_eq!(current[0]["kind"], json!("browser"), "{listed}");
    let other_browser = rows
        .iter()
        .find(|d| d["kind"] == json!("browser") && d["current"] == json!(false))
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("the form's session is listed: {listed}"))
        .to_string();
    c.browser(200, "HEAD", SESSIONS, NO_BODY, &by_cookie);
    c.json(200, "GET", SESSIONS, NO_BODY, Some(&app_access));
    c.json(200, "HEAD", SESSIONS, NO_BODY, Some(&app_access));
    c.json(401, "GET", SESSIONS, NO_BODY, anon);
    c.json(401, "HEAD", SESSIONS, NO_BODY, anon);
    c.browser(401, "GET", SESSIONS, NO_BODY, &stale);
    // The cookie authenticates the older views too.
    c.browser(200, "GET", PROFILE, NO_BODY, &by_cookie);
    let name = json!({"first_name": "Alice"});
    c.browser(403, "PATCH", PROFILE, name.clone(), &by_cookie);
    c.browser(200, "PATCH", PROFILE, name, &with_csrf);
    // A method the path does not list: the CSRF check comes first, then 405.
    c.browser(403, "POST", SESSIONS, NO_BODY, &by_cookie);
    c.browser(405, "POST", SESSIONS, NO_BODY, &with_csrf);
    c.json(405, "GET", SESSION, NO_BODY, anon);
    // Ending one: not the caller's is 404; the cookie needs the CSRF token.
    for id in ["nope", "1", &"0".repeat(64)] {
        c.json(404, "DELETE", &session_end(id), NO_BODY, Some(&app_access));
    }
    c.json(401, "DELETE", &session_end("1"), NO_BODY, anon);
    // An id is free text: one spelled with a backslash is refused before routing.
    for id in ["a%5Cb", "%2F", "a%252e"] {
        c.json(400, "DELETE", &session_end(id), NO_BODY, Some(&app_access));
        c.json(400, "OPTIONS", &session_end(id), NO_BODY, anon);
    }
    c.browser(
        403,
        "DELETE",
        &session_end(&other_browser),
        NO_BODY,
        &by_cookie,
    );
    c.browser(
        204,
        "DELETE",
        &session_end(&other_browser),
        NO_BODY,
        &with_csrf,
    );
    c.browser(
        404,
        "DELETE",
        &session_end(&other_browser),
        NO_BODY,
        &with_csrf,
    );
    // All but the current one: the app's family ends, and its access token with it.
    c.json(401, "POST", REVOKE_OTHERS, NO_BODY, anon);
    c.browser(403, "POST", REVOKE_OTHERS, NO_BODY, &by_cookie);
    let ended = c.browser(200, "POST", REVOKE_OTHERS, NO_BODY, &with_csrf);
    assert!(
        ended.json["ended"].as_u64().is_some_and(|n| n >= 2),
        "{}",
        ended.text
    );
    c.json(401, "GET", SESSIONS, NO_BODY, Some(&app_access));
    let app = c.json(200, "POST", TOKEN, login("alice", PASSWORD), anon);
    let ended = c.json(
        200,
        "POST",
        REVOKE_OTHERS,
        NO_BODY,
        Some(&app.field("access")),
    );
    assert_eq!(ended.json, json!({"ended": 1}), "the browser session ended");
    c.browser(401, "GET", SESSIONS, NO_BODY, &by_cookie);
    // Signing out: the cookie needs the CSRF token; without a session there is nothing to end.
    let signed_in = c.json(200, "POST", SESSION, login("alice", PASSWORD), anon);
    let session = set_cookie(&signed_in, COOKIE).expect("a session cookie").0;
    let jar = format!("{COOKIE}={session}; csrftoken={csrf}");
    let by_cookie = [("Cookie", jar.as_str()), ("Origin", own.as_str())];
    c.browser(403, "DELETE", SESSION, NO_BODY, &by_cookie);
    let by_cookie = [
        ("Cookie", jar.as_str()),
        ("Origin", own.as_str()),
        ("X-CSRFToken", csrf.as_str()),
    ];
    c.browser(204, "DELETE", SESSION, NO_BODY, &by_cookie);
    c.browser(401, "GET", SESSIONS, NO_BODY, &by_cookie);
    c.json(204, "DELETE", SESSION, NO_BODY, anon);
    c.browser(204, "DELETE", SESSION, NO_BODY, &stale);
    c.json(401, "DELETE", SESSION, NO_BODY, Some("garbage"));

    // The second factor (SPEC §17), on alice: nothing to confirm, use or turn off at first;
    // an enrolment (a second one replaces the first), its confirmation, sign-ins that need a
    // code, new recovery codes, turning it off; then an admin's view and reset.
    let alice = c
        .json(200, "POST", TOKEN, login("alice", PASSWORD), anon)
        .field("access");
    assert_eq!(
        jwt::claims(&alice).get("amr"),
        None,
        "no second factor, no amr"
    );
    let me = Some(alice.as_str());
    let off = |password: &str, code: &str| json!({"password": password, "code": code});
    c.json(401, "POST", TOTP, NO_BODY, anon);
    c.json(401, "POST", TOTP_CONFIRM, json!({"code": "123456"}), anon);
    c.json(401, "POST", RECOVERY_CODES, json!({"code": "123456"}), anon);
    c.json(401, "DELETE", TOTP, off(PASSWORD, "123456"), anon);
    c.json(400, "POST", TOTP_CONFIRM, json!({"code": "123456"}), me);
    c.json(400, "POST", RECOVERY_CODES, json!({"code": "123456"}), me);
    c.json(400, "DELETE", TOTP, off(PASSWORD, "123456"), me);
    c.json(400, "DELETE", TOTP, json!({}), me);
    c.json(
        400,
        "DELETE",
        TOTP,
        json!({"password": "", "code": null}),
        me,
    );
    c.raw(400, "DELETE", TOTP, JSON, "[]", me);
    c.raw(415, "DELETE", TOTP, "text/plain", "x", me);
    c.json(200, "POST", TOTP, NO_BODY, me);
    let enrolment = c.json(200, "POST", TOTP, NO_BODY, me);
    let secret = totp::secret_of(&enrolment.json);
    c.json(400, "POST", TOTP_CONFIRM, json!({}), me);
    c.json(400, "POST", TOTP_CONFIRM, json!({"code": "not a code"}), me);
    c.raw(400, "POST", TOTP_CONFIRM, JSON, "{oops", me);
    c.raw(415, "POST", TOTP_CONFIRM, "text/plain", "x", me);
    let confirm = json!({"code": totp::code_now(&secret)});
    let codes = recovery_codes(&c.json(200, "POST", TOTP_CONFIRM, confirm, me));
    c.json(400, "POST", TOTP_CONFIRM, json!({"code": "123456"}), me);
    c.json(400, "POST", TOTP, NO_BODY, me);
    // Sign-ins: the code is required, a wrong one refused; a recovery code passes once, and
    // the access token (and every one refreshed from its pair) says so in `amr`.
    let with_otp = |otp: &str| json!({"username": "alice", "password": PASSWORD, "otp": otp});
    c.json(401, "POST", TOKEN, login("alice", PASSWORD), anon);
    c.json(401, "POST", TOKEN, with_otp("zzzzz-zzzzz"), anon);
    let (mfa_access, mfa_refresh) = c
        .json(200, "POST", TOKEN, with_otp(&codes[0]), anon)
        .tokens();
    let amr = json!(["pwd", "otp"]);
    assert_eq!(jwt::claims(&mfa_access)["amr"], amr);
    let refreshed = c.json(
        200,
        "POST",
        REFRESH,
        json!({ "refresh": mfa_refresh }),
        anon,
    );
    assert_eq!(jwt::claims(&refreshed.field("access"))["amr"], amr);
    c.json(401, "POST", SESSION, login("alice", PASSWORD), anon);
    c.json(200, "POST", SESSION, with_otp(&codes[1]), anon);
    let form = format!("username=alice&password={PASSWORD}&otp={}", codes[2]);
    c.raw(200, "POST", TOKEN, FORM, form, anon);
    // New recovery codes: the old set dies with them.
    c.json(400, "POST", RECOVERY_CODES, json!({}), me);
    c.json(400, "POST", RECOVERY_CODES, json!({"code": "nope"}), me);
    c.raw(415, "POST", RECOVERY_CODES, "text/plain", "x", me);
    let renewed =
        recovery_codes(&c.json(200, "POST", RECOVERY_CODES, json!({"code": codes[3]}), me));
    // Off: the password and a code of the new set; every token of alice ends.
    c.json(400, "DELETE", TOTP, off("Wrong-Pass-1", &renewed[0]), me);
    c.json(400, "DELETE", TOTP, off(PASSWORD, &codes[4]), me);
    c.json(204, "DELETE", TOTP, off(PASSWORD, &renewed[0]), me);
    c.json(401, "POST", TOTP, NO_BODY, me);
    c.json(401, "GET", PROFILE, NO_BODY, Some(&mfa_access));
    // The admin's view: `mfa` in the detail; `"mfa": false` resets a lost factor (alice's
    // tokens end), `"mfa": true` is refused.
    let alice = c
        .json(200, "POST", TOKEN, login("alice", PASSWORD), anon)
        .field("access");
    let me = Some(alice.as_str());
    let detail = c.json(200, "GET", &admin_user(&alice_id), NO_BODY, staff);
    assert_eq!(detail.json["mfa"], json!(false), "{}", detail.text);
    let secret = totp::secret_of(&c.json(200, "POST", TOTP, NO_BODY, me).json);
    let confirm = json!({"code": totp::code_now(&secret)});
    recovery_codes(&c.json(200, "POST", TOTP_CONFIRM, confirm, me));
    let detail = c.json(200, "GET", &admin_user(&alice_id), NO_BODY, staff);
    assert_eq!(detail.json["mfa"], json!(true), "{}", detail.text);
    c.json(
        400,
        "PATCH",
        &admin_user(&alice_id),
        json!({"mfa": true}),
        staff,
    );
    let reset = c.json(
        200,
        "PATCH",
        &admin_user(&alice_id),
        json!({"mfa": false}),
        staff,
    );
    assert_eq!(reset.json["mfa"], json!(false), "{}", reset.text);
    c.json(401, "GET", PROFILE, NO_BODY, me);
    c.json(200, "POST", TOKEN, login("alice", PASSWORD), anon);

    // API keys (SPEC §19): made with the password, listed without the key, revoked; staff's
    // service accounts and their keys.
    let alice = c
        .json(200, "POST", TOKEN, login("alice", PASSWORD), anon)
        .field("access");
    let me = Some(alice.as_str());
    let expires = gatehouse::clock::iso_ms((now() + 30 * 86_400) * 1000);
    let key_body =
        |password: &str| json!({"name": "ci", "expires_at": expires, "password": password});
    c.json(400, "POST", KEYS, json!({}), me);
    c.json(400, "POST", KEYS, key_body("Wrong-Pass-1"), me);
    c.json(
        400,
        "POST",
        KEYS,
        json!({"name": "ci", "expires_at": "2000-01-01", "password": PASSWORD}),
        me,
    );
    // A list field's errors by item index, as DRF's ListField reports them (schemathesis
    // found this shape missing from the document).
    let per_item = c.json(
        400,
        "POST",
        KEYS,
        json!({"name": "ci", "expires_at": expires, "password": PASSWORD, "groups": ["ops", ""], "routes": [null]}),
        me,
    );
    assert!(
        per_item.json["groups"]["1"].is_array() && per_item.json["routes"]["0"].is_array(),
        "per-item errors keyed by index: {}",
        per_item.text
    );
    c.raw(415, "POST", KEYS, "text/plain", "x", me);
    c.json(401, "POST", KEYS, key_body(PASSWORD), anon);
    let made = c.json(201, "POST", KEYS, key_body(PASSWORD), me);
    let key_id = made.field("id");
    c.json(200, "GET", KEYS, NO_BODY, me);
    c.json(200, "HEAD", KEYS, NO_BODY, me);
    c.json(401, "GET", KEYS, NO_BODY, anon);
    c.json(401, "HEAD", KEYS, NO_BODY, anon);
    c.json(204, "DELETE", &format!("{KEYS}{key_id}/"), NO_BODY, me);
    c.json(404, "DELETE", &format!("{KEYS}nope/"), NO_BODY, me);
    c.json(401, "DELETE", &format!("{KEYS}{key_id}/"), NO_BODY, anon);
    let bot = c.json(
        201,
        "POST",
        SERVICE_ACCOUNTS,
        json!({"username": "ci-bot"}),
        staff,
    );
    let bot_id = bot.json["id"].to_string();
    c.json(
        400,
        "POST",
        SERVICE_ACCOUNTS,
        json!({"username": "ci-bot"}),
        staff,
    );
    c.json(403, "POST", SERVICE_ACCOUNTS, json!({"username": "x"}), me);
    let bot_keys = format!("/api/auth/admin/users/{bot_id}/keys/");
    c.json(201, "POST", &bot_keys, key_body("Root-Pass-2024"), staff);
    c.json(400, "POST", &bot_keys, key_body(PASSWORD), staff);
    c.json(403, "POST", &bot_keys, key_body(PASSWORD), me);
    c.json(200, "GET", &bot_keys, NO_BODY, staff);
    c.json(200, "HEAD", &bot_keys, NO_BODY, staff);
    c.json(403, "GET", &bot_keys, NO_BODY, me);
    c.json(403, "HEAD", &bot_keys, NO_BODY, me);
    c.json(
        404,
        "GET",
        "/api/auth/admin/users/999999/keys/",
        NO_BODY,
        staff,
    );
    c.json(
        404,
        "HEAD",
        "/api/auth/admin/users/999999/keys/",
        NO_BODY,
        staff,
    );

    // The scenario touched every documented operation.
    let exercised = c.exercised.borrow();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in documented_methods(item) {
            if !exercised.contains(&(method.clone(), path.clone())) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "operations the scenario never called: {missing:?}"
    );
}

#[test]
fn throttled_answers_match_the_document() {
    let doc = document();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.throttle.registrations_per_address = 1;
            c.throttle.login_failures_per_username = 1;
        })
        .start();
    let c = Checked::new(&g, &doc);
    g.register("tom");
    let tim = json!({"username": "tim", "email": "tim@example.com", "password": PASSWORD});
    let r = c.json(429, "POST", REGISTER, tim, None);
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok()));
    let wrong = json!({"username": "tom", "password": "Wrong-Pass-1"});
    c.json(401, "POST", TOKEN, wrong.clone(), None);
    c.json(429, "POST", TOKEN, wrong, None);
}

#[test]
fn second_factor_refusals_match_the_document() {
    let doc = document();
    let g = Gatehouse::new()
        .superuser("root", "root@example.com", "Root-Pass-2024")
        .with_config(|c| {
            c.admin_api.require_mfa = true;
            c.mfa.failures_per_hour = 1;
        })
        .start();
    let c = Checked::new(&g, &doc);
    let login = json!({"username": "root", "password": "Root-Pass-2024"});
    let root = c.json(200, "POST", TOKEN, login, None).field("access");
    let staff = Some(root.as_str());
    // `[admin_api] require_mfa`: a password-only token is refused on the admin endpoints.
    c.json(403, "GET", ADMIN_USERS, NO_BODY, staff);
    c.json(403, "HEAD", ADMIN_USERS, NO_BODY, staff);
    c.json(403, "GET", AUDIT, NO_BODY, staff);
    c.json(403, "PATCH", &admin_user("1"), json!({}), staff);
    c.json(403, "PUT", &admin_restore("1"), NO_BODY, staff);
    c.json(403, "DELETE", &admin_user("1"), NO_BODY, staff);
    let secret = totp::secret_of(&c.json(200, "POST", TOTP, NO_BODY, staff).json);
    let confirm = json!({"code": totp::code_now(&secret)});
    let codes = recovery_codes(&c.json(200, "POST", TOTP_CONFIRM, confirm, staff));
    let with_otp = json!({"username": "root", "password": "Root-Pass-2024", "otp": codes[0]});
    let root = c.json(200, "POST", TOKEN, with_otp, None).field("access");
    c.json(200, "GET", ADMIN_USERS, NO_BODY, Some(&root));
    // One wrong code locks the second factor (`[mfa] failures_per_hour = 1`): 429 until
    // Retry-After, wherever a code is checked.
    c.json(
        400,
        "POST",
        RECOVERY_CODES,
        json!({"code": "zzzzz-zzzzz"}),
        staff,
    );
    let locked = c.json(
        429,
        "POST",
        RECOVERY_CODES,
        json!({"code": codes[1]}),
        staff,
    );
    assert!(locked
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok()));
    let off = json!({"password": "Root-Pass-2024", "code": codes[1]});
    c.json(429, "DELETE", TOTP, off, staff);
    let with_otp = json!({"username": "root", "password": "Root-Pass-2024", "otp": codes[1]});
    c.json(429, "POST", TOKEN, with_otp, None);
}
