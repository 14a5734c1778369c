//! Django's password hash strings, for users imported from the Django project: which kind a
//! stored string is, and verifying `pbkdf2_sha256$<iterations>$<salt>$<base64 key>` hashes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// The algorithm name Django writes in front of its default hasher's strings.
pub const PBKDF2_SHA256: &str = "pbkdf2_sha256";
/// Django's prefix for a password that can never match (`set_unusable_password`).
pub const UNUSABLE_PREFIX: char = '!';
/// More iterations than any Django release uses by far: such a string is damaged or hostile,
/// and verifying it would hold a hashing thread for minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// SHA-256's output: Django's key length for this hasher.
const KEY_LEN: usize = 32;

/// What a stored password string is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKind {
    /// gatehouse's own PHC string (`$argon2id$...`).
    Argon2,
    /// A well-formed Django `pbkdf2_sha256$...` hash.
    Pbkdf2Sha256,
    /// Django's `!...` (or an empty string): no password can match.
    Unusable,
    /// Anything else, named by its algorithm (`md5`, `bcrypt_sha256`, `argon2`, ...), or
    /// `unknown` when the string names none. A malformed `pbkdf2_sha256` string lands here
    /// as `pbkdf2_sha256`.
    Unsupported(String),
}

/// Django's `is_password_usable` inverted: the `!` prefix marks a password that never matches.
pub fn is_unusable(encoded: &str) -> bool {
    encoded.starts_with(UNUSABLE_PREFIX)
}

/// The parts of a well-formed `pbkdf2_sha256` string.
struct Pbkdf2<'a> {
    iterations: u32,
    salt: &'a str,
    key: [u8; KEY_LEN],
}

fn parse_pbkdf2_sha256(encoded: &str) -> Option<Pbkdf2<'_>> {
    let mut parts = encoded.split('$');
    let (algorithm, iterations, salt, key) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if algorithm != PBKDF2_SHA256 || parts.next().is_some() || salt.is_empty() {
        return None;
    }
    // Digits only: `u32::from_str` would also take a leading `+`.
    if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let iterations: u32 = iterations.parse().ok()?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return None;
    }
    let key: [u8; KEY_LEN] = STANDARD.decode(key).ok()?.try_into().ok()?;
    Some(Pbkdf2 {
        iterations,
        salt,
        key,
    })
}

fn derive(password: &str, salt: &str, iterations: u32) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    key
}

/// Checks `password` against a Django `pbkdf2_sha256` hash, comparing in constant time.
/// `None` when `encoded` is not such a hash (another algorithm, a damaged string, zero or
/// more than `MAX_ITERATIONS` iterations, a key that is not base64 of 32 bytes).
pub fn verify_pbkdf2_sha256(password: &str, encoded: &str) -> Option<bool> {
    let parsed = parse_pbkdf2_sha256(encoded)?;
    let derived = derive(password, parsed.salt, parsed.iterations);
    Some(derived.ct_eq(&parsed.key).into())
}

/// Django's `PBKDF2PasswordHasher.encode`: the string `make_password` stores.
pub fn encode_pbkdf2_sha256(password: &str, salt: &str, iterations: u32) -> String {
    let key = derive(password, salt, iterations);
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
    } else if parse_pbkdf2_sha256(encoded).is_some() {
        HashKind::Pbkdf2Sha256
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
        assert_eq!(
            classify("argon2$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHQ$aGFzaA"),
            unsupported("argon2")
        );
        assert_eq!(
            classify("bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuu5CUs0rdR3i9Qp2FqDE1pQ2GlUrVPtq"),
            unsupported("bcrypt_sha256")
        );
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
}
