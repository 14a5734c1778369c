// Token rules and revocation over real HTTP: the shape and lifetimes of issued tokens, forged and
// malformed tokens on the profile view, refresh / verify / logout, rotation with reuse detection,
// and revocation.
use crate::common;

use common::attacks::{self, forged_access_tokens};
use common::paths::{PASSWORD_CHANGE, PROFILE, REFRESH, VERIFY};
use common::*;
use serde_json::{json, Value};

/// Like `Resp::expect`, but returns a description of what is wrong instead of panicking.
fn mismatch(label: &str, r: &Resp, status: u16, body: &Value) -> Option<String> {
    (r.status != status || &r.json != body).then(|| {
        format!(
            "{label}: expected {status} {body}, got {} {}",
            r.status, r.text
        )
    })
}

#[test]
fn issued_tokens_have_the_simplejwt_shape() {
    let g = Gatehouse::new().start();
    let user = g.register("shape");
    let id = id_of(&user);
    let before = now();
    let (access, refresh_token) = g.login("shape", PASSWORD);
    let after = now();
    let secret = g.secret();
    for (token, kind, lifetime) in [(&access, "access", 300), (&refresh_token, "refresh", 86400)] {
        assert_eq!(
            header_of(token),
            json!({"alg": "HS256", "typ": "JWT"}),
            "{kind} header"
        );
        let c = claims(token);
        assert_eq!(c["token_type"], json!(kind), "{kind}: {c}");
        assert_eq!(
            c["user_id"],
            json!(id.to_string()),
            "{kind}: user_id is a string: {c}"
        );
        assert!(
            is_hex32(c["jti"].as_str().unwrap_or_default()),
            "{kind}: jti is 32 lowercase hex: {c}"
        );
        assert!(c["ver"].is_u64(), "{kind}: integer token version: {c}");
        let iat = c["iat"].as_u64().expect("integer iat");
        let exp = c["exp"].as_u64().expect("integer exp");
        assert!(
            before <= iat && iat <= after,
            "{kind}: iat {iat} not in [{before}, {after}]"
        );
        assert_eq!(exp - iat, lifetime, "{kind}: default lifetime");
        assert!(
            signed_with(token, secret.as_bytes()),
            "{kind}: signed with the generated secret"
        );
    }
    assert_ne!(jti(&access), jti(&refresh_token));
    let (access2, refresh2) = g.login("shape", PASSWORD);
    assert_ne!(jti(&access), jti(&access2), "every login mints a new jti");
    assert_ne!(jti(&refresh_token), jti(&refresh2));
    g.get(PROFILE, Some(&access))
        .expect(200, profile_of(id, "shape"));
}

#[test]
fn lifetimes_come_from_config_and_tokens_expire() {
    let g = Gatehouse::new()
        .with_config(|c| {
            c.jwt.access_lifetime_seconds = 2;
            c.jwt.refresh_lifetime_seconds = 6;
        })
        .start();
    let id = id_of(&g.register("brief"));
    let (access, refresh_token) = g.login("brief", PASSWORD);
    let (a, r) = (claims(&access), claims(&refresh_token));
    assert_eq!(
        a["exp"].as_u64().expect("exp") - a["iat"].as_u64().expect("iat"),
        2
    );
    assert_eq!(
        r["exp"].as_u64().expect("exp") - r["iat"].as_u64().expect("iat"),
        6
    );
    g.get(PROFILE, Some(&access))
        .expect(200, profile_of(id, "brief"));

    // Three seconds later (the tokens as the server sees them then, `aged`: no waiting): the
    // access token is past its 2 s.
    let (access, refresh_token) = (g.aged(&access, 3), g.aged(&refresh_token, 3));
    g.get(PROFILE, Some(&access))
        .expect(401, bad_access("Token is expired"));
    g.verify(&access)
        .expect(401, bad_refresh("Token is expired"));
    // The refresh token is still alive and mints a working access token.
    let r = g.refresh(&refresh_token);
    r.expect_status(200);
    let fresh = r.field("access");
    g.get(PROFILE, Some(&fresh))
        .expect(200, profile_of(id, "brief"));

    // Seven seconds after it was issued, the refresh token is past its 6 s too.
    g.refresh(&g.aged(&refresh_token, 4))
        .expect(401, bad_refresh("Token is expired"));
}

#[test]
fn a_token_answered_from_the_verified_cache_still_expires_on_time() {
    // The same token on every request (what `[jwt] verified_cache` keeps), in real time: the
    // cache must refuse it as soon as `exp` passes, with verify's own message.
    let g = Gatehouse::new()
        .with_config(|c| c.jwt.access_lifetime_seconds = 1)
        .start();
    let id = id_of(&g.register("cached"));
    let (access, _) = g.login("cached", PASSWORD);
    let exp = claims(&access)["exp"].as_u64().expect("exp");
    for _ in 0..3 {
        g.get(PROFILE, Some(&access))
            .expect(200, profile_of(id, "cached"));
    }
    // `exp` is whole seconds: past it means the clock reads exp + 1.
    while gatehouse::clock::now() <= exp {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    g.get(PROFILE, Some(&access))
        .expect(401, bad_access("Token is expired"));
}

#[test]
fn forged_and_malformed_access_tokens_are_rejected_with_drf_bodies() {
    let g = Gatehouse::new().start();
    let id = id_of(&g.register("victim"));
    let (access, refresh_token) = g.login("victim", PASSWORD);
    // Sanity: re-signing the real claims with the real secret is accepted, so each rejection
    // below is caused by the one thing that case changes.
    g.get(PROFILE, Some(&g.forge(&access, json!({}))))
        .expect(200, profile_of(id, "victim"));
    let fresh =
        json!({"jti": "0123456789abcdef0123456789abcdef", "iat": now(), "exp": now() + 300});
    g.get(PROFILE, Some(&g.forge(&access, fresh)))
        .expect(200, profile_of(id, "victim"));

    // A deleted user's token, taken before the deletion.
    let ghost_id = id_of(&g.register("ghost"));
    let (ghost_access, _) = g.login("ghost", PASSWORD);
    g.soft_delete(&ghost_access).expect(200, soft_deleted());
    assert!(ghost_id > id);

    let mut cases = forged_access_tokens(&g, &access, &refresh_token);
    cases.push(attacks::Forgery {
        label: "token of a soft-deleted user",
        token: ghost_access,
        body: inactive(),
    });

    let failures: Vec<String> = cases
        .iter()
        .filter_map(|f| mismatch(f.label, &g.get(PROFILE, Some(&f.token)), 401, &f.body))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The token of the surviving user keeps working after all of the above.
    g.get(PROFILE, Some(&access))
        .expect(200, profile_of(id, "victim"));
}

#[test]
fn refresh_returns_only_access_when_rotation_is_off() {
    let g = Gatehouse::new().start();
    let id = id_of(&g.register("fresher"));
    let (access, refresh_token) = g.login("fresher", PASSWORD);

    let r = g.refresh(&refresh_token);
    r.expect_status(200);
    assert_eq!(
        r.keys(),
        ["access"],
        "rotation is off by default: {}",
        r.text
    );
    let new_access = r.field("access");
    let c = claims(&new_access);
    assert_eq!(c["token_type"], json!("access"));
    assert_eq!(c["user_id"], json!(id.to_string()));
    assert_ne!(jti(&new_access), jti(&access));
    g.get(PROFILE, Some(&new_access))
        .expect(200, profile_of(id, "fresher"));

    // The seed's clients keep reusing their first refresh token.
    for _ in 0..2 {
        let again = g.refresh(&refresh_token);
        again.expect_status(200);
        assert!(again.json.get("refresh").is_none(), "{}", again.text);
    }

    g.refresh(&access)
        .expect(401, bad_refresh("Token has wrong type"));
    g.refresh("garbage")
        .expect(401, bad_refresh("Token is invalid"));
    let forged = sign_hs256(
        &hs256_header(),
        &claims(&refresh_token),
        b"wrong-wrong-wrong-wrong-wrong-wrong-wrong",
    );
    g.refresh(&forged)
        .expect(401, bad_refresh("Token is invalid"));
    g.post(REFRESH, json!({}), None)
        .expect(400, json!({ "refresh": [REQUIRED] }));
}

#[test]
fn verify_accepts_good_tokens_and_rejects_bad_ones() {
    let g = Gatehouse::new().start();
    g.register("verifier");
    let (access, refresh_token) = g.login("verifier", PASSWORD);
    g.verify(&access).expect(200, json!({}));
    g.verify(&refresh_token).expect(200, json!({}));
    g.verify("garbage")
        .expect(401, bad_refresh("Token is invalid"));
    let expired = g.forge(&access, json!({"exp": now() - 100, "iat": now() - 400}));
    g.verify(&expired)
        .expect(401, bad_refresh("Token is expired"));
    let wrong_key = sign_hs256(
        &hs256_header(),
        &claims(&access),
        b"another-secret-another-secret-another",
    );
    g.verify(&wrong_key)
        .expect(401, bad_refresh("Token is invalid"));
    g.verify(&unsigned(&json!({"alg": "none"}), &claims(&access)))
        .expect(401, bad_refresh("Token is invalid"));
    g.post(VERIFY, json!({}), None)
        .expect(400, json!({ "token": [REQUIRED] }));
}

#[test]
fn logout_blacklists_that_refresh_token_only() {
    let g = Gatehouse::new().start();
    g.register("leaving");
    let (access, refresh_token) = g.login("leaving", PASSWORD);
    let (_, other_session) = g.login("leaving", PASSWORD);

    g.refresh(&refresh_token).expect_status(200);
    g.logout(&refresh_token).expect(200, json!({}));
    g.refresh(&refresh_token)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.logout(&refresh_token)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.logout(&access)
        .expect(401, bad_refresh("Token has wrong type"));
    g.logout("garbage")
        .expect(401, bad_refresh("Token is invalid"));
    // Another session of the same user is untouched.
    g.refresh(&other_session).expect_status(200);
}

#[test]
fn logout_with_rotation_kills_the_whole_family() {
    let g = Gatehouse::new()
        .with_config(|c| c.jwt.rotate_refresh_tokens = true)
        .start();
    g.register("ivy");
    let (_, r0) = g.login("ivy", PASSWORD);
    let r = g.refresh(&r0);
    r.expect_status(200);
    assert_eq!(r.keys(), ["access", "refresh"], "{}", r.text);
    let r1 = r.field("refresh");
    assert_ne!(jti(&r1), jti(&r0));
    g.logout(&r1).expect(200, json!({}));
    g.refresh(&r1)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.refresh(&r0)
        .expect(401, bad_refresh("Token is blacklisted"));
}

#[test]
fn rotation_issues_a_new_refresh_each_time_and_detects_reuse_of_ancestors() {
    let g = Gatehouse::new()
        .with_config(|c| c.jwt.rotate_refresh_tokens = true)
        .start();
    let id = id_of(&g.register("rotor"));
    let (_, r0) = g.login("rotor", PASSWORD);

    let step = |token: &str| -> (String, String) {
        let r = g.refresh(token);
        r.expect_status(200);
        assert_eq!(r.keys(), ["access", "refresh"], "{}", r.text);
        r.tokens()
    };
    let (a1, r1) = step(&r0);
    let (_, r2) = step(&r1);
    assert_eq!(claims(&r1)["token_type"], json!("refresh"));
    assert_eq!(claims(&r1)["user_id"], json!(id.to_string()));
    let jtis = [jti(&r0), jti(&r1), jti(&r2)];
    assert!(
        jtis[0] != jtis[1] && jtis[1] != jtis[2] && jtis[0] != jtis[2],
        "{jtis:?}"
    );
    g.get(PROFILE, Some(&a1))
        .expect(200, profile_of(id, "rotor"));

    // The immediate parent replayed within the grace period: the current child again.
    let (_, replayed) = step(&r1);
    assert_eq!(
        jti(&replayed),
        jti(&r2),
        "parent replay within grace returns the current child"
    );

    // The child still works; r1 is now a grandparent, and replaying it revokes everything.
    let (_, r3) = step(&r2);
    g.refresh(&r1)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.refresh(&r3)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.refresh(&r2)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.refresh(&r0)
        .expect(401, bad_refresh("Token is blacklisted"));

    // A fresh login starts a new, healthy family.
    let (_, n0) = g.login("rotor", PASSWORD);
    let (na, n1) = step(&n0);
    step(&n1);
    g.get(PROFILE, Some(&na))
        .expect(200, profile_of(id, "rotor"));
}

#[test]
fn parent_replay_after_the_grace_period_revokes_the_family() {
    let g = Gatehouse::new()
        .with_config(|c| {
            c.jwt.rotate_refresh_tokens = true;
            c.jwt.reuse_grace_seconds = 1;
        })
        .start();
    g.register("graceful");
    let (_, r0) = g.login("graceful", PASSWORD);
    let r = g.refresh(&r0);
    r.expect_status(200);
    let r1 = r.field("refresh");
    // The family's rotation is stamped in whole seconds, at or before this one: two seconds
    // on, more than the 1 s grace has passed.
    let rotated_by = now();

    wait_until_second(rotated_by + 2);
    g.refresh(&r0)
        .expect(401, bad_refresh("Token is blacklisted"));
    // The current child, never used, is dead too.
    g.refresh(&r1)
        .expect(401, bad_refresh("Token is blacklisted"));

    let (_, n0) = g.login("graceful", PASSWORD);
    let r = g.refresh(&n0);
    r.expect_status(200);
    assert!(r.json["refresh"].is_string(), "{}", r.text);
}

#[test]
fn concurrent_refreshes_of_one_token_never_fork_the_family() {
    let g = Gatehouse::new()
        .with_config(|c| c.jwt.rotate_refresh_tokens = true)
        .start();
    g.register("racer");
    const THREADS: usize = 16;
    for round in 0..3 {
        let (_, r0) = g.login("racer", PASSWORD);
        let results: Vec<Resp> = race(THREADS, |_| g.refresh(&r0));
        let mut children: Vec<String> = Vec::new();
        for r in &results {
            // Every racer is the first use or a replay of the immediate parent within grace.
            r.expect_status(200);
            children.push(r.field("refresh"));
        }
        let mut jtis: Vec<String> = children.iter().map(|c| jti(c)).collect();
        jtis.sort();
        jtis.dedup();
        assert_eq!(
            jtis.len(),
            1,
            "round {round}: {THREADS} concurrent refreshes minted {} different children",
            jtis.len()
        );

        // Advance the family once, then replay the grandparent: every token handed out in the
        // race must be dead, which would not hold if two independent families existed.
        let r = g.refresh(&children[0]);
        r.expect_status(200);
        let grandchild = r.field("refresh");
        g.refresh(&r0)
            .expect(401, bad_refresh("Token is blacklisted"));
        g.refresh(&grandchild)
            .expect(401, bad_refresh("Token is blacklisted"));
        for (i, c) in children.iter().enumerate() {
            let r = g.refresh(c);
            assert_eq!(
                r.status, 401,
                "round {round}: child {i} of the race survived family revocation: {}",
                r.text
            );
        }
    }
}

#[test]
fn soft_delete_revokes_at_once_and_restore_does_not_revive() {
    let g = Gatehouse::new()
        .superuser("boss", "boss@example.com", PASSWORD)
        .start();
    let id = id_of(&g.register("leaver"));
    let (a1, r1) = g.login("leaver", PASSWORD);
    let (a2, r2) = g.login("leaver", PASSWORD);
    let r = g.refresh(&r1);
    r.expect_status(200);
    let a3 = r.field("access");
    for a in [&a1, &a2, &a3] {
        g.get(PROFILE, Some(a))
            .expect(200, profile_of(id, "leaver"));
    }

    g.soft_delete(&a1).expect(200, soft_deleted());
    let inactive = inactive();
    for a in [&a1, &a2, &a3] {
        g.get(PROFILE, Some(a)).expect(401, inactive.clone());
    }
    for r in [&r1, &r2] {
        g.refresh(r).expect(401, no_active_account_for_token());
    }
    g.login_attempt("leaver", PASSWORD)
        .expect(401, wrong_login());
    let v = g.verify(&a2);
    assert_eq!(
        v.status, 401,
        "verify of a deleted user's token: {}",
        v.text
    );

    let (boss, _) = g.login("boss", PASSWORD);
    g.restore(&boss, id)
        .expect(200, admin_item(id, "leaver", "leaver@example.com", true));

    // Restored, but the old tokens stay dead.
    for a in [&a1, &a2, &a3] {
        g.get(PROFILE, Some(a))
            .expect(401, bad_access("Token is invalid"));
    }
    for r in [&r1, &r2] {
        g.refresh(r)
            .expect(401, bad_refresh("Token is blacklisted"));
    }
    let (fresh_access, fresh_refresh) = g.login("leaver", PASSWORD);
    g.get(PROFILE, Some(&fresh_access))
        .expect(200, profile_of(id, "leaver"));
    g.refresh(&fresh_refresh).expect_status(200);
}

#[test]
fn password_change_kills_every_earlier_token() {
    let g = Gatehouse::new().start();
    let id = id_of(&g.register("changer"));
    let (a1, r1) = g.login("changer", PASSWORD);
    let (a2, r2) = g.login("changer", PASSWORD);

    let r = g.change_password(&a1, PASSWORD, "NewPass123");
    r.expect_status(200);
    assert_eq!(r.json["detail"], PASSWORD_UPDATED);
    assert_eq!(r.keys(), ["access", "detail", "refresh"], "{}", r.text);
    let (b_access, b_refresh) = r.tokens();

    for a in [&a1, &a2] {
        g.get(PROFILE, Some(a))
            .expect(401, bad_access("Token is invalid"));
    }
    for rt in [&r1, &r2] {
        g.refresh(rt)
            .expect(401, bad_refresh("Token is blacklisted"));
    }
    g.get(PROFILE, Some(&b_access))
        .expect(200, profile_of(id, "changer"));
    let rr = g.refresh(&b_refresh);
    rr.expect_status(200);
    g.get(PROFILE, Some(&rr.field("access")))
        .expect(200, profile_of(id, "changer"));

    g.login_attempt("changer", PASSWORD)
        .expect(401, wrong_login());
    g.login("changer", "NewPass123");

    // A second change (the seed code's field name, PATCH) kills the first change's pair too.
    let r = g.call(
        "PATCH",
        PASSWORD_CHANGE,
        Some(json!({"current_password": "NewPass123", "new_password": "Another-Pass-456"})),
        Some(&b_access),
    );
    r.expect_status(200);
    g.get(PROFILE, Some(&b_access))
        .expect(401, bad_access("Token is invalid"));
    g.refresh(&b_refresh)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.get(PROFILE, Some(&r.field("access")))
        .expect(200, profile_of(id, "changer"));
}

#[test]
fn login_of_a_soft_deleted_user_is_the_wrong_credentials_401() {
    let g = Gatehouse::new().start();
    g.register("gone");
    let (access, _) = g.login("gone", PASSWORD);
    g.soft_delete(&access).expect(200, soft_deleted());
    g.login_attempt("gone", PASSWORD).expect(401, wrong_login());
    g.login_attempt("gone", "WrongPass999")
        .expect(401, wrong_login());
    g.login_attempt("nobody-here", PASSWORD)
        .expect(401, wrong_login());
}
