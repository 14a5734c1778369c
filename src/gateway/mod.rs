//! The Pingora glue: one `ProxyHttp` service that answers the user API locally and forwards
//! every other request to its route's upstreams. It only moves bytes; decisions live in
//! `api`, `decide`, `headers` and `cors`.

pub mod cors;
pub mod decide;
pub mod headers;
pub mod routes;

use crate::api::{self, router};
use crate::app::App;
use crate::auth::Identity;
use crate::error::ApiError;
use crate::metrics;
use crate::response::Response;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use decide::Decision;
use http::HeaderName;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use routes::{Route, RouteTable};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Gateway {
    app: Arc<App>,
    routes: Arc<RouteTable>,
    identity_headers: [HeaderName; 3],
    trusted_proxies: Vec<crate::config::Network>,
}

/// Per-request state, for the filters that follow `request_filter` and for the log.
pub struct RequestCtx {
    started: Instant,
    kind: &'static str,
    /// The API endpoint's label (user-API requests).
    endpoint: &'static str,
    request_id: String,
    /// The matched proxy route (set for every proxied request, forwarded or not).
    route: Option<Arc<Route>>,
    identity: Option<Identity>,
    origin: Option<String>,
    upstream: Option<pingora::protocols::l4::socket::SocketAddr>,
    /// When the upstream was chosen, and the status it answered.
    upstream_started: Option<Instant>,
    upstream_status: u16,
    /// The normalized request path every decision used.
    path: String,
    /// The authenticated caller (API or proxy), for the access log.
    user_id: Option<u64>,
}

impl RequestCtx {
    /// The metric and log label: the API endpoint, or the route prefix (bounded: both come
    /// from code or config).
    fn label(&self) -> &str {
        match &self.route {
            Some(route) => &route.prefix,
            None => self.endpoint,
        }
    }
}

/// `200` -> "2xx": the status-class label without formatting.
fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "0xx",
    }
}

/// The status label, written into `buf` instead of a new String ("0": nothing answered).
fn status_text(status: u16, buf: &mut [u8; 3]) -> &str {
    if !(100..1000).contains(&status) {
        return "0";
    }
    *buf = [100, 10, 1].map(|unit| b'0' + (status / unit % 10) as u8);
    std::str::from_utf8(buf).unwrap_or("0")
}

fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

impl Gateway {
    pub fn new(app: Arc<App>, routes: Arc<RouteTable>) -> Gateway {
        let p = &app.config.proxy;
        let identity_headers = [
            p.user_id_header.clone(),
            p.user_name_header.clone(),
            p.user_is_staff_header.clone(),
        ];
        let trusted_proxies = p.trusted_proxies.clone();
        Gateway {
            app,
            routes,
            identity_headers,
            trusted_proxies,
        }
    }

    /// Reads the user-API request off the session, body capped at `api.max_body_bytes`.
    async fn read_api_request(
        &self,
        session: &mut Session,
        path: &str,
    ) -> Result<api::Request, ApiError> {
        let limit = self.app.config.api.max_body_bytes;
        let head = session.req_header();
        let header = |name: &str| {
            head.headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let declared = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let mut req = api::Request {
            method: head.method.as_str().to_string(),
            // Normalized once, in request_filter.
            path: path.to_string(),
            query: head.uri.query().unwrap_or("").to_string(),
            host: header("host").unwrap_or_default(),
            authorization: head
                .headers
                .get_all("authorization")
                .iter()
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            content_type: header("content-type"),
            body: Bytes::new(),
            client_ip: peer_ip(session).map(|peer| {
                let xff = header(headers::X_FORWARDED_FOR);
                headers::client_ip(peer, xff.as_deref(), &self.trusted_proxies)
            }),
        };
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::TooLarge(limit));
        }
        let mut body = BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(ApiError::TooLarge(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => return Err(ApiError::Parse("could not read the request body".into())),
            }
        }
        req.body = body.freeze();
        Ok(req)
    }

    async fn serve_api(&self, session: &mut Session, ctx: &mut RequestCtx) -> Response {
        match self.read_api_request(session, &ctx.path).await {
            Ok(req) => {
                let handled = api::handle(&self.app, &req).await;
                ctx.endpoint = handled.endpoint;
                ctx.user_id = handled.user_id;
                handled.response
            }
            Err(e) => {
                // The rest of an oversized or broken body is never read: close after answering.
                session.set_keepalive(None);
                e.to_response()
            }
        }
    }
}

/// Writes a locally made response, always with `Content-Length`.
pub async fn write_response(session: &mut Session, resp: &Response) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(resp.status, Some(resp.headers.len() + 2))?;
    if !resp.body.is_empty() || resp.omit_body {
        header.insert_header("Content-Type", "application/json")?;
    }
    header.insert_header("Content-Length", resp.body.len().to_string())?;
    for (name, value) in &resp.headers {
        header.append_header(*name, value.as_str())?;
    }
    let no_body = resp.omit_body || resp.body.is_empty();
    session
        .write_response_header(Box::new(header), no_body)
        .await?;
    if !no_body {
        session
            .write_response_body(Some(resp.body.clone()), true)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            kind: "api",
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
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        let timeout = self.app.config.limits.client_read_timeout_seconds;
        session
            .as_downstream_mut()
            .set_read_timeout(Some(std::time::Duration::from_secs(timeout)));
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
        let head = session.req_header();
        ctx.request_id = headers::request_id(&head.headers);
        ctx.origin = head
            .headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        ctx.path = router::normalize_path(head.uri.path());
        let mut resp = if router::route(&ctx.path) != router::Route::NotOurs {
            self.serve_api(session, ctx).await
        } else {
            ctx.kind = "proxy";
            ctx.route = self.routes.lookup(&ctx.path).cloned();
            match decide::decide(session.req_header(), ctx.route.as_deref(), &self.app) {
                Decision::Forward(identity) => {
                    ctx.user_id = identity.as_ref().map(|i| i.user_id);
                    ctx.identity = identity;
                    return Ok(false);
                }
                Decision::Respond(resp) => {
                    // The body (if any) is not read: do not reuse the connection.
                    session.set_keepalive(None);
                    resp
                }
            }
        };
        resp.headers.push(("X-Request-Id", ctx.request_id.clone()));
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
        ctx.upstream = Some(backend.addr.clone());
        ctx.upstream_started = Some(Instant::now());
        let mut peer = HttpPeer::new(backend, false, String::new());
        peer.options.connection_timeout = Some(route.connect_timeout);
        peer.options.read_timeout = Some(route.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Strip first, then add: nothing the client sent can pass for ours.
        for name in headers::untrusted_names(&session.req_header().headers, &self.identity_headers)
        {
            upstream.remove_header(&name);
        }
        if !self.app.config.proxy.forward_authorization {
            upstream.remove_header("authorization");
        }
        if let Some(who) = &ctx.identity {
            let [id, name, staff] = &self.identity_headers;
            upstream.insert_header(id.clone(), who.user_id.to_string())?;
            upstream.insert_header(name.clone(), who.username.as_ref())?;
            upstream.insert_header(staff.clone(), if who.is_staff { "true" } else { "false" })?;
        }
        upstream.insert_header(headers::X_REQUEST_ID, ctx.request_id.as_str())?;
        if let Some(peer) = peer_ip(session) {
            let client_xff = session
                .req_header()
                .headers
                .get(headers::X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok());
            let xff = headers::forwarded_for(peer, client_xff, &self.trusted_proxies);
            upstream.insert_header(headers::X_FORWARDED_FOR, xff)?;
        }
        upstream.insert_header(headers::X_FORWARDED_PROTO, "http")?;
        // The upstream gets the path the decision was made on (normalized, maybe stripped).
        let target = ctx
            .route
            .as_ref()
            .map(|r| r.upstream_path(&ctx.path))
            .filter(|p| p != upstream.uri.path());
        if let Some(path) = target {
            let uri = match upstream.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
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
        if let Some(started) = ctx.upstream_started {
            metrics::UPSTREAM_DURATION
                .with_label_values(&[ctx.label()])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("X-Request-Id", ctx.request_id.as_str())?;
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
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError
            | ConnectProxyFailure => Some(ApiError::UpstreamUnavailable),
            _ => Some(ApiError::UpstreamUnavailable),
        };
        let mut code = 0;
        if let Some(error) = error {
            code = error.status();
            if session.response_written().is_none() {
                // The connection is not reused after a failed proxy attempt: say so.
                session.set_keepalive(None);
                let mut resp = error.to_response();
                resp.headers.push(("X-Request-Id", ctx.request_id.clone()));
                let _ = write_response(session, &resp).await;
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
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let method = session.req_header().method.as_str();
        let label = ctx.label();
        let upstream = ctx.upstream.as_ref().map(ToString::to_string);
        let log = &self.app.config.log;
        if log.access_log {
            crate::access_log::Entry {
                time: crate::access_log::now_rfc3339(),
                request_id: &ctx.request_id,
                method,
                path: session.req_header().uri.path(),
                kind: ctx.kind,
                route: label,
                user_id: ctx.user_id,
                status,
                upstream: upstream.as_deref(),
                latency_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
                bytes: session.body_bytes_sent(),
            }
            .write(log.format == crate::config::LogFormat::Json);
        }
        metrics::HTTP_REQUESTS
            .with_label_values(&[ctx.kind, label, method, status_text(status, &mut [0; 3])])
            .inc();
        if let Some(upstream) = &upstream {
            metrics::UPSTREAM_REQUESTS
                .with_label_values(&[
                    label,
                    upstream,
                    status_text(ctx.upstream_status, &mut [0; 3]),
                ])
                .inc();
        }
        metrics::HTTP_DURATION
            .with_label_values(&[ctx.kind, label, method, status_class(status)])
            .observe(ctx.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_without_allocating() {
        for (status, text, class) in [
            (100u16, "100", "1xx"),
            (200, "200", "2xx"),
            (308, "308", "3xx"),
            (401, "401", "4xx"),
            (503, "503", "5xx"),
            (0, "0", "0xx"),
        ] {
            assert_eq!(status_text(status, &mut [0; 3]), text);
            assert_eq!(status_class(status), class);
        }
    }
}
