//! Reset and verification tokens, djoser's way: `uid` is Django's `urlsafe_base64_encode` of
//! the user id, the token an HMAC over what the token must die with (the password hash, the
//! last login, the address) and its timestamp. Never stored: any replica with the same
//! secret material checks it, and using it (a new password, a verified address) or a later
//! login changes what it was made over.

use crate::store::User;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Hex characters of the MAC a token carries (128 bits).
const MAC_HEX_LEN: usize = 32;
/// A timestamp this far ahead of the clock still counts (clock skew between replicas).
const FUTURE_SKEW_SECONDS: u64 = 60;

/// What a token is for: a reset token never verifies an address, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    VerifyEmail,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::PasswordReset => b"password-reset",
            Purpose::VerifyEmail => b"verify-email",
        }
    }
}

/// Django's `urlsafe_base64_encode(force_bytes(pk))`: the decimal id, base64url, no padding.
pub fn encode_uid(id: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

/// The id a `uid` names (`None`: not one of ours). Padding is tolerated, as Django does.
pub fn decode_uid(uid: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(uid.trim_end_matches('='))
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().map(|&b| char::from(b)).collect()
}

fn from_base36(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 13 {
        return None;
    }
    u64::from_str_radix(text, 36).ok()
}

/// Makes and checks tokens with a key of their own, derived from gatehouse's secret
/// material (never the JWT key itself).
pub struct MailTokens {
    key: [u8; 32],
    lifetime: u64,
}

impl MailTokens {
    /// What the link key is made with beside the material (versioned: a new label is a new key).
    const KEY_LABEL: &'static [u8] = b"gatehouse mail token key v1";

    pub fn new(material: &[u8], lifetime: u64) -> MailTokens {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(Self::KEY_LABEL)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(material);
        MailTokens {
            key: mac.finalize().into_bytes().into(),
            lifetime,
        }
    }

    fn mac(&self, purpose: Purpose, user: &User, timestamp: u64) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        // A verification link survives a login: a user who registers, logs in and then
        // opens the link must not find it dead. It is single-use through the verified flag
        // (a second use is "stale"), and dies with the address or the password.
        let last_login = match (purpose, user.last_login) {
            (Purpose::PasswordReset, Some(t)) => t.to_string(),
            _ => String::new(),
        };
        let (id, timestamp, email) = (
            user.id.to_string(),
            timestamp.to_string(),
            crate::store::name_key(&user.email),
        );
        let parts: [&[u8]; 6] = [
            purpose.label(),
            id.as_bytes(),
            user.password.as_bytes(),
            last_login.as_bytes(),
            timestamp.as_bytes(),
            email.as_bytes(),
        ];
        for part in parts {
            // Length-prefixed: no two different inputs run together into one.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let mut hex = hex::encode(mac.finalize().into_bytes());
        hex.truncate(MAC_HEX_LEN);
        hex
    }

    /// A token for `user` made at `now`: `<timestamp base36>-<mac>`.
    pub fn make(&self, purpose: Purpose, user: &User, now: u64) -> String {
        format!("{}-{}", base36(now), self.mac(purpose, user, now))
    }

    /// True when `token` was made for `user` in its present state, within the lifetime.
    pub fn check(&self, purpose: Purpose, user: &User, token: &str, now: u64) -> bool {
        let Some((ts, mac)) = token.split_once('-') else {
            return false;
        };
        let Some(ts) = from_base36(ts) else {
            return false;
        };
        if ts > now.saturating_add(FUTURE_SKEW_SECONDS) || now.saturating_sub(ts) > self.lifetime {
            return false;
        }
        let want = self.mac(purpose, user, ts);
        bool::from(want.as_bytes().ct_eq(mac.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: 7,
            username: "ann".into(),
            email: "ann@example.com".into(),
            first_name: String::new(),
            last_name: String::new(),
            password: "$argon2id$one".into(),
            is_active: true,
            is_staff: false,
            date_joined: 0,
            last_login: Some(100),
            deleted_at: None,
            token_version: 0,
            groups: Vec::new(),
            email_verified: false,
            ended: Vec::new(),
            is_service: false,
        }
    }

    #[test]
    fn uid_is_djangos_urlsafe_base64_of_the_id() {
        // Django: urlsafe_base64_encode(force_bytes(1)) == "MQ", (12345) == "MTIzNDU".
        assert_eq!(encode_uid(1), "MQ");
        assert_eq!(encode_uid(12345), "MTIzNDU");
        assert_eq!(decode_uid("MTIzNDU"), Some(12345));
        assert_eq!(decode_uid("MQ=="), Some(1));
        for bad in ["", "!!", "YWJj", "LTE", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM"] {
            assert_eq!(decode_uid(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_token_dies_with_what_it_was_made_over() {
        let t = MailTokens::new(b"secret material", 3600);
        let u = user();
        let token = t.make(Purpose::PasswordReset, &u, 1000);
        assert!(t.check(Purpose::PasswordReset, &u, &token, 1000));
        assert!(t.check(Purpose::PasswordReset, &u, &token, 4600));
        assert!(
            !t.check(Purpose::PasswordReset, &u, &token, 4601),
            "expired"
        );
        assert!(
            !t.check(Purpose::VerifyEmail, &u, &token, 1000),
            "other purpose"
        );
        let mut logged_in = u.clone();
        logged_in.last_login = Some(5000);
        let verify = t.make(Purpose::VerifyEmail, &u, 1000);
        assert!(
            t.check(Purpose::VerifyEmail, &logged_in, &verify, 1000),
            "a verification link survives a login"
        );
        let changes: [&dyn Fn(&mut User); 4] = [
            &|u| u.password = "$argon2id$two".into(),
            &|u| u.last_login = Some(2000),
            &|u| u.email = "new@example.com".into(),
            &|u| u.id = 8,
        ];
        for change in changes {
            let mut v = u.clone();
            change(&mut v);
            assert!(!t.check(Purpose::PasswordReset, &v, &token, 1000));
        }
        let other_key = MailTokens::new(b"other material", 3600);
        assert!(!other_key.check(Purpose::PasswordReset, &u, &token, 1000));
        for bad in ["", "-", "zzzzzzzzzzzzzzzzz-00", &token[..token.len() - 1]] {
            assert!(!t.check(Purpose::PasswordReset, &u, bad, 1000), "{bad}");
        }
        assert!(
            !t.check(
                Purpose::PasswordReset,
                &u,
                &t.make(Purpose::PasswordReset, &u, 5000),
                1000
            ),
            "made in the future"
        );
    }
}
