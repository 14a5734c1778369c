// SPEC §1 end to end over real HTTP: every endpoint row, every user-API error row, DRF's wire
// conventions (Allow, 308, OPTIONS, HEAD, parsers) and Django's validators, exact bodies. The
// harness checks every answer's framing (JSON, exact Content-Length, WWW-Authenticate on 401).
use crate::common;

use common::paths::*;
use common::*;
use serde_json::{json, Value};

const ADMIN_PW: &str = "AdminPass123";

const ALLOW_POST: &str = "POST, OPTIONS";
const ALLOW_PROFILE: &str = "GET, PUT, PATCH, HEAD, OPTIONS";
const ALLOW_PASSWORD: &str = "PUT, PATCH, OPTIONS";
const ALLOW_DELETE: &str = "DELETE, OPTIONS";
const ALLOW_ADMIN_GET: &str = "GET, HEAD, OPTIONS";
const ALLOW_ADMIN_DETAIL: &str = "GET, PATCH, HEAD, OPTIONS";
const ALLOW_RESTORE: &str = "PUT, PATCH, OPTIONS";

fn admin_server() -> Gatehouse {
    Gatehouse::new()
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .start()
}

#[track_caller]
fn assert_allow(r: &Resp, allow: &str) {
    assert_eq!(
        r.header("allow").as_deref(),
        Some(allow),
        "Allow header on {} -> {} {}",
        r.request,
        r.status,
        r.text
    );
}

// ---------------------------------------------------------------------------------------------
// The endpoint table, rows 1-9, as the seed README's client drives them.

#[test]
fn readme_client_walks_every_endpoint_row() {
    let g = admin_server();
    // Row 3: register (admin is id 1, ids increase).
    g.register_as("testuser", "test@example.com", "TestPass123")
        .expect(201, profile(2, "testuser", "test@example.com"));
    g.register_as("alice", "alice@example.com", PASSWORD)
        .expect(201, profile(3, "alice", "alice@example.com"));

    // Row 1: token.
    let r = g.login_attempt("testuser", "TestPass123");
    r.expect_status(200);
    assert_eq!(r.keys(), ["access", "refresh"], "{}", r.text);
    let (access, refresh) = r.tokens();
    assert_eq!(claims(&access)["token_type"], "access");
    assert_eq!(claims(&access)["user_id"], "2");
    assert_eq!(claims(&refresh)["token_type"], "refresh");
    assert_allow(&r, ALLOW_POST);

    // Row 2: refresh (rotation off: access only).
    let r = g.refresh(&refresh);
    r.expect_status(200);
    assert_eq!(r.keys(), ["access"], "{}", r.text);
    let access2 = r.json["access"].as_str().expect("access").to_string();
    assert_ne!(claims(&access2)["jti"], claims(&access)["jti"]);

    // Row 4: profile GET, with the refreshed access token.
    g.get(PROFILE, Some(&access2))
        .expect(200, profile(2, "testuser", "test@example.com"));

    // Row 5: PUT then PATCH.
    g.call(
        "PUT",
        PROFILE,
        Some(json!({"username": "updateduser", "email": "updated@example.com"})),
        Some(&access),
    )
    .expect(200, profile(2, "updateduser", "updated@example.com"));
    g.call("PATCH", PROFILE, Some(json!({"first_name": "Test"})), Some(&access)).expect(
        200,
        json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Test", "last_name": ""}),
    );

    // Row 6: password change, README body.
    let r = g.change_password(&access, "TestPass123", "NewPass123");
    r.expect_status(200);
    assert_eq!(r.keys(), ["access", "detail", "refresh"], "{}", r.text);
    assert_eq!(r.json["detail"], PASSWORD_UPDATED);
    let (access, _) = r.tokens();
    g.login_attempt("updateduser", "TestPass123")
        .expect(401, wrong_login());
    g.login_attempt("updateduser", "NewPass123")
        .expect_status(200);

    // Row 7: soft delete.
    g.soft_delete(&access).expect(200, soft_deleted());

    // Row 8: admin list shows everyone, the deleted one inactive.
    let admin = g.login("admin", ADMIN_PW).0;
    g.get(ADMIN_USERS, Some(&admin)).expect(
        200,
        json!([
            verified(admin_item(1, "admin", "admin@example.com", true)),
            {"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Test", "last_name": "", "is_active": false, "email_verified": false},
            admin_item(3, "alice", "alice@example.com", true),
        ]),
    );

    // Row 9: restore.
    g.call("PUT", "/api/auth/admin/users/restore/2/", None, Some(&admin)).expect(
        200,
        json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Test", "last_name": "", "is_active": true, "email_verified": false}),
    );
    g.login_attempt("updateduser", "NewPass123")
        .expect_status(200);
}

#[test]
fn ids_increase_and_are_never_reused() {
    let g = Gatehouse::new().start();
    g.register_as("first", "first@example.com", PASSWORD)
        .expect(201, profile(1, "first", "first@example.com"));
    g.register_as("second", "second@example.com", PASSWORD)
        .expect(201, profile(2, "second", "second@example.com"));
    // A soft-deleted user keeps its id and name.
    let t = g.login("second", PASSWORD).0;
    g.soft_delete(&t).expect_status(200);
    g.register_as("second", "second2@example.com", PASSWORD)
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    g.register_as("third", "third@example.com", PASSWORD)
        .expect(201, profile(3, "third", "third@example.com"));
    let t = g.login("third", PASSWORD).0;
    g.get(PROFILE, Some(&t))
        .expect(200, profile(3, "third", "third@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Register: field validation, one message at a time.

#[test]
fn register_reports_each_field_error_with_drf_messages() {
    let g = Gatehouse::new().start();
    let e = |body: Value, want: Value| {
        g.post(REGISTER, body, None).expect(400, want);
    };

    e(
        json!({}),
        json!({"username": [REQUIRED], "email": [REQUIRED], "password": [REQUIRED]}),
    );
    e(
        json!({"email": "a@example.com", "password": PASSWORD}),
        json!({"username": [REQUIRED]}),
    );
    e(
        json!({"username": "a", "email": "a@example.com"}),
        json!({"password": [REQUIRED]}),
    );
    e(
        json!({"username": "", "email": "", "password": ""}),
        json!({"username": [BLANK], "email": [BLANK], "password": [BLANK]}),
    );
    // Strings are trimmed first, so whitespace only is blank.
    e(
        json!({"username": "   ", "email": "a@example.com", "password": PASSWORD}),
        json!({"username": [BLANK]}),
    );
    e(
        json!({"username": null, "email": null, "password": null}),
        json!({"username": [NULL], "email": [NULL], "password": [NULL]}),
    );
    e(
        json!({"username": true, "email": ["a@example.com"], "password": {"p": 1}}),
        json!({"username": [NOT_STRING], "email": [NOT_STRING], "password": [NOT_STRING]}),
    );
    e(
        json!({"username": "bob", "email": "not-an-email", "password": PASSWORD}),
        json!({"email": [BAD_EMAIL]}),
    );
    e(
        json!({"username": "bob", "email": "bob@", "password": PASSWORD}),
        json!({"email": [BAD_EMAIL]}),
    );
    // 255 characters, one over Django's EmailField limit (254 is accepted, below).
    let long_email = format!("{}@example.com", "e".repeat(255 - "@example.com".len()));
    e(
        json!({"username": "bob", "email": long_email, "password": PASSWORD}),
        json!({"email": [MAX_254]}),
    );
    e(
        json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "first_name": "f".repeat(151)}),
        json!({"first_name": [MAX_150]}),
    );
    // Nothing above created a user.
    g.register_as("bob", "bob@example.com", PASSWORD)
        .expect(201, profile(1, "bob", "bob@example.com"));
    let longest_email = format!("{}@example.com", "e".repeat(254 - "@example.com".len()));
    g.register_as("longmail", &longest_email, PASSWORD)
        .expect(201, profile(2, "longmail", &longest_email));
}

#[test]
fn register_without_email_is_400_not_500() {
    let g = Gatehouse::new().start();
    g.post(
        REGISTER,
        json!({"username": "noemail", "password": PASSWORD}),
        None,
    )
    .expect(400, json!({"email": [REQUIRED]}));
    // Form-encoded, too.
    g.form(
        "POST",
        REGISTER,
        "username=noemail&password=TestPass123",
        None,
    )
    .expect(400, json!({"email": [REQUIRED]}));
}

#[test]
fn register_accepts_optional_names_numbers_as_strings_and_trims() {
    let g = Gatehouse::new().start();
    g.post(REGISTER,
        json!({"username": "  named  ", "email": " named@example.com ", "password": PASSWORD, "first_name": "Ada", "last_name": 42}), None,
    )
    .expect(
        201,
        json!({"id": 1, "username": "named", "email": "named@example.com", "first_name": "Ada", "last_name": "42"}),
    );
    g.post(REGISTER,
        json!({"username": "blanknames", "email": "blank@example.com", "password": PASSWORD, "first_name": "", "last_name": ""}), None,
    )
    .expect(201, profile(2, "blanknames", "blank@example.com"));
}

#[test]
fn register_ignores_read_only_fields() {
    let g = admin_server();
    g.post(REGISTER,
        json!({"id": 77, "username": "sneaky", "email": "sneaky@example.com", "password": PASSWORD,
               "is_staff": true, "is_superuser": true, "is_active": false, "date_joined": "2000-01-01T00:00:00Z"}), None,
    )
    .expect(201, profile(2, "sneaky", "sneaky@example.com"));
    // is_active: false was ignored: the user can log in.
    let t = g.login("sneaky", PASSWORD).0;
    g.get(PROFILE, Some(&t))
        .expect(200, profile(2, "sneaky", "sneaky@example.com"));
    // is_staff: true was ignored: no admin access.
    g.get(ADMIN_USERS, Some(&t)).expect(403, forbidden());
    // id 77 was ignored: the next user is 3.
    g.register_as("next", "next@example.com", PASSWORD)
        .expect(201, profile(3, "next", "next@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Register: Django's password validators one at a time, then together.

#[test]
fn password_validators_run_on_register_one_at_a_time_in_djangos_order() {
    let g = Gatehouse::new().start();
    let pw = |u: &str, e: &str, p: &str, want: &[&str]| {
        g.register_as(u, e, p)
            .expect(400, json!({ "password": want }));
    };
    pw(
        "quintessa",
        "q@example.com",
        "quintessa7Z",
        &[SIMILAR_USERNAME],
    );
    pw(
        "someone",
        "mariposa77x@example.com",
        "Mariposa77x!",
        &[SIMILAR_EMAIL],
    );
    pw("someone", "s@example.com", "Xq7#tz", &[TOO_SHORT]);
    pw("someone", "s@example.com", "iloveyou", &[TOO_COMMON]);
    pw("someone", "s@example.com", "password1", &[TOO_COMMON]);
    pw("someone", "s@example.com", "83920174615", &[NUMERIC]);
    pw(
        "someone",
        "s@example.com",
        "12345678",
        &[TOO_COMMON, NUMERIC],
    );
    pw(
        "1234567",
        "s@example.com",
        "1234567",
        &[SIMILAR_USERNAME, TOO_SHORT, TOO_COMMON, NUMERIC],
    );
    // Password errors are reported beside the other fields' errors.
    g.register_as("bad name", "nope", "1234567").expect(
        400,
        json!({"username": [BAD_USERNAME], "email": [BAD_EMAIL], "password": [TOO_SHORT, TOO_COMMON, NUMERIC]}),
    );
    // The seed README's passwords pass.
    g.register_as("testuser", "test@example.com", "TestPass123")
        .expect(201, profile(1, "testuser", "test@example.com"));
    g.register_as("newuser", "new@example.com", "NewPass123")
        .expect(201, profile(2, "newuser", "new@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Username rule and uniqueness.

#[test]
fn username_follows_djangos_rule_and_150_character_limit() {
    let g = Gatehouse::new().start();
    let max = "u".repeat(150);
    g.register_as(&max, "max@example.com", PASSWORD)
        .expect(201, profile(1, &max, "max@example.com"));
    g.register_as(&"u".repeat(151), "over@example.com", PASSWORD)
        .expect(400, json!({"username": [MAX_150]}));
    for bad in [
        "bad name",
        "semi;colon",
        "slash/name",
        "a#b",
        "quote'd",
        "tab\tname",
    ] {
        g.register_as(bad, "bad@example.com", PASSWORD)
            .expect(400, json!({"username": [BAD_USERNAME]}));
    }
    // Invalid characters and too long: both, in DRF's validator order.
    g.register_as(
        &format!("{}!", "v".repeat(150)),
        "both@example.com",
        PASSWORD,
    )
    .expect(400, json!({"username": [BAD_USERNAME, MAX_150]}));
    g.register_as("a.b+c-d_e@f", "chars@example.com", PASSWORD)
        .expect(201, profile(2, "a.b+c-d_e@f", "chars@example.com"));
    g.register_as("12345", "digits@example.com", PASSWORD)
        .expect(201, profile(3, "12345", "digits@example.com"));
    // Django's \w is Unicode-aware.
    g.register_as("josé_ñ", "jose@example.com", PASSWORD)
        .expect(201, profile(4, "josé_ñ", "jose@example.com"));
}

#[test]
fn username_and_email_are_unique_case_insensitively() {
    let g = Gatehouse::new().start();
    g.register_as("alice", "alice@example.com", PASSWORD)
        .expect(201, profile(1, "alice", "alice@example.com"));
    g.register_as("ALICE", "other@example.com", PASSWORD)
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    g.register_as("Alice", "other@example.com", PASSWORD)
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    g.register_as("bob", "Alice@EXAMPLE.com", PASSWORD)
        .expect(400, json!({"email": [EMAIL_TAKEN]}));
    g.register_as("aLiCe", "ALICE@example.com", PASSWORD)
        .expect(
            400,
            json!({"username": [USERNAME_TAKEN], "email": [EMAIL_TAKEN]}),
        );
    // Login is case-insensitive on the username, and logs in the one user.
    let r = g.login_attempt("ALICE", PASSWORD);
    r.expect_status(200);
    assert_eq!(claims(&r.tokens().0)["user_id"], "1");
    g.register_as("bob", "bob@example.com", PASSWORD)
        .expect(201, profile(2, "bob", "bob@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Token obtain, refresh, verify, logout.

#[test]
fn login_failures_are_indistinguishable_and_fields_are_required() {
    let g = Gatehouse::new().start();
    let t = g.user_token("carol");
    let r = g.login_attempt("carol", "WrongPass123");
    r.expect(401, wrong_login());
    assert_allow(&r, ALLOW_POST);
    g.login_attempt("nobody", PASSWORD)
        .expect(401, wrong_login());
    g.post(TOKEN, json!({}), None)
        .expect(400, json!({"username": [REQUIRED], "password": [REQUIRED]}));
    g.post(TOKEN, json!({"username": "carol", "password": ""}), None)
        .expect(400, json!({"password": [BLANK]}));
    g.post(TOKEN, json!({"username": null, "password": PASSWORD}), None)
        .expect(400, json!({"username": [NULL]}));
    // Soft-deleted: same body as a wrong password.
    g.soft_delete(&t).expect_status(200);
    g.login_attempt("carol", PASSWORD)
        .expect(401, wrong_login());
}

#[test]
fn token_views_ignore_the_authorization_header() {
    let g = Gatehouse::new().start();
    g.register_as("dave", "dave@example.com", PASSWORD)
        .expect_status(201);
    let rb = g
        .request("POST", TOKEN)
        .header("Authorization", "Bearer not-a-token")
        .json(&json!({"username": "dave", "password": PASSWORD}));
    g.send(rb).expect_status(200);
    let (_, refresh) = g.login("dave", PASSWORD);
    let rb = g
        .request("POST", REFRESH)
        .header("Authorization", "Bearer")
        .json(&json!({ "refresh": refresh }));
    g.send(rb).expect_status(200);
    // Other API views do authenticate a header that is present, even register.
    let rb = g
        .request("POST", REGISTER)
        .header("Authorization", "Bearer not-a-token")
        .json(&json!({"username": "erin", "email": "erin@example.com", "password": PASSWORD}));
    g.send(rb).expect(401, bad_access("Token is invalid"));
}

#[test]
fn refresh_errors_match_simplejwt() {
    let g = Gatehouse::new().start();
    let r = {
        g.register_as("frank", "frank@example.com", PASSWORD)
            .expect_status(201);
        g.login_attempt("frank", PASSWORD)
    };
    let (access, refresh) = r.tokens();
    g.post(REFRESH, json!({}), None)
        .expect(400, json!({"refresh": [REQUIRED]}));
    g.refresh("").expect(400, json!({"refresh": [BLANK]}));
    let r = g.refresh("garbage");
    r.expect(401, bad_refresh("Token is invalid"));
    assert_allow(&r, ALLOW_POST);
    g.refresh(&access)
        .expect(401, bad_refresh("Token has wrong type"));
    let expired = g.forge(&refresh, json!({"exp": now() - 3600, "iat": now() - 7200}));
    g.refresh(&expired)
        .expect(401, bad_refresh("Token is expired"));
    let tampered = format!("{}x", &refresh[..refresh.len() - 1]);
    g.refresh(&tampered)
        .expect(401, bad_refresh("Token is invalid"));
    // Still fine before the delete; then an inactive user's refresh is refused.
    g.refresh(&refresh).expect_status(200);
    g.soft_delete(&access).expect_status(200);
    g.refresh(&refresh)
        .expect(401, no_active_account_for_token());
}

#[test]
fn verify_accepts_live_tokens_and_rejects_others() {
    let g = Gatehouse::new().start();
    g.register_as("gina", "gina@example.com", PASSWORD)
        .expect_status(201);
    let (access, refresh) = g.login("gina", PASSWORD);
    let r = g.verify(&access);
    r.expect(200, json!({}));
    assert_allow(&r, ALLOW_POST);
    g.verify(&refresh).expect(200, json!({}));
    g.verify("garbage")
        .expect(401, bad_refresh("Token is invalid"));
    let expired = g.forge(&access, json!({"exp": now() - 3600}));
    g.verify(&expired)
        .expect(401, bad_refresh("Token is expired"));
    g.post(VERIFY, json!({}), None)
        .expect(400, json!({"token": [REQUIRED]}));
    g.call("GET", VERIFY, None, None)
        .expect(405, method_not_allowed("GET"));
}

#[test]
fn logout_blacklists_the_refresh_token() {
    let g = Gatehouse::new().start();
    g.register_as("hank", "hank@example.com", PASSWORD)
        .expect_status(201);
    let (access, refresh) = g.login("hank", PASSWORD);
    g.post(LOGOUT, json!({}), None)
        .expect(400, json!({"refresh": [REQUIRED]}));
    g.logout(&access)
        .expect(401, bad_refresh("Token has wrong type"));
    g.logout("garbage")
        .expect(401, bad_refresh("Token is invalid"));
    // No access token needed.
    let r = g.logout(&refresh);
    r.expect(200, json!({}));
    assert_allow(&r, ALLOW_POST);
    g.refresh(&refresh)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.logout(&refresh)
        .expect(401, bad_refresh("Token is blacklisted"));
    // A fresh login is unaffected.
    let (_, refresh2) = g.login("hank", PASSWORD);
    g.refresh(&refresh2).expect_status(200);
}

// ---------------------------------------------------------------------------------------------
// Profile.

#[test]
fn profile_put_is_a_full_update_and_patch_is_partial() {
    let g = Gatehouse::new().start();
    let t = g.user_token("jack");
    g.user_token("kate");
    let r = g.get(PROFILE, Some(&t));
    r.expect(200, profile(1, "jack", "jack@example.com"));
    assert_allow(&r, ALLOW_PROFILE);

    let put = |b: Value| g.call("PUT", PROFILE, Some(b), Some(&t));
    let patch = |b: Value| g.call("PATCH", PROFILE, Some(b), Some(&t));
    // PUT requires the username only: a missing email is kept (the seed's serializer).
    put(json!({"username": "jack"})).expect(200, profile(1, "jack", "jack@example.com"));
    put(json!({"email": "j@example.com"})).expect(400, json!({"username": [REQUIRED]}));
    put(json!({"username": "KATE", "email": "j@example.com"}))
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    put(json!({"username": "jack", "email": "Kate@Example.com"}))
        .expect(400, json!({"email": [EMAIL_TAKEN]}));
    put(json!({"username": "no way", "email": "bad"})).expect(
        400,
        json!({"username": [BAD_USERNAME], "email": [BAD_EMAIL]}),
    );
    put(json!({"username": "jack", "email": ""})).expect(400, json!({"email": [BLANK]}));
    // Keeping one's own name and email (any case) is not a conflict.
    put(json!({"username": "Jack", "email": "JACK@example.com", "first_name": "Jack", "last_name": "Jones"})).expect(
        200,
        json!({"id": 1, "username": "Jack", "email": "JACK@example.com", "first_name": "Jack", "last_name": "Jones"}),
    );
    patch(json!({"last_name": "Smith"})).expect(
        200,
        json!({"id": 1, "username": "Jack", "email": "JACK@example.com", "first_name": "Jack", "last_name": "Smith"}),
    );
    patch(json!({})).expect(
        200,
        json!({"id": 1, "username": "Jack", "email": "JACK@example.com", "first_name": "Jack", "last_name": "Smith"}),
    );
    patch(json!({"email": "nope"})).expect(400, json!({"email": [BAD_EMAIL]}));
    patch(json!({"username": "u".repeat(151)})).expect(400, json!({"username": [MAX_150]}));
    patch(json!({"username": null})).expect(400, json!({"username": [NULL]}));
    patch(json!({"username": "jacky"})).expect(
        200,
        json!({"id": 1, "username": "jacky", "email": "JACK@example.com", "first_name": "Jack", "last_name": "Smith"}),
    );
    // The renamed user logs in under the new name only; the old token still works.
    g.login_attempt("jack", PASSWORD).expect(401, wrong_login());
    g.login_attempt("jacky", PASSWORD).expect_status(200);
    g.get(PROFILE, Some(&t)).expect_status(200);
    // The old name is free again.
    g.register_as("jack", "jack-new@example.com", PASSWORD)
        .expect(201, profile(3, "jack", "jack-new@example.com"));
}

#[test]
fn profile_update_ignores_read_only_fields() {
    let g = Gatehouse::new().start();
    let t = g.user_token("liam");
    g.call("PATCH",
        PROFILE,
        Some(json!({"id": 99, "is_staff": true, "is_active": false, "is_superuser": true, "first_name": "L"})),
        Some(&t),
    )
    .expect(
        200,
        json!({"id": 1, "username": "liam", "email": "liam@example.com", "first_name": "L", "last_name": ""}),
    );
    g.call("PUT",
        PROFILE,
        Some(json!({"id": 5, "username": "liam", "email": "liam@example.com", "is_staff": true, "is_active": false})),
        Some(&t),
    )
    // A full update leaves omitted optional fields (first_name) as they were, like DRF.
    .expect(
        200,
        json!({"id": 1, "username": "liam", "email": "liam@example.com", "first_name": "L", "last_name": ""}),
    );
    // Still id 1, still active, still not staff.
    g.get(PROFILE, Some(&t)).expect(
        200,
        json!({"id": 1, "username": "liam", "email": "liam@example.com", "first_name": "L", "last_name": ""}),
    );
    g.get(ADMIN_USERS, Some(&t)).expect(403, forbidden());
    g.login_attempt("liam", PASSWORD).expect_status(200);
}

// ---------------------------------------------------------------------------------------------
// Password change.

#[test]
fn password_change_put_with_old_password_revokes_earlier_tokens() {
    let g = Gatehouse::new().start();
    g.register_as("mona", "mona@example.com", "TestPass123")
        .expect_status(201);
    let (old_access, old_refresh) = g.login("mona", "TestPass123");
    let r = g.change_password(&old_access, "TestPass123", "NewPass123");
    r.expect_status(200);
    assert_eq!(r.keys(), ["access", "detail", "refresh"], "{}", r.text);
    assert_eq!(r.json["detail"], PASSWORD_UPDATED);
    assert_allow(&r, ALLOW_PASSWORD);
    let (new_access, new_refresh) = r.tokens();
    assert_eq!(claims(&new_access)["token_type"], "access");
    assert_eq!(claims(&new_refresh)["token_type"], "refresh");
    // Every earlier token is dead, the fresh pair works.
    g.get(PROFILE, Some(&old_access))
        .expect(401, bad_access("Token is invalid"));
    g.refresh(&old_refresh)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.get(PROFILE, Some(&new_access))
        .expect(200, profile(1, "mona", "mona@example.com"));
    g.refresh(&new_refresh).expect_status(200);
    g.login_attempt("mona", "TestPass123")
        .expect(401, wrong_login());
    g.login_attempt("mona", "NewPass123").expect_status(200);
}

#[test]
fn password_change_patch_with_current_password() {
    let g = Gatehouse::new().start();
    let t = g.user_token("nina");
    let r = g.call(
        "PATCH",
        PASSWORD_CHANGE,
        Some(json!({"current_password": PASSWORD, "new_password": "NewPass123"})),
        Some(&t),
    );
    r.expect_status(200);
    assert_eq!(r.json["detail"], PASSWORD_UPDATED);
    let (access, _) = r.tokens();
    // And PUT with current_password, PATCH with old_password, using the new token.
    let r = g.call(
        "PUT",
        PASSWORD_CHANGE,
        Some(json!({"current_password": "NewPass123", "new_password": "ThirdPass123"})),
        Some(&access),
    );
    r.expect_status(200);
    let (access, _) = r.tokens();
    let r = g.call(
        "PATCH",
        PASSWORD_CHANGE,
        Some(json!({"old_password": "ThirdPass123", "new_password": "FourthPass123"})),
        Some(&access),
    );
    r.expect_status(200);
    g.login_attempt("nina", "ThirdPass123")
        .expect(401, wrong_login());
    g.login_attempt("nina", "FourthPass123").expect_status(200);
}

#[test]
fn password_change_errors_name_the_field_the_client_used() {
    let g = Gatehouse::new().start();
    let t = g.user_token("marigold");
    let ch = |m: &str, b: Value| g.call(m, PASSWORD_CHANGE, Some(b), Some(&t));
    ch(
        "PUT",
        json!({"old_password": "WrongPass123", "new_password": "NewPass123"}),
    )
    .expect(400, json!({"old_password": ["Wrong password."]}));
    ch(
        "PATCH",
        json!({"current_password": "WrongPass123", "new_password": "NewPass123"}),
    )
    .expect(400, json!({"current_password": ["Wrong password."]}));
    ch("PUT", json!({"new_password": "NewPass123"}))
        .expect(400, json!({"old_password": [REQUIRED]}));
    ch("PUT", json!({"old_password": PASSWORD})).expect(400, json!({"new_password": [REQUIRED]}));
    ch("PUT", json!({"old_password": PASSWORD, "new_password": ""}))
        .expect(400, json!({"new_password": [BLANK]}));
    ch(
        "PUT",
        json!({"old_password": PASSWORD, "new_password": "12345678"}),
    )
    .expect(400, json!({"new_password": [TOO_COMMON, NUMERIC]}));
    ch(
        "PUT",
        json!({"old_password": PASSWORD, "new_password": "Ab1!"}),
    )
    .expect(400, json!({"new_password": [TOO_SHORT]}));
    ch(
        "PUT",
        json!({"old_password": PASSWORD, "new_password": "marigold1!"}),
    )
    .expect(400, json!({"new_password": [SIMILAR_USERNAME]}));
    g.call("POST", PASSWORD_CHANGE, Some(json!({})), Some(&t))
        .expect(405, method_not_allowed("POST"));
    g.call("PUT", PASSWORD_CHANGE, Some(json!({})), None)
        .expect(401, not_provided());
    // Nothing changed.
    g.get(PROFILE, Some(&t)).expect_status(200);
    g.login_attempt("marigold", PASSWORD).expect_status(200);
}

// ---------------------------------------------------------------------------------------------
// Soft delete and restore.

#[test]
fn soft_delete_then_admin_restore() {
    let g = admin_server();
    let t = g.user_token("oscar");
    let admin = g.login("admin", ADMIN_PW).0;
    let r = g.soft_delete(&t);
    r.expect(200, soft_deleted());
    assert_allow(&r, ALLOW_DELETE);
    // At once: the token stops working, login fails like a wrong password.
    g.get(PROFILE, Some(&t)).expect(401, inactive());
    g.soft_delete(&t).expect(401, inactive());
    g.login_attempt("oscar", PASSWORD)
        .expect(401, wrong_login());
    g.get("/api/auth/admin/users/2/", Some(&admin)).expect(
        200,
        admin_detail(2, "oscar", "oscar@example.com", false, false),
    );

    let restore = "/api/auth/admin/users/restore/2/";
    let r = g.call("PUT", restore, None, Some(&admin));
    r.expect(200, admin_item(2, "oscar", "oscar@example.com", true));
    assert_allow(&r, ALLOW_RESTORE);
    // Already active: still 200, PUT and PATCH.
    g.call("PUT", restore, None, Some(&admin))
        .expect(200, admin_item(2, "oscar", "oscar@example.com", true));
    g.call("PATCH", restore, Some(json!({})), Some(&admin))
        .expect(200, admin_item(2, "oscar", "oscar@example.com", true));
    g.call(
        "PUT",
        "/api/auth/admin/users/restore/1/",
        None,
        Some(&admin),
    )
    .expect(
        200,
        verified(admin_item(1, "admin", "admin@example.com", true)),
    );
    // The old token stays dead; a new login works.
    g.get(PROFILE, Some(&t))
        .expect(401, bad_access("Token is invalid"));
    let t2 = g.login("oscar", PASSWORD).0;
    g.get(PROFILE, Some(&t2))
        .expect(200, profile(2, "oscar", "oscar@example.com"));
    g.get("/api/auth/admin/users/2/", Some(&admin)).expect(
        200,
        admin_detail(2, "oscar", "oscar@example.com", true, false),
    );
}

#[test]
fn restore_and_detail_errors() {
    let g = admin_server();
    let t = g.user_token("pete");
    let admin = g.login("admin", ADMIN_PW).0;
    for id in ["999", "0"] {
        g.call(
            "PUT",
            &format!("/api/auth/admin/users/restore/{id}/"),
            None,
            Some(&admin),
        )
        .expect(404, no_user());
        g.get(&format!("/api/auth/admin/users/{id}/"), Some(&admin))
            .expect(404, no_user());
    }
    g.call(
        "PUT",
        "/api/auth/admin/users/restore/abc/",
        None,
        Some(&admin),
    )
    .expect(404, no_user());
    g.call(
        "PATCH",
        "/api/auth/admin/users/restore/-1/",
        None,
        Some(&admin),
    )
    .expect(404, no_user());
    // Non-numeric id: the same body as an unknown one (SPEC §1, restore decision).
    g.get("/api/auth/admin/users/abc/", Some(&admin))
        .expect(404, no_user());
    // Permission comes before the lookup.
    let r = g.call("PUT", "/api/auth/admin/users/restore/2/", None, Some(&t));
    r.expect(403, forbidden());
    assert_allow(&r, ALLOW_RESTORE);
    g.call("PUT", "/api/auth/admin/users/restore/999/", None, Some(&t))
        .expect(403, forbidden());
    g.get("/api/auth/admin/users/2/", Some(&t))
        .expect(403, forbidden());
    g.call("PUT", "/api/auth/admin/users/restore/2/", None, None)
        .expect(401, not_provided());
    g.get("/api/auth/admin/users/2/", None)
        .expect(401, not_provided());
    // Wrong methods.
    g.call(
        "GET",
        "/api/auth/admin/users/restore/2/",
        None,
        Some(&admin),
    )
    .expect(405, method_not_allowed("GET"));
    g.call("DELETE", "/api/auth/admin/users/2/", None, Some(&admin))
        .expect(405, method_not_allowed("DELETE"));
}

// ---------------------------------------------------------------------------------------------
// Admin list: bare list, filters, search, pagination.

#[test]
fn admin_list_requires_staff_and_lists_everyone_by_id() {
    let g = admin_server();
    let t = g.user_token("quinn");
    let r = g.get(ADMIN_USERS, None);
    r.expect(401, not_provided());
    assert_allow(&r, ALLOW_ADMIN_GET);
    let r = g.get(ADMIN_USERS, Some(&t));
    r.expect(403, forbidden());
    assert_allow(&r, ALLOW_ADMIN_GET);
    let admin = g.login("admin", ADMIN_PW).0;
    let r = g.get(ADMIN_USERS, Some(&admin));
    r.expect(
        200,
        json!([
            verified(admin_item(1, "admin", "admin@example.com", true)),
            admin_item(2, "quinn", "quinn@example.com", true)
        ]),
    );
    assert_allow(&r, ALLOW_ADMIN_GET);
    g.get("/api/auth/admin/users/1/", Some(&admin)).expect(
        200,
        verified(admin_detail(1, "admin", "admin@example.com", true, true)),
    );
    g.call("POST", ADMIN_USERS, Some(json!({})), Some(&admin))
        .expect(405, method_not_allowed("POST"));
    // Permission (403) before method (405).
    g.call("POST", ADMIN_USERS, Some(json!({})), Some(&t))
        .expect(403, forbidden());
}

/// Admin (1) plus four users; `ruth` (3) soft-deleted.
fn populated() -> (Gatehouse, String) {
    let g = admin_server();
    g.register_as("paula", "paula@corp.test", PASSWORD)
        .expect_status(201);
    g.register_as("ruth", "ruth@example.com", PASSWORD)
        .expect_status(201);
    g.register_as("sam", "sam@corp.test", PASSWORD)
        .expect_status(201);
    g.register_as("Tina", "tina@example.com", PASSWORD)
        .expect_status(201);
    let t = g.login("ruth", PASSWORD).0;
    g.soft_delete(&t).expect_status(200);
    let admin = g.login("admin", ADMIN_PW).0;
    (g, admin)
}

fn all_items() -> Vec<Value> {
    vec![
        verified(admin_item(1, "admin", "admin@example.com", true)),
        admin_item(2, "paula", "paula@corp.test", true),
        admin_item(3, "ruth", "ruth@example.com", false),
        admin_item(4, "sam", "sam@corp.test", true),
        admin_item(5, "Tina", "tina@example.com", true),
    ]
}

fn items(ids: &[usize]) -> Value {
    let all = all_items();
    Value::Array(ids.iter().map(|i| all[i - 1].clone()).collect())
}

#[test]
fn admin_list_filters_by_status_is_active_and_search() {
    let (g, admin) = populated();
    let q = |query: &str| g.get(&format!("{ADMIN_USERS}?{query}"), Some(&admin));
    q("status=all").expect(200, items(&[1, 2, 3, 4, 5]));
    q("status=active").expect(200, items(&[1, 2, 4, 5]));
    q("status=deleted").expect(200, items(&[3]));
    q("status=bogus").expect(200, items(&[1, 2, 3, 4, 5]));
    q("is_active=true").expect(200, items(&[1, 2, 4, 5]));
    q("is_active=false").expect(200, items(&[3]));
    q("is_active=True").expect(200, items(&[1, 2, 4, 5]));
    q("is_active=0").expect(200, items(&[3]));
    // search: case-insensitive substring of username or email.
    q("search=corp.TEST").expect(200, items(&[2, 4]));
    q("search=tin").expect(200, items(&[5]));
    q("search=RUTH").expect(200, items(&[3]));
    q("search=example.com&status=active").expect(200, items(&[1, 5]));
    q("search=nomatch").expect(200, json!([]));
    q("search=").expect(200, items(&[1, 2, 3, 4, 5]));
}

#[test]
fn admin_list_paginates_with_drf_envelope() {
    let (g, admin) = populated();
    let base = format!("http://127.0.0.1:{}{ADMIN_USERS}", g.port);
    let q = |query: &str| g.get(&format!("{ADMIN_USERS}?{query}"), Some(&admin));
    q("page=1&page_size=2").expect(
        200,
        json!({"count": 5, "next": format!("{base}?page=2&page_size=2"), "previous": null, "results": items(&[1, 2])}),
    );
    q("page=2&page_size=2").expect(
        200,
        json!({"count": 5, "next": format!("{base}?page=3&page_size=2"), "previous": format!("{base}?page_size=2"), "results": items(&[3, 4])}),
    );
    q("page=3&page_size=2").expect(
        200,
        json!({"count": 5, "next": null, "previous": format!("{base}?page=2&page_size=2"), "results": items(&[5])}),
    );
    // page alone: page_size 20.
    q("page=1").expect(
        200,
        json!({"count": 5, "next": null, "previous": null, "results": items(&[1, 2, 3, 4, 5])}),
    );
    // Filters apply before paging and stay in the links.
    q("page=1&page_size=1&search=corp").expect(
        200,
        json!({"count": 2, "next": format!("{base}?page=2&page_size=1&search=corp"), "previous": null, "results": items(&[2])}),
    );
    q("page=2&page_size=1&status=deleted").expect(404, invalid_page());
    q("page=4&page_size=2").expect(404, invalid_page());
    q("page=abc&page_size=2").expect(404, invalid_page());
    q("page=0").expect(404, invalid_page());
}

// ---------------------------------------------------------------------------------------------
// Authentication errors, each row of the table.

#[test]
fn authentication_errors_have_simplejwt_bodies() {
    let g = Gatehouse::new().start();
    g.register_as("uma", "uma@example.com", PASSWORD)
        .expect_status(201);
    let (access, refresh) = g.login("uma", PASSWORD);
    let auth = |value: &str| g.with_header("GET", PROFILE, "Authorization", value);

    let r = g.get(PROFILE, None);
    r.expect(401, not_provided());
    assert_allow(&r, ALLOW_PROFILE);
    auth("Basic dW1hOlRlc3RQYXNzMTIz").expect(401, not_provided());
    auth("Token abc").expect(401, not_provided());
    auth("Basic a b").expect(401, not_provided());
    auth("Bearer").expect(401, bad_header());
    auth(&format!("Bearer {access} extra")).expect(401, bad_header());
    auth("Bearer garbage").expect(401, bad_access("Token is invalid"));
    auth(&format!("Bearer {}x", &access[..access.len() - 1]))
        .expect(401, bad_access("Token is invalid"));
    auth(&format!("Bearer {refresh}")).expect(401, bad_access("Token has wrong type"));
    let expired = g.forge(&access, json!({"exp": now() - 3600, "iat": now() - 3900}));
    auth(&format!("Bearer {expired}")).expect(401, bad_access("Token is expired"));
    let no_type = g.forge(&access, json!({"token_type": null}));
    auth(&format!("Bearer {no_type}")).expect(401, bad_access("Token has no type"));
    let no_exp = g.forge(&access, json!({"exp": null}));
    auth(&format!("Bearer {no_exp}")).expect(401, bad_access("Token has no 'exp' claim"));
    let other_user = g.forge(&access, json!({"user_id": "9999"}));
    auth(&format!("Bearer {other_user}")).expect(401, user_not_found());
    let without_user_id = g.forge(&access, json!({"user_id": null}));
    auth(&format!("Bearer {without_user_id}")).expect(401, no_user_id());
    let wrong_key = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(&access),
        b"some-other-secret-of-at-least-32-bytes!!",
    );
    auth(&format!("Bearer {wrong_key}")).expect(401, bad_access("Token is invalid"));
    // The real token, re-signed unchanged, is accepted (the forgeries above are well formed).
    let same = g.forge(&access, json!({}));
    auth(&format!("Bearer {same}")).expect(200, profile(1, "uma", "uma@example.com"));
}

#[test]
fn every_protected_endpoint_rejects_missing_credentials() {
    let g = Gatehouse::new().start();
    for (m, p, allow) in [
        ("GET", PROFILE, ALLOW_PROFILE),
        ("PUT", PROFILE, ALLOW_PROFILE),
        ("PATCH", PROFILE, ALLOW_PROFILE),
        ("PUT", PASSWORD_CHANGE, ALLOW_PASSWORD),
        ("PATCH", PASSWORD_CHANGE, ALLOW_PASSWORD),
        ("DELETE", PROFILE_DELETE, ALLOW_DELETE),
        ("GET", ADMIN_USERS, ALLOW_ADMIN_GET),
        ("GET", "/api/auth/admin/users/1/", ALLOW_ADMIN_DETAIL),
        ("PUT", "/api/auth/admin/users/restore/1/", ALLOW_RESTORE),
        ("PATCH", "/api/auth/admin/users/restore/1/", ALLOW_RESTORE),
    ] {
        let r = g.call(m, p, Some(json!({})), None);
        r.expect(401, not_provided());
        assert_allow(&r, allow);
        let r = g.send(g.request(m, p).header("Authorization", "Bearer a b"));
        r.expect(401, bad_header());
    }
}

#[test]
fn non_staff_gets_403_on_every_admin_endpoint() {
    let g = admin_server();
    let t = g.user_token("vera");
    for (m, p) in [
        ("GET", ADMIN_USERS.to_string()),
        ("GET", format!("{ADMIN_USERS}?page=1&page_size=1")),
        ("GET", "/api/auth/admin/users/1/".into()),
        ("PUT", "/api/auth/admin/users/restore/1/".into()),
        ("PATCH", "/api/auth/admin/users/restore/1/".into()),
    ] {
        g.call(m, &p, None, Some(&t)).expect(403, forbidden());
    }
}

// ---------------------------------------------------------------------------------------------
// Routing: 404, 405, 308, OPTIONS, HEAD, Allow.

#[test]
fn unknown_paths_under_owned_prefixes_are_json_404() {
    let g = Gatehouse::new().start();
    for p in [
        "/api/auth/",
        "/api/auth/nope/",
        "/api/auth/nope",
        "/api/auth/profile/extra/",
        "/api/auth/admin/",
        "/api/auth/admin/users/1/extra/",
        "/api/token/nope/",
        "/api/token/refresh/extra/",
        "/api/token/verify/x",
    ] {
        for m in ["GET", "POST"] {
            let r = g.call(m, p, Some(json!({})), None);
            r.expect(404, not_found());
            assert_eq!(r.header("allow"), None, "no Allow on an unknown path {p}");
        }
    }
}

#[test]
fn wrong_method_is_405_with_drf_message_after_auth() {
    let g = Gatehouse::new().start();
    let t = g.user_token("wade");
    let r = g.get(REGISTER, None);
    r.expect(405, method_not_allowed("GET"));
    assert_allow(&r, ALLOW_POST);
    g.call("DELETE", TOKEN, None, None)
        .expect(405, method_not_allowed("DELETE"));
    g.call("PUT", REFRESH, Some(json!({})), None)
        .expect(405, method_not_allowed("PUT"));
    g.call("GET", LOGOUT, None, None)
        .expect(405, method_not_allowed("GET"));
    g.call("PATCH", REGISTER, Some(json!({})), None)
        .expect(405, method_not_allowed("PATCH"));
    // Authentication first: 401 without a token, 405 with one.
    g.get(PROFILE_DELETE, None).expect(401, not_provided());
    let r = g.get(PROFILE_DELETE, Some(&t));
    r.expect(405, method_not_allowed("GET"));
    assert_allow(&r, ALLOW_DELETE);
    g.call("POST", PROFILE, Some(json!({})), None)
        .expect(401, not_provided());
    g.call("POST", PROFILE, Some(json!({})), Some(&t))
        .expect(405, method_not_allowed("POST"));
    g.call("DELETE", PROFILE, None, Some(&t))
        .expect(405, method_not_allowed("DELETE"));
    g.get(PASSWORD_CHANGE, Some(&t))
        .expect(405, method_not_allowed("GET"));
    // 405 before body parsing: a broken body does not matter.
    let r = g.send(
        g.request("POST", PROFILE)
            .bearer_auth(&t)
            .header("Content-Type", "application/json")
            .body("{oops"),
    );
    r.expect(405, method_not_allowed("POST"));
    // The user was not deleted by any of this.
    g.get(PROFILE, Some(&t)).expect_status(200);
}

#[test]
fn missing_trailing_slash_redirects_308_keeping_method_and_query() {
    let g = Gatehouse::new().start();
    for (m, p, loc) in [
        ("POST", "/api/auth/register", "/api/auth/register/"),
        ("POST", "/api/token", "/api/token/"),
        ("POST", "/api/token/refresh", "/api/token/refresh/"),
        ("GET", "/api/auth/profile", "/api/auth/profile/"),
        (
            "PATCH",
            "/api/auth/profile/password",
            "/api/auth/profile/password/",
        ),
        (
            "DELETE",
            "/api/auth/profile/delete",
            "/api/auth/profile/delete/",
        ),
        (
            "GET",
            "/api/auth/admin/users?page=2&page_size=5",
            "/api/auth/admin/users/?page=2&page_size=5",
        ),
        (
            "PUT",
            "/api/auth/admin/users/restore/3",
            "/api/auth/admin/users/restore/3/",
        ),
        ("GET", "/api/auth/admin/users/3", "/api/auth/admin/users/3/"),
    ] {
        let r = g.call(m, p, Some(json!({"username": "x"})), None);
        r.expect_status(308);
        assert_eq!(r.header("location").as_deref(), Some(loc), "{m} {p}");
        assert!(r.json["detail"].is_string(), "308 body {}", r.text);
    }
    // A client following the 308 with the same method and body succeeds.
    let body = json!({"username": "xena", "email": "xena@example.com", "password": PASSWORD});
    let r = g.call("POST", "/api/auth/register", Some(body.clone()), None);
    r.expect_status(308);
    let loc = r.header("location").expect("location");
    g.call("POST", &loc, Some(body), None)
        .expect(201, profile(1, "xena", "xena@example.com"));
    // Nothing was registered by the redirect itself.
    g.register_as("yann", "yann@example.com", PASSWORD)
        .expect(201, profile(2, "yann", "yann@example.com"));
}

#[test]
fn options_answers_every_api_path_without_auth() {
    let g = Gatehouse::new().start();
    for (p, allow) in [
        (TOKEN, ALLOW_POST),
        (REFRESH, ALLOW_POST),
        (VERIFY, ALLOW_POST),
        (REGISTER, ALLOW_POST),
        (LOGOUT, ALLOW_POST),
        (PROFILE, ALLOW_PROFILE),
        (PASSWORD_CHANGE, ALLOW_PASSWORD),
        (PROFILE_DELETE, ALLOW_DELETE),
        (ADMIN_USERS, ALLOW_ADMIN_GET),
        ("/api/auth/admin/users/1/", ALLOW_ADMIN_DETAIL),
        ("/api/auth/admin/users/restore/1/", ALLOW_RESTORE),
    ] {
        let r = g.call("OPTIONS", p, None, None);
        r.expect_status(200);
        assert_allow(&r, allow);
        assert!(r.json["name"].is_string(), "{p}: {}", r.text);
        assert!(r.json["description"].is_string(), "{p}: {}", r.text);
        assert_eq!(r.json["renders"], json!(["application/json"]), "{p}");
        assert_eq!(
            r.json["parses"],
            json!(["application/json", "application/x-www-form-urlencoded"]),
            "{p}"
        );
    }
}

#[test]
fn head_mirrors_get_without_a_body() {
    let g = admin_server();
    let t = g.user_token("zack");
    let admin = g.login("admin", ADMIN_PW).0;
    // Raw, and to the close: an HTTP client drops whatever follows a HEAD answer's head, the
    // harness's raw reader fails on any byte of it.
    let head = |path: &str, token: Option<&str>| {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        g.raw(&format!(
            "HEAD {path} HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n"
        ))
    };
    for (p, tok) in [
        (PROFILE, &t),
        (ADMIN_USERS, &admin),
        ("/api/auth/admin/users/2/", &admin),
    ] {
        let full = g.get(p, Some(tok));
        full.expect_status(200);
        let h = head(p, Some(tok));
        assert_eq!(h.status, 200, "HEAD {p}");
        assert_eq!(
            h.header("content-length"),
            full.header("content-length"),
            "HEAD {p} Content-Length"
        );
        assert_eq!(h.header("allow"), full.header("allow"), "HEAD {p} Allow");
    }
    assert_eq!(head(PROFILE, None).status, 401);
    assert_eq!(head(ADMIN_USERS, Some(&t)).status, 403);
}

// ---------------------------------------------------------------------------------------------
// Bodies: parsers, content types, size.

#[test]
fn form_encoded_bodies_work_like_json() {
    let g = Gatehouse::new().start();
    g.form("POST",
        REGISTER,
        "username=formuser&email=form%40example.com&password=TestPass123&first_name=Fo+Rm",
        None,
    )
    .expect(
        201,
        json!({"id": 1, "username": "formuser", "email": "form@example.com", "first_name": "Fo Rm", "last_name": ""}),
    );
    g.form("POST", REGISTER, "username=f2&email=bad", None)
        .expect(400, json!({"email": [BAD_EMAIL], "password": [REQUIRED]}));
    let r = g.form(
        "POST",
        TOKEN,
        "username=formuser&password=TestPass123",
        None,
    );
    r.expect_status(200);
    let (access, refresh) = r.tokens();
    g.form("POST", TOKEN, "username=formuser&password=nope", None)
        .expect(401, wrong_login());
    let r = g.form("POST", REFRESH, &format!("refresh={refresh}"), None);
    r.expect_status(200);
    g.form("POST", VERIFY, &format!("token={access}"), None)
        .expect(200, json!({}));
    g.form("PATCH", PROFILE, "last_name=Smith", Some(&access)).expect(
        200,
        json!({"id": 1, "username": "formuser", "email": "form@example.com", "first_name": "Fo Rm", "last_name": "Smith"}),
    );
    let r = g.form(
        "PUT",
        PASSWORD_CHANGE,
        "old_password=TestPass123&new_password=NewPass123",
        Some(&access),
    );
    r.expect_status(200);
    assert_eq!(r.json["detail"], PASSWORD_UPDATED);
    let (_, refresh) = r.tokens();
    g.form("POST", LOGOUT, &format!("refresh={refresh}"), None)
        .expect(200, json!({}));
}

#[test]
fn non_object_and_malformed_json_are_400() {
    let g = Gatehouse::new().start();
    let raw = |body: &str| g.with_body("POST", REGISTER, "application/json", body, None);
    let nfe = not_a_dict;
    raw("[]").expect(400, nfe("list"));
    raw(r#"[{"username": "a"}]"#).expect(400, nfe("list"));
    raw(r#""text""#).expect(400, nfe("str"));
    raw("42").expect(400, nfe("int"));
    raw("4.5").expect(400, nfe("float"));
    raw("true").expect(400, nfe("bool"));
    g.with_body("POST", TOKEN, "application/json", "[1, 2]", None)
        .expect(400, nfe("list"));
    for bad in [r#"{"username": "#, "{oops}", r#"{"a": 1,}"#, "\u{1}"] {
        for p in [REGISTER, TOKEN, REFRESH] {
            let r = g.with_body("POST", p, "application/json", bad, None);
            r.expect_status(400);
            assert_eq!(r.keys(), ["detail"], "{}", r.text);
            let d = r.json["detail"].as_str().expect("detail string");
            assert!(d.starts_with("JSON parse error - "), "{bad:?} -> {d:?}");
            assert!(
                d.len() > "JSON parse error - ".len(),
                "says what is wrong: {d:?}"
            );
        }
    }
    // application/json with a charset parameter is still JSON.
    g.with_body(
        "POST",
        REGISTER,
        "application/json; charset=utf-8",
        r#"{"username": "charset", "email": "charset@example.com", "password": "TestPass123"}"#,
        None,
    )
    .expect(201, profile(1, "charset", "charset@example.com"));
    // An empty body with no content type is {}.
    g.send(g.request("POST", REGISTER)).expect(
        400,
        json!({"username": [REQUIRED], "email": [REQUIRED], "password": [REQUIRED]}),
    );
    g.send(g.request("POST", TOKEN))
        .expect(400, json!({"username": [REQUIRED], "password": [REQUIRED]}));
}

#[test]
fn other_content_types_are_415() {
    let g = Gatehouse::new().start();
    let t = g.user_token("abby");
    let ums = unsupported_media_type;
    g.with_body("POST", REGISTER, "text/plain", "username=x", None)
        .expect(415, ums("text/plain"));
    g.with_body("POST", TOKEN, "text/plain; charset=utf-8", "{}", None)
        .expect(415, ums("text/plain; charset=utf-8"));
    g.with_body("POST", REFRESH, "application/xml", "<a/>", None)
        .expect(415, ums("application/xml"));
    g.with_body(
        "POST",
        REGISTER,
        "multipart/form-data; boundary=x",
        "--x--",
        None,
    )
    .expect(415, ums("multipart/form-data; boundary=x"));
    let r = g.send(
        g.request("PATCH", PROFILE)
            .bearer_auth(&t)
            .header("Content-Type", "text/plain")
            .body("first_name=x"),
    );
    r.expect(415, ums("text/plain"));
    assert_allow(&r, ALLOW_PROFILE);
    // Authentication comes before parsing.
    g.with_body("PATCH", PROFILE, "text/plain", "x", None)
        .expect(401, not_provided());
}

#[test]
fn body_over_64_kib_is_413() {
    let g = Gatehouse::new().start();
    let too_large = body_too_large(64 * 1024);
    let big =
        json!({"username": "big", "email": "big@example.com", "password": "p".repeat(70_000)});
    g.post(REGISTER, big.clone(), None)
        .expect(413, too_large.clone());
    g.post(
        TOKEN,
        json!({"username": "x", "password": "p".repeat(70_000)}),
        None,
    )
    .expect(413, too_large.clone());
    let form_body = format!(
        "username=big&email=big%40example.com&password={}",
        "p".repeat(70_000)
    );
    g.form("POST", REGISTER, &form_body, None)
        .expect(413, too_large);
    // Just under the limit is parsed normally (unknown keys are ignored).
    let pad = "p".repeat(60_000);
    g.post(REGISTER, json!({"username": "small", "email": "small@example.com", "password": PASSWORD, "pad": pad}), None)
        .expect(201, profile(1, "small", "small@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Framing at the byte level: Content-Type and an exact Content-Length on raw HTTP/1.1.

#[test]
fn raw_http_responses_are_framed_json() {
    let g = Gatehouse::new().start();
    let cases: Vec<(String, u16)> = vec![
        ("GET /api/auth/profile/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), 401),
        ("GET /api/auth/nope/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), 404),
        ("GET /api/auth/register/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), 405),
        ("GET /api/auth/profile HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), 308),
        (
            "POST /api/token/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{\"a\":"
                .into(),
            400,
        ),
        (
            "POST /api/auth/register/ HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
                .into(),
            415,
        ),
        {
            let b = r#"{"username":"x","password":"TestPass123"}"#;
            (
                format!(
                    "POST /api/token/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                ),
                401,
            )
        },
        ("OPTIONS /api/token/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), 200),
    ];
    for (req, want) in cases {
        // Read by its framing, and on to the close these requests ask for: the harness fails
        // on a wrong or missing Content-Length, a non-JSON body or type, bytes after the body,
        // and a 401 without WWW-Authenticate.
        let raw = g.raw(&req);
        assert_eq!(raw.status, want, "{req:?} -> {}", raw.text());
        assert!(raw.json().is_object(), "{req:?} -> {}", raw.text());
    }
}

#[test]
fn register_throttling_by_address() {
    let g = Gatehouse::new()
        .with_config(|c| c.throttle.registrations_per_address = 3)
        .start();
    for name in ["t1", "t2", "t3"] {
        g.register(name);
    }
    let r = g.register_as("t4", "t4@example.com", PASSWORD);
    r.expect_status(429);
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&wait));
    assert_eq!(
        r.json["detail"],
        json!(format!(
            "Request was throttled. Expected available in {wait} second{}.",
            if wait == 1 { "" } else { "s" }
        ))
    );
}

#[test]
fn login_throttling_by_username() {
    let g = Gatehouse::new()
        .with_config(|c| c.throttle.login_failures_per_username = 3)
        .start();
    g.register("jack");
    for _ in 0..3 {
        g.login_attempt("jack", "Wrong-Pass-9")
            .expect(401, wrong_login());
    }
    // Even the right password waits now: the attacker cannot tell.
    let r = g.login_attempt("jack", PASSWORD);
    r.expect_status(429);
    assert!(r.header("retry-after").is_some());
    // Another user is not affected.
    g.register("kate");
    g.login("kate", PASSWORD);
}

#[test]
fn schema_and_jwks_documents() {
    let g = Gatehouse::new().start();
    let schema = g.get("/api/schema/", None);
    schema.expect_status(200);
    assert!(schema.json["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    // HS256 deployment: no public keys to publish.
    g.get("/.well-known/jwks.json", None).expect_status(404);
}
