mod common;

use common::{bad_access, bad_refresh};

use common::signed_with;
// Token rules and revocation over real HTTP: the shape and lifetimes of issued tokens, forged and
// malformed tokens on the profile view, refresh / verify / logout, rotation with reuse detection, and revocation.

use common::*;
use serde_json::{json, Value};
use std::sync::Barrier;
use std::time::Duration;

const PROFILE: &str = "/api/auth/profile/";
const REFRESH: &str = "/api/token/refresh/";
const VERIFY: &str = "/api/token/verify/";
const LOGOUT: &str = "/api/auth/logout/";
const WRONG_LOGIN: &str = "No active account found with the given credentials";

/// Asserts a 401 with exactly `body` and the `WWW-Authenticate` header every 401 carries.
#[track_caller]
fn expect_401(r: &Resp, body: Value) {
    r.expect(401, body);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="api""#),
        "WWW-Authenticate on a 401: {}",
        r.text
    );
}

/// Like `expect_401`, but returns a description of what is wrong instead of panicking.
fn check_401(label: &str, r: &Resp, body: &Value) -> Option<String> {
    let www = r.header("www-authenticate");
    if r.status == 401 && &r.json == body && www.as_deref() == Some(r#"Bearer realm="api""#) {
        None
    } else {
        Some(format!(
            "{label}: expected 401 {body} with WWW-Authenticate, got {} {} (WWW-Authenticate: {www:?})",
            r.status, r.text
        ))
    }
}

fn header_of(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().expect("header part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url header");
    serde_json::from_slice(&bytes).expect("header json")
}

fn is_hex32(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

fn refresh(g: &Gatehouse, token: &str) -> Resp {
    g.post(REFRESH, json!({ "refresh": token }), None)
}

fn jti(token: &str) -> String {
    claims(token)["jti"].as_str().expect("jti").to_string()
}

fn id_of(user: &Value) -> u64 {
    user["id"].as_u64().expect("numeric id")
}

#[test]
fn issued_tokens_have_the_simplejwt_shape() {
    let g = Gatehouse::start();
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
        assert!(is_hex32(&c["jti"]), "{kind}: jti is 32 lowercase hex: {c}");
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
    let g = Gatehouse::builder()
        .toml("[jwt]\naccess_lifetime_seconds = 2\nrefresh_lifetime_seconds = 6\n")
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

    std::thread::sleep(Duration::from_millis(3500));
    expect_401(
        &g.get(PROFILE, Some(&access)),
        bad_access("Token is expired"),
    );
    expect_401(
        &g.post(VERIFY, json!({ "token": access }), None),
        bad_refresh("Token is expired"),
    );
    // The refresh token is still alive and mints a working access token.
    let r = refresh(&g, &refresh_token);
    r.expect_status(200);
    let fresh = r.json["access"].as_str().expect("access").to_string();
    g.get(PROFILE, Some(&fresh))
        .expect(200, profile_of(id, "brief"));

    std::thread::sleep(Duration::from_millis(3500));
    expect_401(
        &refresh(&g, &refresh_token),
        bad_refresh("Token is expired"),
    );
}

#[test]
fn forged_and_malformed_access_tokens_are_rejected_with_drf_bodies() {
    let g = Gatehouse::start();
    let id = id_of(&g.register("victim"));
    let (access, refresh_token) = g.login("victim", PASSWORD);
    let secret = g.secret();
    let base = claims(&access);
    let forge = |header: &Value, c: &Value| sign_hs256(header, c, secret.as_bytes());
    let with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = base.clone();
        edit(c.as_object_mut().expect("claims object"));
        c
    };

    // Sanity: re-signing the real claims with the real secret is accepted, so each rejection
    // below is caused by the one thing that case changes.
    g.get(PROFILE, Some(&forge(&hs256(), &base)))
        .expect(200, profile_of(id, "victim"));
    let fresh = with(&|c| {
        c.insert("jti".into(), json!("0123456789abcdef0123456789abcdef"));
        c.insert("iat".into(), json!(now()));
        c.insert("exp".into(), json!(now() + 300));
    });
    g.get(PROFILE, Some(&forge(&hs256(), &fresh)))
        .expect(200, profile_of(id, "victim"));

    // A deleted user's token, taken before the deletion.
    let ghost_id = id_of(&g.register("ghost"));
    let (ghost_access, _) = g.login("ghost", PASSWORD);
    g.call(
        "DELETE",
        "/api/auth/profile/delete/",
        None,
        Some(&ghost_access),
    )
    .expect(
        200,
        json!({"message": "Account soft deleted successfully."}),
    );
    assert!(ghost_id > id);

    let invalid = bad_access("Token is invalid");
    let n = now();
    let mut cases: Vec<(&str, String, Value)> = vec![
        (
            "alg none",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &base),
            invalid.clone(),
        ),
        (
            "alg None",
            unsigned(&json!({"alg": "None", "typ": "JWT"}), &base),
            invalid.clone(),
        ),
        (
            "alg NONE",
            unsigned(&json!({"alg": "NONE", "typ": "JWT"}), &base),
            invalid.clone(),
        ),
        (
            "alg none with the real signature kept",
            format!(
                "{}.{}",
                b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
                access.split_once('.').expect("dot").1
            ),
            invalid.clone(),
        ),
        (
            "HS256 signed with a wrong key",
            sign_hs256(
                &hs256(),
                &base,
                b"this-is-not-the-server-secret-0123456789abcdef",
            ),
            invalid.clone(),
        ),
        (
            "RS256 header",
            forge(&json!({"alg": "RS256", "typ": "JWT"}), &base),
            invalid.clone(),
        ),
        (
            "EdDSA header",
            forge(&json!({"alg": "EdDSA", "typ": "JWT"}), &base),
            invalid.clone(),
        ),
        (
            "HS512 header",
            forge(&json!({"alg": "HS512", "typ": "JWT"}), &base),
            invalid.clone(),
        ),
        (
            "unknown kid",
            forge(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "no-such-key"}),
                &base,
            ),
            invalid.clone(),
        ),
        (
            "expired",
            forge(
                &hs256(),
                &with(&|c| {
                    c.insert("iat".into(), json!(n - 600));
                    c.insert("exp".into(), json!(n - 300));
                }),
            ),
            bad_access("Token is expired"),
        ),
        (
            "refresh token used as access",
            refresh_token.clone(),
            bad_access("Token has wrong type"),
        ),
        (
            "forged token_type refresh",
            forge(
                &hs256(),
                &with(&|c| {
                    c.insert("token_type".into(), json!("refresh"));
                }),
            ),
            bad_access("Token has wrong type"),
        ),
        (
            "missing exp",
            forge(
                &hs256(),
                &with(&|c| {
                    c.remove("exp");
                }),
            ),
            bad_access("Token has no 'exp' claim"),
        ),
        (
            "exp as a string",
            forge(
                &hs256(),
                &with(&|c| {
                    c.insert("exp".into(), json!((n + 3600).to_string()));
                }),
            ),
            invalid.clone(),
        ),
        (
            "nbf in the future",
            forge(
                &hs256(),
                &with(&|c| {
                    c.insert("nbf".into(), json!(n + 3600));
                }),
            ),
            invalid.clone(),
        ),
        (
            "no token_type",
            forge(
                &hs256(),
                &with(&|c| {
                    c.remove("token_type");
                }),
            ),
            bad_access("Token has no type"),
        ),
        (
            "missing user_id",
            forge(
                &hs256(),
                &with(&|c| {
                    c.remove("user_id");
                }),
            ),
            json!({"detail": "Token contained no recognizable user identification", "code": "token_not_valid"}),
        ),
        (
            "user id that does not exist",
            forge(
                &hs256(),
                &with(&|c| {
                    c.insert("user_id".into(), json!("987654"));
                }),
            ),
            json!({"detail": "User not found", "code": "user_not_found"}),
        ),
        (
            "token of a soft-deleted user",
            ghost_access.clone(),
            json!({"detail": "User is inactive", "code": "user_inactive"}),
        ),
        (
            "non-base64 garbage",
            "not*base64!.%%%.$$$".to_string(),
            invalid.clone(),
        ),
        ("one opaque word", "garbage".to_string(), invalid.clone()),
        (
            "base64 parts that are not JSON",
            format!("{}.{}.{}", b64(b"{not json"), b64(b"[1,2"), b64(b"sig")),
            invalid.clone(),
        ),
        (
            // Past the 8 KiB token cap, below the 32 KiB request-head cap (a 100 KiB one is a
            // 431 before any parsing: see proxy_path.rs).
            "20 KiB token, correctly signed",
            forge(
                &hs256(),
                &with(&|c| {
                    c.insert("pad".into(), json!("x".repeat(20 * 1024)));
                }),
            ),
            invalid.clone(),
        ),
        ("20 KiB of letters", "A".repeat(20 * 1024), invalid.clone()),
    ];
    // The token of the surviving user keeps working after all of the above.
    cases.push((
        "control: the real access token",
        access.clone(),
        Value::Null,
    ));

    let mut failures = Vec::new();
    for (label, token, body) in &cases {
        let r = g.get(PROFILE, Some(token));
        if body.is_null() {
            if r.status != 200 || r.json != profile_of(id, "victim") {
                failures.push(format!(
                    "{label}: expected 200, got {} {}",
                    r.status, r.text
                ));
            }
        } else if let Some(f) = check_401(label, &r, body) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn refresh_returns_only_access_when_rotation_is_off() {
    let g = Gatehouse::start();
    let id = id_of(&g.register("fresher"));
    let (access, refresh_token) = g.login("fresher", PASSWORD);

    let r = refresh(&g, &refresh_token);
    r.expect_status(200);
    let keys: Vec<&String> = r.json.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        vec!["access"],
        "rotation is off by default: {}",
        r.text
    );
    let new_access = r.json["access"].as_str().expect("access").to_string();
    let c = claims(&new_access);
    assert_eq!(c["token_type"], json!("access"));
    assert_eq!(c["user_id"], json!(id.to_string()));
    assert_ne!(jti(&new_access), jti(&access));
    g.get(PROFILE, Some(&new_access))
        .expect(200, profile_of(id, "fresher"));

    // The seed's clients keep reusing their first refresh token.
    for _ in 0..2 {
        let again = refresh(&g, &refresh_token);
        again.expect_status(200);
        assert!(again.json.get("refresh").is_none(), "{}", again.text);
    }

    expect_401(&refresh(&g, &access), bad_refresh("Token has wrong type"));
    expect_401(&refresh(&g, "garbage"), bad_refresh("Token is invalid"));
    let forged = sign_hs256(
        &hs256(),
        &claims(&refresh_token),
        b"wrong-wrong-wrong-wrong-wrong-wrong-wrong",
    );
    expect_401(&refresh(&g, &forged), bad_refresh("Token is invalid"));
    g.post(REFRESH, json!({}), None)
        .expect(400, json!({"refresh": ["This field is required."]}));
}

#[test]
fn verify_accepts_good_tokens_and_rejects_bad_ones() {
    let g = Gatehouse::start();
    g.register("verifier");
    let (access, refresh_token) = g.login("verifier", PASSWORD);
    g.post(VERIFY, json!({ "token": access }), None)
        .expect(200, json!({}));
    g.post(VERIFY, json!({ "token": refresh_token }), None)
        .expect(200, json!({}));
    expect_401(
        &g.post(VERIFY, json!({"token": "garbage"}), None),
        bad_refresh("Token is invalid"),
    );
    let mut c = claims(&access);
    c["exp"] = json!(now() - 100);
    c["iat"] = json!(now() - 400);
    expect_401(
        &g.post(
            VERIFY,
            json!({"token": sign_hs256(&hs256(), &c, g.secret().as_bytes())}),
            None,
        ),
        bad_refresh("Token is expired"),
    );
    let wrong_key = sign_hs256(
        &hs256(),
        &claims(&access),
        b"another-secret-another-secret-another",
    );
    expect_401(
        &g.post(VERIFY, json!({ "token": wrong_key }), None),
        bad_refresh("Token is invalid"),
    );
    expect_401(
        &g.post(
            VERIFY,
            json!({"token": unsigned(&json!({"alg": "none"}), &claims(&access))}),
            None,
        ),
        bad_refresh("Token is invalid"),
    );
    g.post(VERIFY, json!({}), None)
        .expect(400, json!({"token": ["This field is required."]}));
}

#[test]
fn logout_blacklists_that_refresh_token_only() {
    let g = Gatehouse::start();
    g.register("leaving");
    let (access, refresh_token) = g.login("leaving", PASSWORD);
    let (_, other_session) = g.login("leaving", PASSWORD);

    refresh(&g, &refresh_token).expect_status(200);
    g.post(LOGOUT, json!({ "refresh": refresh_token }), None)
        .expect(200, json!({}));
    expect_401(
        &refresh(&g, &refresh_token),
        bad_refresh("Token is blacklisted"),
    );
    expect_401(
        &g.post(LOGOUT, json!({ "refresh": refresh_token }), None),
        bad_refresh("Token is blacklisted"),
    );
    expect_401(
        &g.post(LOGOUT, json!({ "refresh": access }), None),
        bad_refresh("Token has wrong type"),
    );
    expect_401(
        &g.post(LOGOUT, json!({"refresh": "garbage"}), None),
        bad_refresh("Token is invalid"),
    );
    // Another session of the same user is untouched.
    refresh(&g, &other_session).expect_status(200);
}

#[test]
fn logout_with_rotation_kills_the_family() {
    let g = Gatehouse::builder()
        .toml("[jwt]\nrotate_refresh_tokens = true\n")
        .start();
    g.register("rotlogout");
    let (_, r0) = g.login("rotlogout", PASSWORD);
    let r = refresh(&g, &r0);
    r.expect_status(200);
    let r1 = r.json["refresh"].as_str().expect("refresh").to_string();
    g.post(LOGOUT, json!({ "refresh": r1 }), None)
        .expect(200, json!({}));
    expect_401(&refresh(&g, &r1), bad_refresh("Token is blacklisted"));
    expect_401(&refresh(&g, &r0), bad_refresh("Token is blacklisted"));
}

#[test]
fn rotation_issues_a_new_refresh_each_time_and_detects_reuse_of_ancestors() {
    let g = Gatehouse::builder()
        .toml("[jwt]\nrotate_refresh_tokens = true\n")
        .start();
    let id = id_of(&g.register("rotor"));
    let (_, r0) = g.login("rotor", PASSWORD);

    let step = |token: &str| -> (String, String) {
        let r = refresh(&g, token);
        r.expect_status(200);
        let mut keys: Vec<&String> = r.json.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["access", "refresh"], "{}", r.text);
        (
            r.json["access"].as_str().expect("access").to_string(),
            r.json["refresh"].as_str().expect("refresh").to_string(),
        )
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
    let (a3, r3) = step(&r2);
    expect_401(&refresh(&g, &r1), bad_refresh("Token is blacklisted"));
    expect_401(&refresh(&g, &r3), bad_refresh("Token is blacklisted"));
    expect_401(&refresh(&g, &r2), bad_refresh("Token is blacklisted"));
    expect_401(&refresh(&g, &r0), bad_refresh("Token is blacklisted"));
    let _ = a3;

    // A fresh login starts a new, healthy family.
    let (_, n0) = g.login("rotor", PASSWORD);
    let (na, n1) = step(&n0);
    step(&n1);
    g.get(PROFILE, Some(&na))
        .expect(200, profile_of(id, "rotor"));
}

#[test]
fn parent_replay_after_the_grace_period_revokes_the_family() {
    let g = Gatehouse::builder()
        .toml("[jwt]\nrotate_refresh_tokens = true\nreuse_grace_seconds = 1\n")
        .start();
    g.register("graceful");
    let (_, r0) = g.login("graceful", PASSWORD);
    let r = refresh(&g, &r0);
    r.expect_status(200);
    let r1 = r.json["refresh"].as_str().expect("refresh").to_string();

    std::thread::sleep(Duration::from_millis(3000));
    expect_401(&refresh(&g, &r0), bad_refresh("Token is blacklisted"));
    // The current child, never used, is dead too.
    expect_401(&refresh(&g, &r1), bad_refresh("Token is blacklisted"));

    let (_, n0) = g.login("graceful", PASSWORD);
    let r = refresh(&g, &n0);
    r.expect_status(200);
    assert!(r.json["refresh"].is_string(), "{}", r.text);
}

#[test]
fn concurrent_refreshes_of_one_token_never_fork_the_family() {
    let g = Gatehouse::builder()
        .toml("[jwt]\nrotate_refresh_tokens = true\n")
        .start();
    g.register("racer");
    const THREADS: usize = 16;
    for round in 0..3 {
        let (_, r0) = g.login("racer", PASSWORD);
        let barrier = Barrier::new(THREADS);
        let results: Vec<Resp> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (g, barrier, r0) = (&g, &barrier, &r0);
                    s.spawn(move || {
                        barrier.wait();
                        refresh(g, r0)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        let mut children: Vec<String> = Vec::new();
        for r in &results {
            // Every racer is the first use or a replay of the immediate parent within grace.
            r.expect_status(200);
            children.push(r.json["refresh"].as_str().expect("refresh").to_string());
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
        let r = refresh(&g, &children[0]);
        r.expect_status(200);
        let grandchild = r.json["refresh"].as_str().expect("refresh").to_string();
        expect_401(&refresh(&g, &r0), bad_refresh("Token is blacklisted"));
        expect_401(
            &refresh(&g, &grandchild),
            bad_refresh("Token is blacklisted"),
        );
        for (i, c) in children.iter().enumerate() {
            let r = refresh(&g, c);
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
    let g = Gatehouse::builder()
        .superuser("boss", "boss@example.com", PASSWORD)
        .start();
    let id = id_of(&g.register("leaver"));
    let (a1, r1) = g.login("leaver", PASSWORD);
    let (a2, r2) = g.login("leaver", PASSWORD);
    let r = refresh(&g, &r1);
    r.expect_status(200);
    let a3 = r.json["access"].as_str().expect("access").to_string();
    for a in [&a1, &a2, &a3] {
        g.get(PROFILE, Some(a))
            .expect(200, profile_of(id, "leaver"));
    }

    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&a1))
        .expect(
            200,
            json!({"message": "Account soft deleted successfully."}),
        );
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    for a in [&a1, &a2, &a3] {
        expect_401(&g.get(PROFILE, Some(a)), inactive.clone());
    }
    for r in [&r1, &r2] {
        expect_401(
            &refresh(&g, r),
            json!({"detail": "No active account found for the given token."}),
        );
    }
    expect_401(
        &g.post(
            "/api/token/",
            json!({"username": "leaver", "password": PASSWORD}),
            None,
        ),
        json!({ "detail": WRONG_LOGIN }),
    );
    let v = g.post(VERIFY, json!({ "token": a2 }), None);
    assert_eq!(
        v.status, 401,
        "verify of a deleted user's token: {}",
        v.text
    );

    let (boss, _) = g.login("boss", PASSWORD);
    g.call(
        "PUT",
        &format!("/api/auth/admin/users/restore/{id}/"),
        None,
        Some(&boss),
    )
    .expect(
        200,
        json!({"id": id, "username": "leaver", "email": "leaver@example.com",
               "first_name": "", "last_name": "", "is_active": true}),
    );

    // Restored, but the old tokens stay dead.
    for a in [&a1, &a2, &a3] {
        expect_401(&g.get(PROFILE, Some(a)), bad_access("Token is invalid"));
    }
    for r in [&r1, &r2] {
        expect_401(&refresh(&g, r), bad_refresh("Token is blacklisted"));
    }
    let (fresh_access, fresh_refresh) = g.login("leaver", PASSWORD);
    g.get(PROFILE, Some(&fresh_access))
        .expect(200, profile_of(id, "leaver"));
    refresh(&g, &fresh_refresh).expect_status(200);
}

#[test]
fn password_change_kills_every_earlier_token() {
    let g = Gatehouse::start();
    let id = id_of(&g.register("changer"));
    let (a1, r1) = g.login("changer", PASSWORD);
    let (a2, r2) = g.login("changer", PASSWORD);

    let r = g.call(
        "PUT",
        "/api/auth/profile/password/",
        Some(json!({"old_password": PASSWORD, "new_password": "NewPass123"})),
        Some(&a1),
    );
    r.expect_status(200);
    assert_eq!(r.json["detail"], json!("Password updated successfully."));
    let mut keys: Vec<&String> = r.json.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["access", "detail", "refresh"], "{}", r.text);
    let b_access = r.json["access"].as_str().expect("access").to_string();
    let b_refresh = r.json["refresh"].as_str().expect("refresh").to_string();

    for a in [&a1, &a2] {
        expect_401(&g.get(PROFILE, Some(a)), bad_access("Token is invalid"));
    }
    for rt in [&r1, &r2] {
        expect_401(&refresh(&g, rt), bad_refresh("Token is blacklisted"));
    }
    g.get(PROFILE, Some(&b_access))
        .expect(200, profile_of(id, "changer"));
    let rr = refresh(&g, &b_refresh);
    rr.expect_status(200);
    g.get(PROFILE, Some(rr.json["access"].as_str().expect("access")))
        .expect(200, profile_of(id, "changer"));

    expect_401(
        &g.post(
            "/api/token/",
            json!({"username": "changer", "password": PASSWORD}),
            None,
        ),
        json!({ "detail": WRONG_LOGIN }),
    );
    g.login("changer", "NewPass123");

    // A second change (the seed code's field name, PATCH) kills the first change's pair too.
    let r = g.call(
        "PATCH",
        "/api/auth/profile/password/",
        Some(json!({"current_password": "NewPass123", "new_password": "Another-Pass-456"})),
        Some(&b_access),
    );
    r.expect_status(200);
    expect_401(
        &g.get(PROFILE, Some(&b_access)),
        bad_access("Token is invalid"),
    );
    expect_401(
        &refresh(&g, &b_refresh),
        bad_refresh("Token is blacklisted"),
    );
    g.get(PROFILE, Some(r.json["access"].as_str().expect("access")))
        .expect(200, profile_of(id, "changer"));
}

#[test]
fn login_of_a_soft_deleted_user_is_the_wrong_credentials_401() {
    let g = Gatehouse::start();
    g.register("gone");
    let (access, _) = g.login("gone", PASSWORD);
    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&access))
        .expect(
            200,
            json!({"message": "Account soft deleted successfully."}),
        );
    let login =
        |u: &str, p: &str| g.post("/api/token/", json!({"username": u, "password": p}), None);
    let deleted = login("gone", PASSWORD);
    expect_401(&deleted, json!({ "detail": WRONG_LOGIN }));
    expect_401(
        &login("gone", "WrongPass999"),
        json!({ "detail": WRONG_LOGIN }),
    );
    expect_401(
        &login("nobody-here", PASSWORD),
        json!({ "detail": WRONG_LOGIN }),
    );
}
