// The second factor over HTTP (SPEC §17), on sled: enrolment and its confirmation, sign-in with
// the password and a code (±1 step, once per step, recovery codes once), the `amr` the tokens
// carry, bad input, turning it off (by the user and by an admin), `require_mfa` routes inline,
// on forward-auth and on the admin API, and the lock-out resistance of the throttle. Codes come
// only from pyotp (tests/it/common/totp.rs), never from gatehouse's own arithmetic.
// tests/it/mfa_replicas.rs does the cross-replica part on PostgreSQL.
use crate::common;
use crate::web_sessions::{set_cookie, COOKIE};

use common::paths::*;
use common::smtp::{subjects, with_smtp, SmtpSink};
use common::totp::{codes_at, fresh_step, next_step, now as unix_now, secret_of};
use common::upstream::Upstream;
use common::*;
use gatehouse::config::{Config, RouteConfig};
use serde_json::{json, Value};
use std::time::Duration;

pub const TOTP: &str = "/api/auth/2fa/totp/";
pub const CONFIRM: &str = "/api/auth/2fa/totp/confirm/";
pub const RECOVERY: &str = "/api/auth/2fa/recovery-codes/";
pub const SESSION: &str = "/api/auth/session/";
const ADMIN_PW: &str = "AdminPass123";
const MAIL_WAIT: Duration = Duration::from_secs(20);

pub const OTP_INVALID: &str = "Invalid two-factor code.";
const TURNED_ON: &str = "Two-factor authentication turned on";
const TURNED_OFF: &str = "Two-factor authentication turned off";
const REPLAYED: &str = "A used sign-in code was tried again";
const LOCKED: &str = "Two-factor sign-in locked";

pub fn otp_required() -> Value {
    json!({"detail": "Two-factor code required.", "code": "otp_required"})
}

pub fn otp_invalid() -> Value {
    json!({"detail": OTP_INVALID, "code": "otp_invalid"})
}

pub fn mfa_required() -> Value {
    json!({"detail": "Two-factor authentication required.", "code": "mfa_required"})
}

fn mfa_state(detail: &str, code: &str) -> Value {
    json!({"detail": detail, "code": code})
}

/// The codes of one secret around one moment, by time step: two before, one before, the
/// current one, one after, two after.
pub struct Window {
    pub before2: String,
    pub before: String,
    pub now: String,
    pub after: String,
    pub after2: String,
}

/// The codes of `secret` around now (call `fresh_step` first so that they stay where they are).
pub fn window(secret: &str) -> Window {
    let t = unix_now();
    let mut c = codes_at(secret, &[t - 60, t - 30, t, t + 30, t + 60]).into_iter();
    let mut next = || c.next().expect("five codes");
    Window {
        before2: next(),
        before: next(),
        now: next(),
        after: next(),
        after2: next(),
    }
}

/// `POST /api/auth/2fa/totp/` for the holder of `access`: the enrolment's secret.
#[track_caller]
pub fn start(g: &Http, access: &str) -> String {
    let r = g.post(TOTP, json!({}), Some(access));
    r.expect_status(200);
    assert_eq!(r.keys(), ["otpauth_uri", "qr_svg", "secret"], "{}", r.text);
    secret_of(&r.json)
}

/// Confirms the pending enrolment of `access` with `code`: the recovery codes.
#[track_caller]
pub fn confirm(g: &Http, access: &str, code: &str) -> Vec<String> {
    let r = g.post(CONFIRM, json!({ "code": code }), Some(access));
    r.expect_status(200);
    assert_eq!(r.keys(), ["recovery_codes"], "{}", r.text);
    strings(&r.json["recovery_codes"])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|c| {
            c.as_str()
                .unwrap_or_else(|| panic!("not text: {c}"))
                .to_string()
        })
        .collect()
}

/// `POST /api/token/` for `username` (with `PASSWORD`) and `otp` as given (any JSON value).
#[track_caller]
pub fn sign_in(g: &Http, username: &str, otp: Value) -> Resp {
    g.post(
        TOKEN,
        json!({"username": username, "password": PASSWORD, "otp": otp}),
        None,
    )
}

/// The same from client address `addr` (the server trusts loopback's `X-Forwarded-For`).
#[track_caller]
fn sign_in_from(g: &Gatehouse, addr: &str, body: Value) -> Resp {
    g.send(
        g.request("POST", TOKEN)
            .header("X-Forwarded-For", addr)
            .json(&body),
    )
}

/// The `amr` claim of a token (`Null` when it has none).
pub fn amr(token: &str) -> Value {
    claims(token).get("amr").cloned().unwrap_or(Value::Null)
}

#[track_caller]
fn assert_otp_pair(r: &Resp) -> (String, String) {
    r.expect_status(200);
    assert_eq!(r.keys(), ["access", "refresh"], "{}", r.text);
    let (access, refresh) = r.tokens();
    assert_eq!(amr(&access), json!(["pwd", "otp"]), "{}", r.text);
    (access, refresh)
}

/// The sorted names of a token's claims.
fn claim_names(token: &str) -> Vec<String> {
    let mut names: Vec<String> = claims(token)
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[track_caller]
fn assert_throttled(r: &Resp) -> u64 {
    r.expect_status(429);
    let detail = r.json["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("Request was throttled. Expected available in "),
        "{}",
        r.text
    );
    r.header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {:?}", r.headers))
}

/// The audit events `query` selects, newest first (one page: the logs here are small).
#[track_caller]
pub fn events(g: &Http, admin: &str, query: &str) -> Vec<Value> {
    let r = g.get(&format!("{AUDIT}?{query}&page_size=500"), Some(admin));
    r.expect_status(200);
    r.json["results"].as_array().cloned().unwrap_or_default()
}

fn with_admin(b: Builder) -> Builder {
    b.superuser("admin", "admin@example.com", ADMIN_PW)
}

/// Scenarios that send many wrong codes from one address on purpose: the (username, address)
/// limit of the login throttle has its own scenario.
fn lenient(c: &mut Config) {
    c.throttle.login_failures_per_username_address = 1_000;
}

// ---------------------------------------------------------------------------------------------

#[test]
fn enrolment_codes_steps_replays_and_recovery_codes() {
    let sink = SmtpSink::start();
    let g = with_admin(with_smtp(&sink, lenient)).start();
    let admin = g.login("admin", ADMIN_PW).0;

    // Without a factor, every answer is what it always was: no `amr`, no new field, and an
    // `otp` sent anyway changes nothing.
    let id = id_of(&g.register("otto"));
    let plain = g.login_attempt("otto", PASSWORD);
    plain.expect_status(200);
    assert_eq!(plain.keys(), ["access", "refresh"]);
    let (access, refresh) = plain.tokens();
    let access_claims = claim_names(&access);
    assert!(
        !access_claims.contains(&"amr".to_string()),
        "{access_claims:?}"
    );
    assert_eq!(amr(&refresh), Value::Null);
    let refreshed = g.refresh(&refresh);
    refreshed.expect_status(200);
    assert_eq!(refreshed.keys(), ["access"]);
    assert_eq!(claim_names(&refreshed.field("access")), access_claims);
    let ignored = sign_in(&g, "otto", json!("123456"));
    ignored.expect_status(200);
    assert_eq!(ignored.keys(), ["access", "refresh"]);
    assert_eq!(claim_names(&ignored.field("access")), access_claims);
    assert_eq!(
        g.get(PROFILE, Some(&access)).keys(),
        ["email", "first_name", "id", "last_name", "username"]
    );

    // Enrolment: a 160-bit secret, its URI and QR code; pending changes no sign-in.
    let e = g.post(TOTP, json!({}), Some(&access));
    e.expect_status(200);
    let secret = secret_of(&e.json);
    let compact = secret.replace(' ', "");
    assert_eq!(compact.len(), 32, "160 bits in base32: {secret}");
    let uri = e.field("otpauth_uri");
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={compact}")),
        "{uri}"
    );
    assert!(e.field("qr_svg").contains("<svg"), "{}", e.text);
    g.login("otto", PASSWORD);

    // Confirmed with the code of the previous step (±1): ten distinct recovery codes.
    fresh_step(20);
    let w = window(&secret);
    g.post(CONFIRM, json!({"code": w.before2}), Some(&access))
        .expect(400, json!({ "code": [OTP_INVALID] }));
    let recovery = confirm(&g, &access, &w.before);
    let mut distinct = recovery.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "{recovery:?}");

    // The password alone: SPEC's 401, with the challenge every 401 carries.
    let r = g.login_attempt("otto", PASSWORD);
    r.expect(401, otp_required());
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(WWW_AUTHENTICATE)
    );
    g.post(
        SESSION,
        json!({"username": "otto", "password": PASSWORD}),
        None,
    )
    .expect(401, otp_required());
    // A wrong password is the wrong password, code or not: nothing about the factor shows.
    g.post(
        TOKEN,
        json!({"username": "otto", "password": "nope-nope-1", "otp": w.now}),
        None,
    )
    .expect(401, wrong_login());
    // Two steps away: refused.
    sign_in(&g, "otto", json!(w.before2)).expect(401, otp_invalid());
    sign_in(&g, "otto", json!(w.after2)).expect(401, otp_invalid());

    // A recovery code works once; the pair it gives carries `amr`, and so does every access
    // token refreshed from it.
    let (_, refresh) = assert_otp_pair(&sign_in(&g, "otto", json!(recovery[0])));
    sign_in(&g, "otto", json!(recovery[0])).expect(401, otp_invalid());
    let refreshed = g.refresh(&refresh);
    refreshed.expect_status(200);
    assert_eq!(amr(&refreshed.field("access")), json!(["pwd", "otp"]));
    let used = events(
        &g,
        &admin,
        &format!("action=mfa.recovery_code_used&target={id}"),
    );
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["details"]["remaining"], 9, "{used:?}");

    // In the next step: the previous step's code, the current one and the next one, each
    // once, in that order.
    next_step();
    let w = window(&secret);
    let (access, _) = assert_otp_pair(&sign_in(&g, "otto", json!(w.before)));
    g.get(PROFILE, Some(&access)).expect_status(200);
    assert_otp_pair(&sign_in(&g, "otto", json!(w.now)));
    let (last, _) = assert_otp_pair(&sign_in(&g, "otto", json!(w.after)));
    // The same code again: a replay, refused, reported and mailed.
    sign_in(&g, "otto", json!(w.after)).expect(401, otp_invalid());
    sign_in(&g, "otto", json!(w.after2)).expect(401, otp_invalid());
    let replays = events(
        &g,
        &admin,
        &format!("action=mfa.replay_refused&target={id}"),
    );
    assert_eq!(replays.len(), 1, "{replays:?}");
    let mails = sink.wait_for("otto@example.com", 2, MAIL_WAIT);
    assert_eq!(subjects(&mails), [TURNED_ON, REPLAYED]);
    let enabled = events(&g, &admin, &format!("action=mfa.enabled&target={id}"));
    assert_eq!(enabled.len(), 1, "{enabled:?}");
    let failed = events(&g, &admin, &format!("action=login.failed&target={id}"));
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap_or_default())
        .collect();
    assert!(reasons.contains(&"otp_required"), "{reasons:?}");
    assert_eq!(
        reasons.iter().filter(|r| **r == "otp_invalid").count(),
        5,
        "{reasons:?}"
    );
    // No code, recovery code or secret in the log.
    let log = g.get(&format!("{AUDIT}?page_size=500"), Some(&admin));
    log.expect_status(200);
    for secretive in recovery.iter().chain([&compact]) {
        assert!(
            !log.text.contains(secretive.as_str()),
            "{secretive} in {}",
            log.text
        );
    }
    let all = log.json["results"].as_array().cloned().unwrap_or_default();
    assert!(all.len() > 10, "{}", log.text);
    for e in all {
        let details = e["details"].to_string();
        for code in [&w.before, &w.now, &w.after, &w.after2] {
            assert!(!details.contains(code.as_str()), "{code} in {details}");
        }
    }
    // A password change from a sign-in with a code keeps saying so in its new pair.
    let changed = g.change_password(&last, PASSWORD, "Fresh-Horse-42");
    changed.expect_status(200);
    assert_eq!(amr(&changed.field("access")), json!(["pwd", "otp"]));
    assert_eq!(amr(&changed.field("refresh")), json!(["pwd", "otp"]));
}

#[test]
fn bad_codes_and_bodies_get_the_documented_answers_and_change_nothing() {
    let g = Gatehouse::new()
        .with_config(|c| {
            lenient(c);
            c.mfa.failures_per_hour = 50;
        })
        .start();
    let (_, access, _) = g.user("bert");
    let (_, carl, _) = g.user("carl");
    // Nothing pending, nothing on.
    g.post(CONFIRM, json!({"code": "123456"}), Some(&carl))
        .expect(
            400,
            mfa_state(
                "No two-factor enrolment is pending; start one first.",
                "mfa_not_pending",
            ),
        );
    let not_enabled = mfa_state(
        "Two-factor authentication is not enabled.",
        "mfa_not_enabled",
    );
    g.post(RECOVERY, json!({"code": "123456"}), Some(&carl))
        .expect(400, not_enabled.clone());
    g.call(
        "DELETE",
        TOTP,
        Some(json!({"password": PASSWORD, "code": "123456"})),
        Some(&carl),
    )
    .expect(400, not_enabled);
    g.post(TOTP, json!({}), None).expect(401, not_provided());

    // A second enrolment replaces the pending one: the first secret's codes no longer count.
    let first = start(&g, &access);
    let secret = start(&g, &access);
    assert_ne!(first, secret);
    g.post(CONFIRM, json!({}), Some(&access))
        .expect(400, json!({ "code": [REQUIRED] }));
    fresh_step(25);
    let stale = window(&first);
    g.post(CONFIRM, json!({"code": stale.now}), Some(&access))
        .expect(400, json!({ "code": [OTP_INVALID] }));
    let w = window(&secret);
    let recovery = confirm(&g, &access, &w.now);

    // While on: no second enrolment (the secret stays), no second confirmation.
    let enabled = mfa_state(
        "Two-factor authentication is already enabled.",
        "mfa_enabled",
    );
    g.post(TOTP, json!({}), Some(&access))
        .expect(400, enabled.clone());
    g.post(CONFIRM, json!({"code": w.after}), Some(&access))
        .expect(400, enabled);

    // A number that is none of the codes around now (DRF's CharField takes numbers as text).
    let taken = [&w.before2, &w.before, &w.now, &w.after, &w.after2];
    let number = (100_000u32..)
        .step_by(111_111)
        .find(|n| !taken.iter().any(|c| **c == n.to_string()))
        .expect("a number that is no code");
    let long = "7".repeat(10 * 1024);
    for (otp, answer) in [
        (json!("12345"), otp_invalid()),
        (json!("1234567"), otp_invalid()),
        (json!("abcdef"), otp_invalid()),
        (json!("12a456"), otp_invalid()),
        (json!(long), otp_invalid()),
        (json!(number), otp_invalid()),
        (json!("   "), otp_required()),
        (json!(""), otp_required()),
    ] {
        sign_in(&g, "bert", otp.clone()).expect(401, answer);
    }
    for (otp, message) in [
        (Value::Null, NULL),
        (json!(true), NOT_STRING),
        (json!(["123456"]), NOT_STRING),
        (json!({"code": "123456"}), NOT_STRING),
    ] {
        sign_in(&g, "bert", otp).expect(400, json!({ "otp": [message] }));
    }
    // Bodies over the cap: 413 on every second-factor path.
    let huge = "9".repeat(70 * 1024);
    let limit = 64 * 1024;
    sign_in(&g, "bert", json!(huge)).expect(413, body_too_large(limit));
    g.post(CONFIRM, json!({ "code": huge }), Some(&access))
        .expect(413, body_too_large(limit));
    g.post(RECOVERY, json!({ "code": huge }), Some(&access))
        .expect(413, body_too_large(limit));
    g.call(
        "DELETE",
        TOTP,
        Some(json!({"password": PASSWORD, "code": huge})),
        Some(&access),
    )
    .expect(413, body_too_large(limit));
    // New recovery codes need a right code.
    g.post(RECOVERY, json!({"code": "000000x"}), Some(&access))
        .expect(400, json!({ "code": [OTP_INVALID] }));

    // The factor is as it was: the original secret's next code and the first set of recovery
    // codes sign in.
    assert_otp_pair(&sign_in(&g, "bert", json!(w.after)));
    assert_otp_pair(&sign_in(&g, "bert", json!(recovery[3])));
    // New recovery codes (asked with a recovery code): the old set dies, the new one works.
    let renewed = g.post(RECOVERY, json!({"code": recovery[4]}), Some(&access));
    renewed.expect_status(200);
    assert_eq!(renewed.keys(), ["recovery_codes"]);
    let renewed = strings(&renewed.json["recovery_codes"]);
    assert_eq!(renewed.len(), 10);
    assert!(renewed.iter().all(|c| !recovery.contains(c)), "{renewed:?}");
    sign_in(&g, "bert", json!(recovery[5])).expect(401, otp_invalid());
    assert_otp_pair(&sign_in(&g, "bert", json!(renewed[0])));
}

#[test]
fn one_code_or_recovery_code_sent_many_times_at_once_signs_in_once() {
    let g = Gatehouse::new()
        .with_config(|c| {
            lenient(c);
            c.mfa.failures_per_hour = 100;
        })
        .start();
    let (_, access, _) = g.user("rita");
    let secret = start(&g, &access);
    fresh_step(15);
    let w = window(&secret);
    let recovery = confirm(&g, &access, &w.before);
    for otp in [&w.now, &recovery[0]] {
        let answers = race(8, |_| sign_in(&g, "rita", json!(otp)));
        let won = answers.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            won,
            1,
            "{:?}",
            answers
                .iter()
                .map(|r| (r.status, &r.text))
                .collect::<Vec<_>>()
        );
        for r in answers.iter().filter(|r| r.status != 200) {
            r.expect(401, otp_invalid());
        }
    }
}

#[test]
fn turning_it_off_ends_every_token_and_session_and_an_admin_can_reset_it() {
    let sink = SmtpSink::start();
    let g = with_admin(with_smtp(&sink, lenient)).start();
    let admin = g.login("admin", ADMIN_PW).0;
    let admin_id = id_of(&g.get(PROFILE, Some(&admin)).json);

    // dina turns hers off with her password and a code.
    let (dina, access, _) = g.user("dina");
    let secret = start(&g, &access);
    fresh_step(20);
    let w = window(&secret);
    let recovery = confirm(&g, &access, &w.before);
    let (t_access, t_refresh) = assert_otp_pair(&sign_in(&g, "dina", json!(w.now)));
    let s = g.post(
        SESSION,
        json!({"username": "dina", "password": PASSWORD, "otp": recovery[0]}),
        None,
    );
    s.expect_status(200);
    let (session, _) = set_cookie(&s, COOKIE).expect("a session cookie");
    let cookie = format!("{COOKIE}={session}");
    let with_cookie = || g.with_header("GET", PROFILE, "Cookie", &cookie);
    with_cookie().expect_status(200);

    let off = |body: Value| g.call("DELETE", TOTP, Some(body), Some(&t_access));
    off(json!({})).expect(400, json!({"password": [REQUIRED], "code": [REQUIRED]}));
    off(json!({"password": "Wrong-Pass-1", "code": w.after}))
        .expect(400, json!({"password": ["Wrong password."]}));
    off(json!({"password": PASSWORD, "code": w.after2}))
        .expect(400, json!({ "code": [OTP_INVALID] }));
    // Nothing changed.
    g.get(PROFILE, Some(&t_access)).expect_status(200);
    with_cookie().expect_status(200);
    g.login_attempt("dina", PASSWORD)
        .expect(401, otp_required());

    let done = off(json!({"password": PASSWORD, "code": w.after}));
    done.expect_status(204);
    assert!(done.text.is_empty(), "{:?}", done.text);
    // Every earlier token and session is refused; the password alone signs in.
    g.get(PROFILE, Some(&access)).expect_status(401);
    g.get(PROFILE, Some(&t_access)).expect_status(401);
    g.refresh(&t_refresh).expect_status(401);
    with_cookie().expect_status(401);
    let (again, _) = g.login("dina", PASSWORD);
    assert_eq!(amr(&again), Value::Null);
    let off_events = events(&g, &admin, &format!("action=mfa.disabled&target={dina}"));
    assert_eq!(off_events.len(), 1, "{off_events:?}");
    assert_eq!(off_events[0]["actor_id"], dina);
    let mails = sink.wait_for("dina@example.com", 2, MAIL_WAIT);
    assert_eq!(subjects(&mails), [TURNED_ON, TURNED_OFF]);

    // emil lost his phone: an admin resets it.
    let (emil, e_access, _) = g.user("emil");
    let secret = start(&g, &e_access);
    fresh_step(10);
    let recovery = confirm(&g, &e_access, &window(&secret).now);
    let (e_access, e_refresh) = assert_otp_pair(&sign_in(&g, "emil", json!(recovery[0])));
    let detail = |token: &str| g.get(&admin_user(emil), Some(token));
    let d = detail(&admin);
    d.expect_status(200);
    assert_eq!(d.json["mfa"], true, "{}", d.text);
    let patch = |body: Value| g.call("PATCH", &admin_user(emil), Some(body), Some(&admin));
    patch(json!({"mfa": true})).expect(
        400,
        json!({"mfa": ["A second factor can only be turned on by its user; an admin can only reset it (false)."]}),
    );
    g.call(
        "PATCH",
        &admin_user(emil),
        Some(json!({"mfa": false})),
        Some(&again),
    )
    .expect(403, forbidden());
    assert_eq!(detail(&admin).json["mfa"], true);
    g.get(PROFILE, Some(&e_access)).expect_status(200);

    let reset = patch(json!({"mfa": false}));
    reset.expect_status(200);
    assert_eq!(reset.json["mfa"], false, "{}", reset.text);
    assert_eq!(detail(&admin).json["mfa"], false);
    g.get(PROFILE, Some(&e_access)).expect_status(401);
    g.refresh(&e_refresh).expect_status(401);
    let (fresh, _) = g.login("emil", PASSWORD);
    assert_eq!(amr(&fresh), Value::Null);
    let reset_events = events(&g, &admin, &format!("action=mfa.disabled&target={emil}"));
    assert_eq!(reset_events.len(), 1, "{reset_events:?}");
    assert_eq!(reset_events[0]["actor_id"], admin_id, "{reset_events:?}");
    assert_eq!(reset_events[0]["details"]["reset_by_admin"], true);
    let mails = sink.wait_for("emil@example.com", 2, MAIL_WAIT);
    assert_eq!(subjects(&mails), [TURNED_ON, TURNED_OFF]);
    // A second reset of nobody's factor: nothing to do, nothing recorded.
    patch(json!({"mfa": false})).expect_status(200);
    g.get(PROFILE, Some(&fresh)).expect_status(200);
    assert_eq!(
        events(&g, &admin, &format!("action=mfa.disabled&target={emil}")).len(),
        1
    );

    // An enrolment still pending is no factor: a reset does nothing to its user (no sign-out,
    // no event, no mail), and the enrolment can still be finished.
    let (finn, f_access, _) = g.user("finn");
    let secret = start(&g, &f_access);
    let reset = g.call(
        "PATCH",
        &admin_user(finn),
        Some(json!({"mfa": false})),
        Some(&admin),
    );
    reset.expect_status(200);
    assert_eq!(reset.json["mfa"], false, "{}", reset.text);
    g.get(PROFILE, Some(&f_access)).expect_status(200);
    assert!(events(&g, &admin, &format!("action=mfa.disabled&target={finn}")).is_empty());
    fresh_step(5);
    confirm(&g, &f_access, &window(&secret).now);
    let mails = sink.wait_for("finn@example.com", 1, MAIL_WAIT);
    std::thread::sleep(common::smtp::QUIET);
    assert_eq!(
        subjects(&sink.to("finn@example.com")),
        [TURNED_ON],
        "{mails:?}"
    );
}

#[test]
fn require_mfa_routes_inline_on_forward_auth_and_on_the_admin_api() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = with_admin(Gatehouse::new())
        .with_config(move |c| {
            lenient(c);
            c.forward_auth.enabled = true;
            c.admin_api.require_mfa = true;
            c.routes = vec![
                RouteConfig {
                    require_mfa: true,
                    ..route("/mfa/", &[addr])
                },
                route("/svc/", &[addr]),
            ];
        })
        .start();
    // fay's token from before she enrolled says password only.
    let (fay, pwd_only, _) = g.user("fay");
    let secret = start(&g, &pwd_only);
    fresh_step(10);
    let w = window(&secret);
    let recovery = confirm(&g, &pwd_only, &w.before);
    let (with_otp, _) = assert_otp_pair(&sign_in(&g, "fay", json!(w.now)));

    // Inline.
    g.get("/mfa/x", Some(&pwd_only)).expect(403, mfa_required());
    g.get("/mfa/x", None).expect(401, not_provided());
    assert_eq!(up.count(), 0, "refused requests never reach the upstream");
    g.get("/svc/x", Some(&pwd_only)).expect_status(200);
    g.get("/mfa/x", Some(&with_otp)).expect_status(200);
    let seen = up.last();
    assert_eq!(seen.uri, "/mfa/x");
    assert_eq!(seen.header_values("x-user-id"), vec![fay.to_string()]);
    assert_eq!(seen.header_values("x-user-name"), vec!["fay".to_string()]);

    // Sessions: one signed in with a code passes, one with the password alone does not.
    let s = g.post(
        SESSION,
        json!({"username": "fay", "password": PASSWORD, "otp": recovery[0]}),
        None,
    );
    s.expect_status(200);
    let (fay_session, _) = set_cookie(&s, COOKIE).expect("a session cookie");
    g.with_header(
        "GET",
        "/mfa/y",
        "Cookie",
        &format!("{COOKIE}={fay_session}"),
    )
    .expect_status(200);
    assert_eq!(up.last().uri, "/mfa/y");
    g.register("gus");
    let s = g.post(
        SESSION,
        json!({"username": "gus", "password": PASSWORD}),
        None,
    );
    s.expect_status(200);
    let (gus_session, _) = set_cookie(&s, COOKIE).expect("a session cookie");
    g.with_header(
        "GET",
        "/mfa/y",
        "Cookie",
        &format!("{COOKIE}={gus_session}"),
    )
    .expect(403, mfa_required());

    // Forward-auth (a Traefik-shaped ask): the same decisions, identity on the answer.
    let forwarded = up.count();
    let ask = |uri: &str, token: &str| {
        g.send(
            g.request("GET", "/_gatehouse/auth")
                .header("X-Forwarded-Method", "GET")
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "app.example.com")
                .header("X-Forwarded-Uri", uri)
                .bearer_auth(token),
        )
    };
    ask("/mfa/z", &pwd_only).expect(403, mfa_required());
    let r = ask("/mfa/z", &with_otp);
    r.expect_status(200);
    assert_eq!(r.header("x-user-name").as_deref(), Some("fay"));
    assert_eq!(r.header("x-user-id"), Some(fay.to_string()));
    ask("/svc/z", &pwd_only).expect_status(200);
    assert_eq!(
        up.count(),
        forwarded,
        "forward-auth forwards nothing itself"
    );

    // `[admin_api] require_mfa`: a staff token of the password alone is refused there only.
    let admin_pwd = g.login("admin", ADMIN_PW).0;
    g.get(ADMIN_USERS, Some(&admin_pwd))
        .expect(403, mfa_required());
    g.get(PROFILE, Some(&admin_pwd)).expect_status(200);
    // Non-staff callers get the usual 403, whatever their sign-in.
    g.get(ADMIN_USERS, Some(&with_otp)).expect(403, forbidden());
    let secret = start(&g, &admin_pwd);
    fresh_step(10);
    let w = window(&secret);
    confirm(&g, &admin_pwd, &w.now);
    let r = g.post(
        TOKEN,
        json!({"username": "admin", "password": ADMIN_PW, "otp": w.after}),
        None,
    );
    let (admin_otp, _) = assert_otp_pair(&r);
    let list = g.get(ADMIN_USERS, Some(&admin_otp));
    list.expect_status(200);
    assert!(
        list.json.as_array().is_some_and(|a| a.len() == 3),
        "{}",
        list.text
    );
}

/// The password step's throttle with `[proxy] trusted_proxies` so that `X-Forwarded-For`
/// chooses the client address.
fn behind_a_proxy(edit: impl FnOnce(&mut Config)) -> Builder {
    Gatehouse::new().with_config(|c| {
        c.proxy.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
        c.throttle.login_failures_per_username_address = 5;
        c.throttle.window_seconds = 60;
        edit(c);
    })
}

#[test]
fn a_strangers_failures_do_not_lock_the_user_out_and_a_spread_attack_is_bounded() {
    let g = behind_a_proxy(|c| {
        c.throttle.login_failures_per_username = 8;
        c.throttle.username_window_seconds = 3600;
    })
    .start();
    g.register("hana");
    let attempt = |addr: &str, password: &str| {
        sign_in_from(&g, addr, json!({"username": "hana", "password": password}))
    };
    for _ in 0..5 {
        attempt("198.51.100.1", "Wrong-Guess-1").expect(401, wrong_login());
    }
    // The stranger's address is throttled, even with the right password...
    let wait = assert_throttled(&attempt("198.51.100.1", PASSWORD));
    assert!((1..=60).contains(&wait), "{wait}");
    // ...and hana, from her own address, is not.
    attempt("203.0.113.5", PASSWORD).expect_status(200);
    // Spread over more addresses, the per-username bound holds: 8 failures in the hour.
    for i in 2..5 {
        attempt(&format!("198.51.100.{i}"), "Wrong-Guess-1").expect(401, wrong_login());
    }
    let wait = assert_throttled(&attempt("198.51.100.77", "Wrong-Guess-1"));
    assert!(wait > 60 && wait <= 3600, "the long window's wait: {wait}");
    assert_throttled(&attempt("203.0.113.5", PASSWORD));
    // Another user is not touched by any of it.
    g.register("ines");
    sign_in_from(
        &g,
        "198.51.100.1",
        json!({"username": "ines", "password": PASSWORD}),
    )
    .expect_status(200);
}

#[test]
fn failed_codes_count_in_the_login_throttle_and_ten_lock_the_second_step_everywhere() {
    let sink = SmtpSink::start();
    let g = sending_to_sink(&sink);
    let (_, access, _) = g.user("ivan");
    let secret = start(&g, &access);
    fresh_step(25);
    let w = window(&secret);
    let recovery = confirm(&g, &access, &w.before);
    let code = |addr: &str, otp: &str| {
        sign_in_from(
            &g,
            addr,
            json!({"username": "ivan", "password": PASSWORD, "otp": otp}),
        )
    };
    // Five wrong codes from one address: that address is throttled like wrong passwords.
    for i in 0..5 {
        let wrong = if i % 2 == 0 { &w.before2 } else { &w.after2 };
        code("198.51.100.1", wrong).expect(401, otp_invalid());
    }
    assert_throttled(&code("198.51.100.1", &w.now));
    // Five more from elsewhere: ten in the hour lock the second step.
    for i in 0..4 {
        let wrong = if i % 2 == 0 { &w.before2 } else { &w.after2 };
        code("198.51.100.2", wrong).expect(401, otp_invalid());
    }
    code("198.51.100.3", &w.after2).expect(401, otp_invalid());
    // Locked: even the right code, and a recovery code, from any address, a fresh one too.
    let wait = assert_throttled(&code("198.51.100.4", &w.now));
    assert!(wait > 3000 && wait <= 3600, "an hour's lock: {wait}");
    assert_throttled(&code("203.0.113.77", &w.after));
    assert_throttled(&code("203.0.113.78", &recovery[0]));
    let mails = sink.wait_for("ivan@example.com", 2, MAIL_WAIT);
    assert_eq!(subjects(&mails), [TURNED_ON, LOCKED]);
}

fn sending_to_sink(sink: &SmtpSink) -> Gatehouse {
    common::smtp::sending_to(behind_a_proxy(|_| {}), sink).start()
}

/// A browser signed in with the password alone, on a `require_mfa` + `login_redirect` page:
/// sent to the code page (to step up, or on to enrolment), inline and the way each ingress
/// wants it; scripts get the 403 JSON.
#[test]
fn browsers_on_a_require_mfa_page_are_sent_to_the_code_page_inline_and_through_every_ingress() {
    const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .with_config(move |c| {
            lenient(c);
            c.forward_auth.enabled = true;
            c.routes = vec![RouteConfig {
                require_mfa: true,
                login_redirect: true,
                ..route("/mfa/", &[addr])
            }];
        })
        .start();
    g.register("hal");
    let s = g.post(
        SESSION,
        json!({"username": "hal", "password": PASSWORD}),
        None,
    );
    s.expect_status(200);
    let (session, _) = set_cookie(&s, COOKIE).expect("a session cookie");
    let cookie = format!("{COOKIE}={session}");
    let page = |extra: &[(&str, &str)]| {
        let mut rb = g
            .request("GET", "/mfa/report?week=49")
            .header("Cookie", cookie.as_str());
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        g.send(rb)
    };
    // Inline: the browser to the code page, keeping where it was going.
    let r = page(&[("Accept", HTML)]);
    r.expect_status(302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/accounts/login/code/?next=/mfa/report%3Fweek%3D49")
    );
    // A script of the page (XHR), or a client that wants JSON: the 403.
    page(&[("Accept", HTML), ("X-Requested-With", "XMLHttpRequest")]).expect(403, mfa_required());
    page(&[("Accept", "application/json")]).expect(403, mfa_required());
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    // The code page itself, for hal who has no factor yet: the way to set one up.
    let code_page = g.send(
        g.request("GET", "/accounts/login/code/?next=/mfa/report")
            .header("Cookie", cookie.as_str()),
    );
    code_page.expect_status(200);
    assert!(
        code_page.text.contains("#two-factor"),
        "a link to the set-up: {}",
        code_page.text
    );
    // nginx: 401 with the absolute way to step up (error_page 401 =302 $login).
    let ask = |shape: &[(&str, &str)]| {
        let mut rb = g
            .request("GET", "/_gatehouse/auth")
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Proto", "https")
            .header("Accept", HTML)
            .header("Cookie", cookie.as_str());
        for (k, v) in shape {
            rb = rb.header(*k, *v);
        }
        g.send(rb)
    };
    let r = ask(&[("X-Original-URI", "/mfa/r?x=1")]);
    r.expect_status(401);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://app.example.com/accounts/login/code/?next=https%3A//app.example.com/mfa/r%3Fx%3D1")
    );
    // Traefik: the redirect itself (303 for a POST).
    let r = ask(&[
        ("X-Forwarded-Uri", "/mfa/r"),
        ("X-Forwarded-Method", "POST"),
    ]);
    r.expect_status(303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://app.example.com/accounts/login/code/?next=https%3A//app.example.com/mfa/r")
    );
}

/// `check-config` says how the second factor is set up and which routes require it.
#[test]
fn check_config_names_the_second_factor_settings_and_routes() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = Gatehouse::new()
        .with_config(move |c| {
            c.mfa.issuer = "Acme".into();
            c.mfa.failures_per_hour = 7;
            c.admin_api.require_mfa = true;
            c.routes = vec![RouteConfig {
                require_mfa: true,
                ..route("/mfa/", &[addr])
            }];
        })
        .build();
    let run = g.cli(&["check-config"], &[]);
    run.assert_ok("check-config");
    assert!(
        run.stdout.contains(
            "second factor: issuer \"Acme\", locked for 60 min after 7 wrong codes in an hour, browser step 5 min; console require_mfa on, admin API require_mfa on"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("route /mfa/ -> ") && run.stdout.contains("second factor required"),
        "{}",
        run.stdout
    );
}
