use crate::common;

// Browser sessions over HTTP (SPEC §15), without a browser: the session cookie as a
// credential on the proxy, the user API and forward-auth; login_redirect; CSRF (Django's
// rules and words, and the Origin check on proxied routes); `next`; fixation; revocation;
// "sign out this device"; bad cookies. tests/it/web_browser.rs does the same in Chromium.

use common::upstream::Upstream;
use common::*;
use gatehouse::config::RouteConfig;
use serde_json::{json, Value};

pub const COOKIE: &str = "__Host-gatehouse_session";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// gatehouse with the pages on, `/app/` (login_redirect) and `/api-like/` (plain required)
/// in front of `up`.
pub fn web_gatehouse(up: &Upstream) -> Gatehouse {
    let addr = up.addr;
    Gatehouse::new()
        .with_config(move |c| {
            c.web.enabled = true;
            c.forward_auth.enabled = true;
            c.routes = vec![
                RouteConfig {
                    login_redirect: true,
                    ..route("/app/", &[addr])
                },
                route("/api-like/", &[addr]),
            ];
        })
        .start()
}

/// The value of cookie `name` among a response's Set-Cookie headers, with the whole line.
pub fn set_cookie(r: &Resp, name: &str) -> Option<(String, String)> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            let (pair, _) = line.split_once(';').unwrap_or((line, ""));
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| (v.trim().to_string(), line.to_string()))
        })
}

/// Signs `username` in through the JSON session endpoint: the session cookie's value and
/// the CSRF cookie's.
pub fn session_of(g: &Gatehouse, username: &str) -> (String, String) {
    let r = g.http().post(
        "/api/auth/session/",
        json!({"username": username, "password": PASSWORD}),
        None,
    );
    r.expect_status(200);
    let (session, _) = set_cookie(&r, COOKIE).expect("a session cookie");
    let (csrf, _) = set_cookie(&r, "csrftoken").expect("a CSRF cookie");
    (session, csrf)
}

fn cookie_header(session: &str) -> String {
    format!("{COOKIE}={session}")
}

fn get_with_cookie(g: &Gatehouse, path: &str, cookie: &str, accept: Option<&str>) -> Resp {
    let mut rb = g.http().request("GET", path).header("Cookie", cookie);
    if let Some(a) = accept {
        rb = rb.header("Accept", a);
    }
    g.http().send(rb)
}

#[test]
fn the_session_cookie_is_a_credential_the_upstream_never_sees() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("alice");
    let r = g.http().post(
        "/api/auth/session/",
        json!({"username": "alice", "password": PASSWORD}),
        None,
    );
    r.expect_status(200);
    assert_eq!(r.json["username"], "alice", "the profile: {}", r.text);
    let (session, line) = set_cookie(&r, COOKIE).expect("session cookie");
    // §15's attributes, read from the raw header.
    let attrs: Vec<String> = line
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_lowercase())
        .collect();
    for want in ["httponly", "samesite=lax", "path=/", "secure"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {line}");
    }
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")
            || a.starts_with("max-age")
            || a.starts_with("expires")),
        "a __Host- session cookie without remember-me has no Domain and no lifetime: {line}"
    );
    assert_eq!(session.len(), 43, "256 bits, base64url");
    let (_, csrf_line) = set_cookie(&r, "csrftoken").expect("csrf cookie");
    assert!(
        !csrf_line.to_lowercase().contains("httponly"),
        "{csrf_line}"
    );

    let before = up.count();
    let r = get_with_cookie(
        &g,
        "/app/page",
        &format!("theme=dark; {COOKIE}={session}; lang=en"),
        None,
    );
    r.expect_status(200);
    assert_eq!(up.count(), before + 1);
    let seen = up.last();
    assert_eq!(seen.header("x-user-name").as_deref(), Some("alice"));
    let cookie = seen.header("cookie").unwrap_or_default();
    assert!(
        !cookie.contains(COOKIE) && !cookie.contains(&session),
        "forwarded: {cookie}"
    );
    assert!(
        cookie.contains("theme=dark") && cookie.contains("lang=en"),
        "other cookies pass: {cookie}"
    );
    // Only the session cookie: no Cookie header at all upstream.
    get_with_cookie(&g, "/api-like/x", &cookie_header(&session), None).expect_status(200);
    assert_eq!(up.last().header("cookie"), None);
    // The profile with the cookie (DRF's SessionAuthentication).
    let r = get_with_cookie(&g, "/api/auth/profile/", &cookie_header(&session), None);
    r.expect_status(200);
    assert_eq!(r.json["username"], "alice");
    // An invalid bearer token is a 401 even with a valid cookie.
    let r = g.http().send(
        g.http()
            .request("GET", "/app/page")
            .header("Cookie", cookie_header(&session))
            .bearer_auth("garbage"),
    );
    r.expect_status(401);
    // Signing out is a session-authenticated DELETE: Django's token first.
    let (session, csrf) = session_of(&g, "alice");
    let own = g.http().url("").trim_end_matches('/').to_string();
    let sign_out = |token: Option<&str>| {
        let mut rb = g
            .http()
            .request("DELETE", "/api/auth/session/")
            .header(
                "Cookie",
                format!("{}; csrftoken={csrf}", cookie_header(&session)),
            )
            .header("Origin", own.as_str());
        if let Some(t) = token {
            rb = rb.header("X-CSRFToken", t);
        }
        g.http().send(rb)
    };
    sign_out(None).expect(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    let r = sign_out(Some(&csrf));
    r.expect_status(204);
    let (cleared, line) = set_cookie(&r, COOKIE).expect("the cookie cleared");
    assert!(
        cleared.is_empty() && line.to_lowercase().contains("max-age=0"),
        "{line}"
    );
    get_with_cookie(&g, "/app/page", &cookie_header(&session), None).expect_status(401);
}

#[test]
fn browsers_go_to_sign_in_and_everyone_else_gets_the_401() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    let r = g.http().send(
        g.http()
            .request("GET", "/app/reports?week=49&x=a%20b")
            .header("Accept", BROWSER_ACCEPT),
    );
    r.expect_status(302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/accounts/login/?next=/app/reports%3Fweek%3D49%26x%3Da%2520b")
    );
    let r = g.http().send(
        g.http()
            .request("POST", "/app/form")
            .header("Accept", BROWSER_ACCEPT),
    );
    r.expect_status(303);
    // An API client, a script, and a route without login_redirect: the 401 JSON.
    for (path, headers) in [
        ("/app/x", vec![("Accept", "application/json")]),
        (
            "/app/x",
            vec![
                ("Accept", BROWSER_ACCEPT),
                ("X-Requested-With", "XMLHttpRequest"),
            ],
        ),
        ("/api-like/x", vec![("Accept", BROWSER_ACCEPT)]),
    ] {
        let mut rb = g.http().request("GET", path);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        g.http().send(rb).expect(
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        );
    }
    assert_eq!(up.count(), 0, "nothing was forwarded");
    // Nothing routed at `/`: a browser is shown its account (and so the sign-in page).
    let r = g.http().send(
        g.http()
            .request("GET", "/")
            .header("Accept", BROWSER_ACCEPT),
    );
    r.expect_status(302);
    assert_eq!(r.header("location").as_deref(), Some("/accounts/"));
    let r = g.http().send(
        g.http()
            .request("GET", "/accounts/")
            .header("Accept", BROWSER_ACCEPT),
    );
    r.expect_status(302);
    assert!(r
        .header("location")
        .is_some_and(|l| l.starts_with("/accounts/login/")));
    // The sign-in page is a page.
    let r = g.http().get("/accounts/login/", None);
    r.expect_status(200);
    assert!(r.text.contains("csrfmiddlewaretoken"), "{}", r.text);
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        r.header("content-security-policy").as_deref(),
        Some("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    );
}

/// The sign-in page's form: its CSRF cookie and token.
fn login_page(g: &Gatehouse) -> (String, String) {
    let r = g.http().get("/accounts/login/", None);
    r.expect_status(200);
    let (csrf_cookie, _) = set_cookie(&r, "csrftoken").expect("csrf cookie");
    let token = r
        .text
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's token")
        .to_string();
    (csrf_cookie, token)
}

pub fn form_sign_in(g: &Gatehouse, username: &str, password: &str, next: &str) -> Resp {
    let (cookie, token) = login_page(g);
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrfmiddlewaretoken", &token)
        .append_pair("username", username)
        .append_pair("password", password)
        .append_pair("next", next)
        .finish();
    g.http().send(
        g.http()
            .request("POST", "/accounts/login/")
            .header("Cookie", format!("csrftoken={cookie}"))
            .header("Origin", g.http().url("").trim_end_matches('/'))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
    )
}

#[test]
fn next_is_followed_only_to_this_site() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("nina");
    // The absolute URL forward-auth sends is followed to the page's own host.
    let own = g.http().url("/app/x?y=1");
    let r = form_sign_in(&g, "nina", PASSWORD, &own);
    r.expect_status(302);
    assert_eq!(r.header("location").as_deref(), Some(own.as_str()));
    let r = form_sign_in(&g, "nina", PASSWORD, "/app/reports?week=49");
    r.expect_status(302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/app/reports?week=49")
    );
    let long = format!("/{}", "a".repeat(5000));
    for evil in [
        "//evil.test",
        "/\\evil.test",
        "\\\\evil.test",
        "https://evil.test",
        "http://evil.test/",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,hi",
        "/%2F/evil.test",
        "/%5Cevil.test",
        "/\tevil",
        "/x\r\nLocation: https://evil.test",
        "\u{0}/x",
        "https://evil.test@127.0.0.1/",
        long.as_str(),
    ] {
        let r = form_sign_in(&g, "nina", PASSWORD, evil);
        r.expect_status(302);
        assert_eq!(
            r.header("location").as_deref(),
            Some("/accounts/"),
            "next = {evil:?}"
        );
    }
}

#[test]
fn a_wrong_password_stays_on_the_page_with_djangos_words() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("olga");
    let r = form_sign_in(&g, "olga", "wrong-password", "/app/");
    r.expect_status(200);
    assert!(
        r.text.contains("Please enter a correct username and password. Note that both fields may be case-sensitive."),
        "{}",
        r.text
    );
    assert!(
        set_cookie(&r, COOKIE).is_none(),
        "no session for a wrong password"
    );
}

#[test]
fn csrf_refusals_are_djangos_and_nothing_is_forwarded() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("carl");
    let (session, csrf) = session_of(&g, "carl");
    let own = g.http().url("").trim_end_matches('/').to_string();
    let send =
        |method: &str, path: &str, origin: Option<&str>, extra: &[(&str, &str)], cookie: String| {
            let mut rb = g.http().request(method, path).header("Cookie", cookie);
            if let Some(o) = origin {
                rb = rb.header("Origin", o);
            }
            for (k, v) in extra {
                rb = rb.header(*k, *v);
            }
            g.http().send(rb)
        };
    let with_csrf = format!("{}; csrftoken={csrf}", cookie_header(&session));
    // A proxied route: another origin (a different port is the same site) is refused.
    let before = up.count();
    let evil = "http://127.0.0.1:1";
    send("POST", "/app/transfer", Some(evil), &[], with_csrf.clone()).expect(
        403,
        json!({"detail": format!("CSRF Failed: Origin checking failed - {evil} does not match any trusted origins.")}),
    );
    assert_eq!(up.count(), before, "a refused request is never forwarded");
    // The same request from its own origin passes (proxied routes check the origin only).
    send("POST", "/app/transfer", Some(&own), &[], with_csrf.clone()).expect_status(200);
    assert_eq!(up.count(), before + 1);
    // A bearer-authenticated request is not checked (as DRF).
    let token = g.http().login("carl", PASSWORD).0;
    g.http()
        .send(
            g.http()
                .request("POST", "/app/transfer")
                .header("Origin", evil)
                .bearer_auth(&token),
        )
        .expect_status(200);
    // The user API wants Django's token too.
    let patch = |extra: &[(&str, &str)], cookie: String| {
        let mut rb = g
            .http()
            .request("PATCH", "/api/auth/profile/")
            .header("Cookie", cookie)
            .header("Origin", own.as_str())
            .json(&json!({"first_name": "Carl"}));
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        g.http().send(rb)
    };
    patch(&[], cookie_header(&session))
        .expect(403, json!({"detail": "CSRF Failed: CSRF cookie not set."}));
    patch(&[], with_csrf.clone())
        .expect(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    patch(&[("X-CSRFToken", &"a".repeat(64))], with_csrf.clone()).expect(
        403,
        json!({"detail": "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect."}),
    );
    patch(&[("X-CSRFToken", "short")], with_csrf.clone()).expect(
        403,
        json!({"detail": "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."}),
    );
    // Another session's token: another secret.
    let (_, other_csrf) = session_of(&g, "carl");
    patch(&[("X-CSRFToken", &other_csrf)], with_csrf.clone()).expect(
        403,
        json!({"detail": "CSRF Failed: CSRF token from the 'X-Csrftoken' HTTP header incorrect."}),
    );
    let r = patch(&[("X-CSRFToken", &csrf)], with_csrf.clone());
    r.expect_status(200);
    assert_eq!(r.json["first_name"], "Carl");
}

#[test]
fn a_password_change_a_deactivation_and_a_delete_end_sessions() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .superuser("root", "root@example.com", PASSWORD)
        .with_config({
            let addr = up.addr;
            move |c| {
                c.routes = vec![route("/app/", &[addr])];
            }
        })
        .start();
    let (id, access, _) = g.http().user("dora");
    let (s1, _) = session_of(&g, "dora");
    get_with_cookie(&g, "/app/x", &cookie_header(&s1), None).expect_status(200);
    g.http()
        .change_password(&access, PASSWORD, "N3w-Passw0rd!")
        .expect_status(200);
    get_with_cookie(&g, "/app/x", &cookie_header(&s1), None).expect_status(401);
    get_with_cookie(&g, "/api/auth/profile/", &cookie_header(&s1), None).expect_status(401);
    // Deactivated by an admin: the session dies with the user.
    let r = g.http().post(
        "/api/auth/session/",
        json!({"username": "dora", "password": "N3w-Passw0rd!"}),
        None,
    );
    let (s2, _) = set_cookie(&r, COOKIE).expect("cookie");
    get_with_cookie(&g, "/app/x", &cookie_header(&s2), None).expect_status(200);
    let root = g.http().login("root", PASSWORD).0;
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{id}/"),
            Some(json!({"is_active": false})),
            Some(&root),
        )
        .expect_status(200);
    get_with_cookie(&g, "/app/x", &cookie_header(&s2), None).expect_status(401);
    // A soft delete likewise.
    let (_, eve_access, _) = g.http().user("eve");
    let (s3, _) = session_of(&g, "eve");
    get_with_cookie(&g, "/app/x", &cookie_header(&s3), None).expect_status(200);
    g.http().soft_delete(&eve_access).expect_status(200);
    get_with_cookie(&g, "/app/x", &cookie_header(&s3), None).expect_status(401);
}

#[test]
fn sign_in_always_makes_a_new_id_and_a_planted_one_stays_dead() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("fay");
    let planted = "A".repeat(43);
    let r = g.http().send(
        g.http()
            .request("POST", "/api/auth/session/")
            .header("Cookie", cookie_header(&planted))
            .json(&json!({"username": "fay", "password": PASSWORD})),
    );
    r.expect_status(200);
    let (fresh, _) = set_cookie(&r, COOKIE).expect("cookie");
    assert_ne!(fresh, planted);
    get_with_cookie(&g, "/api-like/x", &cookie_header(&planted), None).expect_status(401);
    get_with_cookie(&g, "/api-like/x", &cookie_header(&fresh), None).expect_status(200);
    let (again, _) = session_of(&g, "fay");
    assert_ne!(again, fresh, "every sign-in gets its own id");
}

#[test]
fn bad_cookies_get_a_clean_refusal() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("gil");
    let thousand: Vec<String> = (0..1000).map(|i| format!("c{i}=v{i}")).collect();
    let cases = [
        format!("{COOKIE}={}", "x".repeat(6000)),
        thousand.join("; "),
        format!("{COOKIE}=;;;==;{COOKIE}"),
        format!("{COOKIE}=\u{7f}\u{1}"),
        format!("{COOKIE}={}", "Z".repeat(43)),
        "garbage without equals".to_string(),
    ];
    for cookie in &cases {
        let Ok(value) = reqwest::header::HeaderValue::from_str(cookie) else {
            continue;
        };
        let r = g.http().send(
            g.http()
                .request("GET", "/api-like/x")
                .header("Cookie", value.clone()),
        );
        assert!(
            matches!(r.status, 401 | 431),
            "{} -> {}",
            &cookie[..cookie.len().min(40)],
            r.status
        );
        let r = g.http().send(
            g.http()
                .request("GET", "/app/x")
                .header("Cookie", value)
                .header("Accept", BROWSER_ACCEPT),
        );
        assert!(matches!(r.status, 302 | 431), "{}", r.status);
    }
    assert_eq!(up.count(), 0);
    // Still serving.
    let (s, _) = session_of(&g, "gil");
    get_with_cookie(&g, "/api-like/x", &cookie_header(&s), None).expect_status(200);
}

#[test]
fn ending_a_device_refuses_its_access_token_on_the_next_request() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("hal");
    let (access, _refresh) = g.http().login("hal", PASSWORD);
    let (session, csrf) = session_of(&g, "hal");
    g.http()
        .get("/api-like/x", Some(&access))
        .expect_status(200);
    let r = get_with_cookie(&g, "/api/auth/sessions/", &cookie_header(&session), None);
    r.expect_status(200);
    let rows = r.json.as_array().cloned().unwrap_or_default();
    let app = rows
        .iter()
        .find(|d| d["kind"] == "app")
        .unwrap_or_else(|| panic!("the token login is listed: {}", r.text));
    let browser = rows
        .iter()
        .find(|d| d["kind"] == "browser")
        .expect("browser");
    assert_eq!(browser["current"], Value::Bool(true));
    assert_eq!(app["current"], Value::Bool(false));
    let id = app["id"].as_str().expect("id");
    let own = g.http().url("").trim_end_matches('/').to_string();
    g.http()
        .send(
            g.http()
                .request("DELETE", &format!("/api/auth/sessions/{id}/"))
                .header(
                    "Cookie",
                    format!("{}; csrftoken={csrf}", cookie_header(&session)),
                )
                .header("X-CSRFToken", csrf.as_str())
                .header("Origin", own.as_str()),
        )
        .expect_status(204);
    // The very next request with that family's access token: refused, inline and forward-auth.
    g.http()
        .get("/api-like/x", Some(&access))
        .expect_status(401);
    let ask = g.http().send(
        g.http()
            .request("GET", "/_gatehouse/auth")
            .header("X-Forwarded-Uri", "/api-like/x")
            .bearer_auth(&access),
    );
    ask.expect_status(401);
    // The browser session is untouched.
    get_with_cookie(&g, "/api-like/x", &cookie_header(&session), None).expect_status(200);
}

#[test]
fn forward_auth_sends_browsers_to_sign_in_the_way_each_ingress_wants() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    // nginx: 401 with an absolute Location built from the forwarded host.
    let r = g.http().send(
        g.http()
            .request("GET", "/_gatehouse/auth")
            .header("X-Original-URI", "/app/r?x=1")
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Proto", "https")
            .header("Accept", BROWSER_ACCEPT),
    );
    r.expect_status(401);
    assert_eq!(
        r.header("location").as_deref(),
        Some(
            "https://app.example.com/accounts/login/?next=https%3A//app.example.com/app/r%3Fx%3D1"
        )
    );
    // Traefik: the redirect itself (303 for a POST).
    let r = g.http().send(
        g.http()
            .request("GET", "/_gatehouse/auth")
            .header("X-Forwarded-Uri", "/app/r")
            .header("X-Forwarded-Method", "POST")
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Proto", "https")
            .header("Accept", BROWSER_ACCEPT),
    );
    r.expect_status(303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://app.example.com/accounts/login/?next=https%3A//app.example.com/app/r")
    );
    // Signed in: allowed, with the cookies minus the session cookie for the ingress to send.
    g.register("ida");
    let (session, _) = session_of(&g, "ida");
    let r = g.http().send(
        g.http()
            .request("GET", "/_gatehouse/auth")
            .header("X-Original-URI", "/app/r")
            .header("Cookie", format!("a=1; {}", cookie_header(&session))),
    );
    r.expect_status(200);
    assert_eq!(r.header("x-user-name").as_deref(), Some("ida"));
    assert_eq!(r.header("x-gatehouse-cookie").as_deref(), Some("a=1"));
}

/// A page's form token and its CSRF cookie, from a GET of `path`.
fn form_of(g: &Gatehouse, path: &str) -> (String, String) {
    let r = g.http().get(path, None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    let cookie = set_cookie(&r, "csrftoken").expect("csrf cookie").0;
    let token = r
        .text
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's token")
        .to_string();
    (cookie, token)
}

/// POSTs a form to `path` as a browser would (CSRF cookie + field, own Origin), with extra
/// cookies.
fn post_form(g: &Gatehouse, path: &str, fields: &[(&str, &str)], cookies: &str) -> Resp {
    let (csrf_cookie, token) = form_of(g, "/accounts/login/");
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("csrfmiddlewaretoken", &token);
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let cookie = if cookies.is_empty() {
        format!("csrftoken={csrf_cookie}")
    } else {
        format!("csrftoken={csrf_cookie}; {cookies}")
    };
    g.http().send(
        g.http()
            .request("POST", path)
            .header("Cookie", cookie)
            .header("Origin", g.http().url("").trim_end_matches('/'))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.finish()),
    )
}

#[test]
fn sign_up_on_the_page_uses_the_apis_rules_and_signs_in() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    form_of(&g, "/accounts/register/");
    let r = post_form(
        &g,
        "/accounts/register/",
        &[
            ("username", "pia"),
            ("email", "pia@example.com"),
            ("password", "123"),
            ("re_password", "123"),
        ],
        "",
    );
    r.expect_status(400);
    assert!(r.text.contains("This password is too short."), "{}", r.text);
    let r = post_form(
        &g,
        "/accounts/register/",
        &[
            ("username", "pia"),
            ("email", "pia@example.com"),
            ("password", "Sunny-Day-42"),
            ("re_password", "Sunny-Day-43"),
        ],
        "",
    );
    r.expect_status(400);
    assert!(
        r.text.contains("The two password fields didn&#39;t match.")
            || r.text.contains("The two password fields didn't match."),
        "{}",
        r.text
    );
    let r = post_form(
        &g,
        "/accounts/register/",
        &[
            ("username", "pia"),
            ("email", "pia@example.com"),
            ("password", "Sunny-Day-42"),
            ("re_password", "Sunny-Day-42"),
        ],
        "",
    );
    r.expect_status(303);
    let (session, _) = set_cookie(&r, COOKIE).expect("signed in");
    let page = get_with_cookie(&g, "/accounts/", &cookie_header(&session), None);
    page.expect_status(200);
    assert!(page.text.contains("pia@example.com"), "{}", page.text);
    // The API's registration refuses the same name: one set of rules.
    g.http()
        .register_as("pia", "other@example.com", PASSWORD)
        .expect_status(400);
}

#[test]
fn a_reset_link_moves_its_token_out_of_the_address_and_the_log() {
    use common::smtp::*;
    let sink = SmtpSink::start();
    let up = Upstream::start();
    let addr = up.addr;
    let g = with_smtp(&sink, move |c| {
        c.web.enabled = true;
        c.routes = vec![route("/app/", &[addr])];
    })
    .start();
    g.register("quin");
    let r = post_form(
        &g,
        "/accounts/password/reset/",
        &[("email", "quin@example.com")],
        "",
    );
    r.expect_status(200);
    let mails = sink.wait_for("quin@example.com", 1, std::time::Duration::from_secs(10));
    let (uid, token) = link_parts(&mails[0], RESET_LINK);
    // With the pages on, the mail links to them, on the listener's address.
    let link = format!(
        "{}/accounts/password/reset/confirm/{uid}/{token}/",
        g.http().url("").trim_end_matches('/')
    );
    let body = mails[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains(&link), "{link} not in {body}");
    // The link's page: the token goes into a short-lived HttpOnly cookie, the address loses it.
    let r = g.http().get(
        &format!("/accounts/password/reset/confirm/{uid}/{token}/"),
        None,
    );
    r.expect_status(302);
    let location = r.header("location").expect("location");
    assert_eq!(
        location,
        format!("/accounts/password/reset/confirm/{uid}/set-password/")
    );
    let (kept, line) = set_cookie(&r, "gatehouse_reset").expect("the token put aside");
    assert_eq!(kept, token);
    assert!(
        line.to_lowercase().contains("httponly") && line.to_lowercase().contains("max-age=900"),
        "{line}"
    );
    // Without it, the page says the link is invalid; with it, the form; then the password.
    g.http().get(&location, None).expect_status(400);
    let cookie = format!("gatehouse_reset={kept}");
    let form = g.http().send(
        g.http()
            .request("GET", &location)
            .header("Cookie", cookie.clone()),
    );
    form.expect_status(200);
    assert!(form.text.contains("new_password"), "{}", form.text);
    let r = post_form(
        &g,
        &location,
        &[
            ("new_password", "Brand-New-Pass-1"),
            ("re_new_password", "Brand-New-Pass-1"),
        ],
        &cookie,
    );
    r.expect_status(200);
    assert!(
        set_cookie(&r, "gatehouse_reset").is_some_and(|(v, _)| v.is_empty()),
        "cleared"
    );
    g.http().login("quin", "Brand-New-Pass-1");
    // Used once: again is the invalid-link page.
    post_form(
        &g,
        &location,
        &[
            ("new_password", "Other-New-Pass-2"),
            ("re_new_password", "Other-New-Pass-2"),
        ],
        &cookie,
    )
    .expect_status(400);
    let log = g.wait_for_log("password/reset/confirm/...");
    let mac = token.split_once('-').map(|(_, m)| m).unwrap_or(&token);
    assert!(
        !log.contains(&token) && !log.contains(mac),
        "the token is in the log:\n{log}"
    );
}

#[test]
fn a_session_that_changes_its_password_lives_on_and_a_new_sign_in_ends_the_old_one() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("rui");
    let (session, csrf) = session_of(&g, "rui");
    let (_, other_access) = {
        let (a, r) = g.http().login("rui", PASSWORD);
        (r, a)
    };
    let own = g.http().url("").trim_end_matches('/').to_string();
    let r = g.http().send(
        g.http()
            .request("PUT", "/api/auth/profile/password/")
            .header(
                "Cookie",
                format!("{}; csrftoken={csrf}", cookie_header(&session)),
            )
            .header("X-CSRFToken", csrf.as_str())
            .header("Origin", own.as_str())
            .json(&json!({"old_password": PASSWORD, "new_password": "Fresh-Pass-77"})),
    );
    r.expect_status(200);
    let (renewed, _) = set_cookie(&r, COOKIE).expect("a new session for this browser");
    assert_ne!(renewed, session);
    get_with_cookie(&g, "/api-like/x", &cookie_header(&session), None).expect_status(401);
    get_with_cookie(&g, "/api-like/x", &cookie_header(&renewed), None).expect_status(200);
    g.http()
        .get("/api-like/x", Some(&other_access))
        .expect_status(401);
    // Signing in again from the same browser ends the session it held.
    let r = g.http().send(
        g.http()
            .request("POST", "/api/auth/session/")
            .header(
                "Cookie",
                format!("{}; csrftoken={csrf}", cookie_header(&renewed)),
            )
            .header("X-CSRFToken", csrf.as_str())
            .header("Origin", own.as_str())
            .json(&json!({"username": "rui", "password": "Fresh-Pass-77"})),
    );
    r.expect_status(200);
    let (third, _) = set_cookie(&r, COOKIE).expect("cookie");
    get_with_cookie(&g, "/api-like/x", &cookie_header(&renewed), None).expect_status(401);
    get_with_cookie(&g, "/api-like/x", &cookie_header(&third), None).expect_status(200);
}

#[test]
fn an_operator_brands_the_pages_without_rebuilding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let css = dir.path().join("brand.css");
    std::fs::write(&css, "body { --accent: #7a1f5c; }\n").expect("write css");
    let path = css.display().to_string();
    let g = Gatehouse::new()
        .with_config(move |c| {
            c.web.brand_name = "Acme <Sign-in>".into();
            c.web.css_file = path;
        })
        .start();
    let page = g.http().get("/accounts/login/", None);
    page.expect_status(200);
    assert!(
        page.text.contains("Acme &#60;Sign-in&#62;"),
        "the brand, escaped: {}",
        page.text
    );
    assert!(
        page.text.contains("/accounts/static/gatehouse.css"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("/accounts/static/custom.css"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script"), "no script on a page");
    let own = g.http().get("/accounts/static/custom.css", None);
    own.expect_status(200);
    assert_eq!(own.text, "body { --accent: #7a1f5c; }\n");
    assert_eq!(
        own.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    let built_in = g.http().get("/accounts/static/gatehouse.css", None);
    built_in.expect_status(200);
    assert!(
        built_in.text.len() < 12 * 1024,
        "one small stylesheet, for the pages and the console"
    );
    // Without a css_file there is no custom stylesheet to fetch.
    let plain = Gatehouse::new().start();
    plain
        .http()
        .get("/accounts/static/custom.css", None)
        .expect_status(404);
    assert!(!plain
        .http()
        .get("/accounts/login/", None)
        .text
        .contains("custom.css"));
}
