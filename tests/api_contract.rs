mod common;

use common::{bad_access, bad_refresh};
// SPEC §1 end to end over real HTTP: every endpoint row, every user-API error row, DRF's wire
// conventions (Allow, 308, OPTIONS, HEAD, framing, parsers) and Django's validators, exact bodies.

use common::{claims, now, sign_hs256, Gatehouse, Resp, PASSWORD};
use serde_json::{json, Value};

const ADMIN_PW: &str = "AdminPass123";
const REGISTER: &str = "/api/auth/register/";
const TOKEN: &str = "/api/token/";
const REFRESH: &str = "/api/token/refresh/";
const VERIFY: &str = "/api/token/verify/";
const LOGOUT: &str = "/api/auth/logout/";
const PROFILE: &str = "/api/auth/profile/";
const PASSWORD_PATH: &str = "/api/auth/profile/password/";
const DELETE: &str = "/api/auth/profile/delete/";
const ADMIN_USERS: &str = "/api/auth/admin/users/";

const ALLOW_POST: &str = "POST, OPTIONS";
const ALLOW_PROFILE: &str = "GET, PUT, PATCH, HEAD, OPTIONS";
const ALLOW_PASSWORD: &str = "PUT, PATCH, OPTIONS";
const ALLOW_DELETE: &str = "DELETE, OPTIONS";
const ALLOW_ADMIN_GET: &str = "GET, HEAD, OPTIONS";
const ALLOW_ADMIN_DETAIL: &str = "GET, PATCH, HEAD, OPTIONS";
const ALLOW_RESTORE: &str = "PUT, PATCH, OPTIONS";

const SIMILAR_USERNAME: &str = "The password is too similar to the username.";
const SIMILAR_EMAIL: &str = "The password is too similar to the email address.";
const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
const TOO_COMMON: &str = "This password is too common.";
const NUMERIC: &str = "This password is entirely numeric.";
const REQUIRED: &str = "This field is required.";
const BLANK: &str = "This field may not be blank.";
const NULL: &str = "This field may not be null.";
const NOT_STRING: &str = "Not a valid string.";
const BAD_EMAIL: &str = "Enter a valid email address.";
const MAX_150: &str = "Ensure this field has no more than 150 characters.";
const USERNAME_TAKEN: &str = "A user with that username already exists.";
const EMAIL_TAKEN: &str = "user with this email address already exists.";
const BAD_USERNAME: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";

// ---------------------------------------------------------------------------------------------
// Helpers: every response that goes through them is checked for the invariants every API
// response must satisfy (JSON content type, exact Content-Length, WWW-Authenticate on 401).

/// Asserts the framing invariants of SPEC §1 on one response.
#[track_caller]
fn check_framing(r: &Resp, head: bool) {
    assert_ne!(r.status, 500, "a 500: {}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "Content-Type {ct:?} on {} {}",
        r.status,
        r.text
    );
    if r.status == 401 {
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"api\""),
            "401 without WWW-Authenticate: {}",
            r.text
        );
    }
    if !head {
        let cl = r
            .header("content-length")
            .unwrap_or_else(|| panic!("no Content-Length on {} {}", r.status, r.text));
        assert_eq!(
            cl.parse::<usize>().expect("numeric Content-Length"),
            r.text.len(),
            "Content-Length does not match the body {:?}",
            r.text
        );
        assert!(
            serde_json::from_str::<Value>(&r.text).is_ok(),
            "body is not JSON: {:?}",
            r.text
        );
    }
}

fn checked(r: Resp) -> Resp {
    check_framing(&r, false);
    r
}

fn send(g: &Gatehouse, rb: reqwest::blocking::RequestBuilder) -> Resp {
    checked(g.send(rb))
}

fn api(g: &Gatehouse, method: &str, path: &str, body: Option<Value>, tok: Option<&str>) -> Resp {
    let r = g.call(method, path, body, tok);
    check_framing(&r, method == "HEAD");
    r
}

fn post(g: &Gatehouse, path: &str, body: Value) -> Resp {
    api(g, "POST", path, Some(body), None)
}

fn get(g: &Gatehouse, path: &str, tok: Option<&str>) -> Resp {
    api(g, "GET", path, None, tok)
}

fn with_header(g: &Gatehouse, method: &str, path: &str, name: &str, value: &str) -> Resp {
    send(g, g.request(method, path).header(name, value))
}

fn body_with_type(g: &Gatehouse, method: &str, path: &str, ct: &str, body: &str) -> Resp {
    send(
        g,
        g.request(method, path)
            .header("Content-Type", ct)
            .body(body.to_string()),
    )
}

fn form(g: &Gatehouse, method: &str, path: &str, body: &str, tok: Option<&str>) -> Resp {
    let mut rb = g
        .request(method, path)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(t) = tok {
        rb = rb.bearer_auth(t);
    }
    send(g, rb)
}

fn admin_server() -> Gatehouse {
    Gatehouse::builder()
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .start()
}

fn register(g: &Gatehouse, username: &str, email: &str, password: &str) -> Resp {
    post(
        g,
        REGISTER,
        json!({"username": username, "email": email, "password": password}),
    )
}

fn login(g: &Gatehouse, username: &str, password: &str) -> Resp {
    post(
        g,
        TOKEN,
        json!({"username": username, "password": password}),
    )
}

fn tokens(r: &Resp) -> (String, String) {
    (
        r.json["access"].as_str().expect("access").to_string(),
        r.json["refresh"].as_str().expect("refresh").to_string(),
    )
}

/// Registers `name` (`name@example.com`, the seed password) and returns its access token.
fn user(g: &Gatehouse, name: &str) -> String {
    register(g, name, &format!("{name}@example.com"), PASSWORD).expect_status(201);
    g.login(name, PASSWORD).0
}

fn profile(id: u64, username: &str, email: &str) -> Value {
    json!({"id": id, "username": username, "email": email, "first_name": "", "last_name": ""})
}

fn admin_item(id: u64, username: &str, email: &str, active: bool) -> Value {
    json!({"id": id, "username": username, "email": email, "first_name": "", "last_name": "", "is_active": active})
}

/// The admin detail: the list's fields, `is_staff` and `groups`.
fn admin_detail(id: u64, username: &str, email: &str, active: bool, staff: bool) -> Value {
    let mut v = admin_item(id, username, email, active);
    v["is_staff"] = json!(staff);
    v["groups"] = json!([]);
    v
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn not_provided() -> Value {
    json!({"detail": "Authentication credentials were not provided."})
}

fn bad_header() -> Value {
    json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"})
}

fn wrong_login() -> Value {
    json!({"detail": "No active account found with the given credentials"})
}

fn forbidden() -> Value {
    json!({"detail": "You do not have permission to perform this action."})
}

fn no_user() -> Value {
    json!({"detail": "No User matches the given query."})
}

fn not_found() -> Value {
    json!({"detail": "Not found."})
}

fn method_not_allowed(m: &str) -> Value {
    json!({ "detail": format!("Method \"{m}\" not allowed.") })
}

/// Re-signs the claims of a real token after `edit` changes them.
fn forge(
    g: &Gatehouse,
    token: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    let mut c = claims(token);
    edit(c.as_object_mut().expect("claims object"));
    sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &c,
        g.secret().as_bytes(),
    )
}

#[track_caller]
fn assert_allow(r: &Resp, allow: &str) {
    assert_eq!(
        r.header("allow").as_deref(),
        Some(allow),
        "Allow header on {} {}",
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
    register(&g, "testuser", "test@example.com", "TestPass123")
        .expect(201, profile(2, "testuser", "test@example.com"));
    register(&g, "alice", "alice@example.com", PASSWORD)
        .expect(201, profile(3, "alice", "alice@example.com"));

    // Row 1: token.
    let r = login(&g, "testuser", "TestPass123");
    r.expect_status(200);
    assert_eq!(keys(&r.json), ["access", "refresh"], "{}", r.text);
    let (access, refresh) = tokens(&r);
    assert_eq!(claims(&access)["token_type"], "access");
    assert_eq!(claims(&access)["user_id"], "2");
    assert_eq!(claims(&refresh)["token_type"], "refresh");
    assert_allow(&r, ALLOW_POST);

    // Row 2: refresh (rotation off: access only).
    let r = post(&g, REFRESH, json!({ "refresh": refresh }));
    r.expect_status(200);
    assert_eq!(keys(&r.json), ["access"], "{}", r.text);
    let access2 = r.json["access"].as_str().expect("access").to_string();
    assert_ne!(claims(&access2)["jti"], claims(&access)["jti"]);

    // Row 4: profile GET, with the refreshed access token.
    get(&g, PROFILE, Some(&access2)).expect(200, profile(2, "testuser", "test@example.com"));

    // Row 5: PUT then PATCH.
    api(
        &g,
        "PUT",
        PROFILE,
        Some(json!({"username": "updateduser", "email": "updated@example.com"})),
        Some(&access),
    )
    .expect(200, profile(2, "updateduser", "updated@example.com"));
    api(&g, "PATCH", PROFILE, Some(json!({"first_name": "Test"})), Some(&access)).expect(
        200,
        json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Test", "last_name": ""}),
    );

    // Row 6: password change, README body.
    let r = api(
        &g,
        "PUT",
        PASSWORD_PATH,
        Some(json!({"old_password": "TestPass123", "new_password": "NewPass123"})),
        Some(&access),
    );
    r.expect_status(200);
    assert_eq!(keys(&r.json), ["access", "detail", "refresh"], "{}", r.text);
    assert_eq!(r.json["detail"], "Password updated successfully.");
    let (access, _) = tokens(&r);
    login(&g, "updateduser", "TestPass123").expect(401, wrong_login());
    login(&g, "updateduser", "NewPass123").expect_status(200);

    // Row 7: soft delete.
    api(&g, "DELETE", DELETE, None, Some(&access)).expect(
        200,
        json!({"message": "Account soft deleted successfully."}),
    );

    // Row 8: admin list shows everyone, the deleted one inactive.
    let admin = g.login("admin", ADMIN_PW).0;
    get(&g, ADMIN_USERS, Some(&admin)).expect(
        200,
        json!([
            admin_item(1, "admin", "admin@example.com", true),
            {"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Test", "last_name": "", "is_active": false},
            admin_item(3, "alice", "alice@example.com", true),
        ]),
    );

    // Row 9: restore.
    api(&g, "PUT", "/api/auth/admin/users/restore/2/", None, Some(&admin)).expect(
        200,
        json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Test", "last_name": "", "is_active": true}),
    );
    login(&g, "updateduser", "NewPass123").expect_status(200);
}

#[test]
fn ids_increase_and_are_never_reused() {
    let g = Gatehouse::start();
    register(&g, "first", "first@example.com", PASSWORD)
        .expect(201, profile(1, "first", "first@example.com"));
    register(&g, "second", "second@example.com", PASSWORD)
        .expect(201, profile(2, "second", "second@example.com"));
    // A soft-deleted user keeps its id and name.
    let t = g.login("second", PASSWORD).0;
    api(&g, "DELETE", DELETE, None, Some(&t)).expect_status(200);
    register(&g, "second", "second2@example.com", PASSWORD)
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    register(&g, "third", "third@example.com", PASSWORD)
        .expect(201, profile(3, "third", "third@example.com"));
    let t = g.login("third", PASSWORD).0;
    get(&g, PROFILE, Some(&t)).expect(200, profile(3, "third", "third@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Register: field validation, one message at a time.

#[test]
fn register_reports_each_field_error_with_drf_messages() {
    let g = Gatehouse::start();
    let e = |body: Value, want: Value| {
        post(&g, REGISTER, body).expect(400, want);
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
    let long_email = format!("{}@example.com", "e".repeat(243));
    assert_eq!(long_email.len(), 255);
    e(
        json!({"username": "bob", "email": long_email, "password": PASSWORD}),
        json!({"email": ["Ensure this field has no more than 254 characters."]}),
    );
    e(
        json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "first_name": "f".repeat(151)}),
        json!({"first_name": [MAX_150]}),
    );
    // Nothing above created a user.
    register(&g, "bob", "bob@example.com", PASSWORD)
        .expect(201, profile(1, "bob", "bob@example.com"));
}

#[test]
fn register_without_email_is_400_not_500() {
    let g = Gatehouse::start();
    post(
        &g,
        REGISTER,
        json!({"username": "noemail", "password": PASSWORD}),
    )
    .expect(400, json!({"email": [REQUIRED]}));
    // Form-encoded, too.
    form(
        &g,
        "POST",
        REGISTER,
        "username=noemail&password=TestPass123",
        None,
    )
    .expect(400, json!({"email": [REQUIRED]}));
}

#[test]
fn register_accepts_optional_names_numbers_as_strings_and_trims() {
    let g = Gatehouse::start();
    post(
        &g,
        REGISTER,
        json!({"username": "  named  ", "email": " named@example.com ", "password": PASSWORD, "first_name": "Ada", "last_name": 42}),
    )
    .expect(
        201,
        json!({"id": 1, "username": "named", "email": "named@example.com", "first_name": "Ada", "last_name": "42"}),
    );
    post(
        &g,
        REGISTER,
        json!({"username": "blanknames", "email": "blank@example.com", "password": PASSWORD, "first_name": "", "last_name": ""}),
    )
    .expect(201, profile(2, "blanknames", "blank@example.com"));
}

#[test]
fn register_ignores_read_only_fields() {
    let g = admin_server();
    post(
        &g,
        REGISTER,
        json!({"id": 77, "username": "sneaky", "email": "sneaky@example.com", "password": PASSWORD,
               "is_staff": true, "is_superuser": true, "is_active": false, "date_joined": "2000-01-01T00:00:00Z"}),
    )
    .expect(201, profile(2, "sneaky", "sneaky@example.com"));
    // is_active: false was ignored: the user can log in.
    let t = g.login("sneaky", PASSWORD).0;
    get(&g, PROFILE, Some(&t)).expect(200, profile(2, "sneaky", "sneaky@example.com"));
    // is_staff: true was ignored: no admin access.
    get(&g, ADMIN_USERS, Some(&t)).expect(403, forbidden());
    // id 77 was ignored: the next user is 3.
    register(&g, "next", "next@example.com", PASSWORD)
        .expect(201, profile(3, "next", "next@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Register: Django's password validators one at a time, then together.

#[test]
fn password_validators_run_on_register_one_at_a_time_in_djangos_order() {
    let g = Gatehouse::start();
    let pw = |u: &str, e: &str, p: &str, want: &[&str]| {
        register(&g, u, e, p).expect(400, json!({ "password": want }));
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
    register(&g, "bad name", "nope", "1234567").expect(
        400,
        json!({"username": [BAD_USERNAME], "email": [BAD_EMAIL], "password": [TOO_SHORT, TOO_COMMON, NUMERIC]}),
    );
    // The seed README's passwords pass.
    register(&g, "testuser", "test@example.com", "TestPass123")
        .expect(201, profile(1, "testuser", "test@example.com"));
    register(&g, "newuser", "new@example.com", "NewPass123")
        .expect(201, profile(2, "newuser", "new@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Username rule and uniqueness.

#[test]
fn username_follows_djangos_rule_and_150_character_limit() {
    let g = Gatehouse::start();
    let max = "u".repeat(150);
    register(&g, &max, "max@example.com", PASSWORD)
        .expect(201, profile(1, &max, "max@example.com"));
    register(&g, &"u".repeat(151), "over@example.com", PASSWORD)
        .expect(400, json!({"username": [MAX_150]}));
    for bad in [
        "bad name",
        "semi;colon",
        "slash/name",
        "a#b",
        "quote'd",
        "tab\tname",
    ] {
        register(&g, bad, "bad@example.com", PASSWORD)
            .expect(400, json!({"username": [BAD_USERNAME]}));
    }
    // Invalid characters and too long: both, in DRF's validator order.
    register(
        &g,
        &format!("{}!", "v".repeat(150)),
        "both@example.com",
        PASSWORD,
    )
    .expect(400, json!({"username": [BAD_USERNAME, MAX_150]}));
    register(&g, "a.b+c-d_e@f", "chars@example.com", PASSWORD)
        .expect(201, profile(2, "a.b+c-d_e@f", "chars@example.com"));
    register(&g, "12345", "digits@example.com", PASSWORD)
        .expect(201, profile(3, "12345", "digits@example.com"));
    // Django's \w is Unicode-aware.
    register(&g, "josé_ñ", "jose@example.com", PASSWORD)
        .expect(201, profile(4, "josé_ñ", "jose@example.com"));
}

#[test]
fn username_and_email_are_unique_case_insensitively() {
    let g = Gatehouse::start();
    register(&g, "alice", "alice@example.com", PASSWORD)
        .expect(201, profile(1, "alice", "alice@example.com"));
    register(&g, "ALICE", "other@example.com", PASSWORD)
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    register(&g, "Alice", "other@example.com", PASSWORD)
        .expect(400, json!({"username": [USERNAME_TAKEN]}));
    register(&g, "bob", "Alice@EXAMPLE.com", PASSWORD).expect(400, json!({"email": [EMAIL_TAKEN]}));
    register(&g, "aLiCe", "ALICE@example.com", PASSWORD).expect(
        400,
        json!({"username": [USERNAME_TAKEN], "email": [EMAIL_TAKEN]}),
    );
    // Login is case-insensitive on the username, and logs in the one user.
    let r = login(&g, "ALICE", PASSWORD);
    r.expect_status(200);
    assert_eq!(claims(&tokens(&r).0)["user_id"], "1");
    register(&g, "bob", "bob@example.com", PASSWORD)
        .expect(201, profile(2, "bob", "bob@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Token obtain, refresh, verify, logout.

#[test]
fn login_failures_are_indistinguishable_and_fields_are_required() {
    let g = Gatehouse::start();
    let t = user(&g, "carol");
    let r = login(&g, "carol", "WrongPass123");
    r.expect(401, wrong_login());
    assert_allow(&r, ALLOW_POST);
    login(&g, "nobody", PASSWORD).expect(401, wrong_login());
    post(&g, TOKEN, json!({})).expect(400, json!({"username": [REQUIRED], "password": [REQUIRED]}));
    post(&g, TOKEN, json!({"username": "carol", "password": ""}))
        .expect(400, json!({"password": [BLANK]}));
    post(&g, TOKEN, json!({"username": null, "password": PASSWORD}))
        .expect(400, json!({"username": [NULL]}));
    // Soft-deleted: same body as a wrong password.
    api(&g, "DELETE", DELETE, None, Some(&t)).expect_status(200);
    login(&g, "carol", PASSWORD).expect(401, wrong_login());
}

#[test]
fn token_views_ignore_the_authorization_header() {
    let g = Gatehouse::start();
    register(&g, "dave", "dave@example.com", PASSWORD).expect_status(201);
    let rb = g
        .request("POST", TOKEN)
        .header("Authorization", "Bearer not-a-token")
        .json(&json!({"username": "dave", "password": PASSWORD}));
    send(&g, rb).expect_status(200);
    let (_, refresh) = g.login("dave", PASSWORD);
    let rb = g
        .request("POST", REFRESH)
        .header("Authorization", "Bearer")
        .json(&json!({ "refresh": refresh }));
    send(&g, rb).expect_status(200);
    // Other API views do authenticate a header that is present, even register.
    let rb = g
        .request("POST", REGISTER)
        .header("Authorization", "Bearer not-a-token")
        .json(&json!({"username": "erin", "email": "erin@example.com", "password": PASSWORD}));
    send(&g, rb).expect(401, bad_access("Token is invalid"));
}

#[test]
fn refresh_errors_match_simplejwt() {
    let g = Gatehouse::start();
    let r = {
        register(&g, "frank", "frank@example.com", PASSWORD).expect_status(201);
        login(&g, "frank", PASSWORD)
    };
    let (access, refresh) = tokens(&r);
    post(&g, REFRESH, json!({})).expect(400, json!({"refresh": [REQUIRED]}));
    post(&g, REFRESH, json!({"refresh": ""})).expect(400, json!({"refresh": [BLANK]}));
    let r = post(&g, REFRESH, json!({"refresh": "garbage"}));
    r.expect(401, bad_refresh("Token is invalid"));
    assert_allow(&r, ALLOW_POST);
    post(&g, REFRESH, json!({ "refresh": access }))
        .expect(401, bad_refresh("Token has wrong type"));
    let expired = forge(&g, &refresh, |c| {
        c.insert("exp".into(), json!(now() - 3600));
        c.insert("iat".into(), json!(now() - 7200));
    });
    post(&g, REFRESH, json!({ "refresh": expired })).expect(401, bad_refresh("Token is expired"));
    let tampered = format!("{}x", &refresh[..refresh.len() - 1]);
    post(&g, REFRESH, json!({ "refresh": tampered })).expect(401, bad_refresh("Token is invalid"));
    // Still fine before the delete; then an inactive user's refresh is refused.
    post(&g, REFRESH, json!({ "refresh": refresh })).expect_status(200);
    api(&g, "DELETE", DELETE, None, Some(&access)).expect_status(200);
    post(&g, REFRESH, json!({ "refresh": refresh })).expect(
        401,
        json!({"detail": "No active account found for the given token."}),
    );
}

#[test]
fn verify_accepts_live_tokens_and_rejects_others() {
    let g = Gatehouse::start();
    register(&g, "gina", "gina@example.com", PASSWORD).expect_status(201);
    let (access, refresh) = g.login("gina", PASSWORD);
    let r = post(&g, VERIFY, json!({ "token": access }));
    r.expect(200, json!({}));
    assert_allow(&r, ALLOW_POST);
    post(&g, VERIFY, json!({ "token": refresh })).expect(200, json!({}));
    post(&g, VERIFY, json!({"token": "garbage"})).expect(401, bad_refresh("Token is invalid"));
    let expired = forge(&g, &access, |c| {
        c.insert("exp".into(), json!(now() - 3600));
    });
    post(&g, VERIFY, json!({ "token": expired })).expect(401, bad_refresh("Token is expired"));
    post(&g, VERIFY, json!({})).expect(400, json!({"token": [REQUIRED]}));
    api(&g, "GET", VERIFY, None, None).expect(405, method_not_allowed("GET"));
}

#[test]
fn logout_blacklists_the_refresh_token() {
    let g = Gatehouse::start();
    register(&g, "hank", "hank@example.com", PASSWORD).expect_status(201);
    let (access, refresh) = g.login("hank", PASSWORD);
    post(&g, LOGOUT, json!({})).expect(400, json!({"refresh": [REQUIRED]}));
    post(&g, LOGOUT, json!({ "refresh": access })).expect(401, bad_refresh("Token has wrong type"));
    post(&g, LOGOUT, json!({"refresh": "garbage"})).expect(401, bad_refresh("Token is invalid"));
    // No access token needed.
    let r = post(&g, LOGOUT, json!({ "refresh": refresh }));
    r.expect(200, json!({}));
    assert_allow(&r, ALLOW_POST);
    post(&g, REFRESH, json!({ "refresh": refresh }))
        .expect(401, bad_refresh("Token is blacklisted"));
    post(&g, LOGOUT, json!({ "refresh": refresh }))
        .expect(401, bad_refresh("Token is blacklisted"));
    // A fresh login is unaffected.
    let (_, refresh2) = g.login("hank", PASSWORD);
    post(&g, REFRESH, json!({ "refresh": refresh2 })).expect_status(200);
}

#[test]
fn logout_with_rotation_kills_the_whole_family() {
    let g = Gatehouse::builder()
        .env("GATEHOUSE_JWT_ROTATE_REFRESH_TOKENS", "true")
        .start();
    register(&g, "ivy", "ivy@example.com", PASSWORD).expect_status(201);
    let (_, r0) = g.login("ivy", PASSWORD);
    let r = post(&g, REFRESH, json!({ "refresh": r0 }));
    r.expect_status(200);
    assert_eq!(keys(&r.json), ["access", "refresh"], "{}", r.text);
    let r1 = r.json["refresh"].as_str().expect("refresh").to_string();
    assert_ne!(claims(&r1)["jti"], claims(&r0)["jti"]);
    post(&g, LOGOUT, json!({ "refresh": r1 })).expect(200, json!({}));
    post(&g, REFRESH, json!({ "refresh": r1 })).expect(401, bad_refresh("Token is blacklisted"));
    post(&g, REFRESH, json!({ "refresh": r0 })).expect(401, bad_refresh("Token is blacklisted"));
}

// ---------------------------------------------------------------------------------------------
// Profile.

#[test]
fn profile_put_is_a_full_update_and_patch_is_partial() {
    let g = Gatehouse::start();
    let t = user(&g, "jack");
    user(&g, "kate");
    let r = get(&g, PROFILE, Some(&t));
    r.expect(200, profile(1, "jack", "jack@example.com"));
    assert_allow(&r, ALLOW_PROFILE);

    let put = |b: Value| api(&g, "PUT", PROFILE, Some(b), Some(&t));
    let patch = |b: Value| api(&g, "PATCH", PROFILE, Some(b), Some(&t));
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
    login(&g, "jack", PASSWORD).expect(401, wrong_login());
    login(&g, "jacky", PASSWORD).expect_status(200);
    get(&g, PROFILE, Some(&t)).expect_status(200);
    // The old name is free again.
    register(&g, "jack", "jack-new@example.com", PASSWORD)
        .expect(201, profile(3, "jack", "jack-new@example.com"));
}

#[test]
fn profile_update_ignores_read_only_fields() {
    let g = Gatehouse::start();
    let t = user(&g, "liam");
    api(
        &g,
        "PATCH",
        PROFILE,
        Some(json!({"id": 99, "is_staff": true, "is_active": false, "is_superuser": true, "first_name": "L"})),
        Some(&t),
    )
    .expect(
        200,
        json!({"id": 1, "username": "liam", "email": "liam@example.com", "first_name": "L", "last_name": ""}),
    );
    api(
        &g,
        "PUT",
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
    get(&g, PROFILE, Some(&t)).expect(
        200,
        json!({"id": 1, "username": "liam", "email": "liam@example.com", "first_name": "L", "last_name": ""}),
    );
    get(&g, ADMIN_USERS, Some(&t)).expect(403, forbidden());
    login(&g, "liam", PASSWORD).expect_status(200);
}

// ---------------------------------------------------------------------------------------------
// Password change.

#[test]
fn password_change_put_with_old_password_revokes_earlier_tokens() {
    let g = Gatehouse::start();
    register(&g, "mona", "mona@example.com", "TestPass123").expect_status(201);
    let (old_access, old_refresh) = g.login("mona", "TestPass123");
    let r = api(
        &g,
        "PUT",
        PASSWORD_PATH,
        Some(json!({"old_password": "TestPass123", "new_password": "NewPass123"})),
        Some(&old_access),
    );
    r.expect_status(200);
    assert_eq!(keys(&r.json), ["access", "detail", "refresh"], "{}", r.text);
    assert_eq!(r.json["detail"], "Password updated successfully.");
    assert_allow(&r, ALLOW_PASSWORD);
    let (new_access, new_refresh) = tokens(&r);
    assert_eq!(claims(&new_access)["token_type"], "access");
    assert_eq!(claims(&new_refresh)["token_type"], "refresh");
    // Every earlier token is dead, the fresh pair works.
    get(&g, PROFILE, Some(&old_access)).expect(401, bad_access("Token is invalid"));
    post(&g, REFRESH, json!({ "refresh": old_refresh }))
        .expect(401, bad_refresh("Token is blacklisted"));
    get(&g, PROFILE, Some(&new_access)).expect(200, profile(1, "mona", "mona@example.com"));
    post(&g, REFRESH, json!({ "refresh": new_refresh })).expect_status(200);
    login(&g, "mona", "TestPass123").expect(401, wrong_login());
    login(&g, "mona", "NewPass123").expect_status(200);
}

#[test]
fn password_change_patch_with_current_password() {
    let g = Gatehouse::start();
    let t = user(&g, "nina");
    let r = api(
        &g,
        "PATCH",
        PASSWORD_PATH,
        Some(json!({"current_password": PASSWORD, "new_password": "NewPass123"})),
        Some(&t),
    );
    r.expect_status(200);
    assert_eq!(r.json["detail"], "Password updated successfully.");
    let (access, _) = tokens(&r);
    // And PUT with current_password, PATCH with old_password, using the new token.
    let r = api(
        &g,
        "PUT",
        PASSWORD_PATH,
        Some(json!({"current_password": "NewPass123", "new_password": "ThirdPass123"})),
        Some(&access),
    );
    r.expect_status(200);
    let (access, _) = tokens(&r);
    let r = api(
        &g,
        "PATCH",
        PASSWORD_PATH,
        Some(json!({"old_password": "ThirdPass123", "new_password": "FourthPass123"})),
        Some(&access),
    );
    r.expect_status(200);
    login(&g, "nina", "ThirdPass123").expect(401, wrong_login());
    login(&g, "nina", "FourthPass123").expect_status(200);
}

#[test]
fn password_change_errors_name_the_field_the_client_used() {
    let g = Gatehouse::start();
    let t = user(&g, "marigold");
    let ch = |m: &str, b: Value| api(&g, m, PASSWORD_PATH, Some(b), Some(&t));
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
    api(&g, "POST", PASSWORD_PATH, Some(json!({})), Some(&t))
        .expect(405, method_not_allowed("POST"));
    api(&g, "PUT", PASSWORD_PATH, Some(json!({})), None).expect(401, not_provided());
    // Nothing changed.
    get(&g, PROFILE, Some(&t)).expect_status(200);
    login(&g, "marigold", PASSWORD).expect_status(200);
}

// ---------------------------------------------------------------------------------------------
// Soft delete and restore.

#[test]
fn soft_delete_then_admin_restore() {
    let g = admin_server();
    let t = user(&g, "oscar");
    let admin = g.login("admin", ADMIN_PW).0;
    let r = api(&g, "DELETE", DELETE, None, Some(&t));
    r.expect(
        200,
        json!({"message": "Account soft deleted successfully."}),
    );
    assert_allow(&r, ALLOW_DELETE);
    // At once: the token stops working, login fails like a wrong password.
    get(&g, PROFILE, Some(&t)).expect(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    api(&g, "DELETE", DELETE, None, Some(&t)).expect(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    login(&g, "oscar", PASSWORD).expect(401, wrong_login());
    get(&g, "/api/auth/admin/users/2/", Some(&admin)).expect(
        200,
        admin_detail(2, "oscar", "oscar@example.com", false, false),
    );

    let restore = "/api/auth/admin/users/restore/2/";
    let r = api(&g, "PUT", restore, None, Some(&admin));
    r.expect(200, admin_item(2, "oscar", "oscar@example.com", true));
    assert_allow(&r, ALLOW_RESTORE);
    // Already active: still 200, PUT and PATCH.
    api(&g, "PUT", restore, None, Some(&admin))
        .expect(200, admin_item(2, "oscar", "oscar@example.com", true));
    api(&g, "PATCH", restore, Some(json!({})), Some(&admin))
        .expect(200, admin_item(2, "oscar", "oscar@example.com", true));
    api(
        &g,
        "PUT",
        "/api/auth/admin/users/restore/1/",
        None,
        Some(&admin),
    )
    .expect(200, admin_item(1, "admin", "admin@example.com", true));
    // The old token stays dead; a new login works.
    get(&g, PROFILE, Some(&t)).expect(401, bad_access("Token is invalid"));
    let t2 = g.login("oscar", PASSWORD).0;
    get(&g, PROFILE, Some(&t2)).expect(200, profile(2, "oscar", "oscar@example.com"));
    get(&g, "/api/auth/admin/users/2/", Some(&admin)).expect(
        200,
        admin_detail(2, "oscar", "oscar@example.com", true, false),
    );
}

#[test]
fn restore_and_detail_errors() {
    let g = admin_server();
    let t = user(&g, "pete");
    let admin = g.login("admin", ADMIN_PW).0;
    for id in ["999", "0"] {
        api(
            &g,
            "PUT",
            &format!("/api/auth/admin/users/restore/{id}/"),
            None,
            Some(&admin),
        )
        .expect(404, no_user());
        get(&g, &format!("/api/auth/admin/users/{id}/"), Some(&admin)).expect(404, no_user());
    }
    api(
        &g,
        "PUT",
        "/api/auth/admin/users/restore/abc/",
        None,
        Some(&admin),
    )
    .expect(404, no_user());
    api(
        &g,
        "PATCH",
        "/api/auth/admin/users/restore/-1/",
        None,
        Some(&admin),
    )
    .expect(404, no_user());
    // Non-numeric id: the same body as an unknown one (SPEC §1, restore decision).
    get(&g, "/api/auth/admin/users/abc/", Some(&admin)).expect(404, no_user());
    // Permission comes before the lookup.
    let r = api(
        &g,
        "PUT",
        "/api/auth/admin/users/restore/2/",
        None,
        Some(&t),
    );
    r.expect(403, forbidden());
    assert_allow(&r, ALLOW_RESTORE);
    api(
        &g,
        "PUT",
        "/api/auth/admin/users/restore/999/",
        None,
        Some(&t),
    )
    .expect(403, forbidden());
    get(&g, "/api/auth/admin/users/2/", Some(&t)).expect(403, forbidden());
    api(&g, "PUT", "/api/auth/admin/users/restore/2/", None, None).expect(401, not_provided());
    get(&g, "/api/auth/admin/users/2/", None).expect(401, not_provided());
    // Wrong methods.
    api(
        &g,
        "GET",
        "/api/auth/admin/users/restore/2/",
        None,
        Some(&admin),
    )
    .expect(405, method_not_allowed("GET"));
    api(&g, "DELETE", "/api/auth/admin/users/2/", None, Some(&admin))
        .expect(405, method_not_allowed("DELETE"));
}

// ---------------------------------------------------------------------------------------------
// Admin list: bare list, filters, search, pagination.

#[test]
fn admin_list_requires_staff_and_lists_everyone_by_id() {
    let g = admin_server();
    let t = user(&g, "quinn");
    let r = get(&g, ADMIN_USERS, None);
    r.expect(401, not_provided());
    assert_allow(&r, ALLOW_ADMIN_GET);
    let r = get(&g, ADMIN_USERS, Some(&t));
    r.expect(403, forbidden());
    assert_allow(&r, ALLOW_ADMIN_GET);
    let admin = g.login("admin", ADMIN_PW).0;
    let r = get(&g, ADMIN_USERS, Some(&admin));
    r.expect(
        200,
        json!([
            admin_item(1, "admin", "admin@example.com", true),
            admin_item(2, "quinn", "quinn@example.com", true)
        ]),
    );
    assert_allow(&r, ALLOW_ADMIN_GET);
    get(&g, "/api/auth/admin/users/1/", Some(&admin)).expect(
        200,
        admin_detail(1, "admin", "admin@example.com", true, true),
    );
    api(&g, "POST", ADMIN_USERS, Some(json!({})), Some(&admin))
        .expect(405, method_not_allowed("POST"));
    // Permission (403) before method (405).
    api(&g, "POST", ADMIN_USERS, Some(json!({})), Some(&t)).expect(403, forbidden());
}

/// Admin (1) plus four users; `ruth` (3) soft-deleted.
fn populated() -> (Gatehouse, String) {
    let g = admin_server();
    register(&g, "paula", "paula@corp.test", PASSWORD).expect_status(201);
    register(&g, "ruth", "ruth@example.com", PASSWORD).expect_status(201);
    register(&g, "sam", "sam@corp.test", PASSWORD).expect_status(201);
    register(&g, "Tina", "tina@example.com", PASSWORD).expect_status(201);
    let t = g.login("ruth", PASSWORD).0;
    api(&g, "DELETE", DELETE, None, Some(&t)).expect_status(200);
    let admin = g.login("admin", ADMIN_PW).0;
    (g, admin)
}

fn all_items() -> Vec<Value> {
    vec![
        admin_item(1, "admin", "admin@example.com", true),
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
    let q = |query: &str| get(&g, &format!("{ADMIN_USERS}?{query}"), Some(&admin));
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
    let q = |query: &str| get(&g, &format!("{ADMIN_USERS}?{query}"), Some(&admin));
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
    q("page=2&page_size=1&status=deleted").expect(404, json!({"detail": "Invalid page."}));
    q("page=4&page_size=2").expect(404, json!({"detail": "Invalid page."}));
    q("page=abc&page_size=2").expect(404, json!({"detail": "Invalid page."}));
    q("page=0").expect(404, json!({"detail": "Invalid page."}));
}

// ---------------------------------------------------------------------------------------------
// Authentication errors, each row of the table.

#[test]
fn authentication_errors_have_simplejwt_bodies() {
    let g = Gatehouse::start();
    register(&g, "uma", "uma@example.com", PASSWORD).expect_status(201);
    let (access, refresh) = g.login("uma", PASSWORD);
    let auth = |value: &str| with_header(&g, "GET", PROFILE, "Authorization", value);

    let r = get(&g, PROFILE, None);
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
    let expired = forge(&g, &access, |c| {
        c.insert("exp".into(), json!(now() - 3600));
        c.insert("iat".into(), json!(now() - 3900));
    });
    auth(&format!("Bearer {expired}")).expect(401, bad_access("Token is expired"));
    let no_type = forge(&g, &access, |c| {
        c.remove("token_type");
    });
    auth(&format!("Bearer {no_type}")).expect(401, bad_access("Token has no type"));
    let no_exp = forge(&g, &access, |c| {
        c.remove("exp");
    });
    auth(&format!("Bearer {no_exp}")).expect(401, bad_access("Token has no 'exp' claim"));
    let other_user = forge(&g, &access, |c| {
        c.insert("user_id".into(), json!("9999"));
    });
    auth(&format!("Bearer {other_user}")).expect(
        401,
        json!({"detail": "User not found", "code": "user_not_found"}),
    );
    let no_user_id = forge(&g, &access, |c| {
        c.remove("user_id");
    });
    auth(&format!("Bearer {no_user_id}")).expect(
        401,
        json!({"detail": "Token contained no recognizable user identification", "code": "token_not_valid"}),
    );
    let wrong_key = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(&access),
        b"some-other-secret-of-at-least-32-bytes!!",
    );
    auth(&format!("Bearer {wrong_key}")).expect(401, bad_access("Token is invalid"));
    // The real token, re-signed unchanged, is accepted (the forgeries above are well formed).
    let same = forge(&g, &access, |_| {});
    auth(&format!("Bearer {same}")).expect(200, profile(1, "uma", "uma@example.com"));
}

#[test]
fn every_protected_endpoint_rejects_missing_credentials() {
    let g = Gatehouse::start();
    for (m, p, allow) in [
        ("GET", PROFILE, ALLOW_PROFILE),
        ("PUT", PROFILE, ALLOW_PROFILE),
        ("PATCH", PROFILE, ALLOW_PROFILE),
        ("PUT", PASSWORD_PATH, ALLOW_PASSWORD),
        ("PATCH", PASSWORD_PATH, ALLOW_PASSWORD),
        ("DELETE", DELETE, ALLOW_DELETE),
        ("GET", ADMIN_USERS, ALLOW_ADMIN_GET),
        ("GET", "/api/auth/admin/users/1/", ALLOW_ADMIN_DETAIL),
        ("PUT", "/api/auth/admin/users/restore/1/", ALLOW_RESTORE),
        ("PATCH", "/api/auth/admin/users/restore/1/", ALLOW_RESTORE),
    ] {
        let r = api(&g, m, p, Some(json!({})), None);
        r.expect(401, not_provided());
        assert_allow(&r, allow);
        let r = send(&g, g.request(m, p).header("Authorization", "Bearer a b"));
        r.expect(401, bad_header());
    }
}

#[test]
fn non_staff_gets_403_on_every_admin_endpoint() {
    let g = admin_server();
    let t = user(&g, "vera");
    for (m, p) in [
        ("GET", ADMIN_USERS.to_string()),
        ("GET", format!("{ADMIN_USERS}?page=1&page_size=1")),
        ("GET", "/api/auth/admin/users/1/".into()),
        ("PUT", "/api/auth/admin/users/restore/1/".into()),
        ("PATCH", "/api/auth/admin/users/restore/1/".into()),
    ] {
        api(&g, m, &p, None, Some(&t)).expect(403, forbidden());
    }
}

// ---------------------------------------------------------------------------------------------
// Routing: 404, 405, 308, OPTIONS, HEAD, Allow.

#[test]
fn unknown_paths_under_owned_prefixes_are_json_404() {
    let g = Gatehouse::start();
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
            let r = api(&g, m, p, Some(json!({})), None);
            r.expect(404, not_found());
            assert_eq!(r.header("allow"), None, "no Allow on an unknown path {p}");
        }
    }
}

#[test]
fn wrong_method_is_405_with_drf_message_after_auth() {
    let g = Gatehouse::start();
    let t = user(&g, "wade");
    let r = get(&g, REGISTER, None);
    r.expect(405, method_not_allowed("GET"));
    assert_allow(&r, ALLOW_POST);
    api(&g, "DELETE", TOKEN, None, None).expect(405, method_not_allowed("DELETE"));
    api(&g, "PUT", REFRESH, Some(json!({})), None).expect(405, method_not_allowed("PUT"));
    api(&g, "GET", LOGOUT, None, None).expect(405, method_not_allowed("GET"));
    api(&g, "PATCH", REGISTER, Some(json!({})), None).expect(405, method_not_allowed("PATCH"));
    // Authentication first: 401 without a token, 405 with one.
    get(&g, DELETE, None).expect(401, not_provided());
    let r = get(&g, DELETE, Some(&t));
    r.expect(405, method_not_allowed("GET"));
    assert_allow(&r, ALLOW_DELETE);
    api(&g, "POST", PROFILE, Some(json!({})), None).expect(401, not_provided());
    api(&g, "POST", PROFILE, Some(json!({})), Some(&t)).expect(405, method_not_allowed("POST"));
    api(&g, "DELETE", PROFILE, None, Some(&t)).expect(405, method_not_allowed("DELETE"));
    get(&g, PASSWORD_PATH, Some(&t)).expect(405, method_not_allowed("GET"));
    // 405 before body parsing: a broken body does not matter.
    let r = send(
        &g,
        g.request("POST", PROFILE)
            .bearer_auth(&t)
            .header("Content-Type", "application/json")
            .body("{oops"),
    );
    r.expect(405, method_not_allowed("POST"));
    // The user was not deleted by any of this.
    get(&g, PROFILE, Some(&t)).expect_status(200);
}

#[test]
fn missing_trailing_slash_redirects_308_keeping_method_and_query() {
    let g = Gatehouse::start();
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
        let r = api(&g, m, p, Some(json!({"username": "x"})), None);
        r.expect_status(308);
        assert_eq!(r.header("location").as_deref(), Some(loc), "{m} {p}");
        assert!(r.json["detail"].is_string(), "308 body {}", r.text);
    }
    // A client following the 308 with the same method and body succeeds.
    let body = json!({"username": "xena", "email": "xena@example.com", "password": PASSWORD});
    let r = api(&g, "POST", "/api/auth/register", Some(body.clone()), None);
    r.expect_status(308);
    let loc = r.header("location").expect("location");
    api(&g, "POST", &loc, Some(body), None).expect(201, profile(1, "xena", "xena@example.com"));
    // Nothing was registered by the redirect itself.
    register(&g, "yann", "yann@example.com", PASSWORD)
        .expect(201, profile(2, "yann", "yann@example.com"));
}

#[test]
fn options_answers_every_api_path_without_auth() {
    let g = Gatehouse::start();
    for (p, allow) in [
        (TOKEN, ALLOW_POST),
        (REFRESH, ALLOW_POST),
        (VERIFY, ALLOW_POST),
        (REGISTER, ALLOW_POST),
        (LOGOUT, ALLOW_POST),
        (PROFILE, ALLOW_PROFILE),
        (PASSWORD_PATH, ALLOW_PASSWORD),
        (DELETE, ALLOW_DELETE),
        (ADMIN_USERS, ALLOW_ADMIN_GET),
        ("/api/auth/admin/users/1/", ALLOW_ADMIN_DETAIL),
        ("/api/auth/admin/users/restore/1/", ALLOW_RESTORE),
    ] {
        let r = api(&g, "OPTIONS", p, None, None);
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
    let t = user(&g, "zack");
    let admin = g.login("admin", ADMIN_PW).0;
    for (p, tok) in [
        (PROFILE, &t),
        (ADMIN_USERS, &admin),
        ("/api/auth/admin/users/2/", &admin),
    ] {
        let full = get(&g, p, Some(tok));
        full.expect_status(200);
        let head = api(&g, "HEAD", p, None, Some(tok));
        head.expect_status(200);
        assert_eq!(head.text, "", "HEAD has no body");
        assert_eq!(
            head.header("content-length"),
            full.header("content-length"),
            "HEAD {p} Content-Length"
        );
        assert_eq!(head.header("allow"), full.header("allow"));
    }
    let r = api(&g, "HEAD", PROFILE, None, None);
    r.expect_status(401);
    assert_eq!(r.text, "");
    let r = api(&g, "HEAD", ADMIN_USERS, None, Some(&t));
    r.expect_status(403);
}

// ---------------------------------------------------------------------------------------------
// Bodies: parsers, content types, size.

#[test]
fn form_encoded_bodies_work_like_json() {
    let g = Gatehouse::start();
    form(
        &g,
        "POST",
        REGISTER,
        "username=formuser&email=form%40example.com&password=TestPass123&first_name=Fo+Rm",
        None,
    )
    .expect(
        201,
        json!({"id": 1, "username": "formuser", "email": "form@example.com", "first_name": "Fo Rm", "last_name": ""}),
    );
    form(&g, "POST", REGISTER, "username=f2&email=bad", None)
        .expect(400, json!({"email": [BAD_EMAIL], "password": [REQUIRED]}));
    let r = form(
        &g,
        "POST",
        TOKEN,
        "username=formuser&password=TestPass123",
        None,
    );
    r.expect_status(200);
    let (access, refresh) = tokens(&r);
    form(&g, "POST", TOKEN, "username=formuser&password=nope", None).expect(401, wrong_login());
    let r = form(&g, "POST", REFRESH, &format!("refresh={refresh}"), None);
    r.expect_status(200);
    form(&g, "POST", VERIFY, &format!("token={access}"), None).expect(200, json!({}));
    form(&g, "PATCH", PROFILE, "last_name=Smith", Some(&access)).expect(
        200,
        json!({"id": 1, "username": "formuser", "email": "form@example.com", "first_name": "Fo Rm", "last_name": "Smith"}),
    );
    let r = form(
        &g,
        "PUT",
        PASSWORD_PATH,
        "old_password=TestPass123&new_password=NewPass123",
        Some(&access),
    );
    r.expect_status(200);
    assert_eq!(r.json["detail"], "Password updated successfully.");
    let (_, refresh) = tokens(&r);
    form(&g, "POST", LOGOUT, &format!("refresh={refresh}"), None).expect(200, json!({}));
}

#[test]
fn non_object_and_malformed_json_are_400() {
    let g = Gatehouse::start();
    let raw = |body: &str| body_with_type(&g, "POST", REGISTER, "application/json", body);
    let nfe = |t: &str| json!({ "non_field_errors": [format!("Invalid data. Expected a dictionary, but got {t}.")] });
    raw("[]").expect(400, nfe("list"));
    raw(r#"[{"username": "a"}]"#).expect(400, nfe("list"));
    raw(r#""text""#).expect(400, nfe("str"));
    raw("42").expect(400, nfe("int"));
    raw("4.5").expect(400, nfe("float"));
    raw("true").expect(400, nfe("bool"));
    body_with_type(&g, "POST", TOKEN, "application/json", "[1, 2]").expect(400, nfe("list"));
    for bad in [r#"{"username": "#, "{oops}", r#"{"a": 1,}"#, "\u{1}"] {
        for p in [REGISTER, TOKEN, REFRESH] {
            let r = body_with_type(&g, "POST", p, "application/json", bad);
            r.expect_status(400);
            assert_eq!(keys(&r.json), ["detail"], "{}", r.text);
            let d = r.json["detail"].as_str().expect("detail string");
            assert!(d.starts_with("JSON parse error - "), "{bad:?} -> {d:?}");
            assert!(
                d.len() > "JSON parse error - ".len(),
                "says what is wrong: {d:?}"
            );
        }
    }
    // application/json with a charset parameter is still JSON.
    body_with_type(
        &g,
        "POST",
        REGISTER,
        "application/json; charset=utf-8",
        r#"{"username": "charset", "email": "charset@example.com", "password": "TestPass123"}"#,
    )
    .expect(201, profile(1, "charset", "charset@example.com"));
    // An empty body with no content type is {}.
    send(&g, g.request("POST", REGISTER)).expect(
        400,
        json!({"username": [REQUIRED], "email": [REQUIRED], "password": [REQUIRED]}),
    );
    send(&g, g.request("POST", TOKEN))
        .expect(400, json!({"username": [REQUIRED], "password": [REQUIRED]}));
}

#[test]
fn other_content_types_are_415() {
    let g = Gatehouse::start();
    let t = user(&g, "abby");
    let ums =
        |ct: &str| json!({ "detail": format!("Unsupported media type \"{ct}\" in request.") });
    body_with_type(&g, "POST", REGISTER, "text/plain", "username=x").expect(415, ums("text/plain"));
    body_with_type(&g, "POST", TOKEN, "text/plain; charset=utf-8", "{}")
        .expect(415, ums("text/plain; charset=utf-8"));
    body_with_type(&g, "POST", REFRESH, "application/xml", "<a/>")
        .expect(415, ums("application/xml"));
    body_with_type(
        &g,
        "POST",
        REGISTER,
        "multipart/form-data; boundary=x",
        "--x--",
    )
    .expect(415, ums("multipart/form-data; boundary=x"));
    let r = send(
        &g,
        g.request("PATCH", PROFILE)
            .bearer_auth(&t)
            .header("Content-Type", "text/plain")
            .body("first_name=x"),
    );
    r.expect(415, ums("text/plain"));
    assert_allow(&r, ALLOW_PROFILE);
    // Authentication comes before parsing.
    body_with_type(&g, "PATCH", PROFILE, "text/plain", "x").expect(401, not_provided());
}

#[test]
fn body_over_64_kib_is_413() {
    let g = Gatehouse::start();
    let too_large = json!({"detail": "Request body too large: the limit is 65536 bytes."});
    let big =
        json!({"username": "big", "email": "big@example.com", "password": "p".repeat(70_000)});
    post(&g, REGISTER, big.clone()).expect(413, too_large.clone());
    post(
        &g,
        TOKEN,
        json!({"username": "x", "password": "p".repeat(70_000)}),
    )
    .expect(413, too_large.clone());
    let form_body = format!(
        "username=big&email=big%40example.com&password={}",
        "p".repeat(70_000)
    );
    form(&g, "POST", REGISTER, &form_body, None).expect(413, too_large);
    // Just under the limit is parsed normally (unknown keys are ignored).
    let pad = "p".repeat(60_000);
    post(&g, REGISTER, json!({"username": "small", "email": "small@example.com", "password": PASSWORD, "pad": pad}))
        .expect(201, profile(1, "small", "small@example.com"));
}

// ---------------------------------------------------------------------------------------------
// Framing at the byte level: Content-Type and an exact Content-Length on raw HTTP/1.1.

fn parse_raw(resp: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {resp:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[test]
fn raw_http_responses_are_framed_json() {
    let g = Gatehouse::start();
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
        let resp = g.raw(req.as_bytes());
        let (status, headers, body) = parse_raw(&resp);
        assert_eq!(status, want, "{req:?} -> {resp}");
        let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert!(
            h("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{req:?} -> {resp}"
        );
        let cl: usize = h("content-length")
            .unwrap_or_else(|| panic!("no Content-Length: {resp}"))
            .parse()
            .expect("numeric");
        assert_eq!(cl, body.len(), "{req:?} -> {resp}");
        assert!(
            serde_json::from_str::<Value>(&body).is_ok(),
            "{req:?} -> {resp}"
        );
        if status == 401 {
            assert_eq!(
                h("www-authenticate").as_deref(),
                Some("Bearer realm=\"api\""),
                "{resp}"
            );
        }
    }
}

#[test]
fn register_throttling_by_address() {
    let g = Gatehouse::builder()
        .env("GATEHOUSE_THROTTLE_REGISTRATIONS_PER_ADDRESS", "3")
        .start();
    for name in ["t1", "t2", "t3"] {
        g.register(name);
    }
    let r = g.post(
        "/api/auth/register/",
        json!({"username": "t4", "email": "t4@example.com", "password": PASSWORD}),
        None,
    );
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
    let g = Gatehouse::builder()
        .env("GATEHOUSE_THROTTLE_LOGIN_FAILURES_PER_USERNAME", "3")
        .start();
    g.register("jack");
    for _ in 0..3 {
        g.post(
            "/api/token/",
            json!({"username": "jack", "password": "Wrong-Pass-9"}),
            None,
        )
        .expect_status(401);
    }
    // Even the right password waits now: the attacker cannot tell.
    let r = g.post(
        "/api/token/",
        json!({"username": "jack", "password": PASSWORD}),
        None,
    );
    r.expect_status(429);
    assert!(r.header("retry-after").is_some());
    // Another user is not affected.
    g.register("kate");
    g.login("kate", PASSWORD);
}

#[test]
fn schema_and_jwks_documents() {
    let g = Gatehouse::start();
    let schema = g.get("/api/schema/", None);
    schema.expect_status(200);
    assert!(schema.json["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    // HS256 deployment: no public keys to publish.
    g.get("/.well-known/jwks.json", None).expect_status(404);
}
