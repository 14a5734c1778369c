mod common;

use common::signed_with;
// Store and command line: racing registrations, durability and id order across SIGKILL restarts,
// the JWT secret (generated, env, file), createsuperuser, check-config and serve's config checks.

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const REGISTER: &str = "/api/auth/register/";
const DUP_USERNAME: &str = "A user with that username already exists.";
const DUP_EMAIL: &str = "user with this email address already exists.";
const WRONG_LOGIN: &str = "No active account found with the given credentials";

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

fn login_resp(g: &Gatehouse, username: &str, password: &str) -> Resp {
    g.post(
        "/api/token/",
        json!({"username": username, "password": password}),
        None,
    )
}

/// A command for the binary with no GATEHOUSE_* variable inherited from the test environment.
fn clean_command() -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `cmd` to completion (killing it after `secs`); returns its status (None: timed out)
/// and everything it wrote to stdout and stderr.
fn run_with_timeout(mut cmd: Command, secs: u64) -> (Option<ExitStatus>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("out.log");
    let out = std::fs::File::create(&out_path).expect("log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("fd"))
        .stderr(out)
        .spawn()
        .expect("spawn gatehouse");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
    )
}

/// A subcommand against `g`'s config file (the harness's builder env is not used by these tests).
fn cli(g: &Gatehouse, args: &[&str], env: &[(&str, &str)]) -> (Option<ExitStatus>, String) {
    let mut cmd = clean_command();
    cmd.env("GATEHOUSE_CONFIG", &g.config_path).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, 60)
}

#[track_caller]
fn assert_failed(status: Option<ExitStatus>, output: &str, what: &str) {
    let status =
        status.unwrap_or_else(|| panic!("{what}: did not exit within the timeout:\n{output}"));
    assert!(
        !status.success(),
        "{what}: must exit non-zero, got {status}:\n{output}"
    );
}

/// A complete config of our own (for cases the harness's generated file cannot express).
fn write_config(dir: &Path, server_extra: &str, extra: &str) -> (PathBuf, u16) {
    let port = free_port();
    let metrics = loop {
        let p = free_port();
        if p != port {
            break p;
        }
    };
    let path = dir.join("gatehouse.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
         data_dir = \"{}\"\npid_file = \"{}\"\nupgrade_sock = \"{}\"\n{server_extra}\n{extra}\n",
        dir.join("data").display(),
        dir.join("gatehouse.pid").display(),
        dir.join("upgrade.sock").display(),
    );
    std::fs::write(&path, text).expect("write config");
    (path, port)
}

fn id_of(user: &Value) -> u64 {
    user["id"].as_u64().expect("numeric id")
}

#[test]
fn sixteen_threads_racing_for_one_username_give_one_201() {
    let g = Gatehouse::start();
    let bodies = (0..16)
        .map(|i| json!({"username": "contested", "email": format!("contested{i}@example.com"), "password": PASSWORD}))
        .collect();
    let results = race(&g, bodies);
    let winner = one_winner(&results, &json!({ "username": [DUP_USERNAME] }));
    assert_eq!(winner["username"], json!("contested"));
    g.login("contested", PASSWORD);
    let next = g.register("afterwards");
    assert!(id_of(&next) > id_of(&winner), "ids keep increasing");
}

#[test]
fn racing_names_that_differ_only_in_case_give_one_201() {
    let g = Gatehouse::start();
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
    let winner = one_winner(&results, &json!({ "username": [DUP_USERNAME] }));
    let name = winner["username"].as_str().expect("username").to_string();
    assert_eq!(name.to_ascii_lowercase(), base);
    g.login(&name, PASSWORD);
}

#[test]
fn racing_for_one_email_gives_one_201() {
    let g = Gatehouse::start();
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
    let winner = one_winner(&results, &json!({ "email": [DUP_EMAIL] }));
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
    let mut g = Gatehouse::start();
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
        g.get("/api/auth/profile/", Some(&access))
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
    .expect(400, json!({ "username": [DUP_USERNAME] }));
}

#[test]
fn generated_secret_is_private_and_stable_across_restarts() {
    let mut g = Gatehouse::start();
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
    g.get("/api/auth/profile/", Some(&access))
        .expect(200, profile_of(id, "keeper"));
    g.post("/api/token/refresh/", json!({ "refresh": refresh }), None)
        .expect_status(200);
}

#[test]
fn env_secret_overrides_the_generated_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut first = Gatehouse::builder().data_dir(&data).start();
    let generated = first.secret();
    let id = id_of(&first.register("envy"));
    let (old_access, _) = first.login("envy", PASSWORD);
    first.kill();
    drop(first);

    let env_secret = "an-operator-supplied-secret-of-more-than-32-bytes";
    let g = Gatehouse::builder()
        .data_dir(&data)
        .env("GATEHOUSE_JWT_SECRET", env_secret)
        .start();
    let (access, _) = g.login("envy", PASSWORD);
    assert!(
        signed_with(&access, env_secret.as_bytes()),
        "signed with GATEHOUSE_JWT_SECRET"
    );
    assert!(!signed_with(&access, generated.as_bytes()));
    g.get("/api/auth/profile/", Some(&access))
        .expect(200, profile_of(id, "envy"));
    let r = g.get("/api/auth/profile/", Some(&old_access));
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
    let toml = format!("[jwt]\nsecret_file = \"{}\"\n", secret_path.display());

    let g = Gatehouse::builder().toml(&toml).start();
    let id = id_of(&g.register("filed"));
    let (access, _) = g.login("filed", PASSWORD);
    assert!(
        signed_with(&access, file_secret.as_bytes()),
        "signed with [jwt] secret_file"
    );
    let forged = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(&access),
        file_secret.as_bytes(),
    );
    g.get("/api/auth/profile/", Some(&forged))
        .expect(200, profile_of(id, "filed"));
    drop(g);

    let env_secret = "the-environment-wins-over-the-secret-file-1234";
    let g = Gatehouse::builder()
        .toml(&toml)
        .env("GATEHOUSE_JWT_SECRET", env_secret)
        .start();
    g.register("filed2");
    let (access, _) = g.login("filed2", PASSWORD);
    assert!(signed_with(&access, env_secret.as_bytes()));
    assert!(!signed_with(&access, file_secret.as_bytes()));
}

#[test]
fn createsuperuser_noinput_creates_a_staff_user() {
    let g = Gatehouse::builder()
        .superuser("root", "root@example.com", PASSWORD)
        .start();
    let (root, _) = g.login("root", PASSWORD);
    let root_id = id_of(&g.get("/api/auth/profile/", Some(&root)).json);
    let plain = g.user_token("plain");

    let r = g.get("/api/auth/admin/users/", Some(&root));
    r.expect_status(200);
    let list = r.json.as_array().expect("bare list");
    assert!(
        list.contains(
            &json!({"id": root_id, "username": "root", "email": "root@example.com",
                               "first_name": "", "last_name": "", "is_active": true})
        ),
        "{}",
        r.text
    );
    assert!(
        list.iter().any(|u| u["username"] == json!("plain")),
        "{}",
        r.text
    );
    g.get("/api/auth/admin/users/", Some(&plain)).expect(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
}

#[test]
fn createsuperuser_without_the_password_variable_fails_clearly() {
    let mut g = Gatehouse::start();
    g.kill(); // the store is free: the only thing missing is the password
    let (status, out) = cli(
        &g,
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "nopass",
            "--email",
            "nopass@example.com",
        ],
        &[],
    );
    assert_failed(
        status,
        &out,
        "createsuperuser without GATEHOUSE_SUPERUSER_PASSWORD",
    );
    assert!(
        out.contains("GATEHOUSE_SUPERUSER_PASSWORD"),
        "the message names the variable to set:\n{out}"
    );
    g.restart();
    login_resp(&g, "nopass", PASSWORD).expect(401, json!({ "detail": WRONG_LOGIN }));
}

#[test]
fn createsuperuser_while_the_server_holds_the_store_says_in_use() {
    let mut g = Gatehouse::start();
    let (status, out) = cli(
        &g,
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "late",
            "--email",
            "late@example.com",
        ],
        &[("GATEHOUSE_SUPERUSER_PASSWORD", PASSWORD)],
    );
    assert_failed(status, &out, "createsuperuser while serving");
    assert!(
        out.to_lowercase().contains("in use"),
        "the message says the store is in use:\n{out}"
    );
    // The server is unharmed, and the user was not created behind its back.
    g.register("stillhere");
    g.restart();
    login_resp(&g, "late", PASSWORD).expect(401, json!({ "detail": WRONG_LOGIN }));
    g.login("stillhere", PASSWORD);
}

#[test]
fn check_config_accepts_a_good_config() {
    let mut g = Gatehouse::start();
    g.kill();
    let (status, out) = cli(&g, &["check-config"], &[]);
    let status = status.expect("check-config exits");
    assert!(
        status.success(),
        "check-config on the harness config: {status}\n{out}"
    );
    assert!(
        out.contains(&format!("127.0.0.1:{}", g.port)),
        "check-config explains the listen address:\n{out}"
    );
    let (status, out) = cli(
        &g,
        &[
            "check-config",
            "-c",
            g.config_path.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    assert!(
        status.expect("exits").success(),
        "check-config -c FILE:\n{out}"
    );
}

#[test]
fn check_config_rejects_an_unknown_key_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = write_config(dir.path(), "listen_addr = \"x\"", "");
    let mut cmd = clean_command();
    cmd.args(["check-config", "-c", path.to_str().expect("utf-8")]);
    let (status, out) = run_with_timeout(cmd, 60);
    assert_failed(status, &out, "check-config -c with an unknown key");
    assert!(out.contains("listen_addr"), "names the key:\n{out}");

    // Same through GATEHOUSE_CONFIG, and in another section.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let (path2, _) = write_config(dir2.path(), "", "[jwt]\nacess_lifetime_seconds = 60\n");
    let mut cmd = clean_command();
    cmd.arg("check-config").env("GATEHOUSE_CONFIG", &path2);
    let (status, out) = run_with_timeout(cmd, 60);
    assert_failed(status, &out, "check-config with a misspelt [jwt] key");
    assert!(
        out.contains("acess_lifetime_seconds"),
        "names the key:\n{out}"
    );

    // The same file without the bad key passes: the key is what failed.
    let (good, _) = write_config(dir2.path(), "", "[jwt]\naccess_lifetime_seconds = 60\n");
    let mut cmd = clean_command();
    cmd.args(["check-config", "-c", good.to_str().expect("utf-8")]);
    let (status, out) = run_with_timeout(cmd, 60);
    assert!(status.expect("exits").success(), "{out}");
}

#[test]
fn check_config_reports_a_garbage_listen_override() {
    let mut g = Gatehouse::start();
    g.kill();
    let (status, out) = cli(
        &g,
        &["check-config"],
        &[("GATEHOUSE_SERVER_LISTEN", "garbage")],
    );
    assert_failed(
        status,
        &out,
        "check-config with GATEHOUSE_SERVER_LISTEN=garbage",
    );
    assert!(out.contains("garbage"), "reports the bad value:\n{out}");
    assert!(
        out.to_lowercase().contains("listen"),
        "names the setting:\n{out}"
    );
    // And an env var naming no key at all.
    let (status, out) = cli(
        &g,
        &["check-config"],
        &[("GATEHOUSE_SERVER_LISTEN_ADDR", "127.0.0.1:1")],
    );
    assert_failed(
        status,
        &out,
        "check-config with an unknown GATEHOUSE_ variable",
    );
    assert!(
        out.contains("GATEHOUSE_SERVER_LISTEN_ADDR") || out.to_lowercase().contains("listen_addr"),
        "names the variable:\n{out}"
    );
}

#[test]
fn serve_refuses_to_start_with_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, port) = write_config(dir.path(), "listen_addr = \"x\"", "");
    let mut cmd = clean_command();
    cmd.args(["serve", "-c", path.to_str().expect("utf-8")]);
    let (status, out) = run_with_timeout(cmd, 30);
    assert_failed(status, &out, "serve with an unknown key");
    assert!(out.contains("listen_addr"), "names the key:\n{out}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the configured port"
    );
}
