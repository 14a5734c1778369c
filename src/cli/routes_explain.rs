//! `gatehouse routes explain [--method M] [--user NAME] PATH`: which route a path takes, its
//! auth mode and requirements, and with `--user` the decision for that user, made by the same
//! functions the proxy uses (`router`, `RouteTable::lookup`, `require`, `decide::policy`).

use super::block_on;
use crate::api::router;
use crate::auth::cache::UserState;
use crate::auth::credentials::require;
use crate::auth::{AuthError, Via};
use crate::config::{AuthMode, Config};
use crate::error::ApiError;
use crate::gateway::classify::{Classifier, Target};
use crate::gateway::decide::{self, Decision};
use crate::gateway::routes::{Route, RouteTable};
use crate::store::StoreError;
use std::fmt::Write;

pub fn run(
    config: &Config,
    method: Option<&str>,
    user: Option<&str>,
    path: &str,
) -> Result<(), String> {
    let method: http::Method = method
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("--method {method:?} is not an HTTP method"))?;
    let routes = RouteTable::from_config(config)?;
    let who = match user {
        Some(name) => Some((name, lookup(config, name)?)),
        None => None,
    };
    print!("{}", explain(config, &routes, &method, path, who));
    Ok(())
}

/// The user's current state, as the proxy would see it (`None`: no such user).
fn lookup(config: &Config, name: &str) -> Result<Option<crate::store::User>, String> {
    let store = crate::store::open(config).map_err(|e| match e {
        StoreError::InUse(dir) => format!(
            "cannot look up user {name:?}: the store in {dir} is held by a running gatehouse \
             (sled allows one process per store). Run `routes explain` without --user, or stop \
             the server first."
        ),
        other => format!("cannot look up user {name:?}: {other}"),
    })?;
    block_on(store.find_by_username(name))?.map_err(|e| format!("cannot look up {name:?}: {e}"))
}

fn auth_mode(route: &Route) -> &'static str {
    match route.auth {
        AuthMode::Required => "required",
        AuthMode::Optional => "optional",
        AuthMode::Public => "public",
    }
}

/// The explanation as text (a plain function: tested without a terminal).
pub fn explain(
    config: &Config,
    routes: &RouteTable,
    method: &http::Method,
    raw_path: &str,
    who: Option<(&str, Option<crate::store::User>)>,
) -> String {
    let mut out = String::new();
    let classified = Classifier::new(config).classify(raw_path);
    let path = classified.path;
    let _ = writeln!(out, "{method} {raw_path}");
    if path != raw_path {
        let _ = writeln!(out, "normalized: {path}");
    }
    let answered_by = match classified.target {
        Target::Proxy => None,
        Target::Escaped => Some("refused: 400, the path holds an encoded slash, backslash or dot (proxy.escaped_paths = \"reject\")".to_string()),
        Target::Api(router::Route::Api(endpoint)) => Some(format!(
            "answered by gatehouse itself: the user API ({})",
            endpoint.label()
        )),
        Target::Api(router::Route::Redirect(to)) => {
            Some(format!("answered by gatehouse itself: 308 to {to}"))
        }
        Target::Api(router::Route::NotFound | router::Route::NotOurs) => Some(
            "answered by gatehouse itself: 404 (an unknown path under its own prefixes)"
                .to_string(),
        ),
        Target::Pages => Some(format!(
            "answered by gatehouse itself: the pages ([web] prefix = {:?})",
            config.web.prefix
        )),
        Target::Console => Some(format!(
            "answered by gatehouse itself: the admin console ([console] prefix = {:?})",
            config.console.prefix
        )),
        Target::ForwardAuth => {
            Some("gatehouse's forward-auth prefix: never forwarded".to_string())
        }
        Target::Missing => Some(format!(
            "answered by gatehouse itself: 404 here; the admin console is on its own listener ([console] listen = \"{}\")",
            config.console.listen.map_or_else(String::new, |a| a.to_string())
        )),
    };
    if let Some(line) = answered_by {
        let _ = writeln!(out, "{line}");
        return out;
    }
    let Some(route) = routes.lookup(&path) else {
        let _ = writeln!(out, "no route: 404, nothing forwarded");
        return out;
    };
    let upstreams: Vec<String> = route
        .upstreams
        .backends()
        .get_backend()
        .iter()
        .map(|b| b.addr.to_string())
        .collect();
    let _ = writeln!(out, "route: {} -> {}", route.prefix, upstreams.join(", "));
    let _ = writeln!(out, "  accepts: {}", route.accept.names().join(", "));
    let _ = writeln!(
        out,
        "  auth {}{}{}; methods: {}; path sent upstream: {}",
        auth_mode(route),
        if route.require_staff {
            ", staff only"
        } else {
            ""
        },
        if route.require_mfa {
            ", second factor required"
        } else {
            ""
        },
        if route.methods.is_empty() {
            "any"
        } else {
            &route.allow
        },
        route.upstream_path(&path)
    );
    if let Some(limit) = &route.rate_limit {
        let _ = writeln!(
            out,
            "  rate limit: {}; over it: 429 with Retry-After, never forwarded",
            crate::config::describe_rate_limit(&limit.config, limit.shared)
        );
    }
    if let Some(aud) = &route.assertion_audience {
        let _ = writeln!(
            out,
            "  identity assertion: X-Gatehouse-Assertion with aud {aud:?}"
        );
    }
    let Some((name, user)) = who else {
        return out;
    };
    let outcome = match &user {
        None => Err(AuthError::UserNotFound),
        Some(u) if !u.is_active => Err(AuthError::UserInactive),
        Some(u) => Ok(UserState::from(u).identity(u.id, Via::Jwt, false, None)),
    };
    let decision = match decide::requirement(route) {
        None => decide::policy(route, method, None),
        Some(need) => match require(outcome, need) {
            Ok(identity) => decide::policy(route, method, identity),
            Err(e) => Decision::Respond(ApiError::from(e).to_response()),
        },
    };
    let p = &config.proxy;
    match decision.into_response() {
        Err(Some(id)) => {
            let _ = writeln!(
                out,
                "user {name}: forwarded with {}: {}, {}: {}, {}: {}, {}: {}",
                p.user_id_header,
                id.user_id,
                p.user_name_header,
                id.username,
                p.user_is_staff_header,
                id.is_staff,
                p.user_groups_header,
                crate::auth::identity::groups_value(&id.groups)
            );
        }
        Err(None) => {
            let _ = writeln!(
                out,
                "user {name}: forwarded without identity headers (public route)"
            );
        }
        Ok(resp) => {
            let _ = writeln!(
                out,
                "user {name}: refused with a valid token: {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
        }
    }
    out
}
