//! Django's password hash strings, for users imported from the Django project: which kind a
//! stored string is, and verifying the ones Django's hashers write, as `check_password` does:
//!
//! | hasher | string |
//! |---|---|
//! | PBKDF2PasswordHasher (default) | `pbkdf2_sha256$<iterations>$<salt>$<base64 32-byte key>` |
//! | PBKDF2SHA1PasswordHasher | `pbkdf2_sha1$<iterations>$<salt>$<base64 20-byte key>` |
//! | Argon2PasswordHasher | `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>` (PHC, `$` → `argon2$`); older `argon2$argon2i$...`, with or without `v=` |
//! | BCryptSHA256PasswordHasher | `bcrypt_sha256$$2b$<cost>$<salt+hash>`: bcrypt of the hex SHA-256 of the password |
//! | BCryptPasswordHasher | `bcrypt$$2b$<cost>$<salt+hash>`: bcrypt of the password |
//! | ScryptPasswordHasher | `scrypt$<n>$<salt>$<r>$<p>$<base64 64-byte key>` |
//!
//! Every comparison is constant-time, and every cost parameter is bounded: a string asking for
//! more work than any Django release uses by far is damaged or hostile, would hold a hashing
//! thread for minutes (or allocate gigabytes), and is treated as no hash at all.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// The algorithm name Django writes in front of its default hasher's strings.
pub const PBKDF2_SHA256: &str = "pbkdf2_sha256";
/// PBKDF2SHA1PasswordHasher.
pub const PBKDF2_SHA1: &str = "pbkdf2_sha1";
/// Argon2PasswordHasher.
pub const ARGON2: &str = "argon2";
/// BCryptSHA256PasswordHasher.
pub const BCRYPT_SHA256: &str = "bcrypt_sha256";
/// BCryptPasswordHasher.
pub const BCRYPT: &str = "bcrypt";
/// ScryptPasswordHasher.
pub const SCRYPT: &str = "scrypt";
/// The Django algorithms gatehouse verifies (and then re-hashes to argon2id).
pub const SUPPORTED: [&str; 6] = [
    PBKDF2_SHA256,
    PBKDF2_SHA1,
    ARGON2,
    BCRYPT_SHA256,
    BCRYPT,
    SCRYPT,
];
/// Django's prefix for a password that can never match (`set_unusable_password`).
pub const UNUSABLE_PREFIX: char = '!';
/// More PBKDF2 iterations than any Django release uses by far (5.1: 870,000).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Argon2 memory beyond this (KiB; Django's default is 102,400) is refused.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;
/// Argon2 memory times passes beyond this (KiB; Django's default is 204,800) is refused.
pub const MAX_ARGON2_WORK: u64 = 4 * 1024 * 1024;
/// Argon2 lanes beyond this (Django's default is 8) are refused.
pub const MAX_ARGON2_LANES: u32 = 64;
/// bcrypt's cost is a power of two: 2^16 rounds is 16 times Django's default (12).
pub const MAX_BCRYPT_COST: u32 = 16;
/// scrypt memory (128 * n * r bytes; Django's default is 16 MiB) beyond this is refused.
pub const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// scrypt work (n * r * p; Django's default is 2^17) beyond this is refused.
pub const MAX_SCRYPT_WORK: u64 = 1 << 24;
/// SHA-256's output: Django's key length for its default hasher.
const KEY_LEN: usize = 32;
/// SHA-1's output: the key length of `pbkdf2_sha1`.
const SHA1_KEY_LEN: usize = 20;
/// Django's scrypt key length (`dklen=64`).
const SCRYPT_KEY_LEN: usize = 64;

/// What a stored password string is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKind {
    /// gatehouse's own PHC string (`$argon2id$...`).
    Argon2,
    /// A well-formed Django `pbkdf2_sha256$...` hash.
    Pbkdf2Sha256,
    /// A well-formed Django `pbkdf2_sha1$...` hash.
    Pbkdf2Sha1,
    /// A well-formed Django `argon2$...` hash (Argon2PasswordHasher).
    DjangoArgon2,
    /// A well-formed Django `bcrypt_sha256$...` hash.
    BcryptSha256,
    /// A well-formed Django `bcrypt$...` hash.
    Bcrypt,
    /// A well-formed Django `scrypt$...` hash.
    Scrypt,
    /// Django's `!...` (or an empty string): no password can match.
    Unusable,
    /// Anything else, named by its algorithm (`md5`, `sha1`, `crypt`, ...), or `unknown` when
    /// the string names none. A malformed string of a supported algorithm (or one whose cost
    /// is beyond the limits above) lands here under that algorithm's name, e.g. `bcrypt`.
    Unsupported(String),
}

impl HashKind {
    /// A Django hash gatehouse verifies at login (and then replaces with argon2id).
    pub fn is_django(&self) -> bool {
        matches!(
            self,
            HashKind::Pbkdf2Sha256
                | HashKind::Pbkdf2Sha1
                | HashKind::DjangoArgon2
                | HashKind::BcryptSha256
                | HashKind::Bcrypt
                | HashKind::Scrypt
        )
    }
}

/// Django's `is_password_usable` inverted: the `!` prefix marks a password that never matches.
pub fn is_unusable(encoded: &str) -> bool {
    encoded.starts_with(UNUSABLE_PREFIX)
}

/// Which digest a PBKDF2 hasher uses.
#[derive(Clone, Copy)]
enum Digest {
    Sha256,
    Sha1,
}

/// A well-formed Django hash, parsed, every cost within bounds.
enum Parsed<'a> {
    Pbkdf2 {
        digest: Digest,
        iterations: u32,
        salt: &'a str,
        key: Vec<u8>,
    },
    Argon2 {
        hasher: argon2::Argon2<'static>,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Bcrypt {
        /// BCryptSHA256PasswordHasher: the password goes in as its hex SHA-256.
        sha256: bool,
        /// The bcrypt string proper, `$2b$12$...`.
        modular: &'a str,
    },
    Scrypt {
        params: scrypt::Params,
        salt: &'a str,
        key: Vec<u8>,
    },
}

impl Parsed<'_> {
    fn kind(&self) -> HashKind {
        match self {
            Parsed::Pbkdf2 {
                digest: Digest::Sha256,
                ..
            } => HashKind::Pbkdf2Sha256,
            Parsed::Pbkdf2 {
                digest: Digest::Sha1,
                ..
            } => HashKind::Pbkdf2Sha1,
            Parsed::Argon2 { .. } => HashKind::DjangoArgon2,
            Parsed::Bcrypt { sha256: true, .. } => HashKind::BcryptSha256,
            Parsed::Bcrypt { sha256: false, .. } => HashKind::Bcrypt,
            Parsed::Scrypt { .. } => HashKind::Scrypt,
        }
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            Parsed::Pbkdf2 {
                digest,
                iterations,
                salt,
                key,
            } => {
                let derived = derive_pbkdf2(*digest, password, salt, *iterations);
                derived.ct_eq(key).into()
            }
            Parsed::Argon2 { hasher, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                hasher
                    .hash_password_into(password.as_bytes(), salt, &mut out)
                    .is_ok()
                    && bool::from(out.ct_eq(hash))
            }
            Parsed::Bcrypt { sha256, modular } => {
                let verdict = if *sha256 {
                    use sha2::Digest as _;
                    let hex = hex::encode(sha2::Sha256::digest(password.as_bytes()));
                    bcrypt::verify(hex, modular)
                } else {
                    // Truncated at 72 bytes, as bcrypt (and so Django) always did.
                    bcrypt::verify(password, modular)
                };
                // The bcrypt crate compares in constant time.
                verdict.unwrap_or(false)
            }
            Parsed::Scrypt { params, salt, key } => {
                let mut out = [0u8; SCRYPT_KEY_LEN];
                scrypt::scrypt(password.as_bytes(), salt.as_bytes(), params, &mut out).is_ok()
                    && bool::from(out.as_slice().ct_eq(key))
            }
        }
    }
}

/// A decimal count of digits only (`u32::from_str` would also take a leading `+`).
fn count(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_pbkdf2(encoded: &str, digest: Digest) -> Option<Parsed<'_>> {
    let (name, key_len) = match digest {
        Digest::Sha256 => (PBKDF2_SHA256, KEY_LEN),
        Digest::Sha1 => (PBKDF2_SHA1, SHA1_KEY_LEN),
    };
    let mut parts = encoded.split('$');
    let (algorithm, iterations, salt, key) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if algorithm != name || parts.next().is_some() || salt.is_empty() {
        return None;
    }
    let iterations = count(iterations)?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return None;
    }
    let key = STANDARD.decode(key).ok()?;
    if key.len() != key_len {
        return None;
    }
    Some(Parsed::Pbkdf2 {
        digest,
        iterations,
        salt,
        key,
    })
}

/// Django's Argon2PasswordHasher: `argon2` + the PHC string argon2-cffi writes.
fn parse_argon2(encoded: &str) -> Option<Parsed<'_>> {
    use argon2::password_hash::PasswordHash;
    use argon2::{Algorithm, Argon2, Params, Version};
    let rest = encoded.strip_prefix("argon2$")?;
    let phc = format!("${rest}");
    let parsed = PasswordHash::new(&phc).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    // No `v=`: the strings of argon2 before version 1.3 (0x13), which are version 1.0 (0x10),
    // as the reference implementation (and so argon2-cffi) reads them.
    let version = match parsed.version {
        None => Version::V0x10,
        Some(v) => Version::try_from(v).ok()?,
    };
    let params = Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || u64::from(params.m_cost()) * u64::from(params.t_cost()) > MAX_ARGON2_WORK
        || params.p_cost() > MAX_ARGON2_LANES
        || !params.keyid().is_empty()
        || !params.data().is_empty()
    {
        return None;
    }
    let mut buf = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut buf).ok()?.to_vec();
    if salt.len() < argon2::MIN_SALT_LEN {
        return None;
    }
    let hash = parsed.hash?.as_bytes().to_vec();
    Some(Parsed::Argon2 {
        hasher: Argon2::new(algorithm, version, params),
        salt,
        hash,
    })
}

/// `bcrypt_sha256$` or `bcrypt$` followed by a modular-crypt bcrypt string,
/// `$2b$12$` + 22 characters of salt + 31 of hash in bcrypt's base64 alphabet.
fn parse_bcrypt(encoded: &str) -> Option<Parsed<'_>> {
    let (sha256, modular) = if let Some(m) = encoded.strip_prefix("bcrypt_sha256$") {
        (true, m)
    } else {
        (false, encoded.strip_prefix("bcrypt$")?)
    };
    let mut parts = modular.split('$');
    let (empty, variant, cost, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !empty.is_empty() || parts.next().is_some() {
        return None;
    }
    if !matches!(variant, "2a" | "2b" | "2y" | "2x") || cost.len() != 2 {
        return None;
    }
    let cost = count(cost)?;
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return None;
    }
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    if rest.len() != 53 || !rest.bytes().all(alphabet) {
        return None;
    }
    Some(Parsed::Bcrypt { sha256, modular })
}

/// Django's ScryptPasswordHasher: `scrypt$<n>$<salt>$<r>$<p>$<base64 key>`.
fn parse_scrypt(encoded: &str) -> Option<Parsed<'_>> {
    let mut parts = encoded.split('$');
    let (algorithm, n, salt, r, p, key) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if algorithm != SCRYPT || parts.next().is_some() || salt.is_empty() {
        return None;
    }
    let (n, r, p) = (count(n)?, count(r)?, count(p)?);
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
        return None;
    }
    let (n64, r64, p64) = (u64::from(n), u64::from(r), u64::from(p));
    if 128 * n64 * r64 > MAX_SCRYPT_MEMORY || n64 * r64 * p64 > MAX_SCRYPT_WORK {
        return None;
    }
    let log_n = u8::try_from(n.trailing_zeros()).ok()?;
    let params = scrypt::Params::new(log_n, r, p, SCRYPT_KEY_LEN).ok()?;
    let key = STANDARD.decode(key).ok()?;
    if key.len() != SCRYPT_KEY_LEN {
        return None;
    }
    Some(Parsed::Scrypt { params, salt, key })
}

fn parse(encoded: &str) -> Option<Parsed<'_>> {
    let (algorithm, _) = encoded.split_once('$')?;
    match algorithm {
        PBKDF2_SHA256 => parse_pbkdf2(encoded, Digest::Sha256),
        PBKDF2_SHA1 => parse_pbkdf2(encoded, Digest::Sha1),
        ARGON2 => parse_argon2(encoded),
        BCRYPT_SHA256 | BCRYPT => parse_bcrypt(encoded),
        SCRYPT => parse_scrypt(encoded),
        _ => None,
    }
}

fn derive_pbkdf2(digest: Digest, password: &str, salt: &str, iterations: u32) -> Vec<u8> {
    let (password, salt) = (password.as_bytes(), salt.as_bytes());
    match digest {
        Digest::Sha256 => {
            let mut key = [0u8; KEY_LEN];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut key);
            key.to_vec()
        }
        Digest::Sha1 => {
            let mut key = [0u8; SHA1_KEY_LEN];
            pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut key);
            key.to_vec()
        }
    }
}

/// Checks `password` against any Django hash of the table above, as Django's
/// `check_password` does, comparing in constant time. `None` when `encoded` is not such a
/// hash (another algorithm, a damaged string, a cost beyond the limits).
pub fn verify(password: &str, encoded: &str) -> Option<bool> {
    parse(encoded).map(|p| p.verify(password))
}

/// Checks `password` against a Django `pbkdf2_sha256` hash, comparing in constant time.
/// `None` when `encoded` is not such a hash (another algorithm, a damaged string, zero or
/// more than `MAX_ITERATIONS` iterations, a key that is not base64 of 32 bytes).
pub fn verify_pbkdf2_sha256(password: &str, encoded: &str) -> Option<bool> {
    parse_pbkdf2(encoded, Digest::Sha256).map(|p| p.verify(password))
}

/// Django's `PBKDF2PasswordHasher.encode`: the string `make_password` stores.
pub fn encode_pbkdf2_sha256(password: &str, salt: &str, iterations: u32) -> String {
    let key = derive_pbkdf2(Digest::Sha256, password, salt, iterations);
    format!(
        "{PBKDF2_SHA256}${iterations}${salt}${}",
        STANDARD.encode(key)
    )
}

/// The algorithm a Django hash string names, as Django's `identify_hasher` reads it; only a
/// plain identifier is returned, so no part of a hash ends up in a log or a report.
fn algorithm_name(encoded: &str) -> String {
    let name = match encoded.split_once('$') {
        Some((name, _)) => name,
        // Django's legacy unsalted MD5: 32 hex digits, no `$`.
        None if encoded.len() == 32 && encoded.bytes().all(|b| b.is_ascii_hexdigit()) => {
            "unsalted_md5"
        }
        None => "",
    };
    let plain = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        name.to_string()
    } else {
        "unknown".to_string()
    }
}

/// What kind of password string `encoded` is.
pub fn classify(encoded: &str) -> HashKind {
    if encoded.is_empty() || is_unusable(encoded) {
        HashKind::Unusable
    } else if encoded.starts_with("$argon2") {
        HashKind::Argon2
    } else if let Some(parsed) = parse(encoded) {
        parsed.kind()
    } else {
        HashKind::Unsupported(algorithm_name(encoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Django 5.1's default: make_password("TestPass123", salt="abcdefghijklmnop"), computed
    /// with Python's hashlib.pbkdf2_hmac("sha256", ..., 870000) and base64.b64encode.
    const DJANGO_870K: &str =
        "pbkdf2_sha256$870000$abcdefghijklmnop$5sPCBNslzeC0wdCjpM7oY2Y9s4jCxKmMvuDLCBGiZhQ=";
    /// The same password and salt with 1000 iterations (Python, as above).
    const DJANGO_1000: &str =
        "pbkdf2_sha256$1000$abcdefghijklmnop$lVrs+xQc/koY8RyFYI4yStV3rpLN9BGn5QPfeITgb7s=";

    #[test]
    fn django_default_hash_verifies() {
        assert_eq!(verify_pbkdf2_sha256("TestPass123", DJANGO_870K), Some(true));
    }

    #[test]
    fn small_iteration_vector_verifies_and_rejects_wrong_passwords() {
        assert_eq!(verify_pbkdf2_sha256("TestPass123", DJANGO_1000), Some(true));
        assert_eq!(
            verify_pbkdf2_sha256("TestPass124", DJANGO_1000),
            Some(false)
        );
        assert_eq!(
            verify_pbkdf2_sha256("testpass123", DJANGO_1000),
            Some(false)
        );
        assert_eq!(verify_pbkdf2_sha256("", DJANGO_1000), Some(false));
    }

    #[test]
    fn encoding_matches_django() {
        assert_eq!(
            encode_pbkdf2_sha256("TestPass123", "abcdefghijklmnop", 1000),
            DJANGO_1000
        );
        // Non-ASCII passwords are hashed as UTF-8, like Django's force_bytes (Python value).
        assert_eq!(
            encode_pbkdf2_sha256("pässwörd", "saltsalt", 1),
            "pbkdf2_sha256$1$saltsalt$0XxifY1qyjq/GRN8Wp3hwEGty0vAMsS463pxlCqU37g="
        );
        let h = encode_pbkdf2_sha256("pässwörd", "saltsalt", 3);
        assert_eq!(verify_pbkdf2_sha256("pässwörd", &h), Some(true));
        assert_eq!(verify_pbkdf2_sha256("passwort", &h), Some(false));
    }

    #[test]
    fn the_iteration_count_is_read_from_the_string() {
        let h = encode_pbkdf2_sha256("TestPass123", "salt", 2);
        assert_eq!(verify_pbkdf2_sha256("TestPass123", &h), Some(true));
        // Same key, claimed with another count: no match.
        let other = h.replacen("$2$", "$3$", 1);
        assert_eq!(verify_pbkdf2_sha256("TestPass123", &other), Some(false));
    }

    #[test]
    fn malformed_strings_are_not_pbkdf2() {
        let key = "lVrs+xQc/koY8RyFYI4yStV3rpLN9BGn5QPfeITgb7s=";
        for bad in [
            String::new(),
            "pbkdf2_sha256".to_string(),
            "pbkdf2_sha256$1000$abcdefghijklmnop".to_string(),
            format!("pbkdf2_sha256$1000$abcdefghijklmnop${key}$extra"),
            format!("pbkdf2_sha256$$abcdefghijklmnop${key}"),
            format!("pbkdf2_sha256$0$abcdefghijklmnop${key}"),
            format!("pbkdf2_sha256$-5$abcdefghijklmnop${key}"),
            format!("pbkdf2_sha256$+1000$abcdefghijklmnop${key}"),
            format!("pbkdf2_sha256$10000001$abcdefghijklmnop${key}"),
            format!("pbkdf2_sha256$99999999999999999999$abcdefghijklmnop${key}"),
            format!("pbkdf2_sha256$1000$${key}"),
            "pbkdf2_sha256$1000$abcdefghijklmnop$not base64!".to_string(),
            // Valid base64, wrong length (31 and 64 bytes).
            format!(
                "pbkdf2_sha256$1000$abcdefghijklmnop${}",
                STANDARD.encode([0u8; 31])
            ),
            format!(
                "pbkdf2_sha256$1000$abcdefghijklmnop${}",
                STANDARD.encode([0u8; 64])
            ),
            format!("pbkdf2_sha1$1000$abcdefghijklmnop${key}"),
            format!("PBKDF2_SHA256$1000$abcdefghijklmnop${key}"),
            "md5$salt$0123456789abcdef0123456789abcdef".to_string(),
        ] {
            assert_eq!(verify_pbkdf2_sha256("TestPass123", &bad), None, "{bad}");
            assert_ne!(classify(&bad), HashKind::Pbkdf2Sha256, "{bad}");
        }
    }

    #[test]
    fn the_largest_accepted_count_is_the_limit() {
        let at_limit = format!(
            "pbkdf2_sha256${MAX_ITERATIONS}$s${}",
            STANDARD.encode([0u8; 32])
        );
        assert_eq!(classify(&at_limit), HashKind::Pbkdf2Sha256);
    }

    #[test]
    fn unusable_passwords() {
        assert!(is_unusable("!"));
        assert!(is_unusable("!q8VbLdDMbDPMqmVYnJBF5g3JhUqyTLQ0IXmvWSdp"));
        assert!(!is_unusable(DJANGO_1000));
        assert!(!is_unusable(""));
        assert_eq!(classify("!abc"), HashKind::Unusable);
        assert_eq!(classify("!md5"), HashKind::Unusable);
        assert_eq!(classify(""), HashKind::Unusable);
    }

    #[test]
    fn classification_of_django_and_gatehouse_strings() {
        let unsupported = |s: &str| HashKind::Unsupported(s.to_string());
        assert_eq!(classify(DJANGO_1000), HashKind::Pbkdf2Sha256);
        assert_eq!(
            classify("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA"),
            HashKind::Argon2
        );
        assert_eq!(classify(PBKDF2_SHA1_1000), HashKind::Pbkdf2Sha1);
        assert_eq!(classify(ARGON2ID_SMALL), HashKind::DjangoArgon2);
        assert_eq!(classify(ARGON2I_V19), HashKind::DjangoArgon2);
        assert_eq!(classify(BCRYPT_SHA256_4), HashKind::BcryptSha256);
        assert_eq!(classify(BCRYPT_4), HashKind::Bcrypt);
        assert_eq!(classify(SCRYPT_SMALL), HashKind::Scrypt);
        // Damaged strings of supported algorithms are named by their algorithm.
        assert_eq!(
            classify("bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuuVqI1"),
            unsupported("bcrypt_sha256")
        );
        assert_eq!(
            classify("argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA"),
            unsupported("argon2")
        );
        assert_eq!(classify("crypt$$ab1234567890"), unsupported("crypt"));
        assert_eq!(
            classify("md5$salt$0123456789abcdef0123456789abcdef"),
            unsupported("md5")
        );
        assert_eq!(
            classify("sha1$salt$0123456789abcdef0123456789abcdef01234567"),
            unsupported("sha1")
        );
        assert_eq!(
            classify("0123456789abcdef0123456789abcdef"),
            unsupported("unsalted_md5")
        );
        // A damaged pbkdf2_sha256 string is named by its algorithm, not accepted.
        assert_eq!(
            classify("pbkdf2_sha256$0$salt$AAAA"),
            unsupported("pbkdf2_sha256")
        );
        // Nothing of the hash itself is repeated: a plaintext-looking value names no algorithm.
        assert_eq!(classify("hunter2"), unsupported("unknown"));
        assert_eq!(classify("we ird$x"), unsupported("unknown"));
    }

    // Vectors written by Django 5.0's own hashers (django.contrib.auth.hashers, argon2-cffi
    // 25.1, bcrypt 5.0), for "TestPass123" unless named otherwise. Low costs keep the
    // unoptimized test build fast; one default-cost vector of each checks Django's defaults
    // (verified once: 720,000 PBKDF2 iterations take seconds in this build).
    const PBKDF2_SHA1_1000: &str = "pbkdf2_sha1$1000$abcdefghijklmnop$AR2RwXrFEhlEjKKMlqCLvwZs+Mo=";
    const PBKDF2_SHA1_DEFAULT: &str =
        "pbkdf2_sha1$720000$abcdefghijklmnop$SnMZ3AK3FgXU11C0kspfXGw60j8=";
    /// "pässwörd", salt "saltsalt", 3 iterations.
    const PBKDF2_SHA1_UNICODE: &str = "pbkdf2_sha1$3$saltsalt$bqPqMXAWdOk9P/nfLYGf478dJ9Q=";
    /// Argon2PasswordHasher with time_cost 1, memory_cost 64, parallelism 2.
    const ARGON2ID_SMALL: &str =
        "argon2$argon2id$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8";
    /// Argon2PasswordHasher's defaults (Django 4.0+: argon2id, m=102400, t=2, p=8).
    const ARGON2ID_DEFAULT: &str =
        "argon2$argon2id$v=19$m=102400,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcA$LTlRDQGKTCwpgCUpvWLGztaGmIUdJo+sF23FbDzhJHA";
    /// Django 1.10-3.2's argon2i (m=512, t=2, p=2), from argon2-cffi's low-level API.
    const ARGON2I_V19: &str =
        "argon2$argon2i$v=19$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcA$v2dMZUEyPvszvsQR+f/BSw";
    /// The same as version 1.0 (0x10), written with `v=16` and (older still) without `v=`;
    /// Django's verify() accepts both.
    const ARGON2I_V16: &str =
        "argon2$argon2i$v=16$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcA$U6dNehVYVAOF80XOpUe9zA";
    const ARGON2I_NO_VERSION: &str =
        "argon2$argon2i$m=512,t=2,p=2$YWJjZGVmZ2hpamtsbW5vcA$U6dNehVYVAOF80XOpUe9zA";
    /// BCryptSHA256PasswordHasher / BCryptPasswordHasher with rounds = 4, and the default 12.
    const BCRYPT_SHA256_4: &str =
        "bcrypt_sha256$$2b$04$ZaIkHZtUryg60WnsImt5qubn6USlySWl9THE9Vo2fVXhn9AQHWW/e";
    const BCRYPT_4: &str = "bcrypt$$2b$04$/rVUC2Ubiz7n.A1nU6PEEuav6sZ1FUxxH5z3ldLFlthZKDwcrcGV6";
    const BCRYPT_SHA256_12: &str =
        "bcrypt_sha256$$2b$12$jbsel.OGFIrX0U1ALW7trudPItRwH/hxGlsfRDKaeMxC9OoZ9bOhW";
    const BCRYPT_12: &str = "bcrypt$$2b$12$yXjy68.wny.7OCQ8diHkMuwkgLKfA5LYOOZzkMqE90nly19Rmom0y";
    /// bcrypt_sha256 (rounds 4) of 80 "x": the SHA-256 step means nothing is truncated.
    const BCRYPT_SHA256_LONG: &str =
        "bcrypt_sha256$$2b$04$grhL5BLzIUU1A8QKX6x5i./dakbHctgcgXFM/O7fY6lLOq9FfGbdy";
    /// bcrypt_sha256 (rounds 4) of "pässwörd".
    const BCRYPT_SHA256_UNICODE: &str =
        "bcrypt_sha256$$2b$04$CqaPr23TzSR7ioSCN5SLee2Jyiidnxbd6QRM551FPB32o9TyweJzW";
    /// ScryptPasswordHasher.encode(salt="abcdefghijklmnop", n=16, r=2, p=1), the default
    /// (n=2^14, r=8, p=1) and n=32, r=1, p=2.
    const SCRYPT_SMALL: &str = "scrypt$16$abcdefghijklmnop$2$1$URtyT3Yz6mCeR7VdukQvF+Yhns3g39ZANp596i9taCPwKzQ+bS7HhT9BSQYnfPgaeERvYp7sTgXEXSzpScv5XA==";
    const SCRYPT_DEFAULT: &str = "scrypt$16384$abcdefghijklmnop$8$1$NjpuPZ5bF+KPPm02XbuI0z42/vq4R/QUSzJsMuc8h0P2McBSefw11T4se3lHfMNG/M3+lOPOQ4sxYHCwAdeNiA==";
    const SCRYPT_P2: &str = "scrypt$32$abcdefghijklmnop$1$2$tgwtIRGgNTeexFB42OdJpNAtR6lxUA7H1LP4DWmLHqJQJuoUH3yhKGCg9eBbgw2I0BthPvU36EqYBT8Jolzz5Q==";

    /// `encoded` verifies `password` and nothing close to it.
    #[track_caller]
    fn verifies_only(encoded: &str, password: &str) {
        assert_eq!(verify(password, encoded), Some(true), "{encoded}");
        let mut upper = password.to_string();
        upper.replace_range(0..1, &password[0..1].to_ascii_uppercase());
        let mut near = vec![
            String::new(),
            format!("{password}x"),
            password[..password.len() - 1].to_string(),
        ];
        if upper != password {
            near.push(upper);
        } else {
            near.push(password.to_ascii_lowercase());
        }
        for wrong in near {
            assert_eq!(verify(&wrong, encoded), Some(false), "{encoded} {wrong:?}");
        }
    }

    #[test]
    fn pbkdf2_sha1_vectors() {
        verifies_only(PBKDF2_SHA1_1000, "TestPass123");
        assert_eq!(verify("TestPass123", PBKDF2_SHA1_DEFAULT), Some(true));
        assert_eq!(verify("pässwörd", PBKDF2_SHA1_UNICODE), Some(true));
        assert_eq!(verify("passwort", PBKDF2_SHA1_UNICODE), Some(false));
        // Neither hasher takes the other's string.
        assert_eq!(verify_pbkdf2_sha256("TestPass123", PBKDF2_SHA1_1000), None);
        let as_sha256 = PBKDF2_SHA1_1000.replacen("pbkdf2_sha1", PBKDF2_SHA256, 1);
        assert_eq!(verify("TestPass123", &as_sha256), None, "a 20-byte key");
    }

    #[test]
    fn argon2_vectors() {
        verifies_only(ARGON2ID_SMALL, "TestPass123");
        assert_eq!(verify("TestPass123", ARGON2ID_DEFAULT), Some(true));
        verifies_only(ARGON2I_V19, "TestPass123");
        verifies_only(ARGON2I_V16, "TestPass123");
        verifies_only(ARGON2I_NO_VERSION, "TestPass123");
        // The version is part of the hash: the 1.3 string with the 1.0 claim does not match.
        let claimed_v16 = ARGON2I_V19.replacen("v=19", "v=16", 1);
        assert_eq!(verify("TestPass123", &claimed_v16), Some(false));
        // So is the variant.
        let as_id = ARGON2I_V19.replacen("argon2i$", "argon2id$", 1);
        assert_eq!(verify("TestPass123", &as_id), Some(false));
        // gatehouse's own PHC string is not Django's (no `argon2` in front).
        assert_eq!(verify("TestPass123", &ARGON2ID_SMALL[6..]), None);
    }

    #[test]
    fn bcrypt_vectors() {
        verifies_only(BCRYPT_SHA256_4, "TestPass123");
        verifies_only(BCRYPT_4, "TestPass123");
        assert_eq!(verify("TestPass123", BCRYPT_SHA256_12), Some(true));
        assert_eq!(verify("TestPass123", BCRYPT_12), Some(true));
        let long = "x".repeat(80);
        assert_eq!(verify(&long, BCRYPT_SHA256_LONG), Some(true));
        assert_eq!(verify(&"x".repeat(79), BCRYPT_SHA256_LONG), Some(false));
        assert_eq!(verify(&"x".repeat(72), BCRYPT_SHA256_LONG), Some(false));
        assert_eq!(verify("pässwörd", BCRYPT_SHA256_UNICODE), Some(true));
        assert_eq!(verify("passwörd", BCRYPT_SHA256_UNICODE), Some(false));
        // One hasher's string under the other's name: the SHA-256 step differs.
        let swapped = BCRYPT_SHA256_4.replacen("bcrypt_sha256$", "bcrypt$", 1);
        assert_eq!(verify("TestPass123", &swapped), Some(false));
        // $2a$ and $2y$ (older libraries) are the same function as $2b$ for these passwords.
        for variant in ["2a", "2y"] {
            let v = BCRYPT_4.replacen("$2b$", &format!("${variant}$"), 1);
            assert_eq!(verify("TestPass123", &v), Some(true), "{v}");
        }
    }

    #[test]
    fn scrypt_vectors() {
        verifies_only(SCRYPT_SMALL, "TestPass123");
        assert_eq!(verify("TestPass123", SCRYPT_DEFAULT), Some(true));
        verifies_only(SCRYPT_P2, "TestPass123");
        // The parameters are read from the string.
        let other_r = SCRYPT_SMALL.replacen("$2$1$", "$3$1$", 1);
        assert_eq!(verify("TestPass123", &other_r), Some(false));
    }

    #[test]
    fn absurd_costs_and_damaged_strings_are_not_hashes() {
        let b64_20 = STANDARD.encode([0u8; 20]);
        let b64_64 = STANDARD.encode([0u8; 64]);
        let bcrypt_tail = &BCRYPT_4["bcrypt$$2b$04$".len()..];
        for bad in [
            // PBKDF2-SHA1
            format!("pbkdf2_sha1$0$salt${b64_20}"),
            format!("pbkdf2_sha1$10000001$salt${b64_20}"),
            format!("pbkdf2_sha1$1000$${b64_20}"),
            format!("pbkdf2_sha1$1000$salt${}", STANDARD.encode([0u8; 32])),
            "pbkdf2_sha1$1000$salt".to_string(),
            // Argon2: memory, work, lanes beyond the limits; bad variant, version, salt, hash.
            "argon2$argon2id$v=19$m=2097152,t=1,p=1$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2id$v=19$m=1048576,t=5,p=1$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2id$v=19$m=65536,t=1,p=65$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2x$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2id$v=18$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2id$v=19$m=64,t=1,p=2$c2FsdA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2id$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA".to_string(),
            "argon2$argon2id$v=19$m=64,t=0,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$argon2id$v=19$m=64,t=1,p=2,keyid=YQ$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2$$argon2id$v=19$m=64,t=1,p=2$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8".to_string(),
            "argon2".to_string(),
            // bcrypt: cost beyond the limit or below bcrypt's minimum, bad variant, length.
            format!("bcrypt$$2b$17${bcrypt_tail}"),
            format!("bcrypt$$2b$31${bcrypt_tail}"),
            format!("bcrypt_sha256$$2b$03${bcrypt_tail}"),
            format!("bcrypt$$2b$4${bcrypt_tail}"),
            format!("bcrypt$$2c$04${bcrypt_tail}"),
            format!("bcrypt$$2b$04${}", &bcrypt_tail[1..]),
            format!("bcrypt$$2b$04${bcrypt_tail}x"),
            format!("bcrypt$$2b$04${}!", &bcrypt_tail[1..]),
            format!("bcrypt$2b$04${bcrypt_tail}"),
            format!("bcrypt$$2b$04${bcrypt_tail}$"),
            // scrypt: n not a power of two, memory or work beyond the limits, key length.
            format!("scrypt$15$salt$2$1${b64_64}"),
            format!("scrypt$1$salt$2$1${b64_64}"),
            format!("scrypt$1048576$salt$8$1${b64_64}"),
            format!("scrypt$16384$salt$8$129${b64_64}"),
            format!("scrypt$16$salt$0$1${b64_64}"),
            format!("scrypt$16$salt$2$0${b64_64}"),
            format!("scrypt$16$$2$1${b64_64}"),
            format!("scrypt$16$salt$2$1${b64_20}"),
            format!("scrypt$16$salt$2$1${b64_64}$x"),
            format!("scrypt$+16$salt$2$1${b64_64}"),
        ] {
            assert_eq!(verify("TestPass123", &bad), None, "{bad}");
            assert!(!classify(&bad).is_django(), "{bad}");
            let name = match bad.split_once('$') {
                Some((name, _)) => name,
                None => "unknown",
            };
            assert_eq!(classify(&bad), HashKind::Unsupported(name.into()), "{bad}");
        }
    }

    #[test]
    fn the_largest_accepted_costs_are_the_limits() {
        let tail = &BCRYPT_4["bcrypt$$2b$04$".len()..];
        assert_eq!(
            classify(&format!("bcrypt$$2b${MAX_BCRYPT_COST}${tail}")),
            HashKind::Bcrypt
        );
        let b64_64 = STANDARD.encode([0u8; 64]);
        // 128 * 2^18 * 8 bytes = 256 MiB; 2^18 * 8 * 8 = 2^24.
        assert_eq!(
            classify(&format!("scrypt$262144$salt$8$8${b64_64}")),
            HashKind::Scrypt
        );
        let argon = |m: u32, t: u32, p: u32| {
            format!("argon2$argon2id$v=19$m={m},t={t},p={p}$YWJjZGVmZ2hpamtsbW5vcA$P4au0PxgLM4frItTZSNWVe+xT6S6+JZbydAGogZrev8")
        };
        assert_eq!(
            classify(&argon(MAX_ARGON2_MEMORY_KIB, 4, 1)),
            HashKind::DjangoArgon2
        );
        assert_eq!(
            classify(&argon(65536, 1, MAX_ARGON2_LANES)),
            HashKind::DjangoArgon2
        );
    }

    #[test]
    fn the_general_verify_covers_pbkdf2_sha256() {
        verifies_only(DJANGO_1000, "TestPass123");
        assert_eq!(
            verify(
                "TestPass123",
                "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaA"
            ),
            None
        );
        assert_eq!(
            verify("TestPass123", "md5$salt$0123456789abcdef0123456789abcdef"),
            None
        );
        assert_eq!(verify("", ""), None);
        assert_eq!(verify("", "!"), None);
    }
}
