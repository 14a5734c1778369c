// `gatehouse import` from a Django `manage.py dumpdata` file: old passwords log in and are
// re-hashed, flags map to soft deletion and staff, ids are kept and registrations continue
// after them, conflicts are reported, malformed files and a running server fail clearly.

use crate::common;

use base64::Engine;
use common::paths::{admin_restore, ADMIN_USERS, PROFILE};
use common::*;
use gatehouse::store::{SledStore, UserStore};
use serde_json::{json, Value};
use std::path::PathBuf;
/// Few iterations keep the unoptimized test build fast; the count is read from each hash.
const ITERATIONS: u32 = 1200;

/// Django's `PBKDF2PasswordHasher.encode`, written out here rather than borrowed from the
/// code under test: PBKDF2-HMAC-SHA256 of the UTF-8 password and salt, the iteration count in
/// the string, standard base64 of the 32-byte key.
fn django_pbkdf2(password: &str, salt: &str, iterations: u32) -> String {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    format!(
        "pbkdf2_sha256${iterations}${salt}${}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// One `accounts.user` entry as the seed's dumpdata writes it; `extra` overrides fields.
fn user(pk: u64, username: &str, password: &str, extra: Value) -> Value {
    let mut fields = json!({
        "password": django_pbkdf2(password, &format!("salt{pk}{username}"), ITERATIONS),
        "last_login": "2024-03-01T09:15:30.123Z",
        "is_superuser": false,
        "username": username,
        "first_name": "",
        "last_name": "",
        "email": format!("{username}@example.com"),
        "is_staff": false,
        "is_active": true,
        "date_joined": "2024-01-31T12:00:00Z",
        "is_deleted": false,
        "groups": [],
        "user_permissions": []
    });
    if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        fields.extend(extra);
    }
    json!({"model": "accounts.user", "pk": pk, "fields": fields})
}

/// Other models a whole-project dumpdata carries along.
fn noise() -> Vec<Value> {
    vec![
        json!({"model": "contenttypes.contenttype", "pk": 1, "fields": {"app_label": "accounts", "model": "user"}}),
        json!({"model": "sessions.session", "pk": "x1y2", "fields": {"session_data": "e30", "expire_date": "2024-04-01T00:00:00Z"}}),
    ]
}

/// Writes `text` into the instance's directory; returns the path.
fn write_dump(g: &Gatehouse, name: &str, text: &str) -> PathBuf {
    let path = g.dir().join(name);
    std::fs::write(&path, text).expect("write dump");
    path
}

fn import(g: &Gatehouse, dump: &std::path::Path) -> CliRun {
    let path = dump.to_str().expect("utf-8 temp path");
    g.cli(&["import", path], &[])
}

/// Imports `dump` (written to a file) with the server stopped; asserts success; returns stdout.
#[track_caller]
fn import_ok(g: &mut Gatehouse, dump: &Value) -> String {
    g.kill();
    let path = write_dump(g, "dump.json", &dump.to_string());
    import(g, &path).assert_ok("import").stdout.clone()
}

/// Imports a file that must be refused (server stopped); returns stderr.
#[track_caller]
fn import_fails(g: &mut Gatehouse, name: &str, text: &str) -> String {
    g.kill();
    let path = write_dump(g, name, text);
    import(g, &path)
        .assert_failed(&format!("import of {name}"))
        .stderr
        .clone()
}

/// The stored password of user `id`, read from the store while the server is stopped.
fn stored_password(g: &mut Gatehouse, id: u64) -> String {
    g.kill();
    let store = SledStore::open(&g.data_dir.join("db"), 1 << 20).expect("open the stopped store");
    let user = block(store.get_user(id))
        .expect("read")
        .expect("the user exists");
    user.password
}

fn admin_list(g: &Gatehouse, token: &str) -> Vec<Value> {
    let r = g.get(ADMIN_USERS, Some(token));
    r.expect_status(200);
    r.json.as_array().expect("bare list").clone()
}

fn admin_entry(list: &[Value], username: &str) -> Value {
    list.iter()
        .find(|u| u["username"] == json!(username))
        .cloned()
        .unwrap_or_else(|| panic!("{username} is in the admin list: {list:?}"))
}

#[test]
fn imported_users_log_in_with_their_django_password_and_are_rehashed() {
    let mut g = Gatehouse::new().start();
    let mut dump = noise();
    dump.push(user(
        7,
        "alice",
        "Wonderland-1865",
        json!({"first_name": "Alice", "last_name": "Liddell"}),
    ));
    let out = import_ok(&mut g, &Value::Array(dump));
    assert!(
        out.contains("imported 1 user;") && out.contains("2 entries of other models ignored"),
        "{out}"
    );
    g.restart();

    g.login_attempt("alice", "wonderland-1865")
        .expect(401, wrong_login());
    let (access, _) = g.login("alice", "Wonderland-1865");
    g.get(PROFILE, Some(&access)).expect(
        200,
        json!({"id": 7, "username": "alice", "email": "alice@example.com",
               "first_name": "Alice", "last_name": "Liddell"}),
    );

    // That login replaced the Django hash with an argon2id one.
    let stored = stored_password(&mut g, 7);
    assert!(
        stored.starts_with("$argon2id$"),
        "re-hashed on the first login: {stored}"
    );
    g.restart();
    g.login("alice", "Wonderland-1865");
    g.login_attempt("alice", "wrong").expect(401, wrong_login());
}

#[test]
fn a_django_default_strength_hash_verifies() {
    // Django's own iteration count for the current release, as written by make_password:
    // `django_pbkdf2("TestPass123", "abcdefghijklmnop", 870_000)`, computed once beforehand
    // (with Python's hashlib.pbkdf2_hmac, which Django's PBKDF2PasswordHasher calls) rather
    // than here, where it cost as much CPU as the server's check of it.
    const HEAVY: &str =
        "pbkdf2_sha256$870000$abcdefghijklmnop$5sPCBNslzeC0wdCjpM7oY2Y9s4jCxKmMvuDLCBGiZhQ=";
    let mut g = Gatehouse::new().start();
    let hash = HEAVY;
    import_ok(
        &mut g,
        &json!([user(1, "heavy", "unused", json!({ "password": hash }))]),
    );
    g.restart();
    // 870k rounds of PBKDF2 in a debug build on a busy machine can take longer than the
    // harness's 30 s default: this login waits for as long as it takes.
    let login = g
        .request("POST", paths::TOKEN)
        .json(&json!({"username": "heavy", "password": "TestPass123"}))
        .timeout(std::time::Duration::from_secs(300));
    g.send(login).expect_status(200);
}

#[test]
fn deleted_and_inactive_users_are_soft_deleted_and_superusers_are_staff() {
    let mut g = Gatehouse::new().start();
    let dump = json!([
        user(1, "root", "RootPass-2024", json!({"is_superuser": true})),
        user(2, "gone", "GonePass-2024", json!({"is_deleted": true})),
        user(3, "off", "OffPass-2024", json!({"is_active": false})),
        user(4, "plain", "PlainPass-2024", json!({})),
        user(5, "clerk", "ClerkPass-2024", json!({"is_staff": true})),
    ]);
    import_ok(&mut g, &dump);
    g.restart();

    let (root, _) = g.login("root", "RootPass-2024");
    let list = admin_list(&g, &root);
    assert_eq!(list.len(), 5, "{list:?}");
    for (name, active) in [
        ("root", true),
        ("gone", false),
        ("off", false),
        ("plain", true),
        ("clerk", true),
    ] {
        assert_eq!(
            admin_entry(&list, name)["is_active"],
            json!(active),
            "{name}"
        );
    }
    for (name, password) in [("gone", "GonePass-2024"), ("off", "OffPass-2024")] {
        g.login_attempt(name, password).expect(401, wrong_login());
    }
    let (clerk, _) = g.login("clerk", "ClerkPass-2024");
    admin_list(&g, &clerk);
    let (plain, _) = g.login("plain", "PlainPass-2024");
    g.get(ADMIN_USERS, Some(&plain)).expect(403, forbidden());

    // A soft-deleted import is restored like any soft-deleted user, and its password works.
    g.call("PUT", &admin_restore(2), Some(json!({})), Some(&root))
        .expect_status(200);
    g.login("gone", "GonePass-2024");
}

#[test]
fn registrations_continue_after_the_highest_imported_id() {
    let mut g = Gatehouse::new().start();
    let dump = json!([
        user(3, "three", "ThreePass-2024", json!({})),
        user(41, "fortyone", "FortyOne-2024", json!({})),
        user(12, "twelve", "TwelvePass-2024", json!({})),
    ]);
    import_ok(&mut g, &dump);
    g.restart();
    assert_eq!(g.register("newcomer"), profile_of(42, "newcomer"));
    assert_eq!(g.register("another"), profile_of(43, "another"));
    g.login("twelve", "TwelvePass-2024");
}

#[test]
fn a_second_import_skips_the_users_already_there() {
    let mut g = Gatehouse::new().start();
    let dump = json!([
        user(1, "first", "FirstPass-2024", json!({})),
        user(2, "second", "SecondPass-2024", json!({})),
    ]);
    let out = import_ok(&mut g, &dump);
    assert!(out.contains("imported 2 users; 0 already present"), "{out}");
    g.restart();
    g.login("first", "FirstPass-2024");

    // The re-run neither duplicates nor puts the Django hash back over the new argon2id one.
    let out = import_ok(&mut g, &dump);
    assert!(
        out.contains("imported 0 users; 2 already present (skipped); 0 conflicts"),
        "{out}"
    );
    assert!(stored_password(&mut g, 1).starts_with("$argon2id$"));
    // A dump that grew since: only the new user is imported.
    let mut grown = dump.as_array().expect("array").clone();
    grown.push(user(3, "third", "ThirdPass-2024", json!({})));
    let out = import_ok(&mut g, &Value::Array(grown));
    assert!(out.contains("imported 1 user; 2 already present"), "{out}");
    g.restart();
    g.login("first", "FirstPass-2024");
    g.login("second", "SecondPass-2024");
    g.login("third", "ThirdPass-2024");
    assert_eq!(g.register("fourth"), profile_of(4, "fourth"));
}

#[test]
fn clashing_names_and_unsupported_hashes_are_reported_not_fatal() {
    let mut g = Gatehouse::new().start();
    let dump = json!([
        user(1, "alice", "AlicePass-2024", json!({})),
        user(
            2,
            "ALICE",
            "OtherPass-2024",
            json!({"email": "other@example.com"})
        ),
        user(
            3,
            "alicia",
            "AliciaPass-2024",
            json!({"email": "Alice@Example.com"})
        ),
        user(1, "again", "AgainPass-2024", json!({})),
        user(
            4,
            "old",
            "x",
            json!({"password": "md5$salt$0123456789abcdef0123456789abcdef"})
        ),
        user(5, "bob", "BobPass-2024", json!({})),
    ]);
    let out = import_ok(&mut g, &dump);
    assert!(
        out.contains("imported 3 users; 0 already present (skipped); 3 conflicts; 1 warning"),
        "{out}"
    );
    for line in [
        "user 1 (again): entry #4 repeats the pk of entry #1",
        "user 2 (ALICE): the username already belongs to user 1 (alice)",
        "user 3 (alicia): the email Alice@Example.com already belongs to user 1",
        "user 4 (old) has a password hash of an unsupported algorithm (md5)",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("0123456789abcdef"), "no hash in the report");
    g.restart();
    g.login("alice", "AlicePass-2024");
    g.login("bob", "BobPass-2024");
    g.login_attempt("ALICE", "OtherPass-2024")
        .expect(401, wrong_login());
    g.login_attempt("alicia", "AliciaPass-2024")
        .expect(401, wrong_login());
    // Imported with an unusable password: nothing logs in as them.
    g.login_attempt("old", "x").expect(401, wrong_login());
}

#[test]
fn malformed_files_fail_clearly_and_import_nobody() {
    let mut g = Gatehouse::new()
        .superuser("root", "root@example.com", PASSWORD)
        .start();
    let valid = user(10, "early", "EarlyPass-2024", json!({}));

    let err = import_fails(
        &mut g,
        "broken.json",
        &format!("[\n  {valid},\n  {{\"model\": \"accounts.user\",, }}\n]"),
    );
    assert!(
        err.contains("not valid JSON") && err.contains("line 3"),
        "{err}"
    );
    let err = import_fails(&mut g, "object.json", &valid.to_string());
    assert!(
        err.contains("must be a JSON array") && err.contains("found an object"),
        "{err}"
    );
    let err = import_fails(
        &mut g,
        "nopk.json",
        &json!([valid, {"model": "accounts.user", "fields": {"username": "x"}}]).to_string(),
    );
    assert!(err.contains("entry #2 of the dump has no \"pk\""), "{err}");
    let err = import_fails(
        &mut g,
        "nofields.json",
        &json!([valid, {"model": "auth.user", "pk": 11}]).to_string(),
    );
    assert!(
        err.contains("entry #2 of the dump has no \"fields\""),
        "{err}"
    );
    let err = import_fails(
        &mut g,
        "nousername.json",
        &json!([valid, {"model": "auth.user", "pk": 11, "fields": {"email": "a@example.com"}}])
            .to_string(),
    );
    assert!(
        err.contains("entry #2 of the dump (auth.user pk 11) has no username"),
        "{err}"
    );
    let err = import_fails(
        &mut g,
        "baddate.json",
        &json!([user(
            11,
            "late",
            "LatePass-2024",
            json!({"date_joined": "31/01/2024"})
        )])
        .to_string(),
    );
    assert!(
        err.contains("\"fields.date_joined\" is not an ISO-8601 date and time"),
        "{err}"
    );
    let err = import_fails(&mut g, "empty.json", "");
    assert!(err.contains("not valid JSON"), "{err}");

    // A file that is not there.
    let out = import(&g, &g.dir().join("no-such-dump.json"));
    out.assert_failed("import of a missing file");
    assert!(
        out.stderr.contains("no-such-dump.json"),
        "the message names the file: {}",
        out.stderr
    );

    // None of the refused files imported anything, not even the valid entries before the bad.
    g.restart();
    let (root, _) = g.login("root", PASSWORD);
    let names: Vec<Value> = admin_list(&g, &root)
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("root")]);
}

#[test]
fn import_while_the_server_holds_the_store_says_in_use() {
    let mut g = Gatehouse::new().start();
    let path = write_dump(
        &g,
        "dump.json",
        &json!([user(5, "eve", "EvePass-2024", json!({}))]).to_string(),
    );
    let out = import(&g, &path);
    out.assert_failed("import while serving");
    assert!(
        out.stderr.to_lowercase().contains("in use"),
        "the message says the store is in use: {}",
        out.stderr
    );
    // The server is unharmed, and nothing was imported behind its back.
    g.register("stillhere");
    g.restart();
    g.login_attempt("eve", "EvePass-2024")
        .expect(401, wrong_login());
    g.login("stillhere", PASSWORD);
    // Once the server is stopped, the same file imports.
    import_ok(&mut g, &json!([user(5, "eve", "EvePass-2024", json!({}))]));
    g.restart();
    g.login("eve", "EvePass-2024");
}
