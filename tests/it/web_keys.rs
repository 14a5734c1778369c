use crate::common;

// API keys in a real browser (SPEC §19): made on the account page with the password, the
// key shown once in the POST's answer and parsed by the format (never in a URL or a
// reload), listed without the secret, revoked; a wrong password leaves no key; a form
// posted from another origin is refused. axe-core and screenshots at both widths.

use crate::web_browser::{base_of, fill_sign_in, login_url, shoot_as};
use crate::web_mfa::{accessible, account_url, status_of, submit_and_wait};
use common::browser::Browser;
use common::origin::{auto_submit, Origin};
use common::upstream::Upstream;
use common::*;
use serde_json::json;
use std::path::Path;

const MODULE: &str = "web_keys";
const ADMIN: &str = "root";

fn keys_gatehouse(up: &Upstream) -> Gatehouse {
    let addr = up.addr;
    Gatehouse::new()
        .superuser(ADMIN, "root@example.com", PASSWORD)
        .with_config(move |c| {
            c.web.enabled = true;
            c.routes = vec![route("/app/", &[addr])];
        })
        .start()
}

#[track_caller]
fn shoot_both(b: &Browser, dir: &Path, name: &str) {
    for width in [1280, 390] {
        shoot_as(b, dir, MODULE, name, width);
    }
    b.set_window_size(1280, 900);
}

/// A key as SPEC §19 spells it: `gk_` + 43 base62 characters of secret + 6 of checksum.
fn is_key(text: &str) -> bool {
    text.strip_prefix("gk_")
        .is_some_and(|rest| rest.len() == 49 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// A date `days` from now as `<input type="date">` holds it.
fn date_in(days: u64) -> String {
    let iso = gatehouse::clock::iso_ms((gatehouse::clock::now() + days * 86_400) * 1000);
    iso[..10].to_string()
}

/// Fills the key form (the date set as a date input holds it) and sends it.
#[track_caller]
fn make_key(b: &Browser, name: &str, days: u64, password: &str, groups: &[&str]) {
    b.fill("#id_key-name", name);
    b.execute(
        "document.querySelector('#id_key-expires_at').value = arguments[0]; return 1;",
        json!([date_in(days)]),
    );
    for g in groups {
        b.execute(
            "document.querySelector('#keys input[name=groups][value=\"' + arguments[0] + '\"]').checked = true; return 1;",
            json!([g]),
        );
    }
    b.fill("#id_key-password", password);
    submit_and_wait(b, "#keys > form", "the answer to the key form");
}

/// The user's keys through the JSON API.
fn keys_of(g: &Gatehouse, username: &str) -> Vec<serde_json::Value> {
    let (access, _) = g.http().login(username, PASSWORD);
    let r = g.http().call("GET", "/api/auth/keys/", None, Some(&access));
    r.expect_status(200);
    r.json.as_array().cloned().expect("a list of keys")
}

#[test]
fn a_key_is_made_on_the_account_page_shown_once_listed_and_revoked() {
    let up = Upstream::start();
    let g = keys_gatehouse(&up);
    let (alice, _, _) = g.http().user("alice");
    let (admin, _) = g.http().login(ADMIN, PASSWORD);
    g.http()
        .call(
            "PATCH",
            &format!("/api/auth/admin/users/{alice}/"),
            Some(json!({"groups": ["ops", "billing"]})),
            Some(&admin),
        )
        .expect_status(200);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    let account = account_url(&base);
    b.goto(&login_url(&base));
    fill_sign_in(&b, "alice", PASSWORD);
    b.wait_for(|b| b.url() == account, "the account page");
    assert!(b.find("#keys").text().contains("You have no API keys."));
    accessible(&b, "the account page, no keys");
    shoot_both(&b, dir.path(), "keys-none");

    // A wrong password: no key, the error under the field, the name kept.
    make_key(&b, "nightly backup", 30, "not-the-password", &["ops"]);
    assert_eq!(status_of(&b), 400);
    let errors = b.find("#id_key-password-errors").text();
    assert!(errors.contains("Wrong password."), "{errors}");
    assert_eq!(
        b.find("#id_key-name").prop("value"),
        json!("nightly backup")
    );
    assert!(b.try_find("#new-key").is_none());
    assert!(keys_of(&g, "alice").is_empty(), "no key was made");
    accessible(&b, "the account page, key refused");
    shoot_both(&b, dir.path(), "keys-refused");

    // Past the maximum lifetime (the date field's own bound taken away, as an old browser
    // would ignore it): refused by the operation's own words.
    b.execute(
        "document.querySelector('#id_key-expires_at').removeAttribute('max'); return 1;",
        json!([]),
    );
    make_key(&b, "too long", 400, PASSWORD, &[]);
    let errors = b.find("#id_key-expires_at-errors").text();
    assert!(errors.contains("at most 365 days"), "{errors}");

    // Made: the key shown once, in the POST's answer, not in the address.
    make_key(&b, "nightly backup", 30, PASSWORD, &["ops"]);
    assert_eq!(status_of(&b), 200);
    let key = b.find("#new-key").text().trim().to_string();
    assert!(is_key(&key), "the key by the format: {key:?}");
    assert!(b
        .find("#keys")
        .text()
        .contains("it will not be shown again"));
    assert!(
        !b.url().contains(&key) && !b.url().contains("gk_"),
        "{}",
        b.url()
    );
    accessible(&b, "the account page, key shown once");
    shoot_both(&b, dir.path(), "keys-made");

    // The list: name, prefix, groups; never the key.
    let listed = keys_of(&g, "alice");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], json!("nightly backup"));
    assert_eq!(listed[0]["groups"], json!(["ops"]));
    let prefix = listed[0]["prefix"].as_str().unwrap_or("").to_string();
    assert!(key.starts_with(&prefix) && prefix.len() == 8, "{prefix}");

    // A reload: the list with the prefix, no key.
    b.goto(&account);
    let section = b.find("#keys").text();
    assert!(b.try_find("#new-key").is_none(), "shown once only");
    assert!(!b.source().contains(&key), "the key is nowhere on the page");
    assert!(
        section.contains("nightly backup") && section.contains(&prefix),
        "{section}"
    );
    assert!(section.contains("Never"), "not used yet: {section}");
    accessible(&b, "the account page, a key listed");
    shoot_both(&b, dir.path(), "keys-listed");

    // Revoked: gone from the list and the API's.
    submit_and_wait(&b, "#keys table form", "the answer to revoke");
    assert!(
        b.text().contains("That API key was revoked"),
        "{}",
        b.text()
    );
    assert!(b.find("#keys").text().contains("You have no API keys."));
    assert!(keys_of(&g, "alice").is_empty());
    accessible(&b, "the account page, key revoked");
}

#[test]
fn the_key_forms_posted_from_another_origin_are_refused() {
    let up = Upstream::start();
    let g = keys_gatehouse(&up);
    g.http().user("gwen");
    let base = base_of(&g);
    let b = Browser::start();
    b.goto(&login_url(&base));
    fill_sign_in(&b, "gwen", PASSWORD);
    let account = account_url(&base);
    b.wait_for(|b| b.url() == account, "the account page");
    let date = date_in(10);
    let evil = Origin::serve(vec![(
        "/make",
        auto_submit(
            &account,
            &[
                ("form", "key-make"),
                ("name", "stolen"),
                ("expires_at", &date),
                ("password", PASSWORD),
            ],
        ),
    )]);
    b.goto(&evil.url("/make"));
    b.wait_for(|b| b.url() == account, "the form's answer");
    assert_eq!(status_of(&b), 403);
    assert!(b.text().contains("CSRF"), "{}", b.text());
    assert!(keys_of(&g, "gwen").is_empty(), "no key was made");
}

/// User `id`'s keys through the admin API (the user's own sign-in may need a code).
fn admin_keys_of(g: &Gatehouse, id: u64) -> Vec<serde_json::Value> {
    let (admin, _) = g.http().login(ADMIN, PASSWORD);
    let r = g.http().call(
        "GET",
        &format!("/api/auth/admin/users/{id}/keys/"),
        None,
        Some(&admin),
    );
    r.expect_status(200);
    r.json.as_array().cloned().expect("a list of keys")
}

/// The id of the user named `name`, by the admin API's search.
fn admin_find(g: &Gatehouse, name: &str) -> Option<u64> {
    let (admin, _) = g.http().login(ADMIN, PASSWORD);
    let r = g.http().call(
        "GET",
        &format!("/api/auth/admin/users/?search={name}"),
        None,
        Some(&admin),
    );
    r.expect_status(200);
    let list = r.json.get("results").cloned().unwrap_or(r.json.clone());
    list.as_array()?
        .iter()
        .find(|u| u["username"] == json!(name))
        .map(id_of)
}

#[test]
fn the_console_makes_a_service_account_and_a_key_for_it() {
    let up = Upstream::start();
    // Every sign-in counts as old: making the account asks the password again first.
    let g = crate::console::console_asking_the_password(&up);
    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    crate::console::sign_in_to_console(&b, &base, ADMIN, None);

    // From the users list to the form.
    b.goto(&format!("{base}/admin/users/"));
    b.find("main p.actions a").click();
    let form_url = format!("{base}/admin/service-accounts/");
    b.wait_for(|b| b.url() == form_url, "the service-account form");
    accessible(&b, "the service-account form");
    crate::console::shoot_both(&b, dir.path(), "service-account-form");

    // A name taken: refused beside the field, nothing made.
    b.fill("#id_service-username", ADMIN);
    submit_and_wait(&b, "main form", "the answer to the form");
    if b.try_find("#id_reauth-password").is_some() {
        b.fill("#id_reauth-password", PASSWORD);
        submit_and_wait(&b, "main form", "the answer after the password");
    }
    let errors = b.find("#id_service-username-errors").text();
    assert!(errors.contains("already exists"), "{errors}");
    accessible(&b, "the service-account form, refused");

    // Made, after the password again: its page, with the badge.
    b.fill("#id_service-username", "deploy-bot");
    submit_and_wait(&b, "main form", "the answer to the form");
    assert!(
        b.text().contains("make the service account deploy-bot"),
        "{}",
        b.text()
    );
    b.fill("#id_reauth-password", PASSWORD);
    submit_and_wait(&b, "main form", "the answer after the password");
    let id = admin_find(&g, "deploy-bot")
        .unwrap_or_else(|| panic!("the service account: {} {}", b.url(), b.text()));
    let (admin, _) = g.http().login(ADMIN, PASSWORD);
    let detail = g.http().call(
        "GET",
        &format!("/api/auth/admin/users/{id}/"),
        None,
        Some(&admin),
    );
    detail.expect_status(200);
    assert_eq!(detail.json["is_service"], json!(true), "{}", detail.text);
    // A service account: it cannot sign in, even with a password typed.
    g.http()
        .login_attempt("deploy-bot", PASSWORD)
        .expect_status(401);
    let page = crate::console::user_url(&base, id);
    assert!(b.url().starts_with(&page), "{}", b.url());
    assert!(b.find("h1").text().contains("Service account"));
    assert!(b.text().contains("The service account was made."));
    // No password, so no reset or verification mail and no second factor to offer.
    for action in ["reset-mail", "verify-mail", "mfa-reset"] {
        let form = format!("main input[value={action}]");
        assert!(b.try_find(&form).is_none(), "{action} on a service account");
    }
    assert!(b.text().contains("it has no password and cannot sign in"));
    accessible(&b, "a service account's page");

    // A key for it: a wrong password makes none.
    b.fill("#id_key-name", "deploy");
    b.execute(
        "document.querySelector('#id_key-expires_at').value = arguments[0]; return 1;",
        json!([date_in(90)]),
    );
    b.fill("#id_key-password", "not-the-password");
    submit_and_wait(&b, "#key-make", "the answer to the key form");
    assert_eq!(status_of(&b), 400);
    assert!(b
        .find("#id_key-password-errors")
        .text()
        .contains("Wrong password."));
    assert!(b.try_find("#new-key").is_none());
    assert_eq!(b.find("#id_key-name").prop("value"), json!("deploy"));
    accessible(&b, "a service account's page, key refused");

    b.fill("#id_key-password", PASSWORD);
    submit_and_wait(&b, "#key-make", "the answer to the key form");
    assert_eq!(status_of(&b), 200);
    let key = b.find("#new-key").text().trim().to_string();
    assert!(is_key(&key), "{key:?}");
    assert!(!b.url().contains("gk_"), "{}", b.url());
    accessible(&b, "a service account's page, key shown once");
    crate::console::shoot_both(&b, dir.path(), "service-account-key");
    let (admin, _) = g.http().login(ADMIN, PASSWORD);
    let r = g.http().call(
        "GET",
        &format!("/api/auth/admin/users/{id}/keys/"),
        None,
        Some(&admin),
    );
    r.expect_status(200);
    assert_eq!(r.json.as_array().map(Vec::len), Some(1), "{}", r.json);
    assert_eq!(r.json[0]["name"], json!("deploy"));
    assert!(key.starts_with(r.json[0]["prefix"].as_str().unwrap_or("-")));
    b.goto(&page);
    assert!(b.try_find("#new-key").is_none() && !b.source().contains(&key));

    // The users list says which users are machines.
    b.goto(&format!("{base}/admin/users/"));
    let listed = b.find("main table").text();
    assert!(listed.contains("Service account"), "{listed}");
    accessible(&b, "the users list with a service account");
}

#[test]
fn the_console_key_forms_posted_from_another_origin_are_refused() {
    let up = Upstream::start();
    let g = keys_gatehouse(&up);
    let base = base_of(&g);
    let b = Browser::start();
    b.goto(&login_url(&base));
    fill_sign_in(&b, ADMIN, PASSWORD);
    let target = format!("{base}/admin/service-accounts/");
    let (victim, _, _) = g.http().user("victim");
    let user_page = crate::console::user_url(&base, victim);
    let date = date_in(10);
    let evil = Origin::serve(vec![
        ("/make", auto_submit(&target, &[("username", "evil-bot")])),
        (
            "/key",
            auto_submit(
                &user_page,
                &[
                    ("action", "make-key"),
                    ("name", "stolen"),
                    ("expires_at", &date),
                    ("password", PASSWORD),
                ],
            ),
        ),
    ]);
    b.goto(&evil.url("/make"));
    b.wait_for(|b| b.url() == target, "the form's answer");
    assert_eq!(status_of(&b), 403);
    assert!(admin_find(&g, "evil-bot").is_none(), "nothing was made");
    b.goto(&evil.url("/key"));
    b.wait_for(|b| b.url() == user_page, "the key form's answer");
    assert_eq!(status_of(&b), 403);
    assert!(admin_keys_of(&g, victim).is_empty(), "no key was made");
}

#[test]
fn an_enrolled_user_makes_a_key_with_the_code_too() {
    let up = Upstream::start();
    let g = keys_gatehouse(&up);
    let (carol, _, _) = g.http().user("carol");
    let secret = crate::web_mfa::enrol_by_api(&g, "carol");
    let base = base_of(&g);
    let b = Browser::start();
    let account = account_url(&base);
    common::totp::fresh_step(20);
    b.goto(&login_url(&base));
    fill_sign_in(&b, "carol", PASSWORD);
    b.wait_for(
        |b| b.try_find("#id_otp-code").is_some(),
        "the code page after the password",
    );
    crate::web_mfa::enter_code(&b, &common::totp::code_now(&secret));
    b.wait_for(|b| b.url() == account, "the account page");

    // The code is asked even on a fresh sign-in; without it, no key.
    assert!(
        b.try_find("#id_key-code").is_some(),
        "the key form asks the code"
    );
    // (The field's `required` taken away, as a client that skips it.)
    b.execute(
        "document.querySelector('#id_key-code').removeAttribute('required'); return 1;",
        json!([]),
    );
    make_key(&b, "cron", 7, PASSWORD, &[]);
    assert_eq!(status_of(&b), 400);
    let errors = b.find("#id_key-code-errors").text();
    assert!(errors.contains("This field is required."), "{errors}");
    assert!(admin_keys_of(&g, carol).is_empty());
    accessible(&b, "the account page, code missing");

    // The next step's code (the current one was used to sign in; a code is good once).
    b.fill("#id_key-code", &common::totp::code_in_step(&secret, 1));
    b.fill("#id_key-password", PASSWORD);
    submit_and_wait(&b, "#keys > form", "the answer to the key form");
    assert!(is_key(b.find("#new-key").text().trim()), "{}", b.text());
    assert_eq!(admin_keys_of(&g, carol).len(), 1);
}
