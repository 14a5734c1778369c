//! Refresh-token families: the pure decision of what one refresh (or logout) does to a
//! family record. The store applies it with a compare-and-swap and retries on a race.

use crate::store::Family;

/// What presenting refresh token `jti` of family `family` leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Mint a refresh token with jti `issue`; write `record` first.
    Rotate { record: Family, issue: String },
    /// A racing client replays the parent within the grace period: hand out the current
    /// child again (same jti), write nothing.
    Replay { issue: String },
    /// A rotated-out token came back: the family is compromised. Write `record` (revoked).
    Revoke { record: Family },
    /// Already revoked (logout or an earlier reuse).
    Blacklisted,
}

/// The record of a family that was never rotated: its root token is current.
pub fn implicit_root(family: &str, user_id: u64, expires_at: u64) -> Family {
    Family {
        user_id,
        current: family.to_string(),
        parent: None,
        rotated_at: 0,
        revoked: false,
        expires_at,
        created: 0,
        client_ip: String::new(),
        user_agent: String::new(),
    }
}

/// The refresh token a client presented.
pub struct Presented<'a> {
    pub family: &'a str,
    pub jti: &'a str,
    pub user_id: u64,
}

/// Rotation with reuse detection (as Supabase Auth and Auth0 do): `new_jti` and `new_expiry`
/// describe the token minted if this step rotates.
pub fn rotate(
    record: Option<&Family>,
    presented: &Presented<'_>,
    now: u64,
    grace: u64,
    new_jti: String,
    new_expiry: u64,
) -> Step {
    let Presented {
        family,
        jti,
        user_id,
    } = *presented;
    let current = record
        .cloned()
        .unwrap_or_else(|| implicit_root(family, user_id, new_expiry));
    if current.revoked {
        return Step::Blacklisted;
    }
    if jti == current.current {
        return Step::Rotate {
            record: Family {
                user_id,
                current: new_jti.clone(),
                parent: Some(jti.to_string()),
                rotated_at: now,
                revoked: false,
                expires_at: new_expiry,
                // The device stays the one the family was minted on.
                ..current
            },
            issue: new_jti,
        };
    }
    let in_grace = now.saturating_sub(current.rotated_at) <= grace;
    if current.parent.as_deref() == Some(jti) && in_grace {
        return Step::Replay {
            issue: current.current,
        };
    }
    Step::Revoke {
        record: Family {
            revoked: true,
            ..current
        },
    }
}

/// Logout: the family is revoked, whichever of its tokens is presented.
pub fn revoke(
    record: Option<&Family>,
    family: &str,
    user_id: u64,
    expires_at: u64,
) -> Option<Family> {
    let current = record
        .cloned()
        .unwrap_or_else(|| implicit_root(family, user_id, expires_at));
    if current.revoked {
        return None;
    }
    Some(Family {
        revoked: true,
        ..current
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(record: Option<&Family>, jti: &str, now: u64) -> Step {
        let presented = Presented {
            family: "root",
            jti,
            user_id: 1,
        };
        rotate(record, &presented, now, 10, format!("n{now}"), now + 100)
    }

    #[test]
    fn root_rotates_then_parent_replays_in_grace_only() {
        let Step::Rotate { record, issue } = step(None, "root", 100) else {
            panic!("root must rotate");
        };
        assert_eq!(
            (issue.as_str(), record.parent.as_deref()),
            ("n100", Some("root"))
        );
        assert_eq!(
            step(Some(&record), "root", 105),
            Step::Replay {
                issue: "n100".into()
            }
        );
        assert!(matches!(
            step(Some(&record), "root", 111),
            Step::Revoke { .. }
        ));
        assert!(matches!(
            step(Some(&record), "n100", 111),
            Step::Rotate { .. }
        ));
    }

    #[test]
    fn older_ancestors_revoke_and_revoked_stays_blacklisted() {
        let Step::Rotate { record: r1, .. } = step(None, "root", 100) else {
            panic!("rotate");
        };
        let Step::Rotate { record: r2, .. } = step(Some(&r1), "n100", 101) else {
            panic!("rotate");
        };
        // "root" is a grandparent now: reuse, even inside the grace period.
        let Step::Revoke { record: dead } = step(Some(&r2), "root", 102) else {
            panic!("grandparent reuse must revoke");
        };
        assert!(dead.revoked);
        assert_eq!(step(Some(&dead), "n101", 103), Step::Blacklisted);
    }

    #[test]
    fn logout_revokes_once() {
        let r = revoke(None, "root", 1, 50).expect("revoked");
        assert!(r.revoked);
        assert_eq!(revoke(Some(&r), "root", 1, 50), None);
    }
}
