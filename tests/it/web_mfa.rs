use crate::common;

// The second factor in a real browser (SPEC §17, "in the browser"): set up on the account
// page, the code page after the password, recovery codes, replay and lock-out refused,
// step-up and the way to enrolment on a `require_mfa` page, a pending step used once.
// Every code comes from pyotp (`common::totp`), never from gatehouse's own arithmetic; the
// secret is read off the page as a person would type it into an app.

use crate::web_browser::{base_of, fill_sign_in, json_of_page, login_url, shoot_as};
use crate::web_sessions::COOKIE;
use common::browser::{Browser, BrowserCookie};
use common::totp::{code_in_step, code_now, codes_at, fresh_step, now, secret_of};
use common::upstream::Upstream;
use common::*;
use gatehouse::config::RouteConfig;
use serde_json::{json, Value};
use std::path::Path;

/// The pending step's cookie (`web::second_factor::PENDING_COOKIE`).
const PENDING: &str = "gatehouse_pending";
/// A page of the route that needs a second factor.
const SECURE_PAGE: &str = "/secure/ledger?year=2026";
const INVALID: &str = "Invalid two-factor code.";
const MODULE: &str = "web_mfa";
/// gatehouse with the pages, `/app/` (login_redirect) and `/secure/` (login_redirect and
/// require_mfa) in front of `up`. The sign-in throttle is wide, so that only the second
/// factor's own lock (10 wrong codes an hour per user) is in play.
fn mfa_gatehouse(up: &Upstream) -> Gatehouse {
    let addr = up.addr;
    Gatehouse::new()
        .with_config(move |c| {
            c.web.enabled = true;
            c.throttle.login_failures_per_username_address = 100;
            c.throttle.login_failures_per_address = 100;
            c.routes = vec![
                RouteConfig {
                    login_redirect: true,
                    ..route("/app/", &[addr])
                },
                RouteConfig {
                    login_redirect: true,
                    require_mfa: true,
                    ..route("/secure/", &[addr])
                },
            ];
        })
        .start()
}

pub(crate) fn account_url(base: &str) -> String {
    format!("{base}/accounts/")
}

pub(crate) fn code_page(base: &str) -> String {
    format!("{base}/accounts/login/code/")
}

/// The HTTP status of the page on screen.
#[track_caller]
pub(crate) fn status_of(b: &Browser) -> u64 {
    let v = b.execute(
        "return performance.getEntriesByType('navigation')[0].responseStatus;",
        json!([]),
    );
    v.as_u64()
        .unwrap_or_else(|| panic!("no navigation status: {v}"))
}

/// Runs axe-core on the page on screen: no serious or critical violations (SPEC §18).
#[track_caller]
pub(crate) fn accessible(b: &Browser, what: &str) {
    b.execute(&format!("{}; return 1;", common::axe::script()), json!([]));
    let found = b.execute(
        "return axe.run(document, {resultTypes: ['violations']}).then(r => \
         r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical') \
         .map(v => v.id + ' (' + v.impact + '): ' + \
         v.nodes.map(n => n.target.join(' ')).join(', ')));",
        json!([]),
    );
    assert_eq!(found, json!([]), "axe-core on {what}");
}

/// Shoots the page at both widths into `dir` (and `GATEHOUSE_TEST_SCREENS`).
#[track_caller]
fn shoot_both(b: &Browser, dir: &Path, name: &str) {
    for width in [1280, 390] {
        shoot_as(b, dir, MODULE, name, width);
    }
    b.set_window_size(1280, 900);
}

/// Signs in with the password and waits for the code page.
#[track_caller]
fn password_then_code_page(b: &Browser, base: &str, username: &str) {
    b.goto(&login_url(base));
    fill_sign_in(b, username, PASSWORD);
    let page = code_page(base);
    b.wait_for(
        |b| b.url().starts_with(&page) && b.try_find("#id_otp-code").is_some(),
        "the code page after the password",
    );
}

/// Submits the form `css` and waits for its answer to replace the page (a mark left on the
/// old page's window is gone), so that no check reads the page before: the code page
/// answers a refusal with the same page.
#[track_caller]
pub(crate) fn submit_and_wait(b: &Browser, css: &str, what: &str) {
    b.execute("window.gatehouseOldPage = true; return 1;", json!([]));
    b.submit_form(css);
    b.wait_for(
        |b| {
            b.execute(
                "return !window.gatehouseOldPage && document.readyState === 'complete';",
                json!([]),
            ) == json!(true)
        },
        what,
    );
}

/// Types `code` into the code page and sends it.
#[track_caller]
pub(crate) fn enter_code(b: &Browser, code: &str) {
    b.fill("#id_otp-code", code);
    submit_and_wait(b, "main form", "the answer to a code");
}

/// Types `code` and waits for the refusal under the field.
#[track_caller]
fn code_refused(b: &Browser, code: &str, what: &str) {
    enter_code(b, code);
    let refusal = b.try_find("#id_otp-code-errors").map(|e| e.text());
    assert!(
        refusal.as_deref().is_some_and(|t| t.contains(INVALID)),
        "{what}: {refusal:?}"
    );
    assert_eq!(status_of(b), 400, "{what}");
}

/// Types `code` and waits for the account page, signed in.
#[track_caller]
fn code_accepted(b: &Browser, base: &str, code: &str, what: &str) {
    enter_code(b, code);
    let account = account_url(base);
    b.wait_for(|b| b.url() == account, what);
    assert!(b.text().contains("Your account"), "{what}: {}", b.text());
}

/// Signs out with the confirm form.
#[track_caller]
fn sign_out(b: &Browser, base: &str) {
    b.goto(&format!("{base}/accounts/logout/"));
    b.submit_form("main form");
    b.wait_for(
        |b| b.text().contains("You are signed out"),
        "the signed-out page",
    );
}

/// The text of the two-factor section of the account page on screen.
#[track_caller]
fn section(b: &Browser) -> String {
    b.find("#two-factor").text()
}

/// The recovery codes shown once.
#[track_caller]
fn recovery_codes(b: &Browser) -> Vec<String> {
    let codes: Vec<String> = b
        .find_all("#recovery-codes li")
        .iter()
        .map(|li| li.text().trim().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes: {codes:?}");
    codes
}

/// A six-digit code that none of the steps around now accepts.
fn wrong_code(secret: &str) -> String {
    let t = now();
    let near = codes_at(secret, &[t - 30, t, t + 30, t + 60]);
    ["123456", "654321", "111111", "909090", "000000"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap_or("222222")
        .to_string()
}

/// Turns the second factor of `username` on through the JSON API (a pending secret, then a
/// pyotp code of the previous step, so that the current and the next stay unused): the
/// secret.
pub(crate) fn enrol_by_api(g: &Gatehouse, username: &str) -> String {
    let (access, _) = g.http().login(username, PASSWORD);
    let r = g
        .http()
        .post("/api/auth/2fa/totp/", json!({}), Some(&access));
    r.expect_status(200);
    let secret = secret_of(&r.json);
    fresh_step(12);
    g.http()
        .post(
            "/api/auth/2fa/totp/confirm/",
            json!({"code": code_in_step(&secret, -1)}),
            Some(&access),
        )
        .expect_status(200);
    secret
}

#[test]
fn set_up_on_the_account_page_then_sign_in_with_codes() {
    let up = Upstream::start();
    let g = mfa_gatehouse(&up);
    g.register("alice");
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    let account = account_url(&base);

    // Off: a sentence and the button.
    b.goto(&login_url(&base));
    fill_sign_in(&b, "alice", PASSWORD);
    b.wait_for(|b| b.url() == account, "the account page");
    assert!(section(&b).contains("Two-factor authentication is off."));
    accessible(&b, "the account page, off");
    shoot_both(&b, dir.path(), "account-off");

    // Set up: the QR code and the secret, by GET (a reload shows the same secret).
    b.submit_form("#two-factor form");
    b.wait_for(|b| b.try_find("#mfa-secret").is_some(), "the set-up");
    let qr = b.find("#two-factor img");
    assert_eq!(
        qr.attr("alt").as_deref(),
        Some("QR code for your authenticator app")
    );
    assert!(qr
        .attr("src")
        .is_some_and(|s| s.starts_with("data:image/svg+xml;base64,")));
    let loaded = b.execute(
        "const i = document.querySelector('#two-factor img'); return i.complete && i.naturalWidth;",
        json!([]),
    );
    assert!(
        loaded.as_u64().is_some_and(|w| w > 0),
        "the QR code shows: {loaded}"
    );
    let secret = b.find("#mfa-secret").text();
    b.refresh();
    assert_eq!(
        b.find("#mfa-secret").text(),
        secret,
        "a reload keeps the secret"
    );
    accessible(&b, "the account page, pending");
    shoot_both(&b, dir.path(), "account-pending");

    // A wrong code leaves it off, the error under the field.
    b.fill("#id_mfa-confirm-code", &wrong_code(&secret));
    b.submit_form("#two-factor form");
    b.wait_for(
        |b| b.try_find("#id_mfa-confirm-code-errors").is_some(),
        "the refused first code",
    );
    assert!(section(&b).contains(INVALID), "{}", section(&b));

    // The previous step's code turns it on; the codes are shown this once.
    fresh_step(20);
    b.fill("#id_mfa-confirm-code", &code_in_step(&secret, -1));
    b.submit_form("#two-factor form");
    b.wait_for(
        |b| b.try_find("#recovery-codes").is_some(),
        "the recovery codes",
    );
    assert!(b.text().contains("Two-factor authentication is on."));
    let codes = recovery_codes(&b);
    accessible(&b, "the account page, codes shown");
    shoot_both(&b, dir.path(), "account-codes");
    b.goto(&account);
    assert!(b.try_find("#recovery-codes").is_none(), "shown only once");
    let on = section(&b);
    assert!(
        on.contains("since") && on.contains("You have 10 unused recovery codes."),
        "{on}"
    );
    accessible(&b, "the account page, on");
    shoot_both(&b, dir.path(), "account-on");

    // The password alone no longer signs in: the code page, with its own cookie.
    sign_out(&b, &base);
    password_then_code_page(&b, &base, "alice");
    assert_eq!(b.cookie(COOKIE), None, "no session before the code");
    let pending = b.cookie(PENDING).expect("the pending step's cookie");
    assert!(pending.http_only, "{pending:?}");
    assert_eq!(pending.path, "/accounts/");
    assert_eq!(pending.same_site.as_deref(), Some("Lax"));
    assert!(b.text().contains("Two-factor authentication"));
    accessible(&b, "the code page");
    shoot_both(&b, dir.path(), "code");
    code_refused(&b, &wrong_code(&secret), "a wrong code refused");
    accessible(&b, "the code page, refused");
    shoot_both(&b, dir.path(), "code-error");
    let current = code_now(&secret);
    code_accepted(&b, &base, &current, "signed in with the code");
    assert!(b.cookie(COOKIE).is_some());
    assert_eq!(b.cookie(PENDING), None, "the pending cookie is cleared");

    // The session says both factors: the require_mfa route lets it through.
    let page = format!("{base}{SECURE_PAGE}");
    b.goto(&page);
    b.wait_for(|b| b.url() == page, "the require_mfa page");
    assert_eq!(json_of_page(&b)["uri"], SECURE_PAGE);
    assert_eq!(up.last().header("x-user-name").as_deref(), Some("alice"));

    // The pending step was used up with the code: planted again, it leads to the password.
    b.goto(&account);
    b.add_cookie(&BrowserCookie {
        path: "/accounts/".into(),
        ..BrowserCookie::new(PENDING, &pending.value)
    });
    b.goto(&code_page(&base));
    let login = login_url(&base);
    b.wait_for(
        |b| b.url().starts_with(&login) && !b.url().contains("/code/"),
        "the password page for a used pending step",
    );
    assert!(
        b.text()
            .contains("Your sign-in expired; enter your password again."),
        "{}",
        b.text()
    );

    // The code just accepted is refused the second time (RFC 6238 §5.2).
    sign_out(&b, &base);
    password_then_code_page(&b, &base, "alice");
    code_refused(&b, &current, "the replayed code refused");

    // A recovery code signs in once.
    code_accepted(&b, &base, &codes[0], "signed in with a recovery code");
    assert!(section(&b).contains("You have 9 unused recovery codes."));
    sign_out(&b, &base);
    password_then_code_page(&b, &base, "alice");
    code_refused(&b, &codes[0], "a used recovery code refused");
    code_accepted(&b, &base, &codes[1], "another recovery code");

    // Turning it off (password and a code) signs out everywhere; then the password is enough.
    b.fill("#id_mfa-disable-password", PASSWORD);
    b.fill("#id_mfa-disable-code", &codes[2]);
    b.submit_form("#two-factor form:last-of-type");
    b.wait_for(
        |b| b.url().starts_with(&login),
        "the sign-in page after turning it off",
    );
    assert!(
        b.text().contains("Two-factor authentication is off"),
        "{}",
        b.text()
    );
    assert_eq!(b.cookie(COOKIE), None);
    fill_sign_in(&b, "alice", PASSWORD);
    b.wait_for(|b| b.url() == account, "the account page, password only");
    assert!(section(&b).contains("Two-factor authentication is off."));
}

#[test]
fn ten_wrong_codes_lock_the_second_step() {
    let up = Upstream::start();
    let g = mfa_gatehouse(&up);
    g.register("bruno");
    let secret = enrol_by_api(&g, "bruno");
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    password_then_code_page(&b, &base, "bruno");
    let wrong = wrong_code(&secret);
    for i in 1..=10 {
        code_refused(&b, &wrong, &format!("wrong code {i}"));
    }
    // Locked for the user: even the right code waits, without a form.
    enter_code(&b, &code_now(&secret));
    b.wait_for(
        |b| b.text().contains("Too many wrong codes."),
        "the lock's page",
    );
    assert_eq!(status_of(&b), 429);
    assert!(
        b.text()
            .contains("Too many wrong codes. Try again in 60 minutes."),
        "{}",
        b.text()
    );
    assert!(b.try_find("#id_otp-code").is_none());
    assert_eq!(b.cookie(COOKIE), None);
    accessible(&b, "the lock's page");
    shoot_both(&b, dir.path(), "code-locked");
}

#[test]
fn a_require_mfa_page_leads_to_enrolment_and_an_older_session_steps_up() {
    let up = Upstream::start();
    let g = mfa_gatehouse(&up);
    g.register("carla");
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    b.goto(&login_url(&base));
    fill_sign_in(&b, "carla", PASSWORD);
    let account = account_url(&base);
    b.wait_for(|b| b.url() == account, "the account page");

    // No second factor: the page that leads to setting one up, keeping the target.
    let page = format!("{base}{SECURE_PAGE}");
    b.goto(&page);
    b.wait_for(
        |b| b.url().starts_with(&code_page(&base)),
        "the second-factor page",
    );
    assert!(
        b.text().contains("Two-factor authentication needed"),
        "{}",
        b.text()
    );
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    accessible(&b, "the enrolment page");
    shoot_both(&b, dir.path(), "code-enrol");
    b.find("main a.button").click();
    b.wait_for(
        |b| b.url().starts_with(&account) && b.try_find("#two-factor form").is_some(),
        "the set-up section",
    );

    // Set up in the browser; the codes page offers the way back.
    b.submit_form("#two-factor form");
    b.wait_for(|b| b.try_find("#mfa-secret").is_some(), "the set-up");
    let secret = b.find("#mfa-secret").text();
    fresh_step(20);
    b.fill("#id_mfa-confirm-code", &code_in_step(&secret, -1));
    let password_only = b.cookie(COOKIE).expect("the session").value;
    b.submit_form("#two-factor form");
    b.wait_for(
        |b| b.try_find("#recovery-codes").is_some(),
        "the recovery codes",
    );
    // The code that turned it on proved the second factor: the session is a new one, signed
    // in with both, and the page opens at once.
    let upgraded = b.cookie(COOKIE).expect("the session").value;
    assert_ne!(upgraded, password_only, "a new session id");
    g.http()
        .send(
            g.http()
                .request("GET", "/api/auth/profile/")
                .header("Cookie", format!("{COOKIE}={password_only}")),
        )
        .expect_status(401);
    assert_eq!(up.count(), 0);
    let back = b.find("#two-factor .actions a");
    assert_eq!(back.attr("href").as_deref(), Some(SECURE_PAGE));
    back.click();
    b.wait_for(|b| b.url() == page, "the require_mfa page after setting up");
    assert_eq!(json_of_page(&b)["uri"], SECURE_PAGE);
    assert_eq!(up.last().header("x-user-name").as_deref(), Some("carla"));
    sign_out(&b, &base);

    // A session from before the factor was turned on (elsewhere) steps up on the code page.
    g.register("dora");
    b.goto(&login_url(&base));
    fill_sign_in(&b, "dora", PASSWORD);
    b.wait_for(|b| b.url() == account, "dora's account page");
    let secret = enrol_by_api(&g, "dora");
    b.goto(&page);
    b.wait_for(
        |b| b.url().starts_with(&code_page(&base)) && b.try_find("#id_otp-code").is_some(),
        "the step-up",
    );
    let before = b.cookie(COOKIE).expect("the session").value;
    let seen_before = up.count();
    accessible(&b, "the step-up page");
    shoot_both(&b, dir.path(), "code-step-up");
    enter_code(&b, &code_now(&secret));
    b.wait_for(
        |b| b.url() == page,
        "the require_mfa page after the step-up",
    );
    assert_eq!(json_of_page(&b)["uri"], SECURE_PAGE);
    assert_eq!(up.count(), seen_before + 1);
    let seen = up.last();
    assert_eq!(seen.uri, SECURE_PAGE);
    assert_eq!(seen.header("x-user-name").as_deref(), Some("dora"));
    let after = b.cookie(COOKIE).expect("the new session").value;
    assert_ne!(after, before, "a new session id with the second factor");

    // The old session ended with the step-up.
    let r = g.http().send(
        g.http()
            .request("GET", "/api/auth/profile/")
            .header("Cookie", format!("{COOKIE}={before}")),
    );
    r.expect_status(401);
    let v: &Value = &r.json;
    assert!(v.get("detail").is_some(), "{v}");
}
