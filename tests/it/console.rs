use crate::common;

// The admin console in a real browser (SPEC §18): staff only, with a second factor when
// `[console] require_mfa`; the home page's counts; the user page's changes made through the
// admin API's operations (deactivation refuses the user's proxied requests at once); the
// password again before a destructive change on an old sign-in; CSRF; axe-core; screenshots.
// Codes come from pyotp (`common::totp`).

use crate::web_browser::{base_of, fill_sign_in, login_url, shoot_as};
use crate::web_mfa::{accessible, code_page, enrol_by_api, enter_code, status_of};
use common::browser::Browser;
use common::origin::{auto_submit, Origin};
use common::totp::{code_in_step, code_now, fresh_step};
use common::upstream::Upstream;
use common::*;
use gatehouse::config::Config;
use serde_json::json;
use std::path::Path;

pub(crate) const MODULE: &str = "console";
/// The staff user `createsuperuser` makes before the server starts.
pub(crate) const ROOT: &str = "root";

/// gatehouse with the pages, the console, a staff user and `/app/` (authenticated) in front
/// of `up`; `edit` changes the rest.
pub(crate) fn console_gatehouse(
    up: &Upstream,
    edit: impl FnOnce(&mut Config) + 'static,
) -> Gatehouse {
    let addr = up.addr;
    Gatehouse::new()
        .superuser(ROOT, "root@example.com", PASSWORD)
        .with_config(move |c| {
            c.web.enabled = true;
            c.routes = vec![route("/app/", &[addr])];
            edit(c);
        })
        .start()
}

pub(crate) fn console_url(base: &str) -> String {
    format!("{base}/admin/")
}

pub(crate) fn user_url(base: &str, id: u64) -> String {
    format!("{base}/admin/users/{id}/")
}

/// Shoots the page at both widths.
#[track_caller]
pub(crate) fn shoot_both(b: &Browser, dir: &Path, name: &str) {
    for width in [1280, 390] {
        shoot_as(b, dir, MODULE, name, width);
    }
    b.set_window_size(1280, 900);
}

/// From a signed-out browser: the console sends it to sign in; the password (and, with
/// `secret`, a code) bring it back to the console's home.
#[track_caller]
pub(crate) fn sign_in_to_console(b: &Browser, base: &str, username: &str, secret: Option<&str>) {
    let home = console_url(base);
    b.goto(&home);
    b.wait_for(
        |b| b.url().starts_with(&login_url(base)),
        "the sign-in page",
    );
    assert!(b.url().contains("next=/admin/"), "{}", b.url());
    fill_sign_in(b, username, PASSWORD);
    if let Some(secret) = secret {
        b.wait_for(
            |b| b.url().starts_with(&code_page(base)) && b.try_find("#id_otp-code").is_some(),
            "the code page",
        );
        enter_code(b, &code_now(secret));
    }
    b.wait_for(|b| b.url() == home, "the console's home");
}

/// The proxied route answers `token`'s holder with `status`.
#[track_caller]
pub(crate) fn app_answers(g: &Gatehouse, token: &str, status: u16) {
    g.http()
        .get("/app/orders", Some(token))
        .expect_status(status);
}

#[test]
fn staff_with_a_second_factor_see_the_home_counts() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |_| {});
    // A password-only staff token: enough for the admin API (SPEC §17), not the console.
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let secret = enrol_by_api(&g, ROOT);
    let (ann, _, _) = g.http().user("ann");
    let (bo, _, _) = g.http().user("bo");
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{bo}/"),
            Some(json!({"is_active": false})),
            Some(&staff_token),
        )
        .expect_status(200);
    g.http()
        .login_attempt("ann", "not-the-password")
        .expect_status(401);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();

    // A bearer token is no way in: the console reads the session cookie only.
    let r = g.http().get("/admin/", Some(&staff_token));
    r.expect_status(302);

    sign_in_to_console(&b, &base, ROOT, Some(&secret));
    let text = |css: &str| b.find(css).text();
    // root and ann active, bo deactivated.
    assert_eq!(text("#count-active"), "2");
    assert_eq!(text("#count-inactive"), "1");
    assert_eq!(text("#count-all"), "3");
    assert_eq!(text("#count-failed"), "1");
    let signups: u64 = text("#count-signups").parse().expect("a number");
    assert!(signups >= 2, "ann and bo signed up: {signups}");
    let newest = b.find_all("main li a");
    assert!(
        newest
            .iter()
            .any(|a| a.attr("href").as_deref() == Some(&*format!("/admin/users/{ann}/"))),
        "ann is among the newest sign-ups"
    );
    accessible(&b, "the console's home");
    shoot_both(&b, dir.path(), "home");

    // Unknown and malformed ids: the 404 page.
    for bad in ["999999", "abc", "0", "-1"] {
        b.goto(&format!("{base}/admin/users/{bad}/"));
        assert_eq!(status_of(&b), 404, "{bad}");
        assert!(b.text().contains("Page not found"), "{bad}");
    }
    accessible(&b, "the console's 404");

    // The user page, with the signed-in sign-in (both factors, just now): a staff change
    // needs no password again.
    b.goto(&user_url(&base, ann));
    assert!(b.find("h1").text().contains("ann"));
    accessible(&b, "the user page");
    shoot_both(&b, dir.path(), "user");
    b.find("#id_access-is_staff").click();
    b.fill("#id_access-groups", "ops, billing");
    b.submit_form("section[aria-labelledby=access-h] form");
    b.wait_for(
        |b| b.text().contains("Staff and groups were saved."),
        "the saved access",
    );
    let details = b.find("section[aria-labelledby=details-h]").text();
    assert!(details.contains("billing, ops"), "{details}");
    let profile = g
        .http()
        .get(&format!("/api/auth/admin/users/{ann}/"), Some(&staff_token));
    assert_eq!(profile.json["is_staff"], json!(true), "{}", profile.json);
    assert_eq!(profile.json["groups"], json!(["billing", "ops"]));
}

#[test]
fn staff_without_a_second_factor_are_taken_to_enrolment_first() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |_| {});
    let base = base_of(&g);
    let b = Browser::start();
    let home = console_url(&base);
    b.goto(&home);
    fill_sign_in(&b, ROOT, PASSWORD);
    let account = format!("{base}/accounts/");
    b.wait_for(
        |b| b.url().starts_with(&account) && b.try_find("#two-factor form").is_some(),
        "the set-up section",
    );
    assert_eq!(
        b.url(),
        format!("{account}?next=/admin/#two-factor"),
        "enrolment, and back to the console after"
    );
    b.submit_form("#two-factor form");
    b.wait_for(|b| b.try_find("#mfa-secret").is_some(), "the set-up");
    let secret = b.find("#mfa-secret").text();
    fresh_step(20);
    b.fill("#id_mfa-confirm-code", &code_in_step(&secret, -1));
    b.submit_form("#two-factor form");
    b.wait_for(
        |b| b.try_find("#recovery-codes").is_some(),
        "the recovery codes",
    );
    let back = b.find("#two-factor .actions a");
    assert_eq!(back.attr("href").as_deref(), Some("/admin/"));
    back.click();
    b.wait_for(|b| b.url() == home, "the console after enrolment");
    assert!(b.try_find("#count-active").is_some(), "{}", b.text());
}

#[test]
fn no_page_for_non_staff_or_signed_out_browsers() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |_| {});
    let (ann, _, _) = g.http().user("ann");
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");

    // Signed out: to the sign-in page, back here after, for every console path.
    for path in ["/admin/", "/admin/users/1/", "/admin/nope"] {
        let r = g.http().get(path, None);
        r.expect_status(302);
        assert_eq!(
            r.header("location").as_deref(),
            Some(&*format!(
                "/accounts/login/?next={}",
                path.replace('?', "%3F")
            )),
            "{path}"
        );
    }

    // Signed in, not staff: a 403 page, never a redirect (no loop).
    let b = Browser::start();
    b.goto(&login_url(&base));
    fill_sign_in(&b, "ann", PASSWORD);
    b.wait_for(
        |b| b.url() == format!("{base}/accounts/"),
        "the account page",
    );
    for url in [console_url(&base), user_url(&base, ann)] {
        b.goto(&url);
        assert_eq!(b.url(), url);
        assert_eq!(status_of(&b), 403, "{url}");
        assert!(
            b.text().contains("This page is for staff only"),
            "{}",
            b.text()
        );
    }
    accessible(&b, "the console's 403");
    shoot_both(&b, dir.path(), "forbidden");
}

#[test]
fn deactivate_with_the_password_again_then_restore() {
    let up = Upstream::start();
    // Every sign-in counts as old: the password is asked again before a destructive change.
    let g = console_gatehouse(&up, |c| {
        c.console.require_mfa = false;
        c.console.recent_sign_in_minutes = 0;
    });
    let (ann, ann_token, _) = g.http().user("ann");
    app_answers(&g, &ann_token, 200);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = user_url(&base, ann);
    b.goto(&page);

    // A form auto-submitted from another loopback origin is refused; nothing changes.
    let evil = Origin::serve(vec![(
        "/deactivate",
        auto_submit(&page, &[("action", "deactivate")]),
    )]);
    b.goto(&evil.url("/deactivate"));
    b.wait_for(|b| b.url() == page, "the form's answer");
    assert_eq!(status_of(&b), 403);
    assert!(b.text().contains("Origin checking failed"), "{}", b.text());
    app_answers(&g, &ann_token, 200);

    // Deactivate: the password first.
    b.goto(&page);
    b.submit_form("section[aria-labelledby=status-h] form");
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the re-authentication page",
    );
    assert!(b.text().contains("To deactivate ann"), "{}", b.text());
    assert!(
        b.try_find("#id_reauth-code").is_none(),
        "no factor, no code"
    );
    app_answers(&g, &ann_token, 200);
    accessible(&b, "the re-authentication page");
    shoot_both(&b, dir.path(), "reauth");

    // A wrong password: asked again, nothing done.
    b.fill("#id_reauth-password", "not-the-password");
    b.submit_form("main form");
    b.wait_for(
        |b| b.try_find("#id_reauth-password-errors").is_some(),
        "the refused password",
    );
    assert_eq!(status_of(&b), 400);
    app_answers(&g, &ann_token, 200);

    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(
        |b| b.url().starts_with(&page) && b.text().contains("The user was deactivated"),
        "the deactivated user",
    );
    // Refused at once, on the proxied route.
    app_answers(&g, &ann_token, 401);
    g.http().login_attempt("ann", PASSWORD).expect_status(401);
    accessible(&b, "the user page, deactivated");
    shoot_both(&b, dir.path(), "user-deactivated");

    // Restore asks nothing more; ann signs in again (the old token stays dead).
    b.submit_form("section[aria-labelledby=status-h] form");
    b.wait_for(
        |b| b.text().contains("The user was restored."),
        "the restored user",
    );
    app_answers(&g, &ann_token, 401);
    let (again, _) = g.http().login("ann", PASSWORD);
    app_answers(&g, &again, 200);
    let trail = b.find("section[aria-labelledby=events-h]").text();
    assert!(
        trail.contains("user.restored") && trail.contains("admin.user_changed"),
        "{trail}"
    );
}

#[test]
fn a_factor_reset_on_an_old_sign_in_asks_the_password_and_a_code() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.recent_sign_in_minutes = 0);
    let (ann, ann_token, _) = g.http().user("ann");
    // What a user types is shown as text, never run (an alert would stop the browser).
    const NAME: &str = "<script>alert(1)</script>";
    g.http()
        .call(
            "PATCH",
            paths::PROFILE,
            Some(json!({"first_name": NAME})),
            Some(&ann_token),
        )
        .expect_status(200);
    let ann_secret = enrol_by_api(&g, "ann");
    let (ann_token, _) = {
        let r = g.http().post(
            paths::TOKEN,
            json!({"username": "ann", "password": PASSWORD, "otp": code_now(&ann_secret)}),
            None,
        );
        r.expect_status(200);
        r.tokens()
    };
    app_answers(&g, &ann_token, 200);
    let secret = enrol_by_api(&g, ROOT);
    let base = base_of(&g);
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, Some(&secret));
    let page = user_url(&base, ann);
    b.goto(&page);
    let details = b.find("section[aria-labelledby=details-h]").text();
    assert!(details.contains(NAME), "{details}");
    assert!(details.contains("Two-factor authentication\nOn") || details.contains("On"));

    b.submit_form("section[aria-labelledby=two-factor-h] form");
    b.wait_for(
        |b| b.try_find("#id_reauth-code").is_some(),
        "the password and a code asked",
    );
    assert!(
        b.text()
            .contains("To reset the two-factor authentication of ann"),
        "{}",
        b.text()
    );
    accessible(&b, "the re-authentication page with a code");
    b.fill("#id_reauth-password", PASSWORD);
    // The sign-in used this step's code: the next one is still accepted (one step of skew).
    b.fill("#id_reauth-code", &code_in_step(&secret, 1));
    b.submit_form("main form");
    b.wait_for(
        |b| b.text().contains("Two-factor authentication was reset"),
        "the reset",
    );
    assert!(b.url().starts_with(&page), "{}", b.url());
    // The reset ended every token of ann's.
    app_answers(&g, &ann_token, 401);
    let details = b.find("section[aria-labelledby=two-factor-h]").text();
    assert!(details.contains("Off."), "{details}");
}
