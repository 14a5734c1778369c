use crate::common;

// gatehouse's answers beside real Django's for the same input: the password policy of
// register (Django's four default validators, every message, in Django's order).

use common::*;
use serde_json::{json, Value};

/// Passwords with what they are checked against: each trips a different mix of validators.
const CASES: &[(&str, &str, &str)] = &[
    ("TestPass123", "alice", "alice@example.com"),
    ("short", "bob", "bob@example.com"),
    ("12345678", "carol", "carol@example.com"),
    ("password", "dave", "dave@example.com"),
    ("1234", "erin", "erin@example.com"),
    ("frankfrank1", "frankfrank1", "ff@example.com"),
    ("gracehopper", "gh", "gracehopper@example.com"),
    ("Heidi2024!", "heidi", "heidi@example.com"),
    ("qwertyuiop", "ivan", "ivan@example.com"),
    ("judyjudy", "Judy", "judy@example.com"),
];

#[test]
fn register_refuses_exactly_the_passwords_django_refuses_with_its_messages() {
    let checks: Vec<Value> = CASES
        .iter()
        .map(|(pw, user, email)| json!({"password": pw, "username": user, "email": email}))
        .collect();
    let django = common::django::run(&json!({ "password_policy": checks }));
    let expected = django["password_policy"]
        .as_array()
        .expect("Django's verdicts");
    let g = Gatehouse::new().start();
    let mut refused = 0;
    for ((pw, user, email), django_says) in CASES.iter().zip(expected) {
        let r = g.post(
            "/api/auth/register/",
            json!({"username": user, "email": email, "password": pw}),
            None,
        );
        let messages = django_says.as_array().expect("a list");
        if messages.is_empty() {
            assert_eq!(r.status, 201, "{pw:?}: Django accepts it: {}", r.text);
        } else {
            refused += 1;
            assert_eq!(r.status, 400, "{pw:?}: Django refuses it: {}", r.text);
            assert_eq!(
                r.json,
                json!({ "password": messages }),
                "{pw:?} for {user}: the same messages in the same order"
            );
        }
    }
    assert!(
        refused >= 6,
        "the cases exercise the validators ({refused} refused)"
    );
}
