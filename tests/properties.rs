//! Property tests over the request parsers and validators: whatever bytes a client sends,
//! they return a value (never panic), and what they accept obeys the rules.

use gatehouse::api::body::{parse, Fields, REQUIRED};
use gatehouse::api::router::{route, Route};
use gatehouse::auth::policy::{
    is_valid_email, is_valid_username, validate_password, UserAttributes,
};
use gatehouse::auth::tokens::{TokenType, Tokens};
use gatehouse::error::ApiError;
use proptest::prelude::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_body_parses_to_a_value_or_a_drf_error(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        ct in prop::sample::select(vec!["application/json", "application/x-www-form-urlencoded",
                                        "text/plain", "application/json; charset=utf-8", ""]),
    ) {
        match parse(Some(ct), &body) {
            Ok(map) => { let _ = map.len(); }
            Err(e) => prop_assert!(matches!(e.status(), 400 | 415), "{e:?}"),
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
        let got = f.char(&name, REQUIRED);
        let trimmed = value.trim().to_string();
        if trimmed.is_empty() {
            prop_assert_eq!(got, None);
            prop_assert!(f.finish().is_err());
        } else {
            prop_assert_eq!(got, Some(trimmed));
        }
    }

    #[test]
    fn any_path_routes_somewhere(path in "/\\PC{0,80}") {
        match route(&path) {
            Route::Api(e) => prop_assert!(!e.methods().is_empty()),
            Route::Redirect(to) => prop_assert_eq!(to, format!("{path}/")),
            Route::NotFound => prop_assert!(path.starts_with("/api/auth/") || path.starts_with("/api/token/")),
            Route::NotOurs => prop_assert!(!path.starts_with("/api/auth/") && !path.starts_with("/api/token/")),
        }
    }

    #[test]
    fn validators_never_panic_and_usernames_keep_djangos_charset(s in "\\PC{0,200}") {
        let attrs = UserAttributes { username: &s, first_name: &s, last_name: "", email: &s };
        let errors = validate_password(&s, &attrs);
        prop_assert!(errors.len() <= 4);
        if is_valid_username(&s) {
            prop_assert!(s.chars().all(|c| c.is_alphanumeric() || "_.@+-".contains(c)));
        }
        if is_valid_email(&s) {
            prop_assert!(s.contains('@'));
        }
    }

    #[test]
    fn arbitrary_tokens_are_refused_not_panicked_on(t in "\\PC{0,300}", dots in 0usize..4) {
        let tokens = Tokens::new(SECRET, 300, 86400, 0);
        let token = if dots > 0 { format!("{t}{}", ".x".repeat(dots)) } else { t };
        prop_assert!(tokens.verify(&token, Some(TokenType::Access)).is_err());
    }

    #[test]
    fn a_flipped_byte_breaks_a_real_token(pos in 0usize..200, byte in any::<u8>()) {
        let tokens = Tokens::new(SECRET, 300, 86400, 0);
        let good = tokens.issue(TokenType::Access, 7, 0, None, None).expect("signs").token;
        let mut bytes = good.clone().into_bytes();
        let i = pos % bytes.len();
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let forged = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(forged != good);
        // base64url padding bits can make two encodings decode alike; the signature must
        // still cover every decoded byte, so whatever verifies carries the same claims.
        if let Ok(v) = tokens.verify(&forged, Some(TokenType::Access)) {
            prop_assert_eq!(v.user_id, 7);
        }
    }
}

#[test]
fn error_statuses_are_never_5xx_for_client_mistakes() {
    for e in [
        ApiError::Parse("x".into()),
        ApiError::NonField("x".into()),
        ApiError::UnsupportedMediaType("x".into()),
        ApiError::TooLarge(1),
        ApiError::HeadersTooLarge,
    ] {
        assert!((400..500).contains(&e.status()), "{e:?}");
    }
}
