//! The proxy's auth decision: a plain function over the request's method and headers, the
//! matched route and the authenticator. It returns a value; the Pingora glue acts on it, for
//! the inline proxy and for forward-auth alike.

use super::cors;
use super::routes::Route;
use crate::auth::credentials::refuse_ambiguous;
use crate::auth::csrf;
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
    /// A cookie-authenticated unsafe request from a foreign origin: refused (403, Django's
    /// reason), and recorded as `csrf.refused` by the glue, which knows the request.
    CsrfRefused(Identity, csrf::Refused),
    /// A `require_mfa` route, and the caller's sign-in used no second factor: 403
    /// `mfa_required` (a browser's session may be sent to step up instead).
    MfaRequired(Identity),
}

impl Decision {
    /// What is answered locally, if anything (a CSRF refusal as its 403 JSON).
    pub fn into_response(self) -> Result<Response, Option<Identity>> {
        match self {
            Decision::Forward(identity) => Err(identity),
            Decision::Respond(resp) => Ok(resp),
            Decision::CsrfRefused(_, refused) => {
                Ok(Response::json_text(403, csrf::json_detail(&refused)))
            }
            Decision::MfaRequired(_) => Ok(ApiError::MfaRequired.to_response()),
        }
    }
}

/// Who a route lets through (`None`: anyone, unchecked).
pub fn requirement(route: &Route) -> Option<Requirement> {
    let needs_groups = !route.require_groups.is_empty();
    match (route.auth, route.require_staff) {
        (_, true) => Some(Requirement::Staff),
        (_, false) if needs_groups || route.require_mfa => Some(Requirement::Authenticated),
        (AuthMode::Public, false) => None,
        (AuthMode::Required, false) => Some(Requirement::Authenticated),
        (AuthMode::Optional, false) => Some(Requirement::Anyone),
    }
}

/// The decision on a request for `path` (normalized, the one the route was matched on).
pub async fn decide(
    method: &Method,
    path: &str,
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
    match auth.check_accepting(headers, need, route.accept).await {
        // An API key with `routes` reaches only those prefixes (SPEC §19).
        Ok(Some(who)) if !who.reaches(path) => {
            Decision::Respond(ApiError::PermissionDenied.to_response())
        }
        Ok(identity) => policy(route, method, identity),
        Err(e) => Decision::Respond(ApiError::from(e).to_response()),
    }
}

/// What the browser side adds to a decision (SPEC §15): a browser that is not signed in on
/// a `login_redirect` route goes to the sign-in page instead of the 401; a request
/// authenticated by the session cookie with an unsafe method must come from its own origin
/// (or a trusted one), or it is refused and never forwarded.
pub fn for_browsers(decision: Decision, route: Option<&Route>, asked: &Asked<'_>) -> Decision {
    use crate::web::{browser, next};
    match decision {
        // A browser signed in with the password alone, on a page that needs a second factor:
        // to the second-factor page (which asks the code, or leads to enrolment), never a
        // dead end.
        Decision::MfaRequired(who)
            if who.via == crate::auth::Via::Session
                && route.is_some_and(|r| r.login_redirect)
                && asked.web.enabled
                && browser::wants_html(asked.headers) =>
        {
            let base = asked.login_base();
            let location = next::page_url(
                base.as_deref(),
                &asked.web.prefix,
                next::SECOND_FACTOR_PAGE,
                asked.target,
            );
            if asked.unauthorized_redirect {
                // nginx turns only a 401 into the redirect (`error_page 401 =302 $login`).
                return Decision::Respond(
                    ApiError::NotAuthenticated
                        .to_response()
                        .with_header("Location", location),
                );
            }
            Decision::Respond(Response::redirect(
                browser::redirect_status(asked.method),
                location,
            ))
        }
        Decision::Respond(resp)
            if resp.status == 401
                && route.is_some_and(|r| r.login_redirect)
                && asked.web.enabled
                && browser::wants_html(asked.headers) =>
        {
            let base = asked.login_base();
            let location = next::login_url(base.as_deref(), &asked.web.prefix, asked.target);
            if asked.unauthorized_redirect {
                // The 401 as it was, with the way to sign in for the ingress to send on.
                return Decision::Respond(resp.with_header("Location", location));
            }
            Decision::Respond(Response::redirect(
                browser::redirect_status(asked.method),
                location,
            ))
        }
        // Nothing is routed at `/`: a person opening gatehouse's address sees their account
        // (or the sign-in page) instead of a 404.
        Decision::Respond(resp)
            if resp.status == 404
                && route.is_none()
                && asked.target == "/"
                && asked.web.enabled
                && browser::wants_html(asked.headers) =>
        {
            Decision::Respond(Response::redirect(
                browser::redirect_status(asked.method),
                asked.web.prefix.clone(),
            ))
        }
        Decision::Forward(Some(who))
            if who.via == crate::auth::Via::Session && !is_safe(asked.method) =>
        {
            let header = |name: &str| asked.headers.get(name).and_then(|v| v.to_str().ok());
            let input = csrf::CsrfInput {
                method: asked.method,
                secure: asked.secure,
                own_origin: &asked.origin(),
                origin: header("origin"),
                referer: header("referer"),
                cookie: None,
                form_token: None,
                header_token: None,
            };
            match csrf::check_origin(&input, &asked.web.trusted_origins) {
                Ok(()) => Decision::Forward(Some(who)),
                Err(refused) => Decision::CsrfRefused(who, refused),
            }
        }
        other => other,
    }
}

impl Asked<'_> {
    /// What the pages' URLs start with: absolute when the pages live elsewhere, the cookie
    /// spans hosts, or an ingress asks (nginx treats a relative Location as an internal
    /// redirect).
    fn login_base(&self) -> Option<String> {
        match self.web.public_url() {
            Some(public) => Some(public.to_string()),
            None if self.absolute_login => Some(self.origin()),
            None => None,
        }
    }

    /// The request's own origin.
    fn origin(&self) -> String {
        match self.own_origin {
            Some(origin) => origin.to_string(),
            None => self.web.own_origin(self.secure, self.headers),
        }
    }
}

/// GET, HEAD, OPTIONS and TRACE change nothing (RFC 9110 9.2.1): no CSRF check.
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request as the browser rules see it.
pub struct Asked<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The path and query as sent: where a browser comes back to after signing in.
    pub target: &'a str,
    /// It came over TLS.
    pub secure: bool,
    /// "scheme://host[:port]" as the client addressed the original request, when the caller
    /// knows it (forward-auth); otherwise made from `web` and the headers, only when needed
    /// (not on every proxied request).
    pub own_origin: Option<&'a str>,
    pub web: &'a crate::config::WebConfig,
    /// The sign-in URL carries a scheme and host even without `public_url`.
    pub absolute_login: bool,
    /// nginx `auth_request`: the way to sign in is a 401 with `Location`, which nginx turns
    /// into the redirect (`error_page 401 =302 $login`).
    pub unauthorized_redirect: bool,
}

/// The route's policy once the caller is settled, in DRF's order: who is calling (already
/// done), then permission (groups, a second factor: 403), then whether the method is allowed
/// (405).
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
    if let Some(who) = identity
        .as_ref()
        .filter(|who| route.require_mfa && !who.mfa)
    {
        return Decision::MfaRequired(who.clone());
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
             [[routes]]\nprefix = \"/staff/\"\nupstreams = [\"127.0.0.1:9\"]\nrequire_staff = true\n\
             [[routes]]\nprefix = \"/strong/\"\nupstreams = [\"127.0.0.1:9\"]\nrequire_mfa = true\nlogin_redirect = true\n",
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
                is_service: false,
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
            path,
            &h.headers,
            w.routes.lookup(path).map(|r| r.as_ref()),
            &w.app.authenticator,
        ))
    }

    fn status(d: &Decision) -> u16 {
        match d {
            Decision::Forward(_) => 0,
            Decision::Respond(r) => r.status,
            Decision::CsrfRefused(..) | Decision::MfaRequired(_) => 403,
        }
    }

    #[test]
    fn a_require_mfa_route_takes_only_sign_ins_with_a_second_factor() {
        let w = world();
        let alice = user(&w, "alice", false);
        let (password_only, _) = w.app.issue_pair(&alice).expect("signs");
        let (with_code, _) = w.app.issue_pair_in(&alice, "family", true).expect("signs");
        let bearer = |t: &str| format!("Bearer {t}");
        match run(&w, "/strong/x", &[&bearer(&password_only)]) {
            Decision::MfaRequired(who) => assert_eq!(who.user_id, alice.id),
            other => panic!("password only: {other:?}"),
        }
        let refused = run(&w, "/strong/x", &[&bearer(&password_only)]).into_response();
        let body = refused.map(|r| (r.status, r.body_json()));
        assert_eq!(
            body.ok(),
            Some((
                403,
                serde_json::json!({"detail": "Two-factor authentication required.", "code": "mfa_required"})
            ))
        );
        match run(&w, "/strong/x", &[&bearer(&with_code)]) {
            Decision::Forward(Some(who)) => assert!(who.mfa),
            other => panic!("with a code: {other:?}"),
        }
        // Other routes do not care; nobody at all is the usual 401.
        assert!(matches!(
            run(&w, "/x", &[&bearer(&password_only)]),
            Decision::Forward(Some(_))
        ));
        assert_eq!(status(&run(&w, "/strong/x", &[])), 401);
        // A bearer caller is never redirected: only a browser's session can step up.
        let route = w.routes.lookup("/strong/x").map(|r| r.as_ref());
        let mut html = http::HeaderMap::new();
        html.insert("accept", http::HeaderValue::from_static("text/html"));
        let asked = Asked {
            method: &Method::GET,
            headers: &html,
            target: "/strong/x?y=1",
            secure: false,
            own_origin: None,
            web: &w.app.config.web,
            absolute_login: false,
            unauthorized_redirect: false,
        };
        let decided = for_browsers(
            run(&w, "/strong/x", &[&bearer(&password_only)]),
            route,
            &asked,
        );
        assert_eq!(status(&decided), 403);
        let mut session = match run(&w, "/strong/x", &[&bearer(&password_only)]) {
            Decision::MfaRequired(who) => who,
            other => panic!("{other:?}"),
        };
        session.via = crate::auth::Via::Session;
        match for_browsers(Decision::MfaRequired(session.clone()), route, &asked) {
            Decision::Respond(r) => {
                assert_eq!(r.status, 302);
                assert_eq!(
                    r.header("Location"),
                    Some("/accounts/login/code/?next=/strong/x%3Fy%3D1")
                );
            }
            other => panic!("{other:?}"),
        }
        // nginx: the 401 with the way to step up.
        let nginx = Asked {
            unauthorized_redirect: true,
            absolute_login: true,
            ..asked
        };
        match for_browsers(Decision::MfaRequired(session), route, &nginx) {
            Decision::Respond(r) => {
                assert_eq!(r.status, 401);
                assert!(r.header("Location").is_some_and(
                    |l| l.starts_with("http") && l.contains("/accounts/login/code/?next=")
                ));
            }
            other => panic!("{other:?}"),
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
    fn a_keys_uses_are_written_in_one_batch_not_per_request() {
        let w = world();
        let ann = user(&w, "ann", false);
        let made = crate::auth::apikey::generate();
        let record = crate::store::ApiKey {
            id: "k1".into(),
            user_id: ann.id,
            name: "ci".into(),
            sha256: made.sha256.clone(),
            prefix: made.prefix.clone(),
            created: 0,
            expires_at: u64::MAX,
            groups: Vec::new(),
            routes: Vec::new(),
            staff: false,
            last_used: None,
            revoked: None,
        };
        block(w.app.store.record(crate::store::Effects {
            api_keys: vec![record],
            ..Default::default()
        }))
        .expect("written");
        let bearer = format!("Bearer {}", made.key);
        for _ in 0..3 {
            assert_eq!(status(&run(&w, "/x", &[&bearer])), 0, "forwarded");
        }
        let stored = |w: &World| {
            block(w.app.store.get_api_key("k1"))
                .expect("read")
                .expect("exists")
                .last_used
        };
        assert_eq!(stored(&w), None, "nothing written per request");
        let auth = &w.app.authenticator;
        assert_eq!(
            block(auth.flush_key_uses()).expect("flushed"),
            1,
            "one write"
        );
        let used = stored(&w).expect("last_used written");
        assert!(used.abs_diff(crate::clock::now()) < 5);
        assert_eq!(block(auth.flush_key_uses()).expect("flushed"), 0);
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
            "/x",
            &h.headers,
            routes.lookup("/x").map(|r| r.as_ref()),
            &app.authenticator,
        ));
        assert_eq!(status(&d), 404);
    }
}
