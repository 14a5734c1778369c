//! Tokens from the outside: decoding what gatehouse issued, and signing forgeries with any
//! header, claims and key, written here rather than borrowed from the code under test.

use base64::Engine;
use hmac::Mac;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn part(token: &str, index: usize, what: &str) -> Value {
    let part = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("{what} part of {token:?}"));
    let bytes = B64
        .decode(part)
        .unwrap_or_else(|e| panic!("{what} of {token:?} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{what} of {token:?}: {e}"))
}

/// The JOSE header of a JWT, unchecked.
pub fn header_of(token: &str) -> Value {
    part(token, 0, "header")
}

/// The claims of a JWT, unchecked.
pub fn claims(token: &str) -> Value {
    part(token, 1, "claims")
}

pub fn jti(token: &str) -> String {
    claims(token)["jti"].as_str().expect("jti").to_string()
}

/// 32 lower-case hex digits: the shape of jtis and generated request ids.
pub fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The header gatehouse signs with.
pub fn hs256_header() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// The claims of `token` with `changes` applied (a null value removes the claim).
pub fn tweak(token: &str, changes: Value) -> Value {
    let mut c = claims(token);
    let obj = c.as_object_mut().expect("claims object");
    for (k, v) in changes.as_object().expect("changes object") {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    c
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Signs any header and claims with HMAC-SHA256 and `key`, whatever the header says.
pub fn sign_hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = signing_input(header, claims);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// An HS512 token with the right key: an algorithm gatehouse does not accept.
pub fn sign_hs512(claims: &Value, key: &[u8]) -> String {
    let input = signing_input(&json!({"alg": "HS512", "typ": "JWT"}), claims);
    let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Header and claims with an empty signature part (`alg: none` forgeries).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// True when the token's HS256 signature was made with `key` (checked on the bytes as sent).
pub fn signed_with(token: &str, key: &[u8]) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = B64.decode(sig) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    mac.verify_slice(&sig).is_ok()
}
