//! simplejwt-shaped JWTs: issuing access/refresh tokens and verifying them with every check
//! jsonwebtoken leaves off by default, mapped to simplejwt's exact reasons.

use super::keys::Keys;
use crate::clock::now;
use jsonwebtoken::Header;
use serde::{Deserialize, Serialize};

/// Longer tokens are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// Why a token was refused, in simplejwt's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
    WrongType,
    NoType,
    NoExp,
    /// Valid, but without a `user_id` claim.
    NoUserId,
}

impl TokenError {
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Invalid => "Token is invalid",
            TokenError::Expired => "Token is expired",
            TokenError::WrongType => "Token has wrong type",
            TokenError::NoType => "Token has no type",
            TokenError::NoExp => "Token has no 'exp' claim",
            TokenError::NoUserId => "Token contained no recognizable user identification",
        }
    }
}

/// The claims gatehouse writes.
#[derive(Debug, Clone, Serialize)]
struct Claims<'a> {
    token_type: &'static str,
    exp: u64,
    iat: u64,
    jti: &'a str,
    /// A string, as simplejwt 5.5 writes it.
    user_id: String,
    /// The user's token version when issued.
    ver: u64,
    /// Refresh tokens: the family (root jti) for rotation and logout.
    #[serde(skip_serializing_if = "Option::is_none")]
    fam: Option<&'a str>,
    /// How the sign-in behind the token was proven (RFC 8176), written only when a second
    /// factor was part of it: tokens of users without one look as they always did.
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<[&'static str; 2]>,
}

/// The `amr` of a sign-in with a password and a second factor (SPEC §17).
pub const AMR_PASSWORD_OTP: [&str; 2] = ["pwd", "otp"];
/// The `amr` entry that says a second factor was used.
const AMR_OTP: &str = "otp";

/// The claims read back: every field optional so that a missing one gets its own reason, and
/// typed so that a claim of the wrong JSON type fails.
#[derive(Debug, PartialEq, Deserialize)]
struct ReadClaims {
    token_type: Option<String>,
    exp: Option<u64>,
    #[allow(dead_code)]
    iat: Option<u64>,
    nbf: Option<u64>,
    jti: Option<String>,
    user_id: Option<String>,
    ver: Option<u64>,
    fam: Option<String>,
    amr: Option<Vec<String>>,
}

/// The JOSE header fields verification reads.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    /// Read for its type only: a string when present, as jsonwebtoken requires.
    #[serde(borrow, default)]
    #[allow(dead_code)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// A JSON object (serde would also take a struct from an array) as `T`.
fn json_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Result<T, TokenError> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(TokenError::Invalid);
    }
    serde_json::from_slice(json).map_err(|_| TokenError::Invalid)
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub token_type: TokenType,
    pub user_id: u64,
    pub version: u64,
    pub jti: String,
    pub exp: u64,
    /// The refresh family (an access token's: the family it was minted with, if any).
    pub family: Option<String>,
    /// Its `amr` names a second factor: the sign-in behind it used one (SPEC §17).
    pub mfa: bool,
}

/// The signing key refused to sign (never expected with a key checked at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot sign a token: {0}")]
pub struct SignError(pub String);

pub struct Issued {
    pub token: String,
    pub jti: String,
}

pub struct Tokens {
    keys: Keys,
    pub access_lifetime: u64,
    pub refresh_lifetime: u64,
    /// Take tokens without a `ver` claim (simplejwt's own, from the Django project) as
    /// version 0: `jwt.accept_unversioned_tokens`.
    accept_unversioned: bool,
}

/// A validly signed token without gatehouse's `ver` claim: one that simplejwt minted in the
/// Django project with the same key (its claims are `token_type`, `exp`, `iat`, `jti` and
/// `user_id`). Taken as version 0, so it works until the user's first revocation. A refresh
/// token is the root of its own family, named by its `jti` as gatehouse names a fresh login's
/// (so logout blacklists it and rotation continues the family). A `fam` without a `ver` is
/// neither simplejwt's nor gatehouse's: refused.
fn unversioned(
    accept: bool,
    token_type: TokenType,
    jti: &str,
    has_family: bool,
) -> Result<(u64, Option<String>), TokenError> {
    if !accept || has_family || jti.is_empty() {
        return Err(TokenError::Invalid);
    }
    let family = match token_type {
        TokenType::Refresh => Some(jti.to_string()),
        TokenType::Access => None,
    };
    Ok((0, family))
}

impl Tokens {
    /// HS256 with a shared secret (the default deployment).
    pub fn new(secret: &[u8], access_lifetime: u64, refresh_lifetime: u64, leeway: u64) -> Tokens {
        Tokens::with_keys(
            Keys::hs256(secret, leeway),
            access_lifetime,
            refresh_lifetime,
        )
    }

    pub fn with_keys(keys: Keys, access_lifetime: u64, refresh_lifetime: u64) -> Tokens {
        Tokens {
            keys,
            access_lifetime,
            refresh_lifetime,
            accept_unversioned: true,
        }
    }

    /// Whether tokens the Django project minted (no `ver` claim) are accepted (the default).
    pub fn accepting_unversioned(mut self, accept: bool) -> Tokens {
        self.accept_unversioned = accept;
        self
    }

    /// Seconds past `exp` (and before `nbf`) a token is still taken (`[jwt] leeway_seconds`).
    pub fn leeway(&self) -> u64 {
        self.keys.leeway
    }

    /// The public keys (asymmetric algorithms), for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Option<&jsonwebtoken::jwk::JwkSet> {
        self.keys.jwks.as_ref()
    }

    /// What signs identity assertions, if anything does.
    pub fn assertion_key(&self) -> Option<&super::keys::AssertionKey> {
        self.keys.assertion.as_ref()
    }

    /// `jwks()` as JSON text, encoded once.
    pub fn jwks_document(&self) -> Option<&bytes::Bytes> {
        self.keys.jwks_document.as_ref()
    }

    /// Signs a token for `user_id` at `version`; `family` names the refresh family (a refresh
    /// token's own jti when `None`: a new login; an access token then names none); `mfa`: the
    /// sign-in used a second factor (the `amr` claim).
    pub fn issue(
        &self,
        token_type: TokenType,
        user_id: u64,
        version: u64,
        mfa: bool,
        family: Option<&str>,
        jti: Option<&str>,
    ) -> Result<Issued, SignError> {
        let now = now();
        let lifetime = match token_type {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
        };
        let jti = jti.map(str::to_string).unwrap_or_else(crate::ids::new_id);
        // An access token names its refresh family too: ending the family ("sign out this
        // device") refuses its access tokens at once (SPEC §15).
        let fam = match token_type {
            TokenType::Access => family,
            TokenType::Refresh => Some(family.unwrap_or(&jti)),
        };
        let claims = Claims {
            token_type: token_type.as_str(),
            exp: now + lifetime,
            iat: now,
            jti: &jti,
            user_id: user_id.to_string(),
            ver: version,
            fam,
            amr: mfa.then_some(AMR_PASSWORD_OTP),
        };
        let mut header = Header::new(self.keys.algorithm);
        header.kid = self.keys.kid.clone();
        let token = jsonwebtoken::encode(&header, &claims, &self.keys.signing)
            .map_err(|e| SignError(e.to_string()))?;
        Ok(Issued { token, jti })
    }

    /// Checks signature, algorithm, `kid`, `exp`, `nbf`, claim types and `token_type`
    /// (`None`: any type, as simplejwt's UntypedToken).
    ///
    /// The same checks, in the same order, as jsonwebtoken's `decode` with exp and nbf
    /// validation on (a unit test holds the two together; one difference: a `crit` header is
    /// refused), but each part is decoded and parsed once and the HS256 key schedule is done
    /// once at start-up: this runs on every proxied request.
    pub fn verify(&self, token: &str, expected: Option<TokenType>) -> Result<Verified, TokenError> {
        let (c, exp) = self.decode(token)?;
        let token_type = match c.token_type.as_deref() {
            None => return Err(TokenError::NoType),
            Some("access") => TokenType::Access,
            Some("refresh") => TokenType::Refresh,
            Some(_) => return Err(TokenError::WrongType),
        };
        if expected.is_some_and(|t| t != token_type) {
            return Err(TokenError::WrongType);
        }
        let user_id = c.user_id.ok_or(TokenError::NoUserId)?;
        let user_id = user_id.parse::<u64>().map_err(|_| TokenError::Invalid)?;
        let jti = c.jti.ok_or(TokenError::Invalid)?;
        let (version, family) = match c.ver {
            Some(version) => {
                let family = match token_type {
                    TokenType::Refresh => Some(c.fam.ok_or(TokenError::Invalid)?),
                    TokenType::Access => c.fam,
                };
                (version, family)
            }
            None => unversioned(self.accept_unversioned, token_type, &jti, c.fam.is_some())?,
        };
        let mfa = c
            .amr
            .as_ref()
            .is_some_and(|amr| amr.iter().any(|m| m == AMR_OTP));
        Ok(Verified {
            token_type,
            user_id,
            version,
            jti,
            exp,
            family,
            mfa,
        })
    }

    /// The token's claims once its signature, `exp` and `nbf` check out: the part of
    /// verification jsonwebtoken's `decode` does, in its order and with its verdicts.
    /// Returns them with their `exp`, which is always present once they pass.
    fn decode(&self, token: &str) -> Result<(ReadClaims, u64), TokenError> {
        use base64::Engine;
        const B64: base64::engine::GeneralPurpose =
            base64::engine::general_purpose::URL_SAFE_NO_PAD;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let invalid = |_| TokenError::Invalid;
        // The header picks the key: same kid (none for HS256) and that key's own algorithm,
        // so an unknown kid, `none`, or an HS256 token signed with a public key find nothing.
        let header_json = B64.decode(header).map_err(invalid)?;
        let header: JoseHeader = json_object(&header_json)?;
        if header.crit.is_some() {
            // RFC 7515 4.1.11: extensions we do not implement must not be ignored.
            return Err(TokenError::Invalid);
        }
        let algorithm = header
            .alg
            .parse::<jsonwebtoken::Algorithm>()
            .map_err(|_| TokenError::Invalid)?;
        let key = self
            .keys
            .find(header.kid.as_deref(), algorithm)
            .ok_or(TokenError::Invalid)?;
        let signing_input = &token.as_bytes()[..token.len() - signature.len() - 1];
        if !key.signs(signing_input, signature) {
            return Err(TokenError::Invalid);
        }
        let c: ReadClaims = json_object(&B64.decode(payload).map_err(invalid)?)?;
        let exp = c.exp.ok_or(TokenError::NoExp)?;
        let now = now();
        let leeway = self.keys.leeway;
        if exp < now.saturating_sub(leeway) {
            return Err(TokenError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(TokenError::Invalid);
        }
        Ok((c, exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn tokens() -> Tokens {
        Tokens::new(SECRET, 300, 86400, 0)
    }

    fn forge(header: serde_json::Value, claims: serde_json::Value, key: &[u8]) -> String {
        let header: Header = serde_json::from_value(header).unwrap_or_default();
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key)).unwrap_or_default()
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut c = json!({"token_type": "access", "exp": now() + 60, "iat": now(),
                           "jti": "a".repeat(32), "user_id": "7", "ver": 0});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        c
    }

    #[test]
    fn issued_tokens_round_trip() {
        let t = tokens();
        let access = t
            .issue(TokenType::Access, 7, 3, false, None, None)
            .expect("signs");
        assert_eq!(access.jti.len(), 32);
        let v = t
            .verify(&access.token, Some(TokenType::Access))
            .expect("valid");
        assert_eq!((v.user_id, v.version, v.family), (7, 3, None));
        let refresh = t
            .issue(TokenType::Refresh, 7, 3, false, None, None)
            .expect("signs");
        let v = t
            .verify(&refresh.token, Some(TokenType::Refresh))
            .expect("valid");
        assert_eq!(v.family.as_deref(), Some(refresh.jti.as_str()));
        assert_eq!(
            t.verify(&refresh.token, Some(TokenType::Access)),
            Err(TokenError::WrongType)
        );
        assert_eq!(
            t.verify(&access.token, Some(TokenType::Refresh)),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn attacks_are_refused_with_simplejwt_reasons() {
        let t = tokens();
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let ok = forge(hs.clone(), claims(json!({})), SECRET);
        assert!(t.verify(&ok, Some(TokenType::Access)).is_ok());
        let cases = [
            (
                forge(
                    hs.clone(),
                    claims(json!({})),
                    b"wrong-key-wrong-key-wrong-key-00",
                ),
                TokenError::Invalid,
            ),
            (
                forge(hs.clone(), claims(json!({"exp": now() - 10})), SECRET),
                TokenError::Expired,
            ),
            (
                forge(hs.clone(), claims(json!({"exp": null})), SECRET),
                TokenError::NoExp,
            ),
            (
                forge(hs.clone(), claims(json!({"exp": "9999999999"})), SECRET),
                TokenError::Invalid,
            ),
            (
                forge(hs.clone(), claims(json!({"nbf": now() + 100})), SECRET),
                TokenError::Invalid,
            ),
            (
                forge(hs.clone(), claims(json!({"token_type": null})), SECRET),
                TokenError::NoType,
            ),
            (
                forge(
                    hs.clone(),
                    claims(json!({"token_type": "refresh", "fam": "x"})),
                    SECRET,
                ),
                TokenError::WrongType,
            ),
            (
                forge(hs.clone(), claims(json!({"user_id": null})), SECRET),
                TokenError::NoUserId,
            ),
            (
                forge(hs.clone(), claims(json!({"user_id": 7})), SECRET),
                TokenError::Invalid,
            ),
            (
                forge(
                    json!({"alg": "HS256", "kid": "other"}),
                    claims(json!({})),
                    SECRET,
                ),
                TokenError::Invalid,
            ),
            ("not.a.token".to_string(), TokenError::Invalid),
            ("x".repeat(MAX_TOKEN_BYTES + 1), TokenError::Invalid),
        ];
        for (i, (token, want)) in cases.iter().enumerate() {
            assert_eq!(
                t.verify(token, Some(TokenType::Access)),
                Err(*want),
                "case {i}"
            );
        }
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = format!(
                "{}.{}.",
                b64(&json!({"alg": alg, "typ": "JWT"})),
                b64(&claims(json!({})))
            );
            assert_eq!(t.verify(&token, None), Err(TokenError::Invalid), "{alg}");
        }
        let rs = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "RS256"})),
            b64(&claims(json!({})))
        );
        assert_eq!(t.verify(&rs, None), Err(TokenError::Invalid));
    }

    /// A throwaway Ed25519 key, for tests only.
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEICnjrCpYWfLXI+Qxg62nbMbnhDtzAVZKfrJf1RvIbQbW\n-----END PRIVATE KEY-----\n";

    fn eddsa_tokens(dir: &std::path::Path, kid: &str) -> Tokens {
        let pem = dir.join(format!("{kid}.pem"));
        std::fs::write(&pem, ED25519_PEM).expect("write key");
        let cfg = crate::config::JwtConfig {
            algorithm: crate::config::Algorithm::EdDSA,
            private_key_file: pem.display().to_string(),
            key_id: kid.into(),
            ..Default::default()
        };
        let keys = Keys::load(&cfg, dir, None).expect("keys");
        Tokens::with_keys(keys, 300, 86400)
    }

    #[test]
    fn eddsa_with_kid_and_jwks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = eddsa_tokens(dir.path(), "k1");
        let issued = t
            .issue(TokenType::Access, 7, 0, false, None, None)
            .expect("signs");
        let header = jsonwebtoken::decode_header(&issued.token).expect("header");
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (jsonwebtoken::Algorithm::EdDSA, Some("k1"))
        );
        assert!(t.verify(&issued.token, Some(TokenType::Access)).is_ok());
        let jwks = serde_json::to_value(t.jwks().expect("jwks")).expect("json");
        assert_eq!(jwks["keys"][0]["kid"], "k1");
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "no private part in the JWKS"
        );
        // The same key under another kid is another key: unknown kid.
        let other = eddsa_tokens(dir.path(), "k2");
        let foreign = other
            .issue(TokenType::Access, 7, 0, false, None, None)
            .expect("signs")
            .token;
        assert_eq!(t.verify(&foreign, None), Err(TokenError::Invalid));
        // HS256 signed with the public key (algorithm confusion) finds no key.
        let x = jwks["keys"][0]["x"].as_str().expect("x").to_string();
        let confused = forge(
            json!({"alg": "HS256", "kid": "k1"}),
            claims(json!({})),
            x.as_bytes(),
        );
        assert_eq!(t.verify(&confused, None), Err(TokenError::Invalid));
        // No kid at all.
        let no_kid = forge(json!({"alg": "HS256"}), claims(json!({})), SECRET);
        assert_eq!(t.verify(&no_kid, None), Err(TokenError::Invalid));
    }

    #[test]
    fn rotation_keeps_old_keys_for_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = eddsa_tokens(dir.path(), "old");
        let old_token = old
            .issue(TokenType::Access, 7, 0, false, None, None)
            .expect("signs")
            .token;
        let jwks_file = dir.path().join("old.jwks");
        let text = serde_json::to_string(old.jwks().expect("jwks")).expect("json");
        std::fs::write(&jwks_file, text).expect("write");
        let pem = dir.path().join("new.pem");
        std::fs::write(&pem, ED25519_PEM).expect("write key");
        let cfg = crate::config::JwtConfig {
            algorithm: crate::config::Algorithm::EdDSA,
            private_key_file: pem.display().to_string(),
            key_id: "new".into(),
            verification_jwks_file: jwks_file.display().to_string(),
            ..Default::default()
        };
        let new = Tokens::with_keys(
            Keys::load(&cfg, dir.path(), None).expect("keys"),
            300,
            86400,
        );
        assert!(
            new.verify(&old_token, None).is_ok(),
            "old kid still verifies"
        );
        assert_eq!(new.jwks().expect("jwks").keys.len(), 2);
    }

    /// jsonwebtoken's own `decode` with the checks gatehouse turns on: the reference the
    /// single-pass `Tokens::decode` must agree with, verdict for verdict.
    fn reference(token: &str, leeway: u64) -> Result<ReadClaims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 || header.kid.is_some() {
            return Err(TokenError::Invalid);
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = false;
        jsonwebtoken::decode::<ReadClaims>(token, &DecodingKey::from_secret(SECRET), &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::MissingRequiredClaim(c) if c == "exp" => TokenError::NoExp,
                _ => TokenError::Invalid,
            })
    }

    #[test]
    fn single_pass_decode_agrees_with_jsonwebtoken() {
        let headers = [
            json!({"alg": "HS256"}),
            json!({"alg": "HS256", "typ": "JWT"}),
            json!({"alg": "HS256", "typ": 5}),
            json!({"alg": "HS256", "kid": "k"}),
            json!({"alg": "HS256", "kid": null}),
            json!({"alg": "HS384"}),
            json!({"alg": "hs256"}),
            json!({"alg": "none"}),
            json!({"alg": 256}),
            json!({"typ": "JWT"}),
            json!({"alg": "HS256", "crit": ["exp"]}),
            json!(["HS256"]),
        ];
        let n = now();
        let claim_sets = [
            json!({}),
            json!({"exp": null}),
            json!({"exp": n - 10}),
            json!({"exp": n - 3}),
            json!({"exp": "9999999999"}),
            json!({"exp": 9_999_999_999.5}),
            json!({"exp": -1}),
            json!({"nbf": n + 100}),
            json!({"nbf": n - 100}),
            json!({"nbf": "soon"}),
            json!({"token_type": 1}),
            json!({"user_id": 7, "extra": {"nested": [1, 2]}}),
            json!("array"),
        ];
        let mut checked = 0;
        for leeway in [0, 5] {
            let t = Tokens::new(SECRET, 300, 86400, leeway);
            for header in &headers {
                for extra in &claim_sets {
                    let body = match extra.as_str() {
                        Some("array") => json!(["access", n + 60, n, "a", null, "7", 0, null]),
                        _ => claims(extra.clone()),
                    };
                    for key in [SECRET, b"another-key-another-key-another!" as &[u8]] {
                        let h = b64(header);
                        let p = b64(&body);
                        let sig = {
                            use hmac::{Hmac, Mac};
                            let mut mac =
                                Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
                            mac.update(format!("{h}.{p}").as_bytes());
                            base64::engine::general_purpose::URL_SAFE_NO_PAD
                                .encode(mac.finalize().into_bytes())
                        };
                        let token = format!("{h}.{p}.{sig}");
                        let tampered = [
                            token.clone(),
                            format!("{token}="),
                            format!("{h}.{p}.{sig}.{sig}"),
                            format!("{h}.{p}"),
                            format!("{h}.{p}x.{sig}"),
                            format!(" {token}"),
                        ];
                        for token in &tampered {
                            // The one deliberate difference: jsonwebtoken ignores `crit`,
                            // RFC 7515 says a token naming extensions we lack is refused.
                            let want = match header.get("crit") {
                                Some(_) => Err(TokenError::Invalid),
                                None => reference(token, leeway),
                            };
                            assert_eq!(
                                t.decode(token).map(|(claims, _)| claims),
                                want,
                                "{header} {body} leeway {leeway}: {token}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 12 * 13 * 2 * 6);
    }

    /// The claims simplejwt 5.5's `RefreshToken.for_user` writes (no `ver`, no `fam`).
    fn simplejwt_claims(token_type: &str, user_id: &str) -> serde_json::Value {
        json!({"token_type": token_type, "exp": now() + 60, "iat": now(),
               "jti": "0f6e2b4c9d8a4e1b8c7d6e5f4a3b2c1d", "user_id": user_id})
    }

    #[test]
    fn simplejwt_tokens_are_version_zero_and_a_refresh_token_roots_its_family() {
        let t = tokens();
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let access = forge(hs.clone(), simplejwt_claims("access", "7"), SECRET);
        let v = t.verify(&access, Some(TokenType::Access)).expect("valid");
        assert_eq!((v.user_id, v.version, v.family), (7, 0, None));
        let refresh = forge(hs.clone(), simplejwt_claims("refresh", "7"), SECRET);
        let v = t.verify(&refresh, Some(TokenType::Refresh)).expect("valid");
        assert_eq!(
            (v.version, v.family.as_deref(), v.jti.as_str()),
            (
                0,
                Some("0f6e2b4c9d8a4e1b8c7d6e5f4a3b2c1d"),
                "0f6e2b4c9d8a4e1b8c7d6e5f4a3b2c1d"
            )
        );
        // Untyped (verify view): both kinds.
        assert!(t.verify(&access, None).is_ok() && t.verify(&refresh, None).is_ok());
        // Every other check still applies.
        assert_eq!(
            t.verify(&refresh, Some(TokenType::Access)),
            Err(TokenError::WrongType)
        );
        let other_key = forge(
            hs.clone(),
            simplejwt_claims("access", "7"),
            b"another-key-another-key-another!",
        );
        assert_eq!(t.verify(&other_key, None), Err(TokenError::Invalid));
        let mut expired = simplejwt_claims("access", "7");
        expired["exp"] = json!(now() - 10);
        assert_eq!(
            t.verify(&forge(hs.clone(), expired, SECRET), None),
            Err(TokenError::Expired)
        );
        // simplejwt before 5.4 wrote user_id as a number: the wrong JSON type, as before.
        let mut numeric = simplejwt_claims("access", "7");
        numeric["user_id"] = json!(7);
        let numeric = forge(hs.clone(), numeric, SECRET);
        assert_eq!(t.verify(&numeric, None), Err(TokenError::Invalid));
        let not_a_number = forge(hs.clone(), simplejwt_claims("access", "x"), SECRET);
        assert_eq!(t.verify(&not_a_number, None), Err(TokenError::Invalid));
    }

    #[test]
    fn unversioned_tokens_can_be_refused_and_odd_ones_always_are() {
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let strict = tokens().accepting_unversioned(false);
        for kind in ["access", "refresh"] {
            let token = forge(hs.clone(), simplejwt_claims(kind, "7"), SECRET);
            assert_eq!(
                strict.verify(&token, None),
                Err(TokenError::Invalid),
                "{kind}"
            );
        }
        // gatehouse's own tokens are unaffected.
        let own = strict
            .issue(TokenType::Refresh, 7, 2, false, None, None)
            .expect("signs");
        assert!(strict.verify(&own.token, Some(TokenType::Refresh)).is_ok());
        let t = tokens();
        // A family without a version, or no jti to name the family by: neither simplejwt's
        // nor gatehouse's.
        let mut fam = simplejwt_claims("refresh", "7");
        fam["fam"] = json!("someone-elses-family");
        let mut no_jti = simplejwt_claims("refresh", "7");
        no_jti["jti"] = json!("");
        let mut null_jti = simplejwt_claims("access", "7");
        null_jti["jti"] = json!(null);
        for claims in [fam, no_jti, null_jti] {
            let token = forge(hs.clone(), claims.clone(), SECRET);
            assert_eq!(t.verify(&token, None), Err(TokenError::Invalid), "{claims}");
        }
        // A versioned refresh token still needs its family.
        let no_fam = forge(hs, claims(json!({"token_type": "refresh"})), SECRET);
        assert_eq!(t.verify(&no_fam, None), Err(TokenError::Invalid));
    }

    #[test]
    fn leeway_is_configurable_and_zero_by_default() {
        let expired = forge(
            json!({"alg": "HS256"}),
            claims(json!({"exp": now() - 5})),
            SECRET,
        );
        assert_eq!(tokens().verify(&expired, None), Err(TokenError::Expired));
        let lenient = Tokens::new(SECRET, 300, 86400, 30);
        assert!(lenient.verify(&expired, None).is_ok());
    }
}
