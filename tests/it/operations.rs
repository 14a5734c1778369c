// Operations (SPEC §6, issue 4): Prometheus metrics after real traffic, health probes, the
// access log and what it must never contain, SIGTERM drain and the graceful-upgrade handover.
use crate::common;

use common::paths::{LOGOUT, PASSWORD_CHANGE, PROFILE, REFRESH, REGISTER, TOKEN, VERIFY};
use common::upstream::{Options, Upstream};
use common::*;
use gatehouse::config::{LogFormat, LogLevel, RouteConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every endpoint label of the user API (src/api/router.rs), plus "none" (no route matched).
const API_LABELS: &[&str] = &[
    "token",
    "token_refresh",
    "token_verify",
    "register",
    "logout",
    "profile",
    "password_change",
    "profile_delete",
    "admin_users",
    "admin_user_detail",
    "admin_user_restore",
    "schema",
    "jwks",
    "none",
];

/// A gatehouse whose only route sends everything to `up`.
fn gateway(up: &Upstream, route: fn(&str, &[SocketAddr]) -> RouteConfig) -> Gatehouse {
    Gatehouse::new()
        .with_config(|c| c.routes = vec![route("/", &[up.addr])])
        .start()
}

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses one sample line: `name{a="x",b="y"} value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        let mut chars = rest[1..].char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 2);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // The value: a quoted string with backslash escapes.
                    let (_, quote) = chars.next()?;
                    if quote != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => {
                                let (_, e) = chars.next()?;
                                value.push(if e == 'n' { '\n' } else { e });
                            }
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        }
        rest = &rest[end?..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn of(text: String) -> Scrape {
        let samples = text.lines().filter_map(parse_sample).collect();
        Scrape { text, samples }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The sum over every series of `name` carrying these labels (a subset of its labels);
    /// panics, showing the family, when there is none.
    #[track_caller]
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(
            !found.is_empty(),
            "no sample {name}{labels:?} in /metrics; that family:\n{}",
            self.family(name)
        );
        found.iter().map(|s| s.value).sum()
    }

    /// The lines of one family, for failure messages.
    fn family(&self, name: &str) -> String {
        self.text
            .lines()
            .filter(|l| l.contains(name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[track_caller]
    fn expect(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let got = self.get(name, labels);
        assert_eq!(
            got,
            want,
            "{name}{labels:?}; family:\n{}",
            self.family(name)
        );
    }

    #[track_caller]
    fn expect_at_least(&self, name: &str, labels: &[(&str, &str)], min: f64) {
        let got = self.get(name, labels);
        assert!(
            got >= min,
            "{name}{labels:?} = {got}, expected >= {min}; family:\n{}",
            self.family(name)
        );
    }

    #[track_caller]
    fn expect_type(&self, name: &str, kind: &str) {
        let line = format!("# TYPE {name} {kind}");
        assert!(
            self.text.lines().any(|l| l.trim() == line),
            "missing `{line}`; family:\n{}",
            self.family(name)
        );
    }
}

#[track_caller]
fn scrape(g: &Gatehouse) -> Scrape {
    let r = g.ops().get("/metrics", None);
    r.expect_status(200);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain"),
        "/metrics content type: {ct:?}"
    );
    Scrape::of(r.text)
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

/// Every log line that is a JSON object with a `request_id`: the access-log lines.
fn access_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        // Audit lines share stdout; an access line is the one with a method.
        .filter(|v| v.get("method").is_some())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Metrics and probes
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_move_with_real_traffic_and_labels_stay_bounded() {
    let up = Upstream::start();
    let g = gateway(&up, route);

    // The user API: two registrations, two good logins, one bad one, one soft delete.
    g.register("alice");
    g.register("bob");
    let (alice, _) = g.login("alice", PASSWORD);
    let (bob, _) = g.login("bob", PASSWORD);
    g.post(
        "/api/token/",
        json!({"username": "alice", "password": "not-her-password"}),
        None,
    )
    .expect_status(401);
    g.soft_delete(&bob).expect_status(200);

    // The proxy: two forwarded requests with ids in their paths, three refusals.
    g.get("/x/123", Some(&alice)).expect_status(200);
    g.get("/x/456?user=alice", Some(&alice)).expect_status(200);
    g.get("/x/123", None).expect_status(401);
    g.get("/x/789", Some(&bob)).expect_status(401);
    g.get("/x/123", Some("garbage.not.a-token"))
        .expect_status(401);
    assert_eq!(
        up.count(),
        2,
        "only the two authenticated requests reach the upstream"
    );

    let m = scrape(&g);
    let req = "gatehouse_http_requests_total";
    let proxy_get = |status: &'static str| {
        [
            ("kind", "proxy"),
            ("route", "/"),
            ("method", "GET"),
            ("status", status),
        ]
    };
    let api = |route: &'static str, method: &'static str, status: &'static str| {
        [
            ("kind", "api"),
            ("route", route),
            ("method", method),
            ("status", status),
        ]
    };
    m.expect(req, &proxy_get("200"), 2.0);
    m.expect(req, &proxy_get("401"), 3.0);
    m.expect(req, &api("register", "POST", "201"), 2.0);
    m.expect(req, &api("token", "POST", "200"), 2.0);
    m.expect(req, &api("token", "POST", "401"), 1.0);
    m.expect(req, &api("profile_delete", "DELETE", "200"), 1.0);

    let dur = "gatehouse_http_request_duration_seconds_count";
    m.expect(dur, &proxy_get("2xx"), 2.0);
    m.expect(dur, &proxy_get("4xx"), 3.0);
    m.expect(dur, &api("token", "POST", "2xx"), 2.0);
    m.expect_at_least(
        "gatehouse_http_request_duration_seconds_bucket",
        &[("route", "/"), ("status", "2xx"), ("le", "+Inf")],
        2.0,
    );

    let auth = "gatehouse_auth_decisions_total";
    // Two forwarded requests and the soft delete carried a valid token.
    m.expect_at_least(auth, &[("result", "allow"), ("reason", "valid_token")], 3.0);
    m.expect_at_least(
        auth,
        &[("result", "deny"), ("reason", "no_credentials")],
        1.0,
    );
    m.expect(
        auth,
        &[("result", "deny"), ("reason", "user_inactive")],
        1.0,
    );
    m.expect(
        auth,
        &[("result", "deny"), ("reason", "token_invalid")],
        1.0,
    );

    m.expect("gatehouse_logins_total", &[("result", "success")], 2.0);
    m.expect("gatehouse_logins_total", &[("result", "failure")], 1.0);

    // Two hashes (register) and three verifications (logins).
    m.expect_at_least("gatehouse_password_hash_duration_seconds_count", &[], 5.0);
    m.expect("gatehouse_password_hash_queue_depth", &[], 0.0);

    // alice's second forwarded request finds her state in the cache.
    m.expect_at_least(
        "gatehouse_user_cache_requests_total",
        &[("result", "hit")],
        1.0,
    );
    let lookups: f64 = m
        .matching("gatehouse_user_cache_requests_total", &[])
        .map(|s| s.value)
        .sum();
    assert!(lookups >= 3.0, "cache lookups: {lookups}");

    m.expect("gatehouse_users", &[("state", "active")], 1.0);
    m.expect("gatehouse_users", &[("state", "inactive")], 1.0);

    m.expect(
        "gatehouse_upstream_requests_total",
        &[
            ("route", "/"),
            ("upstream", &up.addr.to_string()),
            ("status", "200"),
        ],
        2.0,
    );
    m.expect(
        "gatehouse_upstream_duration_seconds_count",
        &[("route", "/")],
        2.0,
    );
    // Two registrations and a soft delete were each made durable before their answer.
    m.expect_at_least("gatehouse_store_flush_duration_seconds_count", &[], 3.0);
    m.expect(
        "gatehouse_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    // The standard process collector.
    #[cfg(target_os = "linux")]
    {
        let rss = m.get("process_resident_memory_bytes", &[]);
        assert!(rss > 1_000_000.0, "process_resident_memory_bytes = {rss}");
        assert!(m.get("process_start_time_seconds", &[]) > 1.0e9);
        assert!(m.get("process_open_fds", &[]) > 0.0);
    }
    assert!(
        m.samples.iter().any(|s| s.name.starts_with("process_")),
        "no process_* metric"
    );

    for family in [
        "gatehouse_http_request_duration_seconds",
        "gatehouse_password_hash_duration_seconds",
        "gatehouse_upstream_duration_seconds",
        "gatehouse_store_flush_duration_seconds",
    ] {
        m.expect_type(family, "histogram");
    }
    for family in [
        "gatehouse_http_requests_total",
        "gatehouse_auth_decisions_total",
        "gatehouse_logins_total",
        "gatehouse_user_cache_requests_total",
        "gatehouse_upstream_requests_total",
    ] {
        m.expect_type(family, "counter");
    }
    for family in [
        "gatehouse_users",
        "gatehouse_password_hash_queue_depth",
        "gatehouse_build_info",
    ] {
        m.expect_type(family, "gauge");
    }

    // Bounded labels: route names from the config or the code, never a raw path, query,
    // user name or user id.
    let routes: BTreeSet<&str> = m
        .samples
        .iter()
        .filter(|s| s.name.starts_with("gatehouse_"))
        .flat_map(|s| s.labels.iter())
        .filter(|(k, _)| k == "route")
        .map(|(_, v)| v.as_str())
        .collect();
    for r in &routes {
        assert!(
            *r == "/" || API_LABELS.contains(r),
            "unbounded route label {r:?}; all: {routes:?}"
        );
    }
    for s in m
        .samples
        .iter()
        .filter(|s| s.name.starts_with("gatehouse_"))
    {
        for (k, v) in &s.labels {
            assert!(
                !["path", "user", "user_id", "username", "uri"].contains(&k.as_str()),
                "label {k} on {}",
                s.name
            );
            // The upstream label is the configured address (asserted above); its random
            // port may contain any digits.
            if k == "upstream" {
                assert_eq!(v, &up.addr.to_string(), "{}", s.name);
                continue;
            }
            for raw in ["/x/", "123", "456", "789", "alice", "bob", "user="] {
                assert!(
                    !v.contains(raw),
                    "label {k}={v:?} on {} carries request data",
                    s.name
                );
            }
        }
    }

    // On the public listener /metrics is just a path: routed like any other (here to the
    // upstream behind "/"), never answered with gatehouse's own metrics.
    let r = g.get("/metrics", None);
    r.expect_status(401);
    let r = g.get("/metrics", Some(&alice));
    r.expect_status(200);
    assert_eq!(r.json["upstream"], up.port, "forwarded: {}", r.text);
    assert!(!r.text.contains("gatehouse_"), "metrics leaked: {}", r.text);
}

#[test]
fn health_and_readiness_answer_on_the_metrics_listener_only() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| c.routes = vec![public_route("/svc/", &[up.addr])])
        .start();
    let ops = g.ops();

    ops.get("/healthz", None)
        .expect(200, json!({"status": "ok"}));
    let r = ops.get("/readyz", None);
    r.expect_status(200);
    assert!(r.json.is_object(), "/readyz JSON: {}", r.text);
    let r = ops.get("/metrics", None);
    r.expect_status(200);
    assert!(r.text.contains("gatehouse_build_info"), "{}", r.text);
    ops.get("/nope", None).expect_status(404);

    // The public listener serves none of them: no route matches, so 404 JSON.
    for path in ["/metrics", "/healthz", "/readyz"] {
        g.fresh().get(path, None).expect(404, not_found());
    }
    assert_eq!(up.count(), 0, "nothing forwarded");
}

#[test]
fn counters_that_alerts_and_the_dashboard_read_are_at_zero_before_anything_happened() {
    use gatehouse::metrics;
    let g = Gatehouse::new().start();
    // The first request the server gets: nothing was counted yet.
    let m = scrape(&g);
    let counter = |name: &str, labels: &[(&str, &str)]| {
        m.expect_type(name, "counter");
        m.expect(name, labels, 0.0);
    };
    // deploy/prometheus/alerts.yml selects these values.
    counter("gatehouse_config_reloads_total", &[("result", "failure")]);
    for result in ["failure", "throttled"] {
        counter("gatehouse_logins_total", &[("result", result)]);
    }
    for reason in [
        "token_invalid",
        "bad_authorization_header",
        "user_not_found",
    ] {
        counter(
            "gatehouse_auth_decisions_total",
            &[("result", "deny"), ("reason", reason)],
        );
    }
    // deploy/grafana/gatehouse.json sums them by these labels: every value the code sets.
    for result in metrics::RELOAD_RESULTS {
        counter("gatehouse_config_reloads_total", &[("result", result)]);
    }
    for kind in metrics::MAIL_KINDS {
        for result in metrics::MAIL_RESULTS {
            counter(
                "gatehouse_mail_sent_total",
                &[("kind", kind), ("result", result)],
            );
        }
    }
    for kind in metrics::MAIL_CAPPED_KINDS {
        counter(
            "gatehouse_mail_sent_total",
            &[("kind", kind), ("result", "capped")],
        );
    }
    for result in metrics::LOGIN_RESULTS {
        counter("gatehouse_logins_total", &[("result", result)]);
    }
    for reason in metrics::AUTH_ALLOW_REASONS {
        counter(
            "gatehouse_auth_decisions_total",
            &[("result", "allow"), ("reason", reason)],
        );
    }
    for reason in metrics::AUTH_DENY_REASONS {
        counter(
            "gatehouse_auth_decisions_total",
            &[("result", "deny"), ("reason", reason)],
        );
    }
    for result in metrics::USER_CACHE_RESULTS {
        counter("gatehouse_user_cache_requests_total", &[("result", result)]);
    }
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

#[test]
fn no_secrets_in_any_log_line_at_debug_level() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.log.level = LogLevel::Debug;
            c.routes = vec![route("/", &[up.addr])];
        })
        // The test must see `log.level = "debug"` at work, not a RUST_LOG from the environment.
        .without_env("RUST_LOG")
        .start();
    let c = g.fresh();
    let mut sent = 0usize;
    let mut send = |status: u16, rb: reqwest::blocking::RequestBuilder| -> Resp {
        sent += 1;
        let r = c.send(rb);
        r.expect_status(status);
        r
    };

    let pw1 = "Quartz-Lumen-7391-Harbor";
    let pw2 = "Orchid-Vapor-5528-Tundra";
    let pw_wrong = "Wrong-Guess-4410-Ember";
    let cookie_a = "CookieSecretValue-8d1f2a9c";
    let cookie_b = "csrfSecretValue-77e0b4c1";
    let cookies = format!("sessionid={cookie_a}; csrftoken={cookie_b}");
    let basic = "Basic YWxpY2U6QmFzaWNTZWNyZXQtOTkyMQ=="; // alice:BasicSecret-9921
    let login = |password: &str| json!({"username": "alice", "password": password});

    let user = send(
        201,
        c.request("POST", REGISTER)
            .json(&json!({"username": "alice", "email": "alice@example.com", "password": pw1})),
    );
    let alice_id = id_of(&user.json);
    let (a1, r1) = send(200, c.request("POST", TOKEN).json(&login(pw1))).tokens();
    send(401, c.request("POST", TOKEN).json(&login(pw_wrong)));
    let refreshed = send(
        200,
        c.request("POST", REFRESH).json(&json!({"refresh": r1})),
    );
    let a2 = refreshed.field("access");
    send(
        200,
        c.request("GET", PROFILE)
            .bearer_auth(&a2)
            .header("Cookie", &cookies)
            .header("X-Request-Id", "ops-profile-1"),
    );
    let changed = send(
        200,
        c.request("PUT", PASSWORD_CHANGE)
            .bearer_auth(&a2)
            .json(&json!({"old_password": pw1, "new_password": pw2})),
    );
    let (a3, r3) = changed.tokens();
    // A form-encoded login, as DRF accepts.
    let (a4, r4) = send(
        200,
        c.request("POST", TOKEN)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("username=alice&password={pw2}")),
    )
    .tokens();

    // Proxied: a token in the header and in the query, cookies, a body with a password.
    send(
        200,
        c.request("GET", &format!("/svc/data?access_token={a4}"))
            .bearer_auth(&a4)
            .header("Cookie", &cookies)
            .header("X-Request-Id", "ops-secret-1"),
    );
    send(
        200,
        c.request("POST", "/svc/upload")
            .bearer_auth(&a3)
            .json(&json!({"password": pw2, "refresh": r3})),
    );
    // Refused: a token revoked by the password change, a Basic header, a garbage bearer.
    send(401, c.request("GET", "/svc/old").bearer_auth(&a1));
    send(
        401,
        c.request("GET", "/svc/basic")
            .header("Authorization", basic),
    );
    send(
        401,
        c.request("GET", "/svc/bad")
            .header("Authorization", format!("Bearer {a4}x")),
    );
    send(200, c.request("POST", VERIFY).json(&json!({"token": a4})));
    send(
        200,
        c.request("POST", LOGOUT)
            .bearer_auth(&a4)
            .json(&json!({"refresh": r4})),
    );
    assert_eq!(up.count(), 2, "two requests forwarded");

    // The access log is written in batches: wait for a line per request.
    let log = poll(|| g.log(), |log| access_lines(log).len() >= sent);
    assert!(
        log.contains("DEBUG"),
        "log.level = \"debug\" produced no debug line:\n{log}"
    );

    // One access line per request, with the fields an on-call engineer needs.
    let lines = access_lines(&log);
    assert_eq!(
        lines.len(),
        sent,
        "{sent} requests, {} access lines:\n{}",
        lines.len(),
        lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut ids = BTreeSet::new();
    for l in &lines {
        for field in [
            "time",
            "request_id",
            "method",
            "path",
            "route",
            "user_id",
            "status",
            "upstream",
            "latency_ms",
            "bytes",
        ] {
            assert!(l.get(field).is_some(), "access line without {field}: {l}");
        }
        let id = l["request_id"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "empty request_id: {l}");
        assert!(ids.insert(id.to_string()), "request_id {id} logged twice");
        assert!(l["method"].is_string(), "{l}");
        let path = l["path"].as_str().unwrap_or("");
        assert!(
            path.starts_with('/') && !path.contains('?'),
            "path {path:?}"
        );
        assert!(l["route"].is_string(), "{l}");
        assert!(l["user_id"].is_null() || l["user_id"].is_u64(), "{l}");
        assert!(
            l["status"]
                .as_u64()
                .is_some_and(|s| (100..600).contains(&s)),
            "{l}"
        );
        assert!(l["latency_ms"].as_f64().is_some_and(|x| x >= 0.0), "{l}");
    }
    let by_id = |id: &str| -> &Value {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id}"))
    };
    let proxied = by_id("ops-secret-1");
    assert_eq!(proxied["method"], "GET", "{proxied}");
    assert_eq!(proxied["path"], "/svc/data", "{proxied}");
    assert_eq!(proxied["route"], "/", "{proxied}");
    assert_eq!(proxied["user_id"], alice_id, "{proxied}");
    assert_eq!(proxied["status"], 200, "{proxied}");
    assert_eq!(proxied["upstream"], up.addr.to_string(), "{proxied}");
    let profile = by_id("ops-profile-1");
    assert_eq!(profile["path"], "/api/auth/profile/", "{profile}");
    assert_eq!(profile["user_id"], alice_id, "{profile}");
    assert_eq!(profile["status"], 200, "{profile}");
    let statuses: Vec<u64> = lines.iter().filter_map(|l| l["status"].as_u64()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        4,
        "the bad login and three refused proxied requests: {statuses:?}"
    );

    // Nothing secret anywhere in stdout or stderr.
    let mut secrets: Vec<(&str, String)> = vec![
        ("password", pw1.into()),
        ("new password", pw2.into()),
        ("wrong password", pw_wrong.into()),
        ("cookie", cookie_a.into()),
        ("cookie", cookie_b.into()),
        ("authorization", basic.into()),
        ("authorization", basic.trim_start_matches("Basic ").into()),
    ];
    let tokens = [
        ("access token", &a1),
        ("refresh token", &r1),
        ("refreshed access token", &a2),
        ("access token after password change", &a3),
        ("refresh token after password change", &r3),
        ("access token (form login)", &a4),
        ("refresh token (form login)", &r4),
    ];
    for (what, token) in tokens {
        secrets.push((what, token.clone()));
        // Any 20-character slice of a token (a truncated or split token is still a leak),
        // except slices another token shares too (the JWT header, the start of the claims).
        for i in 0..=token.len().saturating_sub(20) {
            let slice = &token[i..i + 20];
            if tokens.iter().filter(|(_, t)| t.contains(slice)).count() == 1 {
                secrets.push((what, slice.to_string()));
            }
        }
    }
    // Every leak, with the logger (module) that wrote it, so one failure shows them all.
    let mut leaks: Vec<String> = Vec::new();
    for (what, secret) in &secrets {
        for line in log.lines().filter(|l| l.contains(secret.as_str())) {
            // env_logger lines start with `[time LEVEL module]`.
            let source = line
                .strip_prefix('[')
                .and_then(|l| l.split(']').next())
                .and_then(|l| {
                    l.split_whitespace()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join(" ")
                        .into()
                })
                .filter(|s: &String| !s.is_empty())
                .unwrap_or_else(|| "unprefixed line (access log?)".to_string());
            let entry = format!("{what} in [{source}]");
            if !leaks.contains(&entry) {
                leaks.push(entry);
            }
        }
    }
    let lower = log.to_ascii_lowercase();
    for needle in [
        "authorization: bearer",
        "\"authorization\"",
        "cookie: sessionid",
        "\"cookie\"",
    ] {
        if lower.contains(needle) {
            leaks.push(format!("header {needle:?}"));
        }
    }
    if !leaks.is_empty() {
        let example = log
            .lines()
            .find(|l| secrets.iter().any(|(_, s)| l.contains(s.as_str())))
            .unwrap_or("");
        panic!(
            "secrets in the log ({} kinds/sources):\n  {}\nfirst such line:\n{example}",
            leaks.len(),
            leaks.join("\n  ")
        );
    }
}

#[test]
fn text_log_format_writes_plain_access_lines() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.log.format = LogFormat::Text;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let r = g.send(
        g.request("GET", "/svc/a")
            .header("X-Request-Id", "text-rid-1"),
    );
    r.expect_status(200);
    let log = g.wait_for_log("text-rid-1");
    let line = log
        .lines()
        .find(|l| l.contains("text-rid-1"))
        .unwrap_or_else(|| panic!("no access line for text-rid-1:\n{log}"));
    assert!(
        serde_json::from_str::<Value>(line.trim()).is_err(),
        "text format wrote JSON: {line}"
    );
    assert!(line.contains("GET /svc/a 200"), "{line}");
    assert!(line.contains("route=/"), "{line}");
    assert!(line.contains(&up.addr.to_string()), "{line}");
    assert!(
        access_lines(&log).is_empty(),
        "JSON access lines in text mode:\n{log}"
    );
}

#[test]
fn startup_line_names_listeners_routes_and_store() {
    let up = Upstream::start();
    let other = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![
                route("/svc/", &[up.addr]),
                public_route("/public/", &[other.addr]),
            ]
        })
        .start();
    let listen = g.config.server.listen.expect("listen").to_string();
    let log = g.wait_for_log(&listen);
    let store = g.data_dir.join("db").display().to_string();
    let line = log
        .lines()
        .find(|l| l.contains(&listen))
        .unwrap_or_else(|| panic!("no start-up line naming {listen}:\n{log}"));
    for part in [
        &listen,
        &g.config.server.metrics_listen.to_string(),
        &store,
        "/svc/",
        &up.addr.to_string(),
        "/public/",
        &other.addr.to_string(),
    ] {
        assert!(line.contains(part), "start-up line lacks {part:?}: {line}");
    }
}

#[test]
fn a_down_upstream_is_one_short_line_when_it_goes_and_one_when_it_is_back() {
    // A port nobody listens on yet: the route's upstream is down from the start.
    let port = free_ports::<1>()[0];
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let g = Gatehouse::new()
        .with_config(|c| c.routes = vec![route("/svc/", &[addr])])
        .start();
    let down = format!("upstream {addr} of route /svc/ is down");
    let log = g.wait_for_log(&down);
    let line = log
        .lines()
        .find(|l| l.contains(&down))
        .unwrap_or_else(|| panic!("no line saying {down}"));
    assert!(
        line.len() < 200,
        "one short line, not Pingora's peer dump: {line}"
    );
    assert!(
        !log.contains("PeerOptions") && !log.contains("BasicPeer"),
        "Pingora's own health-check report is replaced:\n{log}"
    );
    // Still down a check later (they run every second): said once, not every second.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(g.log().matches(&down).count(), 1, "{}", g.log());
    // It comes up: one line saying it is back and how long it was down.
    let _listener = std::net::TcpListener::bind(addr).expect("take the upstream's port");
    let back = g.wait_for_log(&format!("upstream {addr} of route /svc/ is back after"));
    assert!(back.contains("down since"), "{back}");
}

#[test]
fn pid_file_names_the_serving_process() {
    let g = Gatehouse::new().start();
    let pid_file = &g.config.server.pid_file;
    let content = poll(|| std::fs::read_to_string(pid_file).ok(), Option::is_some);
    let content = content.unwrap_or_else(|| {
        panic!(
            "server.pid_file {pid_file} was never written, so `kill -QUIT $(cat <pid_file>)` cannot work"
        )
    });
    assert_eq!(
        content.trim(),
        g.pid().expect("pid").to_string(),
        "pid file content"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGTERM and graceful upgrade
// ---------------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Probe {
    Refused,
    /// Connected, and got this many bytes of answer.
    Answered(usize),
}

fn probe(port: u16) -> Probe {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Err(_) => Probe::Refused,
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            Probe::Answered(buf.len())
        }
    }
}

#[test]
fn sigterm_drains_the_in_flight_request_then_exits_zero() {
    let up = Upstream::start_with(Options {
        delay: Some(Duration::from_secs(2)),
    });
    let mut g = Gatehouse::new()
        .with_config(|c| {
            c.server.grace_period_seconds = 5;
            c.server.graceful_shutdown_timeout_seconds = 10;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let http = g.fresh();
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        let r = http.try_send(http.request("GET", "/slow"))?;
        Ok::<_, String>((r, started.elapsed()))
    });
    eventually("the request waits on the slow upstream", || {
        (up.arrived() == 1).then_some(())
    });
    let (port, metrics_port) = (g.port, g.metrics_port);
    let during = std::thread::spawn(move || {
        // SIGTERM has been sent; the in-flight request still has ~1 s to go.
        std::thread::sleep(Duration::from_millis(1000));
        (probe(port), probe(metrics_port))
    });
    let started = Instant::now();
    let code = g.terminate();
    let took = started.elapsed();

    let (r, latency) = in_flight
        .join()
        .expect("client thread")
        .expect("the in-flight request is answered, not cut");
    r.expect_status(200);
    assert_eq!(r.json["upstream"], up.port, "{}", r.text);
    assert!(
        latency >= Duration::from_millis(1900),
        "latency {latency:?}"
    );
    assert_eq!(code, Some(0), "exit code after SIGTERM:\n{}", g.log());
    assert!(
        took <= Duration::from_secs(5 + 3),
        "exit took {took:?}, grace period is 5 s"
    );
    let (public, ops) = during.join().expect("probe thread");
    assert_eq!(
        public,
        Probe::Refused,
        "a new connection during the drain must be refused, not accepted"
    );
    assert_eq!(ops, Probe::Refused, "the metrics listener during the drain");
    assert_eq!(probe(g.port), Probe::Refused, "after exit");
    assert_eq!(up.count(), 1);
}

/// A client that has connected but not yet written its request when the listener stops (the
/// last moments of an upgrade's hand-over, or a SIGTERM) still gets its answer: Pingora alone
/// drops such a connection at once, which the client sees as a reset.
#[test]
fn a_connection_accepted_before_sigterm_still_gets_its_answer() {
    let up = Upstream::start();
    let mut g = Gatehouse::new()
        .with_config(|c| {
            c.server.grace_period_seconds = 5;
            c.server.graceful_shutdown_timeout_seconds = 10;
            c.routes = vec![public_route("/", &[up.addr])];
        })
        .start();
    let mut early = g.connect();
    // Accepted (the kernel has it, and so has the accept loop by now), nothing written yet.
    std::thread::sleep(Duration::from_millis(300));
    let pid = g.pid().expect("pid");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    // The listener stops at once; the request comes a moment after.
    eventually("the listener stops accepting", || {
        (probe(g.port) == Probe::Refused).then_some(())
    });
    early
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    early
        .write_all(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = early.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the early connection's request is answered, not dropped: {answer:?}\n{}",
        g.log()
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "and the connection is not kept: {answer:?}"
    );
    assert_eq!(g.wait_exit(), Some(0));
}

/// One request of the upgrade loop: its X-Request-Id, its status or error, its latency.
#[cfg(target_os = "linux")]
type Outcome = (String, Result<u16, String>, Duration);

/// Kills the upgraded process however the test ends.
#[cfg(target_os = "linux")]
struct KillOnDrop(std::process::Child);

#[cfg(target_os = "linux")]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn graceful_upgrade_hands_over_without_a_failed_request() {
    let up = Upstream::start();
    let mut g = gateway(&up, route);
    let token = g.user_token("alice");
    let old_pid = g.pid().expect("old pid");

    // A client that keeps calling, one new connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let client_loop = {
        let (stop, results, http, token) = (
            Arc::clone(&stop),
            Arc::clone(&results),
            g.fresh(),
            token.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("loop-{n}");
                n += 1;
                let started = Instant::now();
                let outcome = http
                    .try_send(
                        http.request("GET", &format!("/svc/{n}"))
                            .bearer_auth(&token)
                            .header("X-Request-Id", &id),
                    )
                    .map(|r| r.status);
                if let Ok(mut r) = results.lock() {
                    r.push((id, outcome, started.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let answered = || results.lock().map(|r| r.len()).unwrap_or(0);
    eventually("the client loop gets going", || {
        (answered() >= 5).then_some(())
    });

    // Step 1: start the new binary with --upgrade and the same config file.
    let dir = tempfile::tempdir().expect("tempdir");
    let new_log_path = dir.path().join("new.log");
    let new_log = std::fs::File::create(&new_log_path).expect("new log");
    let mut cmd = g.command();
    cmd.args(["serve", "--upgrade", "-c"])
        .arg(&g.config_path)
        .stdin(std::process::Stdio::null())
        .stdout(new_log.try_clone().expect("fd"))
        .stderr(new_log);
    let mut new = KillOnDrop(cmd.spawn().expect("spawn the new process"));
    let new_pid = new.0.id();
    let new_log_text = || std::fs::read_to_string(&new_log_path).unwrap_or_default();

    // It waits for the sockets on server.upgrade_sock.
    let sock = std::path::Path::new(&g.config.server.upgrade_sock);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        if let Ok(Some(status)) = new.0.try_wait() {
            panic!("the new process exited ({status}):\n{}", new_log_text());
        }
        assert!(
            Instant::now() < deadline,
            "no upgrade socket after 10 s:\n{}",
            new_log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Step 2: SIGQUIT to the old process: it hands its sockets over and drains.
    let quit = std::process::Command::new("kill")
        .args(["-QUIT", &old_pid.to_string()])
        .status()
        .expect("kill");
    assert!(quit.success());
    let quit_at = Instant::now();
    while !has_exited(old_pid) {
        assert!(
            quit_at.elapsed() < Duration::from_secs(30),
            "the old process is still running 30 s after SIGQUIT:\n{}",
            g.log()
        );
        if let Ok(Some(status)) = new.0.try_wait() {
            panic!(
                "the new process exited ({status}) during the handover:\n{}\nold:\n{}",
                new_log_text(),
                g.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let old_exited_after = quit_at.elapsed();
    let old_code = g.terminate();
    // The loop keeps going against the new process for a while.
    let after_exit = answered();
    eventually("requests to the new process", || {
        (answered() >= after_exit + 20).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    client_loop.join().expect("client loop");
    let results = results.lock().map(|r| r.clone()).unwrap_or_default();

    assert_eq!(old_code, Some(0), "old process exit code:\n{}", g.log());
    if let Ok(Some(status)) = new.0.try_wait() {
        panic!("the new process exited ({status}):\n{}", new_log_text());
    }
    let failures: Vec<_> = results
        .iter()
        .filter(|(_, outcome, _)| *outcome != Ok(200))
        .collect();
    let slowest = results.iter().map(|(_, _, d)| *d).max().unwrap_or_default();
    eprintln!(
        "upgrade: {} requests, old exited {old_exited_after:?} after SIGQUIT, slowest answer {slowest:?}",
        results.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the handover (old exited {old_exited_after:?} after \
         SIGQUIT): {failures:?}\nnew process log:\n{}",
        failures.len(),
        results.len(),
        new_log_text()
    );
    assert!(
        results.len() > after_exit + 5,
        "too few requests after the old process exited ({} of {})",
        results.len() - after_exit,
        results.len()
    );

    // Every request was answered by exactly one of the two processes, and the ones after
    // the old process exited by the new one. Access lines are written in batches.
    let logged = |log: String| -> BTreeSet<String> {
        access_lines(&log)
            .iter()
            .filter_map(|l| l["request_id"].as_str().map(str::to_string))
            .collect()
    };
    let (old_ids, new_ids) = poll(
        || (logged(g.log()), logged(new_log_text())),
        |(old, new)| {
            results
                .iter()
                .all(|(id, _, _)| old.contains(id) || new.contains(id))
        },
    );
    for (id, _, _) in &results {
        assert!(
            old_ids.contains(id) != new_ids.contains(id),
            "{id}: logged by old: {}, by new: {}",
            old_ids.contains(id),
            new_ids.contains(id)
        );
    }
    for (id, _, _) in &results[after_exit..] {
        assert!(new_ids.contains(id), "{id} not answered by the new process");
    }
    assert!(!new_ids.is_empty(), "the new process answered nothing");

    // The new process is the gateway now: users log in, tokens work, probes answer.
    let c = g.fresh();
    let (access, _) = c.login("alice", PASSWORD);
    c.send(
        c.request("GET", "/svc/after")
            .bearer_auth(&access)
            .header("X-Request-Id", "after-upgrade"),
    )
    .expect_status(200);
    g.ops().get("/readyz", None).expect_status(200);
    let text = wait_for_text(new_log_text, "after-upgrade");
    assert!(text.contains("after-upgrade"), "new process did not log it");
    assert!(
        !g.log().contains("after-upgrade"),
        "the old process answered"
    );
    assert!(
        !has_exited(new_pid),
        "the new process must keep running:\n{}",
        new_log_text()
    );
    drop(new);
}
