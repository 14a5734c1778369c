// API keys and service accounts over HTTP (SPEC §19), on sled: a key made with the password
// (and the code when enrolled), shown once, listed without it, revoked; the refusals (wrong
// password, throttled as at sign-in, expiry past the maximum, groups not held, staff on a
// non-staff key, another user's key); the admin endpoints (staff only) and service accounts,
// which cannot sign in; the notice in the outbox, the audit events, and the key nowhere in
// the store's files, the audit sink or the log. Presenting keys is part 2's.
use crate::common;

use common::paths::*;
use common::totp::fresh_step;
use common::*;
use gatehouse::config::{Config, ConsoleFormat};
use serde_json::{json, Value};
use std::path::Path;

const KEYS: &str = "/api/auth/keys/";
const SERVICE_ACCOUNTS: &str = "/api/auth/admin/service-accounts/";
const ADMIN_PW: &str = "AdminPass123";
const NOTICE: &str = "New API key";
const WRONG_PASSWORD: &str = "Wrong password.";
const KEY_FIELDS: [&str; 10] = [
    "created",
    "expires_at",
    "groups",
    "id",
    "last_used",
    "name",
    "prefix",
    "revoked",
    "routes",
    "staff",
];

fn key_path(id: &str) -> String {
    format!("{KEYS}{id}/")
}

fn admin_keys(id: impl std::fmt::Display) -> String {
    format!("{ADMIN_USERS}{id}/keys/")
}

/// An instant `days` from now, ISO 8601.
fn in_days(days: u64) -> String {
    gatehouse::clock::iso_ms((gatehouse::clock::now() + days * 86_400) * 1000)
}

/// Audit lines to a file beside the data directory; mails as JSON lines on stdout.
fn audited(c: &mut Config) {
    c.audit.sink = c
        .server
        .data_dir
        .with_file_name("audit.jsonl")
        .display()
        .to_string();
    c.email.console_format = ConsoleFormat::Json;
}

fn gatehouse(edit: impl FnOnce(&mut Config)) -> Gatehouse {
    Gatehouse::new()
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .with_config(|c| {
            audited(c);
            edit(c);
        })
        .start()
}

fn sink_text(g: &Gatehouse) -> String {
    std::fs::read_to_string(&g.config.audit.sink).unwrap_or_default()
}

fn sink_events(g: &Gatehouse, action: &str) -> Vec<Value> {
    sink_text(g)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == json!(action))
        .collect()
}

/// The mails printed so far (console backend, JSON) to `to`.
fn mails_to(g: &Gatehouse, to: &str) -> Vec<Value> {
    g.log()
        .lines()
        .filter(|l| l.starts_with("{\"mail\":"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|m| m["mail"].clone())
        .filter(|m| m["to"] == json!(to))
        .collect()
}

/// A key request with `password` and `extra` fields.
fn request(password: &str, extra: Value) -> Value {
    let mut body = json!({"name": "ci deploy", "expires_at": in_days(30), "password": password});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    body
}

#[track_caller]
fn field_errors(r: &Resp, field: &str) -> Vec<String> {
    r.expect_status(400);
    r.json[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} errors: {}", r.text))
        .iter()
        .map(|m| m.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every file under `dir`, read whole, and whether any holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let path = e.path();
        if path.is_dir() {
            return any_file_holds(&path, needle);
        }
        std::fs::read(&path)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_key_is_made_with_the_password_shown_once_listed_without_it_and_revoked() {
    let g = gatehouse(|_| {});
    let admin = g.login("admin", ADMIN_PW).0;
    let (ann_id, ann, _) = g.user("ann");
    g.call(
        "PATCH",
        &admin_user(ann_id),
        Some(json!({"groups": ["ops", "billing"]})),
        Some(&admin),
    )
    .expect_status(200);

    // Refusals, each named by its field.
    let r = g.post(
        KEYS,
        json!({"name": "ci", "expires_at": in_days(1)}),
        Some(&ann),
    );
    assert_eq!(field_errors(&r, "password"), ["This field is required."]);
    let r = g.post(KEYS, request("Wrong-Pass-1", json!({})), Some(&ann));
    assert_eq!(field_errors(&r, "password"), [WRONG_PASSWORD]);
    let r = g.post(
        KEYS,
        request(PASSWORD, json!({"expires_at": in_days(366)})),
        Some(&ann),
    );
    assert_eq!(
        field_errors(&r, "expires_at"),
        ["Ensure this date-time is at most 365 days from now ([apikeys] max_lifetime_days)."]
    );
    let r = g.post(
        KEYS,
        request(PASSWORD, json!({"expires_at": "soon"})),
        Some(&ann),
    );
    assert_eq!(field_errors(&r, "expires_at").len(), 1, "{}", r.text);
    let r = g.post(
        KEYS,
        request(PASSWORD, json!({"groups": ["ops", "admins"]})),
        Some(&ann),
    );
    assert_eq!(
        field_errors(&r, "groups"),
        ["\"admins\" is not one of the owner's groups."]
    );
    let r = g.post(KEYS, request(PASSWORD, json!({"staff": true})), Some(&ann));
    assert_eq!(
        field_errors(&r, "staff"),
        ["Only a staff account's key may carry staff."]
    );
    g.post(KEYS, request(PASSWORD, json!({})), None)
        .expect_status(401);
    assert!(
        g.get(KEYS, Some(&ann)).json == json!([]),
        "nothing made so far"
    );

    // Made: 201 with the key, this once.
    let made = g.post(
        KEYS,
        request(PASSWORD, json!({"groups": ["ops"], "routes": ["/svc/"]})),
        Some(&ann),
    );
    made.expect_status(201);
    let key = made.field("key");
    let mut expected_keys = KEY_FIELDS.map(String::from).to_vec();
    expected_keys.push("key".into());
    expected_keys.sort();
    assert_eq!(made.keys(), expected_keys);
    assert!(key.starts_with("gk_") && key.len() == 52, "{key}");
    assert!(
        key.bytes().skip(3).all(|b| b.is_ascii_alphanumeric()),
        "{key}"
    );
    assert_eq!(made.json["prefix"], json!(&key[..8]));
    assert_eq!(made.json["groups"], json!(["ops"]));
    assert_eq!(made.json["routes"], json!(["/svc/"]));
    assert_eq!(
        (
            &made.json["staff"],
            &made.json["last_used"],
            &made.json["revoked"]
        ),
        (&json!(false), &Value::Null, &Value::Null)
    );
    let id = made.field("id");

    // Listed without it.
    let list = g.get(KEYS, Some(&ann));
    list.expect_status(200);
    let mut listed = made.json.clone();
    listed.as_object_mut().map(|m| m.remove("key"));
    assert_eq!(list.json, json!([listed]));
    assert!(!list.text.contains(&key));

    // Another user's key is no key of theirs.
    let bob = g.user_token("bob");
    g.call("DELETE", &key_path(&id), None, Some(&bob))
        .expect(404, bodies::not_found());
    assert_eq!(g.get(KEYS, Some(&bob)).json, json!([]));
    assert_eq!(
        g.get(KEYS, Some(&ann)).json.as_array().map(Vec::len),
        Some(1)
    );

    // Revoked: 204, then gone from the list; a second revocation finds nothing.
    g.call("DELETE", &key_path(&id), None, Some(&ann))
        .expect_status(204);
    assert_eq!(g.get(KEYS, Some(&ann)).json, json!([]));
    g.call("DELETE", &key_path(&id), None, Some(&ann))
        .expect(404, bodies::not_found());
    // Staff still see it, revoked.
    let theirs = g.get(&admin_keys(ann_id), Some(&admin));
    theirs.expect_status(200);
    assert_eq!(theirs.json[0]["id"], json!(id));
    assert!(theirs.json[0]["revoked"].is_string(), "{}", theirs.text);

    // The notice, naming the key by name and prefix, never the key.
    let mail = eventually("the key's notice to ann", || {
        mails_to(&g, "ann@example.com")
            .into_iter()
            .find(|m| m["subject"] == json!(NOTICE))
    });
    let body = mail["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("ci deploy") && body.contains(&key[..8]) && body.contains("ann"),
        "{body}"
    );
    assert!(!body.contains(&key));

    // The audit trail: created and revoked, by ann, on ann, never the key.
    let created = sink_events(&g, "apikey.created");
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0]["details"]["key_id"], json!(id));
    assert_eq!(created[0]["target_id"], json!(ann_id));
    assert_eq!(created[0]["actor_username"], json!("ann"));
    let revoked = sink_events(&g, "apikey.revoked");
    assert_eq!(revoked.len(), 1, "{revoked:#?}");
    assert_eq!(revoked[0]["details"]["key_id"], json!(id));
    assert!(!sink_text(&g).contains(&key), "the key in the audit sink");
    assert!(!g.log().contains(&key), "the key in the log");

    // The store keeps the key's hash, never the key.
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    };
    let db = gatehouse::store::sled_dir(&g.config);
    assert!(
        any_file_holds(&db, hash.as_bytes()),
        "the hash is in the store's files (so the search reads them)"
    );
    assert!(
        !any_file_holds(&db, key.as_bytes()),
        "the key is in the store's files"
    );
}

#[test]
fn the_code_is_needed_when_enrolled_and_wrong_passwords_are_throttled_as_at_sign_in() {
    let g = gatehouse(|c| c.throttle.login_failures_per_username_address = 3);
    let ann = g.user_token("ann");
    let secret = crate::mfa::start(&g, &ann);
    // Three codes of increasing steps (each step is accepted once): the enrolment's, the
    // sign-in's, the key's.
    fresh_step(10);
    let codes = crate::mfa::window(&secret);
    crate::mfa::confirm(&g, &ann, &codes.before);
    let ann = g
        .post(
            TOKEN,
            json!({"username": "ann", "password": PASSWORD, "otp": codes.now}),
            None,
        )
        .field("access");

    let r = g.post(KEYS, request(PASSWORD, json!({})), Some(&ann));
    assert_eq!(field_errors(&r, "otp"), ["This field is required."]);
    let r = g.post(
        KEYS,
        request(PASSWORD, json!({"otp": "000000"})),
        Some(&ann),
    );
    assert_eq!(field_errors(&r, "otp"), ["Invalid two-factor code."]);
    let made = g.post(
        KEYS,
        request(PASSWORD, json!({"otp": codes.after})),
        Some(&ann),
    );
    made.expect_status(201);

    // Wrong passwords count as failed sign-ins of ann: the limit, then 429 even for the
    // right one (and sign-in is throttled alike).
    for _ in 0..3 {
        let r = g.post(KEYS, request("Wrong-Pass-1", json!({})), Some(&ann));
        assert_eq!(field_errors(&r, "password"), [WRONG_PASSWORD]);
    }
    let r = g.post(
        KEYS,
        request(PASSWORD, json!({"otp": "123456"})),
        Some(&ann),
    );
    r.expect_status(429);
    assert!(r.header("retry-after").is_some(), "{}", r.text);
    g.login_attempt("ann", PASSWORD).expect_status(429);
    assert_eq!(
        g.get(KEYS, Some(&ann)).json.as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn staff_make_service_accounts_and_their_keys_and_service_accounts_cannot_sign_in() {
    let g = gatehouse(|_| {});
    let admin = g.login("admin", ADMIN_PW).0;
    let (ann_id, ann, _) = g.user("ann");

    // Staff only: anonymous 401, a user 403, on every admin endpoint.
    for (method, path) in [
        ("POST", SERVICE_ACCOUNTS.to_string()),
        ("GET", admin_keys(ann_id)),
        ("POST", admin_keys(ann_id)),
    ] {
        let body = Some(json!({"username": "x"}));
        g.call(method, &path, body.clone(), None).expect_status(401);
        g.call(method, &path, body, Some(&ann))
            .expect(403, bodies::forbidden());
    }

    // A service account: no password, keys only.
    let bot = g.post(
        SERVICE_ACCOUNTS,
        json!({"username": "ci-bot"}),
        Some(&admin),
    );
    bot.expect_status(201);
    assert_eq!(bot.json["is_service"], json!(true), "{}", bot.text);
    assert_eq!(bot.json["email"], json!("ci-bot@service.invalid"));
    let bot_id = id_of(&bot.json);
    let again = g.post(
        SERVICE_ACCOUNTS,
        json!({"username": "CI-bot"}),
        Some(&admin),
    );
    assert_eq!(
        field_errors(&again, "username"),
        ["A user with that username already exists."]
    );
    let mailed = g.post(
        SERVICE_ACCOUNTS,
        json!({"username": "mailer", "email": "ops@example.com"}),
        Some(&admin),
    );
    mailed.expect_status(201);
    assert_eq!(mailed.json["email"], json!("ops@example.com"));
    let registered = sink_events(&g, "user.registered");
    assert!(
        registered
            .iter()
            .any(|e| e["target_id"] == json!(bot_id) && e["details"]["is_service"] == json!(true)),
        "{registered:#?}"
    );

    // Its keys, made by staff with their own password; the maker gets the notice.
    let r = g.post(
        &admin_keys(bot_id),
        request(PASSWORD, json!({})),
        Some(&admin),
    );
    assert_eq!(field_errors(&r, "password"), [WRONG_PASSWORD]);
    let r = g.post(
        &admin_keys(bot_id),
        request(ADMIN_PW, json!({"staff": true})),
        Some(&admin),
    );
    assert_eq!(
        field_errors(&r, "staff"),
        ["Only a staff account's key may carry staff."]
    );
    let made = g.post(
        &admin_keys(bot_id),
        request(ADMIN_PW, json!({})),
        Some(&admin),
    );
    made.expect_status(201);
    let key = made.field("key");
    let listed = g.get(&admin_keys(bot_id), Some(&admin));
    listed.expect_status(200);
    assert_eq!(listed.json[0]["id"], made.json["id"]);
    assert_eq!(listed.json[0].get("key"), None);
    g.get(&admin_keys(999_999), Some(&admin))
        .expect(404, bodies::no_user());
    g.get(&admin_keys("abc"), Some(&admin))
        .expect(404, bodies::no_user());
    let mail = eventually("the notice to the service account's maker", || {
        mails_to(&g, "admin@example.com")
            .into_iter()
            .find(|m| m["subject"] == json!(NOTICE))
    });
    let body = mail["body"].as_str().unwrap_or_default();
    assert!(body.contains("ci-bot") && !body.contains(&key), "{body}");
    assert!(mails_to(&g, "ci-bot@service.invalid").is_empty());
    // A staff owner's key may carry staff.
    let staff_key = g.post(
        &admin_keys(1),
        request(ADMIN_PW, json!({"staff": true})),
        Some(&admin),
    );
    staff_key.expect_status(201);
    assert_eq!(staff_key.json["staff"], json!(true));

    // No sign-in: the same answers as a wrong password, whatever is typed.
    let wrong = g.login_attempt("ann", "Wrong-Pass-1");
    wrong.expect(401, bodies::wrong_login());
    for password in ["x", "!", ""] {
        let r = g.login_attempt("ci-bot", password);
        if password.is_empty() {
            r.expect_status(400);
        } else {
            r.expect(401, bodies::wrong_login());
        }
    }
    let session = |who: &str| {
        g.post(
            "/api/auth/session/",
            json!({"username": who, "password": "Wrong-Pass-1"}),
            None,
        )
    };
    let (person, service) = (session("ann"), session("ci-bot"));
    assert_eq!(
        (service.status, &service.json),
        (person.status, &person.json)
    );
    let failed = sink_events(&g, "login.failed");
    assert!(
        failed.iter().any(|e| e["target_id"] == json!(bot_id)),
        "{failed:#?}"
    );
    // No reset link for it (a person asking gets one).
    for email in ["ops@example.com", "ann@example.com"] {
        g.post(PASSWORD_RESET, json!({"email": email}), None)
            .expect_status(204);
    }
    eventually("ann's reset link", || {
        mails_to(&g, "ann@example.com")
            .into_iter()
            .find(|m| m["subject"] == json!("Password Reset"))
    });
    assert!(
        mails_to(&g, "ops@example.com").is_empty(),
        "a service account was mailed"
    );
}

#[test]
fn the_console_lists_a_users_keys_and_revokes_one_after_the_password_again() {
    use crate::console::{console_asking_the_password, shoot_both, sign_in_to_console, ROOT};
    use crate::web_browser::base_of;
    use crate::web_mfa::accessible;
    use common::browser::Browser;
    use common::upstream::Upstream;

    let up = Upstream::start();
    let g = console_asking_the_password(&up);
    let (ann, ann_token, _) = g.http().user("ann");
    let make = |name: &str| {
        let r = g.http().post(
            KEYS,
            json!({"name": name, "expires_at": in_days(90), "password": PASSWORD}),
            Some(&ann_token),
        );
        r.expect_status(201);
        (r.field("id"), r.field("key"), r.field("prefix"))
    };
    let (_, live_key, live_prefix) = make("deploy from CI");
    let (old_id, old_key, old_prefix) = make("old laptop script");
    g.http()
        .call("DELETE", &key_path(&old_id), None, Some(&ann_token))
        .expect_status(204);

    let base = base_of(&g);
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Browser::start();
    sign_in_to_console(&b, &base, ROOT, None);
    let page = crate::console::user_url(&base, ann);
    b.goto(&page);
    let section = b.find("section[aria-labelledby=keys-h]").text();
    for shown in [
        "deploy from CI",
        "old laptop script",
        &live_prefix,
        &old_prefix,
    ] {
        assert!(section.contains(shown), "{shown} not in {section}");
    }
    assert!(!b.source().contains(&live_key) && !b.source().contains(&old_key));
    let forms = b.find_all("section[aria-labelledby=keys-h] form");
    assert_eq!(forms.len(), 1, "a revoke form for the live key only");
    accessible(&b, "the user page with API keys");
    shoot_both(&b, dir.path(), "user-keys");

    // Revoking asks the password again (a destructive change), then says it was done.
    b.submit_form("section[aria-labelledby=keys-h] form");
    b.wait_for(
        |b| b.try_find("#id_reauth-password").is_some(),
        "the re-authentication page",
    );
    assert!(
        b.text().contains("To revoke an API key of ann"),
        "{}",
        b.text()
    );
    assert_eq!(
        g.http()
            .get(KEYS, Some(&ann_token))
            .json
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    b.fill("#id_reauth-password", PASSWORD);
    b.submit_form("main form");
    b.wait_for(
        |b| b.url().starts_with(&page) && b.text().contains("The API key was revoked"),
        "the revoked key",
    );
    assert!(b
        .find_all("section[aria-labelledby=keys-h] form")
        .is_empty());
    assert_eq!(g.http().get(KEYS, Some(&ann_token)).json, json!([]));
    let trail = b.find("section[aria-labelledby=events-h]").text();
    assert!(trail.contains("apikey.revoked"), "{trail}");
    accessible(&b, "the user page, key revoked");
    shoot_both(&b, dir.path(), "user-keys-revoked");
}

#[test]
fn store_copy_carries_keys_and_service_accounts_from_sled_to_postgres() {
    let mut sled = Gatehouse::new()
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .start();
    let admin = sled.login("admin", ADMIN_PW).0;
    let (ann_id, ann, _) = sled.user("ann");
    let live = sled.post(KEYS, request(PASSWORD, json!({})), Some(&ann));
    live.expect_status(201);
    let gone = sled.post(KEYS, request(PASSWORD, json!({"name": "gone"})), Some(&ann));
    gone.expect_status(201);
    sled.call("DELETE", &key_path(&gone.field("id")), None, Some(&ann))
        .expect_status(204);
    let bot = sled.post(
        SERVICE_ACCOUNTS,
        json!({"username": "ci-bot"}),
        Some(&admin),
    );
    bot.expect_status(201);
    let bot_id = id_of(&bot.json);
    sled.post(
        &admin_keys(bot_id),
        request(ADMIN_PW, json!({})),
        Some(&admin),
    )
    .expect_status(201);
    let before = sled.get(&admin_keys(ann_id), Some(&admin)).json;
    sled.terminate();

    let (url, _) = common::postgres::empty_database();
    let copy = sled.cli(&["store", "copy", "--to", &url], &[]);
    copy.assert_ok("store copy");
    assert!(
        copy.stdout.contains("copied 3 API keys"),
        "{}{}",
        copy.stderr,
        copy.stdout
    );
    let pg = Gatehouse::new().postgres(&url).start();
    let admin = pg.login("admin", ADMIN_PW).0;
    // Every record as it was, the revoked one revoked.
    assert_eq!(pg.get(&admin_keys(ann_id), Some(&admin)).json, before);
    let ann = pg.login("ann", PASSWORD).0;
    let mine = pg.get(KEYS, Some(&ann));
    assert_eq!(mine.json.as_array().map(Vec::len), Some(1), "{}", mine.text);
    assert_eq!(mine.json[0]["id"], live.json["id"]);
    assert_eq!(
        pg.get(&admin_keys(bot_id), Some(&admin))
            .json
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The service account is one still: no sign-in.
    pg.login_attempt("ci-bot", "x")
        .expect(401, bodies::wrong_login());
    pg.call("DELETE", &key_path(&live.field("id")), None, Some(&ann))
        .expect_status(204);
    assert_eq!(pg.get(KEYS, Some(&ann)).json, json!([]));
}
