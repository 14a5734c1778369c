//! The API key's format (SPEC §19): `gk_` + 32 random bytes in base62 (43 characters) + a
//! 6-character base62 CRC-32 of everything before it, so secret scanners recognise a key and
//! a typo or a truncated paste is refused here, by a pure function, before any store or
//! cache read. The store keeps only the key's SHA-256 and its 8-character display prefix.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every key starts with.
pub const KEY_PREFIX: &str = "gk_";
/// Random bytes in a key.
const SECRET_BYTES: usize = 32;
/// Base62 characters of 32 bytes: ceil(256 / log2(62)).
const SECRET_CHARS: usize = 43;
/// Base62 characters of a CRC-32: 62^6 > 2^32.
const CHECKSUM_CHARS: usize = 6;
/// The whole key's length.
pub const KEY_LEN: usize = KEY_PREFIX.len() + SECRET_CHARS + CHECKSUM_CHARS;
/// The characters of a key shown in lists (the key's own first characters).
pub const DISPLAY_PREFIX_LEN: usize = 8;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key as made: the plaintext (shown once) with what the store keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    pub key: String,
    pub sha256: String,
    pub prefix: String,
}

impl std::fmt::Debug for NewKey {
    // Never the key itself, even in a test failure or a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a presented string is not a key (none of them needs the store to decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not `gk_` + 49 base62 characters.
    Shape,
    /// The checksum does not match: a typo, or not one of ours.
    Checksum,
}

/// A new random key.
pub fn generate() -> NewKey {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    from_secret(&secret)
}

/// The key of `secret` (deterministic: tests and `generate`).
pub fn from_secret(secret: &[u8; SECRET_BYTES]) -> NewKey {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    key.push_str(&base62(secret, SECRET_CHARS));
    let sum = base62(&crc32(key.as_bytes()).to_be_bytes(), CHECKSUM_CHARS);
    key.push_str(&sum);
    NewKey {
        sha256: hash(&key),
        prefix: display_prefix(&key),
        key,
    }
}

/// Checks `presented` is a well-formed key with a right checksum; its SHA-256 (what the
/// store is asked for) when it is.
pub fn parse(presented: &str) -> Result<String, Malformed> {
    // The length first: 10 kB of anything is refused without a look at its characters.
    if presented.len() != KEY_LEN {
        return Err(Malformed::Shape);
    }
    let Some(body) = presented.strip_prefix(KEY_PREFIX) else {
        return Err(Malformed::Shape);
    };
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::Shape);
    }
    let (head, sum) = presented.split_at(KEY_LEN - CHECKSUM_CHARS);
    if base62(&crc32(head.as_bytes()).to_be_bytes(), CHECKSUM_CHARS) != sum {
        return Err(Malformed::Checksum);
    }
    Ok(hash(presented))
}

/// Whether a presented credential looks like a key at all (`gk_`), before it is parsed.
pub fn looks_like_key(presented: &str) -> bool {
    presented.starts_with(KEY_PREFIX)
}

/// The SHA-256 of `key`, lower-case hex: what the store keeps and looks up.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The first characters of `key`, shown in lists to tell keys apart.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// `bytes` as a big-endian number in base62, left-padded with zeros to `width` characters.
fn base62(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while number.iter().any(|&b| b != 0) {
        // Long division of the whole number by 62; the remainder is the next digit.
        let mut rem = 0u32;
        for b in number.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            // acc < 62 * 256: both fit in a byte after the division.
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// CRC-32 (IEEE 802.3, as zlib and the secret scanners compute it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NewKey {
        from_secret(&[7u8; SECRET_BYTES])
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base62_pads_and_covers_the_widest_number() {
        assert_eq!(base62(&[0, 0], 3), "000");
        assert_eq!(base62(&[0, 61], 2), "0z");
        assert_eq!(base62(&[0, 62], 2), "10");
        assert_eq!(
            base62(&[0xFF; SECRET_BYTES], SECRET_CHARS).len(),
            SECRET_CHARS
        );
        assert_eq!(base62(&u32::MAX.to_be_bytes(), CHECKSUM_CHARS).len(), 6);
    }

    #[test]
    fn a_made_key_parses_to_its_hash() {
        let k = generate();
        assert_eq!(k.key.len(), KEY_LEN);
        assert!(k.key.starts_with("gk_") && looks_like_key(&k.key));
        assert_eq!(parse(&k.key), Ok(k.sha256.clone()));
        assert_eq!(k.sha256, hash(&k.key));
        assert_eq!(k.sha256.len(), 64);
        assert_eq!(k.prefix, k.key[..DISPLAY_PREFIX_LEN]);
        assert_ne!(generate().key, k.key, "random");
        // The smallest secret still makes a full-width key.
        assert_eq!(
            parse(&from_secret(&[0; SECRET_BYTES]).key).map(|h| h.len()),
            Ok(64)
        );
        assert!(
            !format!("{k:?}").contains(&k.key),
            "Debug never shows the key"
        );
    }

    #[test]
    fn a_flipped_character_is_refused() {
        let k = key().key;
        for i in KEY_PREFIX.len()..k.len() {
            let mut bytes = k.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let flipped = String::from_utf8(bytes).expect("ascii");
            assert_eq!(parse(&flipped), Err(Malformed::Checksum), "at {i}");
        }
        let upper = k.replacen("gk_", "GK_", 1);
        assert_eq!(parse(&upper), Err(Malformed::Shape));
    }

    #[test]
    fn a_wrong_checksum_is_refused() {
        let k = key().key;
        let (head, _) = k.split_at(KEY_LEN - CHECKSUM_CHARS);
        assert_eq!(parse(&format!("{head}000000")), Err(Malformed::Checksum));
    }

    #[test]
    fn truncated_padded_or_foreign_strings_are_refused() {
        let k = key().key;
        assert_eq!(parse(&k[..KEY_LEN - 1]), Err(Malformed::Shape));
        assert_eq!(parse(&format!("{k}0")), Err(Malformed::Shape));
        assert_eq!(parse(""), Err(Malformed::Shape));
        assert_eq!(parse("gk_"), Err(Malformed::Shape));
        let long = "A".repeat(10 * 1024);
        assert_eq!(parse(&long), Err(Malformed::Shape));
        assert_eq!(parse(&format!("gk_{long}")), Err(Malformed::Shape));
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl";
        assert_eq!(parse(jwt), Err(Malformed::Shape));
        // The right length, but not base62.
        let mut bytes = k.into_bytes();
        bytes[10] = b'-';
        let dashed = String::from_utf8(bytes).expect("ascii");
        assert_eq!(parse(&dashed), Err(Malformed::Shape));
        // Multi-byte characters of the right byte length do not slice a char in two.
        let wide = format!("gk_{}", "é".repeat((KEY_LEN - 3) / 2));
        assert!(parse(&wide).is_err());
    }
}
