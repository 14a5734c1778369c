use crate::common;

// Sign-in in a real browser (SPEC §15): Chromium, through `common::browser`, against the real
// binary and a recording upstream, inline and behind a real nginx; the cookie as the browser
// keeps it; revocation seen by a second browser; a hostile page on another port; fixation;
// screenshots of the pages. tests/it/web_sessions.rs proves the same rules over plain HTTP.

use crate::web_sessions::{form_sign_in, set_cookie, web_gatehouse, COOKIE};
use common::browser::{Browser, BrowserCookie};
use common::nginx::Nginx;
use common::origin::{auto_submit, Origin};
use common::upstream::Upstream;
use common::*;
use gatehouse::config::RouteConfig;
use serde_json::{json, Value};
use std::path::Path;

/// A page of the `login_redirect` route, with a query to come back to.
const APP_PAGE: &str = "/app/reports?week=49";
const NEW_PASSWORD: &str = "N3w-Passw0rd!";
/// Where the screenshots are also copied for a person to look at, when set.
pub(crate) const SCREENS_VAR: &str = "GATEHOUSE_TEST_SCREENS";
/// A cookie of the application's own, which must reach it.
const APP_COOKIE: (&str, &str) = ("theme", "dark");
/// The tallest window a screenshot grows to.
const MAX_SHOT_HEIGHT: u32 = 6000;

/// The sign-in page of the gatehouse (or nginx) at `base` ("http://127.0.0.1:<port>").
pub(crate) fn login_url(base: &str) -> String {
    format!("{base}/accounts/login/")
}

pub(crate) fn base_of(g: &Gatehouse) -> String {
    g.url("").trim_end_matches('/').to_string()
}

/// Waits for the sign-in form, fills it in and submits it, as a person would.
#[track_caller]
pub(crate) fn fill_sign_in(b: &Browser, username: &str, password: &str) {
    b.wait_for(
        |b| b.try_find("#id_login-username").is_some(),
        "the sign-in form",
    );
    b.fill("#id_login-username", username);
    b.fill("#id_login-password", password);
    b.submit_form("main form");
}

/// Signs in on the sign-in page of `base` and waits for the account page.
#[track_caller]
fn sign_in(b: &Browser, base: &str, username: &str, password: &str) {
    b.goto(&login_url(base));
    fill_sign_in(b, username, password);
    let account = format!("{base}/accounts/");
    b.wait_for(|b| b.url() == account, "the account page after signing in");
}

/// Opens `url` and waits to be shown the sign-in page instead.
#[track_caller]
fn sent_to_sign_in(b: &Browser, base: &str, url: &str) {
    b.goto(url);
    let login = login_url(base);
    b.wait_for(
        |b| b.url().starts_with(&login) && b.try_find("#id_login-username").is_some(),
        &format!("the sign-in page instead of {url}"),
    );
}

/// The session cookie's value as the browser holds it.
#[track_caller]
fn session_in(b: &Browser) -> String {
    match b.cookie(COOKIE) {
        Some(c) => c.value,
        None => panic!("the browser holds no {COOKIE}: {:?}", b.cookies()),
    }
}

/// The page's text as JSON (Chromium shows a JSON answer as its text).
#[track_caller]
pub(crate) fn json_of_page(b: &Browser) -> Value {
    let text = b.text();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// What the upstream's last request carried as `Cookie`, checked free of the session cookie
/// and holding the application's own.
#[track_caller]
fn assert_upstream_saw_app_cookie_only(up: &Upstream, session: &str) {
    let seen = up.last();
    let Some(cookie) = seen.header("cookie") else {
        panic!("no Cookie reached the upstream: {seen:?}");
    };
    assert!(
        !cookie.contains(COOKIE) && !cookie.contains(session),
        "the session cookie reached the upstream: {cookie}"
    );
    let (k, v) = APP_COOKIE;
    assert!(
        cookie.split("; ").any(|pair| pair == format!("{k}={v}")),
        "the application's cookie passes: {cookie:?}"
    );
}

#[test]
fn a_browser_signs_in_comes_back_to_its_page_and_signs_out() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("alice");
    let base = base_of(&g);
    let b = Browser::start();

    let page = format!("{base}{APP_PAGE}");
    sent_to_sign_in(&b, &base, &page);
    assert_eq!(up.count(), 0, "nothing reached the upstream before sign-in");
    let (k, v) = APP_COOKIE;
    b.add_cookie(&BrowserCookie::new(k, v));
    fill_sign_in(&b, "alice", PASSWORD);
    b.wait_for(|b| b.url() == page, "the page asked for first");

    assert_eq!(json_of_page(&b)["uri"], APP_PAGE, "the upstream's echo");
    let seen = up.last();
    assert_eq!(seen.uri, APP_PAGE);
    assert_eq!(seen.header("x-user-name").as_deref(), Some("alice"));
    assert_upstream_saw_app_cookie_only(&up, &session_in(&b));

    // Signing out is the confirm form's POST (Django 5); then the route sends to sign-in.
    b.goto(&format!("{base}/accounts/logout/"));
    assert!(b.text().contains("Do you want to sign out"), "{}", b.text());
    b.submit_form("main form");
    b.wait_for(
        |b| b.text().contains("You are signed out"),
        "the signed-out page",
    );
    assert_eq!(b.cookie(COOKIE), None, "the cookie is cleared");
    let forwarded = up.count();
    sent_to_sign_in(&b, &base, &page);
    assert_eq!(up.count(), forwarded);
}

#[test]
fn behind_nginx_the_browser_signs_in_and_comes_back_through_it() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("bob");
    let nginx = Nginx::start(g.port, up.port);
    let base = nginx.url("");
    let b = Browser::start();

    let page = nginx.url(APP_PAGE);
    sent_to_sign_in(&b, &base, &page);
    assert_eq!(up.count(), 0);
    let (k, v) = APP_COOKIE;
    b.add_cookie(&BrowserCookie::new(k, v));
    fill_sign_in(&b, "bob", PASSWORD);
    b.wait_for(
        |b| b.url() == page,
        "the page asked for first, through nginx",
    );

    assert_eq!(json_of_page(&b)["uri"], APP_PAGE);
    let seen = up.last();
    assert_eq!(seen.header("x-user-name").as_deref(), Some("bob"));
    assert_upstream_saw_app_cookie_only(&up, &session_in(&b));

    // The account page and signing out, all through nginx.
    b.goto(&nginx.url("/accounts/"));
    assert!(b.text().contains("Your account"), "{}", b.text());
    b.goto(&nginx.url("/accounts/logout/"));
    b.submit_form("main form");
    b.wait_for(
        |b| b.text().contains("You are signed out"),
        "the signed-out page",
    );
    let forwarded = up.count();
    sent_to_sign_in(&b, &base, &page);
    assert_eq!(up.count(), forwarded);
}

#[test]
fn the_session_cookie_has_the_attributes_of_section_15() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("carol");
    let base = base_of(&g);
    let b = Browser::start();
    sign_in(&b, &base, "carol", PASSWORD);

    let session = b.cookie(COOKIE).expect("the session cookie");
    assert_eq!(session.path, "/");
    assert_eq!(session.domain, "127.0.0.1", "host-only: no Domain");
    assert!(session.http_only, "{session:?}");
    assert!(session.secure, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Lax"));
    assert_eq!(session.expiry, None, "no lifetime without remember-me");
    assert_eq!(session.value.len(), 43, "256 bits, base64url");
    // Django's CSRF cookie is for the page's scripts: not HttpOnly.
    let csrf = b.cookie("csrftoken").expect("the CSRF cookie");
    assert!(!csrf.http_only, "{csrf:?}");
    assert_eq!(csrf.same_site.as_deref(), Some("Lax"));

    // The same from the raw header of the sign-in form's POST.
    let r = form_sign_in(&g, "carol", PASSWORD, "/app/");
    r.expect_status(302);
    let (_, line) = set_cookie(&r, COOKIE).expect("a session cookie");
    let mut attrs: Vec<String> = line
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    attrs.sort();
    assert_eq!(
        attrs,
        ["httponly", "path=/", "samesite=lax", "secure"],
        "{line}"
    );
}

#[test]
fn remember_me_gives_the_cookie_its_lifetime() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .with_config(move |c| {
            c.web.remember_me_days = 14;
            c.routes = vec![RouteConfig {
                login_redirect: true,
                ..route("/app/", &[addr])
            }];
        })
        .start();
    g.register("cleo");
    let base = base_of(&g);
    let b = Browser::start();
    b.goto(&login_url(&base));
    assert!(b.text().contains("Remember me for 14 days"), "{}", b.text());
    b.find("#id_login-remember").click();
    fill_sign_in(&b, "cleo", PASSWORD);
    let account = format!("{base}/accounts/");
    b.wait_for(|b| b.url() == account, "the account page");
    let in_14_days = |what: &str| {
        let session = b.cookie(COOKIE).expect("the session cookie");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let Some(expiry) = session.expiry else {
            panic!("{what}: a remembered cookie outlives the browser: {session:?}");
        };
        assert!(
            expiry.abs_diff(now + 14 * 24 * 3600) < 120,
            "{what}: expires in 14 days: {expiry} vs {now}"
        );
        session.value
    };
    let first = in_14_days("at sign-in");

    // The session that changes its password lives on in a new one, still remembered (as
    // Django's update_session_auth_hash keeps the session's expiry).
    b.fill("#id_password-old_password", PASSWORD);
    b.fill("#id_password-new_password", NEW_PASSWORD);
    b.fill("#id_password-re_new_password", NEW_PASSWORD);
    b.submit_form("section[aria-labelledby=password-h] form");
    b.wait_for(
        |b| b.text().contains("Your password was changed."),
        "the notice of the change",
    );
    assert_ne!(in_14_days("after a password change"), first);
}

/// gatehouse with the pages, `/app/` (login_redirect) in front of `up`, and a superuser.
fn gatehouse_with_root(up: &Upstream) -> Gatehouse {
    let addr = up.addr;
    Gatehouse::new()
        .superuser("root", "root@example.com", PASSWORD)
        .with_config(move |c| {
            c.routes = vec![RouteConfig {
                login_redirect: true,
                ..route("/app/", &[addr])
            }];
        })
        .start()
}

/// The route answers the browser as `username`: the upstream's echo, with the identity.
#[track_caller]
fn reaches_app_as(b: &Browser, up: &Upstream, base: &str, username: &str) {
    let page = format!("{base}/app/x");
    b.goto(&page);
    b.wait_for(|b| b.url() == page, "the route's page");
    assert_eq!(json_of_page(b)["uri"], "/app/x");
    assert_eq!(up.last().header("x-user-name").as_deref(), Some(username));
}

#[test]
fn a_password_change_in_one_browser_signs_the_other_out() {
    let up = Upstream::start();
    let g = gatehouse_with_root(&up);
    g.register("dora");
    let base = base_of(&g);
    let [a, b] = race(2, |_| Browser::start())
        .try_into()
        .unwrap_or_else(|_| panic!("two browsers"));
    sign_in(&a, &base, "dora", PASSWORD);
    sign_in(&b, &base, "dora", PASSWORD);
    reaches_app_as(&b, &up, &base, "dora");
    let before = session_in(&a);

    a.fill("#id_password-old_password", PASSWORD);
    a.fill("#id_password-new_password", NEW_PASSWORD);
    a.fill("#id_password-re_new_password", NEW_PASSWORD);
    a.submit_form("section[aria-labelledby=password-h] form");
    a.wait_for(
        |a| a.text().contains("Your password was changed."),
        "the notice of the change",
    );
    assert_ne!(session_in(&a), before, "the changing session got a new id");

    // B's very next requests, the account page and the route, go to sign-in.
    sent_to_sign_in(&b, &base, &format!("{base}/accounts/"));
    let forwarded = up.count();
    sent_to_sign_in(&b, &base, &format!("{base}/app/x"));
    assert_eq!(up.count(), forwarded);
    // A stays signed in.
    a.goto(&format!("{base}/accounts/"));
    assert!(a.text().contains("Your account"), "{}", a.text());
    reaches_app_as(&a, &up, &base, "dora");
    // The old password is gone, the new one works.
    b.goto(&login_url(&base));
    fill_sign_in(&b, "dora", PASSWORD);
    b.wait_for(
        |b| {
            b.text()
                .contains("Please enter a correct username and password.")
        },
        "the refusal of the old password",
    );
    sign_in(&b, &base, "dora", NEW_PASSWORD);
}

#[test]
fn deleting_the_account_in_one_browser_signs_the_other_out() {
    let up = Upstream::start();
    let g = gatehouse_with_root(&up);
    g.register("edna");
    let base = base_of(&g);
    let [a, b] = race(2, |_| Browser::start())
        .try_into()
        .unwrap_or_else(|_| panic!("two browsers"));
    sign_in(&a, &base, "edna", PASSWORD);
    sign_in(&b, &base, "edna", PASSWORD);
    reaches_app_as(&b, &up, &base, "edna");

    // Just signed in: the form asks for no password, only the confirmation.
    assert!(a.try_find("#id_delete-password").is_none());
    a.find("#id_delete-confirm").click();
    a.submit_form("section.danger-zone form");
    let login = login_url(&base);
    a.wait_for(|a| a.url().starts_with(&login), "the sign-in page");
    assert_eq!(a.cookie(COOKIE), None, "A's cookie is cleared");

    let forwarded = up.count();
    sent_to_sign_in(&b, &base, &format!("{base}/app/x"));
    sent_to_sign_in(&b, &base, &format!("{base}/accounts/"));
    assert_eq!(up.count(), forwarded);
}

#[test]
fn an_admin_deactivation_signs_the_browser_out() {
    let up = Upstream::start();
    let g = gatehouse_with_root(&up);
    let (id, _, _) = g.http().user("fern");
    let base = base_of(&g);
    let b = Browser::start();
    sign_in(&b, &base, "fern", PASSWORD);
    reaches_app_as(&b, &up, &base, "fern");

    let root = g.http().login("root", PASSWORD).0;
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{id}/"),
            Some(json!({"is_active": false})),
            Some(&root),
        )
        .expect_status(200);
    let forwarded = up.count();
    sent_to_sign_in(&b, &base, &format!("{base}/app/x"));
    sent_to_sign_in(&b, &base, &format!("{base}/accounts/"));
    assert_eq!(up.count(), forwarded);
}

#[test]
fn a_page_of_another_origin_cannot_post_with_the_session() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("gwen");
    let base = base_of(&g);
    let b = Browser::start();
    sign_in(&b, &base, "gwen", PASSWORD);
    // Another session of gwen's, which "sign out the others" would end.
    let (other, _) = crate::web_sessions::session_of(&g, "gwen");

    let proxied = g.url("/app/transfer");
    let user_api = g.url("/api/auth/sessions/revoke-others/");
    let evil = Origin::serve(vec![
        ("/proxied", auto_submit(&proxied, &[("amount", "1000")])),
        ("/user-api", auto_submit(&user_api, &[])),
    ]);
    let refused = json!({"detail": format!(
        "CSRF Failed: Origin checking failed - {} does not match any trusted origins.",
        evil.origin()
    )});
    let forwarded = up.count();

    b.goto(&evil.url("/proxied"));
    b.wait_for(|b| b.url() == proxied, "the form's answer");
    assert_eq!(json_of_page(&b), refused, "the proxied route");
    assert_eq!(up.count(), forwarded, "nothing was forwarded");

    // The user API: Django checks the Origin before the token (CsrfViewMiddleware's order),
    // so the same words, although the form carries no token either.
    b.goto(&evil.url("/user-api"));
    b.wait_for(|b| b.url() == user_api, "the form's answer");
    assert_eq!(json_of_page(&b), refused, "the user API");
    assert_eq!(up.count(), forwarded);

    // Nothing happened: the other session lives, and the browser's own too.
    let r = g.http().send(
        g.http()
            .request("GET", "/api/auth/profile/")
            .header("Cookie", format!("{COOKIE}={other}")),
    );
    r.expect_status(200);
    reaches_app_as(&b, &up, &base, "gwen");
}

#[test]
fn signing_in_replaces_a_planted_session_cookie() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("hana");
    let base = base_of(&g);
    let b = Browser::start();
    b.goto(&login_url(&base));
    // What a fixation attack plants: an id the attacker knows. A __Host- cookie must be Secure.
    let planted = "A".repeat(43);
    b.add_cookie(&BrowserCookie {
        secure: true,
        ..BrowserCookie::new(COOKIE, &planted)
    });
    assert_eq!(session_in(&b), planted);
    b.refresh();
    fill_sign_in(&b, "hana", PASSWORD);
    let account = format!("{base}/accounts/");
    b.wait_for(|b| b.url() == account, "the account page");

    let fresh = session_in(&b);
    assert_ne!(fresh, planted, "a new id at sign-in");
    let held: Vec<_> = b
        .cookies()
        .into_iter()
        .filter(|c| c.name == COOKIE)
        .collect();
    assert_eq!(held.len(), 1, "one session cookie: {held:?}");
    let with = |value: &str| {
        g.http().send(
            g.http()
                .request("GET", "/app/x")
                .header("Cookie", format!("{COOKIE}={value}")),
        )
    };
    with(&planted).expect_status(401);
    with(&fresh).expect_status(200);
}

/// Shoots the whole page at `width` (the window grown to the page's height), into `dir` and,
/// when `SCREENS_VAR` names a directory, a copy there.
#[track_caller]
fn shoot(b: &Browser, dir: &Path, name: &str, width: u32) {
    shoot_as(b, dir, "web_browser", name, width);
}

/// `shoot` for the scenarios of module `module` (the copy's name starts with it).
#[track_caller]
pub(crate) fn shoot_as(b: &Browser, dir: &Path, module: &str, name: &str, width: u32) {
    const MEASURE: &str = "return [document.documentElement.scrollHeight, window.innerHeight, \
                           window.outerHeight];";
    b.set_window_size(width, 600);
    // Growing the window can reflow the page (a scrollbar goes): measure again after it.
    for _ in 0..3 {
        let sizes = b.execute(MEASURE, json!([]));
        let size = |i: usize| {
            sizes[i]
                .as_u64()
                .unwrap_or_else(|| panic!("the page's sizes: {sizes}"))
        };
        let (page, inner, outer) = (size(0), size(1), size(2));
        if page <= inner {
            break;
        }
        let grown = u32::try_from(outer + page - inner).unwrap_or(MAX_SHOT_HEIGHT);
        b.set_window_size(width, grown.min(MAX_SHOT_HEIGHT));
    }
    let file = format!("{name}-{width}.png");
    let path = dir.join(&file);
    b.screenshot(&path);
    let png = std::fs::read(&path).expect("the screenshot");
    assert_eq!(
        common::browser::png_size(&png).map(|(w, _)| w),
        Some(width),
        "{file}"
    );
    if let Some(screens) = std::env::var_os(SCREENS_VAR) {
        let screens = Path::new(&screens);
        std::fs::create_dir_all(screens).expect("the screens directory");
        std::fs::copy(&path, screens.join(format!("{module}-{file}")))
            .expect("copy the screenshot");
    }
}

#[test]
fn screenshots_of_the_sign_in_and_account_pages() {
    let up = Upstream::start();
    let g = web_gatehouse(&up);
    g.register("iris");
    let base = base_of(&g);
    // Another device, so the account page lists more than this one.
    g.http().login("iris", PASSWORD);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    for width in [1280, 390] {
        b.goto(&login_url(&base));
        shoot(&b, dir.path(), "sign-in", width);
        fill_sign_in(&b, "iris", "not-the-password");
        b.wait_for(
            |b| b.try_find(".alert.error").is_some(),
            "the sign-in error",
        );
        shoot(&b, dir.path(), "sign-in-error", width);
    }
    sign_in(&b, &base, "iris", PASSWORD);
    for width in [1280, 390] {
        b.refresh();
        shoot(&b, dir.path(), "account", width);
    }
}
