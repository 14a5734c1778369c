// Rate limits per route (SPEC §20): the budget and its refill, whose budget a request spends
// (`by`), the 429 with DRF's text and an honest `Retry-After`, the IETF RateLimit fields on
// every answer of a limited route (parsed as RFC 8941 structured fields), forward-auth alike,
// reload keeping the buckets of unchanged routes, a flood of addresses held in a bounded
// table, `check-config` and `routes explain`.
use crate::common;

use common::postgres;
use common::smtp::metric;
use common::upstream::Upstream;
use common::*;
use gatehouse::config::{Config, RateLimitBy, RateLimitConfig, RouteConfig};
use serde_json::json;
use std::time::{Duration, Instant};

fn limited(
    prefix: &str,
    up: &Upstream,
    requests: u64,
    per_seconds: u64,
    burst: u64,
    by: RateLimitBy,
) -> RouteConfig {
    RouteConfig {
        rate_limit: Some(RateLimitConfig {
            requests,
            per_seconds,
            burst,
            by,
        }),
        ..public_route(prefix, &[up.addr])
    }
}

/// `X-Forwarded-For` from loopback names the client (the tests play several addresses).
fn trusting_loopback(c: &mut Config) {
    c.proxy.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
}

/// One `name;key=int;...` member of a structured-field list, as RFC 8941 parses it: the
/// item's string and its integer parameters.
fn sf_item(value: &str) -> (String, Vec<(String, i64)>) {
    let list = sfv::Parser::parse_list(value.as_bytes())
        .unwrap_or_else(|e| panic!("{value:?} is not an sf-list: {e}"));
    assert_eq!(list.len(), 1, "{value:?}: one policy");
    let sfv::ListEntry::Item(item) = &list[0] else {
        panic!("{value:?}: an item, not an inner list")
    };
    let name = item
        .bare_item
        .as_str()
        .unwrap_or_else(|| panic!("{value:?}: the policy name is an sf-string"))
        .to_string();
    let params = item
        .params
        .iter()
        .map(|(k, v)| {
            let n = v
                .as_int()
                .unwrap_or_else(|| panic!("{value:?}: {k} is an sf-integer"));
            (k.clone(), n)
        })
        .collect();
    (name, params)
}

/// `r` and `t` of the `RateLimit` field; asserts `RateLimit-Policy` is the route's.
#[track_caller]
fn fields(r: &Resp, quota: i64, window: i64) -> (i64, i64) {
    let policy = r
        .header("ratelimit-policy")
        .unwrap_or_else(|| panic!("no RateLimit-Policy on a {}", r.status));
    assert_eq!(
        sf_item(&policy),
        (
            "default".to_string(),
            vec![("q".to_string(), quota), ("w".to_string(), window)]
        )
    );
    let limit = r
        .header("ratelimit")
        .unwrap_or_else(|| panic!("no RateLimit on a {}", r.status));
    let (name, params) = sf_item(&limit);
    assert_eq!(name, "default", "{limit}");
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{limit}: no {k}"))
    };
    (get("r"), get("t"))
}

fn throttled(seconds: u64) -> serde_json::Value {
    json!({"detail": format!("Request was throttled. Expected available in {seconds} second{}.", if seconds == 1 { "" } else { "s" })})
}

#[test]
fn over_the_budget_is_429_with_drfs_text_and_never_forwarded_and_every_answer_has_the_fields() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![
                limited("/lim/", &up, 3, 60, 1, RateLimitBy::Address),
                RouteConfig {
                    rate_limit: Some(RateLimitConfig {
                        requests: 3,
                        per_seconds: 60,
                        burst: 0,
                        by: RateLimitBy::Credential,
                    }),
                    ..route("/private/", &[up.addr])
                },
                public_route("/free/", &[up.addr]),
            ]
        })
        .start();
    // requests + burst at once, counting down.
    for left in (0..4).rev() {
        let r = g.get("/lim/x", None);
        r.expect_status(200);
        let (r_, t) = fields(&r, 3, 60);
        assert_eq!(r_, left);
        assert!((1..=80).contains(&t), "t={t}");
    }
    assert_eq!(up.count(), 4);
    let r = g.get("/lim/x", None);
    // One request's token comes back every 20 s.
    r.expect(429, throttled(20));
    assert_eq!(r.header("retry-after").as_deref(), Some("20"));
    assert_eq!(fields(&r, 3, 60).0, 0);
    assert!(r.header("x-request-id").is_some());
    assert_eq!(up.count(), 4, "a refused request is never forwarded");
    assert_eq!(
        metric(&g, "gatehouse_rate_limited_total", "route=\"/lim/\""),
        1.0
    );
    // An unlimited route has no fields.
    let r = g.get("/free/x", None);
    r.expect_status(200);
    assert!(r.header("ratelimit").is_none() && r.header("ratelimit-policy").is_none());
    // A refused credential spends nothing but still shows the budget.
    for _ in 0..5 {
        let r = g.get("/private/x", None);
        r.expect_status(401);
        assert_eq!(fields(&r, 3, 60), (3, 0));
    }
    let token = g.user_token("ann");
    let r = g.get("/private/x", Some(&token));
    r.expect_status(200);
    assert_eq!(fields(&r, 3, 60).0, 2);
}

#[test]
fn retry_after_is_honest_a_retry_then_succeeds() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| c.routes = vec![limited("/lim/", &up, 1, 2, 0, RateLimitBy::Address)])
        .start();
    g.get("/lim/x", None).expect_status(200);
    let r = g.get("/lim/x", None);
    r.expect_status(429);
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    r.expect(429, throttled(wait));
    std::thread::sleep(Duration::from_secs(wait));
    g.get("/lim/x", None).expect_status(200);
}

#[test]
fn credential_gives_two_users_on_one_address_their_own_budgets_and_one_user_one_budget_everywhere()
{
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            trusting_loopback(c);
            c.routes = vec![
                RouteConfig {
                    auth: gatehouse::config::AuthMode::Optional,
                    ..limited("/by-cred/", &up, 2, 60, 0, RateLimitBy::Credential)
                },
                RouteConfig {
                    auth: gatehouse::config::AuthMode::Optional,
                    ..limited("/by-addr/", &up, 2, 60, 0, RateLimitBy::Address)
                },
            ]
        })
        .start();
    let (alice, bob) = (g.user_token("alice"), g.user_token("bob"));
    let from = |path: &str, token: Option<&str>, addr: &str| {
        let mut rb = g.request("GET", path).header("X-Forwarded-For", addr);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        g.send(rb).status
    };
    // One address, two users: each has 2.
    let one = "203.0.113.1";
    assert_eq!(from("/by-cred/x", Some(&alice), one), 200);
    assert_eq!(from("/by-cred/x", Some(&alice), one), 200);
    assert_eq!(from("/by-cred/x", Some(&alice), one), 429);
    assert_eq!(from("/by-cred/x", Some(&bob), one), 200);
    assert_eq!(from("/by-cred/x", Some(&bob), one), 200);
    // Alice from another address: still her spent budget.
    assert_eq!(from("/by-cred/x", Some(&alice), "198.51.100.7"), 429);
    // Anonymous callers: by their address.
    assert_eq!(from("/by-cred/x", None, one), 200);
    assert_eq!(from("/by-cred/x", None, one), 200);
    assert_eq!(from("/by-cred/x", None, one), 429);
    assert_eq!(from("/by-cred/x", None, "198.51.100.7"), 200);
    // By address: two users on one address share it.
    assert_eq!(from("/by-addr/x", Some(&alice), one), 200);
    assert_eq!(from("/by-addr/x", Some(&bob), one), 200);
    assert_eq!(from("/by-addr/x", None, one), 429);
    assert_eq!(from("/by-addr/x", Some(&bob), "198.51.100.7"), 200);
}

#[test]
fn an_api_key_has_a_budget_of_its_own() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![RouteConfig {
                auth: gatehouse::config::AuthMode::Required,
                ..limited("/k/", &up, 2, 60, 0, RateLimitBy::Credential)
            }]
        })
        .start();
    let token = g.user_token("kim");
    let made = g.post(
        "/api/auth/keys/",
        json!({"name": "ci", "expires_at": gatehouse::clock::iso_ms((gatehouse::clock::now() + 86_400) * 1000), "password": PASSWORD}),
        Some(&token),
    );
    made.expect_status(201);
    let key = made.field("key");
    let with_key = || {
        g.send(g.request("GET", "/k/x").header("X-API-Key", key.as_str()))
            .status
    };
    assert_eq!(with_key(), 200);
    assert_eq!(with_key(), 200);
    assert_eq!(with_key(), 429);
    // The key's owner with a token: another budget.
    g.get("/k/x", Some(&token)).expect_status(200);
}

#[test]
fn a_steady_rate_above_the_limit_is_admitted_at_the_limit_within_one_burst() {
    let up = Upstream::start();
    let (requests, burst) = (20u64, 5u64);
    let g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![limited(
                "/lim/",
                &up,
                requests,
                1,
                burst,
                RateLimitBy::Address,
            )]
        })
        .start();
    // 80 a second offered for 3 s: four times the limit. Each request's time (the middle of
    // its round trip) is kept: on a busy machine the offered rate is not steady, and the policy
    // is applied to the times the requests really came.
    let http = g.http();
    let started = Instant::now();
    let (mut admitted, mut refused) = (0u64, 0u64);
    let mut times = Vec::new();
    for i in 0..240u32 {
        let due = started + Duration::from_micros(12_500 * u64::from(i));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now();
        let status = http.get("/lim/x", None).status;
        let answered = Instant::now();
        times.push(
            (sent.duration_since(started) + answered.duration_since(started)).as_secs_f64() / 2.0,
        );
        match status {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    // GCRA over those times: one request every 1/requests s, requests + burst deep.
    let interval = 1.0 / requests as f64;
    let tolerance = (requests + burst) as f64 * interval;
    let (mut tat, mut policy) = (0.0f64, 0u64);
    for t in &times {
        let next = tat.max(*t) + interval;
        if next - t <= tolerance + 1e-9 {
            tat = next;
            policy += 1;
        }
    }
    let window = times.last().copied().unwrap_or(0.0) - times[0];
    let ceiling = (requests + burst) as f64 + requests as f64 * window;
    assert!(
        admitted.abs_diff(policy) <= burst,
        "admitted {admitted} (refused {refused}) in {window:.2} s; the policy admits {policy} at those times"
    );
    assert!(
        admitted as f64 <= ceiling + 1.0,
        "admitted {admitted} in {window:.2} s: more than the bucket and its refill ({ceiling:.1})"
    );
    assert!(refused > 0, "offered {} above the limit", times.len());
    assert_eq!(
        up.count() as u64,
        admitted,
        "only admitted requests were forwarded"
    );
}

#[test]
fn forward_auth_answers_the_same_with_the_fields() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.forward_auth.enabled = true;
            c.routes = vec![limited("/lim/", &up, 2, 60, 0, RateLimitBy::Address)];
        })
        .start();
    let ask = || {
        g.send(
            g.request("GET", "/_gatehouse/auth")
                .header("X-Original-Method", "GET")
                .header("X-Original-URI", "/lim/x"),
        )
    };
    for left in [1, 0] {
        let r = ask();
        r.expect_status(200);
        assert_eq!(fields(&r, 2, 60).0, left);
    }
    let r = ask();
    r.expect(429, throttled(30));
    assert_eq!(r.header("retry-after").as_deref(), Some("30"));
    assert_eq!(fields(&r, 2, 60).0, 0);
    assert_eq!(up.count(), 0, "forward-auth forwards nothing itself");
}

/// Writes the config file as `g.config` with `edit` applied and reloads.
fn reload_with(g: &Gatehouse, edit: impl FnOnce(&mut Config)) {
    let mut c = g.config.clone();
    edit(&mut c);
    std::fs::write(&g.config_path, toml::to_string(&c).expect("serializes")).expect("write");
    g.cli(&["reload"], &[]).assert_ok("gatehouse reload");
}

fn reloads(g: &Gatehouse, result: &str) -> f64 {
    // (Counted by the server; the CLI refuses an invalid file before signalling.)
    metric(
        g,
        "gatehouse_config_reloads_total",
        &format!("result=\"{result}\""),
    )
}

#[test]
fn a_reload_keeps_the_buckets_of_unchanged_routes_and_refuses_a_bad_limit() {
    let up = Upstream::start();
    let routes = |b_requests: u64| {
        vec![
            limited("/a/", &up, 2, 60, 0, RateLimitBy::Address),
            limited("/b/", &up, b_requests, 60, 0, RateLimitBy::Address),
        ]
    };
    let first = routes(2);
    let g = Gatehouse::new()
        .with_config(move |c| c.routes = first)
        .start();
    for path in ["/a/x", "/a/x", "/b/x", "/b/x"] {
        g.get(path, None).expect_status(200);
    }
    g.get("/a/x", None).expect_status(429);
    g.get("/b/x", None).expect_status(429);
    // requests = 0 is refused, with the key named; nothing changes.
    let mut bad = g.config.clone();
    bad.routes = routes(0);
    std::fs::write(&g.config_path, toml::to_string(&bad).expect("serializes")).expect("write");
    g.cli(&["reload"], &[])
        .assert_failed("a reload with requests = 0")
        .assert_says("rate_limit.requests = 0: must be from 1", "the key named");
    g.get("/b/x", None).expect_status(429);
    // /b/ gets a new limit (a fresh budget); /a/ keeps its spent one.
    let next = routes(3);
    reload_with(&g, move |c| c.routes = next);
    eventually("the reload", || {
        (reloads(&g, "success") >= 1.0).then_some(())
    });
    let r = g.get("/b/x", None);
    r.expect_status(200);
    assert_eq!(fields(&r, 3, 60).0, 2);
    g.get("/a/x", None).expect_status(429);
}

#[test]
fn a_flood_of_distinct_addresses_stays_within_the_bucket_bound() {
    let up = Upstream::start();
    let bound = 500u64;
    let routes = vec![limited("/lim/", &up, 1, 3600, 0, RateLimitBy::Address)];
    let g = Gatehouse::new()
        .with_config(move |c| {
            trusting_loopback(c);
            c.limits.rate_limit_buckets = bound;
            c.routes = routes;
        })
        .start();
    let http = g.http();
    let first = "10.0.0.1";
    let ask = |addr: &str| {
        http.send(
            http.request("GET", "/lim/x")
                .header("X-Forwarded-For", addr),
        )
        .status
    };
    assert_eq!(ask(first), 200);
    assert_eq!(ask(first), 429);
    let rss_before = process::rss_kib(g.pid().expect("running"));
    for i in 0..5_000u32 {
        let addr = std::net::Ipv4Addr::from(0x0a01_0000 + i).to_string();
        assert_eq!(ask(&addr), 200, "a new address has a full budget");
    }
    let text = g.ops().get("/metrics", None).text;
    let held: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("gatehouse_rate_limit_buckets "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the bucket gauge on /metrics");
    assert!(
        held >= (bound / 2) as f64,
        "the gauge counts the buckets: {held}"
    );
    // moka evicts a little after the insert that overflows: at most a small margin over.
    assert!(
        held <= (bound + bound / 10) as f64,
        "{held} buckets held for a bound of {bound}"
    );
    let grown = process::rss_kib(g.pid().expect("running")).saturating_sub(rss_before);
    assert!(
        grown < 32 * 1024,
        "RSS grew by {grown} KiB for 5,000 addresses"
    );
}

#[test]
fn check_config_and_routes_explain_show_the_limit_and_refuse_bad_ones() {
    let up = Upstream::start();
    let g = Gatehouse::new()
        .with_config(|c| {
            c.routes = vec![limited("/lim/", &up, 100, 60, 20, RateLimitBy::Credential)]
        })
        .start();
    g.cli(&["routes", "explain", "/lim/x"], &[])
        .assert_ok("routes explain")
        .assert_says(
            "rate limit: 100 requests per 60 s, burst 20, by credential (local to this process)",
            "the route's limit",
        );
    g.cli(&["check-config"], &[])
        .assert_ok("check-config")
        .assert_says("rate limit: 100 requests per 60 s", "the limit");
    for (bad, says) in [
        (
            "rate_limit = { requests = 10, per_seconds = 0 }",
            "rate_limit.per_seconds = 0",
        ),
        (
            "rate_limit = { requests = 10, per_seconds = 1, by = \"everyone\" }",
            "unknown variant `everyone`",
        ),
        (
            "rate_limit_shared = true",
            "rate_limit_shared = true needs a rate_limit",
        ),
    ] {
        let path = g.dir().join("bad.toml");
        std::fs::write(
            &path,
            format!(
                "[[routes]]\nprefix = \"/x/\"\nupstreams = [\"{}\"]\n{bad}\n",
                up.addr
            ),
        )
        .expect("write");
        g.cli(&["check-config", "-c", &path.display().to_string()], &[])
            .assert_failed(bad)
            .assert_says(says, bad);
    }
}

/// Two replicas on one PostgreSQL with `rate_limit_shared`: hammered through both at once,
/// far above the limit, they admit together the one budget (the bucket plus its refill over
/// the window) within 10 %, not twice it.
#[test]
fn two_postgres_replicas_with_a_shared_limit_admit_one_budget_within_ten_percent() {
    let up = Upstream::start();
    let (requests, per_seconds) = (150u64, 10u64);
    let shared = RouteConfig {
        rate_limit_shared: true,
        ..limited("/lim/", &up, requests, per_seconds, 0, RateLimitBy::Address)
    };
    let (a, b) = postgres::replicas(|builder| {
        let shared = shared.clone();
        builder.with_config(move |c| {
            c.routes = vec![shared];
            c.store.replicas = 2;
        })
    });
    let started = Instant::now();
    let run_for = Duration::from_secs(4);
    let admitted = std::sync::atomic::AtomicU64::new(0);
    let refused = std::sync::atomic::AtomicU64::new(0);
    let other = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for g in [&a, &b, &a, &b] {
            let http = g.http();
            let (admitted, refused, other) = (&admitted, &refused, &other);
            s.spawn(move || {
                while started.elapsed() < run_for {
                    let r = http.get("/lim/x", None);
                    match r.status {
                        200 => admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                        429 => refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                        _ => {
                            other.lock().expect("lock").push(r.status);
                            0
                        }
                    };
                }
            });
        }
    });
    let window = started.elapsed().as_secs_f64();
    let other = other.into_inner().expect("lock");
    assert!(
        other.is_empty(),
        "statuses other than 200 and 429: {other:?}"
    );
    let (admitted, refused) = (admitted.into_inner(), refused.into_inner());
    let budget = requests as f64 + requests as f64 / per_seconds as f64 * window;
    println!(
        "shared limit: {admitted} admitted, {refused} refused in {window:.2} s; budget {budget:.0}"
    );
    assert!(
        refused as f64 > budget,
        "the replicas were not offered well above the limit ({refused} refused)"
    );
    assert!(
        (admitted as f64 - budget).abs() <= budget * 0.1,
        "{admitted} admitted across two replicas; the budget is {budget:.0} (±10 %)"
    );
    assert_eq!(
        up.count() as u64,
        admitted,
        "refused requests were never forwarded"
    );
}
