// SPEC §16's admin API over real HTTP: who may read the audit log, its events and their
// fields, each filter and the cursor pages checked against the whole log read at once, and
// DRF's answers to a bad query (django-filter's 400, CursorPagination's 404).
use crate::common;

use common::paths::*;
use common::*;
use serde_json::{json, Value};

const ADMIN_PW: &str = "AdminPass123";
const ALLOW: &str = "GET, HEAD, OPTIONS";

/// The fields of an event (SPEC §16), in the order the API writes them.
const FIELDS: [&str; 10] = [
    "id",
    "time",
    "action",
    "actor_id",
    "actor_username",
    "target_id",
    "ip",
    "user_agent",
    "request_id",
    "details",
];

fn admin_server() -> Gatehouse {
    Gatehouse::new()
        .superuser("admin", "admin@example.com", ADMIN_PW)
        .start()
}

/// `GET /api/auth/admin/audit/?<query>`.
fn audit(g: &Gatehouse, query: &str, token: Option<&str>) -> Resp {
    g.get(&format!("{AUDIT}?{query}"), token)
}

/// The path and query of a `next` link, which must be absolute and under the audit path.
#[track_caller]
fn relative(g: &Gatehouse, next: &str) -> String {
    let base = format!("http://127.0.0.1:{}{AUDIT}", g.port);
    let rest = next
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("next {next} is not under {base}"));
    format!("{AUDIT}{rest}")
}

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().map(id_of).collect()
}

/// Every event matching `query`, in one page (the log is smaller than 500).
#[track_caller]
fn everything(g: &Gatehouse, admin: &str, query: &str) -> Vec<Value> {
    let r = audit(g, &format!("{query}&page_size=500"), Some(admin));
    r.expect_status(200);
    assert_eq!(r.json["next"], Value::Null, "{}", r.text);
    r.json["results"].as_array().cloned().unwrap_or_default()
}

/// Follows `next` from the page `query` asks for until it is null: the ids of every page.
#[track_caller]
fn walk(g: &Gatehouse, admin: &str, query: &str) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut path = format!("{AUDIT}?{query}");
    loop {
        let r = g.get(&path, Some(admin));
        r.expect_status(200);
        assert_eq!(r.json["previous"], Value::Null, "{}", r.text);
        let results = r.json["results"].as_array().cloned().unwrap_or_default();
        pages.push(ids(&results));
        match r.json["next"].as_str() {
            Some(next) => path = relative(g, next),
            None => return pages,
        }
        assert!(pages.len() < 1_000, "the walk does not end");
    }
}

/// A log with some history, at distinct milliseconds: ann, bob and cara register; ann signs
/// in with a request id and an agent of her own, then soft-deletes herself; the admin restores
/// her. Returns the server, the admin's token and ann's id.
fn history() -> (Gatehouse, String, u64) {
    let g = admin_server();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
    let ann = id_of(&g.register("ann"));
    pause();
    g.register("bob");
    pause();
    g.register("cara");
    pause();
    let login = g.send(
        g.request("POST", TOKEN)
            .json(&json!({"username": "ann", "password": PASSWORD}))
            .header("X-Request-Id", "audit-ann-1")
            .header("User-Agent", "audit-agent/1"),
    );
    login.expect_status(200);
    pause();
    g.soft_delete(&login.field("access")).expect_status(200);
    pause();
    let admin = g.login("admin", ADMIN_PW).0;
    g.restore(&admin, ann).expect_status(200);
    (g, admin, ann)
}

// ---------------------------------------------------------------------------------------------
// Who may read it, and the answers to a bad query (no events needed).

#[test]
fn only_staff_reads_the_log() {
    let g = admin_server();
    let user = g.user_token("quinn");
    let admin = g.login("admin", ADMIN_PW).0;
    let r = g.get(AUDIT, None);
    r.expect(401, not_provided());
    assert_eq!(r.header("allow").as_deref(), Some(ALLOW));
    let r = g.get(AUDIT, Some(&user));
    r.expect(403, forbidden());
    assert_eq!(r.header("allow").as_deref(), Some(ALLOW));
    g.get(AUDIT, Some("not-a-token")).expect_status(401);
    let r = g.get(AUDIT, Some(&admin));
    r.expect_status(200);
    assert_eq!(r.keys(), ["next", "previous", "results"]);
    assert_eq!(r.header("allow").as_deref(), Some(ALLOW));
    // HEAD: the same answer without a body; OPTIONS: DRF's metadata, for anyone.
    let head = g.send(g.request("HEAD", AUDIT).bearer_auth(&admin));
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    let options = g.send(g.request("OPTIONS", AUDIT));
    options.expect_status(200);
    assert_eq!(options.json["name"], "Admin Audit Log");
    assert_eq!(options.header("allow").as_deref(), Some(ALLOW));
    // Permission (403) before method (405).
    g.call("POST", AUDIT, Some(json!({})), Some(&user))
        .expect(403, forbidden());
    g.call("DELETE", AUDIT, None, Some(&admin))
        .expect(405, method_not_allowed("DELETE"));
    // Without its slash: 308 to the path with it, the query kept.
    let r = g.get("/api/auth/admin/audit?page_size=2", Some(&admin));
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (308, Some("/api/auth/admin/audit/?page_size=2"))
    );
}

#[test]
fn a_bad_query_is_answered_as_drf_does() {
    let g = admin_server();
    let admin = g.login("admin", ADMIN_PW).0;
    let q = |query: &str| audit(&g, query, Some(&admin));
    q("action=login.maybe").expect(
        400,
        json!({"action": ["Select a valid choice. login.maybe is not one of the available choices."]}),
    );
    q("since=yesterday").expect(400, json!({"since": ["Enter a valid date/time."]}));
    q("until=2026-13-01").expect(400, json!({"until": ["Enter a valid date/time."]}));
    q("actor=ann").expect(400, json!({"actor": ["Enter a whole number."]}));
    // Every bad filter at once; the filters are read before the cursor.
    q("target=x&since=soon&cursor=garbage").expect(
        400,
        json!({"target": ["Enter a whole number."], "since": ["Enter a valid date/time."]}),
    );
    for cursor in [
        "garbage",
        "cD0x%3D%3D%3D",
        "bz0xJnA9Mg%3D%3D",
        "cD0tMQ%3D%3D",
    ] {
        q(&format!("cursor={cursor}")).expect(404, json!({"detail": "Invalid cursor"}));
    }
    // An empty value filters nothing; a page size that is not a positive integer is the
    // default (DRF's CursorPagination); neither is an error.
    for query in [
        "action=&since=&until=&actor=&target=&cursor=",
        "page_size=0",
        "page_size=-3",
        "page_size=many",
        "page_size=99999999999999999999999",
    ] {
        q(query).expect_status(200);
    }
}

// ---------------------------------------------------------------------------------------------
// The log itself (events written by registration, sign-in, deletion and restore).

#[test]
fn events_come_newest_first_with_exactly_the_fields_of_the_spec() {
    let (g, admin, ann) = history();
    let events = everything(&g, &admin, "");
    let got = ids(&events);
    assert!(
        got.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {got:?}"
    );
    for e in &events {
        let mut keys: Vec<&str> = e
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "{e}");
        let time = e["time"].as_str().unwrap_or_default();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "time not ISO 8601 with milliseconds: {e}"
        );
        assert!(e["details"].is_object(), "{e}");
        assert!(e["actor_username"].is_string(), "{e}");
    }
    let find = |action: &str| {
        events
            .iter()
            .find(|e| e["action"] == action && e["target_id"] == json!(ann))
            .unwrap_or_else(|| panic!("no {action} of ann in {events:?}"))
    };
    let registered = find("user.registered");
    let signed_in = find("login.succeeded");
    assert_eq!(signed_in["ip"], "127.0.0.1", "{signed_in}");
    assert_eq!(signed_in["request_id"], "audit-ann-1", "{signed_in}");
    assert_eq!(signed_in["user_agent"], "audit-agent/1", "{signed_in}");
    let restored = find("user.restored");
    assert_eq!(restored["actor_username"], "admin", "{restored}");
    // The order of what happened is the order of the ids.
    assert!(id_of(registered) < id_of(signed_in) && id_of(signed_in) < id_of(restored));
    // Never a password (nor its hash) in the log.
    let text = audit(&g, "page_size=500", Some(&admin)).text;
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
}

/// Which events of the whole log a filter must keep.
type Keep = Box<dyn Fn(&Value) -> bool>;

#[test]
fn each_filter_narrows_to_exactly_its_events() {
    let (g, admin, ann) = history();
    let all = everything(&g, &admin, "");
    let admin_id = all
        .iter()
        .find(|e| e["action"] == "user.restored")
        .and_then(|e| e["actor_id"].as_u64())
        .unwrap_or_else(|| panic!("no restore by a signed-in admin in {all:?}"));
    // A time in the middle of the log: since takes it and after, until what came before.
    let mid = all[all.len() / 2]["time"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let checks: Vec<(String, Keep)> = vec![
        (
            format!("actor={admin_id}"),
            Box::new(move |e: &Value| e["actor_id"] == json!(admin_id)),
        ),
        (
            format!("target={ann}"),
            Box::new(move |e: &Value| e["target_id"] == json!(ann)),
        ),
        (
            "action=user.registered".into(),
            Box::new(|e: &Value| e["action"] == "user.registered"),
        ),
        (format!("since={mid}"), {
            let mid = mid.clone();
            Box::new(move |e: &Value| e["time"].as_str().is_some_and(|t| t >= mid.as_str()))
        }),
        (format!("until={mid}"), {
            let mid = mid.clone();
            Box::new(move |e: &Value| e["time"].as_str().is_some_and(|t| t < mid.as_str()))
        }),
        (format!("action=user.registered&target={ann}"), {
            Box::new(move |e: &Value| {
                e["action"] == "user.registered" && e["target_id"] == json!(ann)
            })
        }),
    ];
    for (query, keep) in checks {
        let want: Vec<u64> = all.iter().filter(|e| keep(e)).map(id_of).collect();
        assert!(
            !want.is_empty() && want.len() < all.len(),
            "{query} does not narrow this log: {all:?}"
        );
        assert_eq!(ids(&everything(&g, &admin, &query)), want, "{query}");
    }
    // A filter nothing matches: an empty page, not an error.
    let none = audit(&g, "actor=999999&action=logout", Some(&admin));
    none.expect(200, json!({"next": null, "previous": null, "results": []}));
}

#[test]
fn pages_of_two_walk_every_event_exactly_once() {
    let (g, admin, _) = history();
    let all = ids(&everything(&g, &admin, ""));
    assert!(all.len() > 4, "too short a log to page: {all:?}");
    let pages = walk(&g, &admin, "page_size=2");
    assert!(pages.iter().all(|p| p.len() <= 2) && pages.iter().all(|p| !p.is_empty()));
    assert_eq!(pages.concat(), all);
    // The link keeps the filters (and the page size); the cursor is opaque to the client.
    let first = audit(&g, "page_size=1&action=user.registered", Some(&admin));
    let next = first.json["next"].as_str().unwrap_or_default().to_string();
    assert!(
        next.contains("action=user.registered") && next.contains("page_size=1"),
        "{next}"
    );
    let registered = ids(&everything(&g, &admin, "action=user.registered"));
    let walked = walk(&g, &admin, "page_size=1&action=user.registered");
    assert_eq!(walked.concat(), registered);
    assert_eq!(walked.len(), registered.len());
}

#[test]
fn a_page_holds_at_most_500_events() {
    let g = admin_server();
    // 502 registrations, four clients at a time: more events than the largest page.
    race(4, |i| {
        for n in 0..126 {
            g.register(&format!("u{i}x{n}"));
        }
    });
    let admin = g.login("admin", ADMIN_PW).0;
    let r = audit(&g, "page_size=501", Some(&admin));
    r.expect_status(200);
    let first = r.json["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(first.len(), 500);
    let next = r.json["next"].as_str().unwrap_or_default().to_string();
    assert!(!next.is_empty(), "a next page after 500: {}", r.text);
    let rest = g.get(&relative(&g, &next), Some(&admin));
    rest.expect_status(200);
    let rest = rest.json["results"].as_array().cloned().unwrap_or_default();
    assert!(!rest.is_empty() && rest.len() <= 500);
    assert!(id_of(&first[499]) > id_of(&rest[0]));
    // Without page_size: 50.
    let r = audit(&g, "", Some(&admin));
    assert_eq!(r.json["results"].as_array().map(Vec::len), Some(50));
}
