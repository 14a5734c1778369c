use crate::common;

// Switching over from the Django project without logging anyone out (issue 13), against real
// Django 5.0 + DRF 3.16 + simplejwt 5.5 (tests/it/common/django.rs): the users come over with
// `gatehouse import` of Django's own dumpdata; the access and refresh tokens simplejwt minted
// with Django's key keep working on the API and the proxy path, and die at the user's first
// revocation; every hasher's `make_password` output logs in and is re-hashed to argon2id.

use common::upstream::Upstream;
use common::*;
use gatehouse::config::Config;
use gatehouse::store::{SledStore, UserStore};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// A Django SECRET_KEY as `startproject` writes it (prefix + 50 of get_random_secret_key's
/// characters); simplejwt signs with it as raw bytes, and so must gatehouse.
const DJANGO_SECRET: &str = "django-insecure-t!#x8^2b(k_=u9m@v$q0z&r4y*w+e-h6j)p5n%c3s1l7a@f2d0";
const PROFILE: &str = "/api/auth/profile/";
const REFRESH: &str = "/api/token/refresh/";
const VERIFY: &str = "/api/token/verify/";
const LOGOUT: &str = "/api/auth/logout/";
const PASSWORD: &str = "/api/auth/profile/password/";
const WRONG_LOGIN: &str = "No active account found with the given credentials";
const NO_ACTIVE_FOR_TOKEN: &str = "No active account found for the given token.";
/// A user that exists in Django (its tokens are signed) but not in the dump gatehouse imports.
const GHOST: u64 = 99;

/// The Django project's users whose tokens the tests use: (id, username, password).
const TOKEN_USERS: [(u64, &str, &str); 6] = [
    (1, "root", "RootPass-2024"),
    (7, "alice", "AlicePass-2024"),
    (8, "bob", "BobPass-2024"),
    (9, "carol", "CarolPass-2024"),
    (10, "dave", "DavePass-2024"),
    (GHOST, "ghost", "GhostPass-2024"),
];
/// One user per hasher a Django project uses, with Django's default costs.
const HASHERS: [(u64, &str); 6] = [
    (20, "pbkdf2_sha256"),
    (21, "pbkdf2_sha1"),
    (22, "argon2"),
    (23, "bcrypt_sha256"),
    (24, "bcrypt"),
    (25, "scrypt"),
];
/// Hashers gatehouse cannot verify: imported unusable, counted in the report.
const UNSUPPORTED: [(u64, &str); 3] = [(30, "md5"), (31, "md5"), (32, "sha1")];

fn hasher_password(hasher: &str) -> String {
    format!("{hasher}-Secret-2024")
}

/// What real Django made, once for the whole test binary: tokens for every token user and a
/// dumpdata of the whole project (GHOST's user row taken out).
struct DjangoProject {
    dump: Value,
    tokens: Value,
}

fn django() -> &'static DjangoProject {
    static PROJECT: OnceLock<DjangoProject> = OnceLock::new();
    PROJECT.get_or_init(|| {
        let mut users: Vec<Value> = TOKEN_USERS
            .iter()
            // Django's default hasher list starts with PBKDF2; argon2 keeps these logins quick
            // in the unoptimized test build (the hasher test covers the rest).
            .map(|(id, name, pw)| django::user(*id, name, pw, "argon2"))
            .collect();
        users[0]["is_staff"] = json!(true);
        users[0]["is_superuser"] = json!(true);
        for (id, hasher) in HASHERS.iter().chain(UNSUPPORTED.iter()) {
            let mut user = django::user(
                *id,
                &format!("user_{hasher}_{id}"),
                &hasher_password(hasher),
                hasher,
            );
            // Django 5.0's PBKDF2 default (720,000 rounds) takes seconds per login in the
            // unoptimized test build; its own encoder with fewer rounds makes the same format.
            if hasher.starts_with("pbkdf2") {
                user["iterations"] = json!(20_000);
            }
            users.push(user);
        }
        // set_unusable_password(): `!` + 40 random characters.
        users.push(json!({"id": 40, "username": "nopassword", "password": null}));
        let out = django::run(&json!({
            "secret": DJANGO_SECRET,
            "users": users,
            "mint": TOKEN_USERS.iter().map(|u| u.0).collect::<Vec<_>>(),
            // Long enough for any test run; the claims are simplejwt's either way.
            "access_lifetime_seconds": 3600,
        }));
        let dump: Vec<Value> = out["dump"]
            .as_array()
            .expect("dumpdata is a list")
            .iter()
            .filter(|e| !(e["model"] == "auth.user" && e["pk"] == json!(GHOST)))
            .cloned()
            .collect();
        DjangoProject {
            dump: Value::Array(dump),
            tokens: out["tokens"].clone(),
        }
    })
}

/// simplejwt's (access, refresh) for user `id`.
fn tokens_of(id: u64) -> (String, String) {
    let t = &django().tokens[id.to_string()];
    (
        t["access"].as_str().expect("access").to_string(),
        t["refresh"].as_str().expect("refresh").to_string(),
    )
}

/// gatehouse with Django's key, a required-auth route to `up`, and the Django project's users
/// imported from its dumpdata. Returns the import's stdout too.
fn switched_over(
    up: &Upstream,
    edit: impl FnOnce(&mut Config),
    env: &[(&str, &str)],
) -> (Gatehouse, String) {
    let addr = up.addr;
    let mut b = Gatehouse::new()
        .env("GATEHOUSE_JWT_SECRET", DJANGO_SECRET)
        .with_config(|c| c.routes = vec![route("/svc/", &[addr])])
        .with_config(edit);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let mut g = b.start();
    g.kill();
    let dump = g
        .config_path
        .parent()
        .expect("config directory")
        .join("dumpdata.json");
    std::fs::write(&dump, django().dump.to_string()).expect("write the dump");
    let out = g.cli(&["import", dump.to_str().expect("utf-8 path")], &[]);
    out.assert_ok("import of the Django project's dumpdata");
    let stdout = out.stdout.clone();
    g.restart();
    (g, stdout)
}

fn svc(g: &Gatehouse, token: &str) -> Resp {
    g.get("/svc/orders", Some(token))
}

fn user_not_found() -> Value {
    json!({"detail": "User not found", "code": "user_not_found"})
}

/// The claims simplejwt 5.5 writes: no gatehouse `ver` or `fam`.
#[test]
fn simplejwt_tokens_are_what_django_mints() {
    let (access, refresh) = tokens_of(7);
    for (token, kind) in [(&access, "access"), (&refresh, "refresh")] {
        let c = claims(token);
        let mut keys: Vec<&str> = c
            .as_object()
            .expect("claims object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["exp", "iat", "jti", "token_type", "user_id"], "{c}");
        assert_eq!(
            (&c["token_type"], &c["user_id"]),
            (&json!(kind), &json!("7"))
        );
        assert!(signed_with(token, DJANGO_SECRET.as_bytes()));
    }
}

#[test]
fn django_tokens_work_on_the_api_and_the_proxy_after_the_switch() {
    let up = Upstream::start();
    let (g, _) = switched_over(&up, |_| {}, &[]);
    let (access, refresh) = tokens_of(7);
    g.get(PROFILE, Some(&access)).expect(
        200,
        json!({"id": 7, "username": "alice", "email": "alice@example.com",
               "first_name": "", "last_name": ""}),
    );
    svc(&g, &access).expect_status(200);
    let seen = up.last();
    assert_eq!(seen.uri, "/svc/orders");
    assert_eq!(seen.header_values("x-user-id"), ["7"]);
    assert_eq!(seen.header_values("x-user-name"), ["alice"]);
    assert_eq!(seen.header_values("x-user-is-staff"), ["false"]);

    g.post(VERIFY, json!({ "token": access }), None)
        .expect(200, json!({}));
    g.post(VERIFY, json!({ "token": refresh }), None)
        .expect(200, json!({}));
    let r = g.post(REFRESH, json!({ "refresh": refresh }), None);
    r.expect_status(200);
    let keys: Vec<&String> = r.json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["access"], "rotation is off: {}", r.text);
    let fresh = r.json["access"].as_str().expect("access");
    g.get(PROFILE, Some(fresh)).expect_status(200);
    // The refresh token keeps working (simplejwt without rotation).
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect_status(200);

    // A staff user's Django token reaches the staff-only API.
    let (root, _) = tokens_of(1);
    let r = g.get("/api/auth/admin/users/", Some(&root));
    r.expect_status(200);
    assert!(
        r.json.as_array().is_some_and(|l| l.len() >= 6),
        "{}",
        r.text
    );

    // Signed by Django for a user the dump did not carry: DRF's user_not_found, no forwarding.
    let (ghost, ghost_refresh) = tokens_of(GHOST);
    let before = up.count();
    g.get(PROFILE, Some(&ghost)).expect(401, user_not_found());
    svc(&g, &ghost).expect(401, user_not_found());
    assert_eq!(up.count(), before, "the upstream never sees it");
    g.post(REFRESH, json!({ "refresh": ghost_refresh }), None)
        .expect(401, json!({ "detail": NO_ACTIVE_FOR_TOKEN }));
    g.post(VERIFY, json!({ "token": ghost }), None)
        .expect(401, bad_refresh("Token is invalid"));

    // Another key's token is no Django token.
    let mut forged = claims(&access);
    forged["user_id"] = json!("1");
    let forged = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &forged,
        b"not-the-django-secret-not-the-django-secret",
    );
    g.get(PROFILE, Some(&forged))
        .expect(401, bad_access("Token is invalid"));
}

#[test]
fn a_password_change_kills_the_django_tokens() {
    let up = Upstream::start();
    let (g, _) = switched_over(&up, |_| {}, &[]);
    let (access, refresh) = tokens_of(7);
    let r = g.call(
        "PUT",
        PASSWORD,
        Some(json!({"old_password": "AlicePass-2024", "new_password": "Looking-Glass-1871"})),
        Some(&access),
    );
    r.expect_status(200);
    let new_access = r.json["access"].as_str().expect("a fresh access token");

    g.get(PROFILE, Some(&access))
        .expect(401, bad_access("Token is invalid"));
    svc(&g, &access).expect(401, bad_access("Token is invalid"));
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.post(VERIFY, json!({ "token": refresh }), None)
        .expect(401, bad_refresh("Token is invalid"));
    g.post(VERIFY, json!({ "token": access }), None)
        .expect(401, bad_refresh("Token is invalid"));

    g.get(PROFILE, Some(new_access)).expect_status(200);
    svc(&g, new_access).expect_status(200);
    g.post(
        "/api/token/",
        json!({"username": "alice", "password": "AlicePass-2024"}),
        None,
    )
    .expect(401, json!({ "detail": WRONG_LOGIN }));
    g.login("alice", "Looking-Glass-1871");
    // Other users' Django tokens are untouched.
    g.get(PROFILE, Some(&tokens_of(9).0)).expect_status(200);
}

#[test]
fn a_soft_delete_kills_the_django_tokens_and_a_restore_does_not_revive_them() {
    let up = Upstream::start();
    let (g, _) = switched_over(&up, |_| {}, &[]);
    let (access, refresh) = tokens_of(8);
    g.call("DELETE", "/api/auth/profile/delete/", None, Some(&access))
        .expect(
            200,
            json!({"message": "Account soft deleted successfully."}),
        );
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    g.get(PROFILE, Some(&access)).expect(401, inactive.clone());
    svc(&g, &access).expect(401, inactive);
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect(401, json!({ "detail": NO_ACTIVE_FOR_TOKEN }));

    // Restored with the staff user's Django token: bob's old tokens stay dead.
    let (root, _) = tokens_of(1);
    g.call("PUT", "/api/auth/admin/users/restore/8/", None, Some(&root))
        .expect_status(200);
    let before = up.count();
    g.get(PROFILE, Some(&access))
        .expect(401, bad_access("Token is invalid"));
    svc(&g, &access).expect(401, bad_access("Token is invalid"));
    assert_eq!(up.count(), before);
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.post(VERIFY, json!({ "token": access }), None)
        .expect(401, bad_refresh("Token is invalid"));
    // bob logs in again with his Django password.
    let (fresh, _) = g.login("bob", "BobPass-2024");
    svc(&g, &fresh).expect_status(200);
}

#[test]
fn logout_blacklists_a_django_refresh_token() {
    let up = Upstream::start();
    let (g, _) = switched_over(&up, |_| {}, &[]);
    let (access, refresh) = tokens_of(9);
    g.post(LOGOUT, json!({ "refresh": refresh }), None)
        .expect(200, json!({}));
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.post(VERIFY, json!({ "token": refresh }), None)
        .expect(401, bad_refresh("Token is invalid"));
    g.post(LOGOUT, json!({ "refresh": refresh }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
    // As with simplejwt's blacklist, the access token lives out its lifetime.
    g.get(PROFILE, Some(&access)).expect_status(200);
    // Another user's Django refresh token is not in that family.
    g.post(REFRESH, json!({ "refresh": tokens_of(10).1 }), None)
        .expect_status(200);
    // After a restart too (the blacklist is in the store).
    let mut g = g;
    g.restart();
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
}

#[test]
fn with_rotation_a_django_refresh_token_starts_a_family_with_reuse_detection() {
    let up = Upstream::start();
    let (g, _) = switched_over(
        &up,
        |c| {
            c.jwt.rotate_refresh_tokens = true;
            c.jwt.reuse_grace_seconds = 0;
        },
        &[],
    );
    let (_, django_refresh) = tokens_of(10);
    let r = g.post(REFRESH, json!({ "refresh": django_refresh }), None);
    r.expect_status(200);
    // The rotation is stamped in whole seconds, at or before this one.
    let rotated_by = now();
    let child = r.json["refresh"].as_str().expect("rotated").to_string();
    assert_eq!(
        claims(&child)["fam"],
        claims(&django_refresh)["jti"],
        "the family is named by the Django token's jti"
    );
    // Past the grace of 0 s: a later second.
    wait_until_second(rotated_by + 1);
    // The rotated-out Django token comes back: the whole family is revoked.
    g.post(REFRESH, json!({ "refresh": django_refresh }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
    g.post(REFRESH, json!({ "refresh": child }), None)
        .expect(401, bad_refresh("Token is blacklisted"));
}

#[test]
fn unversioned_tokens_can_be_turned_off() {
    let up = Upstream::start();
    let (g, _) = switched_over(&up, |c| c.jwt.accept_unversioned_tokens = false, &[]);
    for id in [7, GHOST] {
        let (access, refresh) = tokens_of(id);
        g.get(PROFILE, Some(&access))
            .expect(401, bad_access("Token is invalid"));
        svc(&g, &access).expect(401, bad_access("Token is invalid"));
        g.post(REFRESH, json!({ "refresh": refresh }), None)
            .expect(401, bad_refresh("Token is invalid"));
        g.post(VERIFY, json!({ "token": access }), None)
            .expect(401, bad_refresh("Token is invalid"));
        g.post(LOGOUT, json!({ "refresh": refresh }), None)
            .expect(401, bad_refresh("Token is invalid"));
    }
    assert_eq!(up.count(), 0);
    // gatehouse's own tokens, signed with the same key, are unaffected.
    let (access, refresh) = g.login("alice", "AlicePass-2024");
    svc(&g, &access).expect_status(200);
    g.post(REFRESH, json!({ "refresh": refresh }), None)
        .expect_status(200);
}

#[test]
fn every_django_hasher_logs_in_and_is_rehashed_to_argon2id() {
    let up = Upstream::start();
    let (mut g, report) = switched_over(&up, |_| {}, &[]);
    // Nothing dropped silently: every user imported, the unverifiable ones counted.
    let users = TOKEN_USERS.len() - 1 + HASHERS.len() + UNSUPPORTED.len() + 1;
    assert!(
        report.contains(&format!(
            "imported {users} users; 0 already present (skipped); 0 conflicts; 3 warnings"
        )),
        "{report}"
    );
    assert!(
        report.contains(
            "imported as unusable (those users must reset their password): md5: 2 users, sha1: 1 user\n"
        ),
        "{report}"
    );
    for (id, hasher) in UNSUPPORTED {
        let line = format!(
            "user {id} (user_{hasher}_{id}) has a password hash of an unsupported algorithm ({hasher})"
        );
        assert!(report.contains(&line), "missing {line:?} in:\n{report}");
    }
    assert!(!report.contains("md5$"), "no hash in the report:\n{report}");

    let login = |g: &Gatehouse, name: &str, password: &str| {
        g.post(
            "/api/token/",
            json!({"username": name, "password": password}),
            None,
        )
    };
    let name = |id: u64, hasher: &str| format!("user_{hasher}_{id}");
    // Each Django hash as make_password stored it, before anyone logs in.
    let before: Vec<String> = {
        g.kill();
        let store = SledStore::open(&g.data_dir.join("db"), 1 << 20).expect("open the store");
        let stored = HASHERS
            .iter()
            .map(|(id, _)| {
                block(store.get_user(*id))
                    .expect("read")
                    .expect("user")
                    .password
            })
            .collect();
        drop(store);
        g.restart();
        stored
    };
    for ((id, hasher), stored) in HASHERS.iter().zip(&before) {
        assert!(
            stored.starts_with(&format!("{hasher}$")),
            "kept as Django wrote it: {stored}"
        );
        let user = name(*id, hasher);
        login(&g, &user, "wrong-Secret-2024").expect(401, json!({ "detail": WRONG_LOGIN }));
        login(&g, &user, &hasher_password(hasher)).expect_status(200);
    }
    for (id, hasher) in UNSUPPORTED {
        login(&g, &name(id, hasher), &hasher_password(hasher))
            .expect(401, json!({ "detail": WRONG_LOGIN }));
    }

    // The first login replaced each Django hash with gatehouse's argon2id.
    g.kill();
    let p = &g.config.passwords;
    let ours = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        p.argon2_memory_kib, p.argon2_iterations, p.argon2_parallelism
    );
    {
        let store = SledStore::open(&g.data_dir.join("db"), 1 << 20).expect("open the store");
        for (id, hasher) in HASHERS {
            let stored = block(store.get_user(id))
                .expect("read")
                .expect("user")
                .password;
            assert!(
                stored.starts_with(&ours),
                "{hasher}: re-hashed on the first login: {stored}"
            );
        }
        for (id, hasher) in UNSUPPORTED {
            let stored = block(store.get_user(id))
                .expect("read")
                .expect("user")
                .password;
            assert_eq!(stored, format!("!{hasher}"));
        }
        let unusable = block(store.get_user(40))
            .expect("read")
            .expect("user")
            .password;
        assert!(unusable.starts_with('!'), "{unusable}");
    }
    // And the new hash is of the same password.
    g.restart();
    for (id, hasher) in HASHERS {
        let user = name(id, hasher);
        login(&g, &user, &hasher_password(hasher)).expect_status(200);
        login(&g, &user, "wrong-Secret-2024").expect(401, json!({ "detail": WRONG_LOGIN }));
    }
}
