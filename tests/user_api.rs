//! The user API over real HTTP, as a client of the Django project sees it: every endpoint,
//! every row of the spec's error table, DRF's conventions, and the seed-vs-code decisions.
mod common;

use common::{Gatehouse, PASSWORD};
use serde_json::{json, Value};

const ADMIN_PASSWORD: &str = "AdminPass123";

fn with_admin() -> Gatehouse {
    Gatehouse::builder()
        .superuser("admin", "admin@example.com", ADMIN_PASSWORD)
        .start()
}

fn admin_token(g: &Gatehouse) -> String {
    g.login("admin", ADMIN_PASSWORD).0
}

fn form(g: &Gatehouse, method: &str, path: &str, body: &str) -> common::Resp {
    g.send(
        g.request(method, path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string()),
    )
}

fn raw_body(g: &Gatehouse, path: &str, content_type: &str, body: &str) -> common::Resp {
    g.send(
        g.request("POST", path)
            .header("Content-Type", content_type)
            .body(body.to_string()),
    )
}

#[test]
fn the_seed_readme_flow_end_to_end() {
    let g = with_admin();
    // Register.
    g.post(
        "/api/auth/register/",
        json!({"username": "testuser", "email": "test@example.com", "password": "TestPass123"}),
        None,
    )
    .expect(201, json!({"id": 2, "username": "testuser", "email": "test@example.com", "first_name": "", "last_name": ""}));
    // Obtain, refresh.
    let (access, refresh) = g.login("testuser", "TestPass123");
    let r = g.post("/api/token/refresh/", json!({ "refresh": refresh }), None);
    r.expect_status(200);
    assert_eq!(r.json.as_object().map(|o| o.len()), Some(1), "{}", r.text);
    assert!(r.json["access"].is_string());
    // Profile.
    g.get("/api/auth/profile/", Some(&access)).expect(
        200,
        json!({"id": 2, "username": "testuser", "email": "test@example.com", "first_name": "", "last_name": ""}),
    );
    g.call(
        "PUT",
        "/api/auth/profile/",
        Some(json!({"username": "updateduser", "email": "updated@example.com"})),
        Some(&access),
    )
    .expect(200, json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "", "last_name": ""}));
    g.call("PATCH", "/api/auth/profile/", Some(json!({"first_name": "Ada"})), Some(&access))
        .expect(200, json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Ada", "last_name": ""}));
    // Change password: the README's body.
    let r = g.call(
        "PUT",
        "/api/auth/profile/password/",
        Some(json!({"old_password": "TestPass123", "new_password": "NewPass123"})),
        Some(&access),
    );
    r.expect_status(200);
    assert_eq!(r.json["detail"], "Password updated successfully.");
    let fresh = r.json["access"].as_str().expect("fresh access").to_string();
    assert!(r.json["refresh"].is_string());
    // Soft delete.
    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&fresh))
        .expect(
            200,
            json!({"message": "Account soft deleted successfully."}),
        );
    // Admin list shows it inactive; restore brings it back.
    let admin = admin_token(&g);
    g.get("/api/auth/admin/users/", Some(&admin)).expect(
        200,
        json!([
            {"id": 1, "username": "admin", "email": "admin@example.com", "first_name": "", "last_name": "", "is_active": true},
            {"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Ada", "last_name": "", "is_active": false}
        ]),
    );
    g.call("PUT", "/api/auth/admin/users/restore/2/", None, Some(&admin)).expect(
        200,
        json!({"id": 2, "username": "updateduser", "email": "updated@example.com", "first_name": "Ada", "last_name": "", "is_active": true}),
    );
    g.login("updateduser", "NewPass123");
}

#[test]
fn drf_conventions_on_every_response() {
    let g = Gatehouse::start();
    let token = g.user_token("alice");
    let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
        ("POST", "/api/token/", None, "POST, OPTIONS"),
        ("POST", "/api/token/refresh/", None, "POST, OPTIONS"),
        ("POST", "/api/token/verify/", None, "POST, OPTIONS"),
        ("POST", "/api/auth/register/", None, "POST, OPTIONS"),
        ("POST", "/api/auth/logout/", None, "POST, OPTIONS"),
        (
            "GET",
            "/api/auth/profile/",
            Some(&token),
            "GET, PUT, PATCH, HEAD, OPTIONS",
        ),
        (
            "PUT",
            "/api/auth/profile/password/",
            Some(&token),
            "PUT, PATCH, OPTIONS",
        ),
        (
            "GET",
            "/api/auth/profile/delete/",
            Some(&token),
            "DELETE, OPTIONS",
        ),
        (
            "GET",
            "/api/auth/admin/users/",
            Some(&token),
            "GET, HEAD, OPTIONS",
        ),
        (
            "GET",
            "/api/auth/admin/users/1/",
            Some(&token),
            "GET, HEAD, OPTIONS",
        ),
        (
            "PUT",
            "/api/auth/admin/users/restore/1/",
            Some(&token),
            "PUT, PATCH, OPTIONS",
        ),
    ];
    for (method, path, token, allow) in cases {
        let r = g.call(method, path, Some(json!({})), token);
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{method} {path}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json"),
            "{method} {path}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(r.text.len().to_string()),
            "{method} {path}"
        );
        assert!(
            r.json.is_object() || r.json.is_array(),
            "{method} {path}: {}",
            r.text
        );
        // OPTIONS answers 200 with the same Allow, no token needed.
        let o = g.call("OPTIONS", path, None, None);
        o.expect_status(200);
        assert_eq!(o.header("allow").as_deref(), Some(allow), "OPTIONS {path}");
        assert!(o.json["name"].is_string());
    }
}

#[test]
fn error_table_authentication_rows() {
    let g = Gatehouse::start();
    let token = g.user_token("bob");
    let www = |r: &common::Resp| {
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"api\""),
            "{}",
            r.text
        )
    };
    let send = |auth: Option<&str>| {
        let mut rb = g.request("GET", "/api/auth/profile/");
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        g.send(rb)
    };
    let r = send(None);
    r.expect(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    www(&r);
    let r = send(Some(&format!("Basic {token}")));
    r.expect(
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    www(&r);
    for bad in ["Bearer", "Bearer a b", &format!("Bearer {token} extra")] {
        let r = send(Some(bad));
        r.expect(
            401,
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
        );
        www(&r);
    }
    let r = send(Some("Bearer not-a-token"));
    r.expect(
        401,
        json!({"detail": "Given token not valid for any token type", "code": "token_not_valid",
               "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid"}]}),
    );
    www(&r);
    // Two Authorization headers: refused, never guessed.
    let r = g.send(
        g.request("GET", "/api/auth/profile/")
            .header("Authorization", format!("Bearer {token}"))
            .header("Authorization", format!("Bearer {token}")),
    );
    r.expect_status(401);
    www(&r);
    // The token still works alone.
    send(Some(&format!("Bearer {token}"))).expect_status(200);
}

#[test]
fn error_table_login_and_refresh_rows() {
    let g = Gatehouse::start();
    g.register("carol");
    let wrong = json!({"detail": "No active account found with the given credentials"});
    g.post(
        "/api/token/",
        json!({"username": "carol", "password": "nope-nope-1"}),
        None,
    )
    .expect(401, wrong.clone());
    g.post(
        "/api/token/",
        json!({"username": "nobody", "password": PASSWORD}),
        None,
    )
    .expect(401, wrong.clone());
    g.post("/api/token/", json!({}), None).expect(
        400,
        json!({"username": ["This field is required."], "password": ["This field is required."]}),
    );
    g.post("/api/token/", json!({"username": "", "password": null}), None).expect(
        400,
        json!({"username": ["This field may not be blank."], "password": ["This field may not be null."]}),
    );
    g.post("/api/token/refresh/", json!({"refresh": "garbage"}), None)
        .expect(
            401,
            json!({"detail": "Token is invalid", "code": "token_not_valid"}),
        );
    let (access, _) = g.login("CAROL", PASSWORD);
    g.post("/api/token/refresh/", json!({ "refresh": access }), None)
        .expect(
            401,
            json!({"detail": "Token has wrong type", "code": "token_not_valid"}),
        );
    g.post("/api/token/refresh/", json!({}), None)
        .expect(400, json!({"refresh": ["This field is required."]}));
}

#[test]
fn error_table_request_shape_rows() {
    let g = Gatehouse::start();
    raw_body(&g, "/api/auth/register/", "application/json", "[1, 2]").expect(
        400,
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
    );
    let r = raw_body(
        &g,
        "/api/auth/register/",
        "application/json",
        "{\"username\": ",
    );
    r.expect_status(400);
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("JSON parse error - ")),
        "{}",
        r.text
    );
    raw_body(&g, "/api/auth/register/", "text/plain", "hello").expect(
        415,
        json!({"detail": "Unsupported media type \"text/plain\" in request."}),
    );
    let big = format!("{{\"username\": \"{}\"}}", "x".repeat(70_000));
    let r = raw_body(&g, "/api/auth/register/", "application/json", &big);
    r.expect_status(413);
    assert!(r.json["detail"].is_string());
    g.get("/api/token/", None)
        .expect(405, json!({"detail": "Method \"GET\" not allowed."}));
    g.call("DELETE", "/api/auth/register/", None, None)
        .expect(405, json!({"detail": "Method \"DELETE\" not allowed."}));
    // 404 under the owned prefixes: JSON, never HTML, never forwarded.
    for path in [
        "/api/auth/nope/",
        "/api/token/other/",
        "/api/auth/admin/users/restore/",
    ] {
        g.get(path, None)
            .expect(404, json!({"detail": "Not found."}));
    }
}

#[test]
fn form_encoded_bodies_work_like_json() {
    let g = Gatehouse::start();
    form(
        &g,
        "POST",
        "/api/auth/register/",
        "username=dora&email=dora%40example.com&password=TestPass123",
    )
    .expect(201, json!({"id": 1, "username": "dora", "email": "dora@example.com", "first_name": "", "last_name": ""}));
    let r = form(
        &g,
        "POST",
        "/api/token/",
        "username=dora&password=TestPass123",
    );
    r.expect_status(200);
    assert!(r.json["access"].is_string() && r.json["refresh"].is_string());
}

#[test]
fn missing_trailing_slash_is_a_308_that_keeps_method_and_query() {
    let g = Gatehouse::start();
    for (method, path) in [
        ("POST", "/api/token"),
        ("POST", "/api/auth/register"),
        ("GET", "/api/auth/profile"),
        ("PUT", "/api/auth/admin/users/restore/3"),
    ] {
        let r = g.call(method, &format!("{path}?x=1"), Some(json!({})), None);
        r.expect_status(308);
        assert_eq!(
            r.header("location"),
            Some(format!("{path}/?x=1")),
            "{method} {path}"
        );
        assert!(r.json["detail"].is_string());
    }
}

#[test]
fn head_is_get_without_a_body() {
    let g = Gatehouse::start();
    let token = g.user_token("erin");
    let get = g.get("/api/auth/profile/", Some(&token));
    let head = g.call("HEAD", "/api/auth/profile/", None, Some(&token));
    head.expect_status(200);
    assert_eq!(head.text, "");
    assert_eq!(
        head.header("content-length"),
        Some(get.text.len().to_string())
    );
}

#[test]
fn register_validation_one_rule_at_a_time() {
    let g = Gatehouse::start();
    let reg = |body: Value| g.post("/api/auth/register/", body, None);
    reg(json!({})).expect(
        400,
        json!({"username": ["This field is required."], "email": ["This field is required."], "password": ["This field is required."]}),
    );
    // The seed answers 500 here; a missing email is a field error.
    reg(json!({"username": "frank", "password": PASSWORD}))
        .expect(400, json!({"email": ["This field is required."]}));
    reg(json!({"username": "fr ank", "email": "f@example.com", "password": PASSWORD})).expect(
        400,
        json!({"username": ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}),
    );
    reg(json!({"username": "f".repeat(151), "email": "f@example.com", "password": PASSWORD}))
        .expect(
            400,
            json!({"username": ["Ensure this field has no more than 150 characters."]}),
        );
    reg(json!({"username": true, "email": "f@example.com", "password": PASSWORD}))
        .expect(400, json!({"username": ["Not a valid string."]}));
    reg(json!({"username": "frank", "email": "not-an-email", "password": PASSWORD}))
        .expect(400, json!({"email": ["Enter a valid email address."]}));
    let pw =
        |p: &str| reg(json!({"username": "frank", "email": "frank@example.com", "password": p}));
    pw("frank123").expect(
        400,
        json!({"password": ["The password is too similar to the username.", "This password is too common."]}),
    );
    pw("zq9#xv").expect(
        400,
        json!({"password": ["This password is too short. It must contain at least 8 characters."]}),
    );
    pw("password").expect(400, json!({"password": ["This password is too common."]}));
    pw("83920174").expect(
        400,
        json!({"password": ["This password is entirely numeric."]}),
    );
    pw("123").expect(
        400,
        json!({"password": ["This password is too short. It must contain at least 8 characters.", "This password is too common.", "This password is entirely numeric."]}),
    );
    reg(json!({"username": "gina", "email": "wonderland7@example.com", "password": "wonderland7"}))
        .expect(
            400,
            json!({"password": ["The password is too similar to the email address."]}),
        );
    // The seed README's passwords pass, and read-only fields are ignored.
    reg(json!({"username": "frank", "email": "frank@example.com", "password": "NewPass123",
               "id": 99, "is_staff": true, "is_active": false}))
    .expect(201, json!({"id": 1, "username": "frank", "email": "frank@example.com", "first_name": "", "last_name": ""}));
    let token = g.login("frank", "NewPass123").0;
    g.get("/api/auth/admin/users/", Some(&token)).expect(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
}

#[test]
fn usernames_and_emails_are_unique_case_insensitively() {
    let g = Gatehouse::start();
    g.register("alice");
    g.post(
        "/api/auth/register/",
        json!({"username": "ALICE", "email": "other@example.com", "password": PASSWORD}),
        None,
    )
    .expect(
        400,
        json!({"username": ["A user with that username already exists."]}),
    );
    g.post(
        "/api/auth/register/",
        json!({"username": "alicia", "email": "Alice@Example.COM", "password": PASSWORD}),
        None,
    )
    .expect(
        400,
        json!({"email": ["user with this email address already exists."]}),
    );
    // Profile update into a taken name is refused; keeping one's own name is fine.
    let bob = g.user_token("bob");
    g.call(
        "PATCH",
        "/api/auth/profile/",
        Some(json!({"username": "Alice"})),
        Some(&bob),
    )
    .expect(
        400,
        json!({"username": ["A user with that username already exists."]}),
    );
    g.call("PUT", "/api/auth/profile/", Some(json!({"username": "BOB", "email": "bob@example.com"})), Some(&bob))
        .expect(200, json!({"id": 2, "username": "BOB", "email": "bob@example.com", "first_name": "", "last_name": ""}));
    // PUT needs both fields.
    g.call(
        "PUT",
        "/api/auth/profile/",
        Some(json!({"first_name": "B"})),
        Some(&bob),
    )
    .expect(
        400,
        json!({"username": ["This field is required."], "email": ["This field is required."]}),
    );
}

#[test]
fn password_change_accepts_either_field_name_and_reports_it() {
    let g = Gatehouse::start();
    let token = g.user_token("hank");
    let change = |body: Value, token: &str| {
        g.call(
            "PATCH",
            "/api/auth/profile/password/",
            Some(body),
            Some(token),
        )
    };
    change(
        json!({"old_password": "wrong-Pass-1", "new_password": "NewPass123"}),
        &token,
    )
    .expect(400, json!({"old_password": ["Wrong password."]}));
    change(
        json!({"current_password": "wrong-Pass-1", "new_password": "NewPass123"}),
        &token,
    )
    .expect(400, json!({"current_password": ["Wrong password."]}));
    change(json!({"new_password": "NewPass123"}), &token)
        .expect(400, json!({"old_password": ["This field is required."]}));
    change(json!({"old_password": PASSWORD, "new_password": "hank12"}), &token).expect(
        400,
        json!({"new_password": ["The password is too similar to the username.", "This password is too short. It must contain at least 8 characters."]}),
    );
    let r = change(
        json!({"current_password": PASSWORD, "new_password": "NewPass123"}),
        &token,
    );
    r.expect_status(200);
    // The old token is dead; the new pair works.
    g.get("/api/auth/profile/", Some(&token)).expect_status(401);
    let fresh = r.json["access"].as_str().expect("access");
    g.get("/api/auth/profile/", Some(fresh)).expect_status(200);
}

#[test]
fn admin_list_filters_search_and_pages() {
    let g = with_admin();
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        g.register(name);
    }
    let cat = g.login("cat", PASSWORD).0;
    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&cat))
        .expect_status(200);
    let admin = admin_token(&g);
    let ids = |path: &str| -> Vec<u64> {
        let r = g.get(path, Some(&admin));
        r.expect_status(200);
        let list = if r.json.is_array() {
            r.json.clone()
        } else {
            r.json["results"].clone()
        };
        list.as_array()
            .expect("list")
            .iter()
            .filter_map(|u| u["id"].as_u64())
            .collect()
    };
    assert_eq!(ids("/api/auth/admin/users/"), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(ids("/api/auth/admin/users/?status=deleted"), vec![4]);
    assert_eq!(
        ids("/api/auth/admin/users/?status=active"),
        vec![1, 2, 3, 5, 6]
    );
    assert_eq!(ids("/api/auth/admin/users/?is_active=false"), vec![4]);
    assert_eq!(ids("/api/auth/admin/users/?search=AN"), vec![2, 5]);
    let r = g.get("/api/auth/admin/users/?page=2&page_size=2", Some(&admin));
    r.expect_status(200);
    assert_eq!(r.json["count"], 6);
    let host = format!("127.0.0.1:{}", g.port);
    assert_eq!(
        r.json["next"],
        json!(format!(
            "http://{host}/api/auth/admin/users/?page=3&page_size=2"
        ))
    );
    assert_eq!(
        r.json["previous"],
        json!(format!("http://{host}/api/auth/admin/users/?page_size=2"))
    );
    assert_eq!(ids("/api/auth/admin/users/?page=2&page_size=2"), vec![3, 4]);
    let last = g.get("/api/auth/admin/users/?page=3&page_size=2", Some(&admin));
    assert_eq!(last.json["next"], Value::Null);
    g.get("/api/auth/admin/users/?page=9&page_size=2", Some(&admin))
        .expect(404, json!({"detail": "Invalid page."}));
    // One user; unknown or non-numeric ids.
    g.get("/api/auth/admin/users/4/", Some(&admin)).expect(
        200,
        json!({"id": 4, "username": "cat", "email": "cat@example.com", "first_name": "", "last_name": "", "is_active": false}),
    );
    let none = json!({"detail": "No User matches the given query."});
    g.get("/api/auth/admin/users/99/", Some(&admin))
        .expect(404, none.clone());
    g.get("/api/auth/admin/users/abc/", Some(&admin))
        .expect(404, none.clone());
    g.call(
        "PUT",
        "/api/auth/admin/users/restore/99/",
        None,
        Some(&admin),
    )
    .expect(404, none.clone());
    g.call(
        "PATCH",
        "/api/auth/admin/users/restore/x/",
        None,
        Some(&admin),
    )
    .expect(404, none);
    // Restore is idempotent.
    for _ in 0..2 {
        g.call("PATCH", "/api/auth/admin/users/restore/4/", None, Some(&admin)).expect(
            200,
            json!({"id": 4, "username": "cat", "email": "cat@example.com", "first_name": "", "last_name": "", "is_active": true}),
        );
    }
    // Anonymous: 401, not 403.
    g.get("/api/auth/admin/users/", None).expect_status(401);
}

#[test]
fn verify_logout_and_schema() {
    let g = Gatehouse::start();
    g.register("ivy");
    let (access, refresh) = g.login("ivy", PASSWORD);
    g.post("/api/token/verify/", json!({ "token": access }), None)
        .expect(200, json!({}));
    g.post("/api/token/verify/", json!({ "token": "x.y.z" }), None)
        .expect(
            401,
            json!({"detail": "Token is invalid", "code": "token_not_valid"}),
        );
    g.post("/api/auth/logout/", json!({ "refresh": refresh }), None)
        .expect(200, json!({}));
    g.post("/api/token/refresh/", json!({ "refresh": refresh }), None)
        .expect(
            401,
            json!({"detail": "Token is blacklisted", "code": "token_not_valid"}),
        );
    let schema = g.get("/api/schema/", None);
    schema.expect_status(200);
    assert!(schema.json["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    // HS256 deployment: no JWKS.
    g.get("/.well-known/jwks.json", None).expect_status(404);
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
