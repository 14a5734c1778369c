//! The second factor's arithmetic (SPEC §17), pure: RFC 6238 codes (SHA-1, 6 digits, 30 s
//! steps, one step of skew either way), which time step a typed code proves and whether that
//! step was used already, recovery codes, the `otpauth://` URI and its QR code, and the
//! sealing of secrets so that a copy of the store alone does not give them away. The clock
//! is passed in; nothing here reads or writes the store.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// RFC 6238's defaults, which every authenticator app understands.
pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one (clock drift, a code typed slowly).
pub const SKEW_STEPS: u64 = 1;
/// 160 bits, RFC 4226's recommended length for HMAC-SHA-1.
pub const SECRET_BYTES: usize = 20;
/// Recovery codes made at a time.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (shown as two groups of five): about 50 bits each.
const RECOVERY_CHARS: usize = 10;
/// No 0/o, 1/l/i: read off paper without doubt.
const RECOVERY_ALPHABET: &[u8; 31] = b"23456789abcdefghjkmnpqrstuvwxyz";

type HmacSha1 = Hmac<sha1::Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// The time step of unix time `now`.
pub fn step_at(now: u64) -> u64 {
    now / STEP_SECONDS
}

/// RFC 4226's HOTP value of `secret` at `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <HmacSha1 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The six-digit code of `secret` at time step `step`, as an app shows it.
pub fn code_at(secret: &[u8], step: u64) -> String {
    format!("{:06}", hotp(secret, step, DIGITS))
}

/// What a typed second-factor value is, before any secret is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Six digits (spaces and dashes between them are dropped, as apps show "123 456").
    Code(u32),
    /// A recovery code, normalised (lower case, no separators).
    Recovery(String),
    /// Neither: wrong length or characters.
    Malformed,
}

/// Longer input is not looked at (a recovery code is 11 characters with its dash).
const TYPED_MAX: usize = 64;

/// Reads what a user typed into the code field.
pub fn parse(typed: &str) -> Typed {
    if typed.len() > TYPED_MAX {
        return Typed::Malformed;
    }
    let kept: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if kept.len() == DIGITS as usize && kept.bytes().all(|b| b.is_ascii_digit()) {
        return kept.parse().map_or(Typed::Malformed, Typed::Code);
    }
    let lower = kept.to_ascii_lowercase();
    if lower.len() == RECOVERY_CHARS && lower.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
        return Typed::Recovery(lower);
    }
    Typed::Malformed
}

/// What a code proves against a secret whose steps up to `last_step` were used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code of this step, not used before: accept it, and no step up to it again.
    Fresh(u64),
    /// The code of a step already used (RFC 6238 §5.2): someone saw it, or it was sent twice.
    Replayed(u64),
    /// No step in the window has this code.
    Wrong,
}

/// Checks `code` against the steps around `now` (the current one first), newest first among
/// equals. Steps at or below `last_step` are replays.
pub fn check(secret: &[u8], code: u32, now: u64, last_step: u64) -> Verdict {
    let current = step_at(now);
    let mut replayed = None;
    for step in [
        current,
        current + SKEW_STEPS,
        current.saturating_sub(SKEW_STEPS),
    ] {
        // Constant-time comparison of the digits.
        let expected = hotp(secret, step, DIGITS);
        if subtle::ConstantTimeEq::ct_eq(&expected, &code).into() {
            if step > last_step {
                return Verdict::Fresh(step);
            }
            replayed = Some(step);
        }
    }
    replayed.map_or(Verdict::Wrong, Verdict::Replayed)
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as apps take it typed in: base32 without padding, in groups of four.
pub fn secret_text(secret: &[u8]) -> String {
    let b32 = data_encoding::BASE32_NOPAD.encode(secret);
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URI an app scans (Google Authenticator's key-URI format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, URI_PART).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        data_encoding::BASE32_NOPAD.encode(secret),
        enc(issuer),
    )
}

/// What is percent-encoded in a URI's label and issuer: everything but unreserved characters.
const URI_PART: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `uri` as a QR code, an SVG document (dark modules on white, with its quiet zone).
pub fn qr_svg(uri: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M)
        .map_err(|e| format!("cannot make a QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#1b1f24"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// `RECOVERY_CODES` new recovery codes, as shown: "abcde-fghjk".
pub fn new_recovery_codes() -> Vec<String> {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut code = String::with_capacity(RECOVERY_CHARS + 1);
            for i in 0..RECOVERY_CHARS {
                if i == RECOVERY_CHARS / 2 {
                    code.push('-');
                }
                let pick = rng.gen_range(0..RECOVERY_ALPHABET.len());
                code.push(char::from(RECOVERY_ALPHABET[pick]));
            }
            code
        })
        .collect()
}

/// Seals TOTP secrets and hashes recovery codes with a key of their own, derived from
/// gatehouse's secret material (as the mail links' key is): a copy of the store without the
/// secret gives neither away. With several replicas the material is the shared one, so every
/// replica derives the same key.
pub struct SecretBox {
    key: [u8; 32],
}

impl SecretBox {
    /// Versioned: a new label is a new key.
    const KEY_LABEL: &'static [u8] = b"gatehouse second factor key v1";
    const NONCE_BYTES: usize = 24;

    pub fn new(material: &[u8]) -> SecretBox {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(Self::KEY_LABEL)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(material);
        SecretBox {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.key).into())
    }

    /// `secret` encrypted and bound to `user_id` (a sealed secret moved to another user
    /// does not open): base64 of nonce ++ ciphertext.
    pub fn seal(&self, user_id: u64, secret: &[u8]) -> Result<String, String> {
        use base64::Engine;
        let mut nonce = [0u8; Self::NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = user_id.to_be_bytes();
        let sealed = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| "cannot seal a second-factor secret".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(out))
    }

    /// The secret `seal` sealed for `user_id`; `None` when it was sealed with another key,
    /// for another user, or damaged.
    pub fn open(&self, user_id: u64, sealed: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .ok()?;
        if bytes.len() <= Self::NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(Self::NONCE_BYTES);
        let nonce: [u8; Self::NONCE_BYTES] = nonce.try_into().ok()?;
        let aad = user_id.to_be_bytes();
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
    }

    /// What the store keeps of a recovery code (normalised by `parse`): a keyed hash, bound
    /// to the user, so a copy of the store cannot be searched for codes.
    pub fn recovery_hash(&self, user_id: u64, normalised: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(b"recovery\0");
        mac.update(&user_id.to_be_bytes());
        mac.update(normalised.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A pending sign-in step's id as the store keeps it (the browser holds the id).
    pub fn pending_hash(&self, id: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(b"pending\0");
        mac.update(id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: the 20-byte ASCII seed "12345678901234567890", eight
    /// digits, at the listed times.
    #[test]
    fn rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        for (time, expected) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(seed, step_at(time), 8), expected, "at {time}");
            // Six digits are the last six of the eight.
            assert_eq!(
                code_at(seed, step_at(time)),
                format!("{:06}", expected % 1_000_000)
            );
        }
    }

    #[test]
    fn a_code_is_fresh_once_in_the_window_and_a_replay_after() {
        let secret = new_secret();
        let now = 1_700_000_015;
        let step = step_at(now);
        let code = |s: u64| code_at(&secret, s).parse::<u32>().unwrap_or(u32::MAX);
        assert_eq!(check(&secret, code(step), now, 0), Verdict::Fresh(step));
        assert_eq!(
            check(&secret, code(step - 1), now, 0),
            Verdict::Fresh(step - 1)
        );
        assert_eq!(
            check(&secret, code(step + 1), now, 0),
            Verdict::Fresh(step + 1)
        );
        assert_eq!(check(&secret, code(step - 2), now, 0), Verdict::Wrong);
        assert_eq!(check(&secret, code(step + 2), now, 0), Verdict::Wrong);
        // Used: the same step again is a replay, and so is an older one.
        assert_eq!(
            check(&secret, code(step), now, step),
            Verdict::Replayed(step)
        );
        assert_eq!(
            check(&secret, code(step - 1), now, step),
            Verdict::Replayed(step - 1)
        );
        assert_eq!(
            check(&secret, code(step + 1), now, step),
            Verdict::Fresh(step + 1)
        );
    }

    #[test]
    fn typed_codes_are_read_strictly() {
        assert_eq!(parse("123456"), Typed::Code(123456));
        assert_eq!(parse(" 123 456 "), Typed::Code(123456));
        assert_eq!(parse("012345"), Typed::Code(12345));
        assert_eq!(parse("12345"), Typed::Malformed);
        assert_eq!(parse("1234567"), Typed::Malformed);
        assert_eq!(parse("12345a"), Typed::Malformed);
        assert_eq!(parse("１２３４５６"), Typed::Malformed);
        assert_eq!(parse(""), Typed::Malformed);
        assert_eq!(parse(&"1".repeat(10_000)), Typed::Malformed);
        assert_eq!(parse("ABCDE-FGHJK"), Typed::Recovery("abcdefghjk".into()));
        assert_eq!(
            parse("abcde-fghj0"),
            Typed::Malformed,
            "0 is not in the alphabet"
        );
        for code in new_recovery_codes() {
            assert_eq!(code.len(), 11, "{code}");
            assert!(matches!(parse(&code), Typed::Recovery(_)), "{code}");
        }
    }

    #[test]
    fn recovery_codes_are_ten_distinct() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
    }

    #[test]
    fn sealed_secrets_open_only_with_the_key_for_the_user() {
        let sealer = SecretBox::new(b"material");
        let secret = new_secret();
        let sealed = sealer.seal(7, &secret).expect("seals");
        assert!(!sealed.contains(&secret_text(&secret).replace(' ', "")));
        assert_eq!(sealer.open(7, &sealed), Some(secret.clone()));
        assert_eq!(sealer.open(8, &sealed), None, "bound to the user");
        assert_eq!(SecretBox::new(b"other").open(7, &sealed), None);
        assert_eq!(sealer.open(7, "not base64!"), None);
        assert_eq!(sealer.open(7, ""), None);
        assert_ne!(
            sealer.seal(7, &secret).ok(),
            Some(sealed),
            "a fresh nonce each time"
        );
        assert_ne!(
            sealer.recovery_hash(7, "abcdefghjk"),
            sealer.recovery_hash(8, "abcdefghjk")
        );
    }

    #[test]
    fn the_uri_and_qr_code_carry_the_secret() {
        let secret = b"12345678901234567890";
        let uri = otpauth_uri("Acme gate", "alice@example.com", secret);
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20gate:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20gate&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            secret_text(secret),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
        let svg = qr_svg(&uri).expect("a QR code");
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{svg:.80}"
        );
    }
}
