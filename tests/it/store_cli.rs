// Store and command line: racing registrations, durability and id order across SIGKILL restarts,
// the JWT secret (generated, env, file), createsuperuser, check-config and serve's config checks.
use crate::common;

use common::paths::{ADMIN_USERS, PROFILE, REGISTER};
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Barrier;
use std::time::Duration;

/// POSTs every body to /api/auth/register/ at once (threads released by one barrier).
fn race(g: &Gatehouse, bodies: Vec<Value>) -> Vec<Resp> {
    let barrier = Barrier::new(bodies.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    g.post(REGISTER, body, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

/// Exactly one 201; every other response is 400 with exactly `loser_body`. Returns the winner.
#[track_caller]
fn one_winner(results: &[Resp], loser_body: &Value) -> Value {
    let winners: Vec<&Resp> = results.iter().filter(|r| r.status == 201).collect();
    let summary: Vec<String> = results
        .iter()
        .map(|r| format!("{} {}", r.status, r.text))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration must win:\n{}",
        summary.join("\n")
    );
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!(
            (r.status, &r.json),
            (400, loser_body),
            "every loser gets the duplicate error:\n{}",
            summary.join("\n")
        );
    }
    winners[0].json.clone()
}

/// `check-config -c FILE` with nothing from the environment.
fn check_config_file(path: &Path) -> CliRun {
    let mut cmd = clean_command();
    cmd.arg("check-config").arg("-c").arg(path);
    run(cmd, Duration::from_secs(60))
}

/// A gatehouse whose config file has `[section] key = "x"`, a key no `Config` has; not started.
fn with_unknown_key(section: &'static str, key: &'static str) -> Gatehouse {
    Gatehouse::new()
        .edit_file(move |file| {
            file[section]
                .as_table_mut()
                .expect("a section of the config")
                .insert(key.into(), "x".into());
        })
        .build()
}

#[test]
fn sixteen_threads_racing_for_one_username_give_one_201() {
    let g = Gatehouse::new().start();
    let bodies = (0..16)
        .map(|i| json!({"username": "contested", "email": format!("contested{i}@example.com"), "password": PASSWORD}))
        .collect();
    let results = race(&g, bodies);
    let winner = one_winner(&results, &json!({ "username": [USERNAME_TAKEN] }));
    assert_eq!(winner["username"], json!("contested"));
    g.login("contested", PASSWORD);
    let next = g.register("afterwards");
    assert!(id_of(&next) > id_of(&winner), "ids keep increasing");
}

#[test]
fn racing_names_that_differ_only_in_case_give_one_201() {
    let g = Gatehouse::new().start();
    let base = "casey";
    let bodies = (0..16u32)
        .map(|mask| {
            let name: String = base
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            json!({"username": name, "email": format!("casey{mask}@example.com"), "password": PASSWORD})
        })
        .collect();
    let results = race(&g, bodies);
    let winner = one_winner(&results, &json!({ "username": [USERNAME_TAKEN] }));
    let name = winner["username"].as_str().expect("username").to_string();
    assert_eq!(name.to_ascii_lowercase(), base);
    g.login(&name, PASSWORD);
}

#[test]
fn racing_for_one_email_gives_one_201() {
    let g = Gatehouse::new().start();
    let bodies = (0..16)
        .map(|i| {
            let email = if i % 2 == 0 {
                "shared@example.com"
            } else {
                "Shared@Example.COM"
            };
            json!({"username": format!("mailer{i}"), "email": email, "password": PASSWORD})
        })
        .collect();
    let results = race(&g, bodies);
    let winner = one_winner(&results, &json!({ "email": [EMAIL_TAKEN] }));
    let name = winner["username"].as_str().expect("username").to_string();
    g.login(&name, PASSWORD);
    // The losers' names were never taken.
    let loser = (0..16)
        .map(|i| format!("mailer{i}"))
        .find(|n| *n != name)
        .expect("a loser");
    g.register(&loser);
}

#[test]
fn sigkill_restart_keeps_every_user_and_ids_keep_increasing() {
    let mut g = Gatehouse::new().start();
    let names = ["durable1", "durable2", "durable3", "durable4"];
    let mut ids = Vec::new();
    for n in names {
        ids.push(id_of(&g.register(n)));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    // SIGKILL right after the last acknowledged write.
    g.restart();
    for (n, id) in names.iter().zip(&ids) {
        let (access, _) = g.login(n, PASSWORD);
        g.get(PROFILE, Some(&access))
            .expect(200, profile_of(*id, n));
    }
    let id5 = id_of(&g.register("durable5"));
    assert!(
        id5 > ids[3],
        "id {id5} after restart must exceed every earlier id {ids:?}"
    );

    g.restart();
    let id6 = id_of(&g.register("durable6"));
    assert!(id6 > id5, "id {id6} must exceed {id5}");
    for n in names.iter().chain(&["durable5", "durable6"]) {
        g.login(n, PASSWORD);
    }
    // A taken name is still taken after the restarts.
    g.post(
        REGISTER,
        json!({"username": "DURABLE1", "email": "other@example.com", "password": PASSWORD}),
        None,
    )
    .expect(400, json!({ "username": [USERNAME_TAKEN] }));
}

#[test]
fn generated_secret_is_private_and_stable_across_restarts() {
    let mut g = Gatehouse::new().start();
    let path = g.data_dir.join("jwt_secret");
    let meta = std::fs::metadata(&path).expect("<data_dir>/jwt_secret exists after first start");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "jwt_secret mode is 0600"
    );
    let dir_mode = std::fs::metadata(&g.data_dir)
        .expect("data dir")
        .permissions()
        .mode();
    assert_eq!(
        dir_mode & 0o777,
        0o700,
        "a new data directory is the owner's alone"
    );
    let secret = std::fs::read_to_string(&path)
        .expect("read")
        .trim()
        .to_string();
    assert_eq!(secret.len(), 64, "64 hex characters: {secret:?}");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret:?}");

    let id = id_of(&g.register("keeper"));
    let (access, refresh) = g.login("keeper", PASSWORD);
    assert!(
        signed_with(&access, secret.as_bytes()),
        "tokens are signed with the file's content"
    );

    g.restart();
    let after = std::fs::read_to_string(&path)
        .expect("read")
        .trim()
        .to_string();
    assert_eq!(after, secret, "the secret is not regenerated on restart");
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    g.get(PROFILE, Some(&access))
        .expect(200, profile_of(id, "keeper"));
    g.refresh(&refresh).expect_status(200);
}

#[test]
fn env_secret_overrides_the_generated_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut first = Gatehouse::new().data_dir(&data).start();
    let generated = first.secret();
    let id = id_of(&first.register("envy"));
    let (old_access, _) = first.login("envy", PASSWORD);
    first.kill();
    drop(first);

    let env_secret = "an-operator-supplied-secret-of-more-than-32-bytes";
    let g = Gatehouse::new()
        .data_dir(&data)
        .env("GATEHOUSE_JWT_SECRET", env_secret)
        .start();
    let (access, _) = g.login("envy", PASSWORD);
    assert!(
        signed_with(&access, env_secret.as_bytes()),
        "signed with GATEHOUSE_JWT_SECRET"
    );
    assert!(!signed_with(&access, generated.as_bytes()));
    g.get(PROFILE, Some(&access))
        .expect(200, profile_of(id, "envy"));
    let r = g.get(PROFILE, Some(&old_access));
    assert_eq!(
        r.status, 401,
        "a token signed with the generated secret is rejected: {}",
        r.text
    );
    assert_eq!(
        r.json["messages"][0]["message"],
        json!("Token is invalid"),
        "{}",
        r.text
    );
}

#[test]
fn jwt_secret_file_is_used_and_the_env_wins_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_path = dir.path().join("jwt.key");
    let file_secret = "file-secret-file-secret-file-secret-0123456789";
    std::fs::write(&secret_path, file_secret).expect("write secret");
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let secret_file = |c: &mut gatehouse::config::Config| {
        c.jwt.secret_file = secret_path.display().to_string();
    };

    let g = Gatehouse::new().with_config(secret_file).start();
    let id = id_of(&g.register("filed"));
    let (access, _) = g.login("filed", PASSWORD);
    assert!(
        signed_with(&access, file_secret.as_bytes()),
        "signed with [jwt] secret_file"
    );
    let forged = sign_hs256(&hs256_header(), &claims(&access), file_secret.as_bytes());
    g.get(PROFILE, Some(&forged))
        .expect(200, profile_of(id, "filed"));
    drop(g);

    let env_secret = "the-environment-wins-over-the-secret-file-1234";
    let g = Gatehouse::new()
        .with_config(secret_file)
        .env("GATEHOUSE_JWT_SECRET", env_secret)
        .start();
    g.register("filed2");
    let (access, _) = g.login("filed2", PASSWORD);
    assert!(signed_with(&access, env_secret.as_bytes()));
    assert!(!signed_with(&access, file_secret.as_bytes()));
}

#[test]
fn an_environment_variable_wins_over_the_config_file_on_serve() {
    // The file says 300 s; GATEHOUSE_JWT_ACCESS_LIFETIME_SECONDS says 120.
    let g = Gatehouse::new()
        .with_config(|c| c.jwt.access_lifetime_seconds = 300)
        .env("GATEHOUSE_JWT_ACCESS_LIFETIME_SECONDS", "120")
        .start();
    let (_, access, _) = g.user("overridden");
    let c = claims(&access);
    let lifetime = c["exp"].as_u64().expect("exp") - c["iat"].as_u64().expect("iat");
    assert_eq!(lifetime, 120, "{c}");
}

#[test]
fn createsuperuser_noinput_creates_a_staff_user() {
    let g = Gatehouse::new()
        .superuser("root", "root@example.com", PASSWORD)
        .start();
    let (root, _) = g.login("root", PASSWORD);
    let root_id = id_of(&g.get(PROFILE, Some(&root)).json);
    let plain = g.user_token("plain");

    let r = g.get(ADMIN_USERS, Some(&root));
    r.expect_status(200);
    let list = r.json.as_array().expect("bare list");
    assert!(
        list.contains(&verified(admin_item(
            root_id,
            "root",
            "root@example.com",
            true
        ))),
        "{}",
        r.text
    );
    assert!(
        list.iter().any(|u| u["username"] == json!("plain")),
        "{}",
        r.text
    );
    g.get(ADMIN_USERS, Some(&plain)).expect(403, forbidden());
}

const CREATESUPERUSER: [&str; 6] = [
    "createsuperuser",
    "--noinput",
    "--username",
    "late",
    "--email",
    "late@example.com",
];

#[test]
fn createsuperuser_without_the_password_variable_fails_clearly() {
    let mut g = Gatehouse::new().start();
    g.kill(); // the store is free: the only thing missing is the password
    let out = g.cli(&CREATESUPERUSER, &[]);
    out.assert_failed("createsuperuser without GATEHOUSE_SUPERUSER_PASSWORD");
    out.assert_says(
        "GATEHOUSE_SUPERUSER_PASSWORD",
        "the message names the variable to set",
    );
    g.restart();
    g.login_attempt("late", PASSWORD).expect(401, wrong_login());
}

#[test]
fn createsuperuser_while_the_server_holds_the_store_says_in_use() {
    let mut g = Gatehouse::new().start();
    let out = g.cli(
        &CREATESUPERUSER,
        &[("GATEHOUSE_SUPERUSER_PASSWORD", PASSWORD)],
    );
    out.assert_failed("createsuperuser while serving");
    out.assert_says("in use", "the message says the store is in use");
    // The server is unharmed, and the user was not created behind its back.
    g.register("stillhere");
    g.restart();
    g.login_attempt("late", PASSWORD).expect(401, wrong_login());
    g.login("stillhere", PASSWORD);
}

#[test]
fn check_config_accepts_a_good_config() {
    let g = Gatehouse::new().build();
    let out = g.cli(&["check-config"], &[]);
    out.assert_ok("check-config on the harness config");
    let listen = g.config.server.listen.expect("listen").to_string();
    out.assert_says(&listen, "check-config explains the listen address");
    check_config_file(&g.config_path).assert_ok("check-config -c FILE");
}

#[test]
fn check_config_rejects_an_unknown_key_and_names_it() {
    let g = with_unknown_key("server", "listen_addr");
    let out = check_config_file(&g.config_path);
    out.assert_failed("check-config -c with an unknown key");
    out.assert_says("listen_addr", "names the key");

    // Same through GATEHOUSE_CONFIG, and in another section.
    let g = with_unknown_key("jwt", "acess_lifetime_seconds");
    let out = g.cli(&["check-config"], &[]);
    out.assert_failed("check-config with a misspelt [jwt] key");
    out.assert_says("acess_lifetime_seconds", "names the key");

    // The same config without the bad key passes: the key is what failed.
    let good = Gatehouse::new()
        .with_config(|c| c.jwt.access_lifetime_seconds = 60)
        .build();
    check_config_file(&good.config_path).assert_ok("check-config without the misspelt key");
}

#[test]
fn check_config_reports_a_garbage_listen_override() {
    let g = Gatehouse::new().build();
    let out = g.cli(&["check-config"], &[("GATEHOUSE_SERVER_LISTEN", "garbage")]);
    out.assert_failed("check-config with GATEHOUSE_SERVER_LISTEN=garbage");
    out.assert_says("garbage", "reports the bad value")
        .assert_says("listen", "names the setting");
    // And an env var naming no key at all.
    let out = g.cli(
        &["check-config"],
        &[("GATEHOUSE_SERVER_LISTEN_ADDR", "127.0.0.1:1")],
    );
    out.assert_failed("check-config with an unknown GATEHOUSE_ variable");
    let text = out.output();
    assert!(
        text.contains("GATEHOUSE_SERVER_LISTEN_ADDR")
            || text.to_lowercase().contains("listen_addr"),
        "names the variable:\n{text}"
    );
}

#[test]
fn serve_refuses_to_start_with_an_unknown_key() {
    let g = with_unknown_key("server", "listen_addr");
    let out = g.cli(&["serve"], &[]);
    out.assert_failed("serve with an unknown key");
    out.assert_says("listen_addr", "names the key");
    assert!(
        std::net::TcpStream::connect(g.config.server.listen.expect("listen")).is_err(),
        "nothing listens on the configured port"
    );
}
