//! Property tests over the request parsers, the URL table, the validators and token checks:
//! whatever a client sends, each returns what an independent statement of its rule says, and
//! the running server answers every body on every endpoint with a framed 2xx or 4xx.
use crate::common;

use common::paths::*;
use common::*;
use gatehouse::accounts::form::{Fields, REQUIRED as REQUIRED_FIELD};
use gatehouse::api::body::parse;
use gatehouse::api::router::{route, Endpoint, Route};

/// The user API under its default prefix, and the prefixes it owns there.
const API: &str = "/api/";
const OWNED_PREFIXES: [&str; 2] = ["/api/auth/", "/api/token/"];
use gatehouse::auth::policy::{
    is_valid_email, is_valid_username, validate_password, UserAttributes,
};
use gatehouse::auth::tokens::{TokenType, Tokens};
use gatehouse::error::ApiError;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use serde_json::{json, Map, Value};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A request body, with DRF's name for its Python type when it is JSON but not an object.
type Body = (Vec<u8>, Option<&'static str>);

/// Bodies of every kind a client sends: bytes, JSON objects, other JSON, form pairs.
fn body() -> impl Strategy<Value = Body> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|n| (json!(n), "int")),
        "\\PC{0,8}".prop_map(|s| (json!(s), "str")),
        any::<bool>().prop_map(|b| (json!(b), "bool")),
    ];
    let object = proptest::collection::btree_map("\\PC{0,8}", scalar.clone(), 0..4).prop_map(|m| {
        let m: Map<String, Value> = m.into_iter().map(|(k, (v, _))| (k, v)).collect();
        (serde_json::to_vec(&m).expect("a map serializes"), None)
    });
    let not_object = prop_oneof![
        scalar,
        Just((Value::Null, "NoneType")),
        Just((json!(1.5), "float")),
        Just((json!([1, "a"]), "list")),
    ]
    .prop_map(|(v, name)| {
        (
            serde_json::to_vec(&v).expect("a value serializes"),
            Some(name),
        )
    });
    let form =
        proptest::collection::vec(("[a-z%+=&]{0,6}", "[a-z%+=&2F]{0,6}"), 0..4).prop_map(|pairs| {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (pairs.join("&").into_bytes(), None)
        });
    let bytes = proptest::collection::vec(any::<u8>(), 0..256).prop_map(|b| (b, None));
    prop_oneof![bytes, object, not_object, form]
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
];

/// The path each endpoint answers, written out from the README's table.
fn path_of(e: &Endpoint) -> String {
    match e {
        Endpoint::TokenObtain => TOKEN.into(),
        Endpoint::TokenRefresh => REFRESH.into(),
        Endpoint::TokenVerify => VERIFY.into(),
        Endpoint::Register => REGISTER.into(),
        Endpoint::Logout => LOGOUT.into(),
        Endpoint::Profile => PROFILE.into(),
        Endpoint::PasswordChange => PASSWORD_CHANGE.into(),
        Endpoint::ProfileDelete => PROFILE_DELETE.into(),
        Endpoint::AdminList => ADMIN_USERS.into(),
        Endpoint::AdminDetail(id) => admin_user(id),
        Endpoint::AdminRestore(id) => admin_restore(id),
        Endpoint::AdminAudit => AUDIT.into(),
        Endpoint::Schema => "/api/schema/".into(),
        Endpoint::Jwks => "/.well-known/jwks.json".into(),
        Endpoint::PasswordReset => PASSWORD_RESET.into(),
        Endpoint::PasswordResetConfirm => PASSWORD_RESET_CONFIRM.into(),
        Endpoint::EmailVerify => EMAIL_VERIFY.into(),
        Endpoint::EmailVerifyResend => EMAIL_VERIFY_RESEND.into(),
        Endpoint::Session => "/api/auth/session/".into(),
        Endpoint::Sessions => "/api/auth/sessions/".into(),
        Endpoint::SessionEnd(id) => format!("/api/auth/sessions/{id}/"),
        Endpoint::SessionsRevokeOthers => "/api/auth/sessions/revoke-others/".into(),
        Endpoint::Totp => "/api/auth/2fa/totp/".into(),
        Endpoint::TotpConfirm => "/api/auth/2fa/totp/confirm/".into(),
        Endpoint::RecoveryCodes => "/api/auth/2fa/recovery-codes/".into(),
        Endpoint::Keys => "/api/auth/keys/".into(),
        Endpoint::Key(id) => format!("/api/auth/keys/{id}/"),
        Endpoint::AdminUserKeys(id) => format!("/api/auth/admin/users/{id}/keys/"),
        Endpoint::AdminServiceAccounts => "/api/auth/admin/service-accounts/".into(),
    }
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    let id = "[a-z0-9%.-]{1,8}".prop_filter("not the restore segment", |id| id != "restore");
    prop_oneof![
        Just(Endpoint::TokenObtain),
        Just(Endpoint::TokenRefresh),
        Just(Endpoint::TokenVerify),
        Just(Endpoint::Register),
        Just(Endpoint::Logout),
        Just(Endpoint::Profile),
        Just(Endpoint::PasswordChange),
        Just(Endpoint::ProfileDelete),
        Just(Endpoint::AdminList),
        id.clone().prop_map(Endpoint::AdminDetail),
        id.clone().prop_map(Endpoint::AdminRestore),
        Just(Endpoint::AdminAudit),
        Just(Endpoint::Schema),
        Just(Endpoint::Jwks),
        Just(Endpoint::PasswordReset),
        Just(Endpoint::PasswordResetConfirm),
        Just(Endpoint::EmailVerify),
        Just(Endpoint::EmailVerifyResend),
        Just(Endpoint::Session),
        Just(Endpoint::Sessions),
        id.clone().prop_map(Endpoint::SessionEnd),
        Just(Endpoint::SessionsRevokeOthers),
        Just(Endpoint::Totp),
        Just(Endpoint::TotpConfirm),
        Just(Endpoint::RecoveryCodes),
        Just(Endpoint::Keys),
        id.clone().prop_map(Endpoint::Key),
        id.clone().prop_map(Endpoint::AdminUserKeys),
        Just(Endpoint::AdminServiceAccounts),
    ]
}

/// Endpoint paths, their slash-less spellings and near misses, paths made of the API's own
/// words, and arbitrary text.
fn path() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "api",
        "auth",
        "token",
        "refresh",
        "verify",
        "register",
        "logout",
        "profile",
        "password",
        "delete",
        "admin",
        "users",
        "audit",
        "restore",
        "schema",
        ".well-known",
        "jwks.json",
        "session",
        "sessions",
        "revoke-others",
        "keys",
        "service-accounts",
        "1",
        "abc",
        "",
        "x",
    ]);
    let built = (proptest::collection::vec(word.clone(), 1..6), any::<bool>())
        .prop_map(|(w, slash)| format!("/{}{}", w.join("/"), if slash { "/" } else { "" }));
    let real = || endpoint().prop_map(|e| path_of(&e));
    prop_oneof![
        real(),
        real().prop_map(|p| p.trim_end_matches('/').to_string()),
        (real(), word).prop_map(|(p, w)| format!("{p}{w}/")),
        built,
        "/\\PC{0,80}",
    ]
}

proptest! {
    // Failures are kept beside this file (properties.proptest-regressions): inside a test
    // binary with a main.rs, proptest's default would put them in tests/proptest-regressions/.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(2000)
    })]

    #[test]
    fn bodies_parse_as_drf_parses_them(
        (body, python_type) in body(),
        ct in prop::sample::select(CONTENT_TYPES),
    ) {
        let got = parse(Some(ct), &body);
        let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if body.is_empty() {
            // DRF reads an empty body as an empty dictionary, whatever the content type.
            prop_assert_eq!(got.ok(), Some(Map::new()));
        } else if media == "application/json" {
            match (serde_json::from_slice::<Value>(&body), got) {
                (Ok(Value::Object(want)), Ok(map)) => prop_assert_eq!(map, want),
                // Random bytes that happen to be JSON (`7`) only have the message's start checked.
                (Ok(_), Err(ApiError::NonField(message))) => match python_type {
                    Some(name) => prop_assert_eq!(
                        message,
                        format!("Invalid data. Expected a dictionary, but got {name}.")
                    ),
                    None => prop_assert!(
                        message.starts_with("Invalid data. Expected a dictionary, but got "),
                        "{}", message
                    ),
                },
                (Err(_), Err(e @ ApiError::Parse(_))) => prop_assert_eq!(e.status(), 400),
                (want, got) => prop_assert!(false, "JSON {want:?} parsed as {got:?}"),
            }
        } else if media == "application/x-www-form-urlencoded" {
            let want: Map<String, Value> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            prop_assert_eq!(got.ok(), Some(want));
        } else {
            match got {
                Err(e @ ApiError::UnsupportedMediaType(_)) => {
                    prop_assert_eq!(e.status(), 415);
                    prop_assert!(matches!(e, ApiError::UnsupportedMediaType(t) if t == ct));
                }
                other => prop_assert!(false, "{ct:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn json_objects_of_strings_round_trip_through_fields(
        name in "\\PC{0,40}",
        value in "\\PC{0,40}",
    ) {
        let body = serde_json::json!({ name.clone(): value.clone() }).to_string();
        let map = parse(Some("application/json"), body.as_bytes()).expect("valid JSON object");
        let mut f = Fields::new(&map);
        let got = f.char(&name, REQUIRED_FIELD);
        let trimmed = value.trim().to_string();
        if trimmed.is_empty() {
            prop_assert_eq!(got, None);
            prop_assert!(f.finish().is_err());
        } else {
            prop_assert_eq!(got, Some(trimmed));
        }
    }

    #[test]
    fn every_endpoint_is_routed_from_its_own_path(e in endpoint()) {
        prop_assert_eq!(route(&path_of(&e), API), Route::Api(e));
    }

    #[test]
    fn any_path_routes_as_the_url_table_says(path in path()) {
        let owned = OWNED_PREFIXES.iter().any(|p| path.starts_with(p));
        let slashed_is_an_endpoint = matches!(route(&format!("{path}/"), API), Route::Api(_));
        match route(&path, API) {
            Route::Api(e) => prop_assert_eq!(path_of(&e), path),
            Route::Redirect(to) => {
                prop_assert_eq!(&to, &format!("{path}/"));
                prop_assert!(matches!(route(&to, API), Route::Api(_)), "{to} is no endpoint");
            }
            Route::NotFound => {
                prop_assert!(owned, "{path} is not under an owned prefix");
                prop_assert!(!slashed_is_an_endpoint, "{path}/ is an endpoint");
            }
            Route::NotOurs => {
                prop_assert!(!owned, "{path} is under an owned prefix");
                prop_assert!(!slashed_is_an_endpoint, "{path}/ is an endpoint");
            }
        }
    }

    #[test]
    fn validators_never_panic_on_any_text(s in "\\PC{0,200}") {
        let attrs = UserAttributes { username: &s, first_name: &s, last_name: "", email: &s };
        let _ = validate_password(&s, &attrs);
        if is_valid_username(&s) {
            prop_assert!(s.chars().all(|c| c.is_alphanumeric() || "_.@+-".contains(c)));
        }
        if is_valid_email(&s) {
            prop_assert!(s.chars().count() <= 254, "{s:?}");
            let (user, domain) = s.rsplit_once('@').expect("an address has an @");
            prop_assert!(!user.is_empty() && !domain.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn usernames_are_djangos_charset_exactly(s in "[a-zA-Z0-9_.@+ !#/;:é-]{0,12}") {
        let django = !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_.@+-".contains(c));
        prop_assert_eq!(is_valid_username(&s), django, "{:?}", s);
    }

    #[test]
    fn password_messages_follow_djangos_rules_and_order(password in "[a-z0-9]{0,12}") {
        let attrs = UserAttributes {
            username: "someone",
            first_name: "",
            last_name: "",
            email: "someone@example.com",
        };
        let got = validate_password(&password, &attrs);
        let short = password.chars().count() < 8;
        let numeric = !password.is_empty() && password.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(got.contains(&TOO_SHORT), short, "{:?}: {:?}", password, got);
        prop_assert_eq!(got.contains(&NUMERIC), numeric, "{:?}: {:?}", password, got);
        // Django runs its validators in one order and reports in it.
        let order = [
            SIMILAR_USERNAME, SIMILAR_FIRST_NAME, SIMILAR_LAST_NAME, SIMILAR_EMAIL,
            TOO_SHORT, TOO_COMMON, NUMERIC,
        ];
        let ranks: Vec<usize> = got
            .iter()
            .map(|m| order.iter().position(|o| o == m).expect("a Django message"))
            .collect();
        prop_assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{:?}: {:?}", password, got);
    }

    #[test]
    fn arbitrary_tokens_are_refused_not_panicked_on(t in "\\PC{0,300}", dots in 0usize..4) {
        let tokens = Tokens::new(SECRET, 300, 86400, 0);
        let token = if dots > 0 { format!("{t}{}", ".x".repeat(dots)) } else { t };
        prop_assert!(tokens.verify(&token, Some(TokenType::Access)).is_err());
    }

    #[test]
    fn any_changed_byte_breaks_a_real_token(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let tokens = Tokens::new(SECRET, 300, 86400, 0);
        let good = tokens.issue(TokenType::Access, 7, 0, false, None, None).expect("signs").token;
        prop_assert!(tokens.verify(&good, Some(TokenType::Access)).is_ok());
        // Any position: header, claims, signature and the dots between them.
        let mut bytes = good.clone().into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let forged = String::from_utf8_lossy(&bytes).into_owned();
        // base64url is decoded strictly, so no other spelling decodes to the signed bytes.
        prop_assert!(
            tokens.verify(&forged, Some(TokenType::Access)).is_err(),
            "byte {} of {:?} changed to {:?} still verifies: {:?}", i, good, byte as char, forged
        );
    }
}

/// The running server, not the error table: each kind of client mistake over HTTP gets its
/// own 4xx and DRF body.
#[test]
fn client_mistakes_get_their_own_4xx_from_the_server() {
    let g = Gatehouse::new()
        .with_config(|c| {
            c.api.max_body_bytes = 1024;
            c.limits.max_header_bytes = 2048;
        })
        .start();
    let r = g.with_body("POST", REGISTER, "application/json", "{oops", None);
    r.expect_status(400);
    assert!(
        r.field("detail").starts_with("JSON parse error - "),
        "{}",
        r.text
    );
    g.with_body("POST", TOKEN, "application/json", "[1]", None)
        .expect(400, not_a_dict("list"));
    g.with_body("POST", REFRESH, "text/csv", "a,b", None)
        .expect(415, unsupported_media_type("text/csv"));
    g.with_body("POST", REGISTER, "application/json", "x".repeat(1025), None)
        .expect(413, body_too_large(1024));
    g.with_header("GET", PROFILE, "X-Padding", &"p".repeat(4096))
        .expect(431, headers_too_large());
    g.post(TOKEN, json!({}), None).expect(
        400,
        json!({"username": [REQUIRED_MESSAGE], "password": [REQUIRED_MESSAGE]}),
    );
}

const REQUIRED_MESSAGE: &str = common::bodies::REQUIRED;

/// Whatever body a client posts to whichever endpoint, with whatever content type, by a
/// bearer token or by a session cookie with its CSRF token, the running server answers with a
/// framed JSON 2xx or 4xx (the harness checks the framing), never a 5xx, and stays up.
#[test]
fn any_body_on_any_endpoint_is_answered_without_a_5xx() {
    let g = Gatehouse::new().start();
    let access = g.user_token("prober");
    let (session, csrf) = crate::web_sessions::session_of(&g, "prober");
    let jar = format!(
        "{}={session}; csrftoken={csrf}",
        crate::web_sessions::COOKIE
    );
    let own = g.url("").trim_end_matches('/').to_string();
    const ENDPOINTS: &[(&str, &str)] = &[
        ("POST", TOKEN),
        ("POST", REFRESH),
        ("POST", VERIFY),
        ("POST", REGISTER),
        ("POST", LOGOUT),
        ("PATCH", PROFILE),
        ("PUT", PASSWORD_CHANGE),
        ("POST", SESSION),
        ("DELETE", SESSION_END_NOBODYS),
    ];
    let mut runner = TestRunner::new(ProptestConfig::with_cases(300));
    let strategy = (
        prop::sample::select(ENDPOINTS),
        prop::sample::select(CONTENT_TYPES),
        body(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |((method, path), ct, (body, _), by_cookie)| {
            let r = if by_cookie {
                let rb = g
                    .request(method, path)
                    .header("Content-Type", ct)
                    .header("Cookie", &jar)
                    .header("Origin", &own)
                    .header("X-CSRFToken", &csrf)
                    .body(body);
                g.send(rb)
            } else {
                g.with_body(method, path, ct, body, Some(&access))
            };
            prop_assert!(r.status < 500, "{} -> {} {}", r.request, r.status, r.text);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    g.get(PROFILE, Some(&access)).expect_status(200);
    let rb = g.request("GET", PROFILE).header("Cookie", &jar);
    g.send(rb).expect_status(200);
}

const SESSION: &str = "/api/auth/session/";
/// Ending a session that is nobody's: the view runs, and answers 404.
const SESSION_END_NOBODYS: &str = "/api/auth/sessions/nobodys/";
