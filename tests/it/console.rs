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

/// `console_gatehouse` without the second-factor rule, where every sign-in counts as old:
/// each destructive change asks the password again first.
pub(crate) fn console_asking_the_password(up: &Upstream) -> Gatehouse {
    console_gatehouse(up, |c| {
        c.console.require_mfa = false;
        c.console.recent_sign_in_minutes = 0;
    })
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
    let g = console_asking_the_password(&up);
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

/// The user page's forms, by section: `section[aria-labelledby=…] form`.
fn form_of(section: &str) -> String {
    format!("section[aria-labelledby={section}-h] form")
}

/// A browser session of `username` by the JSON sign-in: the `Cookie` header that carries it.
fn session_of(g: &Gatehouse, username: &str) -> String {
    let r = g.http().post(
        "/api/auth/session/",
        json!({"username": username, "password": PASSWORD}),
        None,
    );
    r.expect_status(200);
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .find(|c| c.contains("gatehouse_session="))
        .map(str::to_string)
        .expect("a session cookie")
}

/// The proxied route answers the browser session in `cookie` with `status`.
#[track_caller]
fn app_answers_session(g: &Gatehouse, cookie: &str, status: u16) {
    g.http()
        .with_header("GET", "/app/orders", "cookie", cookie)
        .expect_status(status);
}

/// The admin API's view of user `id`.
fn admin_view(g: &Gatehouse, staff_token: &str, id: u64) -> serde_json::Value {
    let r = g
        .http()
        .get(&format!("/api/auth/admin/users/{id}/"), Some(staff_token));
    r.expect_status(200);
    r.json
}

/// The audit events `action` about user `id`, newest first.
fn events_about(g: &Gatehouse, staff_token: &str, id: u64, action: &str) -> Vec<serde_json::Value> {
    let r = g.http().get(
        &format!("{}?target={id}&action={action}&page_size=500", paths::AUDIT),
        Some(staff_token),
    );
    r.expect_status(200);
    r.json["results"].as_array().cloned().unwrap_or_default()
}

/// On the re-authentication page: the password, and back to `page`'s answer.
#[track_caller]
fn reauthenticate(b: &Browser, page: &str) {
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the re-authentication page",
    );
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(
        |b| b.url().starts_with(page) && b.try_find("#id_reauth-password").is_none(),
        "the user page again",
    );
}

/// Lets the page's forms post what the browser's own validation would stop (a malformed
/// address), as a hand-made request would.
fn without_browser_checks(b: &Browser) {
    b.execute(
        "for (const f of document.forms) { f.noValidate = true; } return 1;",
        json!([]),
    );
}

#[test]
fn edit_a_user_see_it_through_the_admin_api_then_soft_delete_and_restore() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let (ann, ann_token, _) = g.http().user("ann");
    g.http().user("bo");
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = user_url(&base, ann);
    b.goto(&page);
    accessible(&b, "the user page");

    // Names and a new address, with what a user could type into a name: shown as text, never
    // run (an alert would stop the browser).
    const SCRIPT: &str = "<script>alert(1)</script>";
    const BOLD: &str = "<b>Lee</b> & co";
    b.fill("#id_edit-email", "Ann.New@example.com");
    b.fill("#id_edit-first_name", SCRIPT);
    b.fill("#id_edit-last_name", BOLD);
    b.submit_form(&form_of("edit"));
    b.wait_for(
        |b| b.text().contains("The details were saved."),
        "the saved details",
    );
    let seen = admin_view(&g, &staff_token, ann);
    assert_eq!(seen["email"], "Ann.New@example.com", "{seen}");
    assert_eq!(seen["first_name"], SCRIPT);
    assert_eq!(seen["last_name"], BOLD);
    assert_eq!(seen["username"], "ann");
    assert_eq!(seen["email_verified"], false, "a new address is unverified");
    let details = b.find("section[aria-labelledby=details-h]").text();
    assert!(details.contains(&format!("{SCRIPT} {BOLD}")), "{details}");
    assert!(b.try_find("main dd b").is_none(), "no markup from a name");
    // One admin.user_changed with the fields before and after, by root.
    let changed = events_about(&g, &staff_token, ann, "admin.user_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    let details = &changed[0]["details"];
    assert_eq!(
        details["before"],
        json!({"email": "ann@example.com", "first_name": "", "last_name": ""}),
        "{details}"
    );
    assert_eq!(
        details["after"],
        json!({"email": "Ann.New@example.com", "first_name": SCRIPT, "last_name": BOLD}),
        "{details}"
    );
    assert_eq!(changed[0]["actor_username"], ROOT);
    // Nothing was revoked by a change of names; the old address is told of the new one.
    app_answers(&g, &ann_token, 200);
    let log = g.wait_for_log("Subject: Email Changed");
    assert!(
        log.contains("To: ann@example.com\nSubject: Email Changed"),
        "{log}"
    );

    // A username someone holds, and a malformed address: the API's own messages, beside
    // their fields, the typed values kept; nothing changes.
    b.fill("#id_edit-username", "BO");
    b.fill("#id_edit-email", "<script>@example");
    without_browser_checks(&b);
    b.submit_form(&form_of("edit"));
    b.wait_for(
        |b| b.try_find("#id_edit-username-errors").is_some(),
        "the refused edit",
    );
    assert_eq!(status_of(&b), 400);
    assert!(
        b.find(".alert.error")
            .text()
            .contains("The details were not saved."),
        "{}",
        b.text()
    );
    let username_errors = b.find("#id_edit-username-errors").text();
    assert!(
        username_errors.contains("A user with that username already exists."),
        "{username_errors}"
    );
    let email_errors = b.find("#id_edit-email-errors").text();
    assert!(
        email_errors.contains("Enter a valid email address."),
        "{email_errors}"
    );
    assert_eq!(b.find("#id_edit-username").prop("value"), json!("BO"));
    assert_eq!(
        b.find("#id_edit-email").prop("value"),
        json!("<script>@example")
    );
    assert_eq!(
        b.find("#id_edit-username").attr("aria-invalid").as_deref(),
        Some("true")
    );
    accessible(&b, "the user page with a refused edit");
    shoot_both(&b, dir.path(), "user-edit-refused");
    let again = admin_view(&g, &staff_token, ann);
    assert_eq!(again, seen, "nothing changed");

    // Soft delete (deactivation: the admin API has one), then restore.
    b.goto(&page);
    b.submit_form(&form_of("status"));
    b.wait_for(
        |b| b.text().contains("The user was deactivated"),
        "the soft delete",
    );
    app_answers(&g, &ann_token, 401);
    assert_eq!(admin_view(&g, &staff_token, ann)["is_active"], false);
    let deleted = g
        .http()
        .get("/api/auth/admin/users/?status=deleted", Some(&staff_token));
    assert!(
        deleted
            .json
            .as_array()
            .is_some_and(|l| l.iter().any(|u| u["id"] == json!(ann))),
        "{}",
        deleted.text
    );
    let changed = events_about(&g, &staff_token, ann, "admin.user_changed");
    assert_eq!(changed[0]["details"]["before"], json!({"is_active": true}));
    assert_eq!(changed[0]["details"]["after"], json!({"is_active": false}));
    // Nothing to end: every sign-in of a deactivated user is dead already.
    let sessions = b.find("section[aria-labelledby=sessions-h]").text();
    assert!(sessions.contains("ann is deactivated"), "{sessions}");
    assert!(b
        .try_find("section[aria-labelledby=sessions-h] form")
        .is_none());
    // No mail to a deactivated user, and the page says so rather than "mailed".
    assert!(b.try_find(&form_of("verify")).is_none());
    b.submit_form(&form_of("password"));
    b.wait_for(
        |b| {
            b.text()
                .contains("The user is deactivated: no mail was sent.")
        },
        "the refused mail",
    );
    assert_eq!(status_of(&b), 400);
    assert!(events_about(&g, &staff_token, ann, "password.reset_requested").is_empty());
    b.submit_form(&form_of("status"));
    b.wait_for(
        |b| b.text().contains("The user was restored."),
        "the restore",
    );
    assert_eq!(admin_view(&g, &staff_token, ann)["is_active"], true);
    let restored = events_about(&g, &staff_token, ann, "user.restored");
    assert_eq!(restored.len(), 1, "{restored:?}");
    let link = b.find("section[aria-labelledby=events-h] a");
    assert_eq!(
        link.attr("href").as_deref(),
        Some(&*format!("/admin/audit/?target={ann}"))
    );
    assert_eq!(link.text(), "All events about this user");
    shoot_both(&b, dir.path(), "user-edited");
}

#[test]
fn a_verification_mail_and_ending_one_then_every_sign_in_of_a_user() {
    let up = Upstream::start();
    let g = console_asking_the_password(&up);
    let (ann, ann_token, ann_refresh) = g.http().user("ann");
    let cookie = session_of(&g, "ann");
    app_answers(&g, &ann_token, 200);
    app_answers_session(&g, &cookie, 200);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = user_url(&base, ann);
    b.goto(&page);

    // The address is not verified: a verification mail (not destructive: no password).
    assert!(
        g.log()
            .matches("Subject: Verify your email address")
            .count()
            == 0
    );
    b.submit_form(&form_of("verify"));
    b.wait_for(
        |b| b.text().contains("A verification link was mailed"),
        "the verification mail",
    );
    let log = g.wait_for_log("Subject: Verify your email address");
    assert!(
        log.contains("To: ann@example.com\nSubject: Verify your email address"),
        "{log}"
    );

    // Two sign-ins: the app's refresh family and the browser session, one button each.
    let rows = b.find_all("section[aria-labelledby=sessions-h] tbody tr");
    assert_eq!(rows.len(), 2, "{}", b.text());
    let browser_row = rows
        .iter()
        .position(|r| r.text().contains("Browser"))
        .expect("the browser session");
    accessible(&b, "the user page with devices");
    shoot_both(&b, dir.path(), "user-devices");
    b.submit_form(&format!(
        "section[aria-labelledby=sessions-h] tbody tr:nth-child({}) form",
        browser_row + 1
    ));
    b.wait_for(
        |b| b.text().contains("To sign ann out of one device"),
        "the password asked",
    );
    reauthenticate(&b, &page);
    assert!(b.text().contains("That sign-in was ended"), "{}", b.text());
    // That session is refused at once; the app's tokens still work.
    app_answers_session(&g, &cookie, 401);
    app_answers(&g, &ann_token, 200);
    assert_eq!(
        b.find_all("section[aria-labelledby=sessions-h] tbody tr")
            .len(),
        1
    );

    // Every sign-in: the access token at once, and its refresh token.
    let cookie = session_of(&g, "ann");
    b.goto(&page);
    b.submit_form("section[aria-labelledby=sessions-h] > form");
    b.wait_for(
        |b| b.text().contains("To sign ann out everywhere"),
        "the password asked",
    );
    reauthenticate(&b, &page);
    assert!(b.text().contains("signed out everywhere"), "{}", b.text());
    app_answers(&g, &ann_token, 401);
    app_answers_session(&g, &cookie, 401);
    g.http().refresh(&ann_refresh).expect_status(401);
    assert!(b.text().contains("ann is not signed in anywhere."));
    let revoked = events_about(&g, &g_token(&g), ann, "session.revoked");
    assert!(
        revoked.len() >= 3,
        "one session, then a session and a family: {revoked:?}"
    );
    assert!(
        revoked.iter().all(|e| e["actor_username"] == ROOT),
        "{revoked:?}"
    );
    // The password still works: ann signs in again.
    let (again, _) = g.http().login("ann", PASSWORD);
    app_answers(&g, &again, 200);
}

/// A staff token for reading the audit log.
fn g_token(g: &Gatehouse) -> String {
    g.http().login(ROOT, PASSWORD).0
}

#[test]
fn cross_origin_forms_against_every_user_page_action_are_refused() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let (ann, ann_token, ann_refresh) = g.http().user("ann");
    let cookie = session_of(&g, "ann");
    let base = base_of(&g);
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = user_url(&base, ann);
    b.goto(&page);
    let device = b
        .find("section[aria-labelledby=sessions-h] input[name=device]")
        .attr("value")
        .expect("a device id");
    let before = admin_view(&g, &staff_token, ann);
    let log_before = g.log();

    // Each kind of form the user page has, as a hostile page posts it.
    let actions: [(&'static str, Vec<(&str, &str)>); 9] = [
        (
            "/edit",
            vec![
                ("action", "edit"),
                ("username", "mallory"),
                ("email", "m@evil.test"),
            ],
        ),
        (
            "/access",
            vec![
                ("action", "access"),
                ("is_staff", "true"),
                ("groups", "ops"),
            ],
        ),
        ("/deactivate", vec![("action", "deactivate")]),
        ("/restore", vec![("action", "restore")]),
        ("/mfa-reset", vec![("action", "mfa-reset")]),
        ("/reset-mail", vec![("action", "reset-mail")]),
        ("/verify-mail", vec![("action", "verify-mail")]),
        (
            "/end-device",
            vec![("action", "end-device"), ("device", &device)],
        ),
        ("/end-all", vec![("action", "end-all")]),
    ];
    let evil = Origin::serve(
        actions
            .iter()
            .map(|(path, fields)| (*path, auto_submit(&page, fields)))
            .collect(),
    );
    for (path, _) in &actions {
        b.goto(&evil.url(path));
        b.wait_for(|b| b.url() == page, "the form's answer");
        assert_eq!(status_of(&b), 403, "{path}");
        assert!(
            b.text().contains("Origin checking failed"),
            "{path}: {}",
            b.text()
        );
    }
    // Nothing changed: the user, their sign-ins, the audit trail, the mail.
    assert_eq!(admin_view(&g, &staff_token, ann), before);
    app_answers(&g, &ann_token, 200);
    app_answers_session(&g, &cookie, 200);
    g.http().refresh(&ann_refresh).expect_status(200);
    for action in [
        "admin.user_changed",
        "session.revoked",
        "password.reset_requested",
    ] {
        assert!(
            events_about(&g, &staff_token, ann, action).is_empty(),
            "{action}"
        );
    }
    let refused = g.http().get(
        &format!("{}?action=csrf.refused&page_size=500", paths::AUDIT),
        Some(&staff_token),
    );
    let refused = refused.json["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(refused.len(), actions.len(), "one event each: {refused:?}");
    let log = g.log();
    assert_eq!(
        log.matches("Subject:").count(),
        log_before.matches("Subject:").count(),
        "no mail"
    );
}

#[test]
fn a_deactivated_staff_member_gets_no_page_and_no_action() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let (sam, _, _) = g.http().user("sam");
    let (ann, _, _) = g.http().user("ann");
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{sam}/"),
            Some(json!({"is_staff": true})),
            Some(&staff_token),
        )
        .expect_status(200);
    let base = base_of(&g);
    let b = Browser::start();
    sign_in_to_console(&b, &base, "sam", None);
    let page = user_url(&base, ann);
    b.goto(&page);
    b.fill("#id_edit-first_name", "Changed");

    // Deactivated by another staff member while the page is open.
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{sam}/"),
            Some(json!({"is_active": false})),
            Some(&staff_token),
        )
        .expect_status(200);
    // No action: the form is not carried out; the browser is sent to sign in.
    b.submit_form(&form_of("edit"));
    b.wait_for(
        |b| b.url().starts_with(&login_url(&base)),
        "the sign-in page",
    );
    assert_eq!(admin_view(&g, &staff_token, ann)["first_name"], "");
    assert!(events_about(&g, &staff_token, ann, "admin.user_changed").is_empty());
    // No page either, and no way back in.
    for url in [console_url(&base), page.clone()] {
        b.goto(&url);
        assert!(b.url().starts_with(&login_url(&base)), "{url}: {}", b.url());
    }
    fill_sign_in(&b, "sam", PASSWORD);
    assert!(b.url().starts_with(&login_url(&base)), "{}", b.url());
}

#[test]
fn unknown_ids_and_malformed_posts_change_nothing() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |c| c.console.require_mfa = false);
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let (ann, _, _) = g.http().user("ann");
    let base = base_of(&g);
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = user_url(&base, ann);
    let before = admin_view(&g, &staff_token, ann);

    // `script` edits the page's edit form before it is posted, as a hand-made request would.
    let post_edited = |script: &str| {
        b.goto(&page);
        b.execute(
            &format!(
                "const f = document.querySelector(\"{}\"); {script}; return 1;",
                form_of("edit")
            ),
            json!([]),
        );
        b.submit_form(&form_of("edit"));
    };
    // A form this page does not know, and one naming no action at all.
    for script in [
        "f.querySelector('input[name=action]').value = 'nope'",
        "f.querySelector('input[name=action]').remove()",
        "f.querySelector('input[name=action]').value = 'end-device'",
    ] {
        post_edited(script);
        b.wait_for(|b| b.try_find(".alert.error").is_some(), "the refusal");
        assert_eq!(status_of(&b), 400, "{script}");
        assert!(
            b.text().contains("That form is not one this page knows."),
            "{script}: {}",
            b.text()
        );
    }
    // A device that is not (or no longer) the user's.
    post_edited(
        "f.querySelector('input[name=action]').value = 'end-device'; \
         const d = document.createElement('input'); d.type = 'hidden'; d.name = 'device'; \
         d.value = 'not-a-device'; f.appendChild(d)",
    );
    b.wait_for(
        |b| b.text().contains("That sign-in had ended already."),
        "nothing to end",
    );
    // A username too long, and one with characters no username may hold.
    post_edited(&format!(
        "f.querySelector('input[name=username]').value = '{}'",
        "a".repeat(151)
    ));
    b.wait_for(
        |b| b.try_find("#id_edit-username-errors").is_some(),
        "too long",
    );
    assert!(
        b.find("#id_edit-username-errors")
            .text()
            .contains("Ensure this field has no more than 150 characters."),
        "{}",
        b.text()
    );
    post_edited("f.querySelector('input[name=username]').value = 'an n'");
    b.wait_for(
        |b| b.try_find("#id_edit-username-errors").is_some(),
        "invalid",
    );
    assert!(
        b.find("#id_edit-username-errors")
            .text()
            .contains("Enter a valid username."),
        "{}",
        b.text()
    );
    // A form posted to a user that does not exist, or to no user page at all.
    for target in [
        "/admin/users/999999/",
        "/admin/users/abc/",
        "/admin/users/0/",
        "/admin/",
    ] {
        post_edited(&format!("f.action = '{target}'"));
        b.wait_for(|b| b.text().contains("Page not found"), "the 404 page");
        assert_eq!(status_of(&b), 404, "{target}");
    }
    // A huge page id is no page.
    b.goto(&format!("{base}/admin/users/99999999999999999999999999/"));
    assert_eq!(status_of(&b), 404);
    assert_eq!(admin_view(&g, &staff_token, ann), before, "nothing changed");
    assert!(events_about(&g, &staff_token, ann, "admin.user_changed").is_empty());
}

#[test]
fn the_admin_patch_the_console_edits_through_has_the_profiles_rules_and_messages() {
    let up = Upstream::start();
    let g = console_gatehouse(&up, |_| {});
    let (staff_token, _) = g.http().login(ROOT, PASSWORD);
    let (ann, ann_token, _) = g.http().user("ann");
    g.http().user("bo");
    let patch = |body: serde_json::Value| {
        g.http().call(
            "PATCH",
            &format!("/api/auth/admin/users/{ann}/"),
            Some(body),
            Some(&staff_token),
        )
    };
    patch(json!({"username": "BO", "email": "BO@example.com"})).expect(
        400,
        json!({"username": ["A user with that username already exists."],
               "email": ["user with this email address already exists."]}),
    );
    patch(json!({"username": "a b", "email": "nope", "first_name": "x".repeat(151)})).expect(
        400,
        json!({"username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."],
               "email": ["Enter a valid email address."],
               "first_name": ["Ensure this field has no more than 150 characters."]}),
    );
    patch(json!({"username": "", "email": ""})).expect(
        400,
        json!({"username": ["This field may not be blank."], "email": ["This field may not be blank."]}),
    );
    assert_eq!(
        admin_view(&g, &staff_token, ann)["username"],
        "ann",
        "nothing changed"
    );
    // Her own name in another case is not taken; the token still works after a rename.
    let r = patch(json!({"username": "Ann", "last_name": "Lee"}));
    r.expect_status(200);
    assert_eq!(
        (r.json["username"].as_str(), r.json["last_name"].as_str()),
        (Some("Ann"), Some("Lee"))
    );
    app_answers(&g, &ann_token, 200);
    // Not staff: refused before anything is read.
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{ann}/"),
            Some(json!({"username": "mallory"})),
            Some(&ann_token),
        )
        .expect_status(403);
}
