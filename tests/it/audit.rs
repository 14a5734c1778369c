// The audit log (SPEC §16), end to end: every action the API, the pages and the command line
// take is an event naming who acted, on whom, from where and in which request, read back from
// the JSON-lines sink (and, once the process is stopped, from the store itself); a kill -9 in
// a burst of password changes loses no acknowledged event and invents none; two PostgreSQL
// replicas share one trail and each writes only its own lines; a sign-in flood is bounded per
// address; and no password, token, link or cookie ever reaches the trail.
use crate::common;

use common::paths::*;
use common::smtp::{link_parts, metric, RESET_LINK, VERIFY_LINK};
use common::*;
use gatehouse::config::{Config, ConsoleFormat};
use gatehouse::store::{Action, Event, EventFilter, SledStore, UserStore};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the harness's client connects from (no trusted proxies are configured).
const LOCAL: &str = "127.0.0.1";
const SESSION_COOKIE: &str = "__Host-gatehouse_session";
/// The sink file's name, beside the instance's data directory.
const SINK: &str = "audit.jsonl";

// ---------------------------------------------------------------------------------------------
// Local helpers: an audited gatehouse, requests with a request id, the sink's events.

/// `c` writes its audit lines to a file beside its data directory, and prints mails as JSON
/// lines on stdout (the console backend), where the link tokens are read from.
fn audited(c: &mut Config) {
    c.audit.sink = c.server.data_dir.with_file_name(SINK).display().to_string();
    c.email.console_format = ConsoleFormat::Json;
}

/// The events of a sink file so far, in file order.
fn lines_of(path: &Path) -> Vec<Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => panic!("reading the audit sink {}: {e}", path.display()),
    };
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a sink line that is not JSON ({e}): {l:?}"))
        })
        .collect()
}

fn sink_events(g: &Gatehouse) -> Vec<Value> {
    lines_of(Path::new(&g.config.audit.sink))
}

/// Every sink event of request `rid` (the sink is written before the answer leaves).
fn events_of(g: &Gatehouse, rid: &str) -> Vec<Value> {
    sink_events(g)
        .into_iter()
        .filter(|e| e["request_id"] == json!(rid))
        .collect()
}

/// The one sink event of request `rid`.
#[track_caller]
fn the_event(g: &Gatehouse, rid: &str) -> Value {
    let found = events_of(g, rid);
    assert_eq!(
        found.len(),
        1,
        "exactly one event of request {rid}, found {found:#?}\nthe whole sink: {:#?}",
        sink_events(g)
    );
    found.into_iter().next().expect("one event")
}

/// Asserts the fields every event of a request carries: the action, the actor (`None`:
/// nobody signed in), the target, the client address and the request id.
#[track_caller]
fn assert_event(
    e: &Value,
    action: &str,
    actor: Option<(u64, &str)>,
    target: Option<u64>,
    rid: &str,
) {
    let (actor_id, actor_username) = match actor {
        Some((id, name)) => (json!(id), json!(name)),
        None => (Value::Null, json!("")),
    };
    let got = json!({
        "action": e["action"], "actor_id": e["actor_id"], "actor_username": e["actor_username"],
        "target_id": e["target_id"], "ip": e["ip"], "request_id": e["request_id"],
    });
    let want = json!({
        "action": action, "actor_id": actor_id, "actor_username": actor_username,
        "target_id": target, "ip": LOCAL, "request_id": rid,
    });
    assert_eq!(got, want, "the event: {e:#}");
    assert!(
        e["id"].as_u64().is_some_and(|id| id > 0),
        "a stored event has an id: {e}"
    );
    assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
}

/// `method path` with a JSON body, a bearer token and `X-Request-Id: rid`.
fn call(
    g: &Gatehouse,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
    rid: &str,
) -> Resp {
    let mut rb = g
        .http()
        .request(method, path)
        .header("X-Request-Id", rid)
        .header("User-Agent", "audit-test/1.0");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    g.http().send(rb)
}

/// The value of cookie `name` set by `r`.
fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    crate::web_sessions::set_cookie(r, name).map(|(v, _)| v)
}

/// A session sign-in through the JSON endpoint: (session cookie, CSRF cookie).
fn session_sign_in(g: &Gatehouse, username: &str, password: &str, rid: &str) -> (String, String) {
    let r = call(
        g,
        "POST",
        "/api/auth/session/",
        Some(json!({"username": username, "password": password})),
        None,
        rid,
    );
    r.expect_status(200);
    (
        set_cookie(&r, SESSION_COOKIE).expect("a session cookie"),
        set_cookie(&r, "csrftoken").expect("a CSRF cookie"),
    )
}

/// A session-authenticated API request as a browser script sends it: the session and CSRF
/// cookies, the page's origin, and the CSRF header unless `csrf_header` is false.
fn session_call(
    g: &Gatehouse,
    method: &str,
    path: &str,
    body: Option<Value>,
    (session, csrf): (&str, &str),
    csrf_header: bool,
    rid: &str,
) -> Resp {
    let own = g.http().url("").trim_end_matches('/').to_string();
    let mut rb = g
        .http()
        .request(method, path)
        .header("X-Request-Id", rid)
        .header(
            "Cookie",
            format!("{SESSION_COOKIE}={session}; csrftoken={csrf}"),
        )
        .header("Origin", own);
    if csrf_header {
        rb = rb.header("X-CSRFToken", csrf);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    g.http().send(rb)
}

/// A page's CSRF cookie and form token (from the sign-in page).
fn page_csrf(g: &Gatehouse) -> (String, String) {
    let r = g.http().get("/accounts/login/", None);
    r.expect_status(200);
    let cookie = set_cookie(&r, "csrftoken").expect("the page's CSRF cookie");
    let token = r
        .text
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's CSRF token")
        .to_string();
    (cookie, token)
}

/// POSTs a form to page `path` as a browser does (the CSRF cookie and field unless
/// `with_token` is false, its own Origin), with `cookies` besides and `X-Request-Id: rid`.
fn post_page(
    g: &Gatehouse,
    path: &str,
    fields: &[(&str, &str)],
    cookies: &str,
    with_token: bool,
    rid: &str,
) -> Resp {
    let (csrf_cookie, token) = page_csrf(g);
    let mut body = form_urlencoded::Serializer::new(String::new());
    if with_token {
        body.append_pair("csrfmiddlewaretoken", &token);
    }
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let cookie = match cookies {
        "" => format!("csrftoken={csrf_cookie}"),
        more => format!("csrftoken={csrf_cookie}; {more}"),
    };
    g.http().send(
        g.http()
            .request("POST", path)
            .header("X-Request-Id", rid)
            .header("Cookie", cookie)
            .header("Origin", g.http().url("").trim_end_matches('/'))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.finish()),
    )
}

/// The mails printed so far (console backend, JSON format) to `to`, oldest first.
fn mails_to(g: &Gatehouse, to: &str) -> Vec<Value> {
    g.log()
        .lines()
        .filter(|l| l.starts_with("{\"mail\":"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|m| m["mail"].clone())
        .filter(|m| m["to"] == json!(to))
        .collect()
}

/// `(uid, token)` of the newest mail to `to` with `subject`, waiting for it.
#[track_caller]
fn link_in_mail(g: &Gatehouse, to: &str, subject: &str, prefix: &str) -> (String, String) {
    let mail = eventually(&format!("a {subject:?} mail to {to}"), || {
        mails_to(g, to)
            .into_iter()
            .rev()
            .find(|m| m["subject"] == json!(subject))
    });
    link_parts(&mail, prefix)
}

fn login_tokens(g: &Gatehouse, username: &str, password: &str, rid: &str) -> (String, String) {
    let r = call(
        g,
        "POST",
        TOKEN,
        Some(json!({"username": username, "password": password})),
        None,
        rid,
    );
    r.expect_status(200);
    r.tokens()
}

fn register(g: &Gatehouse, username: &str, rid: &str) -> u64 {
    let r = call(
        g,
        "POST",
        REGISTER,
        Some(
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        ),
        None,
        rid,
    );
    r.expect_status(201);
    id_of(&r.json)
}

/// The store of a stopped sled instance.
fn stopped_store(g: &Gatehouse) -> SledStore {
    SledStore::open(&g.data_dir.join("db"), 8 << 20).expect("open the stopped sled store")
}

/// Every event a store holds, oldest first.
fn all_events(store: &dyn UserStore) -> Vec<Event> {
    let mut events =
        block(store.list_events(&EventFilter::default(), None, 100_000)).expect("list the events");
    events.reverse();
    events
}

// ---------------------------------------------------------------------------------------------
// 1. Every action, through the API, the pages and the command line.

#[test]
fn every_api_action_is_an_event_naming_who_whom_where_and_which_request() {
    let g = Gatehouse::new()
        .with_config(|c| {
            audited(c);
            c.jwt.rotate_refresh_tokens = true;
        })
        .superuser("root", "root@example.com", PASSWORD)
        .start();

    // createsuperuser --noinput, before the server started: the operator's event.
    let first = sink_events(&g);
    let made = first
        .iter()
        .find(|e| e["action"] == json!("user.registered"))
        .unwrap_or_else(|| panic!("createsuperuser's user.registered in the sink: {first:#?}"));
    let root = made["target_id"].as_u64().expect("a target id");
    assert_eq!(
        (
            &made["actor_id"],
            &made["actor_username"],
            &made["ip"],
            &made["request_id"]
        ),
        (&Value::Null, &json!("(system)"), &Value::Null, &Value::Null),
        "{made:#}"
    );
    assert_eq!(
        made["details"],
        json!({"username": "root", "email": "root@example.com", "is_staff": true})
    );

    // Registration.
    let ann = register(&g, "ann", "reg-ann");
    let e = the_event(&g, "reg-ann");
    assert_event(&e, "user.registered", None, Some(ann), "reg-ann");
    assert_eq!(
        e["details"],
        json!({"username": "ann", "email": "ann@example.com", "is_staff": false})
    );
    assert_eq!(e["user_agent"], json!("audit-test/1.0"));

    // Sign-ins: a token pair, a session; refused ones with the reason no answer tells.
    let (_, refresh) = login_tokens(&g, "ann", PASSWORD, "login-token");
    let e = the_event(&g, "login-token");
    assert_event(
        &e,
        "login.succeeded",
        Some((ann, "ann")),
        Some(ann),
        "login-token",
    );
    assert_eq!(e["details"], json!({"via": "token", "mfa": false}));
    call(
        &g,
        "POST",
        TOKEN,
        Some(json!({"username": "ann", "password": "Not-Her-Pass-1"})),
        None,
        "fail-pw",
    )
    .expect_status(401);
    let e = the_event(&g, "fail-pw");
    assert_event(&e, "login.failed", None, Some(ann), "fail-pw");
    assert_eq!(
        e["details"],
        json!({"reason": "bad_credentials", "username": "ann"})
    );
    call(
        &g,
        "POST",
        TOKEN,
        Some(json!({"username": "nobody", "password": PASSWORD})),
        None,
        "fail-who",
    )
    .expect_status(401);
    let e = the_event(&g, "fail-who");
    assert_event(&e, "login.failed", None, None, "fail-who");
    // A name that matches nobody is not recorded: it may be a password in the wrong field.
    assert_eq!(e["details"], json!({"reason": "bad_credentials"}));
    let session = session_sign_in(&g, "ann", PASSWORD, "login-session");
    let e = the_event(&g, "login-session");
    assert_event(
        &e,
        "login.succeeded",
        Some((ann, "ann")),
        Some(ann),
        "login-session",
    );
    assert_eq!(e["details"], json!({"via": "session", "mfa": false}));

    // Logouts: the token's own, and the session's sign-out.
    call(
        &g,
        "POST",
        LOGOUT,
        Some(json!({"refresh": refresh})),
        None,
        "logout-token",
    )
    .expect_status(200);
    let e = the_event(&g, "logout-token");
    assert_event(&e, "logout", Some((ann, "ann")), Some(ann), "logout-token");
    assert_eq!(e["details"], json!({"via": "token", "count": 1}));
    session_call(
        &g,
        "DELETE",
        "/api/auth/session/",
        None,
        (&session.0, &session.1),
        true,
        "logout-session",
    )
    .expect_status(204);
    let e = the_event(&g, "logout-session");
    assert_event(
        &e,
        "logout",
        Some((ann, "ann")),
        Some(ann),
        "logout-session",
    );
    assert_eq!(e["details"], json!({"via": "session", "count": 1}));

    // A rotated-out refresh token replayed (a grandparent: outside any grace).
    let (_, r0) = login_tokens(&g, "ann", PASSWORD, "login-rotor");
    let step = |t: &str| {
        let r = g.refresh(t);
        r.expect_status(200);
        r.field("refresh")
    };
    let r1 = step(&r0);
    step(&r1);
    call(
        &g,
        "POST",
        REFRESH,
        Some(json!({"refresh": r0})),
        None,
        "reuse",
    )
    .expect(401, bad_refresh("Token is blacklisted"));
    let e = the_event(&g, "reuse");
    assert_event(
        &e,
        "token.reuse_detected",
        Some((ann, "ann")),
        Some(ann),
        "reuse",
    );

    // The password, by the user (the first sign-in's tokens ended with its logout).
    let (access, _) = login_tokens(&g, "ann", PASSWORD, "login-again");
    let r = call(
        &g,
        "PUT",
        PASSWORD_CHANGE,
        Some(json!({"old_password": PASSWORD, "new_password": "Second-Pass-42"})),
        Some(&access),
        "pw-change",
    );
    r.expect_status(200);
    let access = r.field("access");
    let e = the_event(&g, "pw-change");
    assert_event(
        &e,
        "password.changed",
        Some((ann, "ann")),
        Some(ann),
        "pw-change",
    );

    // The address: before and after.
    call(
        &g,
        "PATCH",
        PROFILE,
        Some(json!({"email": "ann2@example.com"})),
        Some(&access),
        "email",
    )
    .expect_status(200);
    let e = the_event(&g, "email");
    assert_event(&e, "email.changed", Some((ann, "ann")), Some(ann), "email");
    assert_eq!(
        e["details"],
        json!({"before": {"email": "ann@example.com"}, "after": {"email": "ann2@example.com"}})
    );

    // A reset asked for a known address; one for an unknown address is no event.
    call(
        &g,
        "POST",
        PASSWORD_RESET,
        Some(json!({"email": "ann2@example.com"})),
        None,
        "reset-ask",
    )
    .expect_status(204);
    let e = the_event(&g, "reset-ask");
    assert_event(&e, "password.reset_requested", None, Some(ann), "reset-ask");
    assert_eq!(e["details"], json!({"mailed": true}));
    call(
        &g,
        "POST",
        PASSWORD_RESET,
        Some(json!({"email": "nobody@example.com"})),
        None,
        "reset-unknown",
    )
    .expect_status(204);
    assert_eq!(events_of(&g, "reset-unknown"), Vec::<Value>::new());
    let (uid, token) = link_in_mail(&g, "ann2@example.com", "Password Reset", RESET_LINK);
    call(
        &g,
        "POST",
        PASSWORD_RESET_CONFIRM,
        Some(json!({"uid": uid, "token": token, "new_password": "Third-Pass-43"})),
        None,
        "reset-done",
    )
    .expect_status(204);
    let e = the_event(&g, "reset-done");
    assert_event(
        &e,
        "password.reset_completed",
        None,
        Some(ann),
        "reset-done",
    );

    // A verification link.
    let bob = register(&g, "bob", "reg-bob");
    call(
        &g,
        "POST",
        EMAIL_VERIFY_RESEND,
        Some(json!({"email": "bob@example.com"})),
        None,
        "verify-ask",
    )
    .expect_status(204);
    assert_eq!(
        events_of(&g, "verify-ask"),
        Vec::<Value>::new(),
        "asking for a link changes nothing"
    );
    let (uid, token) = link_in_mail(
        &g,
        "bob@example.com",
        "Verify your email address",
        VERIFY_LINK,
    );
    call(
        &g,
        "POST",
        EMAIL_VERIFY,
        Some(json!({"uid": uid, "token": token})),
        None,
        "verify",
    )
    .expect_status(204);
    let e = the_event(&g, "verify");
    assert_event(&e, "email.verified", None, Some(bob), "verify");
    assert_eq!(e["details"], json!({"email": "bob@example.com"}));

    // Staff changes: exactly the changed fields, before and after.
    let (staff, _) = login_tokens(&g, "root", PASSWORD, "login-root");
    call(
        &g,
        "PATCH",
        &admin_user(bob),
        Some(json!({"is_staff": true, "groups": ["ops"], "first_name": "ignored-or-not"})),
        Some(&staff),
        "admin-change",
    )
    .expect_status(200);
    let e = the_event(&g, "admin-change");
    assert_event(
        &e,
        "admin.user_changed",
        Some((root, "root")),
        Some(bob),
        "admin-change",
    );
    assert_eq!(
        e["details"],
        json!({"before": {"is_staff": false, "groups": [], "first_name": ""},
               "after": {"is_staff": true, "groups": ["ops"], "first_name": "ignored-or-not"}})
    );

    // Deleted by the user, refused as inactive, restored by staff.
    let (bob_access, _) = login_tokens(&g, "bob", PASSWORD, "login-bob");
    call(
        &g,
        "DELETE",
        PROFILE_DELETE,
        None,
        Some(&bob_access),
        "delete",
    )
    .expect_status(200);
    let e = the_event(&g, "delete");
    assert_event(&e, "user.deleted", Some((bob, "bob")), Some(bob), "delete");
    call(
        &g,
        "POST",
        TOKEN,
        Some(json!({"username": "bob", "password": PASSWORD})),
        None,
        "fail-inactive",
    )
    .expect_status(401);
    let e = the_event(&g, "fail-inactive");
    assert_event(&e, "login.failed", None, Some(bob), "fail-inactive");
    assert_eq!(
        e["details"],
        json!({"reason": "inactive", "username": "bob"})
    );
    call(
        &g,
        "PUT",
        &admin_restore(bob),
        None,
        Some(&staff),
        "restore",
    )
    .expect_status(200);
    let e = the_event(&g, "restore");
    assert_event(
        &e,
        "user.restored",
        Some((root, "root")),
        Some(bob),
        "restore",
    );

    // Devices: one ended by id, then every other one (a session and a refresh family).
    let cy = register(&g, "cy", "reg-cy");
    let (cy_access, _) = login_tokens(&g, "cy", PASSWORD, "login-cy-1");
    login_tokens(&g, "cy", PASSWORD, "login-cy-2");
    login_tokens(&g, "cy", PASSWORD, "login-cy-3");
    session_sign_in(&g, "cy", PASSWORD, "login-cy-session");
    let devices = g.get("/api/auth/sessions/", Some(&cy_access));
    devices.expect_status(200);
    let rows = devices.json.as_array().expect("a list of devices").clone();
    assert_eq!(
        rows.len(),
        4,
        "three families and a session: {}",
        devices.text
    );
    let current_kind = rows
        .iter()
        .find(|d| d["current"] == json!(true))
        .unwrap_or_else(|| panic!("the requesting device is marked current: {}", devices.text))
        ["kind"]
        .clone();
    let family = rows
        .iter()
        .find(|d| d["current"] == json!(false) && d["kind"] == current_kind)
        .unwrap_or_else(|| panic!("another refresh family: {}", devices.text))["id"]
        .as_str()
        .expect("a device id")
        .to_string();
    call(
        &g,
        "DELETE",
        &format!("/api/auth/sessions/{family}/"),
        None,
        Some(&cy_access),
        "end-one",
    )
    .expect_status(204);
    let e = the_event(&g, "end-one");
    assert_event(&e, "session.revoked", Some((cy, "cy")), Some(cy), "end-one");
    assert_eq!(e["details"], json!({"via": "token", "count": 1}));
    let r = call(
        &g,
        "POST",
        "/api/auth/sessions/revoke-others/",
        None,
        Some(&cy_access),
        "end-others",
    );
    r.expect(200, json!({"ended": 2}));
    let mut ended = events_of(&g, "end-others");
    ended.sort_by_key(|e| e["details"]["via"].as_str().map(str::to_string));
    assert_eq!(ended.len(), 2, "a session and a family ended: {ended:#?}");
    for e in &ended {
        assert_event(
            e,
            "session.revoked",
            Some((cy, "cy")),
            Some(cy),
            "end-others",
        );
    }
    assert_eq!(
        (&ended[0]["details"], &ended[1]["details"]),
        (
            &json!({"via": "session", "count": 1}),
            &json!({"via": "token", "count": 1})
        )
    );

    // A session-cookie write on the API without Django's token.
    let dee = register(&g, "dee", "reg-dee");
    let dee_session = session_sign_in(&g, "dee", PASSWORD, "login-dee");
    session_call(
        &g,
        "PATCH",
        PROFILE,
        Some(json!({"first_name": "Dee"})),
        (&dee_session.0, &dee_session.1),
        false,
        "csrf-api",
    )
    .expect(403, json!({"detail": "CSRF Failed: CSRF token missing."}));
    let e = the_event(&g, "csrf-api");
    assert_event(
        &e,
        "csrf.refused",
        Some((dee, "dee")),
        Some(dee),
        "csrf-api",
    );
    assert_eq!(
        e["details"],
        json!({"reason": "CSRF token missing.", "path": "/api/auth/profile/"})
    );

    // The metric counts what the process committed.
    let logins = sink_events(&g)
        .iter()
        .filter(|e| e["action"] == json!("login.succeeded"))
        .count();
    assert!(logins >= 10, "{logins} sign-ins");
    assert_eq!(
        metric(
            &g,
            "gatehouse_audit_events_total",
            r#"action="login.succeeded""#
        ),
        logins as f64,
        "gatehouse_audit_events_total{{action=\"login.succeeded\"}} against the sink's lines"
    );

    // The store holds exactly what the sink wrote.
    let mut g = g;
    g.kill();
    let stored: Vec<Value> = all_events(&stopped_store(&g))
        .iter()
        .map(Event::to_json)
        .collect();
    assert_eq!(
        stored,
        sink_events(&g),
        "the store's events and the sink's lines"
    );
}

#[test]
fn the_pages_record_sign_in_sign_up_sign_out_password_and_reset_and_their_csrf_refusals() {
    let g = Gatehouse::new()
        .with_config(|c| {
            audited(c);
            c.web.enabled = true;
        })
        .start();

    // Sign-up on the page (it signs in, too).
    let r = post_page(
        &g,
        "/accounts/register/",
        &[
            ("username", "pia"),
            ("email", "pia@example.com"),
            ("password", "Sunny-Day-42"),
            ("re_password", "Sunny-Day-42"),
        ],
        "",
        true,
        "page-register",
    );
    r.expect_status(303);
    let events = events_of(&g, "page-register");
    let registered = events
        .iter()
        .find(|e| e["action"] == json!("user.registered"))
        .unwrap_or_else(|| panic!("user.registered of the sign-up: {events:#?}"));
    let pia = registered["target_id"].as_u64().expect("a target id");
    assert_event(
        registered,
        "user.registered",
        None,
        Some(pia),
        "page-register",
    );
    assert_eq!(
        registered["details"],
        json!({"username": "pia", "email": "pia@example.com", "is_staff": false})
    );

    // Sign-in, refused and accepted.
    let login = |password: &str, rid: &str| {
        post_page(
            &g,
            "/accounts/login/",
            &[
                ("username", "pia"),
                ("password", password),
                ("next", "/accounts/"),
            ],
            "",
            true,
            rid,
        )
    };
    login("Wrong-Day-41", "page-fail").expect_status(200);
    let e = the_event(&g, "page-fail");
    assert_event(&e, "login.failed", None, Some(pia), "page-fail");
    assert_eq!(
        e["details"],
        json!({"reason": "bad_credentials", "username": "pia"})
    );
    let r = login("Sunny-Day-42", "page-login");
    r.expect_status(302);
    let session = set_cookie(&r, SESSION_COOKIE).expect("a session");
    let e = the_event(&g, "page-login");
    assert_event(
        &e,
        "login.succeeded",
        Some((pia, "pia")),
        Some(pia),
        "page-login",
    );
    assert_eq!(e["details"], json!({"via": "session", "mfa": false}));

    // The password, on the account page.
    let r = post_page(
        &g,
        "/accounts/",
        &[
            ("form", "password"),
            ("old_password", "Sunny-Day-42"),
            ("new_password", "Rainy-Day-43"),
            ("re_new_password", "Rainy-Day-43"),
        ],
        &format!("{SESSION_COOKIE}={session}"),
        true,
        "page-password",
    );
    r.expect_status(303);
    let session = set_cookie(&r, SESSION_COOKIE).expect("the renewed session");
    let e = the_event(&g, "page-password");
    assert_event(
        &e,
        "password.changed",
        Some((pia, "pia")),
        Some(pia),
        "page-password",
    );

    // Sign-out.
    let r = post_page(
        &g,
        "/accounts/logout/",
        &[],
        &format!("{SESSION_COOKIE}={session}"),
        true,
        "page-logout",
    );
    assert!(r.status < 400, "sign-out: {} {}", r.status, r.text);
    let e = the_event(&g, "page-logout");
    assert_event(&e, "logout", Some((pia, "pia")), Some(pia), "page-logout");
    assert_eq!(e["details"], json!({"via": "session", "count": 1}));

    // A reset through the pages.
    post_page(
        &g,
        "/accounts/password/reset/",
        &[("email", "pia@example.com")],
        "",
        true,
        "page-reset",
    )
    .expect_status(200);
    let e = the_event(&g, "page-reset");
    assert_event(
        &e,
        "password.reset_requested",
        None,
        Some(pia),
        "page-reset",
    );
    let (uid, token) = link_in_mail(&g, "pia@example.com", "Password Reset", RESET_LINK);
    let r = g.http().get(
        &format!("/accounts/password/reset/confirm/{uid}/{token}/"),
        None,
    );
    r.expect_status(302);
    let location = r.header("location").expect("the set-password page");
    let kept = set_cookie(&r, "gatehouse_reset").expect("the token put aside");
    post_page(
        &g,
        &location,
        &[
            ("new_password", "Windy-Day-44"),
            ("re_new_password", "Windy-Day-44"),
        ],
        &format!("gatehouse_reset={kept}"),
        true,
        "page-reset-done",
    )
    .expect_status(200);
    let e = the_event(&g, "page-reset-done");
    assert_event(
        &e,
        "password.reset_completed",
        None,
        Some(pia),
        "page-reset-done",
    );

    // A form posted without its CSRF token.
    let r = post_page(
        &g,
        "/accounts/login/",
        &[("username", "pia"), ("password", "Windy-Day-44")],
        "",
        false,
        "page-csrf",
    );
    r.expect_status(403);
    let e = the_event(&g, "page-csrf");
    assert_event(&e, "csrf.refused", None, None, "page-csrf");
    assert_eq!(
        e["details"],
        json!({"reason": "CSRF token missing.", "path": "/accounts/login/"})
    );
}

#[test]
fn unverified_sign_ins_are_refused_as_unverified() {
    let g = Gatehouse::new()
        .with_config(|c| {
            audited(c);
            c.email.require_verified_email = true;
        })
        .start();
    let uma = register(&g, "uma", "reg-uma");
    call(
        &g,
        "POST",
        TOKEN,
        Some(json!({"username": "uma", "password": PASSWORD})),
        None,
        "fail-unverified",
    )
    .expect(401, wrong_login());
    let e = the_event(&g, "fail-unverified");
    assert_event(&e, "login.failed", None, Some(uma), "fail-unverified");
    assert_eq!(
        e["details"],
        json!({"reason": "unverified", "username": "uma"})
    );
}

/// Django's `PBKDF2PasswordHasher.encode` (as tests/it/import.rs writes it out).
fn django_pbkdf2(password: &str, salt: &str) -> String {
    use base64::Engine;
    let iterations = 1200;
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    format!(
        "pbkdf2_sha256${iterations}${salt}${}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[test]
fn an_import_is_one_event_by_the_operator_with_its_counts_only() {
    let mut g = Gatehouse::new().with_config(audited).start();
    g.kill();
    let user = |pk: u64, name: &str| {
        json!({"model": "accounts.user", "pk": pk, "fields": {
            "password": django_pbkdf2("Imported-Pass-77", &format!("salt{pk}")),
            "last_login": null, "is_superuser": false, "username": name, "first_name": "",
            "last_name": "", "email": format!("{name}@example.com"), "is_staff": false,
            "is_active": true, "date_joined": "2024-01-31T12:00:00Z", "is_deleted": false,
            "groups": [], "user_permissions": []}})
    };
    let dump = g.dir().join("dump.json");
    std::fs::write(&dump, json!([user(4, "ivy"), user(5, "jon")]).to_string())
        .expect("write the dump");
    g.cli(&["import", dump.to_str().expect("a UTF-8 path")], &[])
        .assert_ok("import");
    let events = sink_events(&g);
    assert_eq!(events.len(), 1, "one event for the run: {events:#?}");
    let e = &events[0];
    assert_eq!(
        json!({"action": e["action"], "actor_id": e["actor_id"], "actor_username": e["actor_username"],
               "target_id": e["target_id"], "ip": e["ip"], "request_id": e["request_id"], "details": e["details"]}),
        json!({"action": "users.imported", "actor_id": null, "actor_username": "(system)",
               "target_id": null, "ip": null, "request_id": null,
               "details": {"file": "dump.json", "imported": 2, "skipped_existing": 0, "conflicts": 0, "warnings": 0}})
    );
    let stored: Vec<Value> = all_events(&stopped_store(&g))
        .iter()
        .map(Event::to_json)
        .collect();
    assert_eq!(stored, events, "the store holds the sink's event");
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 in a burst of password changes.

#[test]
fn kill_9_in_a_burst_of_password_changes_loses_no_acknowledged_event_and_invents_none() {
    const WRITERS: usize = 4;
    let mut g = Gatehouse::new().with_config(audited).start();
    // Each writer: its user, the token version it starts at, its first access token.
    let users: Vec<(u64, u64, String)> = (0..WRITERS)
        .map(|t| {
            let name = format!("burst{t}");
            let id = register(&g, &name, &format!("reg-{name}"));
            let (access, _) = g.login(&name, PASSWORD);
            let ver = claims(&access)["ver"].as_u64().expect("a ver claim");
            (id, ver, access)
        })
        .collect();
    let started = Instant::now();
    let handles: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(t, (_, _, access))| {
            let http = g.http();
            let mut access = access.clone();
            std::thread::spawn(move || {
                // (acknowledged request ids, the one sent without an answer)
                let mut acked: Vec<String> = Vec::new();
                let mut old = PASSWORD.to_string();
                for n in 0.. {
                    let rid = format!("burst-{t}-{n}");
                    let new = format!("Burst-{t}-{n}-Kq");
                    let rb = http
                        .request("PUT", PASSWORD_CHANGE)
                        .header("X-Request-Id", rid.as_str())
                        .bearer_auth(&access)
                        .json(&json!({"old_password": old, "new_password": new}));
                    match http.try_send(rb) {
                        Ok(r) if r.status == 200 => {
                            access = r.field("access");
                            old = new;
                            acked.push(rid);
                        }
                        Ok(r) => panic!("{rid}: {} {}", r.status, r.text),
                        Err(_) => return (acked, Some(rid)),
                    }
                }
                (acked, None)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    g.kill();
    let outcomes: Vec<(Vec<String>, Option<String>)> = handles
        .into_iter()
        .map(|h| h.join().expect("a writer"))
        .collect();
    let burst = started.elapsed();

    let store = stopped_store(&g);
    let mut total_acked = 0;
    for (t, ((id, ver0, _), (acked, unanswered))) in users.iter().zip(&outcomes).enumerate() {
        let user = block(store.get_user(*id)).expect("read").expect("the user");
        let applied = user.token_version - ver0;
        let events = block(store.list_events(
            &EventFilter {
                target: Some(*id),
                action: Some(Action::PasswordChanged),
                ..EventFilter::default()
            },
            None,
            100_000,
        ))
        .expect("list the events");
        let rids: BTreeSet<String> = events
            .iter()
            .map(|e| e.request_id.clone().expect("a request id"))
            .collect();
        assert_eq!(
            rids.len(),
            events.len(),
            "writer {t}: an event twice: {events:?}"
        );
        assert_eq!(
            events.len() as u64,
            applied,
            "writer {t}: {} password.changed events, {applied} changes applied (token_version {} from {ver0})",
            events.len(),
            user.token_version
        );
        for rid in acked {
            assert!(
                rids.contains(rid),
                "writer {t}: {rid} was acknowledged, its event is missing"
            );
        }
        let allowed: BTreeSet<&String> = acked.iter().chain(unanswered.iter()).collect();
        for rid in &rids {
            assert!(
                allowed.contains(rid),
                "writer {t}: an event for {rid}, never sent or sent after the kill"
            );
        }
        total_acked += acked.len();
    }
    println!("kill -9 burst: {total_acked} acknowledged password changes in {burst:?} by {WRITERS} writers");
    assert!(
        total_acked >= WRITERS,
        "the burst ran: {total_acked} changes acknowledged"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Two PostgreSQL replicas: one trail, each sink its own lines.

#[test]
fn two_replicas_share_one_trail_and_each_sink_has_only_its_own_events() {
    let sinks = tempfile::tempdir().expect("tempdir");
    let made = std::sync::atomic::AtomicUsize::new(0);
    let (a, b) = postgres::replicas(|builder| {
        let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = sinks.path().join(format!("replica{n}.jsonl"));
        builder.with_config(move |c| {
            audited(c);
            c.audit.sink = path.display().to_string();
        })
    });
    let ids: Vec<u64> = ["ra", "rb"]
        .iter()
        .zip([&a, &b])
        .map(|(name, g)| register(g, name, &format!("{}-reg-{name}", tag(g, &a))))
        .collect();
    // Both at once, on both users.
    std::thread::scope(|s| {
        for g in [&a, &b] {
            let t = tag(g, &a);
            s.spawn(move || {
                for n in 0..15 {
                    let user = if n % 2 == 0 { "ra" } else { "rb" };
                    login_tokens(g, user, PASSWORD, &format!("{t}-login-{n}"));
                    call(
                        g,
                        "POST",
                        TOKEN,
                        Some(json!({"username": user, "password": "Wrong-Pass-0"})),
                        None,
                        &format!("{t}-fail-{n}"),
                    )
                    .expect_status(401);
                }
            });
        }
    });
    let (access, _) = login_tokens(&b, "ra", PASSWORD, "B-login-ra");
    call(
        &b,
        "PUT",
        PASSWORD_CHANGE,
        Some(json!({"old_password": PASSWORD, "new_password": "Replica-Pass-9"})),
        Some(&access),
        "B-pw",
    )
    .expect_status(200);
    let (root, _) = login_tokens(&a, "root", PASSWORD, "A-login-root");
    call(
        &a,
        "PATCH",
        &admin_user(ids[1]),
        Some(json!({"is_staff": true})),
        Some(&root),
        "A-admin",
    )
    .expect_status(200);

    let pg = gatehouse::store::PgStore::open(&a_url(&a), postgres::options(true))
        .expect("open the database");
    let newest_first =
        block(pg.list_events(&EventFilter::default(), None, 100_000)).expect("list the events");
    assert!(
        newest_first.windows(2).all(|w| w[0].id > w[1].id),
        "ids strictly decreasing, newest first, none twice: {:?}",
        newest_first.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    let stored: BTreeMap<u64, Value> = newest_first.iter().map(|e| (e.id, e.to_json())).collect();
    let (in_a, in_b) = (sink_events(&a), sink_events(&b));
    let mut from_sinks: BTreeMap<u64, Value> = BTreeMap::new();
    for (who, lines) in [("A", &in_a), ("B", &in_b)] {
        for e in lines {
            let id = e["id"].as_u64().expect("an id");
            assert!(
                from_sinks.insert(id, e.clone()).is_none(),
                "event {id} in two sinks (or twice): {e}"
            );
            if let Some(rid) = e["request_id"].as_str() {
                assert!(
                    rid.starts_with(&format!("{who}-")),
                    "{who}'s sink has another replica's event: {e}"
                );
            }
        }
    }
    assert_eq!(
        from_sinks, stored,
        "the sinks together hold the store's events, each once"
    );
    // 2 registrations, 30 sign-ins, 30 failures, a password change, a staff change on both,
    // besides root's creation and sign-in.
    for action in ["user.registered", "login.succeeded", "login.failed"] {
        for who in ["A", "B"] {
            let n = stored
                .values()
                .filter(|e| {
                    e["action"] == json!(action)
                        && e["request_id"].as_str().is_some_and(|r| r.starts_with(who))
                })
                .count();
            assert!(n >= 1, "{action} through {who}: none in {stored:#?}");
        }
    }
    assert_eq!(
        stored
            .values()
            .filter(|e| e["action"] == json!("login.failed"))
            .count(),
        30,
        "every failed sign-in once"
    );
}

/// "A" for replica `a`, "B" for the other.
fn tag(g: &Gatehouse, a: &Gatehouse) -> &'static str {
    if g.port == a.port {
        "A"
    } else {
        "B"
    }
}

/// The database URL a PostgreSQL instance serves from (its environment's).
fn a_url(g: &Gatehouse) -> String {
    let cmd = g.command();
    let url = cmd
        .get_envs()
        .find(|(k, _)| *k == gatehouse::config::env::STORE_URL_VAR)
        .and_then(|(_, v)| v)
        .expect("a PostgreSQL instance has its store URL in its environment");
    url.to_str().expect("a UTF-8 URL").to_string()
}

// ---------------------------------------------------------------------------------------------
// 4. A sign-in flood from one address.

#[test]
fn a_sign_in_flood_writes_at_most_the_bound_and_counts_the_rest() {
    const FLOOD: usize = 300;
    const BOUND: u32 = 10;
    let mut g = Gatehouse::new()
        .with_config(|c| {
            audited(c);
            c.audit.unaccompanied_per_minute = BOUND;
        })
        .start();
    g.register("flo");
    let started = Instant::now();
    let per_thread = FLOOD / 6;
    std::thread::scope(|s| {
        for t in 0..6 {
            let http = g.http();
            s.spawn(move || {
                for n in 0..per_thread {
                    let who = if n % 2 == 0 { "flo" } else { "nobody" };
                    let r = http.login_attempt(who, &format!("Wrong-{t}-{n}"));
                    assert_eq!(r.status, 401, "{}", r.text);
                }
            });
        }
    });
    let took = started.elapsed();
    let unwritten = metric(
        &g,
        "gatehouse_audit_events_unwritten_total",
        r#"action="login.failed""#,
    );
    let in_sink = sink_events(&g)
        .iter()
        .filter(|e| e["action"] == json!("login.failed"))
        .count();
    g.kill();
    let stored = all_events(&stopped_store(&g))
        .iter()
        .filter(|e| e.action == Action::LoginFailed)
        .count();
    println!("sign-in flood: {FLOOD} failures in {took:?}: {stored} written, {unwritten} counted");
    assert_eq!(stored, in_sink, "the sink wrote what the store holds");
    // The bound's window starts at the first admitted event: a flood within a minute gets
    // exactly the bound; one that rolls over into a second minute, at most twice it.
    let most = if took < Duration::from_secs(59) {
        BOUND
    } else {
        2 * BOUND
    } as usize;
    assert!(
        stored <= most,
        "{stored} login.failed events written, the bound is {most} ({took:?})"
    );
    assert!(stored >= 1, "the first failures are written");
    assert_eq!(
        unwritten as usize + stored,
        FLOOD,
        "gatehouse_audit_events_unwritten_total{{action=\"login.failed\"}} = {unwritten} counts the rest"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. No secret in the trail.

#[test]
fn no_password_token_link_or_cookie_reaches_the_trail() {
    let mut g = Gatehouse::new()
        .with_config(|c| {
            audited(c);
            c.web.enabled = true;
            c.jwt.rotate_refresh_tokens = true;
        })
        .start();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, value: &str| secrets.push((what.to_string(), value.to_string()));
    let first = "Zebra-Quartz-4417";
    let r = g.register_as("sec", "sec@example.com", first);
    r.expect_status(201);
    keep("the first password", first);
    // A wrong password, typed into both fields.
    let wrong = "Wrong-Secret-5521";
    g.login_attempt("sec", wrong).expect_status(401);
    keep("a wrong password", wrong);
    // The password typed into the username field: a name that matches nobody.
    g.login_attempt(first, wrong).expect_status(401);
    let (access, refresh) = g.login("sec", first);
    keep("an access token", &access);
    keep("a refresh token", &refresh);
    let r = g.refresh(&refresh);
    r.expect_status(200);
    let (access2, refresh2) = r.tokens();
    keep("a rotated access token", &access2);
    keep("a rotated refresh token", &refresh2);
    g.refresh(&refresh).expect_status(200); // within the grace: the current child again
    let (session, csrf) = session_sign_in(&g, "sec", first, "sec-session");
    keep("a session cookie", &session);
    keep("a CSRF cookie", &csrf);
    session_call(
        &g,
        "PATCH",
        PROFILE,
        Some(json!({"first_name": "S"})),
        (&session, &csrf),
        false,
        "sec-csrf",
    )
    .expect_status(403);
    let second = "Walrus-Nebula-9902";
    let r = session_call(
        &g,
        "PUT",
        PASSWORD_CHANGE,
        Some(json!({"old_password": first, "new_password": second})),
        (&session, &csrf),
        true,
        "sec-pw",
    );
    r.expect_status(200);
    keep("the second password", second);
    keep(
        "a renewed session cookie",
        &set_cookie(&r, SESSION_COOKIE).expect("a renewed session"),
    );
    let (access3, refresh3) = r.tokens();
    keep("the change's access token", &access3);
    keep("the change's refresh token", &refresh3);
    g.post(PASSWORD_RESET, json!({"email": "sec@example.com"}), None)
        .expect_status(204);
    let (uid, token) = link_in_mail(&g, "sec@example.com", "Password Reset", RESET_LINK);
    keep("a reset link's token", &token);
    keep(
        "a reset link's MAC",
        token.split_once('-').map_or(token.as_str(), |(_, m)| m),
    );
    let third = "Marmot-Glacier-3318";
    g.post(
        PASSWORD_RESET_CONFIRM,
        json!({"uid": uid, "token": token, "new_password": third}),
        None,
    )
    .expect_status(204);
    keep("the third password", third);
    let email = "sec2@example.com";
    let (a4, _) = g.login("sec", third);
    g.call("PATCH", PROFILE, Some(json!({"email": email})), Some(&a4))
        .expect_status(200);
    g.post(EMAIL_VERIFY_RESEND, json!({"email": email}), None)
        .expect_status(204);
    let (vuid, vtoken) = link_in_mail(&g, email, "Verify your email address", VERIFY_LINK);
    keep("a verification link's token", &vtoken);
    keep(
        "a verification link's MAC",
        vtoken.split_once('-').map_or(vtoken.as_str(), |(_, m)| m),
    );
    g.post(EMAIL_VERIFY, json!({"uid": vuid, "token": vtoken}), None)
        .expect_status(204);
    g.call("DELETE", PROFILE_DELETE, None, Some(&a4))
        .expect_status(200);

    let sink = std::fs::read_to_string(&g.config.audit.sink).expect("the sink");
    g.kill();
    let stored: Vec<String> = all_events(&stopped_store(&g))
        .iter()
        .map(|e| e.to_json().to_string())
        .collect();
    let actions: BTreeSet<String> = sink_events(&g)
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .collect();
    for want in [
        "login.failed",
        "password.changed",
        "password.reset_completed",
        "email.verified",
        "csrf.refused",
    ] {
        assert!(
            actions.contains(want),
            "the session recorded {want}: {actions:?}"
        );
    }
    let whole = stored.join("\n");
    for (what, value) in &secrets {
        assert!(
            !whole.contains(value.as_str()),
            "{what} ({value}) is in the store's audit trail:\n{whole}"
        );
        assert!(
            !sink.contains(value.as_str()),
            "{what} ({value}) is in the sink:\n{sink}"
        );
    }
}

/// A form posted to a mail link's page without its CSRF token is refused and recorded; the
/// event names the page, not the link (whose token is in the path).
#[test]
fn a_refused_form_on_a_link_page_records_the_page_not_the_link() {
    let g = Gatehouse::new()
        .with_config(|c| {
            audited(c);
            c.web.enabled = true;
        })
        .start();
    g.register("lin");
    g.post(PASSWORD_RESET, json!({"email": "lin@example.com"}), None)
        .expect_status(204);
    let (uid, token) = link_in_mail(&g, "lin@example.com", "Password Reset", RESET_LINK);
    g.post(
        EMAIL_VERIFY_RESEND,
        json!({"email": "lin@example.com"}),
        None,
    )
    .expect_status(204);
    let (vuid, vtoken) = link_in_mail(
        &g,
        "lin@example.com",
        "Verify your email address",
        VERIFY_LINK,
    );
    for (path, rid, secret, page) in [
        (
            format!("/accounts/password/reset/confirm/{uid}/{token}/"),
            "link-reset",
            &token,
            "/accounts/password/reset/confirm/...",
        ),
        (
            format!("/accounts/email/verify/{vuid}/{vtoken}/"),
            "link-verify",
            &vtoken,
            "/accounts/email/verify/...",
        ),
    ] {
        post_page(
            &g,
            &path,
            &[
                ("new_password", "Link-Pass-55"),
                ("re_new_password", "Link-Pass-55"),
            ],
            "",
            false,
            rid,
        )
        .expect_status(403);
        let e = the_event(&g, rid);
        assert_event(&e, "csrf.refused", None, None, rid);
        let recorded = e["details"]["path"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            !recorded.contains(secret.as_str()),
            "details.path {recorded:?} holds the link's token (SPEC §16: never a token or link)"
        );
        assert_eq!(recorded, page, "the page as the access log names it");
    }
}
