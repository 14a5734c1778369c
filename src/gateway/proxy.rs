//! The Pingora phases of the one `ProxyHttp` service: the user API is answered locally, every
//! other request is decided (`decide`) and forwarded to its route's upstreams. This file only
//! moves bytes between the session and the plain functions that decide.

use super::classify::{Classifier, Target};
use super::connection::Peer;
use super::decide::{self, Decision};
use super::headers;
use super::live::{Live, SharedLive, HSTS_HEADER};
use super::respond::write_response;
use super::routes::Route;
use super::telemetry::{self, Kind, Outcome};
use super::{api_request, cors, forward_auth};
use crate::api::{self, router};
use crate::app::App;
use crate::auth::credentials::AUTHORIZATION;
use crate::auth::{assertion, Identity};
use crate::config::owned::FORWARD_AUTH_PREFIX;
use crate::config::Network;
use crate::error::ApiError;
use crate::limits::{
    self, RouteLimit, Verdict, Who, RATELIMIT_HEADER, RATELIMIT_NAME, RATELIMIT_POLICY_HEADER,
    RATELIMIT_POLICY_NAME,
};
use crate::response::Response;
use async_trait::async_trait;
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::Instant;

pub struct Gateway {
    app: Arc<App>,
    /// Routes and edge rules; a reload stores new ones.
    live: SharedLive,
    /// Who answers a path (the prefixes need a restart to change).
    classifier: Classifier,
    /// The identity headers' names as Pingora takes them without copying (a reference
    /// count per insert instead of a new buffer).
    identity_names: [bytes::Bytes; 4],
    /// Removed from every client request before anything is added: the identity headers,
    /// the assertion header, and the credential headers unless `proxy.forward_authorization`.
    untrusted: Vec<HeaderName>,
    trusted_proxies: Vec<Network>,
    /// Set once a hand-over or stop began: answers then close their connections.
    drain: super::drain::Drain,
    /// This is the console's own listener (`console.listen`): never redirected to HTTPS.
    console_listener: bool,
}

/// Per-request state, for the phases that follow `request_filter` and for telemetry.
pub struct RequestCtx {
    started: Instant,
    /// The configuration this request runs on from start to end, even across a reload.
    live: Arc<Live>,
    /// It came over the TLS listener.
    tls: bool,
    kind: Kind,
    /// The API endpoint's label (user-API requests).
    endpoint: &'static str,
    request_id: String,
    /// The matched proxy route (set for every proxied request, forwarded or not).
    route: Option<Arc<Route>>,
    identity: Option<Identity>,
    origin: Option<String>,
    /// The chosen upstream's metric and log label.
    upstream: Option<Arc<str>>,
    /// When the upstream was chosen, and the status it answered.
    upstream_started: Option<Instant>,
    upstream_status: u16,
    /// The normalized request path every decision used.
    path: String,
    /// The authenticated caller (API or proxy), for the access log.
    user_id: Option<u64>,
    /// The path the access log shows instead of the one sent (a mail link's token removed).
    logged_path: Option<String>,
    /// `RateLimit` of this answer, on a limited route (SPEC §20).
    rate: Option<http::HeaderValue>,
    /// The connection's peer, carried from the connection's previous request (`None`: not
    /// a TCP peer).
    peer: Option<Peer>,
}

impl RequestCtx {
    /// The HSTS value for this answer: over TLS, when configured.
    fn hsts(&self) -> Option<&str> {
        self.live.edge.hsts.as_deref().filter(|_| self.tls)
    }

    /// `RateLimit-Policy` and `RateLimit` of this answer, on a limited route.
    fn rate_headers(&self) -> Option<(&RouteLimit, &http::HeaderValue)> {
        let limit = self.route.as_ref()?.rate_limit.as_ref()?;
        Some((limit, self.rate.as_ref()?))
    }

    /// What every answer gatehouse writes itself carries: the request id, HSTS over TLS, and
    /// the RateLimit fields on a limited route.
    fn add_own_headers(&self, resp: &mut Response) {
        resp.add_header(headers::X_REQUEST_ID_ANSWER, self.request_id.clone());
        if let Some(hsts) = self.hsts() {
            resp.add_header(HSTS_HEADER, hsts.to_string());
        }
        if let Some((limit, rate)) = self.rate_headers() {
            resp.add_header(RATELIMIT_POLICY_HEADER, limit.policy.clone());
            resp.add_header(
                RATELIMIT_HEADER,
                String::from_utf8_lossy(rate.as_bytes()).into_owned(),
            );
        }
    }

    /// The metric and log label: the API endpoint, or the route prefix.
    fn label(&self) -> &str {
        match &self.route {
            Some(route) => &route.prefix,
            None => self.endpoint,
        }
    }
}

impl Gateway {
    pub fn new(app: Arc<App>, live: SharedLive, drain: super::drain::Drain) -> Gateway {
        let p = &app.config.proxy;
        let identity_headers = [
            p.user_id_header.clone(),
            p.user_name_header.clone(),
            p.user_is_staff_header.clone(),
            p.user_groups_header.clone(),
        ];
        let trusted_proxies = p.trusted_proxies.clone();
        let identity_names = identity_headers
            .clone()
            .map(|n| bytes::Bytes::copy_from_slice(n.as_str().as_bytes()));
        let mut untrusted = identity_headers.to_vec();
        untrusted.push(HeaderName::from_static(assertion::HEADER));
        untrusted.push(HeaderName::from_static(headers::X_USER_AUTH));
        if !p.forward_authorization {
            // The API-key header is a credential as well: it goes with `Authorization`.
            untrusted.push(AUTHORIZATION);
            untrusted.push(app.config.apikeys.header.clone());
        }
        Gateway {
            classifier: Classifier::new(&app.config),
            app,
            live,
            identity_names,
            untrusted,
            trusted_proxies,
            drain,
            console_listener: false,
        }
    }

    /// The service of the console's own listener (`console.listen`): the console and the
    /// pages it signs in with, everything else 404.
    pub fn console(app: Arc<App>, live: SharedLive, drain: super::drain::Drain) -> Gateway {
        let classifier = Classifier::for_console(&app.config);
        Gateway {
            classifier,
            console_listener: true,
            ..Gateway::new(app, live, drain)
        }
    }

    /// An ingress asking about a request: the same route table and decision as the inline
    /// proxy, answered with the identity headers or the refusal.
    async fn forward_auth(&self, session: &Session, ctx: &mut RequestCtx) -> Response {
        let settings = &self.app.config.forward_auth;
        let peer_allowed = api_request::peer_ip(session)
            .is_some_and(|ip| settings.allowed_peers.iter().any(|n| n.contains(ip)));
        if !settings.enabled || !peer_allowed {
            return ApiError::NotFound.to_response();
        }
        let head = session.req_header();
        let original = match forward_auth::original(&ctx.path, &head.method, &head.headers) {
            None => return ApiError::NotFound.to_response(),
            Some(Err(e)) => return e.to_response(),
            Some(Ok(original)) => original,
        };
        let asked = self.classifier.classify(&original.path);
        match asked.target {
            Target::Escaped => return ApiError::EscapedPath.to_response(),
            Target::Proxy => {}
            // gatehouse's own paths: the ingress passes them on and gatehouse decides itself.
            Target::Api(_)
            | Target::Pages
            | Target::Console
            | Target::ForwardAuth
            | Target::Missing => {
                return forward_auth::answer(Decision::Forward(None), &self.app.config.proxy)
            }
        }
        let decision = self
            .decide_route(ctx, &asked.path, &original.method, &head.headers)
            .await;
        let web = &self.app.config.web;
        let own_origin = forward_auth::origin(&head.headers, web);
        // `next`: the original absolute URL (SPEC §15); the sign-in page follows it to its
        // own host, or to `allowed_redirect_hosts`.
        let next_target = format!("{own_origin}{}", original.uri);
        let browser = decide::Asked {
            method: &original.method,
            headers: &head.headers,
            target: &next_target,
            secure: own_origin.starts_with("https://"),
            own_origin: Some(&own_origin),
            web,
            absolute_login: true,
            unauthorized_redirect: original.asker == forward_auth::Asker::Nginx,
        };
        let decision = decide::for_browsers(decision, ctx.route.as_deref(), &browser);
        self.record_refusal(&decision, session, ctx, &asked.path)
            .await;
        let decision = self.rate_limit(decision, session, ctx).await;
        let mut assertion = None;
        if let Decision::Forward(Some(who)) = &decision {
            ctx.user_id = Some(who.user_id);
            match self.assertion_for(who, ctx.route.as_deref()) {
                Some(Ok(value)) => assertion = Some(value),
                Some(Err(e)) => return ApiError::from(e).to_response(),
                None => {}
            }
        }
        let allowed = matches!(decision, Decision::Forward(_));
        let mut resp = forward_auth::answer(decision, &self.app.config.proxy);
        if let Some(value) = assertion {
            resp.add_header(assertion::HEADER, String::from_utf8_lossy(value.as_bytes()));
        }
        if allowed {
            let cookie = self
                .app
                .authenticator
                .session_cookie()
                .map(|c| c.name.as_str());
            if let Some(rest) = forward_auth::cookies_to_forward(&head.headers, cookie) {
                for name in forward_auth::COOKIE_HEADERS {
                    resp.add_header(name, rest.clone());
                }
            }
        }
        resp
    }

    /// A refused Origin check is an audit event (`csrf.refused`), recorded before its 403
    /// goes out; every other decision records nothing.
    async fn record_refusal(
        &self,
        decision: &Decision,
        session: &Session,
        ctx: &RequestCtx,
        path: &str,
    ) {
        let Decision::CsrfRefused(who, refused) = decision else {
            return;
        };
        let headers = &session.req_header().headers;
        let user_agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
        let client = api_request::client_ip(session, &self.trusted_proxies);
        let actor =
            crate::accounts::Actor::of_request(Some(who), client, &ctx.request_id, user_agent);
        crate::accounts::csrf_refused(&self.app, &actor, &refused.0, path).await;
    }

    /// The route of `path` (kept in `ctx`) and the decision on a request to it, for the
    /// inline proxy and forward-auth alike.
    async fn decide_route(
        &self,
        ctx: &mut RequestCtx,
        path: &str,
        method: &http::Method,
        headers: &http::HeaderMap,
    ) -> Decision {
        ctx.route = ctx.live.routes.lookup(path).cloned();
        decide::decide(
            method,
            path,
            headers,
            ctx.route.as_deref(),
            &self.app.authenticator,
        )
        .await
    }

    /// A limited route (SPEC §20), once the decision is made: a request about to be forwarded
    /// spends its caller's budget (429 when it is spent, never forwarded); any other answer
    /// shows the budget as it stands. Inline and forward-auth alike.
    async fn rate_limit(
        &self,
        decision: Decision,
        session: &Session,
        ctx: &mut RequestCtx,
    ) -> Decision {
        // Borrowed, not cloned: no reference count moved per request.
        let Some(limit) = ctx.route.as_ref().and_then(|r| r.rate_limit.as_ref()) else {
            return decision;
        };
        let caller = match &decision {
            Decision::Forward(who) => who.as_ref(),
            Decision::CsrfRefused(who, _) | Decision::MfaRequired(who) => Some(who),
            Decision::Respond(_) => None,
        };
        let key_id = caller.and_then(|w| w.key_id.as_ref());
        let user_id = caller.map(|w| w.user_id);
        let address = Who::needs_address(limit.config.by, key_id.is_some(), user_id.is_some())
            .then(|| self.client_ip(session, ctx))
            .flatten();
        let who = Who::of(limit.config.by, key_id, user_id, address);
        if !matches!(decision, Decision::Forward(_)) {
            let (left, reset) = self.app.limiter.peek(limit, who);
            ctx.rate = Some(limits::gcra::ratelimit_value(left, reset));
            return decision;
        }
        let verdict = self.app.limiter.check(limit, who).await;
        let (left, reset) = verdict.remaining_and_reset();
        ctx.rate = Some(limits::gcra::ratelimit_value(left, reset));
        match verdict {
            Verdict::Admitted { .. } => decision,
            Verdict::Refused { retry_after, .. } => {
                Decision::Respond(ApiError::Throttled(retry_after).to_response())
            }
        }
    }

    /// The client's address: the connection's peer, or behind a trusted proxy the hop its
    /// `X-Forwarded-For` names (read per request).
    fn client_ip(&self, session: &Session, ctx: &RequestCtx) -> Option<std::net::IpAddr> {
        match &ctx.peer {
            Some(peer) if !peer.trusted => Some(peer.ip),
            _ => api_request::client_ip(session, &self.trusted_proxies),
        }
    }

    /// The signed identity for `who` on `route`, when the route asks for one.
    fn assertion_for(
        &self,
        who: &Identity,
        route: Option<&Route>,
    ) -> Option<Result<http::HeaderValue, crate::auth::tokens::SignError>> {
        let audience = route?.assertion_audience.as_ref()?;
        let asserter = self.app.asserter.as_ref()?;
        Some(asserter.assertion(who, audience))
    }

    async fn serve_api(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: router::Route,
    ) -> Response {
        let req = match self.read_request(session, ctx).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let handled = api::handle(&self.app, route, &req).await;
        ctx.endpoint = handled.endpoint;
        ctx.user_id = handled.user_id;
        handled.response
    }

    /// The request as the user API and the pages read it (body capped at
    /// `api.max_body_bytes`), or the answer to one that cannot be read.
    async fn read_request(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
    ) -> Result<api::Request, Response> {
        let limit = self.app.config.api.max_body_bytes;
        let read = api_request::read(
            session,
            &ctx.path,
            &ctx.request_id,
            limit,
            &self.trusted_proxies,
        );
        match read.await {
            Ok(mut req) => {
                req.secure = ctx.tls;
                Ok(req)
            }
            Err(e) => {
                // The rest of an oversized or broken body is never read: close after answering.
                session.set_keepalive(None);
                Err(e.to_response())
            }
        }
    }

    /// The origin the pages' CSRF check compares `Origin` with: `[web] public_url`, else the
    /// request's host; on the console's own listener, always the host it was reached at.
    fn own_origin(&self, ctx: &RequestCtx, session: &Session) -> String {
        let headers = &session.req_header().headers;
        if self.console_listener {
            return crate::config::WebConfig::host_origin(ctx.tls, headers);
        }
        self.app.config.web.own_origin(ctx.tls, headers)
    }

    /// A page under `[web] prefix`: the request read as the API reads one, answered by
    /// `web::pages`.
    async fn serve_page(&self, session: &mut Session, ctx: &mut RequestCtx) -> Response {
        let web = &self.app.config.web;
        let own_origin = self.own_origin(ctx, session);
        let head_only = session.req_header().method == http::Method::HEAD;
        let req = match self.read_request(session, ctx).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let rest = req.path.strip_prefix(web.prefix.as_str()).unwrap_or("");
        // A mail link's token never reaches the access log.
        ctx.logged_path = Some(crate::web::pages::loggable_path(&web.prefix, rest));
        let page = crate::web::pages::PageRequest {
            req: &req,
            rest,
            secure: ctx.tls,
            own_origin: &own_origin,
            head_only,
        };
        crate::web::pages::handle(&self.app, &page).await
    }

    /// A page of the admin console under `[console] prefix`, read as the pages are, answered
    /// by `console`.
    async fn serve_console(&self, session: &mut Session, ctx: &mut RequestCtx) -> Response {
        let own_origin = self.own_origin(ctx, session);
        let head_only = session.req_header().method == http::Method::HEAD;
        let req = match self.read_request(session, ctx).await {
            Ok(req) => req,
            Err(refused) => return refused,
        };
        let prefix = &self.app.config.console.prefix;
        let rest = req.path.strip_prefix(prefix.as_str()).unwrap_or("");
        let page = crate::web::pages::PageRequest {
            req: &req,
            rest,
            secure: ctx.tls,
            own_origin: &own_origin,
            head_only,
        };
        crate::console::handle(&self.app, &page).await
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            live: self.live.load_full(),
            tls: false,
            kind: Kind::Api,
            endpoint: "none",
            request_id: String::new(),
            route: None,
            identity: None,
            origin: None,
            upstream: None,
            upstream_started: None,
            upstream_status: 0,
            path: String::new(),
            user_id: None,
            logged_path: None,
            rate: None,
            peer: None,
        }
    }

    /// No downstream modules: Pingora's default adds a disabled response-compression module
    /// that every request still walks through; gatehouse compresses nothing (issue 17).
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// The peer goes on to the connection's next request (issue 28: no address text made
    /// per request).
    fn persist_connection_context(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        ctx.peer.as_ref().map(Peer::persist)
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
        previous: Box<dyn std::any::Any + Send + Sync>,
    ) {
        ctx.peer = Peer::reused(previous);
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if ctx.peer.is_none() {
            ctx.peer = api_request::peer_ip(session).map(|ip| Peer::new(ip, &self.trusted_proxies));
        }
        let timeout = self.app.config.limits.client_read_timeout_seconds;
        session
            .as_downstream_mut()
            .set_read_timeout(Some(std::time::Duration::from_secs(timeout)));
        if self.drain.draining() {
            session.set_keepalive(None);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let limits = &self.app.config.limits;
        let head = session.req_header();
        let header_bytes: usize = head
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if head.headers.len() > limits.max_header_count || header_bytes > limits.max_header_bytes {
            session.set_keepalive(None);
            write_response(session, &ApiError::HeadersTooLarge.to_response()).await?;
            return Ok(true);
        }
        ctx.request_id = headers::request_id(&head.headers);
        if !ctx.tls && !self.console_listener && !head.uri.path().starts_with(FORWARD_AUTH_PREFIX) {
            let host = head
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| head.uri.authority().map(|a| a.as_str()));
            let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
            if let Some(mut resp) = ctx.live.edge.redirect(host, target) {
                ctx.endpoint = "redirect_to_https";
                // The body (if any) is not read: do not reuse the connection.
                session.set_keepalive(None);
                resp.add_header(headers::X_REQUEST_ID_ANSWER, ctx.request_id.clone());
                write_response(session, &resp).await?;
                return Ok(true);
            }
        }
        ctx.origin = head
            .headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let classified = self.classifier.classify(head.uri.path());
        ctx.path = classified.path;
        let mut resp = match classified.target {
            Target::Escaped => {
                ctx.endpoint = "escaped_path";
                close_if_body_unread(session);
                ApiError::EscapedPath.to_response()
            }
            Target::ForwardAuth => {
                ctx.kind = Kind::ForwardAuth;
                // An ask carries no body worth reading (nginx and Traefik send none).
                close_if_body_unread(session);
                self.forward_auth(session, ctx).await
            }
            Target::Api(route) => self.serve_api(session, ctx, route).await,
            Target::Pages => {
                ctx.kind = Kind::Pages;
                ctx.endpoint = "pages";
                self.serve_page(session, ctx).await
            }
            Target::Console => {
                ctx.kind = Kind::Pages;
                ctx.endpoint = "console";
                self.serve_console(session, ctx).await
            }
            Target::Missing => {
                ctx.endpoint = "not_found";
                // The body (if any) is not read: do not reuse the connection.
                session.set_keepalive(None);
                ApiError::NotFound.to_response()
            }
            Target::Proxy => {
                ctx.kind = Kind::Proxy;
                let head = session.req_header();
                let path = std::mem::take(&mut ctx.path);
                let decision = self
                    .decide_route(ctx, &path, &head.method, &head.headers)
                    .await;
                ctx.path = path;
                let web = &self.app.config.web;
                let asked = decide::Asked {
                    method: &head.method,
                    headers: &head.headers,
                    target: head.uri.path_and_query().map_or("/", |p| p.as_str()),
                    secure: ctx.tls,
                    own_origin: None,
                    web,
                    absolute_login: web.cookie_domain().is_some(),
                    unauthorized_redirect: false,
                };
                let decision = decide::for_browsers(decision, ctx.route.as_deref(), &asked);
                self.record_refusal(&decision, session, ctx, &ctx.path)
                    .await;
                let decision = self.rate_limit(decision, session, ctx).await;
                match decision.into_response() {
                    Err(identity) => {
                        ctx.user_id = identity.as_ref().map(|i| i.user_id);
                        ctx.identity = identity;
                        return Ok(false);
                    }
                    Ok(resp) => {
                        close_if_body_unread(session);
                        resp
                    }
                }
            }
        };
        ctx.add_own_headers(&mut resp);
        write_response(session, &resp).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(route) = &ctx.route else {
            return Err(Error::explain(ErrorType::InternalError, "no route"));
        };
        let backend = route
            .upstreams
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy upstream"))?;
        ctx.upstream = Some(route.upstream_label(&backend.addr));
        ctx.upstream_started = Some(Instant::now());
        let peer = backend
            .addr
            .as_inet()
            .and_then(|addr| route.peers.http_peer(addr))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "upstream not in its route"))?;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Strip first, then add: nothing the client sent can pass for ours.
        let sent = &session.req_header().headers;
        for name in headers::untrusted_names(sent, &upstream.headers, &self.untrusted) {
            upstream.remove_header(&name);
        }
        // The session cookie is gatehouse's: it never reaches an upstream (other cookies do).
        if let Some(cookie) = self.app.authenticator.session_cookie() {
            let sent = &session.req_header().headers;
            let name = cookie.name.as_bytes();
            let mentioned = sent
                .get_all(http::header::COOKIE)
                .iter()
                .any(|v| v.as_bytes().windows(name.len()).any(|w| w == name));
            if mentioned {
                match crate::cookies::without(sent, &cookie.name) {
                    Some(rest) => {
                        upstream.insert_header(http::header::COOKIE, rest)?;
                    }
                    None => {
                        upstream.remove_header(&http::header::COOKIE);
                    }
                }
            }
        }
        if let Some(who) = &ctx.identity {
            let [id, name, staff, groups] = &self.identity_names;
            let v = &who.values;
            let (Some(username), Some(group_names)) = (&v.username, &v.groups) else {
                return Err(Error::explain(
                    ErrorType::InternalError,
                    "the user's name or groups cannot be sent as a header value",
                ));
            };
            upstream.insert_header(id.clone(), v.user_id.clone())?;
            upstream.insert_header(name.clone(), username.clone())?;
            upstream.insert_header(staff.clone(), v.is_staff.clone())?;
            // Sent empty for a user in no group: the client's copies are gone either way.
            upstream.insert_header(groups.clone(), group_names.clone())?;
            upstream.insert_header(headers::X_USER_AUTH, who.via.header_value())?;
            if let Some(value) = self.assertion_for(who, ctx.route.as_deref()) {
                let value = value.map_err(|e| {
                    Error::because(
                        ErrorType::InternalError,
                        "signing the identity assertion",
                        e,
                    )
                })?;
                upstream.insert_header(assertion::HEADER, value)?;
            }
        }
        upstream.insert_header(headers::X_REQUEST_ID, ctx.request_id.as_str())?;
        if let Some(peer) = &ctx.peer {
            let client_xff = || {
                session
                    .req_header()
                    .headers
                    .get(headers::X_FORWARDED_FOR)
                    .and_then(|v| v.to_str().ok())
            };
            let xff = peer
                .forwarded_for(client_xff, &self.trusted_proxies)
                .map_err(|e| Error::because(ErrorType::InternalError, "X-Forwarded-For", e))?;
            upstream.insert_header(headers::X_FORWARDED_FOR, xff)?;
        }
        upstream.insert_header(
            headers::X_FORWARDED_PROTO,
            if ctx.tls { "https" } else { "http" },
        )?;
        // The upstream gets the path the decision was made on (normalized, maybe stripped).
        let target = ctx
            .route
            .as_ref()
            .map(|r| r.upstream_path(&ctx.path))
            .filter(|p| p.as_ref() != upstream.uri.path());
        if let Some(path) = target {
            let uri = match upstream.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.into_owned(),
            };
            let uri = uri
                .parse::<http::Uri>()
                .map_err(|e| Error::because(ErrorType::InternalError, "rewriting path", e))?;
            upstream.set_uri(uri);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_status = upstream_response.status.as_u16();
        if let (Some(started), Some(route)) = (ctx.upstream_started, &ctx.route) {
            telemetry::upstream_answered(&route.upstream_duration, started);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(headers::X_REQUEST_ID_ANSWER, ctx.request_id.as_str())?;
        if let Some(hsts) = ctx.hsts() {
            upstream_response.insert_header(HSTS_HEADER, hsts)?;
        }
        // Names parsed once; the value moved, not cloned (a reference count less per answer).
        let limit = ctx.route.as_ref().and_then(|r| r.rate_limit.as_ref());
        if let (Some(limit), Some(rate)) = (limit, ctx.rate.take()) {
            upstream_response.insert_parsed_header(
                &RATELIMIT_POLICY_NAME,
                RATELIMIT_POLICY_HEADER,
                limit.policy_value.clone(),
            )?;
            upstream_response.insert_parsed_header(&RATELIMIT_NAME, RATELIMIT_HEADER, rate)?;
        }
        if let (Some(route), Some(origin)) = (&ctx.route, &ctx.origin) {
            if let Some(c) = &route.cors {
                for (name, value) in cors::response_headers(c, origin) {
                    upstream_response.insert_header(name, value)?;
                }
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        use ErrorType::*;
        let error = match e.etype() {
            ReadTimedout | WriteTimedout if e.esource() == &ErrorSource::Upstream => {
                Some(ApiError::UpstreamTimeout)
            }
            _ if e.esource() == &ErrorSource::Downstream => None,
            _ => Some(ApiError::UpstreamUnavailable),
        };
        if matches!(e.etype(), TLSHandshakeFailure | InvalidCert) {
            // Never retried without TLS: the client gets 502 and the log says why.
            let upstream = ctx.upstream.as_ref().map(ToString::to_string);
            log::warn!(
                "route {}: TLS to upstream {} failed, 502: {}",
                ctx.label(),
                upstream.as_deref().unwrap_or("?"),
                crate::tls::handshake_reason(e)
            );
        }
        let mut code = 0;
        if let Some(error) = error {
            code = error.status();
            if session.response_written().is_none() {
                // The connection is not reused after a failed proxy attempt: say so.
                session.set_keepalive(None);
                let mut resp = error.to_response();
                ctx.add_own_headers(&mut resp);
                if let Err(e) = write_response(session, &resp).await {
                    log::debug!("could not write the {code} answer: {e}");
                }
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        let outcome = Outcome {
            kind: ctx.kind,
            label: ctx.label(),
            method: session.req_header().method.as_str(),
            path: ctx
                .logged_path
                .as_deref()
                .unwrap_or(session.req_header().uri.path()),
            request_id: &ctx.request_id,
            user_id: ctx.user_id,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            upstream: ctx.upstream.as_deref(),
            upstream_status: ctx.upstream_status,
            started: ctx.started,
            bytes: session.body_bytes_sent(),
        };
        telemetry::record(&outcome, &self.app.config.log);
    }
}

/// Answered without reading the request's body: a connection whose request may have one
/// (any `Transfer-Encoding`, a `Content-Length` other than 0) is closed after the answer, so
/// the unread bytes are never taken for the next request; one without (a GET, a HEAD) stays
/// open, so refusals do not cost the client a new connection each.
fn close_if_body_unread(session: &mut Session) {
    if may_carry_body(&session.req_header().headers) {
        session.set_keepalive(None);
    }
}

fn may_carry_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0")
}

#[cfg(test)]
mod tests {
    use super::may_carry_body;
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn only_a_request_without_a_body_keeps_its_connection_after_a_refusal() {
        let with = |pairs: &[(http::HeaderName, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.append(name, HeaderValue::from_static(value));
            }
            may_carry_body(&h)
        };
        assert!(!with(&[]));
        assert!(!with(&[(CONTENT_LENGTH, "0")]));
        assert!(with(&[(CONTENT_LENGTH, "5")]));
        assert!(with(&[(CONTENT_LENGTH, "0"), (CONTENT_LENGTH, "7")]));
        assert!(with(&[(CONTENT_LENGTH, "00")]));
        assert!(with(&[(TRANSFER_ENCODING, "chunked")]));
    }
}
