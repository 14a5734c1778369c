use crate::common;

// Groups (SPEC §12, the data part): the admin detail shows `is_staff` and `groups`; staff change
// them (and `is_active`) with PATCH, effective on the very next request on the API and the proxy
// path; upstreams get `X-User-Groups`, and no client copy of it ever reaches them; `import`
// brings Django's groups along, by id or natural key.

use common::upstream::{Recorded, Upstream};
use common::*;
use gatehouse::config::{AuthMode, Config, RouteConfig};
use serde_json::{json, Value};

const ROOT_PW: &str = "Root-Pass-2024";
const PROFILE: &str = "/api/auth/profile/";

fn detail(id: u64) -> String {
    format!("/api/auth/admin/users/{id}/")
}

/// gatehouse with a superuser `root` (id 1) and three routes to `up`: required, staff only,
/// public.
fn gateway(up: &Upstream, edit: impl FnOnce(&mut Config)) -> Gatehouse {
    let addr = up.addr;
    Gatehouse::new()
        .superuser("root", "root@example.com", ROOT_PW)
        .with_config(|c| {
            c.routes = vec![
                route("/svc/", &[addr]),
                RouteConfig {
                    require_staff: true,
                    ..route("/staff/", &[addr])
                },
                public_route("/open/", &[addr]),
            ]
        })
        .with_config(edit)
        .start()
}

fn patch(g: &Gatehouse, id: u64, body: Value, token: &str) -> Resp {
    g.call("PATCH", &detail(id), Some(body), Some(token))
}

/// The identity the upstream received on its last request.
fn seen(up: &Upstream) -> (Vec<String>, Vec<String>) {
    let r = up.last();
    (
        r.header_values("x-user-groups"),
        r.header_values("x-user-is-staff"),
    )
}

fn svc(g: &Gatehouse, path: &str, token: &str) -> Resp {
    g.get(path, Some(token))
}

#[test]
fn staff_patch_staff_groups_and_active_effective_on_the_next_request() {
    let up = Upstream::start();
    let g = gateway(&up, |_| {});
    let root = g.login("root", ROOT_PW).0;
    let alice = g.user_token("alice");

    // No groups yet: the header is there, empty (the upstream can tell "none" from "unset").
    svc(&g, "/svc/a", &alice).expect_status(200);
    assert_eq!(seen(&up), (vec![String::new()], vec!["false".to_string()]));
    let r = g.get(&detail(2), Some(&root));
    r.expect(
        200,
        json!({"id": 2, "username": "alice", "email": "alice@example.com", "first_name": "",
               "last_name": "", "is_active": true, "email_verified": false, "is_staff": false, "groups": [],
               "mfa": false, "is_service": false}),
    );
    assert_eq!(
        r.header("allow").as_deref(),
        Some("GET, PATCH, HEAD, OPTIONS")
    );

    // Staff and groups: sorted, each once; the same token carries the new state at once.
    patch(
        &g,
        2,
        json!({"is_staff": true, "groups": ["ops", " billing ", "ops"], "password": "ignored"}),
        &root,
    )
    .expect(
        200,
        json!({"id": 2, "username": "alice", "email": "alice@example.com", "first_name": "",
               "last_name": "", "is_active": true, "email_verified": false, "is_staff": true, "groups": ["billing", "ops"],
               "mfa": false, "is_service": false}),
    );
    svc(&g, "/svc/b", &alice).expect_status(200);
    assert_eq!(
        seen(&up),
        (vec!["billing,ops".to_string()], vec!["true".to_string()])
    );
    svc(&g, "/staff/b", &alice).expect_status(200);
    // A new staff member may use the staff API at once too.
    g.get("/api/auth/admin/users/", Some(&alice))
        .expect_status(200);

    // Taken away again: refused on the staff route on the very next request.
    patch(&g, 2, json!({"is_staff": "false", "groups": []}), &root).expect_status(200);
    svc(&g, "/staff/c", &alice).expect(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    svc(&g, "/svc/c", &alice).expect_status(200);
    assert_eq!(seen(&up), (vec![String::new()], vec!["false".to_string()]));
    g.get("/api/auth/admin/users/", Some(&alice))
        .expect_status(403);
    // An empty PATCH changes nothing; the token still works.
    patch(&g, 2, json!({}), &root).expect_status(200);
    g.get(PROFILE, Some(&alice)).expect_status(200);

    // Deactivated: like a soft delete, every token dies at once, everywhere.
    let before = up.count();
    let r = patch(&g, 2, json!({"is_active": false}), &root);
    r.expect_status(200);
    assert_eq!(r.json["is_active"], json!(false));
    svc(&g, "/svc/d", &alice).expect(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    g.get(PROFILE, Some(&alice)).expect(
        401,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    assert_eq!(
        up.count(),
        before,
        "the refused request never reached the upstream"
    );
    g.post(
        "/api/token/",
        json!({"username": "alice", "password": PASSWORD}),
        None,
    )
    .expect(
        401,
        json!({"detail": "No active account found with the given credentials"}),
    );
    let listed = g.get("/api/auth/admin/users/?status=deleted", Some(&root));
    assert_eq!(
        listed.json[0]["username"],
        json!("alice"),
        "{}",
        listed.text
    );

    // Active again: a restore; the old token stays dead, a new login works.
    patch(&g, 2, json!({"is_active": 1}), &root).expect_status(200);
    svc(&g, "/svc/e", &alice).expect(401, bad_access("Token is invalid"));
    let again = g.login("alice", PASSWORD).0;
    svc(&g, "/svc/e", &again).expect_status(200);
}

#[test]
fn patch_is_staff_only_and_checks_the_id_first() {
    let up = Upstream::start();
    let g = gateway(&up, |_| {});
    let root = g.login("root", ROOT_PW).0;
    let bob = g.user_token("bob");
    patch(&g, 2, json!({"is_staff": true}), &bob).expect(
        403,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    patch(&g, 1, json!({"is_active": false}), &bob).expect_status(403);
    g.call("PATCH", &detail(2), Some(json!({"is_staff": true})), None)
        .expect(
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        );
    // Nothing changed.
    svc(&g, "/staff/x", &bob).expect_status(403);
    for id in ["99", "abc", "0"] {
        g.call(
            "PATCH",
            &format!("/api/auth/admin/users/{id}/"),
            Some(json!({"groups": "not even a list"})),
            Some(&root),
        )
        .expect(404, json!({"detail": "No User matches the given query."}));
    }
    g.call("DELETE", &detail(2), None, Some(&root))
        .expect(405, json!({"detail": "Method \"DELETE\" not allowed."}));
    // A form: the list is the key repeated.
    let r = g.send(
        g.request("PATCH", &detail(2))
            .bearer_auth(&root)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("groups=ops&is_staff=on&groups=billing"),
    );
    r.expect_status(200);
    assert_eq!(
        (&r.json["groups"], &r.json["is_staff"]),
        (&json!(["billing", "ops"]), &json!(true))
    );
}

/// Sends one raw HTTP/1.1 request; returns the status and the upstream's record of it.
fn raw_status(g: &Gatehouse, request: &str) -> u16 {
    g.raw(request).status
}

/// Client copies of the groups header in many spellings and counts.
const SPOOF: &str = "x-user-groups: admins\r\nX-USER-GROUPS: root\r\nX-User-Groups: ops\r\n\
                     X-User-Groups: billing,admins\r\nx-UsEr-GrOuPs:\r\n";

fn groups_of(r: &Recorded) -> Vec<String> {
    r.header_values("x-user-groups")
}

#[test]
fn spoofed_group_headers_never_reach_the_upstream_on_any_route() {
    let up = Upstream::start();
    let addr = up.addr;
    let g = gateway(&up, |c| {
        c.routes.push(RouteConfig {
            auth: AuthMode::Optional,
            ..route("/maybe/", &[addr])
        })
    });
    let root = g.login("root", ROOT_PW).0;
    let carol = g.user_token("carol");
    patch(&g, 2, json!({"groups": ["team, with comma", "dev"]}), &root).expect_status(200);
    let send = |path: &str, auth: &str| {
        raw_status(
            &g,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{SPOOF}{auth}Connection: close\r\n\r\n"),
        )
    };
    let bearer = format!("Authorization: Bearer {carol}\r\n");
    // Authenticated: exactly the true value (a comma inside a name is escaped).
    for path in ["/svc/x", "/maybe/x"] {
        assert_eq!(send(path, &bearer), 200, "{path}");
        assert_eq!(groups_of(&up.last()), ["dev,team%2C with comma"], "{path}");
    }
    // Public, and anonymous on an optional route: none at all.
    for (path, auth) in [
        ("/open/x", bearer.as_str()),
        ("/open/x", ""),
        ("/maybe/x", ""),
    ] {
        assert_eq!(send(path, auth), 200, "{path} {auth:?}");
        assert_eq!(
            groups_of(&up.last()),
            Vec::<String>::new(),
            "{path} {auth:?}"
        );
    }
    // Refused requests stay refused, whatever the client claims.
    let before = up.count();
    assert_eq!(send("/svc/x", ""), 401);
    assert_eq!(send("/staff/x", &bearer), 403);
    assert_eq!(up.count(), before);
}

#[test]
fn the_groups_header_name_is_configurable() {
    let up = Upstream::start();
    let g = gateway(&up, |c| {
        c.proxy.user_groups_header = http::HeaderName::from_static("x-auth-groups")
    });
    let root = g.login("root", ROOT_PW).0;
    let dana = g.user_token("dana");
    patch(&g, 2, json!({"groups": ["qa"]}), &root).expect_status(200);
    let status = raw_status(
        &g,
        &format!(
            "GET /svc/x HTTP/1.1\r\nHost: t\r\nx-auth-groups: admins\r\nX-AUTH-GROUPS: root\r\n\
             Authorization: Bearer {dana}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200);
    let r = up.last();
    assert_eq!(r.header_values("x-auth-groups"), ["qa"]);
    // The default name is then just another header of the client's.
    assert_eq!(groups_of(&r), Vec::<String>::new());
    g.cli(&["check-config"], &[])
        .assert_ok("check-config with a renamed groups header");
}

// ---------------------------------------------------------------------------------------------
// Import: Django's groups come along.

const DJANGO_GROUPS: [(u64, &str); 3] = [(3, "billing"), (5, "ops"), (7, "support")];
/// (id, username, groups) of the Django project's users; passwords are `<name>-Pass-2024`.
const DJANGO_USERS: [(u64, &str, &[&str]); 3] = [
    (17, "alice", &["ops", "billing"]),
    (18, "bob", &["ops"]),
    (19, "carol", &[]),
];

/// A dumpdata of a real Django project with groups (`--natural-foreign` when `natural`).
fn django_dump(natural: bool) -> Vec<Value> {
    let users: Vec<Value> = DJANGO_USERS
        .iter()
        .map(|(id, name, groups)| {
            // argon2 keeps logins quick in the unoptimized test build.
            let mut u = django::user(*id, name, &format!("{name}-Pass-2024"), "argon2");
            u["groups"] = json!(groups);
            u
        })
        .collect();
    let groups: Vec<Value> = DJANGO_GROUPS
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    let out = django::run(&json!({"users": users, "groups": groups, "natural_foreign": natural}));
    out["dump"].as_array().expect("dumpdata is a list").clone()
}

/// A fresh gatehouse (route /svc/ to `up`, superuser root) with `dump` imported; the
/// import's stdout.
fn imported(up: &Upstream, dump: &[Value]) -> (Gatehouse, String) {
    let mut g = gateway(up, |_| {});
    g.kill();
    let path = g.data_dir.parent().expect("a directory").join("dump.json");
    std::fs::write(&path, Value::Array(dump.to_vec()).to_string()).expect("write the dump");
    let out = g.cli(&["import", path.to_str().expect("utf-8 path")], &[]);
    out.assert_ok("import of a dump with groups");
    let stdout = out.stdout.clone();
    g.restart();
    (g, stdout)
}

fn groups_in_detail(g: &Gatehouse, token: &str, id: u64) -> Value {
    let r = g.get(&detail(id), Some(token));
    r.expect_status(200);
    r.json["groups"].clone()
}

#[test]
fn groups_come_over_from_a_real_django_dumpdata_by_id_or_natural_key() {
    for natural in [false, true] {
        let dump = django_dump(natural);
        let alice = dump
            .iter()
            .find(|e| e["model"] == "auth.user" && e["pk"] == 17)
            .expect("alice is in the dump");
        let expected_refs = if natural {
            json!([["billing"], ["ops"]])
        } else {
            json!([3, 5])
        };
        assert_eq!(
            alice["fields"]["groups"], expected_refs,
            "Django's own dump"
        );
        let up = Upstream::start();
        let (g, stdout) = imported(&up, &dump);
        assert!(
            stdout.contains("imported 3 users;") && stdout.contains("0 warnings; 3 groups read;"),
            "{stdout}"
        );
        let root = g.login("root", ROOT_PW).0;
        assert_eq!(groups_in_detail(&g, &root, 17), json!(["billing", "ops"]));
        assert_eq!(groups_in_detail(&g, &root, 18), json!(["ops"]));
        assert_eq!(groups_in_detail(&g, &root, 19), json!([]));
        // The old password logs in, and the upstream hears of the groups.
        let token = g.login("alice", "alice-Pass-2024").0;
        svc(&g, "/svc/x", &token).expect_status(200);
        assert_eq!(seen(&up).0, ["billing,ops"], "natural keys: {natural}");
    }
}

#[test]
fn group_ids_without_their_groups_in_the_dump_are_reported() {
    // `dumpdata auth.user` alone: the users name groups by id, and nothing says which.
    let users_only: Vec<Value> = django_dump(false)
        .into_iter()
        .filter(|e| e["model"] == "auth.user")
        .collect();
    let up = Upstream::start();
    let (g, stdout) = imported(&up, &users_only);
    assert!(
        stdout.contains("imported 3 users;") && stdout.contains("2 warnings; 0 groups read;"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "group id 3 is named by 1 user but the dump holds no auth.group with that pk"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("group id 5 is named by 2 users"),
        "{stdout}"
    );
    let root = g.login("root", ROOT_PW).0;
    assert_eq!(groups_in_detail(&g, &root, 17), json!([]));

    // Natural keys name the groups themselves: nothing is lost without the group entries.
    let natural_users: Vec<Value> = django_dump(true)
        .into_iter()
        .filter(|e| e["model"] == "auth.user")
        .collect();
    let (g, stdout) = imported(&up, &natural_users);
    assert!(stdout.contains("0 warnings; 0 groups read;"), "{stdout}");
    let root = g.login("root", ROOT_PW).0;
    assert_eq!(groups_in_detail(&g, &root, 17), json!(["billing", "ops"]));
}
