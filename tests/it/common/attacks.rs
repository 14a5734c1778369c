//! The forged and malformed access tokens every authenticated place must refuse, with the
//! simplejwt body each gets: one list for the profile view and the proxy routes alike.

use super::bodies::{bad_access, no_user_id, user_not_found};
use super::jwt::*;
use super::Gatehouse;
use serde_json::{json, Value};

/// What a case is, the token, and the 401 body it must get.
pub struct Forgery {
    pub label: &'static str,
    pub token: String,
    pub body: Value,
}

fn case(label: &'static str, token: String, body: Value) -> Forgery {
    Forgery { label, token, body }
}

/// Forgeries of `access` (a live access token of a user of `g`; `refresh` is the same
/// user's): each differs from a token gatehouse would accept in the one way its label says.
pub fn forged_access_tokens(g: &Gatehouse, access: &str, refresh: &str) -> Vec<Forgery> {
    let secret = g.secret();
    let key = secret.as_bytes();
    let good = claims(access);
    let header = access.split('.').next().unwrap_or_default();
    let signature = access.rsplit('.').next().unwrap_or_default();
    let with_header = |header: Value| sign_hs256(&header, &good, key);
    let alg = |name: &str| json!({"alg": name, "typ": "JWT"});
    let invalid = || bad_access("Token is invalid");
    let n = now();
    // Another user's id, to claim with this token's signature.
    let someone_else = good["user_id"]
        .as_str()
        .and_then(|id| id.parse::<u64>().ok())
        .map_or(1, |id| id + 1)
        .to_string();
    vec![
        case("alg none", unsigned(&alg("none"), &good), invalid()),
        case("alg None", unsigned(&alg("None"), &good), invalid()),
        case("alg NONE", unsigned(&alg("NONE"), &good), invalid()),
        case("alg nOnE", unsigned(&alg("nOnE"), &good), invalid()),
        case(
            "alg none with the real signature kept",
            format!("{}{signature}", unsigned(&alg("none"), &good)),
            invalid(),
        ),
        case(
            "alg none, HMAC over its own header",
            with_header(alg("none")),
            invalid(),
        ),
        case("RS256 header", with_header(alg("RS256")), invalid()),
        case("EdDSA header", with_header(alg("EdDSA")), invalid()),
        case("HS512 header", with_header(alg("HS512")), invalid()),
        case(
            "HS512 with the right key",
            sign_hs512(&good, key),
            invalid(),
        ),
        case(
            "unknown kid",
            with_header(json!({"alg": "HS256", "typ": "JWT", "kid": "no-such-key"})),
            invalid(),
        ),
        case(
            "HS256 signed with a wrong key",
            sign_hs256(
                &hs256_header(),
                &good,
                b"not-the-secret-not-the-secret-0123",
            ),
            invalid(),
        ),
        case(
            "tampered claims, original signature",
            format!(
                "{header}.{}.{signature}",
                b64(tweak(access, json!({ "user_id": someone_else }))
                    .to_string()
                    .as_bytes()),
            ),
            invalid(),
        ),
        case(
            "expired",
            g.forge(access, json!({"iat": n - 600, "exp": n - 300})),
            bad_access("Token is expired"),
        ),
        case(
            "refresh token used as access",
            refresh.to_string(),
            bad_access("Token has wrong type"),
        ),
        case(
            "forged token_type refresh",
            g.forge(access, json!({"token_type": "refresh"})),
            bad_access("Token has wrong type"),
        ),
        case(
            "no token_type",
            g.forge(access, json!({"token_type": null})),
            bad_access("Token has no type"),
        ),
        case(
            "missing exp",
            g.forge(access, json!({"exp": null})),
            bad_access("Token has no 'exp' claim"),
        ),
        case(
            "exp as a string",
            g.forge(access, json!({"exp": (n + 3600).to_string()})),
            invalid(),
        ),
        case(
            "nbf in the future",
            g.forge(access, json!({"nbf": n + 3600})),
            invalid(),
        ),
        case(
            "stale token version",
            g.forge(
                access,
                json!({"ver": good["ver"].as_u64().unwrap_or(0) + 1}),
            ),
            invalid(),
        ),
        case(
            "missing user_id",
            g.forge(access, json!({"user_id": null})),
            no_user_id(),
        ),
        case(
            "user id that does not exist",
            g.forge(access, json!({"user_id": "987654"})),
            user_not_found(),
        ),
        case("one opaque word", "garbage".into(), invalid()),
        case("three dots", "a.b.c".into(), invalid()),
        case(
            "non-base64 garbage",
            "not*base64!.%%%.$$$".into(),
            invalid(),
        ),
        case(
            "base64 parts that are not JSON",
            format!("{}.{}.{}", b64(b"{not json"), b64(b"[1,2"), b64(b"sig")),
            invalid(),
        ),
        case(
            "comma-joined token",
            format!("{access},{access}"),
            invalid(),
        ),
        // Past the 8 KiB token cap, below the 32 KiB request-head cap (a 100 KiB one is a 431
        // before any parsing: proxy.rs).
        case(
            "20 KiB token, correctly signed",
            g.forge(access, json!({"pad": "x".repeat(20 * 1024)})),
            invalid(),
        ),
        case("20 KiB of letters", "A".repeat(20 * 1024), invalid()),
    ]
}
