use crate::common;

// A long `gatehouse import` (issue 13): a generated dump of many users is streamed in two
// passes and imported whole, with plain progress lines on stderr when it is not a terminal,
// and the summary on stdout. (Memory figures for 10k / 200k / 1M users: benches/README.md.)

use common::*;
use std::io::Write;

const USERS: u64 = 10_000;
const HASH: &str =
    "pbkdf2_sha256$720000$abcdefghijklmnopqrstuv$W5l0S1eO5bNNf3d3vAhXkXGnkV8k6xY8v1pD0bqg6kU=";

/// Writes a dumpdata of `n` users (ids 2 to n + 1: the superuser is 1) in two groups, entry
/// by entry.
fn write_dump(path: &std::path::Path, n: u64) {
    let file = std::fs::File::create(path).expect("create the dump");
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "[").expect("write");
    for (pk, name) in [(1, "billing"), (2, "ops")] {
        writeln!(
            out,
            r#"{{"model": "auth.group", "pk": {pk}, "fields": {{"name": "{name}", "permissions": []}}}},"#
        )
        .expect("write");
    }
    for pk in 2..=n + 1 {
        let groups = if pk % 2 == 0 { "[1, 2]" } else { "[2]" };
        let comma = if pk <= n { "," } else { "" };
        writeln!(
            out,
            r#"{{"model": "auth.user", "pk": {pk}, "fields": {{"password": "{HASH}", "last_login": null, "is_superuser": false, "username": "user{pk}", "first_name": "", "last_name": "", "email": "user{pk}@example.com", "is_staff": false, "is_active": true, "date_joined": "2024-01-31T12:00:00Z", "groups": {groups}, "user_permissions": []}}}}{comma}"#
        )
        .expect("write");
    }
    writeln!(out, "]").expect("write");
    out.flush().expect("flush");
}

#[test]
fn a_large_dump_streams_in_with_progress_lines_on_a_non_terminal() {
    let mut g = Gatehouse::new()
        .superuser("root", "root@example.com", "Root-Pass-2024")
        .start();
    g.kill();
    let path = g.data_dir.parent().expect("a directory").join("large.json");
    write_dump(&path, USERS);
    let out = g.cli(&["import", path.to_str().expect("utf-8 path")], &[]);
    out.assert_ok("import of a large dump");
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(
        stdout.starts_with(&format!(
            "imported {USERS} users; 0 already present (skipped); 0 conflicts; 0 warnings; 2 groups read;"
        )),
        "{stdout}"
    );
    // Stderr is a pipe here: plain lines, no bar (no carriage returns, no escapes).
    let lines: Vec<&str> = stderr.lines().collect();
    for phase in ["checking", "writing"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("import: {phase}: ")) && l.ends_with(" to read")),
            "{phase} starts: {stderr}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("import: {phase} done: {USERS} users, "))),
            "{phase} ends: {stderr}"
        );
    }
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "plain lines only: {stderr:?}"
    );
    // Everyone arrived, with their groups.
    g.restart();
    let root = g.login("root", "Root-Pass-2024").0;
    let r = g.get("/api/auth/admin/users/?page=1&page_size=1", Some(&root));
    assert_eq!(r.json["count"], USERS + 1, "{}", r.text);
    for (id, groups) in [
        (USERS, serde_json::json!(["billing", "ops"])),
        (USERS + 1, serde_json::json!(["ops"])),
    ] {
        let r = g.get(&format!("/api/auth/admin/users/{id}/"), Some(&root));
        r.expect_status(200);
        assert_eq!(r.json["groups"], groups, "user {id}");
    }
    // A second run skips them all.
    g.kill();
    let out = g.cli(&["import", path.to_str().expect("utf-8 path")], &[]);
    let stdout = &out.stdout;
    assert!(
        stdout.starts_with(&format!(
            "imported 0 users; {USERS} already present (skipped)"
        )),
        "{stdout}"
    );
}
