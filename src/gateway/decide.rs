//! The proxy's auth decision: a plain function over the request's method and headers, the
//! matched route and the authenticator. It returns a value; the Pingora glue acts on it, for
//! the inline proxy and for forward-auth alike.

use super::cors;
use super::routes::Route;
use crate::auth::credentials::refuse_ambiguous;
use crate::auth::{Authenticator, Identity, Requirement};
use crate::config::AuthMode;
use crate::error::ApiError;
use crate::response::Response;
use http::{HeaderMap, Method};

#[derive(Debug)]
pub enum Decision {
    /// Send upstream, with these identity headers (none for anonymous or public).
    Forward(Option<Identity>),
    /// Answer locally; the upstream never sees the request.
    Respond(Response),
}

/// Who a route lets through (`None`: anyone, unchecked).
pub fn requirement(route: &Route) -> Option<Requirement> {
    let needs_groups = !route.require_groups.is_empty();
    match (route.auth, route.require_staff) {
        (_, true) => Some(Requirement::Staff),
        (_, false) if needs_groups => Some(Requirement::Authenticated),
        (AuthMode::Public, false) => None,
        (AuthMode::Required, false) => Some(Requirement::Authenticated),
        (AuthMode::Optional, false) => Some(Requirement::Anyone),
    }
}

pub async fn decide(
    method: &Method,
    headers: &HeaderMap,
    route: Option<&Route>,
    auth: &Authenticator,
) -> Decision {
    let Some(route) = route else {
        return Decision::Respond(ApiError::NotFound.to_response());
    };
    if let Some(c) = &route.cors {
        if cors::is_preflight(method.as_str(), headers) {
            return Decision::Respond(cors::preflight(c, headers));
        }
    }
    if let Err(e) = refuse_ambiguous(headers) {
        return Decision::Respond(ApiError::from(e).to_response());
    }
    let Some(need) = requirement(route) else {
        return policy(route, method, None);
    };
    match auth.check(headers, need).await {
        Ok(identity) => policy(route, method, identity),
        Err(e) => Decision::Respond(ApiError::from(e).to_response()),
    }
}

/// The route's policy once the caller is settled, in DRF's order: who is calling (already
/// done), then permission (groups: 403), then whether the method is allowed (405).
pub fn policy(route: &Route, method: &Method, identity: Option<Identity>) -> Decision {
    if !route.require_groups.is_empty() {
        let member = identity
            .as_ref()
            .is_some_and(|who| who.groups.iter().any(|g| route.require_groups.contains(g)));
        if !member {
            let refusal = match identity {
                Some(_) => ApiError::PermissionDenied,
                None => ApiError::NotAuthenticated,
            };
            return Decision::Respond(refusal.to_response());
        }
    }
    if let Some(refused) = method_refused(route, method) {
        return Decision::Respond(refused);
    }
    Decision::Forward(identity)
}

/// A 405 for a method the route does not take, with the route's `Allow`.
fn method_refused(route: &Route, method: &Method) -> Option<Response> {
    if route.methods.is_empty() || route.methods.contains(method) {
        return None;
    }
    Some(
        ApiError::MethodNotAllowed(method.to_string())
            .to_response()
            .with_header("Allow", route.allow.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::config::Config;
    use crate::gateway::routes::RouteTable;
    use crate::store::NewUser;
    use crate::test_support::block;
    use pingora::http::RequestHeader;

    struct World {
        app: App,
        routes: RouteTable,
        _dir: tempfile::TempDir,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            "[server]\ndata_dir = \"{}\"\n[passwords]\nargon2_memory_kib = 64\nargon2_iterations = 1\n\
             [[routes]]\nprefix = \"/\"\nupstreams = [\"127.0.0.1:9\"]\n\
             [[routes]]\nprefix = \"/open/\"\nupstreams = [\"127.0.0.1:9\"]\nauth = \"public\"\n\
             [[routes]]\nprefix = \"/maybe/\"\nupstreams = [\"127.0.0.1:9\"]\nauth = \"optional\"\n\
             [[routes]]\nprefix = \"/staff/\"\nupstreams = [\"127.0.0.1:9\"]\nrequire_staff = true\n",
            dir.path().display()
        );
        let config = Config::from_toml_and_env(&toml, "t", &[]).expect("config");
        let routes = RouteTable::from_config(&config).expect("routes");
        World {
            app: App::open(config).expect("app"),
            routes,
            _dir: dir,
        }
    }

    fn user(w: &World, name: &str, staff: bool) -> crate::store::User {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        rt.block_on(w.app.store.create_user(
            NewUser {
                username: name.into(),
                email: format!("{name}@example.com"),
                first_name: String::new(),
                last_name: String::new(),
                password: String::new(),
                is_staff: staff,
                date_joined: 0,
            },
            &|_| Default::default(),
        ))
        .expect("create")
    }

    fn head(path: &str, auth: &[&str]) -> RequestHeader {
        let mut h = RequestHeader::build("GET", path.as_bytes(), None).expect("head");
        for a in auth {
            h.append_header("Authorization", *a).expect("header");
        }
        h
    }

    fn run(w: &World, path: &str, auth: &[&str]) -> Decision {
        let h = head(path, auth);
        block(decide(
            &h.method,
            &h.headers,
            w.routes.lookup(path).map(|r| r.as_ref()),
            &w.app.authenticator,
        ))
    }

    fn status(d: &Decision) -> u16 {
        match d {
            Decision::Forward(_) => 0,
            Decision::Respond(r) => r.status,
        }
    }

    #[test]
    fn auth_modes() {
        let w = world();
        let alice = user(&w, "alice", false);
        let (access, _) = w.app.issue_pair(&alice).expect("signs");
        let bearer = format!("Bearer {access}");
        assert_eq!(status(&run(&w, "/x", &[])), 401);
        assert!(
            matches!(run(&w, "/x", &[&bearer]), Decision::Forward(Some(ref who))
                if who.user_id == alice.id && who.via == crate::auth::Via::Jwt && !who.mfa)
        );
        assert!(matches!(
            run(&w, "/open/x", &["Bearer garbage"]),
            Decision::Forward(None)
        ));
        assert!(matches!(run(&w, "/maybe/x", &[]), Decision::Forward(None)));
        assert_eq!(status(&run(&w, "/maybe/x", &["Bearer garbage"])), 401);
        assert_eq!(status(&run(&w, "/staff/x", &[&bearer])), 403);
        assert_eq!(status(&run(&w, "/open/x", &[&bearer, &bearer])), 401);
        assert_eq!(
            status(&run(&w, "/x", &[&format!("{bearer}, {bearer}")])),
            401
        );
    }

    #[test]
    fn staff_and_revocation_come_from_current_state() {
        let w = world();
        let boss = user(&w, "boss", true);
        let (access, _) = w.app.issue_pair(&boss).expect("signs");
        let bearer = format!("Bearer {access}");
        assert!(matches!(
            run(&w, "/staff/x", &[&bearer]),
            Decision::Forward(Some(_))
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let dead = rt
            .block_on(w.app.store.update_user(
                boss.id,
                &|u| {
                    u.is_active = false;
                    u.token_version += 1;
                },
                &|_, _| Default::default(),
            ))
            .expect("update");
        w.app.cache.updated(&dead);
        let Decision::Respond(r) = run(&w, "/staff/x", &[&bearer]) else {
            panic!("a deleted user must be refused");
        };
        assert_eq!(r.body_json()["code"], "user_inactive");
    }

    #[test]
    fn no_route_is_404() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!("[server]\ndata_dir = \"{}\"\n", dir.path().display());
        let config = Config::from_toml_and_env(&toml, "t", &[]).expect("config");
        let routes = RouteTable::from_config(&config).expect("routes");
        let app = App::open(config).expect("app");
        let h = head("/x", &[]);
        let d = block(decide(
            &h.method,
            &h.headers,
            routes.lookup("/x").map(|r| r.as_ref()),
            &app.authenticator,
        ));
        assert_eq!(status(&d), 404);
    }
}
