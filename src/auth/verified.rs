//! Access tokens already verified, kept until they expire (as Envoy's `jwt_authn` keeps them,
//! `jwt_cache_config`): a client's repeated token costs one lookup instead of a signature
//! check. Only what passed `Tokens::verify` is kept, so forged tokens cannot push good ones
//! out; a hit compares every byte of the token, never a hash alone. User state (revocation,
//! deactivation, ended devices) is still checked on every request by the caller.

use super::tokens::{TokenError, TokenType, Tokens, Verified};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// Tokens longer than this are verified every time rather than kept (a slot holds at most
/// this many bytes, so the cache's memory is bounded by `slots × MAX_CACHED_TOKEN`).
pub const MAX_CACHED_TOKEN: usize = 1024;

struct Entry {
    token: Box<str>,
    claims: Arc<Verified>,
}

/// A direct-mapped table: a token's slot comes from a keyed hash of its signature (random
/// per process, so nobody can aim tokens at one slot), and a new valid token takes the slot
/// from whoever held it. Each slot has its own lock, held for a compare or a swap only.
pub struct VerifiedTokens {
    slots: Box<[Mutex<Option<Entry>>]>,
    hasher: RandomState,
}

impl VerifiedTokens {
    /// `slots` = 0 turns the cache off: every token is verified.
    pub fn new(slots: usize) -> VerifiedTokens {
        VerifiedTokens {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            hasher: RandomState::new(),
        }
    }

    /// An access token's claims: from the cache when this very token passed before and has
    /// not expired since, otherwise from `tokens.verify` (and kept when it passes).
    pub fn access(&self, tokens: &Tokens, token: &str) -> Result<Arc<Verified>, TokenError> {
        let now = crate::clock::now();
        let Some(slot) = self.slot(token) else {
            return tokens.verify(token, Some(TokenType::Access)).map(Arc::new);
        };
        {
            let held = slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = held.as_ref().filter(|e| *e.token == *token) {
                if !expired(entry.claims.exp, now, tokens.leeway()) {
                    return Ok(Arc::clone(&entry.claims));
                }
            }
        }
        let claims = Arc::new(tokens.verify(token, Some(TokenType::Access))?);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Entry {
            token: token.into(),
            claims: Arc::clone(&claims),
        });
        Ok(claims)
    }

    /// The slot a token may live in; `None` when the cache is off or the token too long.
    fn slot(&self, token: &str) -> Option<&Mutex<Option<Entry>>> {
        if self.slots.is_empty() || token.len() > MAX_CACHED_TOKEN {
            return None;
        }
        // The signature (after the last dot) differs between any two tokens the keys signed.
        let tail = token.rsplit('.').next().unwrap_or(token);
        let index = self.hasher.hash_one(tail) as usize % self.slots.len();
        self.slots.get(index)
    }
}

/// `Tokens::verify`'s own rule: past `exp` by more than the leeway.
fn expired(exp: u64, now: u64, leeway: u64) -> bool {
    exp < now.saturating_sub(leeway)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(b"a secret of thirty-two bytes....", 300, 86_400, 0)
    }

    fn issued(t: &Tokens, kind: TokenType, user: u64) -> String {
        match t.issue(kind, user, 0, false, None, None) {
            Ok(issued) => issued.token,
            Err(e) => panic!("cannot sign: {e}"),
        }
    }

    fn access(t: &Tokens, user: u64) -> String {
        issued(t, TokenType::Access, user)
    }

    #[test]
    fn a_repeated_token_is_answered_from_the_cache_with_the_same_claims() {
        let t = tokens();
        let cache = VerifiedTokens::new(16);
        let token = access(&t, 7);
        let first = cache.access(&t, &token).map_err(|e| e.message());
        let second = cache.access(&t, &token).map_err(|e| e.message());
        let (Ok(first), Ok(second)) = (first, second) else {
            panic!("a valid token is refused");
        };
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second call verified again"
        );
        assert_eq!(first.user_id, 7);
    }

    #[test]
    fn forged_tokens_are_never_kept_and_do_not_push_a_good_one_out() {
        let t = tokens();
        let cache = VerifiedTokens::new(1);
        let good = access(&t, 1);
        let Ok(kept) = cache.access(&t, &good) else {
            panic!("a valid token is refused");
        };
        for i in 0..100 {
            let mut forged = good.clone();
            forged.push_str(&format!("x{i}"));
            assert!(cache.access(&t, &forged).is_err());
        }
        // A token differing from the cached one in one byte of its payload, same signature:
        // the slot matches, the bytes do not, and verification refuses it.
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        let swap = if parts[1].starts_with('e') { "f" } else { "e" };
        parts[1].replace_range(0..1, swap);
        assert!(cache.access(&t, &parts.join(".")).is_err());
        let Ok(again) = cache.access(&t, &good) else {
            panic!("the good token is refused after the flood");
        };
        assert!(
            Arc::ptr_eq(&kept, &again),
            "a forged token replaced the good one"
        );
    }

    #[test]
    fn an_expired_entry_is_refused_as_verify_refuses_it() {
        assert!(!expired(100, 100, 0));
        assert!(expired(99, 100, 0));
        assert!(!expired(99, 100, 5));
        assert!(expired(94, 100, 5));
    }

    #[test]
    fn off_long_and_refresh_tokens_are_verified_every_time() {
        let t = tokens();
        let off = VerifiedTokens::new(0);
        let token = access(&t, 3);
        let (Ok(a), Ok(b)) = (off.access(&t, &token), off.access(&t, &token)) else {
            panic!("a valid token is refused");
        };
        assert!(!Arc::ptr_eq(&a, &b));
        let on = VerifiedTokens::new(8);
        let refresh = issued(&t, TokenType::Refresh, 3);
        assert_eq!(
            on.access(&t, &refresh).err(),
            Some(TokenError::WrongType),
            "a refresh token passed as access"
        );
    }
}
