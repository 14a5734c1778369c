// Mail (SPEC §10) against a real SMTP server on loopback (aiosmtpd, tests/it/common/smtp.rs): the
// seed's "Password Changed" notice, password reset end to end, email verification, the
// durable outbox across kill -9 and a mail server that is down, the caps, and that no token
// ever reaches the logs. The console backend is checked on its own.
use crate::common;

use common::paths::*;
use common::smtp::*;
use common::*;
use gatehouse::config::{ConsoleFormat, MailBackend};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NEW_PASSWORD: &str = "Fresh-Horse-42";
const MAIL_WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_password_change_sends_the_seed_notice() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |_| {}).start();
    let (_, access, _) = g.user("ann");
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    let mails = sink.wait_for("ann@example.com", 1, MAIL_WAIT);
    assert_eq!(mails[0]["subject"], "Password Changed", "{:?}", mails);
    assert_eq!(
        mails[0]["body"].as_str().map(str::trim),
        Some("Your password was changed successfully.")
    );
    assert_eq!(mails[0]["from"], "accounts@gatehouse.test");
    let sent = r#"kind="password_changed",result="sent""#;
    eventually("the sent counter", || {
        (metric(&g, "gatehouse_mail_sent_total", sent) == 1.0).then_some(())
    });
    // Registering sent nothing (verification is off by default): that one mail was all.
    assert_eq!(sink.messages().len(), 1, "{:?}", sink.messages());
}

#[test]
fn a_full_password_reset() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |_| {}).start();
    let (id, access, refresh) = g.user("bea");
    reset(&g, "BEA@example.com").expect_status(204);
    let mails = sink.wait_for("bea@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Password Reset"]);
    let (uid, token) = link_parts(&mails[0], RESET_LINK);
    // Django's urlsafe_base64_encode(force_bytes(1)).
    assert_eq!((id, uid.as_str()), (1, "MQ"));
    // djoser's errors, in its order.
    confirm(&g, "Zm9v", &token, NEW_PASSWORD).expect(
        400,
        json!({"uid": ["Invalid user id or user doesn't exist."]}),
    );
    confirm(&g, &uid, "1-abc", NEW_PASSWORD)
        .expect(400, json!({"token": ["Invalid token for given user."]}));
    let weak = confirm(&g, &uid, &token, "short");
    weak.expect_status(400);
    assert_eq!(weak.keys(), ["new_password"], "{}", weak.text);
    g.post(PASSWORD_RESET_CONFIRM, json!({}), None).expect(
        400,
        json!({"uid": [REQUIRED], "token": [REQUIRED], "new_password": [REQUIRED]}),
    );
    // The real thing.
    let done = confirm(&g, &uid, &token, NEW_PASSWORD);
    done.expect_status(204);
    assert!(done.text.is_empty(), "204 has no body: {:?}", done.text);
    // The same token a second time: it was made over the old password.
    confirm(&g, &uid, &token, "Another-Pass-77")
        .expect(400, json!({"token": ["Invalid token for given user."]}));
    // Every earlier session died; the new password works, the old one not.
    g.get(PROFILE, Some(&access)).expect_status(401);
    g.refresh(&refresh).expect_status(401);
    g.login_attempt("bea", PASSWORD).expect_status(401);
    g.login("bea", NEW_PASSWORD);
    let logged_in_by = now();
    // The reset is a password change: the seed's notice follows.
    let mails = sink.wait_for("bea@example.com", 2, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Password Reset", "Password Changed"]);

    // A link dies with a later login.
    reset(&g, "bea@example.com").expect_status(204);
    let mails = sink.wait_for("bea@example.com", 3, MAIL_WAIT);
    let (uid, token) = link_parts(&mails[2], RESET_LINK);
    // last_login has a resolution of one second: the next login is in a later one.
    wait_until_second(logged_in_by + 1);
    g.login("bea", NEW_PASSWORD);
    confirm(&g, &uid, &token, "Another-Pass-77")
        .expect(400, json!({"token": ["Invalid token for given user."]}));
    g.login("bea", NEW_PASSWORD);
}

#[test]
fn an_expired_link_is_refused() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |c| c.email.token_lifetime_seconds = 1).start();
    g.register("cyd");
    reset(&g, "cyd@example.com").expect_status(204);
    let mails = sink.wait_for("cyd@example.com", 1, MAIL_WAIT);
    let (uid, token) = link_parts(&mails[0], RESET_LINK);
    // The link dies once more than its 1 s has passed since the second it was made in (the
    // token's `<timestamp base36>-` prefix).
    let made = token
        .split_once('-')
        .and_then(|(ts, _)| u64::from_str_radix(ts, 36).ok())
        .unwrap_or_else(|| panic!("a timestamp in {token}"));
    assert!(
        made <= now() && now() < made + 60,
        "made {made}: unix seconds, now {}",
        now()
    );
    wait_until_second(made + 2);
    confirm(&g, &uid, &token, NEW_PASSWORD)
        .expect(400, json!({"token": ["Invalid token for given user."]}));
    g.login("cyd", PASSWORD);
}

#[test]
fn an_unknown_address_gets_the_same_answer_in_the_same_time_and_no_mail() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |_| {}).start();
    g.register("dan");
    let timed = |email: &str| {
        let started = Instant::now();
        let r = reset(&g, email);
        (r, started.elapsed())
    };
    let floor = Duration::from_millis(g.config.email.answer_floor_ms);
    let (known, known_took) = timed("dan@example.com");
    let (unknown, unknown_took) = timed("nobody@example.com");
    for (r, took) in [(&known, known_took), (&unknown, unknown_took)] {
        r.expect_status(204);
        assert!(r.text.is_empty(), "{}", r.text);
        assert!(
            took >= floor && took < floor + Duration::from_millis(700),
            "{} took {took:?} (floor {floor:?})",
            r.request
        );
    }
    let gap = known_took.abs_diff(unknown_took);
    assert!(
        gap < Duration::from_millis(150),
        "known {known_took:?} vs unknown {unknown_took:?}"
    );
    // Resend, too.
    g.post(
        EMAIL_VERIFY_RESEND,
        json!({"email": "nobody@example.com"}),
        None,
    )
    .expect_status(204);
    // Not an address at all: djoser's message.
    reset(&g, "not-an-address").expect(400, json!({"email": ["Enter a valid email address."]}));
    reset(&g, "").expect(400, json!({"email": [BLANK]}));
    // Mail is sent in order: once dan's second mail is there, nothing went to nobody.
    let access = g.login("dan", PASSWORD).0;
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    sink.wait_for("dan@example.com", 2, MAIL_WAIT);
    assert!(
        sink.to("nobody@example.com").is_empty(),
        "{:?}",
        sink.messages()
    );
    assert_eq!(sink.messages().len(), 2, "{:?}", sink.messages());
}

#[test]
fn verification_on_register_and_the_stale_link() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |c| c.email.verify_on_register = true)
        .superuser("root", "root@example.com", "Root-Pass-123")
        .start();
    let id = id_of(&g.register("eve"));
    let mails = sink.wait_for("eve@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Verify your email address"]);
    let (uid, token) = link_parts(&mails[0], VERIFY_LINK);
    let admin = g.login("root", "Root-Pass-123").0;
    let detail = g.get(&admin_user(id), Some(&admin));
    assert_eq!(
        detail.json["email_verified"],
        json!(false),
        "{}",
        detail.text
    );
    // Login works without a verified address while it is not required.
    g.login("eve", PASSWORD);
    g.post(EMAIL_VERIFY, json!({"uid": uid, "token": "x-y"}), None)
        .expect(400, json!({"token": ["Invalid token for given user."]}));
    g.post(
        EMAIL_VERIFY,
        json!({"uid": "MTIzNDU2", "token": token}),
        None,
    )
    .expect(
        400,
        json!({"uid": ["Invalid user id or user doesn't exist."]}),
    );
    let ok = g.post(EMAIL_VERIFY, json!({"uid": uid, "token": token}), None);
    ok.expect_status(204);
    g.post(EMAIL_VERIFY, json!({"uid": uid, "token": token}), None)
        .expect(403, json!({"detail": "Stale token for given user."}));
    let detail = g.get(&admin_user(id), Some(&admin));
    assert_eq!(
        detail.json["email_verified"],
        json!(true),
        "{}",
        detail.text
    );
    let list = g.get(ADMIN_USERS, Some(&admin));
    let rows = list.json.as_array().expect("the bare list");
    assert!(
        rows.iter().all(|u| u["email_verified"] == json!(true)),
        "{}",
        list.text
    );
    // A verified address gets no more verification mails.
    g.post(
        EMAIL_VERIFY_RESEND,
        json!({"email": "eve@example.com"}),
        None,
    )
    .expect_status(204);
    // The email-changed notice goes to the old address, a new verification to the new one.
    let eve = g.login("eve", PASSWORD).0;
    g.call(
        "PATCH",
        PROFILE,
        Some(json!({"email": "eve2@example.com"})),
        Some(&eve),
    )
    .expect_status(200);
    let old = sink.wait_for("eve@example.com", 2, MAIL_WAIT);
    assert_eq!(
        subjects(&old),
        ["Verify your email address", "Email Changed"]
    );
    assert!(old[1]["body"]
        .as_str()
        .unwrap_or_default()
        .contains("eve2@example.com"));
    let new = sink.wait_for("eve2@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&new), ["Verify your email address"]);
    // The old link was for the old address; the new one verifies the new address.
    let (uid2, token2) = link_parts(&new[0], VERIFY_LINK);
    assert_ne!(token2, token);
    g.post(EMAIL_VERIFY, json!({"uid": uid2, "token": token2}), None)
        .expect_status(204);
}

#[test]
fn without_verification_on_register_no_mail_and_users_start_unverified() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |_| {})
        .superuser("root", "root@example.com", "Root-Pass-123")
        .start();
    let id = id_of(&g.register("fay"));
    let admin = g.login("root", "Root-Pass-123").0;
    let list = g.get(ADMIN_USERS, Some(&admin));
    let fay = list
        .json
        .as_array()
        .and_then(|rows| rows.iter().find(|u| u["id"] == json!(id)).cloned())
        .expect("fay in the list");
    assert_eq!(fay["email_verified"], json!(false), "{}", list.text);
    // Resend is how an existing user gets a link.
    g.post(
        EMAIL_VERIFY_RESEND,
        json!({"email": "fay@example.com"}),
        None,
    )
    .expect_status(204);
    let mails = sink.wait_for("fay@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Verify your email address"]);
    assert!(sink.to("root@example.com").is_empty());
}

#[test]
fn require_verified_email_keeps_unverified_users_out() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |c| {
        c.email.verify_on_register = true;
        c.email.require_verified_email = true;
    })
    .superuser("root", "root@example.com", "Root-Pass-123")
    .start();
    // The operator's superuser is verified.
    g.login("root", "Root-Pass-123");
    g.register("gil");
    g.login_attempt("gil", PASSWORD).expect(
        401,
        json!({"detail": "No active account found with the given credentials"}),
    );
    g.post(
        EMAIL_VERIFY_RESEND,
        json!({"email": "gil@example.com"}),
        None,
    )
    .expect_status(204);
    let mails = sink.wait_for("gil@example.com", 2, MAIL_WAIT);
    let (uid, token) = link_parts(&mails[1], VERIFY_LINK);
    g.post(EMAIL_VERIFY, json!({"uid": uid, "token": token}), None)
        .expect_status(204);
    g.login("gil", PASSWORD);
}

#[test]
fn the_outbox_survives_kill_9_between_the_change_and_the_send() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let mut g = with_smtp(&sink, |_| {}).start();
    let (_, access, _) = g.user("hal");
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    // The sender tried and failed (the server is down): the mail is in the outbox.
    g.wait_for_log("try 1 failed");
    g.kill();
    sink.resume();
    g.restart();
    let mails = sink.wait_for("hal@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Password Changed"]);
    // Once: nothing else arrives.
    std::thread::sleep(QUIET);
    assert_eq!(sink.messages().len(), 1, "{:?}", sink.messages());
    eventually("an empty outbox", || {
        (metric(&g, "gatehouse_mail_outbox_depth", "").abs() < f64::EPSILON
            || g.ops()
                .get("/metrics", None)
                .text
                .contains("gatehouse_mail_outbox_depth 0"))
        .then_some(())
    });
}

#[test]
fn a_mail_server_that_is_down_slows_nothing_and_gets_the_mail_when_back() {
    let mut sink = SmtpSink::start();
    sink.stop();
    let g = with_smtp(&sink, |_| {}).start();
    let (_, access, _) = g.user("ivy");
    let started = Instant::now();
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    let (new_access, _) = g.login("ivy", NEW_PASSWORD);
    g.get(PROFILE, Some(&new_access)).expect_status(200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answers while the mail server is down took {:?}",
        started.elapsed()
    );
    let failed = r#"kind="password_changed",result="failed""#;
    // Down for a while: a second try fails too (backoff after the first: 1 s).
    eventually("two failed tries", || {
        (metric(&g, "gatehouse_mail_sent_total", failed) >= 2.0).then_some(())
    });
    assert!(sink.messages().is_empty());
    sink.resume();
    let mails = sink.wait_for("ivy@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Password Changed"]);
}

#[test]
fn caps_per_address_drop_mails_but_answer_the_same() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |c| c.email.max_per_address_per_hour = 2).start();
    let (_, access, _) = g.user("jon");
    for _ in 0..5 {
        reset(&g, "jon@example.com").expect_status(204);
    }
    let capped = r#"kind="password_reset",result="capped""#;
    assert_eq!(metric(&g, "gatehouse_mail_sent_total", capped), 3.0);
    // Notices are not capped; once it is there, every reset mail that will come has come.
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    let mails = sink.wait_for("jon@example.com", 3, MAIL_WAIT);
    assert_eq!(
        subjects(&mails),
        ["Password Reset", "Password Reset", "Password Changed"]
    );
}

#[test]
fn reset_requests_are_throttled_per_address_like_logins() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |c| {
        c.throttle.login_failures_per_username_address = 2
    })
    .start();
    for _ in 0..2 {
        reset(&g, "kim@example.com").expect_status(204);
    }
    let r = reset(&g, "KIM@example.com");
    r.expect_status(429);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    // Another address is not held up.
    reset(&g, "lea@example.com").expect_status(204);
}

#[test]
fn no_token_or_link_reaches_the_logs() {
    let sink = SmtpSink::start();
    let g = with_smtp(&sink, |_| {}).start();
    g.register("max");
    reset(&g, "max@example.com").expect_status(204);
    let mails = sink.wait_for("max@example.com", 1, MAIL_WAIT);
    let (uid, token) = link_parts(&mails[0], RESET_LINK);
    confirm(&g, &uid, &token, NEW_PASSWORD).expect_status(204);
    sink.wait_for("max@example.com", 2, MAIL_WAIT);
    let log = g.wait_for_log("password/reset/confirm");
    let mac = token.split_once('-').map(|(_, m)| m).expect("ts-mac");
    for secret in [token.as_str(), mac, RESET_LINK, NEW_PASSWORD] {
        assert!(!log.contains(secret), "{secret:?} is in the log:\n{log}");
    }
}

#[test]
fn the_console_backend_prints_whole_mails_and_nothing_else_carries_the_token() {
    let g = Gatehouse::new()
        .with_config(|c| c.email.console_format = ConsoleFormat::Json)
        .start();
    assert_eq!(g.config.email.backend, MailBackend::Console, "the default");
    g.register("ned");
    reset(&g, "ned@example.com").expect_status(204);
    let log = g.wait_for_log("\"mail\":");
    let line = log
        .lines()
        .find(|l| l.starts_with("{\"mail\":"))
        .expect("one JSON line per mail");
    let mail: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(mail["mail"]["to"], "ned@example.com");
    assert_eq!(mail["mail"]["subject"], "Password Reset");
    let (uid, token) = link_parts(&mail["mail"], RESET_LINK);
    confirm(&g, &uid, &token, NEW_PASSWORD).expect_status(204);
    let log = g.wait_for_log("Password Changed");
    let rest: String = log
        .lines()
        .filter(|l| !l.starts_with("{\"mail\":"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !rest.contains(&token),
        "the token outside the mail:\n{rest}"
    );

    // The text format: a framed block, as Django's console backend.
    let g = Gatehouse::new().start();
    let (_, access, _) = g.user("oda");
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    let log = g.wait_for_log("Your password was changed successfully.");
    assert!(
        log.contains("To: oda@example.com\nSubject: Password Changed\n\nYour password was changed successfully.\n"),
        "{log}"
    );
}

#[test]
fn a_mail_server_that_never_answers_slows_no_answer() {
    // Accepts connections and says nothing: the SMTP exchange can only time out.
    let listener = common::process::listener();
    let port = listener.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming().take(4) {
            open.push(conn);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let g = Gatehouse::new()
        .with_config(|c| {
            c.email.backend = MailBackend::Smtp;
            c.email.smtp_timeout_seconds = 2;
        })
        .env(
            "GATEHOUSE_EMAIL_SMTP_URL",
            &format!("smtp://127.0.0.1:{port}?tls=none"),
        )
        .start();
    let (_, access, _) = g.user("pia");
    let started = Instant::now();
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    for _ in 0..3 {
        reset(&g, "pia@example.com").expect_status(204);
        g.login("pia", NEW_PASSWORD);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a silent mail server held the API up: {:?}",
        started.elapsed()
    );
    let failed = r#"kind="password_changed",result="failed""#;
    let deadline = Instant::now() + MAIL_WAIT;
    while metric(&g, "gatehouse_mail_sent_total", failed) < 1.0 {
        assert!(Instant::now() < deadline, "the timeout never ended the try");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held);
}

#[test]
fn smtp_with_starttls_and_with_implicit_tls() {
    for mode in ["starttls", "implicit"] {
        let sink = SmtpSink::start_tls(mode);
        // The test CA is what rustls trusts here (rustls-native-certs reads SSL_CERT_FILE).
        let g = with_smtp(&sink, |_| {})
            .env("SSL_CERT_FILE", &sink.ca_file().display().to_string())
            .start();
        let (_, access, _) = g.user("quin");
        g.change_password(&access, PASSWORD, NEW_PASSWORD)
            .expect_status(200);
        let mails = sink.wait_for("quin@example.com", 1, MAIL_WAIT);
        assert_eq!(subjects(&mails), ["Password Changed"], "{mode}");
    }
    // A server whose certificate nobody vouches for gets no mail (and no plain fallback).
    let sink = SmtpSink::start_tls("starttls");
    let g = with_smtp(&sink, |_| {}).start();
    let (_, access, _) = g.user("rex");
    g.change_password(&access, PASSWORD, NEW_PASSWORD)
        .expect_status(200);
    g.wait_for_log("try 1 failed");
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());
}

#[test]
fn smtp_without_a_usable_url_is_refused_at_start_and_the_password_never_shows() {
    let g = Gatehouse::new()
        .with_config(|c| c.email.backend = MailBackend::Smtp)
        .build();
    g.cli(&["check-config"], &[])
        .assert_failed("smtp without a URL")
        .assert_says("GATEHOUSE_EMAIL_SMTP_URL", "names the variable");
    let mut serve = g.command();
    serve.arg("serve");
    run(serve, Duration::from_secs(30))
        .assert_failed("serve without a URL")
        .assert_says("GATEHOUSE_EMAIL_SMTP_URL", "names the variable");
    let url = [(
        "GATEHOUSE_EMAIL_SMTP_URL",
        "smtp://mailer:Hush-9271@127.0.0.1:2525",
    )];
    let ok = g.cli(&["check-config"], &url);
    ok.assert_ok("a good URL")
        .assert_says("127.0.0.1:2525 (STARTTLS, with a login)", "explained");
    assert!(!ok.output().contains("Hush-9271"), "{}", ok.output());
    let bad = [(
        "GATEHOUSE_EMAIL_SMTP_URL",
        "smtp://mailer:Hush-9271@127.0.0.1:2525?tls=maybe",
    )];
    let refused = g.cli(&["check-config"], &bad);
    refused.assert_failed("a bad tls= value");
    assert!(
        !refused.output().contains("Hush-9271"),
        "{}",
        refused.output()
    );
}
