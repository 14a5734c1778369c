// Mail with several replicas (SPEC §9, §10): two real gatehouse processes on one PostgreSQL
// (tests/it/common/postgres.rs) sending to one real SMTP sink (tests/it/common/smtp.rs). Each mail
// is claimed in the database by one replica, so it arrives exactly once whichever replica
// accepted the change; a reset link works on the other replica; and a mail accepted by a
// replica that is then killed (-9) is sent by the survivor, once.
use crate::common;

use common::smtp::*;
use common::*;
use std::time::Duration;

const CHANGED_PASSWORD: &str = "Fresh-Horse-42";
const RESET_PASSWORD: &str = "Reset-Pony-77";
/// A mail claimed by a replica that died is free again after the sender's lease (30 s).
const MAIL_WAIT: Duration = Duration::from_secs(60);

fn sent(g: &Gatehouse, kind: &str) -> f64 {
    metric(
        g,
        "gatehouse_mail_sent_total",
        &format!(r#"kind="{kind}",result="sent""#),
    )
}

#[test]
fn each_mail_arrives_once_and_reset_links_work_on_the_other_replica() {
    let sink = SmtpSink::start();
    let (a, b) = postgres::replicas(|g| sending_to(g, &sink));
    let (_, ann, _) = a.user("ann");
    let (_, bob, _) = b.user("bob");
    // A password change through each replica: one notice each.
    a.change_password(&ann, PASSWORD, CHANGED_PASSWORD)
        .expect_status(200);
    b.change_password(&bob, PASSWORD, CHANGED_PASSWORD)
        .expect_status(200);
    // A reset requested through the other replica.
    reset(&b, "ann@example.com").expect_status(204);
    reset(&a, "bob@example.com").expect_status(204);
    for to in ["ann@example.com", "bob@example.com"] {
        let mails = sink.wait_for(to, 2, MAIL_WAIT);
        let mut got = subjects(&mails);
        got.sort();
        assert_eq!(got, ["Password Changed", "Password Reset"], "{to}");
    }
    std::thread::sleep(QUIET);
    assert_eq!(sink.messages().len(), 4, "{:?}", sink.messages());
    // Each mail was sent by one replica: the two counters add up to the mails.
    eventually("the sent counters", || {
        let changed = sent(&a, "password_changed") + sent(&b, "password_changed");
        let resets = sent(&a, "password_reset") + sent(&b, "password_reset");
        (changed == 2.0 && resets == 2.0).then_some(())
    });

    // Ann asked through B and confirms through A; Bob the other way round.
    for (name, requested_on, confirm_on) in [("ann", &b, &a), ("bob", &a, &b)] {
        let to = format!("{name}@example.com");
        let mails = sink.to(&to);
        let link = mails
            .iter()
            .find(|m| m["subject"] == "Password Reset")
            .expect("the reset mail");
        let (uid, token) = link_parts(link, RESET_LINK);
        confirm(confirm_on, &uid, &token, RESET_PASSWORD).expect_status(204);
        for g in [&a, &b] {
            assert!(!g.log().contains(&token), "a link token in a log");
        }
        // Single use on every replica: the password it was made over is gone.
        confirm(requested_on, &uid, &token, "Another-Pass-99").expect_status(400);
        requested_on
            .login_attempt(name, CHANGED_PASSWORD)
            .expect_status(401);
        requested_on.login(name, RESET_PASSWORD);
        // The reset is a password change: one more notice, once.
        let mails = sink.wait_for(&to, 3, MAIL_WAIT);
        assert_eq!(
            mails
                .iter()
                .filter(|m| m["subject"] == "Password Changed")
                .count(),
            2,
            "{to}: {mails:?}"
        );
    }
    std::thread::sleep(QUIET);
    assert_eq!(sink.messages().len(), 6, "{:?}", sink.messages());
    // The debug logs do not carry the database's query parameters (the shared JWT secret).
    for g in [&a, &b] {
        assert!(
            !g.log().contains("jwt_secret\", ["),
            "tokio-postgres logged a query's parameters"
        );
    }
}

#[test]
fn a_mail_accepted_by_a_killed_replica_is_sent_by_the_other_once() {
    let mut sink = SmtpSink::start();
    // The mail server is down: no replica can send before A is gone.
    sink.stop();
    let (mut a, b) = postgres::replicas(|g| sending_to(g, &sink));
    let (_, access, _) = a.user("hal");
    a.change_password(&access, PASSWORD, CHANGED_PASSWORD)
        .expect_status(200);
    // The mail is in the database's outbox: a sender (either replica) tried and failed.
    eventually("a failed try", || {
        (a.log().contains("try 1 failed") || b.log().contains("try 1 failed")).then_some(())
    });
    a.kill();
    sink.resume();
    let mails = sink.wait_for("hal@example.com", 1, MAIL_WAIT);
    assert_eq!(subjects(&mails), ["Password Changed"]);
    std::thread::sleep(QUIET);
    assert_eq!(sink.messages().len(), 1, "once: {:?}", sink.messages());
    // The survivor sent it and its outbox is empty.
    eventually("B's sent counter", || {
        (sent(&b, "password_changed") == 1.0).then_some(())
    });
    eventually("an empty outbox", || {
        b.ops()
            .get("/metrics", None)
            .text
            .contains("gatehouse_mail_outbox_depth 0")
            .then_some(())
    });
}

#[test]
fn the_caps_per_address_are_shared_by_the_replicas() {
    let sink = SmtpSink::start();
    let (a, b) = postgres::replicas(|g| {
        sending_to(g, &sink).with_config(|c| c.email.max_per_address_per_hour = 2)
    });
    a.user("jon");
    // Five requests spread over both replicas: two mails in all, not two per replica.
    for g in [&a, &b, &a, &b, &a] {
        reset(g, "jon@example.com").expect_status(204);
    }
    let capped = r#"kind="password_reset",result="capped""#;
    let dropped = metric(&a, "gatehouse_mail_sent_total", capped)
        + metric(&b, "gatehouse_mail_sent_total", capped);
    assert_eq!(dropped, 3.0, "capped over both replicas");
    sink.wait_for("jon@example.com", 2, MAIL_WAIT);
    std::thread::sleep(QUIET);
    assert_eq!(sink.messages().len(), 2, "{:?}", sink.messages());
}

#[test]
fn reset_requests_are_throttled_per_address_over_both_replicas() {
    let sink = SmtpSink::start();
    let (a, b) = postgres::replicas(|g| {
        sending_to(g, &sink).with_config(|c| c.throttle.login_failures_per_username_address = 3)
    });
    a.user("kim");
    for g in [&a, &b, &a] {
        reset(g, "kim@example.com").expect_status(204);
    }
    for g in [&b, &a] {
        let r = reset(g, "kim@example.com");
        r.expect_status(429);
        assert!(r.header("retry-after").is_some(), "{}", r.text);
    }
}
