//! Signing and verification keys: HS256 with the secret (default), or EdDSA / RS256 / ES256
//! with a PEM private key and a `kid`, plus older public keys (a JWKS file) still accepted for
//! verification during a rotation; and the public JWKS document for asymmetric setups.

use super::secret;
use crate::config::JwtConfig;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;
use std::path::Path;

/// One key a token may be verified with: its `kid` (none for the HS256 secret) and its
/// algorithm, which is the only one accepted for it.
pub struct VerifyingKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    key: Verifier,
}

/// How a signature is checked. HS256 keeps the keyed HMAC state, built once: cloning it per
/// token skips the key schedule that jsonwebtoken redoes for every verification.
enum Verifier {
    Hs256(Hmac<Sha256>),
    Asymmetric(DecodingKey),
}

impl VerifyingKey {
    /// Whether `signature` (the token's third part, base64url) signs `message` (the token's
    /// `header.payload`) under this key and its algorithm.
    pub fn signs(&self, message: &[u8], signature: &str) -> bool {
        match &self.key {
            Verifier::Hs256(keyed) => {
                use base64::Engine;
                let Ok(signature) =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature)
                else {
                    return false;
                };
                let mut mac = keyed.clone();
                mac.update(message);
                // Constant time.
                mac.verify_slice(&signature).is_ok()
            }
            Verifier::Asymmetric(key) => {
                jsonwebtoken::crypto::verify(signature, message, key, self.algorithm)
                    .unwrap_or(false)
            }
        }
    }
}

/// What signs identity assertions for upstreams (SPEC §11): the asymmetric signing key, or,
/// with HS256 tokens, an Ed25519 key generated in the data directory. Its public half is in
/// the JWKS document under `kid`.
#[derive(Clone)]
pub struct AssertionKey {
    pub algorithm: Algorithm,
    pub kid: String,
    pub signing: EncodingKey,
}

/// The generated Ed25519 assertion key, PKCS#8 PEM, 0600, beside the generated secret.
pub const ASSERTION_KEY_FILE: &str = "assertion_ed25519.pem";

pub struct Keys {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub signing: EncodingKey,
    pub verifying: Vec<VerifyingKey>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// The public keys as a JWKS document (asymmetric algorithms only).
    pub jwks: Option<JwkSet>,
    /// `jwks` as the JSON text `/.well-known/jwks.json` serves, encoded once at start-up.
    pub jwks_document: Option<bytes::Bytes>,
    /// Set for asymmetric keys, or by `with_assertion_key`.
    pub assertion: Option<AssertionKey>,
}

fn jwks_document(jwks: &JwkSet) -> Result<bytes::Bytes, String> {
    serde_json::to_vec(jwks)
        .map(bytes::Bytes::from)
        .map_err(|e| format!("cannot encode the JWKS document: {e}"))
}

/// Reads the generated Ed25519 assertion key, or makes it on first start.
fn assertion_key_pem(data_dir: &Path) -> Result<Vec<u8>, String> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let path = data_dir.join(ASSERTION_KEY_FILE);
    match std::fs::read(&path) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| format!("cannot encode the assertion key: {e}"))?;
            secret::write_private(&path, pem.as_bytes())?;
            Ok(pem.as_bytes().to_vec())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The public half of the signing key as a JWK. jsonwebtoken derives RSA and EC ones but
/// not Ed25519 (it panics there), so that one is built from the key's public bytes.
fn public_jwk(pem: &[u8], signing: &EncodingKey, algorithm: Algorithm) -> Result<Jwk, String> {
    use jsonwebtoken::jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, KeyAlgorithm, OctetKeyPairParameters,
        OctetKeyPairType,
    };
    if algorithm != Algorithm::EdDSA {
        return Jwk::from_encoding_key(signing, algorithm).map_err(|e| e.to_string());
    }
    use base64::Engine;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let text = std::str::from_utf8(pem).map_err(|_| "jwt.private_key_file is not PEM text")?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text)
        .map_err(|e| format!("jwt.private_key_file is not an Ed25519 private key: {e}"))?;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    Ok(Jwk {
        common: CommonParameters {
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x,
        }),
    })
}

impl Keys {
    /// A key for another MAC (`label` names its use: the mail links), derived from the HS256
    /// secret without exposing it, so it is the same on every replica that has the secret;
    /// `None` for asymmetric keys.
    pub fn derived_key(&self, label: &[u8]) -> Option<[u8; 32]> {
        if self.algorithm != Algorithm::HS256 {
            return None;
        }
        self.verifying.iter().find_map(|k| match &k.key {
            Verifier::Hs256(keyed) => {
                let mut mac = keyed.clone();
                mac.update(label);
                Some(mac.finalize().into_bytes().into())
            }
            Verifier::Asymmetric(_) => None,
        })
    }

    /// HS256 with a shared secret: no key id.
    pub fn hs256(secret: &[u8], leeway: u64) -> Keys {
        Keys {
            algorithm: Algorithm::HS256,
            kid: None,
            signing: EncodingKey::from_secret(secret),
            verifying: vec![VerifyingKey {
                kid: None,
                algorithm: Algorithm::HS256,
                // HMAC takes a key of any length: this cannot fail.
                key: Verifier::Hs256(
                    Hmac::<Sha256>::new_from_slice(secret)
                        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length")),
                ),
            }],
            leeway,
            jwks: None,
            jwks_document: None,
            assertion: None,
        }
    }

    /// Gives HS256 keys an Ed25519 assertion key (read from the data directory, or generated
    /// there on first start) and publishes its public half; asymmetric keys already have one.
    pub fn with_assertion_key(mut self, data_dir: &Path) -> Result<Keys, String> {
        if self.assertion.is_some() {
            return Ok(self);
        }
        let pem = assertion_key_pem(data_dir)?;
        let signing = EncodingKey::from_ed_pem(&pem)
            .map_err(|e| format!("{ASSERTION_KEY_FILE} is not an Ed25519 key: {e}"))?;
        let mut jwk = public_jwk(&pem, &signing, Algorithm::EdDSA)?;
        let public = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
            _ => String::new(),
        };
        use sha2::Digest;
        let kid = format!(
            "gatehouse-assertion-{}",
            &hex::encode(Sha256::digest(public.as_bytes()))[..16]
        );
        jwk.common.key_id = Some(kid.clone());
        let jwks = JwkSet { keys: vec![jwk] };
        self.jwks_document = Some(jwks_document(&jwks)?);
        self.jwks = Some(jwks);
        self.assertion = Some(AssertionKey {
            algorithm: Algorithm::EdDSA,
            kid,
            signing,
        });
        Ok(self)
    }

    pub fn load(
        cfg: &JwtConfig,
        data_dir: &Path,
        env_secret: Option<&str>,
    ) -> Result<Keys, String> {
        let algorithm = cfg.algorithm.jwt();
        if algorithm == Algorithm::HS256 {
            let secret = secret::load(env_secret, &cfg.secret_file, data_dir)?;
            return Ok(Keys::hs256(&secret, cfg.leeway_seconds));
        }
        let pem = std::fs::read(&cfg.private_key_file)
            .map_err(|e| format!("jwt.private_key_file {:?}: {e}", cfg.private_key_file))?;
        let bad_key = |e: jsonwebtoken::errors::Error| {
            format!(
                "jwt.private_key_file is not a {:?} private key in PEM: {e}",
                algorithm
            )
        };
        let signing = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            _ => EncodingKey::from_ec_pem(&pem),
        }
        .map_err(bad_key)?;
        let mut own = public_jwk(&pem, &signing, algorithm)?;
        own.common.key_id = Some(cfg.key_id.clone());
        let mut jwks = JwkSet { keys: vec![own] };
        if !cfg.verification_jwks_file.is_empty() {
            let text = std::fs::read_to_string(&cfg.verification_jwks_file)
                .map_err(|e| format!("jwt.verification_jwks_file: {e}"))?;
            let extra: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("jwt.verification_jwks_file is not a JWKS document: {e}"))?;
            jwks.keys.extend(extra.keys);
        }
        let mut verifying = Vec::new();
        for jwk in &jwks.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .filter(|k| !k.is_empty())
                .ok_or("every verification key needs a kid")?;
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                .filter(|a| *a != Algorithm::HS256)
                .ok_or(format!("key {kid:?}: an asymmetric \"alg\" is required"))?;
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
            verifying.push(VerifyingKey {
                kid: Some(kid),
                algorithm: alg,
                key: Verifier::Asymmetric(key),
            });
        }
        let document = jwks_document(&jwks)?;
        let assertion = AssertionKey {
            algorithm,
            kid: cfg.key_id.clone(),
            signing: signing.clone(),
        };
        Ok(Keys {
            algorithm,
            kid: Some(cfg.key_id.clone()),
            signing,
            verifying,
            leeway: cfg.leeway_seconds,
            jwks: Some(jwks),
            jwks_document: Some(document),
            assertion: Some(assertion),
        })
    }

    /// The key for a token header: same `kid` (or both none) and same algorithm, else none.
    pub fn find(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<&VerifyingKey> {
        self.verifying
            .iter()
            .find(|k| k.kid.as_deref() == kid && k.algorithm == algorithm)
    }
}
