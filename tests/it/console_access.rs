use crate::common;

// Who reaches the admin console, over plain HTTP (SPEC §18): every page and every kind of
// action, for staff, a user who is not, a signed-out client and a staff member deactivated
// since signing in. Only staff get a page, with the headers of §15 on each (the CSV too);
// nobody else's form changes anything. Failed sign-ins on the way to the console count in the
// login throttle like any other.

use crate::console::{console_gatehouse, ROOT};
use crate::web_sessions::{form_sign_in, session_of, set_cookie, COOKIE};
use common::upstream::Upstream;
use common::*;
use gatehouse::web::SECURITY_HEADERS;
use serde_json::{json, Value};

/// Every console page, `{ann}` standing for a user's id.
const PAGES: [&str; 6] = [
    "/admin/",
    "/admin/users/",
    "/admin/users.csv",
    "/admin/users/{ann}/",
    "/admin/groups/",
    "/admin/audit/",
];

/// One form of each kind the console takes, all aimed at ann: the user page's deactivation,
/// the list's bulk deactivation, a group rename.
fn actions(ann: u64) -> Vec<(String, Vec<(&'static str, String)>)> {
    vec![
        (
            format!("/admin/users/{ann}/"),
            vec![("action", "deactivate".into())],
        ),
        (
            "/admin/users/".into(),
            vec![("action", "deactivate".into()), ("ids", ann.to_string())],
        ),
        (
            "/admin/groups/".into(),
            vec![
                ("action", "rename".into()),
                ("group", "ops".into()),
                ("to", "renamed".into()),
            ],
        ),
    ]
}

/// A GET of `path` with `cookie` (may be empty).
fn get(g: &Gatehouse, path: &str, cookie: &str) -> Resp {
    let mut rb = g.http().request("GET", path);
    if !cookie.is_empty() {
        rb = rb.header("Cookie", cookie);
    }
    g.http().send(rb)
}

/// A form posted as a browser on this site would: the CSRF cookie and field, our Origin.
fn post(g: &Gatehouse, path: &str, fields: &[(&str, String)], session: Option<&str>) -> Resp {
    let r = g.http().get("/accounts/login/", None);
    let (csrf, _) = set_cookie(&r, "csrftoken").expect("a CSRF cookie");
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("csrfmiddlewaretoken", &csrf);
    for (k, v) in fields {
        body.append_pair(k, v);
    }
    let cookie = match session {
        Some(s) => format!("csrftoken={csrf}; {COOKIE}={s}"),
        None => format!("csrftoken={csrf}"),
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

/// What the admin API says of user `id`: active, and groups.
fn state_of(g: &Gatehouse, admin: &str, id: u64) -> (bool, Value) {
    let r = g
        .http()
        .get(&format!("/api/auth/admin/users/{id}/"), Some(admin));
    r.expect_status(200);
    (r.json["is_active"] == json!(true), r.json["groups"].clone())
}

#[test]
fn only_active_staff_get_a_page_or_an_action_and_every_page_has_the_headers() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (admin, _) = g.http().login(ROOT, PASSWORD);
    let (ann, _, _) = g.http().user("ann");
    let (sam, _, _) = g.http().user("sam");
    g.http().user("bo");
    for (id, body) in [
        (ann, json!({"groups": ["ops"]})),
        (sam, json!({"is_staff": true})),
    ] {
        g.http()
            .call(
                "PATCH",
                &format!("/api/auth/admin/users/{id}/"),
                Some(body),
                Some(&admin),
            )
            .expect_status(200);
    }
    let pages: Vec<String> = PAGES
        .iter()
        .map(|p| p.replace("{ann}", &ann.to_string()))
        .collect();

    // Staff: every page, each with the headers of SPEC §15.
    let (root_session, _) = session_of(&g, ROOT);
    for path in &pages {
        let r = get(&g, path, &format!("{COOKIE}={root_session}"));
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(r.header(name).as_deref(), Some(value), "{path}: {name}");
        }
    }

    // Signed out: to the sign-in page for every page; every form refused, nothing changed.
    for path in &pages {
        let r = get(&g, path, "");
        assert_eq!(r.status, 302, "{path}");
        let location = r.header("location").unwrap_or_default();
        assert!(
            location.starts_with("/accounts/login/?next="),
            "{path}: {location}"
        );
    }
    for (path, fields) in actions(ann) {
        let r = post(&g, &path, &fields, None);
        assert!(
            r.status == 303
                && r.header("location")
                    .is_some_and(|l| l.starts_with("/accounts/login/")),
            "{path}: {} {:?}",
            r.status,
            r.header("location")
        );
    }

    // Signed in, not staff: a 403 page for every page and every form.
    let (bo_session, _) = session_of(&g, "bo");
    for path in &pages {
        let r = get(&g, path, &format!("{COOKIE}={bo_session}"));
        assert_eq!(r.status, 403, "{path}");
        assert!(r.text.contains("This page is for staff only"), "{path}");
        assert!(
            !r.text.contains("ann@example.com"),
            "{path}: nothing of ann's"
        );
    }
    for (path, fields) in actions(ann) {
        let r = post(&g, &path, &fields, Some(&bo_session));
        assert_eq!(r.status, 403, "{path}: {}", r.text);
    }

    // Staff signed in, then deactivated: the session died with the account.
    let (sam_session, _) = session_of(&g, "sam");
    get(&g, "/admin/", &format!("{COOKIE}={sam_session}")).expect_status(200);
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{sam}/"),
            Some(json!({"is_active": false})),
            Some(&admin),
        )
        .expect_status(200);
    for path in &pages {
        let r = get(&g, path, &format!("{COOKIE}={sam_session}"));
        assert_eq!(
            r.status, 302,
            "{path}: a deactivated staff member is nobody"
        );
    }
    for (path, fields) in actions(ann) {
        let r = post(&g, &path, &fields, Some(&sam_session));
        assert_eq!(r.status, 303, "{path}");
    }

    // None of it changed ann.
    assert_eq!(state_of(&g, &admin, ann), (true, json!(["ops"])));
    let events = g.http().get(
        &format!("/api/auth/admin/audit/?target={ann}&action=admin.user_changed"),
        Some(&admin),
    );
    events.expect_status(200);
    assert_eq!(
        events.json["results"].as_array().map(Vec::len),
        Some(1),
        "only the set-up's change: {}",
        events.json
    );

    // And staff can: the same forms, carried out.
    let (path, fields) = actions(ann).swap_remove(0);
    let r = post(&g, &path, &fields, Some(&root_session));
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(!state_of(&g, &admin, ann).0, "deactivated by staff");
}

#[test]
fn failed_sign_ins_on_the_way_to_the_console_share_the_login_throttle() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| {
        c.console.require_mfa = false;
        c.throttle.login_failures_per_username_address = 3;
    });
    for _ in 0..3 {
        let r = form_sign_in(&g, ROOT, "wrong-password", "/admin/");
        assert_eq!(r.status, 200, "the page again, with Django's words");
    }
    // The right password now waits, on the page and on the API alike.
    let r = form_sign_in(&g, ROOT, PASSWORD, "/admin/");
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(set_cookie(&r, COOKIE).is_none(), "no session");
    g.http()
        .post(
            "/api/token/",
            json!({"username": ROOT, "password": PASSWORD}),
            None,
        )
        .expect_status(429);
}
