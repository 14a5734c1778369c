use crate::common;

// The answers where gatehouse once differed from DRF (issue 13), checked against real DRF 3.16:
// the same bodies go to gatehouse and to DRF serializers written as the seed's
// (tests/support/django_tool.py, `validate`), and the 400 bodies must be equal. A profile PUT
// requires the username only; a password change lists every field error together, in DRF's
// order, and checks the old password only when the fields are valid; the admin PATCH of a user
// reports wrong types with DRF's BooleanField and ListField messages.

use common::*;
use serde_json::{json, Value};

const PROFILE: &str = "/api/auth/profile/";
const PASSWORD_PATH: &str = "/api/auth/profile/password/";

/// One body for one of django_tool.py's serializers, and the user it is validated for.
struct Case {
    serializer: &'static str,
    partial: bool,
    data: Value,
}

/// DRF's `serializer.errors` for each case (`{}` when valid), in one run of Django.
fn drf_errors(user: &Value, cases: &[Case]) -> Vec<Value> {
    let requests: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"serializer": c.serializer, "partial": c.partial, "data": c.data, "user": user})
        })
        .collect();
    let out = django::run(&json!({ "validate": requests }));
    out["validate"]
        .as_array()
        .expect("one answer per case")
        .iter()
        .map(|a| a["errors"].clone())
        .collect()
}

/// gatehouse's answer, as DRF's `serializer.errors` would be (`{}` for a 2xx).
fn gatehouse_errors(r: &Resp) -> Value {
    match r.status {
        200..=299 => json!({}),
        400 => r.json.clone(),
        other => panic!("neither success nor a validation error: {other} {}", r.text),
    }
}

#[test]
fn profile_put_requires_the_username_only_and_keeps_a_missing_email() {
    let g = Gatehouse::new().start();
    let token = g.user_token("quinn");
    let put = |body: Value| g.call("PUT", PROFILE, Some(body), Some(&token));

    put(json!({})).expect(400, json!({"username": ["This field is required."]}));
    put(json!({"email": "q@example.com"}))
        .expect(400, json!({"username": ["This field is required."]}));
    // A missing email is kept; the one given is changed.
    put(json!({"username": "quinn2"})).expect(
        200,
        json!({"id": 1, "username": "quinn2", "email": "quinn@example.com", "first_name": "", "last_name": ""}),
    );
    put(json!({"username": "quinn", "email": "q@example.com"})).expect(
        200,
        json!({"id": 1, "username": "quinn", "email": "q@example.com", "first_name": "", "last_name": ""}),
    );
    // Sent, the email is still checked (PATCH stays partial).
    put(json!({"username": "quinn", "email": ""}))
        .expect(400, json!({"email": ["This field may not be blank."]}));
    g.call("PATCH", PROFILE, Some(json!({})), Some(&token))
        .expect_status(200);

    let user = json!({"username": "quinn", "email": "q@example.com"});
    let cases = [
        json!({}),
        json!({"email": "q@example.com"}),
        json!({"username": "quinn3"}),
    ]
    .map(|data| Case {
        serializer: "profile_update",
        partial: false,
        data,
    });
    let drf = drf_errors(&user, &cases);
    for (case, expected) in cases.iter().zip(drf) {
        let r = put(case.data.clone());
        assert_eq!(gatehouse_errors(&r), expected, "PUT {}", case.data);
    }
}

#[test]
fn password_change_lists_field_errors_first_and_checks_the_old_password_last() {
    let g = Gatehouse::new().start();
    let token = g.user_token("michelle");
    let change =
        |method: &str, body: Value| g.call(method, PASSWORD_PATH, Some(body), Some(&token));

    // A wrong old password with a weak new one: the new password's messages, nothing else.
    change(
        "PUT",
        json!({"old_password": "Wrong-Pass-1", "new_password": "michelle"}),
    )
    .expect(
        400,
        json!({"new_password": [
            "The password is too similar to the username.",
            "This password is too common."
        ]}),
    );
    // Every field error at once.
    change("PUT", json!({})).expect(
        400,
        json!({"old_password": ["This field is required."], "new_password": ["This field is required."]}),
    );
    change("PATCH", json!({"new_password": "123"})).expect(
        400,
        json!({
            "old_password": ["This field is required."],
            "new_password": [
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric."
            ]
        }),
    );
    // The seed code's field name is reported as sent.
    change(
        "PATCH",
        json!({"current_password": "Wrong-Pass-1", "new_password": "x"}),
    )
    .expect(
        400,
        json!({"new_password": [
            "This password is too short. It must contain at least 8 characters.",
            "This password is too common."
        ]}),
    );
    // Valid fields: only now is the old password checked.
    change(
        "PUT",
        json!({"old_password": "Wrong-Pass-1", "new_password": "Quite-Good-2024"}),
    )
    .expect(400, json!({"old_password": ["Wrong password."]}));

    // The same bodies, answered by DRF (the right old password is PASSWORD).
    let user =
        json!({"username": "michelle", "email": "michelle@example.com", "password": PASSWORD});
    let cases = [
        json!({"old_password": "Wrong-Pass-1", "new_password": "michelle"}),
        json!({}),
        json!({"new_password": "123"}),
        json!({"old_password": "Wrong-Pass-1", "new_password": "Quite-Good-2024"}),
        json!({"old_password": "Wrong-Pass-1", "new_password": ""}),
        json!({"old_password": null, "new_password": "michelle@example.com"}),
        json!({"old_password": ["x"], "new_password": 12345678}),
    ]
    .map(|data| Case {
        serializer: "password_change",
        partial: false,
        data,
    });
    let drf = drf_errors(&user, &cases);
    for (case, expected) in cases.iter().zip(drf) {
        let r = change("PUT", case.data.clone());
        assert_eq!(gatehouse_errors(&r), expected, "PUT {}", case.data);
    }
    // Nothing changed on the way: the old password still logs in.
    g.login("michelle", PASSWORD);
}

#[test]
fn admin_patch_reports_wrong_types_as_drf_does() {
    let g = Gatehouse::new()
        .superuser("root", "root@example.com", "Root-Pass-2024")
        .start();
    let root = g.login("root", "Root-Pass-2024").0;
    g.register("target");
    let long = "g".repeat(151);
    let cases = [
        json!({"is_staff": "maybe"}),
        json!({"is_staff": null, "is_active": [true]}),
        json!({"is_active": 2, "is_staff": 0.5}),
        json!({"groups": "billing"}),
        json!({"groups": {"name": "billing"}}),
        json!({"groups": 7}),
        json!({"groups": true}),
        json!({"groups": null}),
        json!({"groups": ["ok", null, "", "  ", true, ["x"], {"a": 1}, long, "a\u{0}b", 5]}),
        json!({"is_staff": "Yes", "is_active": "on", "groups": [" billing ", 5]}),
        json!({"is_staff": "x", "groups": [""]}),
        json!({}),
    ]
    .map(|data| Case {
        serializer: "admin_user_patch",
        partial: true,
        data,
    });
    let drf = drf_errors(&json!({}), &cases);
    for (case, expected) in cases.iter().zip(drf) {
        let r = g.call(
            "PATCH",
            "/api/auth/admin/users/2/",
            Some(case.data.clone()),
            Some(&root),
        );
        assert_eq!(gatehouse_errors(&r), expected, "PATCH {}", case.data);
    }
    // The fixed shapes, spelled out.
    let r = g.call(
        "PATCH",
        "/api/auth/admin/users/2/",
        Some(json!({"is_staff": "maybe", "groups": "billing"})),
        Some(&root),
    );
    r.expect(
        400,
        json!({"is_staff": ["Must be a valid boolean."],
               "groups": ["Expected a list of items but got type \"str\"."]}),
    );
}
